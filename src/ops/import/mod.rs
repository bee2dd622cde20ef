//! `snap import`: take an OCI image layout — a directory or a tar archive, plain, gzip or
//! zstd (detected from the bytes) — into the store, whoever wrote it (snap, skopeo, umoci, oras).
//!
//! Four phases, so that hostile or broken input changes nothing:
//!
//! 1. **Read.** An archive is streamed through snap's bounded tar reader into a temp directory
//!    inside the store; every blob is hashed on the way and must match its name, within the
//!    decompression-bomb limit (`archive.rs`: large blobs past it are staged by a second
//!    pass only if a descriptor names them). A directory layout is read in place.
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
//!    unchanged, replaced (`--force`) or reported as conflicted. Each moves by compare-and-swap;
//!    when another process moved it first, the value found under its lock decides again, so a
//!    concurrent import (or pull) of the same content is `unchanged`, not a conflict.

use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;

use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::oci::layout::{self, RawIndex};
use crate::ops::Error;
use crate::store::{RefName, Store};

mod archive;
mod check;
mod source;

use check::Plan;
use source::Source;

/// Largest manifest, index or snap snapshot config accepted (registries stop at 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Largest config of another kind accepted (it is hashed, not parsed).
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// How deep image indexes may nest.
pub const MAX_INDEX_DEPTH: usize = 8;
/// Most manifests and indexes one import checks.
pub const MAX_MANIFESTS: usize = 1 << 16;
/// Most descriptors (index entries, configs, layers, ancestors) one import follows.
pub const MAX_DESCRIPTORS: usize = 1 << 20;
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
    pub ref_name: Option<String>,
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

/// What happened to one ref.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RefUpdate {
    /// Created.
    Inserted,
    /// Already pointed there.
    Unchanged,
    /// Moved (with `--force`).
    Replaced,
    /// Moved forward: the old value is an ancestor of the new one (`snap pull`).
    #[serde(rename = "fast_forward")]
    FastForward,
    /// Points elsewhere; left alone (give `--force` to move it).
    Conflicted,
}

/// One ref's outcome.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ImportedRef {
    /// The head's name.
    pub name: String,
    /// The imported manifest or index.
    pub digest: Digest,
    /// What the ref held before.
    pub previous: Option<Digest>,
    /// What happened.
    pub update: RefUpdate,
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
    import_with(store, opts, Mode::default(), &crate::ops::NoProgress)
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
    import_with(store, opts, Mode::default(), progress)
}

/// How `snap pull` uses the import machinery on the layout it staged.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mode {
    /// The layout's blobs were verified while they were written: do not hash them again.
    pub verified: bool,
    /// Blobs the layout lacks may already be in the store (a pull skips downloading them).
    pub store_fallback: bool,
    /// A ref that points at an ancestor of the new snapshot moves without `--force`.
    pub fast_forward: bool,
}

pub(crate) fn import_with(
    store: &Store,
    opts: &ImportOptions,
    mode: Mode,
    progress: &dyn crate::ops::Progress,
) -> Result<ImportOutcome, Error> {
    let fallback = mode.store_fallback.then_some(&store.objects);
    // Phase 1: read.
    let meta = std::fs::metadata(&opts.path).map_err(|_| Error::PathNotFound {
        path: opts.path.clone(),
    })?;
    let (source, oci_layout, index_bytes) = if meta.is_dir() {
        let read_small = |name: &str, limit: u64| -> Result<Vec<u8>, Error> {
            let p = opts.path.join(name);
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
                .map_err(|source| Error::Io { path: p, source })?;
            Ok(bytes)
        };
        let oci_layout = match std::fs::symlink_metadata(opts.path.join(layout::OCI_LAYOUT)) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            _ => Some(read_small(
                layout::OCI_LAYOUT,
                layout::MAX_OCI_LAYOUT_BYTES,
            )?),
        };
        (
            Source::Dir(opts.path.clone(), mode.verified),
            oci_layout,
            read_small(layout::INDEX_JSON, layout::MAX_INDEX_BYTES)?,
        )
    } else {
        let staged = archive::stage(store, &opts.path, meta.len(), opts.max_bytes)?;
        (
            Source::Staged {
                dir: staged.dir,
                sizes: staged.sizes,
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

    // Phase 2: check everything — names first, then everything reachable.
    let refs = ref_names(opts.ref_name.as_deref(), tops)?;
    let plan = check::plan(store, &source, fallback, tops)?;

    // Phase 3: store.
    let mut blobs = 0u64;
    let mut bytes = 0u64;
    let total: u64 =
        plan.packs.values().map(|(s, _)| s).sum::<u64>() + plan.loose.values().sum::<u64>();
    progress.begin(
        "Importing",
        total,
        (plan.packs.len() + plan.loose.len()) as u64,
    );
    let stored = store_plan(
        store, &source, fallback, &plan, &mut blobs, &mut bytes, progress,
    );
    progress.end();
    stored?;

    store.objects.sync_packs_dir()?;
    // Phase 4: refs, as one transaction: all locked (in name order), each decided from the
    // value read under its lock, then all written.
    let message = opts
        .origin
        .clone()
        .unwrap_or_else(|| format!("import: {}", opts.path.display()))
        .replace(['\n', '\r'], " ");
    let mut tx = store
        .refs
        .transaction(refs.iter().map(|(n, _)| n.clone()))?;
    let mut refs_out = Vec::new();
    for (name, digest) in &refs {
        let previous = tx.actual(name);
        let update = match previous {
            Some(p) if p == *digest => RefUpdate::Unchanged,
            Some(p) if is_ancestor(store, &p, digest) && (opts.force || mode.fast_forward) => {
                RefUpdate::FastForward
            }
            Some(_) if opts.force => RefUpdate::Replaced,
            Some(_) => RefUpdate::Conflicted,
            None => RefUpdate::Inserted,
        };
        if matches!(
            update,
            RefUpdate::Inserted | RefUpdate::FastForward | RefUpdate::Replaced
        ) {
            tx.stage(name, Some(*digest), &message)?;
        }
        refs_out.push(ImportedRef {
            name: name.short().to_owned(),
            digest: *digest,
            previous,
            update,
        });
    }
    tx.commit(|d: &Digest| store.objects.contains(d))?;
    Ok(ImportOutcome {
        entries: tops.iter().map(|d| d.digest).collect(),
        manifests: plan.manifests,
        blobs,
        bytes,
        refs: refs_out,
        missing_oci_layout: oci_layout.is_none(),
    })
}

/// The refs an import moves: `--ref` for the single entry, or each entry's tag. Every name is
/// parsed here, in the check phase, so a bad one is refused before anything is stored; one
/// name may not name two different entries.
fn ref_names(given: Option<&str>, tops: &[Descriptor]) -> Result<Vec<(RefName, Digest)>, Error> {
    if let Some(name) = given {
        if tops.len() != 1 {
            return Err(Error::BadLayout {
                reason: format!("--ref names one entry, but the layout has {}", tops.len()),
            });
        }
        return Ok(vec![(RefName::head(name)?, tops[0].digest)]);
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

/// Phase 3 of an import: stores what the plan checked, from where it is.
fn store_plan(
    store: &Store,
    source: &Source,
    fallback: Option<&crate::store::objects::Objects>,
    plan: &Plan,
    blobs: &mut u64,
    bytes: &mut u64,
    progress: &dyn crate::ops::Progress,
) -> Result<(), Error> {
    for (d, (size, index)) in &plan.packs {
        if let Source::Dir(root, true) = &source {
            // A pull's staging file, verified as it arrived: move it, do not copy it.
            store
                .objects
                .adopt_pack(&source::blob_path(root, d), d, index.clone())?;
        } else {
            store.objects.import_pack_indexed(
                &mut io::BufReader::new(source.open(d)?),
                d,
                Some(index.clone()),
            )?;
        }
        *blobs += 1;
        *bytes += size;
        progress.advance(*size, 1);
    }
    for (d, size) in &plan.loose {
        if !store.objects.contains(d) {
            let path = PathBuf::from(d.to_string());
            let (stored, _) = store
                .objects
                .put_stream(&mut io::BufReader::new(source.open(d)?), &path)?;
            if stored != *d {
                return Err(Error::BlobDigest {
                    digest: *d,
                    actual: stored,
                });
            }
        }
        *blobs += 1;
        *bytes += size;
        progress.advance(*size, 1);
    }
    for config in plan.configs.keys() {
        for (d, tree) in check::inline_trees_of(source, fallback, plan, config)? {
            if !store.objects.contains(&d) {
                store.objects.put(&tree)?;
            }
        }
    }
    Ok(())
}

/// Whether `old` is among the stored ancestors of snapshot `new` (any parent, as far as the
/// store holds them).
fn is_ancestor(store: &Store, old: &Digest, new: &Digest) -> bool {
    let mut seen = BTreeSet::new();
    let mut queue = vec![*new];
    while let Some(id) = queue.pop() {
        if seen.len() > 100_000 || !seen.insert(id) {
            continue;
        }
        let Ok(s) = crate::snapshot::Snapshot::load(store, &id) else {
            continue;
        };
        for p in &s.config.parents {
            if p == old {
                return true;
            }
            queue.push(*p);
        }
    }
    false
}
