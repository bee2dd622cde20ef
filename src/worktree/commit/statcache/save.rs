//! Writing the stat cache: the new body (a section per directory the commit scanned, one per
//! directory of loose command-line entries, and the aged sections of directories not scanned
//! this time), cut into segments, of which only the changed ones are compressed; the frames
//! of the others are copied from the old file.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rayon::prelude::*;

use super::decode::{Reader, count_u32, put_bytes_u32};
use super::{
    ENTRY_RACY, MAGIC, MAX_AGE, SECTION_COMPLETE, SECTION_TREE, SEGMENT_BYTES, StatCache,
    TreeRecord, kind_byte, remove_old_files,
};
use crate::digest::Digest;
use crate::fs::AtomicFile;
use crate::worktree::commit::scan::{ScanEntry, ScanKind};

impl StatCache {
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
        // Nothing to compare with (a first commit, or a lost cache): every segment is new,
        // so each is written as soon as it is encoded and the body is never held whole
        // (issue 17: a million files' body is ~110 MB).
        if self.segments.is_empty() {
            return self.save_streaming(store_dir, entries, files, cuts, trees);
        }
        self.save_whole(store_dir, entries, files, cuts, trees)
    }

    /// [`StatCache::save`] with the new body encoded whole, then compared segment by segment
    /// with this cache's.
    pub(super) fn save_whole(
        &self,
        store_dir: &Path,
        entries: &[ScanEntry],
        files: &[Option<(Digest, u64)>],
        cuts: &[u64],
        trees: &HashMap<usize, TreeRecord>,
    ) -> std::io::Result<bool> {
        let mut body = Body {
            cache: self,
            entries,
            files,
            cuts,
            bytes: Vec::with_capacity(entries.len() * 96 + 4096),
            sections: Vec::new(),
            written: HashSet::new(),
            stream: None,
        };
        let loose = body.put_scanned(trees);
        body.put_loose(loose);
        body.put_kept();
        let Body {
            bytes, sections, ..
        } = body;
        let pieces = self.plan_segments(&bytes, &sections);
        if pieces.len() == self.segments.len()
            && pieces
                .iter()
                .enumerate()
                .all(|(n, p)| matches!(p, Piece::Old(o) if *o == n))
        {
            return Ok(false); // nothing changed
        }
        self.write_file(store_dir, &bytes, &pieces)?;
        Ok(true)
    }

    /// Writes `pieces` of `body` as the new cache file: new segments compressed on both
    /// cores, [`WRITE_BATCH`] at a time (so the compressed frames held at once stay a few
    /// MiB whatever the cache's size), unchanged ones copied from the old file; then the
    /// table.
    fn write_file(&self, store_dir: &Path, body: &[u8], pieces: &[Piece]) -> std::io::Result<()> {
        let (path, dir, mut tmp) = Self::create(store_dir)?;
        {
            let mut stream = Stream::start(&mut tmp)?;
            for batch in pieces.chunks(WRITE_BATCH) {
                // New segments compressed on both cores; old ones' frames are read below.
                let fresh: Vec<std::io::Result<Vec<u8>>> = batch
                    .par_iter()
                    .map(|p| match p {
                        Piece::New(range) => zstd::bulk::compress(&body[range.clone()], 1),
                        Piece::Old(_) => Ok(Vec::new()),
                    })
                    .collect();
                for (p, frame) in batch.iter().zip(fresh) {
                    match p {
                        Piece::New(range) => {
                            let raw = &body[range.clone()];
                            stream.frame(&frame?, raw.len(), Digest::of(raw))?;
                        }
                        Piece::Old(o) => {
                            let seg = &self.segments[*o];
                            stream.frame(&self.old_frame(*o)?, seg.raw.len(), seg.sha)?;
                        }
                    }
                }
            }
            stream.finish()?;
        }
        tmp.persist_replace(&path, None)?;
        remove_old_files(&dir);
        Ok(())
    }

    /// The compressed frame of this cache's segment `o`, as its file holds it.
    fn old_frame(&self, o: usize) -> std::io::Result<Vec<u8>> {
        let seg = &self.segments[o];
        let old = self
            .file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no file"))?;
        let mut frame = vec![0; usize::try_from(seg.frame.1).map_err(std::io::Error::other)?];
        std::os::unix::fs::FileExt::read_exact_at(old, &mut frame, seg.frame.0)?;
        Ok(frame)
    }

    /// The cache file's path, its directory (created), and a temp file there for the new one.
    fn create(
        store_dir: &Path,
    ) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf, AtomicFile)> {
        let path = Self::path(store_dir);
        let dir = path.parent().unwrap_or(store_dir).to_owned();
        crate::fs::create_dir_all(&dir)?;
        let tmp = AtomicFile::new_in(&dir)?;
        Ok((path, dir, tmp))
    }
}

/// Segments compressed (or copied) at once while a cache file is written: enough to keep
/// both cores busy, few enough that memory does not grow with the cache (issue 17).
pub(super) const WRITE_BATCH: usize = 8;

impl StatCache {
    /// [`StatCache::save`] when this cache has no segments: the sections are cut into
    /// segments as they are encoded — where [`StatCache::plan_segments`] would cut them: after
    /// the section that brings a segment to [`SEGMENT_BYTES`] — and each batch of segments is
    /// compressed and written at once, so the file is byte for byte the one the general path
    /// writes.
    fn save_streaming(
        &self,
        store_dir: &Path,
        entries: &[ScanEntry],
        files: &[Option<(Digest, u64)>],
        cuts: &[u64],
        trees: &HashMap<usize, TreeRecord>,
    ) -> std::io::Result<bool> {
        let (path, dir, mut tmp) = Self::create(store_dir)?;
        {
            let mut stream = Stream::start(&mut tmp)?;
            let mut sink = |raw: Vec<u8>| stream.push(raw);
            let mut body = Body {
                cache: self,
                entries,
                files,
                cuts,
                bytes: Vec::with_capacity(2 * SEGMENT_BYTES),
                sections: Vec::new(),
                written: HashSet::new(),
                stream: Some(&mut sink),
            };
            let loose = body.put_scanned(trees);
            body.put_loose(loose);
            body.put_kept();
            let rest = std::mem::take(&mut body.bytes);
            drop(body);
            if !rest.is_empty() {
                stream.batch.push(rest);
            }
            stream.write_batch();
            if let Some(e) = stream.failed.take() {
                return Err(e);
            }
            if stream.segments == 0 {
                return Ok(false); // nothing to record, as the general path decides
            }
            stream.finish()?;
        }
        tmp.persist_replace(&path, None)?;
        remove_old_files(&dir);
        Ok(true)
    }
}

/// A cache file being written segment by segment (see [`StatCache::save_streaming`]).
struct Stream<'f> {
    out: std::io::BufWriter<&'f mut std::fs::File>,
    /// The table's rows so far.
    rows: Vec<u8>,
    /// Raw segments waiting to be compressed, at most [`WRITE_BATCH`].
    batch: Vec<Vec<u8>>,
    /// Segments written.
    segments: usize,
    /// The first write error (the encoder goes on; the save then fails with it).
    failed: Option<std::io::Error>,
}

impl<'f> Stream<'f> {
    /// Starts the file: its magic.
    fn start(tmp: &'f mut AtomicFile) -> std::io::Result<Stream<'f>> {
        let mut out = std::io::BufWriter::with_capacity(1 << 20, tmp.file());
        out.write_all(MAGIC)?;
        Ok(Stream {
            out,
            rows: Vec::new(),
            batch: Vec::new(),
            segments: 0,
            failed: None,
        })
    }

    /// Writes one segment's compressed frame, and its row: the frame's length, the raw
    /// length, the raw bytes' digest.
    fn frame(&mut self, frame: &[u8], raw_len: usize, sha: Digest) -> std::io::Result<()> {
        self.out.write_all(frame)?;
        self.rows
            .extend_from_slice(&(frame.len() as u64).to_le_bytes());
        self.rows.extend_from_slice(&(raw_len as u64).to_le_bytes());
        self.rows.extend_from_slice(sha.as_bytes());
        self.segments += 1;
        Ok(())
    }

    /// Ends the file: the table (its rows, their count) and its checksum.
    fn finish(mut self) -> std::io::Result<()> {
        let mut rows = std::mem::take(&mut self.rows);
        rows.extend_from_slice(&count_u32(self.segments).to_le_bytes());
        self.out.write_all(&rows)?;
        self.out.write_all(Digest::of(&rows).as_bytes())?;
        self.out.flush()
    }

    /// Takes one raw segment; writes the batch when it is full.
    fn push(&mut self, raw: Vec<u8>) {
        self.batch.push(raw);
        if self.batch.len() >= WRITE_BATCH {
            self.write_batch();
        }
    }

    /// Compresses the batch on both cores and writes it, in order.
    fn write_batch(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        if self.failed.is_some() || batch.is_empty() {
            return;
        }
        let frames: Vec<std::io::Result<Vec<u8>>> = batch
            .par_iter()
            .map(|raw| zstd::bulk::compress(raw, 1))
            .collect();
        for (raw, frame) in batch.iter().zip(frames) {
            if let Err(e) = frame.and_then(|f| self.frame(&f, raw.len(), Digest::of(raw))) {
                self.failed = Some(e);
                return;
            }
        }
    }
}

/// The new cache body being encoded, section by section.
struct Body<'a, 's> {
    cache: &'a StatCache,
    entries: &'a [ScanEntry],
    files: &'a [Option<(Digest, u64)>],
    cuts: &'a [u64],
    bytes: Vec<u8>,
    /// Where each section is in `bytes`, in order.
    sections: Vec<Range<usize>>,
    /// The directories that have their section.
    written: HashSet<&'a [u8]>,
    /// Where whole segments go as soon as they are encoded, when streaming.
    stream: Option<&'s mut dyn FnMut(Vec<u8>)>,
}

impl<'a> Body<'a, '_> {
    /// Ends the section that began at `start`; when streaming, hands the segment on once it
    /// holds [`SEGMENT_BYTES`] (where [`StatCache::plan_segments`] cuts a new segment).
    fn end_section(&mut self, start: usize) {
        self.sections.push(start..self.bytes.len());
        if self.bytes.len() >= SEGMENT_BYTES
            && let Some(sink) = self.stream.as_mut()
        {
            sink(std::mem::replace(
                &mut self.bytes,
                Vec::with_capacity(2 * SEGMENT_BYTES),
            ));
            self.sections.clear();
        }
    }

    /// A section per scanned directory, with its children in scan (name) order; returns the
    /// entries whose directory was not scanned as such, by the directory they are in.
    fn put_scanned(&mut self, trees: &HashMap<usize, TreeRecord>) -> Vec<(&'a Path, usize)> {
        let entries = self.entries;
        let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
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
        for (i, e) in entries.iter().enumerate() {
            let (ScanKind::Dir, Some(src)) = (&e.kind, &e.source) else {
                continue;
            };
            let key = src.as_os_str().as_bytes();
            if !self.written.insert(key) {
                continue;
            }
            let start = self.bytes.len();
            put_bytes_u32(&mut self.bytes, key);
            self.bytes.push(1);
            put_bytes_u32(&mut self.bytes, e.path.as_bytes());
            let tree = trees.get(&i);
            self.bytes
                .push(SECTION_COMPLETE | if tree.is_some() { SECTION_TREE } else { 0 });
            if let Some(t) = tree {
                self.bytes.extend_from_slice(t.digest.as_bytes());
                self.bytes.extend_from_slice(&t.size.to_le_bytes());
                self.bytes.extend_from_slice(&t.cut.to_le_bytes());
            }
            self.bytes.extend_from_slice(&0u32.to_le_bytes());
            let kids = children.remove(&i).unwrap_or_default();
            self.bytes
                .extend_from_slice(&count_u32(kids.len()).to_le_bytes());
            for k in kids {
                self.put_entry(k);
            }
            self.end_section(start);
        }
        loose
    }

    /// A section per directory of entries given on the command line (not scanned whole).
    fn put_loose(&mut self, mut loose: Vec<(&'a Path, usize)>) {
        let entries = self.entries;
        let name = |i: usize| entries[i].name.as_str().as_bytes();
        loose.sort_by(|a, b| {
            (a.0.as_os_str().as_bytes(), name(a.1)).cmp(&(b.0.as_os_str().as_bytes(), name(b.1)))
        });
        loose.dedup_by(|b, a| a.0 == b.0 && name(a.1) == name(b.1));
        for run in loose.chunk_by(|a, b| a.0 == b.0) {
            let key = run[0].0.as_os_str().as_bytes();
            if !self.written.insert(key) {
                continue;
            }
            let start = self.bytes.len();
            put_bytes_u32(&mut self.bytes, key);
            self.bytes.push(0);
            self.bytes.push(0);
            self.bytes.extend_from_slice(&0u32.to_le_bytes());
            self.bytes
                .extend_from_slice(&count_u32(run.len()).to_le_bytes());
            for (_, i) in run {
                self.put_entry(*i);
            }
            self.end_section(start);
        }
    }

    /// Directories not scanned this time (another commit's paths) are kept for a while:
    /// their sections copied with their age one higher.
    fn put_kept(&mut self) {
        let cache = self.cache;
        for key in &cache.order {
            if self.written.contains(&**key) {
                continue;
            }
            let s = &cache.sections[key];
            if s.age + 1 >= MAX_AGE {
                continue;
            }
            let raw = &cache.body[s.raw.clone()];
            let age_at = s.entries.start - s.raw.start - 8;
            let start = self.bytes.len();
            self.bytes.extend_from_slice(&raw[..age_at]);
            self.bytes.extend_from_slice(&(s.age + 1).to_le_bytes());
            self.bytes.extend_from_slice(&raw[age_at + 4..]);
            self.end_section(start);
        }
    }

    /// One entry's record.
    fn put_entry(&mut self, i: usize) {
        let e = &self.entries[i];
        let body = &mut self.bytes;
        let name = e.name.as_str().as_bytes();
        body.push(kind_byte(&e.kind));
        // Trusted later only if it was safely old when read, and what was read is as long as
        // the stat said.
        let racy = match (&e.kind, e.stat, self.files[i]) {
            (ScanKind::File { .. }, Some(s), Some((_, size))) => {
                self.cache.racy.is_racy(&s) || size != s.size
            }
            _ => false,
        };
        body.push(if racy { ENTRY_RACY } else { 0 });
        let name_len = u16::try_from(name.len()).expect("entry names fit NAME_MAX");
        body.extend_from_slice(&name_len.to_le_bytes());
        body.extend_from_slice(name);
        body.extend_from_slice(&self.cuts[i].to_le_bytes());
        match &e.kind {
            ScanKind::File { .. } => {
                let stat = e.stat.expect("files are scanned with their stat");
                let (digest, _) = self.files[i].expect("every file was stored");
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
    }
}

/// A segment of a cache file being written.
enum Piece {
    /// This cache's segment, unchanged: its frame is copied.
    Old(usize),
    /// New sections (a range of the new body), compressed into a frame of their own.
    New(Range<usize>),
}

impl StatCache {
    /// Cuts the new body's `sections` into segments: a run of sections byte for byte those of
    /// one of this cache's segments is that segment; the others are new segments of about
    /// [`SEGMENT_BYTES`] each.
    fn plan_segments(&self, body: &[u8], sections: &[Range<usize>]) -> Vec<Piece> {
        let starts: HashMap<&[u8], usize> = self
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.sections > 0)
            .map(|(n, s)| (&*s.first, n))
            .collect();
        let key = |r: &Range<usize>| {
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
