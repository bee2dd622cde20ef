//! Turning scanned entries into stored objects: packs (or loose objects) for files, trees, and
//! the layer descriptors of the snapshot (OCI mapping §3).
//!
//! Files are read, hashed and compressed on all cores in bounded batches; packs are written
//! in member order by one thread, so the result is deterministic. Memory is bounded by the
//! batch size and, for large files, by a few frames: no file is held whole unless it is small.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde_json::value::RawValue;

use crate::digest::Digest;
use crate::fs::AtomicFile;
use crate::object::snapshot::raw_tree;
use crate::object::{EntryKind, Stats, Tree, TreeEntry};
use crate::oci::artifact::{self, Grouper};
use crate::oci::{
    ANNOTATION_TITLE, Descriptor, MEDIA_TYPE_FILE, MEDIA_TYPE_LAYER_TAR_ZSTD, MEDIA_TYPE_TREES,
};
use crate::pack::{self, MemberKind, PackWriter};
use crate::store::objects::{self, Objects};
use crate::worktree::scan::{ScanEntry, ScanKind};
use crate::worktree::statcache::StatCache;

/// Most bytes of small files read into memory per batch.
const BATCH_BYTES: u64 = 32 << 20;
/// Most members per batch.
const BATCH_MEMBERS: usize = 4096;

/// Reports progress while building (the CLI draws it; the library never does).
pub trait Progress: Sync {
    /// Building begins: `files` files of `bytes` bytes in all.
    fn begin(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// `files` more files and `bytes` more bytes were stored.
    fn stored(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
}

/// A progress sink that ignores everything.
pub struct NoProgress;
impl Progress for NoProgress {}

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
    /// Files whose contents were read.
    pub files_read: u64,
}

/// The root tree and counts of `entries`, if the stat cache knows the digest of every file
/// (so nothing needs reading). Nothing is stored.
#[must_use]
pub fn cached_root(entries: &[ScanEntry], cache: &StatCache) -> Option<(Digest, Stats)> {
    let mut files = vec![None; entries.len()];
    for (i, e) in entries.iter().enumerate() {
        if let ScanKind::File { size, .. } = e.kind {
            let digest = cache.get(e.source.as_deref()?, e.stat.as_ref()?)?;
            files[i] = Some((digest, size));
        }
    }
    let (root, _trees, stats) = make_trees(entries, &files).ok()?;
    Some((root, stats))
}

/// Stores every entry and returns the root tree and layers.
///
/// # Errors
/// [`Error`] naming the file that failed.
pub fn build(
    objects: &Objects,
    entries: &[ScanEntry],
    cache: &StatCache,
    progress: &dyn Progress,
) -> Result<Built, Error> {
    let direct = entries.len() <= artifact::DIRECT_MAX_ENTRIES;
    let (count, total) = entries.iter().fold((0, 0), |(n, b), e| match e.kind {
        ScanKind::File { size, .. } => (n + 1, b + size),
        _ => (n, b),
    });
    progress.begin(count, total);
    let mut files: Vec<Option<(Digest, u64)>> = vec![None; entries.len()];
    let (mut layers, files_read) = if direct {
        store_direct(objects, entries, cache, &mut files, progress)?
    } else {
        let layers = store_grouped(objects, entries, &mut files, progress)?;
        let read = files.iter().flatten().count() as u64;
        (layers, read)
    };

    let (root, trees, stats) = make_trees(entries, &files)?;
    let mut inline_trees = BTreeMap::new();
    if direct {
        for (digest, bytes) in &trees {
            objects.put(bytes)?;
            inline_trees.insert(*digest, raw_tree(bytes).map_err(|e| Error::Tree(e.reason))?);
        }
    } else {
        layers.extend(store_trees(objects, &trees)?);
        objects.sync_packs_dir()?;
    }
    Ok(Built {
        root,
        layers,
        inline_trees,
        stats,
        direct,
        files,
        files_read,
    })
}

fn store_direct(
    objects: &Objects,
    entries: &[ScanEntry],
    cache: &StatCache,
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
            if let (ScanKind::File { size, .. }, Some(stat)) = (&e.kind, &e.stat)
                && let Some(d) = cache.get(src, stat)
                && objects.contains(&d)
            {
                progress.stored(1, *size);
                return (i, Ok((d, *size)));
            }
            read.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let res = File::open(src)
                .map_err(|source| io(src, source))
                .and_then(|mut f| Ok(objects.put_stream(&mut f, src)?));
            if let Ok((_, size)) = &res {
                progress.stored(1, *size);
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

type OpenPack = PackWriter<BufWriter<AtomicFile>>;

struct GroupWriter<'a> {
    objects: &'a Objects,
    current: Option<OpenPack>,
    layers: Vec<Descriptor>,
    media_type: &'static str,
}

impl GroupWriter<'_> {
    fn pack(&mut self) -> Result<&mut OpenPack, Error> {
        if self.current.is_none() {
            self.current = Some(self.objects.begin_pack()?);
        }
        Ok(self.current.as_mut().expect("set just above"))
    }

    fn cut(&mut self) -> Result<(), Error> {
        if let Some(w) = self.current.take() {
            let (digest, len, _new) = self.objects.finish_pack(w)?;
            self.layers
                .push(Descriptor::new(self.media_type, digest, len));
        }
        Ok(())
    }
}

fn store_grouped(
    objects: &Objects,
    entries: &[ScanEntry],
    files: &mut [Option<(Digest, u64)>],
    progress: &dyn Progress,
) -> Result<Vec<Descriptor>, Error> {
    let total: u64 = entries
        .iter()
        .map(|e| match e.kind {
            ScanKind::File { size, .. } => artifact::weight(size),
            _ => artifact::weight(0),
        })
        .sum();
    let target = artifact::group_target(total);
    let large = artifact::large_file_threshold(target);
    let mut grouper = Grouper::new(target);
    let mut out = GroupWriter {
        objects,
        current: None,
        layers: Vec::new(),
        media_type: MEDIA_TYPE_LAYER_TAR_ZSTD,
    };

    let is_large = |e: &ScanEntry| matches!(e.kind, ScanKind::File { size, .. } if size >= large);
    // Work in member order: a batch of small members (encoded on the rayon pool), or one
    // large file (streamed here). A producer thread encodes the next batch while this one
    // writes the previous into packs; the channel holds one batch, so at most two are in
    // memory.
    enum Work {
        Batch(usize, Vec<Result<pack::Member, Error>>),
        Large(usize),
    }
    std::thread::scope(|scope| -> Result<(), Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Work>(1);
        scope.spawn(move || {
            let mut i = 0;
            while i < entries.len() {
                if is_large(&entries[i]) {
                    if tx.send(Work::Large(i)).is_err() {
                        return;
                    }
                    i += 1;
                    continue;
                }
                let mut j = i;
                let mut bytes = 0;
                while j < entries.len()
                    && j - i < BATCH_MEMBERS
                    && bytes < BATCH_BYTES
                    && !is_large(&entries[j])
                {
                    if let ScanKind::File { size, .. } = entries[j].kind {
                        bytes += size;
                    }
                    j += 1;
                }
                let encoded: Vec<Result<pack::Member, Error>> = entries[i..j]
                    .par_iter()
                    .map(|e| read_small(e, large))
                    .collect();
                // The receiver stops listening after an error: stop encoding then.
                if tx.send(Work::Batch(i, encoded)).is_err() {
                    return;
                }
                i = j;
            }
        });
        for work in rx {
            match work {
                Work::Large(i) => {
                    out.cut()?;
                    grouper.reset();
                    let (digest, size) = store_large(out.pack()?, &entries[i])?;
                    files[i] = Some((digest, size));
                    progress.stored(1, size);
                    out.cut()?;
                }
                Work::Batch(i, encoded) => {
                    for (k, m) in encoded.into_iter().enumerate() {
                        let m = m?;
                        let (digest, size) = (m.digest(), m.size());
                        if let Some(d) = digest {
                            files[i + k] = Some((d, size));
                            progress.stored(1, size);
                        }
                        let cut = grouper.push(&m.header, digest.as_ref(), artifact::weight(size));
                        out.pack()?
                            .add(m)
                            .map_err(|source| io(objects.packs_dir(), source))?;
                        if cut {
                            out.cut()?;
                        }
                    }
                }
            }
        }
        Ok(())
    })?;
    out.cut()?;
    Ok(out.layers)
}

fn member_kind(e: &ScanEntry, size: u64) -> (MemberKind, Option<&str>) {
    match &e.kind {
        ScanKind::File { executable, .. } => (
            MemberKind::File {
                size,
                executable: *executable,
            },
            None,
        ),
        ScanKind::Dir => (MemberKind::Dir, None),
        ScanKind::Symlink { target } => (MemberKind::Symlink, Some(target.as_str())),
    }
}

/// Reads (if a file) and hashes one small member.
fn read_small(e: &ScanEntry, large: u64) -> Result<pack::Member, Error> {
    let content = match (&e.kind, &e.source) {
        (ScanKind::File { size, .. }, Some(src)) => {
            let mut buf = Vec::with_capacity(usize::try_from(*size).unwrap_or(0));
            File::open(src)
                .and_then(|f| f.take(large).read_to_end(&mut buf))
                .map_err(|source| io(src, source))?;
            if buf.len() as u64 >= large {
                return Err(Error::Changed { path: src.clone() });
            }
            Some(buf)
        }
        _ => None,
    };
    let size = content.as_ref().map_or(0, |c| c.len() as u64);
    let (kind, link) = member_kind(e, size);
    Ok(pack::Member::new(&e.path, kind, link, content))
}

/// Streams a large file into `pack` as its only member.
fn store_large(pack: &mut OpenPack, e: &ScanEntry) -> Result<(Digest, u64), Error> {
    let src = e
        .source
        .as_deref()
        .expect("files are scanned, never synthesized");
    let ScanKind::File { size, executable } = e.kind else {
        unreachable!("only files are large");
    };
    let header = pack::tar::header(&e.path, MemberKind::File { size, executable }, None);
    let mut file = File::open(src).map_err(|source| io(src, source))?;
    let mut result = None;
    let mut failure = None;
    pack.add_streamed(&header, |out| {
        let mut limited = (&mut file).take(size.saturating_add(1));
        match objects::compress_stream(&mut limited, out, true) {
            Ok((digest, n)) => {
                result = Some((digest, n));
                Ok((digest, n))
            }
            Err(objects::StreamError::Read(e)) => {
                failure = Some(io(src, e));
                Err(std::io::Error::other("read failed"))
            }
            Err(objects::StreamError::Write(e)) => Err(e),
        }
    })
    .map_err(|source| failure.take().unwrap_or_else(|| io(src, source)))?;
    let (digest, n) = result.expect("set when add_streamed succeeds");
    if n != size {
        return Err(Error::Changed {
            path: src.to_owned(),
        });
    }
    Ok((digest, n))
}

/// Builds every tree bottom-up. Returns the root digest, the distinct trees in pre-order
/// (root first) and the counts.
#[allow(clippy::type_complexity)]
fn make_trees(
    entries: &[ScanEntry],
    files: &[Option<(Digest, u64)>],
) -> Result<(Digest, Vec<(Digest, Vec<u8>)>, Stats), Error> {
    let mut children: Vec<Vec<TreeEntry>> = vec![Vec::new(); entries.len()];
    let mut root_children = Vec::new();
    let mut dir_trees: Vec<Option<(Digest, Vec<u8>)>> = vec![None; entries.len()];
    let mut stats = Stats::default();
    for idx in (0..entries.len()).rev() {
        let e = &entries[idx];
        let kind = match &e.kind {
            ScanKind::File { executable, .. } => {
                let (digest, size) =
                    files[idx].expect("every file was stored before trees are built");
                stats.files += 1;
                stats.bytes += size;
                EntryKind::File {
                    size,
                    digest,
                    executable: *executable,
                }
            }
            ScanKind::Symlink { target } => {
                stats.symlinks += 1;
                EntryKind::Symlink {
                    target: target.clone(),
                }
            }
            ScanKind::Dir => {
                stats.dirs += 1;
                let tree = Tree::new(std::mem::take(&mut children[idx]))
                    .map_err(|err| Error::Tree(format!("{}: {err}", e.path)))?;
                let bytes = tree.encode();
                let digest = Digest::of(&bytes);
                dir_trees[idx] = Some((digest, bytes));
                EntryKind::Dir { digest }
            }
        };
        let entry = TreeEntry {
            name: e.name.clone(),
            kind,
        };
        match e.parent {
            Some(p) => children[p].push(entry),
            None => root_children.push(entry),
        }
    }
    let root = Tree::new(root_children).map_err(|err| Error::Tree(err.to_string()))?;
    let root_bytes = root.encode();
    let root_digest = Digest::of(&root_bytes);
    let mut seen = HashSet::new();
    let mut trees = Vec::new();
    for (d, b) in std::iter::once((root_digest, root_bytes)).chain(dir_trees.into_iter().flatten())
    {
        if seen.insert(d) {
            trees.push((d, b));
        }
    }
    Ok((root_digest, trees, stats))
}

fn store_trees(objects: &Objects, trees: &[(Digest, Vec<u8>)]) -> Result<Vec<Descriptor>, Error> {
    let total: u64 = trees
        .iter()
        .map(|(_, b)| artifact::weight(b.len() as u64))
        .sum();
    let mut grouper = Grouper::new(artifact::tree_target(total));
    let mut out = GroupWriter {
        objects,
        current: None,
        layers: Vec::new(),
        media_type: MEDIA_TYPE_TREES,
    };
    for batch in trees.chunks(BATCH_MEMBERS) {
        for (d, bytes) in batch {
            let header = pack::tar::header(
                &format!("sha256/{}", d.hex()),
                MemberKind::File {
                    size: bytes.len() as u64,
                    executable: false,
                },
                None,
            );
            let m = pack::Member {
                cut: pack::cut_value(&header, Some(d)),
                header,
                content: Some((bytes.clone(), *d)),
            };
            let cut = grouper.push(&m.header, Some(d), artifact::weight(m.size()));
            out.pack()?
                .add(m)
                .map_err(|source| io(objects.packs_dir(), source))?;
            if cut {
                out.cut()?;
            }
        }
    }
    out.cut()?;
    Ok(out.layers)
}

fn io(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Build errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file, or writing the store, failed.
    #[error("{}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file changed size while it was being committed.
    #[error("{} changed while it was being committed", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// A tree could not be built.
    #[error("cannot build tree: {0}")]
    Tree(String),
    /// The store failed.
    #[error(transparent)]
    Objects(#[from] objects::Error),
}
