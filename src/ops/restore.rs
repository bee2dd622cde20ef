//! `snap restore`: bring a snapshot's files back, byte for byte.
//!
//! Plans first (every tree read and verified, every path checked), then applies through
//! [`crate::worktree::checkout::restore`], which never leaves a partial file at a final path, never
//! writes `.git` or `.store` or the open store, never follows a symlink, and never deletes a
//! directory holding files the snapshot does not record.

use std::path::PathBuf;

use crate::digest::Digest;
use crate::ops::Error;
use crate::rev;
use crate::snapshot::Artifact;
use crate::store::Store;
use crate::worktree::checkout::dest::Guard;
use crate::worktree::checkout::restore::{self, RestoreStats};
use crate::worktree::checkout::unpack;

/// What to restore where.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// The snapshot (`SNAP` syntax).
    pub rev: String,
    /// The destination directory.
    pub dest: PathBuf,
    /// Write into a non-empty destination, replacing what is in the way.
    pub force: bool,
    /// Only these paths of a snapshot (all when empty), each with the directories above it.
    pub paths: Vec<String>,
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
/// `force`, a reserved or unsafe path, a destination inside the store, or a non-empty
/// directory where the snapshot has a file (all refused before anything is written), `Io`
/// otherwise.
pub fn restore(
    store: &Store,
    opts: &RestoreOptions,
    progress: &dyn crate::progress::Progress,
) -> Result<RestoreOutcome, Error> {
    let id = rev::resolve(store, &opts.rev)?;
    let artifact = Artifact::load(store, &id)?;
    // What restore must leave alone besides `.git` and `.store`: the open store, if it lies
    // inside the destination under another name (and a destination inside the store is
    // refused outright).
    let guard = Guard::new(&opts.dest, store.dir()).map_err(restore::Error::from)?;
    let stats = match artifact {
        Artifact::Snapshot(snap) => {
            let plan = restore::plan(&store.objects, &snap.root())?;
            let paths = crate::ops::restore_remote::parse_paths(&opts.paths, &plan, id)?;
            let plan = crate::ops::restore_remote::cut_down(plan, &paths);
            restore::apply(
                &store.objects,
                &plan,
                &opts.dest,
                opts.force,
                &guard,
                progress,
            )?
        }
        // `--path` selects within snap's trees; another manifest has none to select in.
        Artifact::Manifest(_) if !opts.paths.is_empty() => {
            return Err(Error::PathNotInSnapshot {
                path: opts.paths[0].clone(),
                snapshot: id,
            });
        }
        Artifact::Manifest(m) => {
            let m = m.manifest();
            match unpack::kind(m) {
                unpack::Kind::Files => {
                    restore::assemble(&opts.dest, opts.force, &guard, |stage, guard| {
                        unpack::write_files(&store.objects, m, stage, guard).map_err(Error::from)
                    })?
                }
                unpack::Kind::Image => {
                    restore::assemble(&opts.dest, opts.force, &guard, |stage, guard| {
                        unpack::apply_layers(&store.objects, m, stage, guard).map_err(Error::from)
                    })?
                }
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
