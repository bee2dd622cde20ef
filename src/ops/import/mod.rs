//! `snap import`: take an OCI image layout — a directory or a tar archive, plain, gzip or
//! zstd (detected from the bytes) — into the store, whoever wrote it (snap, skopeo, umoci, oras).
//!
//! Four phases, so that hostile or broken input changes nothing:
//!
//! 1. **Read.** An archive is streamed into a temp directory inside the store; every blob is
//!    hashed on the way and must match its name (a directory layout is read in place).
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

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};
use crate::object::SnapshotConfig;
use crate::oci::layout::{self, RawIndex};
use crate::oci::{
    self, Descriptor, MEDIA_TYPE_ARTIFACT_MANIFEST, MEDIA_TYPE_DOCKER_LIST,
    MEDIA_TYPE_DOCKER_MANIFEST, MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER_TAR_ZSTD, MEDIA_TYPE_MANIFEST,
    MEDIA_TYPE_TREES, RawManifest,
};
use crate::ops::Error;
use crate::store::{Expected, RefEdit, RefName, Store, refs};
use crate::worktree::restore;

/// Largest manifest or index accepted (registries stop at 4 MiB).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Largest config accepted.
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// How deep image indexes may nest.
pub const MAX_INDEX_DEPTH: usize = 8;
/// How many times its size an archive may expand to (plus 64 MiB).
pub const MAX_EXPANSION: u64 = 100;
/// Default limit on the bytes an archive may expand to.
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
    /// Stop if an archive expands to more than this.
    pub max_bytes: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            path: PathBuf::new(),
            ref_name: None,
            force: false,
            max_bytes: DEFAULT_MAX_BYTES,
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
}

impl ImportOutcome {
    /// Whether any ref was left alone because it points elsewhere.
    #[must_use]
    pub fn has_conflicts(&self) -> bool {
        self.refs.iter().any(|r| r.update == RefUpdate::Conflicted)
    }
}

/// Where blobs come from.
enum Source {
    /// A layout directory, read in place; `verified` when its blobs were checked against
    /// their digests as they were written (a pull's staging directory).
    Dir(PathBuf, bool),
    /// Blobs staged from an archive, already checked against their names.
    Staged {
        dir: tempfile::TempDir,
        sizes: HashMap<Digest, u64>,
    },
}

impl Source {
    fn size(&self, d: &Digest) -> Result<Option<u64>, Error> {
        match self {
            Source::Dir(root, _) => {
                let p = blob_path(root, d);
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.file_type().is_file() => Ok(Some(m.len())),
                    Ok(_) => Err(Error::BadLayout {
                        reason: format!("{} is not a regular file", p.display()),
                    }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(Error::Io { path: p, source }),
                }
            }
            Source::Staged { sizes, .. } => Ok(sizes.get(d).copied()),
        }
    }

    fn open(&self, d: &Digest) -> Result<File, Error> {
        let p = match self {
            Source::Dir(root, _) => blob_path(root, d),
            Source::Staged { dir, .. } => dir.path().join(d.hex()),
        };
        File::open(&p).map_err(|source| Error::Io { path: p, source })
    }

    /// Checks that blob `d` exists with `size` bytes and (for a directory) hashes to `d`.
    fn check(&self, d: &Digest, size: u64) -> Result<(), Error> {
        match self.size(d)? {
            None => return Err(Error::MissingBlob { digest: *d }),
            Some(actual) if actual != size => {
                return Err(Error::BlobSize {
                    digest: *d,
                    expected: size,
                    actual,
                });
            }
            Some(_) => {}
        }
        if let Source::Dir(_, false) = self {
            let mut r = HashingReader::new(self.open(d)?);
            io::copy(&mut r, &mut io::sink()).map_err(|source| Error::Io {
                path: PathBuf::from(d.to_string()),
                source,
            })?;
            let (actual, _, _) = r.finish();
            if actual != *d {
                return Err(Error::BlobDigest { digest: *d, actual });
            }
        }
        Ok(())
    }

    /// Reads a small blob whole, checked.
    fn read(&self, d: &Digest, size: u64, limit: u64) -> Result<Vec<u8>, Error> {
        if size > limit {
            return Err(Error::BadLayout {
                reason: format!(
                    "{d} claims {size} bytes, more than the {limit} snap accepts for metadata"
                ),
            });
        }
        self.check(d, size)?;
        let mut bytes = Vec::new();
        self.open(d)?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Io {
                path: PathBuf::from(d.to_string()),
                source,
            })?;
        if Digest::of(&bytes) != *d || bytes.len() as u64 != size {
            return Err(Error::BlobDigest {
                digest: *d,
                actual: Digest::of(&bytes),
            });
        }
        Ok(bytes)
    }
}

fn blob_path(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs").join("sha256").join(d.hex())
}

/// What phase 2 decided to store.
#[derive(Default)]
struct Plan {
    /// Manifests, indexes and configs: small, stored loose from memory.
    metadata: BTreeMap<Digest, Vec<u8>>,
    /// Trees that travel inside snapshot configs (direct mode).
    inline_trees: BTreeMap<Digest, Vec<u8>>,
    /// Layers to store as packs, with the index their frames gave when checked.
    packs: BTreeMap<Digest, (u64, crate::pack::PackIndex)>,
    /// Other blobs to store loose.
    loose: BTreeMap<Digest, u64>,
    /// Snap snapshots and their root trees, for the completeness check.
    snapshots: Vec<(Digest, Digest)>,
    manifests: u64,
    /// The refs to move once everything is stored, each name parsed.
    refs: Vec<(RefName, Digest)>,
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
        let read_small = |name: &str| -> Result<Vec<u8>, Error> {
            let p = opts.path.join(name);
            let m = std::fs::symlink_metadata(&p).map_err(|_| Error::BadLayout {
                reason: format!("the layout has no {name}"),
            })?;
            if !m.is_file() || m.len() > layout::MAX_INDEX_BYTES {
                return Err(Error::BadLayout {
                    reason: format!("{name} is not a regular file of a sane size"),
                });
            }
            std::fs::read(&p).map_err(|source| Error::Io { path: p, source })
        };
        (
            Source::Dir(opts.path.clone(), mode.verified),
            read_small(layout::OCI_LAYOUT)?,
            read_small(layout::INDEX_JSON)?,
        )
    } else {
        let dir = store.temp_dir()?;
        let mut sizes = HashMap::new();
        let file = File::open(&opts.path).map_err(|source| Error::Io {
            path: opts.path.clone(),
            source,
        })?;
        // A decompression bomb stops here: layouts hold mostly compressed blobs, so an archive
        // never legitimately expands to more than a hundred times its size.
        let max_bytes = opts.max_bytes.min(
            meta.len()
                .saturating_mul(MAX_EXPANSION)
                .saturating_add(64 << 20),
        );
        let staged = dir.path().to_owned();
        let read = layout::read_tar(
            io::BufReader::with_capacity(1 << 20, file),
            max_bytes,
            |d, size, r| {
                let path = staged.join(d.hex());
                let mut out = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&path)?;
                let n = io::copy(r, &mut out)?;
                sizes.insert(*d, size);
                Ok(n)
            },
        )?;
        (Source::Staged { dir, sizes }, read.oci_layout, read.index)
    };
    layout::check_oci_layout(&oci_layout)?;
    let index = RawIndex::from_bytes(index_bytes)?;
    let tops = &index.index().manifests;

    // Phase 2: check everything — names first, then everything reachable.
    let mut plan = Plan {
        refs: ref_names(opts.ref_name.as_deref(), tops)?,
        ..Plan::default()
    };
    let mut queue: VecDeque<Queued> = tops
        .iter()
        .map(|d| Queued {
            desc: d.clone(),
            depth: 0,
            described: true,
        })
        .collect();
    // Every descriptor met so far, by digest: all that name the same digest must agree.
    let mut seen: HashMap<Digest, Descriptor> = HashMap::new();
    while let Some(Queued {
        desc,
        depth,
        described,
    }) = queue.pop_front()
    {
        if let Some(first) = seen.get(&desc.digest) {
            // Ancestors are queued with the size their blob has, not as described: a
            // descriptor of the same digest has already been checked against those bytes.
            if described && (first.size != desc.size || first.media_type != desc.media_type) {
                return Err(Error::BadLayout {
                    reason: format!(
                        "{} is described twice, as `{}` of {} bytes and as `{}` of {} bytes",
                        desc.digest, first.media_type, first.size, desc.media_type, desc.size
                    ),
                });
            }
            continue;
        }
        seen.insert(desc.digest, desc.clone());
        if depth > MAX_INDEX_DEPTH {
            return Err(Error::BadLayout {
                reason: format!("image indexes nest deeper than {MAX_INDEX_DEPTH} levels"),
            });
        }
        match desc.media_type.as_str() {
            MEDIA_TYPE_MANIFEST | MEDIA_TYPE_DOCKER_MANIFEST => {
                let bytes = source.read(&desc.digest, desc.size, MAX_MANIFEST_BYTES)?;
                let manifest = RawManifest::from_bytes(bytes)?;
                check_manifest(
                    &source, fallback, &manifest, &desc, &mut plan, &mut queue, depth,
                )?;
            }
            MEDIA_TYPE_INDEX | MEDIA_TYPE_DOCKER_LIST => {
                let bytes = source.read(&desc.digest, desc.size, MAX_MANIFEST_BYTES)?;
                let child = RawIndex::from_bytes(bytes.clone())?;
                check_media_type(&desc, child.index().media_type.as_deref())?;
                for m in &child.index().manifests {
                    queue.push_back(Queued {
                        desc: m.clone(),
                        depth: depth + 1,
                        described: true,
                    });
                }
                plan.metadata.insert(desc.digest, bytes);
            }
            MEDIA_TYPE_ARTIFACT_MANIFEST => {
                return Err(Error::LegacyArtifactManifest {
                    digest: desc.digest,
                });
            }
            other => {
                return Err(Error::BadLayout {
                    reason: format!(
                        "{} has media type `{other}`, which is not a manifest or an index",
                        desc.digest
                    ),
                });
            }
        }
    }

    // Every snapshot must be whole before anything is stored.
    let packed: HashMap<Digest, (Digest, &crate::pack::IndexEntry)> = plan
        .packs
        .iter()
        .flat_map(|(pack, (_, index))| index.entries().iter().map(|e| (e.digest, (*pack, e))))
        .collect();
    for (id, root) in &plan.snapshots {
        check_complete(store, &source, &plan, &packed, id, root)?;
    }

    // Phase 3: store.
    let mut blobs = 0u64;
    let mut bytes = 0u64;
    let total: u64 = plan.metadata.values().map(|b| b.len() as u64).sum::<u64>()
        + plan.packs.values().map(|(s, _)| s).sum::<u64>()
        + plan.loose.values().sum::<u64>();
    progress.begin(
        "Importing",
        total,
        (plan.metadata.len() + plan.packs.len() + plan.loose.len()) as u64,
    );
    let stored = store_plan(store, &source, &plan, &mut blobs, &mut bytes, progress);
    progress.end();
    stored?;

    store.objects.sync_packs_dir()?;
    // Phase 4: refs, each by compare-and-swap.
    let message = format!("import: {}", opts.path.display()).replace(['\n', '\r'], " ");
    let mut refs_out = Vec::new();
    for (name, digest) in &plan.refs {
        let (previous, update) = move_ref(store, name, *digest, &message, opts.force, mode)?;
        refs_out.push(ImportedRef {
            name: name.short().to_owned(),
            digest: *digest,
            previous,
            update,
        });
    }
    Ok(ImportOutcome {
        entries: tops.iter().map(|d| d.digest).collect(),
        manifests: plan.manifests,
        blobs,
        bytes,
        refs: refs_out,
    })
}

/// A descriptor waiting to be checked.
struct Queued {
    desc: Descriptor,
    /// How many indexes lead to it.
    depth: usize,
    /// Whether a manifest or index describes it (an ancestor found through a snapshot's
    /// parents is not described, only present).
    described: bool,
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
    for d in tops {
        let Some(tag) = layout::ref_name(d) else {
            continue;
        };
        let name = RefName::head(&tag).map_err(|source| Error::EntryRefName {
            digest: d.digest,
            source: Box::new(source),
        })?;
        match out.iter().find(|(n, _)| *n == name) {
            Some((_, other)) if *other != d.digest => {
                return Err(Error::BadLayout {
                    reason: format!(
                        "ref `{}` names two entries, {other} and {}",
                        name.short(),
                        d.digest
                    ),
                });
            }
            Some(_) => {}
            None => out.push((name, d.digest)),
        }
    }
    Ok(out)
}

/// A descriptor's `mediaType` must be the one the bytes declare for themselves, if they do.
fn check_media_type(desc: &Descriptor, own: Option<&str>) -> Result<(), Error> {
    match own {
        Some(mt) if mt != desc.media_type => Err(Error::BadLayout {
            reason: format!(
                "{} is described as `{}` but says it is `{mt}`",
                desc.digest, desc.media_type
            ),
        }),
        _ => Ok(()),
    }
}

/// How many times a ref update is retried when other processes keep moving the ref.
const REF_ATTEMPTS: usize = 8;

/// Moves one ref to `digest` by compare-and-swap. The decision is made on the value read; when
/// the swap finds that another process moved the ref meanwhile, the value it found under the
/// lock decides again — a concurrent import of the same content makes it `Unchanged`, not a
/// conflict. Returns what the ref held before and what happened.
fn move_ref(
    store: &Store,
    name: &RefName,
    digest: Digest,
    message: &str,
    force: bool,
    mode: Mode,
) -> Result<(Option<Digest>, RefUpdate), Error> {
    let mut previous = store.refs.get(name)?;
    for _ in 0..REF_ATTEMPTS {
        match previous {
            Some(p) if p == digest => return Ok((previous, RefUpdate::Unchanged)),
            Some(p) if !(force || mode.fast_forward && is_ancestor(store, &p, &digest)) => {
                return Ok((previous, RefUpdate::Conflicted));
            }
            _ => {}
        }
        let edit = RefEdit {
            name: name.clone(),
            expected: previous.map_or(Expected::Absent, Expected::Is),
            new: Some(digest),
            message: message.to_owned(),
        };
        match store.update_ref(&edit) {
            Ok(()) => {
                let update = match previous {
                    Some(p) if is_ancestor(store, &p, &digest) => RefUpdate::FastForward,
                    Some(_) => RefUpdate::Replaced,
                    None => RefUpdate::Inserted,
                };
                return Ok((previous, update));
            }
            // Lost a race: `actual` was read under the lock, so it is what the ref holds.
            Err(refs::Error::OutOfDate { actual, .. }) => previous = actual,
            Err(e) => return Err(e.into()),
        }
    }
    // Other processes kept moving it: report what it held last, as a conflict.
    Ok((previous, RefUpdate::Conflicted))
}

/// Phase 3 of an import: stores what the plan checked.
fn store_plan(
    store: &Store,
    source: &Source,
    plan: &Plan,
    blobs: &mut u64,
    bytes: &mut u64,
    progress: &dyn crate::ops::Progress,
) -> Result<(), Error> {
    for (d, b) in &plan.metadata {
        if !store.objects.contains(d) {
            store.objects.put(b)?;
        }
        *blobs += 1;
        *bytes += b.len() as u64;
        progress.advance(b.len() as u64, 1);
    }
    for (d, (size, index)) in &plan.packs {
        if let Source::Dir(root, true) = &source {
            // A pull's staging file, verified as it arrived: move it, do not copy it.
            store
                .objects
                .adopt_pack(&blob_path(root, d), d, index.clone())?;
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
    for (d, b) in &plan.inline_trees {
        if !store.objects.contains(d) {
            store.objects.put(b)?;
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

/// Checks that every tree and file of snapshot `id` is in the layout's checked blobs or
/// already in the store, reading trees from where they will be stored.
fn check_complete(
    store: &Store,
    source: &Source,
    plan: &Plan,
    packed: &HashMap<Digest, (Digest, &crate::pack::IndexEntry)>,
    id: &Digest,
    root: &Digest,
) -> Result<(), Error> {
    let incomplete = |reason: String| Error::Incomplete {
        digest: *id,
        reason,
    };
    let read_tree = |d: &Digest| -> Result<Vec<u8>, restore::Error> {
        if let Some(b) = plan.inline_trees.get(d) {
            return Ok(b.clone());
        }
        let Some(&(pack, entry)) = packed.get(d) else {
            return Ok(store.objects.read(d, crate::snapshot::MAX_METADATA_BYTES)?);
        };
        let not_a_tree = |reason: String| restore::Error::Tree { digest: *d, reason };
        if entry.size > crate::snapshot::MAX_METADATA_BYTES {
            return Err(not_a_tree(format!("it is {} bytes long", entry.size)));
        }
        let mut f = source.open(&pack).map_err(|e| not_a_tree(e.to_string()))?;
        let mut frames = Vec::new();
        io::Seek::seek(&mut f, io::SeekFrom::Start(entry.offset))
            .and_then(|_| f.take(entry.length).read_to_end(&mut frames))
            .map_err(|e| not_a_tree(e.to_string()))?;
        crate::pack::read_object(&frames, entry).map_err(|e| not_a_tree(e.to_string()))
    };
    let p = restore::plan_with(read_tree, root).map_err(|e| incomplete(e.to_string()))?;
    let missing = p.files.iter().find(|f| {
        !(plan.loose.contains_key(&f.digest)
            || packed.contains_key(&f.digest)
            || store.objects.contains(&f.digest))
    });
    match missing {
        Some(f) => Err(incomplete(format!(
            "file {} ({}) is not in its layers",
            f.path, f.digest
        ))),
        None => Ok(()),
    }
}

/// Checks one manifest's config and layers, and plans how to store them. Queues the stored
/// ancestors of a snap snapshot.
fn check_manifest(
    source: &Source,
    fallback: Option<&crate::store::objects::Objects>,
    manifest: &RawManifest,
    desc: &Descriptor,
    plan: &mut Plan,
    queue: &mut VecDeque<Queued>,
    depth: usize,
) -> Result<(), Error> {
    let m = manifest.manifest();
    check_media_type(desc, m.media_type.as_deref())?;
    plan.manifests += 1;
    plan.metadata
        .insert(manifest.digest(), manifest.bytes().to_vec());
    let in_store = |d: &Digest| -> Result<bool, Error> {
        Ok(fallback.is_some_and(|o| o.contains(d)) && source.size(d)?.is_none())
    };
    let config = match fallback {
        Some(objects) if in_store(&m.config.digest)? => {
            let b = objects.read(&m.config.digest, MAX_CONFIG_BYTES)?;
            if b.len() as u64 != m.config.size {
                return Err(Error::BlobSize {
                    digest: m.config.digest,
                    expected: m.config.size,
                    actual: b.len() as u64,
                });
            }
            b
        }
        _ => source.read(&m.config.digest, m.config.size, MAX_CONFIG_BYTES)?,
    };
    if m.is_snapshot() {
        let cfg = SnapshotConfig::decode(&config).map_err(|e| Error::Incomplete {
            digest: manifest.digest(),
            reason: e.to_string(),
        })?;
        for (d, raw) in cfg.inline_trees() {
            if Digest::of(raw) != *d {
                return Err(Error::Incomplete {
                    digest: manifest.digest(),
                    reason: format!("inline tree {d} does not match its bytes"),
                });
            }
            plan.inline_trees.insert(*d, raw.to_vec());
        }
        plan.snapshots.push((manifest.digest(), cfg.root));
        // Ancestors travel as untagged entries or bare blobs: take the ones that are here.
        for p in &cfg.parents {
            if let Some(size) = source.size(p)? {
                queue.push_back(Queued {
                    desc: Descriptor::new(MEDIA_TYPE_MANIFEST, *p, size),
                    depth,
                    described: false,
                });
            }
        }
    }
    plan.metadata.insert(m.config.digest, config);
    for layer in &m.layers {
        if in_store(&layer.digest)? {
            continue;
        }
        source.check(&layer.digest, layer.size)?;
        let is_pack = m.is_snapshot()
            && (layer.media_type == MEDIA_TYPE_LAYER_TAR_ZSTD
                || layer.media_type == MEDIA_TYPE_TREES);
        if is_pack {
            // Check the frame structure now, so a bad pack is refused before anything is stored.
            let mut r = io::BufReader::with_capacity(1 << 20, source.open(&layer.digest)?);
            let index =
                crate::pack::scan::index_pack(&mut r).map_err(|reason| Error::BadLayout {
                    reason: format!("layer {} is not a snap pack: {reason}", layer.digest),
                })?;
            plan.packs.insert(layer.digest, (layer.size, index));
        } else if layer.size <= MAX_CONFIG_BYTES && layer.media_type == oci::MEDIA_TYPE_EMPTY {
            let b = source.read(&layer.digest, layer.size, MAX_CONFIG_BYTES)?;
            plan.metadata.insert(layer.digest, b);
        } else {
            plan.loose.insert(layer.digest, layer.size);
        }
    }
    Ok(())
}
