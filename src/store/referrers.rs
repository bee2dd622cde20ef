//! The referrers index: which stored manifests refer to a subject (OCI 1.1 `subject`), so a
//! signature or an attached artifact is found from the snapshot it refers to.
//!
//! Format (store format §6.4): `referrers/<64 hex>` — the hex of the subject's digest — holds
//! one line `sha256:<64 hex>\n` per referrer, sorted, each once. The file is derived data: the
//! truth is each referrer manifest's `subject`, which `snap fsck` checks the index against.
//!
//! Invariants: a line is added only after its referrer manifest is durable (objects before
//! the names that find them); a file is rewritten only under its `.lock` file (read under
//! the lock, merge, write into the lock file, fsync, rename), so concurrent attaches never
//! lose each other's lines; gc drops whole files of subjects it removes.
//!
//! This module knows files and digests, not manifests: it never parses OCI.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::digest::Digest;
use crate::lock::{self, LockFile};

/// The directory below the store that holds the index.
pub const DIR: &str = "referrers";

/// The referrers index of one store.
pub struct Referrers {
    dir: PathBuf,
    lock_timeout: Duration,
}

impl Referrers {
    pub(crate) fn new(store_dir: &Path) -> Self {
        let ms = std::env::var("SNAP_LOCK_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(2000);
        Referrers {
            dir: store_dir.join(DIR),
            lock_timeout: Duration::from_millis(ms),
        }
    }

    /// The file listing the referrers of `subject`.
    #[must_use]
    pub fn path(&self, subject: &Digest) -> PathBuf {
        self.dir.join(subject.hex())
    }

    /// The referrers of `subject`, sorted (none when the index has no file for it).
    ///
    /// # Errors
    /// [`Error::Io`]; [`Error::Corrupt`] for a line that is not a digest.
    pub fn list(&self, subject: &Digest) -> Result<Vec<Digest>, Error> {
        read(&self.path(subject))
    }

    /// Adds `referrers` of `subject` (each must already be a durable object). Returns how many
    /// were new.
    ///
    /// # Errors
    /// [`Error::TooMany`] when the subject would have more than `limit` referrers (nothing is
    /// written then); [`Error::Lock`] when another process holds the file's lock past the
    /// timeout; [`Error::Io`], [`Error::Corrupt`].
    pub fn add(
        &self,
        subject: &Digest,
        referrers: &[Digest],
        limit: usize,
    ) -> Result<usize, Error> {
        crate::fs::create_dir_all(&self.dir).map_err(|source| Error::Io {
            op: "creating",
            path: self.dir.clone(),
            source,
        })?;
        let path = self.path(subject);
        let mut lock = LockFile::acquire(&path, self.lock_timeout)?;
        // Read under the lock: a concurrent writer has either finished or not started.
        let mut all = read(&path)?;
        let before = all.len();
        all.extend_from_slice(referrers);
        all.sort();
        all.dedup();
        let added = all.len() - before;
        if added == 0 {
            return Ok(0);
        }
        if all.len() > limit {
            return Err(Error::TooMany {
                subject: *subject,
                count: all.len(),
                limit,
            });
        }
        lock.write_content(encode(&all).as_bytes())?;
        lock.commit()?;
        Ok(added)
    }

    /// Keeps only the referrers of `subject` that `keep` accepts; removes the file when none
    /// is left. Returns how many were dropped.
    ///
    /// # Errors
    /// As [`Referrers::add`].
    pub fn retain(&self, subject: &Digest, keep: &dyn Fn(&Digest) -> bool) -> Result<usize, Error> {
        let path = self.path(subject);
        let mut lock = LockFile::acquire(&path, self.lock_timeout)?;
        let all = read(&path)?;
        let kept: Vec<Digest> = all.iter().copied().filter(|d| keep(d)).collect();
        let dropped = all.len() - kept.len();
        if dropped == 0 {
            return Ok(0);
        }
        if kept.is_empty() {
            lock.commit_delete()?;
        } else {
            lock.write_content(encode(&kept).as_bytes())?;
            lock.commit()?;
        }
        Ok(dropped)
    }

    /// Every subject the index has a file for, with the file (names that are not 64 hex
    /// digits are returned as strays).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn subjects(&self) -> Result<(Vec<Digest>, Vec<PathBuf>), Error> {
        let rd = match std::fs::read_dir(&self.dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), Vec::new())),
            Err(source) => {
                return Err(Error::Io {
                    op: "listing",
                    path: self.dir.clone(),
                    source,
                });
            }
        };
        let mut subjects = Vec::new();
        let mut strays = Vec::new();
        for e in rd {
            let e = e.map_err(|source| Error::Io {
                op: "listing",
                path: self.dir.clone(),
                source,
            })?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(crate::fs::TEMP_PREFIX) || name.ends_with(".lock") {
                continue;
            }
            match Digest::from_hex(&name) {
                Ok(d) => subjects.push(d),
                Err(_) => strays.push(e.path()),
            }
        }
        subjects.sort();
        Ok((subjects, strays))
    }
}

fn encode(all: &[Digest]) -> String {
    let mut out = String::with_capacity(all.len() * 72);
    for d in all {
        out.push_str(&d.to_string());
        out.push('\n');
    }
    out
}

fn read(path: &Path) -> Result<Vec<Digest>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::Io {
                op: "reading",
                path: path.to_owned(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let d = line.parse::<Digest>().map_err(|_| Error::Corrupt {
            path: path.to_owned(),
            line: n + 1,
        })?;
        out.push(d);
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Referrers index errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing an index file failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The index file's lock.
    #[error(transparent)]
    Lock(#[from] lock::Error),
    /// A line that is not a digest.
    #[error("referrers index {} is corrupt at line {line}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// The line, from 1.
        line: usize,
    },
    /// More referrers of one subject than the limit.
    #[error("{subject} would have {count} referrers, more than the {limit} snap keeps")]
    TooMany {
        /// The subject.
        subject: Digest,
        /// How many it would have.
        count: usize,
        /// The limit.
        limit: usize,
    },
}

impl Error {
    /// The broad class of this error.
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::Io { .. } => K::Io,
            Error::Lock(lock::Error::Locked { .. }) => K::Conflict,
            Error::Lock(_) => K::Io,
            Error::Corrupt { .. } => K::Corrupt,
            Error::TooMany { .. } => K::InvalidInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_lines_are_sorted_unique_bounded_and_retained() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let r = Referrers::new(dir.path());
        let s = Digest::of(b"subject");
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        assert_eq!(r.list(&s)?, Vec::<Digest>::new());
        assert_eq!(r.add(&s, &[b, a], 2)?, 2);
        assert_eq!(
            r.add(&s, &[a], 2)?,
            0,
            "a line already there is not added twice"
        );
        assert!(matches!(r.add(&s, &[c], 2), Err(Error::TooMany { .. })));
        let mut want = vec![a, b];
        want.sort();
        assert_eq!(r.list(&s)?, want, "a refused add writes nothing");
        assert_eq!(r.subjects()?.0, vec![s]);
        assert_eq!(r.retain(&s, &|d| *d == a)?, 1);
        assert_eq!(r.list(&s)?, vec![a]);
        assert_eq!(r.retain(&s, &|_| false)?, 1);
        assert!(!r.path(&s).exists(), "an empty list removes the file");
        Ok(())
    }

    #[test]
    fn a_line_that_is_not_a_digest_is_corruption() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let r = Referrers::new(dir.path());
        let s = Digest::of(b"subject");
        crate::fs::create_dir_all(&dir.path().join(DIR))?;
        crate::fs::write_atomic(&r.path(&s), b"garbage\n")?;
        assert!(matches!(r.list(&s), Err(Error::Corrupt { line: 1, .. })));
        Ok(())
    }
}
