//! The stat cache: what every scanned directory held when it was last committed, so that a
//! commit reads, hashes and encodes only what changed (git's index and cache-tree play this
//! role).
//!
//! For each directory a commit scans, `.store/cache/stat.v4` keeps its entries in name order:
//! every file's stat (size, mtime, ctime, inode, device) and digest, every symlink's target,
//! every entry's cut value (the hash that decides where blocks and groups end, which depends
//! on the entry's recorded path), and the directory's tree (digest, size and cut value).
//!
//! * A file whose stat is exactly as recorded, and whose record is not racy, has the recorded
//!   digest without being read. (As with git's "racy clean" entries, a file whose last change
//!   is not in a timestamp tick that ended before the commit began ([`RacyRule`]) is recorded
//!   as *racy*: it could change again within the same tick after it was read, and look
//!   unchanged. A racy record's digest is only a hint, and the file is read again. Records are
//!   also checked against the cache file's own mtime when loaded.)
//! * A directory whose entries are all recorded as they are now (same names, kinds, stats and
//!   targets, none racy), and whose subdirectories are all such directories, has the recorded
//!   tree without encoding it ([`Lookup::trees`]).
//!
//! The cache is an optimisation, never the truth: it may be deleted at any time, it is
//! replaced atomically, and a damaged, foreign or older one is ignored whole (every segment
//! has its SHA-256 in a table that ends with its own). What it says can only spare work:
//! every digest it gives is one the file had when it was read, and the packs that hold the
//! results are checked on their own (`worktree::commit::packcache`).
//!
//! Format (store format §9.1): the line `snap-stat-cache 4`, then *segments*, each a zstd
//! frame of whole sections (about `SEGMENT_BYTES` each), then a table: per segment its frame's
//! length, its length and its SHA-256 (`u64`, `u64`, 32 bytes), then `u32` the number of
//! segments, then the SHA-256 of the table (from its first row through the count). A save
//! copies the frames of segments whose sections are byte for byte as they were and compresses
//! only the others: one changed file rewrites one segment, not the whole cache (git's split
//! index plays this role). Integers are little-endian. Every name, path and target
//! is its length and then exactly those bytes, so whatever bytes a file name holds, it cannot
//! end its record or stand for another one.
//!
//! ```text
//! section: u32 path length, path        the directory that was read (absolute)
//!          u8 0 | 1, [u32 length, recorded path]   where its entries were recorded
//!          u8 flags: 1 = every entry of a scanned directory, 2 = a tree follows
//!          [32 digest, u64 size, u64 cut value]     the directory's tree
//!          u32 age: rewrites of the file since this directory was last scanned
//!          u32 count, then count entries, sorted by name bytes
//! entry:   u8 kind: f (file), x (executable file), d (directory), l (symlink)
//!          u8 flags: 1 = racy
//!          u16 name length, name
//!          u64 cut value
//!          f, x: u64 size, i128 mtime ns, i128 ctime ns, u64 inode, u64 device, 32 digest
//!          l: u32 target length, target
//! ```
//!
//! (Version 1 wrote paths raw, one per line: a directory named `x\n<record>` could make a
//! later commit record another file as chosen bytes. Version 2 length-prefixed every path and
//! kept one record per file. Version 3 was one zstd stream ending with one SHA-256, rewritten
//! whole by every commit. Their files are never read, and are removed when a new one is
//! written.)

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::worktree::commit::racy::{RacyRule, last_change};
use crate::worktree::commit::scan::{FileStat, ScanEntry, ScanKind};

mod decode;
mod save;

use decode::{Reader, read_section, table};

const MAGIC: &[u8] = b"snap-stat-cache 4\n";
/// The most bytes a cache may decompress to (about 8 million files' records): a damaged
/// file is then ignored, not a huge allocation.
const MAX_CACHE_BYTES: u64 = 1 << 30;
/// Cache files of earlier versions, removed when the current one is written.
const OLD_FILES: [&str; 4] = ["stat.v1", "trees.v1", "stat.v2", "stat.v3"];
/// Sections are written in segments of about this many bytes (before compression): a commit
/// rewrites the segments whose sections changed and copies the others as they are.
const SEGMENT_BYTES: usize = if cfg!(test) { 4096 } else { 1 << 20 };
/// A segment's row in the table: compressed length, length, SHA-256.
const SEGMENT_ROW: usize = 8 + 8 + 32;
/// A directory not scanned by this many rewrites of the cache in a row is forgotten.
const MAX_AGE: u32 = 16;

const SECTION_COMPLETE: u8 = 1;
const SECTION_TREE: u8 = 2;
const ENTRY_RACY: u8 = 1;

/// The tree a directory had, and its cut value as a member of a tree layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeRecord {
    /// The tree's digest.
    pub digest: Digest,
    /// The tree's size in bytes.
    pub size: u64,
    /// Its cut value as the tree layer member `sha256/<hex>`.
    pub cut: u64,
}

/// The kind byte of a scanned entry, as recorded.
#[must_use]
pub fn kind_byte(kind: &ScanKind) -> u8 {
    match kind {
        ScanKind::File {
            executable: false, ..
        } => b'f',
        ScanKind::File {
            executable: true, ..
        } => b'x',
        ScanKind::Dir => b'd',
        ScanKind::Symlink { .. } => b'l',
    }
}

/// What the cache recorded for one scanned entry.
#[derive(Clone, Copy, Debug)]
pub struct Prior {
    digest: Digest,
    size: u64,
    cut: u64,
    kind: u8,
    flags: u8,
}

const PRIOR_TRUSTED: u8 = 1;
const PRIOR_CUT: u8 = 2;

impl Default for Prior {
    fn default() -> Self {
        Prior {
            digest: Digest::from_bytes([0; 32]),
            size: 0,
            cut: 0,
            kind: 0,
            flags: 0,
        }
    }
}

impl Prior {
    /// Whether there is a record for the entry (of the same kind).
    #[must_use]
    pub fn is_recorded(&self) -> bool {
        self.kind != 0
    }

    /// A file's digest and size, known without reading it: its stat is as recorded and the
    /// record is not racy.
    #[must_use]
    pub fn known(&self) -> Option<(Digest, u64)> {
        (self.flags & PRIOR_TRUSTED != 0).then_some((self.digest, self.size))
    }

    /// The digest a file had when last committed (trusted or not): a hint, never the truth.
    #[must_use]
    pub fn hint(&self) -> Option<Digest> {
        matches!(self.kind, b'f' | b'x').then_some(self.digest)
    }

    /// The recorded cut value, if the member is as recorded (same kind, size and contents,
    /// recorded under the same path).
    #[must_use]
    pub fn cut_for(&self, kind: u8, size: u64, digest: Option<&Digest>) -> Option<u64> {
        if self.flags & PRIOR_CUT == 0 || self.kind != kind {
            return None;
        }
        match digest {
            Some(d) if size != self.size || *d != self.digest => None,
            _ => Some(self.cut),
        }
    }
}

/// What the cache knows about a scan ([`StatCache::lookup`]).
#[derive(Debug, Default)]
pub struct Lookup {
    /// One per scanned entry.
    pub priors: Vec<Prior>,
    /// The recorded tree of each scanned directory that has one (by entry index), and
    /// whether it is still the directory's tree: every entry below it is as recorded.
    pub trees: HashMap<usize, (TreeRecord, bool)>,
}

impl Lookup {
    /// The recorded tree of directory `idx` if it is still its tree.
    #[must_use]
    pub fn clean_tree(&self, idx: usize) -> Option<TreeRecord> {
        self.trees
            .get(&idx)
            .and_then(|(t, clean)| clean.then_some(*t))
    }

    /// The tree directory `idx` had when last committed, clean or not.
    #[must_use]
    pub fn old_tree(&self, idx: usize) -> Option<TreeRecord> {
        self.trees.get(&idx).map(|(t, _)| *t)
    }

    /// Whether every file's digest is known without reading.
    #[must_use]
    pub fn knows_every_file(&self, entries: &[ScanEntry]) -> bool {
        entries
            .iter()
            .zip(&self.priors)
            .all(|(e, p)| !matches!(e.kind, ScanKind::File { .. }) || p.known().is_some())
    }
}

/// One section, located in the body.
#[derive(Clone, Debug)]
struct Section {
    /// The whole section's bytes.
    raw: std::ops::Range<usize>,
    recorded: Option<std::ops::Range<usize>>,
    complete: bool,
    tree: Option<TreeRecord>,
    age: u32,
    /// The entries' bytes, and how many there are.
    entries: std::ops::Range<usize>,
    count: u32,
}

/// One entry, decoded.
#[derive(Clone, Copy, Debug)]
struct Record<'a> {
    kind: u8,
    racy: bool,
    name: &'a [u8],
    cut: u64,
    stat: Option<(FileStat, Digest)>,
    target: Option<&'a [u8]>,
}

/// One segment of the file: a zstd frame of whole sections.
#[derive(Debug)]
struct Segment {
    /// Where its frame is in the file.
    frame: (u64, u64),
    /// Its sections' bytes in the body.
    raw: std::ops::Range<usize>,
    /// Their SHA-256, as the table gives it (checked when loaded).
    sha: Digest,
    /// Its first section's directory, and how many sections it holds.
    first: Box<[u8]>,
    sections: usize,
}

/// The stat cache of a store, as loaded.
#[derive(Debug, Default)]
pub struct StatCache {
    body: Vec<u8>,
    /// Keyed by directory path; the first section for a path wins.
    sections: HashMap<Box<[u8]>, Section>,
    /// The order sections were in (to carry unvisited ones over in order).
    order: Vec<Box<[u8]>>,
    /// The segments of the file, in order, and the file (open, to copy the frames of
    /// unchanged segments from when the cache is saved).
    segments: Vec<Segment>,
    file: Option<File>,
    /// The cache file's own mtime when loaded; trusted records must be older than this.
    written_ns: i128,
    /// When this commit began, and the timestamp granularity of what it scanned: which
    /// records it writes are racy.
    racy: RacyRule,
}

impl StatCache {
    /// The cache file of a store directory.
    #[must_use]
    pub fn path(store_dir: &Path) -> PathBuf {
        crate::store::cache_file(store_dir, "stat.v4")
    }

    /// Loads the cache, or an empty one if it is missing, unreadable or malformed in any
    /// byte. `racy` is this commit's racy rule ([`RacyRule::for_scan`]), for the records it
    /// will write.
    #[must_use]
    pub fn load(store_dir: &Path, racy: RacyRule) -> StatCache {
        let mut cache = Self::try_load(&Self::path(store_dir)).unwrap_or_default();
        cache.racy = racy;
        cache
    }

    fn try_load(path: &Path) -> Option<StatCache> {
        let mut file = File::open(path).ok()?;
        let written_ns = FileStat::of(&file.metadata().ok()?).mtime_ns;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).ok()?;
        let rows = table(&bytes)?;
        // Frames, decompressed and checked on both cores.
        let raws: Vec<Vec<u8>> = rows
            .par_iter()
            .map(|&(at, len, raw_len, sha)| {
                let frame = bytes.get(usize::try_from(at).ok()?..)?;
                let frame = frame.get(..usize::try_from(len).ok()?)?;
                let raw = zstd::bulk::decompress(frame, raw_len).ok()?;
                (raw.len() == raw_len && Digest::of(&raw) == sha).then_some(raw)
            })
            .collect::<Option<_>>()?;
        drop(bytes);
        let mut body = Vec::with_capacity(raws.iter().map(Vec::len).sum());
        let mut cache = StatCache {
            written_ns,
            ..StatCache::default()
        };
        for (raw, &(at, len, _, sha)) in raws.into_iter().zip(&rows) {
            let start = body.len();
            body.extend_from_slice(&raw);
            cache.segments.push(Segment {
                frame: (at, len),
                raw: start..body.len(),
                sha,
                first: Box::default(),
                sections: 0,
            });
        }
        for seg in &mut cache.segments {
            // Sections never straddle segments.
            let mut r = Reader::new(&body[..seg.raw.end], seg.raw.start);
            while !r.is_done() {
                let (key, section) = read_section(&mut r)?;
                let key: Box<[u8]> = body[key].into();
                if seg.sections == 0 {
                    seg.first.clone_from(&key);
                }
                seg.sections += 1;
                if !cache.sections.contains_key(&key) {
                    cache.order.push(key.clone());
                    cache.sections.insert(key, section);
                }
            }
        }
        cache.body = body;
        cache.file = Some(file);
        Some(cache)
    }

    /// Whether the cache holds nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sections.is_empty()
    }

    fn section(&self, dir: &[u8]) -> Option<&Section> {
        self.sections.get(dir)
    }

    fn prior_of(&self, rec: &Record<'_>, e: &ScanEntry, same_path: bool) -> (Prior, bool) {
        let kind = kind_byte(&e.kind);
        if rec.kind != kind {
            return (Prior::default(), false);
        }
        let mut p = Prior {
            kind,
            cut: rec.cut,
            ..Prior::default()
        };
        let exact = match (&e.kind, rec.stat, e.stat) {
            (ScanKind::File { .. }, Some((stat, digest)), Some(now)) => {
                p.digest = digest;
                p.size = stat.size;
                let trusted = !rec.racy && stat == now && last_change(&stat) < self.written_ns;
                if trusted {
                    p.flags |= PRIOR_TRUSTED;
                }
                trusted
            }
            (ScanKind::Symlink { target }, _, _) => rec.target == Some(target.as_bytes()),
            (ScanKind::Dir, _, _) => true,
            _ => false,
        };
        // A file's cut value is checked against its contents when used (`cut_for`); a
        // symlink's holds only for the same target.
        if same_path && (exact || matches!(e.kind, ScanKind::File { .. })) {
            p.flags |= PRIOR_CUT;
        }
        (p, exact)
    }

    /// What the cache knows about every entry of a scan: digests of unchanged files, cut
    /// values of members recorded under the same path, and the trees of unchanged
    /// directories. Reads nothing but the cache.
    #[must_use]
    pub fn lookup(&self, entries: &[ScanEntry]) -> Lookup {
        let mut out = Lookup {
            priors: vec![Prior::default(); entries.len()],
            trees: HashMap::new(),
        };
        if self.sections.is_empty() {
            return out;
        }
        let mut stack: Vec<Open<'_>> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            while let Some(top) = stack.last()
                && Some(top.idx) != e.parent
            {
                let open = stack.pop().expect("just looked at it");
                close(&open, &mut out, stack.last_mut());
            }
            if let Some(top) = stack.last_mut() {
                // A child of a scanned directory: merge by name.
                let name = e.name.as_str().as_bytes();
                let mut found = None;
                loop {
                    let next = match top.pending.take() {
                        Some(r) => Some(r),
                        None if top.left > 0 => {
                            top.left -= 1;
                            top.reader.record()
                        }
                        None => None,
                    };
                    let Some(rec) = next else { break };
                    match rec.name.cmp(name) {
                        std::cmp::Ordering::Less => top.clean = false, // removed since
                        std::cmp::Ordering::Equal => {
                            found = Some(rec);
                            break;
                        }
                        std::cmp::Ordering::Greater => {
                            top.pending = Some(rec);
                            break;
                        }
                    }
                }
                match found {
                    Some(rec) => {
                        let (p, exact) = self.prior_of(&rec, e, top.same_path);
                        out.priors[i] = p;
                        top.clean &= exact;
                    }
                    None => top.clean = false, // added since
                }
            } else if let Some(src) = &e.source {
                // Given on the command line, or below a synthesized directory: look it up
                // in the section of the directory it is in.
                let found = src.parent().zip(src.file_name()).and_then(|(dir, name)| {
                    let s = self.section(dir.as_os_str().as_bytes())?;
                    let mut r = Reader::new(&self.body, s.entries.start);
                    while r.at < s.entries.end {
                        let rec = r.record()?;
                        if rec.name == name.as_bytes() {
                            return Some(rec);
                        }
                    }
                    None
                });
                if let Some(rec) = found {
                    out.priors[i] = self.prior_of(&rec, e, false).0;
                }
            }
            // Scanned directories are merged with their sections (synthesized ones have none:
            // their children are looked up as given on the command line).
            if let (ScanKind::Dir, Some(src)) = (&e.kind, &e.source) {
                let section = self.section(src.as_os_str().as_bytes());
                let reader = Reader::new(&self.body, section.map_or(0, |s| s.entries.start));
                let left = section.map_or(0, |s| s.count);
                let same_path = section
                    .and_then(|s| s.recorded.clone())
                    .is_some_and(|r| &self.body[r] == e.path.as_bytes());
                stack.push(Open {
                    idx: i,
                    section,
                    reader,
                    left,
                    pending: None,
                    same_path,
                    clean: section.is_some(),
                });
            }
        }
        while let Some(open) = stack.pop() {
            close(&open, &mut out, stack.last_mut());
        }
        out
    }
}

/// A scanned directory being merged with its section ([`StatCache::lookup`]).
struct Open<'a> {
    idx: usize,
    section: Option<&'a Section>,
    reader: Reader<'a>,
    left: u32,
    pending: Option<Record<'a>>,
    same_path: bool,
    clean: bool,
}

/// Ends the merge of a directory: it is clean if every entry was as recorded and none is
/// missing, its section lists the whole directory with a tree, and its subdirectories are
/// clean. An unclean directory makes its parent unclean.
fn close(open: &Open<'_>, out: &mut Lookup, parent: Option<&mut Open<'_>>) {
    let mut clean = open.clean && open.left == 0 && open.pending.is_none();
    match open.section {
        Some(s) => {
            clean &= s.complete;
            match s.tree {
                Some(t) => {
                    out.trees.insert(open.idx, (t, clean));
                }
                None => clean = false,
            }
        }
        None => clean = false,
    }
    if !clean && let Some(p) = parent {
        p.clean = false;
    }
}

/// Best effort: a cache of an earlier version left behind only costs space.
pub(crate) fn remove_old_files(cache_dir: &Path) {
    for name in OLD_FILES {
        let _ = std::fs::remove_file(cache_dir.join(name));
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // fixtures; small files
mod tests;
