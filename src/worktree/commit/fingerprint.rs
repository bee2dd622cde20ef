//! Recognising an unchanged scan without reading anything: a fingerprint of the whole scan
//! (every entry's path, source, kind and stat) names the root tree it produced last time,
//! in `.store/cache/trees.v2` (store format §9.1).
//!
//! A fingerprint is recorded only when every file in it was safely old (the racy rule,
//! [`RacyRule`]). Every name is hashed with its length first, so no bytes in a
//! name can pass for a separator or for the next entry. The file is an optimisation: a
//! missing or malformed one is ignored, and a wrong root in it can only make a commit do
//! the work (the root is compared with the ref's snapshot, never recorded from here).

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::worktree::commit::racy::RacyRule;
use crate::worktree::commit::statcache::remove_old_files;

const TREES_HEADER: &str = "snap-tree-cache 2";
/// Fingerprints remembered (the most recent ones).
const MAX_TREES: usize = 64;

/// A fingerprint of a scan: every entry's recorded path, source path, kind and stat. `None`
/// if a file has no stat, or one is too new to be trusted (see the module docs).
#[must_use]
pub fn fingerprint(
    entries: &[crate::worktree::commit::scan::ScanEntry],
    racy: &RacyRule,
) -> Option<Digest> {
    use crate::worktree::commit::scan::ScanKind;
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
                if racy.is_racy(s) {
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
        crate::store::cache_file(store_dir, "trees.v2")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_cannot_be_forged_by_names() {
        use crate::object::EntryName;
        use crate::worktree::commit::scan::{ScanEntry, ScanKind};
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
            .map(|e| fingerprint(e, &RacyRule::uniform(i128::MAX / 2, 1)))
            .collect();
        for (i, x) in fps.iter().enumerate() {
            for y in &fps[i + 1..] {
                assert_ne!(x, y, "two different scans, one fingerprint");
            }
        }
    }
}
