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
//! The cache is an optimisation, never the truth: it lives at `.store/cache/stat.v1`, may be
//! deleted at any time, is replaced atomically, and a damaged or foreign one is ignored.
//!
//! A second, small file (`.store/cache/trees.v1`) maps a fingerprint of a whole scan — every
//! entry's path, kind and stat, in order — to the root tree it produced, so an unchanged
//! tree is recognised without even loading the per-file records. A fingerprint is recorded
//! only when every file in it was safely old, by the same rule.
//!
//! Format (zstd-compressed text, one record per line after the header `snap-stat-cache 1`):
//! `<hex digest> <size> <mtime_ns> <ctime_ns> <ino> <dev> <path>`, the path being the absolute
//! path that was read (any bytes but newline).

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::fs::AtomicFile;

const HEADER: &str = "snap-stat-cache 1";
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
        store_dir.join("cache").join("stat.v1")
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
        let decoder = zstd::stream::read::Decoder::new(file).ok()?;
        let mut lines = BufReader::with_capacity(1 << 20, decoder).split(b'\n');
        if lines.next()?.ok()? != HEADER.as_bytes() {
            return None;
        }
        let mut records = HashMap::new();
        for line in lines {
            let line = line.ok()?;
            let mut parts = line.splitn(7, |b| *b == b' ');
            let mut next = || std::str::from_utf8(parts.next()?).ok().map(str::to_owned);
            let digest = Digest::from_hex(&next()?).ok()?;
            let stat = FileStat {
                size: next()?.parse().ok()?,
                mtime_ns: next()?.parse().ok()?,
                ctime_ns: next()?.parse().ok()?,
                ino: next()?.parse().ok()?,
                dev: next()?.parse().ok()?,
            };
            records.insert(Box::from(parts.next()?), (stat, digest));
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
                    "{} {} {} {} {} {} ",
                    d.hex(),
                    s.size,
                    s.mtime_ns,
                    s.ctime_ns,
                    s.ino,
                    s.dev
                )?;
                w.write_all(p)?;
                w.write_all(b"\n")?;
            }
            w.flush()?;
        }
        tmp.persist_replace(&path, None)
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

const TREES_HEADER: &str = "snap-tree-cache 1";
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
    let mut h = crate::digest::Hasher::new();
    for e in entries {
        h.update(e.path.as_bytes());
        h.update(b"\0");
        if let Some(src) = &e.source {
            h.update(src.as_os_str().as_bytes());
        }
        h.update(b"\0");
        match &e.kind {
            ScanKind::Dir => h.update(b"d"),
            ScanKind::Symlink { target } => {
                h.update(b"l");
                h.update(target.as_bytes());
                h.update(b"\0");
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
        store_dir.join("cache").join("trees.v1")
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
        crate::fs::create_dir_all(path.parent().unwrap_or(store_dir))?;
        crate::fs::write_atomic(&path, text.as_bytes())
    }
}
