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

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::fs::AtomicFile;
use crate::worktree::commit::racy::{RacyRule, last_change};
use crate::worktree::commit::scan::{FileStat, ScanEntry, ScanKind};

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
        store_dir.join("cache").join("stat.v4")
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

    /// Writes the cache for this scan: a section per scanned directory, one per directory
    /// holding entries given on the command line, and the sections of directories not
    /// scanned this time (aged; forgotten after `MAX_AGE` rewrites). `files` gives each
    /// file's digest and size, `cuts` each member's cut value, `trees` each scanned
    /// directory's tree. Skipped when nothing changed; replaced atomically otherwise.
    ///
    /// # Errors
    /// The I/O error, for the caller to ignore (only speed depends on the cache).
    pub fn save(
        &self,
        store_dir: &Path,
        entries: &[ScanEntry],
        files: &[Option<(Digest, u64)>],
        cuts: &[u64],
        trees: &HashMap<usize, TreeRecord>,
    ) -> std::io::Result<bool> {
        let mut body = Vec::with_capacity(entries.len() * 96 + 4096);
        // Where each section is in `body`, in order.
        let mut sections: Vec<std::ops::Range<usize>> = Vec::new();
        let mut written: HashSet<&[u8]> = HashSet::new();
        // Children of each scanned directory, in scan (name) order.
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
        // Entries whose directory was not scanned as such: by the directory they are in.
        let mut loose: Vec<(&Path, usize)> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            match e.parent {
                Some(p) if entries[p].source.is_some() => children.entry(p).or_default().push(i),
                _ => {
                    if let Some(dir) = e.source.as_deref().and_then(Path::parent) {
                        loose.push((dir, i));
                    }
                }
            }
        }
        let record = |body: &mut Vec<u8>, i: usize| {
            let e = &entries[i];
            let name = e.name.as_str().as_bytes();
            body.push(kind_byte(&e.kind));
            // Trusted later only if it was safely old when read, and what was read is as long
            // as the stat said.
            let racy = match (&e.kind, e.stat, files[i]) {
                (ScanKind::File { .. }, Some(s), Some((_, size))) => {
                    self.racy.is_racy(&s) || size != s.size
                }
                _ => false,
            };
            body.push(if racy { ENTRY_RACY } else { 0 });
            let name_len = u16::try_from(name.len()).expect("entry names fit NAME_MAX");
            body.extend_from_slice(&name_len.to_le_bytes());
            body.extend_from_slice(name);
            body.extend_from_slice(&cuts[i].to_le_bytes());
            match &e.kind {
                ScanKind::File { .. } => {
                    let stat = e.stat.expect("files are scanned with their stat");
                    let (digest, _) = files[i].expect("every file was stored");
                    body.extend_from_slice(&stat.size.to_le_bytes());
                    body.extend_from_slice(&stat.mtime_ns.to_le_bytes());
                    body.extend_from_slice(&stat.ctime_ns.to_le_bytes());
                    body.extend_from_slice(&stat.ino.to_le_bytes());
                    body.extend_from_slice(&stat.dev.to_le_bytes());
                    body.extend_from_slice(digest.as_bytes());
                }
                ScanKind::Symlink { target } => {
                    put_bytes_u32(body, target.as_bytes());
                }
                ScanKind::Dir => {}
            }
        };
        for (i, e) in entries.iter().enumerate() {
            let (ScanKind::Dir, Some(src)) = (&e.kind, &e.source) else {
                continue;
            };
            let key = src.as_os_str().as_bytes();
            if !written.insert(key) {
                continue;
            }
            let start = body.len();
            put_bytes_u32(&mut body, key);
            body.push(1);
            put_bytes_u32(&mut body, e.path.as_bytes());
            let tree = trees.get(&i);
            body.push(SECTION_COMPLETE | if tree.is_some() { SECTION_TREE } else { 0 });
            if let Some(t) = tree {
                body.extend_from_slice(t.digest.as_bytes());
                body.extend_from_slice(&t.size.to_le_bytes());
                body.extend_from_slice(&t.cut.to_le_bytes());
            }
            body.extend_from_slice(&0u32.to_le_bytes());
            let kids = children.remove(&i).unwrap_or_default();
            body.extend_from_slice(&count_u32(kids.len()).to_le_bytes());
            for k in kids {
                record(&mut body, k);
            }
            sections.push(start..body.len());
        }
        loose.sort_by(|a, b| {
            (
                a.0.as_os_str().as_bytes(),
                entries[a.1].name.as_str().as_bytes(),
            )
                .cmp(&(
                    b.0.as_os_str().as_bytes(),
                    entries[b.1].name.as_str().as_bytes(),
                ))
        });
        loose.dedup_by(|b, a| {
            a.0 == b.0 && entries[a.1].name.as_str() == entries[b.1].name.as_str()
        });
        for run in loose.chunk_by(|a, b| a.0 == b.0) {
            let key = run[0].0.as_os_str().as_bytes();
            if !written.insert(key) {
                continue;
            }
            let start = body.len();
            put_bytes_u32(&mut body, key);
            body.push(0);
            body.push(0);
            body.extend_from_slice(&0u32.to_le_bytes());
            body.extend_from_slice(&count_u32(run.len()).to_le_bytes());
            for (_, i) in run {
                record(&mut body, *i);
            }
            sections.push(start..body.len());
        }
        // Directories not scanned this time (another commit's paths) are kept for a while.
        for key in &self.order {
            if written.contains(&**key) {
                continue;
            }
            let s = &self.sections[key];
            if s.age + 1 >= MAX_AGE {
                continue;
            }
            let raw = &self.body[s.raw.clone()];
            let age_at = s.entries.start - s.raw.start - 8;
            let start = body.len();
            body.extend_from_slice(&raw[..age_at]);
            body.extend_from_slice(&(s.age + 1).to_le_bytes());
            body.extend_from_slice(&raw[age_at + 4..]);
            sections.push(start..body.len());
        }
        let pieces = self.plan_segments(&body, &sections);
        if pieces.len() == self.segments.len()
            && pieces
                .iter()
                .enumerate()
                .all(|(n, p)| matches!(p, Piece::Old(o) if *o == n))
        {
            return Ok(false); // nothing changed
        }
        // New segments compressed on both cores; unchanged ones copied from the old file.
        let fresh: Vec<std::io::Result<(Vec<u8>, Digest)>> = pieces
            .par_iter()
            .map(|p| match p {
                Piece::New(range) => {
                    let raw = &body[range.clone()];
                    Ok((zstd::bulk::compress(raw, 1)?, Digest::of(raw)))
                }
                Piece::Old(_) => Ok((Vec::new(), Digest::EMPTY)),
            })
            .collect();

        let path = Self::path(store_dir);
        let dir = path.parent().unwrap_or(store_dir).to_owned();
        crate::fs::create_dir_all(&dir)?;
        let mut tmp = AtomicFile::new_in(&dir)?;
        let mut rows = Vec::with_capacity(pieces.len() * SEGMENT_ROW + 4);
        {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.file());
            out.write_all(MAGIC)?;
            for (p, f) in pieces.iter().zip(fresh) {
                let (frame, raw_len, sha) = match p {
                    Piece::New(range) => {
                        let (frame, sha) = f?;
                        (frame, range.len(), sha)
                    }
                    Piece::Old(o) => {
                        let seg = &self.segments[*o];
                        let old = self
                            .file
                            .as_ref()
                            .ok_or_else(|| std::io::Error::other("no file"))?;
                        let mut frame =
                            vec![0; usize::try_from(seg.frame.1).map_err(std::io::Error::other)?];
                        std::os::unix::fs::FileExt::read_exact_at(old, &mut frame, seg.frame.0)?;
                        (frame, seg.raw.len(), seg.sha)
                    }
                };
                out.write_all(&frame)?;
                rows.extend_from_slice(&(frame.len() as u64).to_le_bytes());
                rows.extend_from_slice(&(raw_len as u64).to_le_bytes());
                rows.extend_from_slice(sha.as_bytes());
            }
            rows.extend_from_slice(&count_u32(pieces.len()).to_le_bytes());
            out.write_all(&rows)?;
            out.write_all(Digest::of(&rows).as_bytes())?;
            out.flush()?;
        }
        tmp.persist_replace(&path, None)?;
        remove_old_files(&dir);
        Ok(true)
    }
}

/// A segment of a cache file being written.
enum Piece {
    /// This cache's segment, unchanged: its frame is copied.
    Old(usize),
    /// New sections (a range of the new body), compressed into a frame of their own.
    New(std::ops::Range<usize>),
}

impl StatCache {
    /// Cuts the new body's `sections` into segments: a run of sections byte for byte those of
    /// one of this cache's segments is that segment; the others are new segments of about
    /// [`SEGMENT_BYTES`] each.
    fn plan_segments(&self, body: &[u8], sections: &[std::ops::Range<usize>]) -> Vec<Piece> {
        let starts: HashMap<&[u8], usize> = self
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sections > 0)
            .map(|(n, s)| (&*s.first, n))
            .collect();
        let key = |r: &std::ops::Range<usize>| {
            let mut rd = Reader::new(&body[..r.end], r.start);
            rd.bytes_u32().map(|(a, b)| &body[a..b])
        };
        let mut out = Vec::new();
        let mut fresh: Option<usize> = None;
        let mut i = 0;
        while i < sections.len() {
            let old = key(&sections[i])
                .and_then(|k| starts.get(k))
                .and_then(|&n| {
                    let seg = &self.segments[n];
                    let last = sections.get(i + seg.sections - 1)?;
                    (body[sections[i].start..last.end] == self.body[seg.raw.clone()]).then_some(n)
                });
            if let Some(n) = old {
                if let Some(f) = fresh.take() {
                    out.push(Piece::New(f..sections[i].start));
                }
                out.push(Piece::Old(n));
                i += self.segments[n].sections;
                continue;
            }
            let f = *fresh.get_or_insert(sections[i].start);
            if sections[i].end - f >= SEGMENT_BYTES {
                out.push(Piece::New(f..sections[i].end));
                fresh = None;
            }
            i += 1;
        }
        if let Some(f) = fresh {
            out.push(Piece::New(f..body.len()));
        }
        out
    }
}

/// Reads one section at `r`: its directory (as a range of the body) and where it is.
fn read_section(r: &mut Reader<'_>) -> Option<(std::ops::Range<usize>, Section)> {
    let start = r.at;
    let path = r.bytes_u32()?;
    let recorded = match r.u8()? {
        0 => None,
        1 => Some(r.bytes_u32()?),
        _ => return None,
    };
    let flags = r.u8()?;
    let tree = if flags & SECTION_TREE != 0 {
        Some(TreeRecord {
            digest: r.digest()?,
            size: r.u64()?,
            cut: r.u64()?,
        })
    } else {
        None
    };
    let age = r.u32()?;
    let count = r.u32()?;
    let entries_start = r.at;
    let mut last: Option<&[u8]> = None;
    for _ in 0..count {
        let rec = r.record()?;
        // Sorted and unique, as written: the merge with a scan relies on it.
        if last.is_some_and(|l| l >= rec.name) {
            return None;
        }
        last = Some(rec.name);
    }
    let section = Section {
        raw: start..r.at,
        recorded: recorded.map(|(s, e)| s..e),
        complete: flags & SECTION_COMPLETE != 0,
        tree,
        age,
        entries: entries_start..r.at,
        count,
    };
    Some((path.0..path.1, section))
}

/// The segment table of a cache file: each frame's offset and length in the file, its
/// decompressed length and SHA-256. `None` unless the header, the table's checksum, the frames'
/// extent and the total size are all as they must be.
fn table(bytes: &[u8]) -> Option<Vec<(u64, u64, usize, Digest)>> {
    if !bytes.starts_with(MAGIC) {
        return None;
    }
    let sum_at = bytes.len().checked_sub(32)?;
    let count_at = sum_at.checked_sub(4)?;
    let count =
        usize::try_from(u32::from_le_bytes(bytes[count_at..sum_at].try_into().ok()?)).ok()?;
    let table_at = count_at.checked_sub(count.checked_mul(SEGMENT_ROW)?)?;
    if table_at < MAGIC.len()
        || Digest::of(&bytes[table_at..sum_at]).as_bytes()[..] != bytes[sum_at..]
    {
        return None;
    }
    let mut r = Reader::new(&bytes[..count_at], table_at);
    let mut at = MAGIC.len() as u64;
    let mut total = 0u64;
    let mut rows = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u64()?;
        let raw_len = r.u64()?;
        let sha = r.digest()?;
        total = total.checked_add(raw_len)?;
        rows.push((at, len, usize::try_from(raw_len).ok()?, sha));
        at = at.checked_add(len)?;
    }
    (at == table_at as u64 && total <= MAX_CACHE_BYTES).then_some(rows)
}

fn count_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a directory holds fewer than 2^32 entries")
}

fn put_bytes_u32(body: &mut Vec<u8>, bytes: &[u8]) {
    body.extend_from_slice(&count_u32(bytes.len()).to_le_bytes());
    body.extend_from_slice(bytes);
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

/// Bounds-checked reading of the body.
#[derive(Clone)]
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], at: usize) -> Self {
        Reader { bytes, at }
    }

    fn is_done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }

    fn digest(&mut self) -> Option<Digest> {
        Some(Digest::from_bytes(self.take(32)?.try_into().ok()?))
    }

    /// A length-prefixed byte string, as its range in the body.
    fn bytes_u32(&mut self) -> Option<(usize, usize)> {
        let n = usize::try_from(self.u32()?).ok()?;
        let start = self.at;
        self.take(n)?;
        Some((start, self.at))
    }

    fn record(&mut self) -> Option<Record<'a>> {
        let kind = self.u8()?;
        let flags = self.u8()?;
        let n = usize::from(self.u16()?);
        let name = self.take(n)?;
        if name.is_empty() {
            return None;
        }
        let cut = self.u64()?;
        let mut rec = Record {
            kind,
            racy: flags & ENTRY_RACY != 0,
            name,
            cut,
            stat: None,
            target: None,
        };
        match kind {
            b'f' | b'x' => {
                let stat = FileStat {
                    size: self.u64()?,
                    mtime_ns: self.i128()?,
                    ctime_ns: self.i128()?,
                    ino: self.u64()?,
                    dev: self.u64()?,
                };
                rec.stat = Some((stat, self.digest()?));
            }
            b'l' => {
                let (s, e) = self.bytes_u32()?;
                rec.target = Some(&self.bytes[s..e]);
            }
            b'd' => {}
            _ => return None,
        }
        Some(rec)
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
mod tests {
    use super::*;
    use crate::worktree::commit::racy::UNKNOWN_GRANULARITY_NS;
    use crate::worktree::commit::scan::{Root, scan};

    fn age(p: &Path) -> Result<(), Box<dyn std::error::Error>> {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        File::options().write(true).open(p)?.set_modified(old)?;
        Ok(())
    }

    fn scan_dir(dir: &Path) -> Result<Vec<ScanEntry>, Box<dyn std::error::Error>> {
        Ok(scan(
            &[Root {
                recorded: "t".into(),
                source: dir.to_owned(),
            }],
            &[],
        )?)
    }

    /// The racy rule of a commit that began well after the files were written (the rule
    /// itself is tested in `worktree::commit::racy` and below).
    fn settled() -> RacyRule {
        RacyRule::uniform(RacyRule::now() + 10_000_000_000, 1)
    }

    /// An empty cache for a commit after the files settled.
    fn fresh() -> StatCache {
        StatCache {
            racy: settled(),
            ..StatCache::default()
        }
    }

    /// Saves what a commit of `entries` would record, with made-up cut values and trees.
    fn save(
        store: &Path,
        cache: &StatCache,
        entries: &[ScanEntry],
    ) -> Result<bool, Box<dyn std::error::Error>> {
        // The cache file is written in a later clock tick than the files (records must be
        // older than it, as they are when a commit's racy rule trusts them).
        std::thread::sleep(std::time::Duration::from_millis(20));
        let files: Vec<_> = entries
            .iter()
            .map(|e| match (&e.kind, &e.source) {
                (ScanKind::File { size, .. }, Some(src)) => {
                    Some((Digest::of(&std::fs::read(src).unwrap_or_default()), *size))
                }
                _ => None,
            })
            .collect();
        let cuts: Vec<u64> = (0..entries.len() as u64).collect();
        let trees = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.kind == ScanKind::Dir)
            .map(|(i, e)| {
                let t = TreeRecord {
                    digest: Digest::of(e.path.as_bytes()),
                    size: 7,
                    cut: 9,
                };
                (i, t)
            })
            .collect();
        Ok(cache.save(store, entries, &files, &cuts, &trees)?)
    }

    #[test]
    fn trusts_only_unchanged_files_older_than_the_cache() -> Result<(), Box<dyn std::error::Error>>
    {
        let store = tempfile::tempdir()?;
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("a");
        std::fs::write(&f, "one")?;
        let entries = scan_dir(dir.path())?;
        // A commit that began now, on a filesystem of unknown granularity.
        let now = RacyRule::uniform(RacyRule::now(), UNKNOWN_GRANULARITY_NS);
        let c = StatCache::load(store.path(), now);
        save(store.path(), &c, &entries)?;
        let l = StatCache::load(store.path(), settled()).lookup(&entries);
        assert_eq!(
            l.priors[1].known(),
            None,
            "a file modified just now is racy"
        );
        assert_eq!(l.priors[1].hint(), Some(Digest::of(b"one")), "but hinted");
        assert_eq!(l.clean_tree(0), None, "so its directory is not clean");

        // Aged: now it is trusted, until anything about it changes.
        age(&f)?;
        let entries = scan_dir(dir.path())?;
        let c = StatCache::load(store.path(), settled());
        save(store.path(), &c, &entries)?;
        let l = StatCache::load(store.path(), settled()).lookup(&entries);
        assert_eq!(l.priors[1].known(), Some((Digest::of(b"one"), 3)));
        assert!(l.clean_tree(0).is_some(), "every entry as recorded");
        assert_eq!(
            l.priors[1].cut_for(b'f', 3, Some(&Digest::of(b"one"))),
            Some(1)
        );
        assert_eq!(
            l.priors[1].cut_for(b'f', 3, Some(&Digest::of(b"two"))),
            None
        );
        assert_eq!(
            l.priors[1].cut_for(b'x', 3, Some(&Digest::of(b"one"))),
            None
        );

        // Same size, same mtime, new content: ctime (and for a rename, the inode) tells.
        std::fs::write(&f, "two")?;
        age(&f)?;
        let now = scan_dir(dir.path())?;
        let l = StatCache::load(store.path(), settled()).lookup(&now);
        assert_eq!(now[1].stat.map(|s| s.size), Some(3));
        assert_eq!(l.priors[1].known(), None);
        assert_eq!(l.clean_tree(0), None);
        Ok(())
    }

    // issue 20: a file was racy for 2 s after its mtime, whatever the filesystem; the margin is
    // now the filesystem's tick (1 ns on tmpfs or ext4), counted from the later of mtime and
    // ctime. A rewrite within the tick the commit began in, same size, that left every stat
    // field as it was, must still be read again.
    #[test]
    fn a_same_tick_rewrite_with_an_unchanged_stat_is_read_again()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let f = dir.path().join("a");
        std::fs::write(&f, "one")?;
        let entries = scan_dir(dir.path())?;
        let stat = entries[1].stat.ok_or("a file has a stat")?;
        let changed = last_change(&stat);

        // A commit that began a nanosecond after the change (on a nanosecond filesystem)
        // trusts it: only that tick is racy, not the last 2 s.
        let after = tempfile::tempdir()?;
        let c = StatCache::load(after.path(), RacyRule::uniform(changed + 1, 1));
        save(after.path(), &c, &entries)?;
        let l = StatCache::load(after.path(), settled()).lookup(&entries);
        assert_eq!(l.priors[1].known(), Some((Digest::of(b"one"), 3)));

        // A commit that began in the very tick of the change records it racy ...
        let same = tempfile::tempdir()?;
        let c = StatCache::load(same.path(), RacyRule::uniform(changed, 1));
        save(same.path(), &c, &entries)?;
        // ... so when it is rewritten within that tick, same size, and the kernel gives it
        // the same stamps (the stat as it was), it is read again: its digest is only a hint.
        std::fs::write(&f, "two")?;
        let mut now = scan_dir(dir.path())?;
        now[1].stat = Some(stat);
        let l = StatCache::load(same.path(), settled()).lookup(&now);
        assert_eq!(l.priors[1].known(), None, "racy: read again");
        assert_eq!(l.priors[1].hint(), Some(Digest::of(b"one")));
        assert_eq!(l.clean_tree(0), None);

        // The same for a filesystem of unknown granularity, 2 s wide.
        let coarse = tempfile::tempdir()?;
        let c = StatCache::load(
            coarse.path(),
            RacyRule::uniform(changed + 1_999_999_999, UNKNOWN_GRANULARITY_NS),
        );
        save(coarse.path(), &c, &now)?;
        let l = StatCache::load(coarse.path(), settled()).lookup(&now);
        assert_eq!(l.priors[1].known(), None);
        Ok(())
    }

    #[test]
    fn added_removed_and_retyped_entries_make_a_directory_unclean()
    -> Result<(), Box<dyn std::error::Error>> {
        let store = tempfile::tempdir()?;
        let dir = tempfile::tempdir()?;
        for n in ["b", "d/x"] {
            let p = dir.path().join(n);
            std::fs::create_dir_all(p.parent().ok_or("parent")?)?;
            std::fs::write(&p, n)?;
            age(&p)?;
        }
        let entries = scan_dir(dir.path())?;
        save(store.path(), &fresh(), &entries)?;
        let load = || StatCache::load(store.path(), settled());
        assert!(load().lookup(&entries).clean_tree(0).is_some());
        assert!(
            !save(store.path(), &load(), &entries)?,
            "nothing to rewrite"
        );

        let cases: [&dyn Fn(&Path) -> std::io::Result<()>; 4] = [
            &|d| std::fs::write(d.join("a"), "new"),
            &|d| std::fs::remove_file(d.join("b")),
            &|d| std::fs::remove_file(d.join("b")).and(std::fs::create_dir(d.join("b"))),
            &|d| std::os::unix::fs::symlink("x", d.join("c")),
        ];
        for (n, change) in cases.iter().enumerate() {
            let copy = tempfile::tempdir()?;
            let status = std::process::Command::new("cp")
                .args(["-a", "--"])
                .arg(dir.path().join("."))
                .arg(copy.path())
                .status()?;
            assert!(status.success());
            let entries = scan_dir(copy.path())?;
            let c = load();
            save(store.path(), &c, &entries)?;
            let before = load().lookup(&entries);
            assert!(before.clean_tree(0).is_some(), "case {n}: clean before");
            change(copy.path())?;
            let after = scan_dir(copy.path())?;
            let l = load().lookup(&after);
            assert_eq!(l.clean_tree(0), None, "case {n}: the root changed");
            let d = after.iter().position(|e| e.path == "t/d").ok_or("t/d")?;
            assert!(l.clean_tree(d).is_some(), "case {n}: t/d did not");
        }
        Ok(())
    }

    // issue 13: paths were written raw, one per line, so a directory named `x\n<record>`
    // forged a record for another file.
    #[test]
    fn names_are_data_and_cannot_forge_records() -> Result<(), Box<dyn std::error::Error>> {
        let store = tempfile::tempdir()?;
        let dir = tempfile::tempdir()?;
        let good = dir.path().join("good");
        std::fs::write(&good, "GOOD")?;
        age(&good)?;
        // A name holding what a record of `good` would look like after it.
        let mut forged = b"x".to_vec();
        forged.extend_from_slice(&[b'f', 0, 4, 0]);
        forged.extend_from_slice(b"good");
        forged.extend_from_slice(Digest::of(b"EVIL").as_bytes());
        let forged = String::from_utf8_lossy(&forged).replace(['/', '\0'], "_");
        let evil = dir.path().join(&forged);
        std::fs::write(&evil, "EVIL")?;
        age(&evil)?;
        let entries = scan_dir(dir.path())?;
        save(store.path(), &fresh(), &entries)?;
        let l = StatCache::load(store.path(), settled()).lookup(&entries);
        for (e, p) in entries.iter().zip(&l.priors).skip(1) {
            let content = std::fs::read(e.source.as_ref().ok_or("source")?)?;
            assert_eq!(
                p.known().map(|k| k.0),
                Some(Digest::of(&content)),
                "{}",
                e.path
            );
        }
        Ok(())
    }

    #[test]
    fn a_damaged_or_older_cache_is_ignored_whole() -> Result<(), Box<dyn std::error::Error>> {
        let store = tempfile::tempdir()?;
        let dir = tempfile::tempdir()?;
        for n in ["a", "b"] {
            std::fs::write(dir.path().join(n), n)?;
            age(&dir.path().join(n))?;
        }
        let entries = scan_dir(dir.path())?;
        save(store.path(), &fresh(), &entries)?;
        let path = StatCache::path(store.path());
        let good = std::fs::read(&path)?;
        let rows = table(&good).ok_or("a table")?;
        assert_eq!(rows.len(), 1, "one segment");
        let (at, len, _, sha) = rows[0];
        let body = zstd::decode_all(&good[at as usize..(at + len) as usize])?;
        assert_eq!(sha, Digest::of(&body));
        let known = |store: &Path| {
            StatCache::load(store, settled())
                .lookup(&entries)
                .priors
                .iter()
                .filter(|p| p.known().is_some())
                .count()
        };
        assert_eq!(known(store.path()), 2);
        let mut damaged = Vec::new();
        for i in [0, 5, MAGIC.len(), good.len() / 2, good.len() - 1] {
            let mut b = good.clone();
            b[i] ^= 1;
            damaged.push(b);
        }
        assert_eq!(
            file_of(&[(&body, sha)])?,
            good,
            "file_of writes what save does"
        );
        // A segment whose bytes are not those its row names.
        for i in [0, 4, 20, body.len() / 2, body.len() - 40, body.len() - 1] {
            let mut b = body.clone();
            b[i] ^= 1;
            damaged.push(file_of(&[(&b, sha)])?);
        }
        for cut in [body.len() - 1, body.len() - 32, body.len() / 2, 3] {
            damaged.push(file_of(&[(&body[..cut], sha)])?);
        }
        // Right checksums over bytes that are not sections.
        for cut in [body.len() - 1, body.len() / 2, 3] {
            let b = &body[..cut];
            damaged.push(file_of(&[(b, Digest::of(b))])?);
        }
        damaged.push(good[..good.len() - 3].to_vec());
        damaged.push(b"snap-stat-cache 3\n".to_vec());
        for (n, b) in damaged.iter().enumerate() {
            std::fs::write(&path, b)?;
            assert_eq!(known(store.path()), 0, "damage {n} is ignored");
        }
        Ok(())
    }

    /// A cache file of these segments (each its bytes and the SHA-256 its row gives), as
    /// `save` writes it.
    fn file_of(segments: &[(&[u8], Digest)]) -> Result<Vec<u8>, Box<dyn std::error::Error>> {
        let mut out = MAGIC.to_vec();
        let mut rows = Vec::new();
        for (raw, sha) in segments {
            let frame = zstd::bulk::compress(raw, 1)?;
            out.extend_from_slice(&frame);
            rows.extend_from_slice(&(frame.len() as u64).to_le_bytes());
            rows.extend_from_slice(&(raw.len() as u64).to_le_bytes());
            rows.extend_from_slice(sha.as_bytes());
        }
        rows.extend_from_slice(&count_u32(segments.len()).to_le_bytes());
        out.extend_from_slice(&rows);
        out.extend_from_slice(Digest::of(&rows).as_bytes());
        Ok(out)
    }

    // issue 20: every commit re-encoded, hashed and compressed the whole cache (300,000
    // records: about half a second) for one changed file. Segments whose sections are as they
    // were are copied as they are.
    #[test]
    fn a_save_rewrites_only_the_segments_that_changed() -> Result<(), Box<dyn std::error::Error>> {
        let store = tempfile::tempdir()?;
        let dir = tempfile::tempdir()?;
        for d in 0..30 {
            for f in 0..20 {
                let p = dir.path().join(format!("d{d:02}/f{f:02}"));
                std::fs::create_dir_all(p.parent().ok_or("parent")?)?;
                std::fs::write(&p, format!("{d} {f}"))?;
            }
        }
        let load = || StatCache::load(store.path(), settled());
        let entries = scan_dir(dir.path())?;
        save(store.path(), &load(), &entries)?;
        let frames = |b: &[u8]| -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error>> {
            Ok(table(b)
                .ok_or("a table")?
                .iter()
                .map(|&(at, len, _, _)| b[at as usize..(at + len) as usize].to_vec())
                .collect())
        };
        let before = frames(&std::fs::read(StatCache::path(store.path()))?)?;
        assert!(before.len() > 10, "{} segments", before.len());

        std::fs::write(dir.path().join("d15/f03"), "changed")?;
        let entries = scan_dir(dir.path())?;
        assert!(save(store.path(), &load(), &entries)?);
        let after = frames(&std::fs::read(StatCache::path(store.path()))?)?;
        let copied = after.iter().filter(|f| before.contains(f)).count();
        assert!(
            copied + 2 >= before.len(),
            "{copied} of {} segments copied",
            before.len()
        );
        // And what it says is what a whole rewrite says.
        let l = load().lookup(&entries);
        for (e, p) in entries.iter().zip(&l.priors) {
            if let Some(src) = e
                .source
                .as_ref()
                .filter(|_| matches!(e.kind, ScanKind::File { .. }))
            {
                assert_eq!(
                    p.known().map(|k| k.0),
                    Some(Digest::of(&std::fs::read(src)?)),
                    "{}",
                    e.path
                );
            }
        }
        assert!(
            !save(store.path(), &load(), &entries)?,
            "nothing to rewrite"
        );
        Ok(())
    }

    #[test]
    fn directories_not_scanned_are_kept_for_a_while() -> Result<(), Box<dyn std::error::Error>> {
        let store = tempfile::tempdir()?;
        let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
        for d in [&a, &b] {
            std::fs::write(d.path().join("f"), "f")?;
            age(&d.path().join("f"))?;
        }
        let (ea, eb) = (scan_dir(a.path())?, scan_dir(b.path())?);
        let load = || StatCache::load(store.path(), settled());
        save(store.path(), &load(), &ea)?;
        save(store.path(), &load(), &eb)?;
        assert!(load().lookup(&ea).priors[1].known().is_some(), "a is kept");
        for _ in 0..MAX_AGE {
            std::fs::write(b.path().join("f"), "g")?;
            let eb = scan_dir(b.path())?;
            save(store.path(), &load(), &eb)?;
        }
        assert!(
            load().lookup(&ea).priors[1].known().is_none(),
            "a is forgotten"
        );
        Ok(())
    }

    #[test]
    fn older_versions_are_removed_when_a_new_cache_is_written()
    -> Result<(), Box<dyn std::error::Error>> {
        let store = tempfile::tempdir()?;
        let cache = store.path().join("cache");
        std::fs::create_dir_all(&cache)?;
        for old in OLD_FILES {
            std::fs::write(cache.join(old), "old")?;
        }
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("f"), "f")?;
        save(store.path(), &fresh(), &scan_dir(dir.path())?)?;
        for old in OLD_FILES {
            assert!(!cache.join(old).exists(), "{old}");
        }
        assert!(StatCache::path(store.path()).exists());
        Ok(())
    }
}
