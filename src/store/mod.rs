//! The `.store/` directory: the only owner of its layout (see the store format reference).
//!
//! [`Store`] finds, creates and opens a store and holds its shared advisory lock for as long
//! as it lives, so maintenance that takes the lock exclusively never runs beside it. Objects
//! live in [`objects`], refs in [`refs`], reflogs in [`reflog`].
//!
//! This module uses neither git, the network nor tar, and never prints.

pub mod objects;
pub mod partial;
pub mod referrers;
pub mod reflog;
pub mod refs;

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::digest::Digest;
use crate::fs;
use crate::lock::{self, LockMode, StoreLock};

pub use objects::Objects;
pub use referrers::Referrers;
pub use refs::{Expected, RefEdit, RefKind, RefName, Refs};

/// The store directory's usual name.
pub const STORE_DIR_NAME: &str = ".store";
/// The format version this code reads and writes.
pub const FORMAT_VERSION: u32 = 2;
const FORMAT_FILE: &str = "format";

/// An open store.
pub struct Store {
    dir: PathBuf,
    root: PathBuf,
    /// Objects.
    pub objects: Objects,
    /// Refs and reflogs.
    pub refs: Refs,
    /// Which manifests refer to which (signatures, attached artifacts).
    pub referrers: Referrers,
    lock: StoreLock,
}

impl Store {
    /// Creates a store at `dir` (the `.store` directory itself). Creating an existing store is
    /// a no-op that opens it.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::UnsupportedFormat`] if `dir` is a store of another version.
    pub fn init(dir: &Path) -> Result<(Store, bool), Error> {
        if dir.join(FORMAT_FILE).exists() {
            return Ok((Store::open(dir)?, false));
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| Error::Io {
                op: "creating",
                path,
                source,
            }
        };
        for sub in [
            "objects/sha256",
            "packs",
            "refs/heads",
            "refs/tags",
            "logs/heads",
            "logs/tags",
        ] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io(&p))?;
        }
        fs::write_atomic(&dir.join(".gitignore"), b"*\n").map_err(io(dir))?;
        // The format file goes last: its presence is what makes the directory a store.
        fs::write_atomic(
            &dir.join(FORMAT_FILE),
            format!("snap-store {FORMAT_VERSION}\n").as_bytes(),
        )
        .map_err(io(dir))?;
        if let Some(parent) = dir.parent() {
            let _ = fs::sync_dir(parent);
        }
        Ok((Store::open(dir)?, true))
    }

    /// Opens the store at `dir` (the `.store` directory itself), taking its shared lock
    /// (waiting up to [`lock_timeout`] while maintenance holds it, or waits for it).
    ///
    /// # Errors
    /// [`Error::NotAStore`], [`Error::UnsupportedFormat`] or [`Error::Io`]; [`Error::Lock`]
    /// naming the lock file and its holder when maintenance kept the store past the timeout.
    ///
    /// When no other snap process uses the store, this first removes the leftovers of
    /// interrupted runs (`.tmp-*` files and directories, ref `.lock` files whose holder died):
    /// see [`Store::sweep_leftovers`].
    pub fn open(dir: &Path) -> Result<Store, Error> {
        Store::open_locked(dir, LockMode::Shared, lock_timeout(), true)
    }

    /// Opens a store as [`Store::open`] does but leaves leftovers where they are, for `fsck`
    /// to report.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_as_is(dir: &Path) -> Result<Store, Error> {
        Store::open_locked(dir, LockMode::Shared, lock_timeout(), false)
    }

    /// Opens a store for maintenance: with the store-wide lock held exclusively, so no other
    /// snap process reads or writes objects meanwhile, waiting up to `wait` (zero: failing at
    /// once) while one does.
    ///
    /// # Errors
    /// As [`Store::open`], and a lock error naming the lock file (and its holder, when known)
    /// when the store is still in use after `wait`.
    pub fn open_exclusive(dir: &Path, wait: Duration) -> Result<Store, Error> {
        Store::open_locked(dir, LockMode::Exclusive, wait, false)
    }

    fn open_locked(
        dir: &Path,
        mode: LockMode,
        timeout: Duration,
        sweep: bool,
    ) -> Result<Store, Error> {
        // `None`: a timeout too long to reach (from the environment, say) never ends.
        let deadline = Instant::now().checked_add(timeout);
        let format_path = dir.join(FORMAT_FILE);
        let text = match std::fs::read_to_string(&format_path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::NotAStore {
                    path: dir.to_owned(),
                });
            }
            Err(source) => {
                return Err(Error::Io {
                    op: "reading",
                    path: format_path,
                    source,
                });
            }
        };
        let current = format!("snap-store {FORMAT_VERSION}");
        if text.trim_end() != current {
            let read_only = !sweep && mode != LockMode::Exclusive; // fsck
            if text.trim_end() != "snap-store 1" {
                return Err(Error::UnsupportedFormat {
                    path: format_path,
                    found: text.trim_end().chars().take(40).collect(),
                });
            }
            // Version 1 is version 2 without blocks in packs and `skip` in indexes: all it
            // holds reads as it is. Say version 2 before anything new can be written, so an
            // older snap refuses the store instead of misreading new indexes (store format §2).
            if !read_only {
                fs::write_atomic(&format_path, format!("{current}\n").as_bytes()).map_err(
                    |source| Error::Io {
                        op: "writing",
                        path: format_path.clone(),
                        source,
                    },
                )?;
            }
        }
        let dir = std::path::absolute(dir).map_err(|source| Error::Io {
            op: "resolving",
            path: dir.to_owned(),
            source,
        })?;
        let lock_path = dir.join(LOCK);
        // One deadline for both waits: a stopped gc makes this fail, not hang (store format §7).
        let left = || deadline.map_or(timeout, |d| d.saturating_duration_since(Instant::now()));
        if mode == LockMode::Shared {
            // Queue behind a gc that is waiting for the store (see `lock::Turnstile`).
            crate::lock::Turnstile::pass(&dir.join(TURNSTILE), left())
                .map_err(|e| waited(e, timeout))?;
        }
        let lock = match (mode, sweep) {
            (LockMode::Shared, true) => StoreLock::acquire_shared_after(&lock_path, left(), || {
                // Best effort: a leftover that cannot be removed now is removed next time.
                let _ = Store::sweep_leftovers(&dir);
            }),
            _ => StoreLock::acquire(&lock_path, mode, left()),
        }
        .map_err(|e| waited(e, timeout))?;
        let root = dir.parent().map_or_else(|| dir.clone(), Path::to_path_buf);
        Ok(Store {
            objects: Objects::new(&dir),
            refs: Refs::new(&dir),
            referrers: Referrers::new(&dir),
            dir,
            root,
            lock,
        })
    }

    /// Finds the store by walking up from `start`: the first directory holding `.store/format`.
    ///
    /// # Errors
    /// [`Error::NotFound`] naming `start`, or as [`Store::open`].
    pub fn discover(start: &Path) -> Result<Store, Error> {
        let start = std::path::absolute(start).map_err(|source| Error::Io {
            op: "resolving",
            path: start.to_owned(),
            source,
        })?;
        match Self::find(&start) {
            Some(dir) => Store::open(&dir),
            None => Err(Error::NotFound { start }),
        }
    }

    /// The `.store` directory above `start`, if any.
    #[must_use]
    pub fn find(start: &Path) -> Option<PathBuf> {
        start
            .ancestors()
            .map(|d| d.join(STORE_DIR_NAME))
            .find(|d| d.join(FORMAT_FILE).is_file())
    }

    /// The store directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The directory that holds the store: recorded paths are relative to it.
    #[must_use]
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Trades this process's shared hold on the store-wide lock for an exclusive one, without
    /// waiting; `false` (holding nothing) when another snap process uses the store. Only for
    /// a command that failed and is about to finish: see `ops::roll_back`.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn try_hold_alone(&self) -> Result<bool, Error> {
        self.lock.try_upgrade().map_err(|source| Error::Io {
            op: "locking",
            path: self.dir.join(LOCK),
            source,
        })
    }

    /// Moves a ref by compare-and-swap, checking its new snapshot is stored.
    ///
    /// # Errors
    /// See [`Refs::update`].
    pub fn update_ref(&self, edit: &RefEdit) -> Result<(), refs::Error> {
        self.refs
            .update(edit, |d: &Digest| self.objects.contains(d))
    }

    /// A new temp directory inside the store (same filesystem as objects, so files staged in it
    /// can be renamed into place), removed when dropped.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn temp_dir(&self) -> Result<tempfile::TempDir, Error> {
        tempfile::Builder::new()
            .prefix(fs::TEMP_PREFIX)
            .tempdir_in(&self.dir)
            .map_err(|source| Error::Io {
                op: "creating a temp directory in",
                path: self.dir.clone(),
                source,
            })
    }

    /// Removes what interrupted runs left in the store `dir`: every `.tmp-*` file or directory,
    /// every `.lock` file no live process holds, every pack index (`packs/<64 hex>.idx`)
    /// whose pack is not there, and every partial transfer untouched for
    /// [`partial::STALE_AFTER`]. Returns how many were removed.
    ///
    /// Only names no ref can take are touched (store format §6.1): ref names never start with
    /// `.` nor end with `.lock`, and pack indexes are looked for in `packs/` alone, so a ref or
    /// reflog named, say, `release-1.idx` is never taken for a leftover.
    ///
    /// Call it only while holding the store lock exclusively: then no other snap process is
    /// writing, so every temp file is garbage (store format §2).
    ///
    /// # Errors
    /// [`Error::Io`] for the first leftover that could not be removed.
    pub fn sweep_leftovers(dir: &Path) -> Result<usize, Error> {
        let packs_dir = dir.join(objects::PACKS_DIR);
        let partial_dir = dir.join(partial::PARTIAL_DIR);
        let mut removed = 0;
        let mut stack = vec![dir.to_owned()];
        while let Some(d) = stack.pop() {
            let rd = match std::fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(Error::Io {
                        op: "listing",
                        path: d,
                        source,
                    });
                }
            };
            for e in rd.filter_map(Result::ok) {
                let p = e.path();
                let name = e.file_name();
                let name = name.to_string_lossy();
                let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                let res = if name.starts_with(fs::TEMP_PREFIX) {
                    if is_dir {
                        std::fs::remove_dir_all(&p)
                    } else {
                        std::fs::remove_file(&p)
                    }
                    .map(|()| true)
                } else if name.ends_with(".lock") && !is_dir {
                    crate::lock::remove_if_stale(&p).map(|_| !p.exists())
                } else if d == partial_dir && !is_dir && partial::is_partial_name(&name) {
                    // Partial transfers only when nothing has touched them for a week (§2.1).
                    let stale = partial::is_stale(&p, std::time::SystemTime::now());
                    if stale {
                        std::fs::remove_file(&p)
                    } else {
                        Ok(())
                    }
                    .map(|()| stale)
                } else if d == packs_dir
                    && !is_dir
                    && objects::index_digest(&name).is_some()
                    && !p.with_extension("pack").exists()
                {
                    // A pack's index is written before the pack (§5.3): this one's writer died.
                    std::fs::remove_file(&p).map(|()| true)
                } else {
                    // Fan-out directories of loose objects hold no temp files (they are made in
                    // `objects/sha256/`), and may hold very many objects: not read.
                    let fan_out = name.len() == 2 && d.ends_with("objects/sha256");
                    if is_dir && !fan_out {
                        stack.push(p.clone());
                    }
                    Ok(false)
                };
                match res {
                    Ok(true) => removed += 1,
                    Ok(false) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(source) => {
                        return Err(Error::Io {
                            op: "removing",
                            path: p,
                            source,
                        });
                    }
                }
            }
        }
        Ok(removed)
    }

    /// Leftover temp files (`.tmp-*`) anywhere in the store.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn temp_files(&self) -> Result<Vec<PathBuf>, Error> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            let rd = std::fs::read_dir(&d).map_err(|source| Error::Io {
                op: "listing",
                path: d.clone(),
                source,
            })?;
            for e in rd.filter_map(Result::ok) {
                let p = e.path();
                if e.file_name().to_string_lossy().starts_with(fs::TEMP_PREFIX) {
                    out.push(p);
                } else if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(p);
                }
            }
        }
        out.sort();
        Ok(out)
    }
}

/// A lock error saying how long opening the store waited in all.
fn waited(e: lock::Error, timeout: Duration) -> lock::Error {
    match e {
        lock::Error::Locked {
            lock_path, holder, ..
        } => lock::Error::Locked {
            lock_path,
            holder,
            waited: timeout,
        },
        e => e,
    }
}

/// `<store>/cache/NAME`: a cache file (store format §9.1), which only speed depends on.
#[must_use]
pub fn cache_file(store_dir: &Path, name: &str) -> PathBuf {
    store_dir.join("cache").join(name)
}

/// `<store>/config`: the store's settings (store format §2).
#[must_use]
pub fn config_file(store_dir: &Path) -> PathBuf {
    store_dir.join("config")
}

/// The store-wide lock file (store format §7).
pub const LOCK: &str = "LOCK";

/// The turnstile in front of `LOCK` (store format §7).
pub const TURNSTILE: &str = "LOCK.turnstile";

/// How long opening a store waits for the turnstile and `LOCK` when no timeout is given
/// otherwise: what a gc of a large store takes, by far.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);

/// The environment variable that sets how long opening a store waits, in milliseconds.
pub const LOCK_TIMEOUT_VAR: &str = "SNAP_STORE_LOCK_TIMEOUT_MS";

/// How long opening a store waits for a gc: [`LOCK_TIMEOUT_VAR`], else
/// [`DEFAULT_LOCK_TIMEOUT`].
#[must_use]
pub fn lock_timeout() -> Duration {
    std::env::var(LOCK_TIMEOUT_VAR)
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(DEFAULT_LOCK_TIMEOUT, Duration::from_millis)
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No store above the starting directory.
    #[error("no snap store found in {} or any parent directory", start.display())]
    NotFound {
        /// Where the search started.
        start: PathBuf,
    },
    /// The directory is not a store.
    #[error("{} is not a snap store (no `format` file)", path.display())]
    NotAStore {
        /// The directory.
        path: PathBuf,
    },
    /// A store of a version this snap does not know.
    #[error("{} says `{found}`; this snap reads `snap-store 1` and `snap-store {FORMAT_VERSION}`", path.display())]
    UnsupportedFormat {
        /// The format file.
        path: PathBuf,
        /// Its content.
        found: String,
    },
    /// The store lock.
    #[error(transparent)]
    Lock(#[from] lock::Error),
    /// An I/O error.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `creating`, `listing`, `removing`, ….
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::NotFound { .. } | Error::NotAStore { .. } => K::NotFound,
            Error::UnsupportedFormat { .. } => K::InvalidInput,
            Error::Lock(crate::lock::Error::Locked { .. }) => K::Conflict,
            _ => K::Io,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;

    // issue 13: the sweep took every `*.idx` without a sibling `.pack` for an orphan pack
    // index, refs and reflogs included.
    #[test]
    fn sweep_removes_leftovers_and_nothing_a_ref_can_be_named()
    -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let (store, _) = Store::init(&tmp.path().join(STORE_DIR_NAME))?;
        let dir = store.dir().to_owned();
        drop(store);
        let hex = Digest::of(b"pack").hex();
        let fresh_part = format!("partial/{}.part", Digest::of(b"fresh").hex());
        let ref_like_part = format!("refs/heads/partial/{hex}.part");
        let keep = [
            "refs/heads/release-1.idx",
            "logs/heads/release-1.idx",
            "refs/tags/a/b.idx",
            "logs/tags/a/b.idx",
            "packs/not-a-digest.idx",
            "partial/notes.txt",
            &fresh_part,
            &ref_like_part,
        ];
        let gone = [
            format!("packs/{hex}.idx"),
            "refs/heads/.tmp-123".to_owned(),
            "refs/heads/main.lock".to_owned(),
            "objects/sha256/.tmp-9".to_owned(),
            format!("partial/{hex}.part"),
        ];
        // Untouched for more than a week: the stale part, and the ref named like one.
        let aged = [gone[4].as_str(), ref_like_part.as_str()];
        for p in keep.iter().copied().chain(gone.iter().map(String::as_str)) {
            let path = dir.join(p);
            std::fs::create_dir_all(path.parent().ok_or("no parent")?)?;
            std::fs::write(&path, b"x")?;
            if aged.contains(&p) {
                let week_ago = std::time::SystemTime::now() - partial::STALE_AFTER;
                std::fs::File::options()
                    .write(true)
                    .open(&path)?
                    .set_modified(week_ago - std::time::Duration::from_secs(60))?;
            }
        }
        assert_eq!(Store::sweep_leftovers(&dir)?, gone.len());
        for p in keep {
            assert!(dir.join(p).exists(), "{p} is not a leftover and must stay");
        }
        for p in &gone {
            assert!(!dir.join(p).exists(), "{p} is a leftover");
        }
        Ok(())
    }
}
