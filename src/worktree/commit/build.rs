//! Turning scanned entries into stored objects: packs (or loose objects) for files, trees, and
//! the layer descriptors of the snapshot (OCI mapping §3).
//!
//! A commit does the work its change needs: files the stat cache knows unchanged are not
//! read, groups and blocks the store already holds are reused ([`crate::worktree::commit::groups`]),
//! trees of unchanged directories are not encoded again ([`crate::worktree::commit::trees`]). The
//! result never depends on the caches: it is byte for byte what a commit into an empty store
//! gives. Memory is bounded by batches of files and, for large files, by a few frames.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;

use rayon::prelude::*;
use serde_json::value::RawValue;

use crate::digest::Digest;
use crate::object::Stats;
use crate::object::snapshot::raw_tree;
use crate::oci::artifact;
use crate::oci::{ANNOTATION_TITLE, Descriptor, MEDIA_TYPE_FILE};
use crate::pack::{self, MemberKind};
use crate::store::objects::Objects;
use crate::worktree::commit::groups::{self, Reuse};
use crate::worktree::commit::packcache::{PackCache, Used};
use crate::worktree::commit::scan::{ScanEntry, ScanKind};
use crate::worktree::commit::statcache::{Lookup, TreeRecord};
use crate::worktree::commit::trees::Trees;

/// Attempts at building before a file that keeps changing under the commit is an error.
const MAX_ATTEMPTS: usize = 3;

pub use crate::progress::{NoProgress, Progress};
pub use crate::worktree::commit::build_error::Error;
pub(crate) use crate::worktree::commit::build_error::io;

/// What building produced.
#[derive(Debug)]
pub struct Built {
    /// The root tree.
    pub root: Digest,
    /// Layers in manifest order.
    pub layers: Vec<Descriptor>,
    /// Trees to inline in the config (direct mode only).
    pub inline_trees: BTreeMap<Digest, Box<RawValue>>,
    /// Counts.
    pub stats: Stats,
    /// Whether direct mode was used.
    pub direct: bool,
    /// Each entry's file digest and size (`None` for directories and symlinks), in scan order.
    pub files: Vec<Option<(Digest, u64)>>,
    /// Each entry's cut value (OCI mapping §3), in scan order.
    pub cuts: Vec<u64>,
    /// The tree of each directory, by entry index.
    pub dir_trees: HashMap<usize, TreeRecord>,
    /// Files whose contents were read.
    pub files_read: u64,
    /// What the pack cache should remember.
    pub used: Used,
    /// What was reused and what written.
    pub reuse: Reuse,
}

/// The root tree and counts of `entries`, if the stat cache knows the digest of every file
/// (so nothing needs reading). Nothing is stored.
#[must_use]
pub fn cached_root(entries: &[ScanEntry], lookup: &Lookup) -> Option<(Digest, Stats)> {
    if !lookup.knows_every_file(entries) {
        return None;
    }
    let files: Vec<Option<(Digest, u64)>> = entries
        .iter()
        .zip(&lookup.priors)
        .map(|(e, p)| match e.kind {
            ScanKind::File { .. } => p.known(),
            _ => None,
        })
        .collect();
    let trees = Trees::build(entries, &files, Some(lookup)).ok()?;
    Some((trees.root, trees.stats))
}

/// Stores every entry and returns the root tree and layers. `lookup` is what the stat cache
/// knows of `entries`, `packs` what the store holds already.
///
/// # Errors
/// [`Error`] naming the file that failed; [`Error::Changed`] for a file that kept changing
/// while it was committed.
pub fn build(
    objects: &Objects,
    entries: &[ScanEntry],
    lookup: &Lookup,
    packs: &PackCache,
    progress: &dyn Progress,
) -> Result<Built, Error> {
    let mut distrust = HashSet::new();
    let mut trust_trees = true;
    let mut last = None;
    for _ in 0..MAX_ATTEMPTS {
        match build_once(
            objects,
            entries,
            lookup,
            packs,
            &distrust,
            trust_trees,
            progress,
        ) {
            // A file the stat cache knew changed after all (it was rewritten within its mtime
            // tick, or while this commit ran): read it, and cut again.
            Err(Error::Stale { index }) => {
                distrust.insert(index);
                last = Some(index);
            }
            Err(Error::StaleTree) => trust_trees = false,
            other => return other,
        }
    }
    let path = last
        .and_then(|i| entries[i].source.clone())
        .unwrap_or_default();
    Err(Error::Changed { path })
}

fn build_once(
    objects: &Objects,
    entries: &[ScanEntry],
    lookup: &Lookup,
    packs: &PackCache,
    distrust: &HashSet<usize>,
    trust_trees: bool,
    progress: &dyn Progress,
) -> Result<Built, Error> {
    let direct = entries.len() <= artifact::DIRECT_MAX_ENTRIES;
    let (count, total) = entries.iter().fold((0, 0), |(n, b), e| match e.kind {
        ScanKind::File { size, .. } => (n + 1, b + size),
        _ => (n, b),
    });
    progress.begin("Committing", total, count);
    if direct {
        let mut files: Vec<Option<(Digest, u64)>> = vec![None; entries.len()];
        let (layers, files_read) =
            store_direct(objects, entries, lookup, distrust, &mut files, progress)?;
        let mut trees = Trees::build(entries, &files, None)?;
        let mut inline_trees = BTreeMap::new();
        for (digest, bytes) in trees.all_bytes(entries, &files)? {
            objects.put(&bytes)?;
            inline_trees.insert(
                digest,
                raw_tree(&bytes).map_err(|problem| Error::InlineTree { digest, problem })?,
            );
        }
        // Cut values are recorded for the stat cache, in case the tree grows into groups.
        let cuts = entries
            .iter()
            .zip(&files)
            .map(|(e, f)| {
                let (kind, target) = match &e.kind {
                    ScanKind::File { executable, .. } => (
                        MemberKind::File {
                            size: f.map_or(0, |f| f.1),
                            executable: *executable,
                        },
                        None,
                    ),
                    ScanKind::Dir => (MemberKind::Dir, None),
                    ScanKind::Symlink { target } => (MemberKind::Symlink, Some(target.as_str())),
                };
                pack::cut_value(
                    &pack::tar::header(&e.path, kind, target),
                    f.as_ref().map(|f| &f.0),
                )
            })
            .collect();
        return Ok(Built {
            root: trees.root,
            layers,
            inline_trees,
            stats: trees.stats,
            direct,
            files,
            cuts,
            dir_trees: std::mem::take(&mut trees.dirs),
            files_read,
            used: Used::default(),
            reuse: Reuse::default(),
        });
    }
    let stored = groups::store(&groups::Context {
        objects,
        entries,
        lookup,
        packs,
        distrust,
        progress,
    })?;
    let mut used = stored.used;
    let mut reuse = stored.reuse;
    let trees = Trees::build(entries, &stored.files, trust_trees.then_some(lookup))?;
    let mut layers = stored.layers;
    layers.extend(trees.store_layers(
        objects,
        entries,
        &stored.files,
        packs,
        &mut used,
        &mut reuse,
    )?);
    objects.sync_packs_dir()?;
    Ok(Built {
        root: trees.root,
        layers,
        inline_trees: BTreeMap::new(),
        stats: trees.stats,
        direct,
        files: stored.files,
        cuts: stored.cuts,
        dir_trees: trees.dirs,
        files_read: stored.files_read,
        used,
        reuse,
    })
}

fn store_direct(
    objects: &Objects,
    entries: &[ScanEntry],
    lookup: &Lookup,
    distrust: &HashSet<usize>,
    files: &mut [Option<(Digest, u64)>],
    progress: &dyn Progress,
) -> Result<(Vec<Descriptor>, u64), Error> {
    let read = std::sync::atomic::AtomicU64::new(0);
    let results: Vec<(usize, Result<(Digest, u64), Error>)> = entries
        .par_iter()
        .enumerate()
        .filter(|(_, e)| matches!(e.kind, ScanKind::File { .. }))
        .map(|(i, e)| {
            let src = e
                .source
                .as_deref()
                .expect("files are scanned, never synthesized");
            // Unchanged since it was last stored: no need to read it again.
            if let Some((d, size)) = lookup.priors[i].known()
                && !distrust.contains(&i)
                && objects.contains(&d)
            {
                progress.advance(size, 1);
                return (i, Ok((d, size)));
            }
            read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let res = File::open(src)
                .map_err(|source| io("opening", src, source))
                .and_then(|mut f| Ok(objects.put_stream(&mut f, src)?));
            if let Ok((_, size)) = &res {
                progress.advance(*size, 1);
            }
            (i, res)
        })
        .collect();
    let mut layers = Vec::new();
    for (i, res) in results {
        let (digest, size) = res?;
        files[i] = Some((digest, size));
        let mut d = Descriptor::new(MEDIA_TYPE_FILE, digest, size);
        d.annotations
            .insert(ANNOTATION_TITLE.to_owned(), entries[i].path.clone());
        layers.push(d);
    }
    Ok((layers, read.into_inner()))
}
