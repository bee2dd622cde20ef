//! `snap restore`: bring a snapshot's files back, byte for byte.
//!
//! Plans first (every tree read and verified), then applies through
//! [`crate::worktree::restore`], which never leaves a partial file at a final path.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::ops::Error;
use crate::rev;
use crate::snapshot::Artifact;
use crate::store::Store;
use crate::worktree::restore::{self, RestoreStats};
use crate::worktree::unpack;

/// What to restore where.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// The snapshot (`SNAP` syntax).
    pub rev: String,
    /// The destination directory.
    pub dest: PathBuf,
    /// Write into a non-empty destination, replacing what is in the way.
    pub force: bool,
}

/// What a restore did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RestoreOutcome {
    /// The snapshot restored.
    pub digest: Digest,
    /// The destination.
    pub dest: PathBuf,
    /// Counts.
    #[serde(flatten)]
    pub stats: RestoreStats,
}

/// Restores `opts.rev` into `opts.dest`.
///
/// # Errors
/// `NotFound` for an unknown revision or a missing object, `Corrupt` for damaged objects
/// (nothing is written into place then), `InvalidInput` for a non-empty destination without
/// `force`, `Io` otherwise.
pub fn restore(
    store: &Store,
    opts: &RestoreOptions,
    progress: &dyn crate::worktree::build::Progress,
) -> Result<RestoreOutcome, Error> {
    let id = rev::resolve(store, &opts.rev)?;
    let stats = match Artifact::load(store, &id)? {
        Artifact::Snapshot(snap) => {
            let plan = restore::plan(&store.objects, &snap.root())?;
            restore::apply(&store.objects, &plan, &opts.dest, opts.force, progress)?
        }
        Artifact::Manifest(m) => {
            let m = m.manifest();
            match unpack::kind(m)? {
                unpack::Kind::Files => restore::materialize(&opts.dest, opts.force, |base, _| {
                    unpack::write_files(&store.objects, m, base).map_err(Error::from)
                })?,
                unpack::Kind::Image => restore::materialize(&opts.dest, opts.force, |base, _| {
                    unpack::apply_layers(&store.objects, m, base)
                        .map(|(stats, _skipped)| stats)
                        .map_err(Error::from)
                })?,
            }
        }
        Artifact::Index(index) => {
            return Err(Error::RestoreIndex {
                digest: id,
                manifests: index.index().manifests.iter().map(|d| d.digest).collect(),
            });
        }
    };
    Ok(RestoreOutcome {
        digest: id,
        dest: opts.dest.clone(),
        stats,
    })
}
