//! The stat cache: digests of files that have not changed since they were last read, so a
//! commit of an unchanged tree stats every file and reads none (git's index plays this role).
//!
//! A record is trusted only while the file's size, mtime, ctime, inode and device are all
//! exactly as recorded. As with git's "racy clean" entries, a file whose mtime is not safely
//! older (by [`RACY_MARGIN_NS`], more than any filesystem's timestamp granularity) than the
//! moment its stat was taken is never recorded: it could change again within the same
//! timestamp tick after it was read, and look unchanged. Such files are simply read again
//! next time. (Records are also checked against the cache file's own mtime when loaded.)
//!
//! The cache is an optimisation, never the truth: it lives at `.store/cache/stat.v2`, may be
//! deleted at any time, is replaced atomically, and a damaged or foreign one is ignored.
//!
//! A second, small file (`.store/cache/trees.v2`) maps a fingerprint of a whole scan — every
//! entry's path, kind and stat, in order — to the root tree it produced, so an unchanged
//! tree is recognised without even loading the per-file records. A fingerprint is recorded
//! only when every file in it was safely old, by the same rule.
//!
//! Format (zstd-compressed, after the header line `snap-stat-cache 2`), one record per file:
//! `<hex digest> <size> <mtime_ns> <ctime_ns> <ino> <dev> <path length> <path>\n`, the path
//! being the absolute path that was read, as its length in bytes and then exactly those bytes.
//! A name is data, never syntax: whatever bytes it holds (a newline and a forged record, say)
//! cannot end its record or start another. The fingerprint length-prefixes every name too.
//! (Version 1 wrote paths raw, one per line: a directory named `x\n<record>` could make a
//! later commit record another file as chosen bytes. Its files, `stat.v1` and `trees.v1`, are
//! never read, and are removed when the new ones are written.)

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::fs::AtomicFile;

const HEADER: &str = "snap-stat-cache 2";
/// The most bytes a cache may decompress to (about 7 million files' records): a damaged
/// file is then ignored, not a huge allocation.
const MAX_CACHE_BYTES: u64 = 1 << 30;
/// Cache files of the injectable version 1, removed when their successors are written.
const OLD_FILES: [&str; 2] = ["stat.v1", "trees.v1"];
/// How much older than the cache file a record's mtime must be to be trusted (2 s covers
/// FAT's granularity, and coarse kernel clocks by far).
pub const RACY_MARGIN_NS: i128 = 2_000_000_000;

/// What `lstat` said about a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// Inode number.
    pub ino: u64,
    /// Device.
    pub dev: u64,
}

impl FileStat {
    /// From `lstat` metadata.
    #[must_use]
    pub fn of(meta: &std::fs::Metadata) -> FileStat {
        FileStat {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
}

/// Digests of files by path, with the stat they had when read.
#[derive(Debug, Default)]
pub struct StatCache {
    /// Keyed by the path's bytes (hashing a `Path` walks its components: slow).
    records: HashMap<Box<[u8]>, (FileStat, Digest)>,
    /// The cache file's own mtime when loaded; records must be older than this.
    written_ns: i128,
    /// When this cache was loaded, before any file it will record was stat'ed.
    started_ns: i128,
    dirty: bool,
}

impl StatCache {
    /// The cache file of a store directory.
    #[must_use]
    pub fn path(store_dir: &Path) -> PathBuf {
        store_dir.join("cache").join("stat.v2")
    }

    /// Loads the cache, or an empty one if it is missing, unreadable or malformed.
    /// Load it before stat'ing the files it will record.
    #[must_use]
    pub fn load(store_dir: &Path) -> StatCache {
        Self::load_from(store_dir, Self::started_now())
    }

    /// The current time, to pass to [`StatCache::load_from`] before the files are stat'ed
    /// when loading happens concurrently with the scan.
    #[must_use]
    pub fn started_now() -> i128 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
    }

    /// Like [`StatCache::load`], for files stat'ed no earlier than `started_ns`.
    #[must_use]
    pub fn load_from(store_dir: &Path, started_ns: i128) -> StatCache {
        let mut cache = Self::try_load(&Self::path(store_dir)).unwrap_or_default();
        cache.started_ns = started_ns;
        cache
    }

    fn try_load(path: &Path) -> Option<StatCache> {
        let file = File::open(path).ok()?;
        let written_ns = FileStat::of(&file.metadata().ok()?).mtime_ns;
        // Read whole, then parsed in place: no allocation per field.
        let mut bytes = Vec::new();
        zstd::stream::read::Decoder::new(file)
            .ok()?
            .take(MAX_CACHE_BYTES)
            .read_to_end(&mut bytes)
            .ok()?;
        let mut rest = bytes.strip_prefix(HEADER.as_bytes())?.strip_prefix(b"\n")?;
        let mut records = HashMap::new();
        while !rest.is_empty() {
            let digest = Digest::from_hex(field(&mut rest)?).ok()?;
            let stat = FileStat {
                size: field(&mut rest)?.parse().ok()?,
                mtime_ns: field(&mut rest)?.parse().ok()?,
                ctime_ns: field(&mut rest)?.parse().ok()?,
                ino: field(&mut rest)?.parse().ok()?,
                dev: field(&mut rest)?.parse().ok()?,
            };
            let len: usize = field(&mut rest)?.parse().ok()?;
            // The record ends exactly where its length says, or the file is not a cache.
            if rest.get(len) != Some(&b'\n') {
                return None;
            }
            let (path, tail) = rest.split_at(len);
            rest = &tail[1..];
            records.insert(Box::from(path), (stat, digest));
        }
        Some(StatCache {
            records,
            written_ns,
            started_ns: 0,
            dirty: false,
        })
    }

    /// The digest of `path` if its stat is exactly as recorded and the record is not racy.
    #[must_use]
    pub fn get(&self, path: &Path, stat: &FileStat) -> Option<Digest> {
        let (recorded, digest) = self.records.get(path.as_os_str().as_bytes())?;
        (recorded == stat && stat.mtime_ns + RACY_MARGIN_NS < self.written_ns).then_some(*digest)
    }

    /// Records what a file hashed to when it had `stat` (taken after [`StatCache::load`]),
    /// unless its mtime is too recent to be sure a later change would show.
    pub fn insert(&mut self, path: &Path, stat: FileStat, digest: Digest) {
        if stat.mtime_ns + RACY_MARGIN_NS >= self.started_ns {
            if self.records.remove(path.as_os_str().as_bytes()).is_some() {
                self.dirty = true;
            }
            return;
        }
        let old = self
            .records
            .insert(Box::from(path.as_os_str().as_bytes()), (stat, digest));
        if old != Some((stat, digest)) {
            self.dirty = true;
        }
    }

    /// Number of records.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are no records.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Writes the cache if it changed (atomically; a failure only costs speed next time).
    ///
    /// # Errors
    /// The I/O error, for the caller to ignore or report.
    pub fn save(&self, store_dir: &Path) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let path = Self::path(store_dir);
        let dir = path.parent().unwrap_or(store_dir).to_owned();
        crate::fs::create_dir_all(&dir)?;
        let mut tmp = AtomicFile::new_in(&dir)?;
        {
            let encoder = zstd::stream::write::Encoder::new(tmp.file(), 1)?.auto_finish();
            let mut w = BufWriter::with_capacity(1 << 20, encoder);
            writeln!(w, "{HEADER}")?;
            for (p, (s, d)) in &self.records {
                write!(
                    w,
                    "{} {} {} {} {} {} {} ",
                    d.hex(),
                    s.size,
                    s.mtime_ns,
                    s.ctime_ns,
                    s.ino,
                    s.dev,
                    p.len()
                )?;
                w.write_all(p)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
        }
        tmp.persist_replace(&path, None)?;
        remove_old_files(&dir);
        Ok(())
    }
}

/// The space-terminated field at the start of `rest`, as text; `rest` moves past it.
fn field<'a>(rest: &mut &'a [u8]) -> Option<&'a str> {
    // Fields are numbers and 64 hex digits: a longer one is damage.
    let end = rest.iter().take(80).position(|b| *b == b' ')?;
    let (f, tail) = rest.split_at(end);
    *rest = &tail[1..];
    std::str::from_utf8(f).ok()
}

/// Best effort: a version 1 cache left behind only costs space.
fn remove_old_files(cache_dir: &Path) {
    for name in OLD_FILES {
        let _ = std::fs::remove_file(cache_dir.join(name));
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;

    fn stat(p: &Path) -> FileStat {
        FileStat::of(&std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn trusts_only_unchanged_files_older_than_the_cache() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("a");
        std::fs::write(&f, "one").unwrap_or_else(|e| panic!("{e}"));
        let d = Digest::of(b"one");
        let mut c = StatCache::load(dir.path());
        c.insert(&f, stat(&f), d);
        assert!(c.is_empty(), "a file modified just now is not recorded");

        // Age the file: now it is trusted, until anything about it changes.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        File::options()
            .write(true)
            .open(&f)
            .and_then(|h| h.set_modified(old))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut c = StatCache::load(dir.path());
        c.insert(&f, stat(&f), d);
        c.save(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let loaded = StatCache::load(dir.path());
        assert_eq!(loaded.get(&f, &stat(&f)), Some(d));

        // Same size, same mtime, new content: ctime (and for a rename, the inode) tells.
        std::fs::write(&f, "two").unwrap_or_else(|e| panic!("{e}"));
        File::options()
            .write(true)
            .open(&f)
            .and_then(|h| h.set_modified(old))
            .unwrap_or_else(|e| panic!("{e}"));
        let now = stat(&f);
        assert_eq!(now.size, 3);
        assert_eq!(loaded.get(&f, &now), None);
    }

    // issue 13: paths were written raw, one per line, so a directory named `x\n<record>`
    // forged a record for another file.
    #[test]
    fn names_with_newlines_are_kept_exactly_and_cannot_forge_records()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        let good = dir.path().join("good");
        std::fs::write(&good, "GOOD")?;
        File::options().write(true).open(&good)?.set_modified(old)?;
        let g = stat(&good);
        let forged = format!(
            "x\n{} {} {} {} {} {} {}",
            Digest::of(b"EVIL").hex(),
            g.size,
            g.mtime_ns,
            g.ctime_ns,
            g.ino,
            g.dev,
            good.display()
        );
        // `x\n<record> /…/good`: a directory whose name holds the forged record, then
        // directories spelling out the rest of the good file's path.
        let evil = dir.path().join(&forged);
        std::fs::create_dir_all(evil.parent().ok_or("no parent")?)?;
        std::fs::write(&evil, "EVIL")?;
        File::options().write(true).open(&evil)?.set_modified(old)?;

        let mut c = StatCache::load(dir.path());
        c.insert(&evil, stat(&evil), Digest::of(b"EVIL"));
        c.save(dir.path())?;
        let loaded = StatCache::load(dir.path());
        assert_eq!(loaded.len(), 1, "one record, read back whole");
        assert_eq!(
            loaded.get(&good, &g),
            None,
            "no record was forged for {good:?}"
        );
        assert_eq!(
            loaded.get(&evil, &stat(&evil)),
            Some(Digest::of(b"EVIL")),
            "a name with a newline is cached like any other"
        );
        Ok(())
    }

    #[test]
    fn a_version_1_cache_is_ignored_and_removed() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache)?;
        let f = dir.path().join("f");
        std::fs::write(&f, "f")?;
        let s = stat(&f);
        let v1 = format!(
            "snap-stat-cache 1\n{} {} {} {} {} {} {}\n",
            Digest::of(b"f").hex(),
            s.size,
            s.mtime_ns,
            s.ctime_ns,
            s.ino,
            s.dev,
            f.display()
        );
        std::fs::write(cache.join("stat.v1"), zstd::encode_all(v1.as_bytes(), 1)?)?;
        std::fs::write(cache.join("trees.v1"), "snap-tree-cache 1\n")?;
        let mut c = StatCache::load(dir.path());
        assert!(c.is_empty(), "version 1 is never read");
        c.dirty = true;
        c.save(dir.path())?;
        assert!(!cache.join("stat.v1").exists() && !cache.join("trees.v1").exists());
        assert!(StatCache::path(dir.path()).exists());
        Ok(())
    }

    #[test]
    fn fingerprints_cannot_be_forged_by_names() {
        use crate::object::EntryName;
        use crate::worktree::scan::{ScanEntry, ScanKind};
        let entry = |path: &str, source: Option<&str>, kind: ScanKind| ScanEntry {
            path: path.to_owned(),
            name: EntryName::new(path.rsplit('/').next().unwrap_or(path))
                .unwrap_or_else(|e| panic!("{e}")),
            parent: None,
            source: source.map(PathBuf::from),
            kind,
            stat: None,
        };
        let link = |t: &str| ScanKind::Symlink { target: t.into() };
        // The same bytes in a row, cut differently.
        let a = [
            entry("a", Some("/s"), link("t")),
            entry("b", Some("/s"), ScanKind::Dir),
        ];
        let b = [entry("a", Some("/s"), link("t\0\0\0\0\0\0\0\u{1}b"))];
        let synthesized = [entry("a", None, ScanKind::Dir)];
        let empty_source = [entry("a", Some(""), ScanKind::Dir)];
        let fps: Vec<_> = [&a[..], &b[..], &synthesized[..], &empty_source[..]]
            .iter()
            .map(|e| fingerprint(e, i128::MAX))
            .collect();
        for (i, x) in fps.iter().enumerate() {
            for y in &fps[i + 1..] {
                assert_ne!(x, y, "two different scans, one fingerprint");
            }
        }
    }

    #[test]
    fn a_damaged_cache_is_ignored() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(dir.path().join("cache")).unwrap_or_else(|e| panic!("{e}"));
        for junk in ["", "snap-stat-cache 1\nzz 1 2 3 4 5 /x\n", "other 1\n"] {
            for bytes in [
                junk.as_bytes().to_vec(),
                zstd::encode_all(junk.as_bytes(), 1).unwrap_or_else(|e| panic!("{e}")),
            ] {
                std::fs::write(StatCache::path(dir.path()), bytes)
                    .unwrap_or_else(|e| panic!("{e}"));
                assert!(StatCache::load(dir.path()).is_empty());
            }
        }
    }
}

const TREES_HEADER: &str = "snap-tree-cache 2";
/// Fingerprints remembered (the most recent ones).
const MAX_TREES: usize = 64;

/// A fingerprint of a scan: every entry's recorded path, source path, kind and stat. `None`
/// if a file has no stat, or one is too new to be trusted (see the module docs).
#[must_use]
pub fn fingerprint(
    entries: &[crate::worktree::scan::ScanEntry],
    started_ns: i128,
) -> Option<Digest> {
    use crate::worktree::scan::ScanKind;
    // Every name goes in with its length first, so no name can pass for a separator or for
    // the next entry, whatever bytes it holds.
    fn name(h: &mut crate::digest::Hasher, bytes: &[u8]) {
        h.update(&(bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    }
    let mut h = crate::digest::Hasher::new();
    for e in entries {
        name(&mut h, e.path.as_bytes());
        match &e.source {
            Some(src) => {
                h.update(b"s");
                name(&mut h, src.as_os_str().as_bytes());
            }
            None => h.update(b"-"),
        }
        match &e.kind {
            ScanKind::Dir => h.update(b"d"),
            ScanKind::Symlink { target } => {
                h.update(b"l");
                name(&mut h, target.as_bytes());
            }
            ScanKind::File { size, executable } => {
                let s = e.stat.as_ref()?;
                if s.mtime_ns + RACY_MARGIN_NS >= started_ns {
                    return None;
                }
                h.update(if *executable { b"x" } else { b"f" });
                for n in [
                    i128::from(*size),
                    i128::from(s.size),
                    s.mtime_ns,
                    s.ctime_ns,
                    i128::from(s.ino),
                    i128::from(s.dev),
                ] {
                    h.update(&n.to_le_bytes());
                }
            }
        }
    }
    Some(h.finish())
}

/// Root trees by scan fingerprint.
#[derive(Debug, Default)]
pub struct TreeCache {
    /// Oldest first.
    records: Vec<(Digest, Digest)>,
}

impl TreeCache {
    fn path(store_dir: &Path) -> PathBuf {
        store_dir.join("cache").join("trees.v2")
    }

    /// Loads the cache (empty if missing or malformed).
    #[must_use]
    pub fn load(store_dir: &Path) -> TreeCache {
        let Ok(text) = std::fs::read_to_string(Self::path(store_dir)) else {
            return TreeCache::default();
        };
        let mut lines = text.lines();
        if lines.next() != Some(TREES_HEADER) {
            return TreeCache::default();
        }
        let records = lines
            .map(|l| {
                let (f, r) = l.split_once(' ')?;
                Some((Digest::from_hex(f).ok()?, Digest::from_hex(r).ok()?))
            })
            .collect::<Option<Vec<_>>>()
            .unwrap_or_default();
        TreeCache { records }
    }

    /// The root tree a scan with this fingerprint produced.
    #[must_use]
    pub fn get(&self, fingerprint: &Digest) -> Option<Digest> {
        self.records
            .iter()
            .rev()
            .find(|(f, _)| f == fingerprint)
            .map(|(_, r)| *r)
    }

    /// Remembers a fingerprint's root and writes the cache (atomically).
    ///
    /// # Errors
    /// The I/O error, for the caller to ignore.
    pub fn record(
        &mut self,
        store_dir: &Path,
        fingerprint: Digest,
        root: Digest,
    ) -> std::io::Result<()> {
        if self.get(&fingerprint) == Some(root) {
            return Ok(());
        }
        self.records.retain(|(f, _)| *f != fingerprint);
        self.records.push((fingerprint, root));
        if self.records.len() > MAX_TREES {
            self.records.drain(..self.records.len() - MAX_TREES);
        }
        let mut text = format!("{TREES_HEADER}\n");
        for (f, r) in &self.records {
            text.push_str(&f.hex());
            text.push(' ');
            text.push_str(&r.hex());
            text.push('\n');
        }
        let path = Self::path(store_dir);
        let dir = path.parent().unwrap_or(store_dir);
        crate::fs::create_dir_all(dir)?;
        crate::fs::write_atomic(&path, text.as_bytes())?;
        remove_old_files(dir);
        Ok(())
    }
}
