//! `snap import`: take an OCI image layout — a directory or a tar archive, plain, gzip or
//! zstd (detected from the bytes) — into the store, whoever wrote it (snap, skopeo, umoci, oras).
//!
//! Four phases, so that hostile or broken input changes nothing:
//!
//! 1. **Read.** An archive is streamed through snap's bounded tar reader into a temp directory
//!    inside the store; every blob is hashed on the way and must match its name, within the
//!    decompression-bomb limit (`archive.rs`: large blobs past it are staged by a second
//!    pass only if a descriptor names them). A directory layout is read in place.
//!
//! Phases 2 to 4 are the transfer layer's (`ops::transfer::receive`), which a pull
//! goes through too:
//!
//! 2. **Check.** Every ref name the import would move is parsed (each entry's tag, `--ref`).
//!    Then from `index.json` down — nested indexes, manifests, configs, layers, and the
//!    ancestors of snap snapshots that are present — every blob must exist with exactly the
//!    size its descriptor says and hash to its digest; what a descriptor calls a manifest or
//!    an index must be one (its own `mediaType`, if any, agreeing), and descriptors of one
//!    digest must agree on size and media type. Manifest bytes are kept verbatim.
//! 3. **Store.** Manifests, indexes and configs become loose objects; snap's file and tree
//!    layers become packs (their index rebuilt from their frames, which must have snap's
//!    structure); other layers become loose objects. Every imported snap snapshot must then be
//!    complete: each tree readable, each file present.
//! 4. **Refs.** Only now do refs move: each tagged entry (or `--ref`) is inserted, left
//!    unchanged, replaced (`--force`) or reported as conflicted, all in one ref transaction
//!    (every ref locked in name order, each decided from the value read under its lock), so a
//!    concurrent import (or pull) of the same content is `unchanged`, not a conflict.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::oci::layout::{self, RawIndex};
use crate::ops::Error;
use crate::store::{RefName, Store};

pub(crate) mod archive;

use crate::ops::transfer::{self, Source};

pub use crate::ops::refs::{ImportedRef, RefUpdate};
pub use crate::ops::transfer::{
    MAX_CONFIG_BYTES, MAX_DESCRIPTORS, MAX_INDEX_DEPTH, MAX_MANIFEST_BYTES, MAX_MANIFESTS,
};

/// How many times its size an archive may expand to (plus [`TRUSTED_EXPANSION_BYTES`]) before
/// a descriptor names what it holds: the decompression-bomb limit.
pub const MAX_EXPANSION: u64 = 100;
/// What an archive may expand to on trust beyond [`MAX_EXPANSION`] times its size.
pub const TRUSTED_EXPANSION_BYTES: u64 = 64 << 20;
/// Most bytes an archive is read for in all, blobs a descriptor names included (unless
/// `--max-bytes` says otherwise).
pub const DEFAULT_MAX_BYTES: u64 = 1 << 40;

/// What to import.
#[derive(Clone, Debug)]
pub struct ImportOptions {
    /// A layout directory or archive.
    pub path: PathBuf,
    /// Name the (single) imported entry this head instead of its `ref.name`.
    pub ref_name: Option<RefName>,
    /// Move refs that point elsewhere.
    pub force: bool,
    /// Stop if an archive expands to more than this, and stage everything it holds on the way
    /// (`--max-bytes`). `None`: the default limits (see [`MAX_EXPANSION`]).
    pub max_bytes: Option<u64>,
    /// What the reflog lines of the moved refs record as the origin (a pull says the
    /// reference it came from); `None`: `import: PATH`.
    pub origin: Option<String>,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            path: PathBuf::new(),
            ref_name: None,
            force: false,
            max_bytes: None,
            origin: None,
        }
    }
}

/// What an import did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ImportOutcome {
    /// Top-level entries of the layout, in order.
    pub entries: Vec<Digest>,
    /// Every manifest stored (entries, nested ones, ancestors).
    pub manifests: u64,
    /// Blobs stored.
    pub blobs: u64,
    /// Bytes of blobs.
    pub bytes: u64,
    /// Refs and what happened to them.
    pub refs: Vec<ImportedRef>,
    /// The layout had no `oci-layout` file (as OMMX archives): it was read as version 1.0.0.
    pub missing_oci_layout: bool,
}

impl ImportOutcome {
    /// Whether any ref was left alone because it points elsewhere.
    #[must_use]
    pub fn has_conflicts(&self) -> bool {
        self.refs.iter().any(|r| r.update == RefUpdate::Conflicted)
    }
}

/// Imports a layout.
///
/// # Errors
/// `InvalidInput` or `Corrupt` for layouts that are malformed, hostile or incomplete (nothing
/// is changed then), `NotFound` for a missing path, `Io` otherwise. Ref conflicts are not
/// errors: they are reported in the outcome.
pub fn import(store: &Store, opts: &ImportOptions) -> Result<ImportOutcome, Error> {
    import_reporting(store, opts, &crate::ops::NoProgress)
}

/// [`import`], reporting each blob stored to `progress`.
///
/// # Errors
/// As [`import`].
pub fn import_reporting(
    store: &Store,
    opts: &ImportOptions,
    progress: &dyn crate::ops::Progress,
) -> Result<ImportOutcome, Error> {
    // Phase 1: read.
    let meta = std::fs::metadata(&opts.path).map_err(|_| Error::PathNotFound {
        path: opts.path.clone(),
    })?;
    let (source, oci_layout, index_bytes) = if meta.is_dir() {
        let (oci_layout, index) = layout_files(&opts.path)?;
        (Source::Layout(opts.path.clone()), oci_layout, index)
    } else {
        let staged = archive::stage(store, &opts.path, meta.len(), opts.max_bytes)?;
        (
            Source::Staged {
                dir: staged.dir,
                sizes: staged.sizes,
                indexes: std::collections::HashMap::new(),
            },
            staged.oci_layout,
            staged.index,
        )
    };
    // OMMX writes archives without `oci-layout`; skopeo reads them as version 1.0.0, so do we.
    if let Some(bytes) = &oci_layout {
        layout::check_oci_layout(bytes)?;
    }
    let index = RawIndex::from_bytes(index_bytes)?;
    let tops = &index.index().manifests;

    // Phases 2 to 4: names first, then everything reachable is checked, stored, and the refs
    // move.
    let refs = ref_names(opts.ref_name.as_ref(), tops)?;
    let message = opts
        .origin
        .clone()
        .unwrap_or_else(|| format!("import: {}", opts.path.display()));
    let received = transfer::receive(
        store,
        &transfer::Receive {
            source: &source,
            store_fallback: false,
            entries: tops,
            refs: &refs,
            force: opts.force,
            fast_forward: false,
            message: &message,
        },
        progress,
    )?;
    Ok(ImportOutcome {
        entries: tops.iter().map(|d| d.digest).collect(),
        manifests: received.manifests,
        blobs: received.blobs,
        bytes: received.bytes,
        refs: received.refs,
        missing_oci_layout: oci_layout.is_none(),
    })
}

/// The `oci-layout` (when there is one) and `index.json` bytes of the layout directory
/// `dir`, each a regular file within its bound.
///
/// # Errors
/// `BadLayout` naming the file that is missing, not a regular file or too large; `Io`.
pub(crate) fn layout_files(dir: &Path) -> Result<(Option<Vec<u8>>, Vec<u8>), Error> {
    let read_small = |name: &str, limit: u64| -> Result<Vec<u8>, Error> {
        let p = dir.join(name);
        let m = std::fs::symlink_metadata(&p).map_err(|_| Error::BadLayout {
            reason: format!("the layout has no {name}"),
        })?;
        if !m.is_file() || m.len() > limit {
            return Err(Error::BadLayout {
                reason: format!("{name} is not a regular file of at most {limit} bytes"),
            });
        }
        let mut bytes = Vec::new();
        File::open(&p)
            .and_then(|f| f.take(limit).read_to_end(&mut bytes))
            .map_err(|source| Error::Io {
                op: "reading",
                path: p,
                source,
            })?;
        Ok(bytes)
    };
    let oci_layout = match std::fs::symlink_metadata(dir.join(layout::OCI_LAYOUT)) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        _ => Some(read_small(
            layout::OCI_LAYOUT,
            layout::MAX_OCI_LAYOUT_BYTES,
        )?),
    };
    Ok((
        oci_layout,
        read_small(layout::INDEX_JSON, layout::MAX_INDEX_BYTES)?,
    ))
}

/// The refs an import moves: `--ref` for the single entry, or each entry's tag. Every name is
/// parsed here, in the check phase, so a bad one is refused before anything is stored; one
/// name may not name two different entries.
fn ref_names(
    given: Option<&RefName>,
    tops: &[Descriptor],
) -> Result<Vec<(RefName, Digest)>, Error> {
    if let Some(name) = given {
        if tops.len() != 1 {
            return Err(Error::BadLayout {
                reason: format!("--ref names one entry, but the layout has {}", tops.len()),
            });
        }
        return Ok(vec![(name.clone(), tops[0].digest)]);
    }
    let mut out: Vec<(RefName, Digest)> = Vec::new();
    let mut named: HashMap<RefName, Digest> = HashMap::new();
    for d in tops {
        let Some(tag) = layout::ref_name(d) else {
            continue;
        };
        let name = RefName::head(&tag).map_err(|source| Error::EntryRefName {
            digest: d.digest,
            source: Box::new(source),
        })?;
        match named.get(&name) {
            Some(other) if *other != d.digest => {
                return Err(Error::BadLayout {
                    reason: format!(
                        "ref `{}` names two entries, {other} and {}",
                        name.short(),
                        d.digest
                    ),
                });
            }
            Some(_) => {}
            None => {
                named.insert(name.clone(), d.digest);
                out.push((name, d.digest));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u8, tag: Option<&str>) -> Descriptor {
        let mut d = Descriptor::new(crate::oci::MEDIA_TYPE_MANIFEST, Digest::of(&[n]), 1);
        if let Some(t) = tag {
            d.annotations
                .insert(layout::ANNOTATION_REF_NAME.to_owned(), t.to_owned());
        }
        d
    }

    #[test]
    fn ref_names_are_parsed_before_anything_is_read_and_may_not_name_two_entries() {
        let names = |given: Option<&str>, tops: &[Descriptor]| {
            let given = given.map(RefName::head).transpose()?;
            ref_names(given.as_ref(), tops).map(|v| {
                v.into_iter()
                    .map(|(n, d)| (n.short().to_owned(), d))
                    .collect::<Vec<_>>()
            })
        };
        // Untagged entries move no ref; a tag given twice for one entry is one ref.
        let tops = [entry(1, Some("v1")), entry(2, None), entry(1, Some("v1"))];
        assert_eq!(
            names(None, &tops).ok(),
            Some(vec![("v1".to_owned(), Digest::of(&[1]))])
        );
        // A full image reference is kept whole (OMMX, issue 14).
        let tops = [entry(3, Some("localhost:5000/ommx/lp:v1"))];
        assert_eq!(
            names(None, &tops).ok().map(|v| v[0].0.clone()),
            Some("localhost:5000/ommx/lp:v1".to_owned())
        );
        // One name for two entries, a name snap cannot use, `--ref` for several entries.
        assert!(matches!(
            names(None, &[entry(1, Some("v1")), entry(2, Some("v1"))]),
            Err(Error::BadLayout { .. })
        ));
        assert!(matches!(
            names(None, &[entry(1, Some("../escape"))]),
            Err(Error::EntryRefName { .. })
        ));
        assert!(matches!(
            names(Some("mine"), &[entry(1, None), entry(2, None)]),
            Err(Error::BadLayout { .. })
        ));
        assert_eq!(
            names(Some("mine"), &[entry(4, Some("theirs"))]).ok(),
            Some(vec![("mine".to_owned(), Digest::of(&[4]))])
        );
    }
}
