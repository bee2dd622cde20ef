//! Locks: `<path>.lock` files for compare-and-swap, and the store-wide advisory lock.
//!
//! * [`LockFile`] is a `#[must_use]` guard for `<path>.lock`, created with `O_EXCL`. It holds
//!   the new content of `<path>` while the caller decides; [`LockFile::commit`] renames it over
//!   `<path>`, and dropping it removes it (a complete rollback). Lock files survive a
//!   `SIGKILL`, so the holder also keeps an advisory `flock` on the lock file's inode for as
//!   long as it lives: a waiter that can take that `flock` knows the holder died and removes
//!   the file (see [`remove_if_stale`] for why this cannot remove a live holder's lock).
//! * [`StoreLock`] is an advisory `flock` on one file: shared for readers and writers of
//!   objects, exclusive for maintenance. The kernel drops it when the process dies.
//!
//! This module decides no retry policy beyond the timeout it is given.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::fs;

/// A held `<path>.lock` file. Drop it to roll back, [`LockFile::commit`] it to apply.
#[must_use = "dropping a lock file releases it without applying anything"]
pub struct LockFile {
    file: Option<File>,
    lock_path: PathBuf,
    target: PathBuf,
}

impl LockFile {
    /// Creates `<target>.lock`, retrying with backoff until `timeout` has passed.
    ///
    /// # Errors
    /// [`Error::Locked`] if the lock file still exists after `timeout`; [`Error::Io`] otherwise.
    pub fn acquire(target: &Path, timeout: Duration) -> Result<LockFile, Error> {
        let lock_path = lock_path_for(target);
        let start = Instant::now();
        let mut wait = Duration::from_millis(1);
        loop {
            let io_err = |source| Error::Io {
                path: lock_path.clone(),
                source,
            };
            match fs::create_new(&lock_path) {
                Ok(file) => {
                    // Blocks only while a waiter is checking this file for staleness.
                    file.lock().map_err(io_err)?;
                    // That waiter may have found it unlocked in the instant before we locked it,
                    // and removed it: then the name is gone or someone else's, and we start over.
                    if names_inode(&lock_path, &file).map_err(io_err)? {
                        fs::crash_point("ref-locked");
                        return Ok(LockFile {
                            file: Some(file),
                            lock_path,
                            target: target.to_owned(),
                        });
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    if remove_if_stale(&lock_path).map_err(io_err)? {
                        continue;
                    }
                    if start.elapsed() >= timeout {
                        return Err(Error::Locked { lock_path });
                    }
                    // Jitter from the clock's low bits spreads out racing processes.
                    let jitter = u64::from(start.elapsed().subsec_nanos() % 1000);
                    std::thread::sleep(wait + Duration::from_micros(jitter));
                    wait = (wait * 2).min(Duration::from_millis(50));
                }
                Err(source) => {
                    return Err(Error::Io {
                        path: lock_path,
                        source,
                    });
                }
            }
        }
    }

    /// The lock file's path.
    #[must_use]
    pub fn lock_path(&self) -> &Path {
        &self.lock_path
    }

    /// The path this lock protects.
    #[must_use]
    pub fn target(&self) -> &Path {
        &self.target
    }

    /// Writes `bytes` into the lock file and fsyncs it (the staged new content).
    ///
    /// # Errors
    /// Any I/O error.
    pub fn write_content(&mut self, bytes: &[u8]) -> Result<(), Error> {
        let path = self.lock_path.clone();
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        let file = self
            .file
            .as_mut()
            .ok_or_else(|| io(io::Error::other("lock file already consumed")))?;
        file.write_all(bytes).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Renames the lock file over its target and fsyncs the directory.
    ///
    /// # Errors
    /// Any I/O error; the lock file is then removed and the target unchanged.
    pub fn commit(mut self) -> Result<(), Error> {
        // The file (and its flock) stays open until the rename is done: a waiter must never
        // see an unlocked lock file under the lock's name while we still own it.
        fs::crash_point("rename");
        let res = std::fs::rename(&self.lock_path, &self.target);
        if let Err(source) = res {
            return Err(Error::Io {
                path: self.target.clone(),
                source,
            });
        }
        if let Some(dir) = self.target.parent() {
            fs::sync_dir(dir).map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        // Nothing left to remove on drop.
        self.lock_path = PathBuf::new();
        Ok(())
    }

    /// Removes the target (a deletion) and then the lock file.
    ///
    /// # Errors
    /// Any I/O error other than the target being absent.
    pub fn commit_delete(self) -> Result<(), Error> {
        match std::fs::remove_file(&self.target) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(Error::Io {
                path: self.target.clone(),
                source: e,
            }),
            _ => {
                if let Some(dir) = self.target.parent() {
                    fs::sync_dir(dir).map_err(|source| Error::Io {
                        path: dir.to_owned(),
                        source,
                    })?;
                }
                Ok(())
            }
        }
    }
}

impl Drop for LockFile {
    fn drop(&mut self) {
        // Remove the name first, then close the file (which releases the flock).
        if !self.lock_path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.lock_path);
        }
        self.file = None;
    }
}

/// Whether `path` still names the inode open as `file`.
fn names_inode(path: &Path, file: &File) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let open = file.metadata()?;
    match std::fs::symlink_metadata(path) {
        Ok(named) => Ok(named.dev() == open.dev() && named.ino() == open.ino()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether a process holds the lock file at `lock_path`: `Some(true)` if one does,
/// `Some(false)` if the file is stale (its holder died), `None` if there is no such file.
///
/// # Errors
/// Any I/O error other than the file being absent.
pub fn is_held(lock_path: &Path) -> io::Result<Option<bool>> {
    let file = match File::open(lock_path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(false)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Some(true)),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}

/// Removes the lock file at `lock_path` if no live process holds it. Returns `true` when the
/// caller should try to create the lock again at once (the file was removed, or had gone).
///
/// Safe against every interleaving with live holders and other waiters, because everyone
/// follows two rules: a holder takes the `flock` right after creating the file and then checks
/// the name still points at its inode (else it starts over); and a lock file's name is removed
/// only by a process holding the `flock` on that inode, after checking the name still points at
/// it. So the name of a live holder's lock is never removed, and a dead holder's is removed once.
///
/// # Errors
/// Any I/O error other than the file being absent.
pub fn remove_if_stale(lock_path: &Path) -> io::Result<bool> {
    let file = match File::open(lock_path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    if names_inode(lock_path, &file)? {
        match std::fs::remove_file(lock_path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// `<target>.lock`.
#[must_use]
pub fn lock_path_for(target: &Path) -> PathBuf {
    let mut s = target.as_os_str().to_owned();
    s.push(".lock");
    PathBuf::from(s)
}

/// A held advisory lock on a file; released on drop or when the process dies.
pub struct StoreLock {
    file: File,
}

/// How a [`StoreLock`] is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once: everyone who reads or writes objects.
    Shared,
    /// One holder and nobody else: maintenance that deletes objects.
    Exclusive,
}

impl StoreLock {
    /// Takes the lock on `path` (creating the file), waiting for it if `wait`, else failing
    /// with [`Error::Locked`] when another process holds a conflicting lock.
    ///
    /// # Errors
    /// [`Error::Locked`] or [`Error::Io`].
    pub fn acquire(path: &Path, mode: LockMode, wait: bool) -> Result<StoreLock, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = open_lock_file(path).map_err(io)?;
        let res = match (mode, wait) {
            (LockMode::Shared, true) => file.lock_shared().map_err(io),
            (LockMode::Exclusive, true) => file.lock().map_err(io),
            (LockMode::Shared, false) => try_lock(file.try_lock_shared(), path),
            (LockMode::Exclusive, false) => try_lock(file.try_lock(), path),
        };
        res.map(|()| StoreLock { file })
    }
}

impl StoreLock {
    /// Takes the lock shared, waiting for an exclusive holder to leave; but when no other
    /// process holds it at all, first runs `alone` while holding it exclusively.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn acquire_shared_after(path: &Path, alone: impl FnOnce()) -> Result<StoreLock, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = open_lock_file(path).map_err(io)?;
        // Exclusive first, on a file holding no lock yet: a failed conversion from shared would
        // drop the shared lock (flock(2) removes the old lock before trying the new one).
        match file.try_lock() {
            Ok(()) => alone(),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(source)) => return Err(io(source)),
        }
        // From exclusive this converts in place (not atomically: another process may get in
        // between, as it could anyway); otherwise it waits for an exclusive holder to leave.
        file.lock_shared().map_err(io)?;
        Ok(StoreLock { file })
    }
}

impl StoreLock {
    /// Gives up this (shared) lock and tries to hold it exclusively instead, without waiting.
    /// Returns whether it now holds it exclusively; if not, it holds nothing (flock(2) drops
    /// the old lock before trying the new one), which is all a caller about to finish needs.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn try_upgrade(&self) -> io::Result<bool> {
        match self.file.try_lock() {
            Ok(()) => Ok(true),
            Err(std::fs::TryLockError::WouldBlock) => Ok(false),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }
}

/// The turnstile in front of a store-wide lock: a maintenance process that wants the lock
/// exclusively holds the turnstile (exclusively) while it waits, and everyone who is about to
/// take the lock shared passes through the turnstile first. So a stream of writers, each
/// holding the lock shared for a moment, cannot starve the waiting maintenance forever: new
/// writers queue at the turnstile, the ones inside finish, maintenance gets in.
pub struct Turnstile {
    file: File,
}

impl Turnstile {
    /// Closes the turnstile (waiting for another closer to open it), until dropped.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn close(path: &Path) -> Result<Turnstile, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = open_lock_file(path).map_err(io)?;
        file.lock().map_err(io)?;
        Ok(Turnstile { file })
    }

    /// Passes through: waits while the turnstile is closed.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn pass(path: &Path) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = open_lock_file(path).map_err(io)?;
        file.lock_shared().map_err(io)?;
        file.unlock().map_err(io)
    }
}

impl Drop for Turnstile {
    fn drop(&mut self) {
        let _ = self.file.unlock();
    }
}

fn open_lock_file(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

fn try_lock(res: Result<(), std::fs::TryLockError>, path: &Path) -> Result<(), Error> {
    match res {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
            lock_path: path.to_owned(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Lock errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another live process holds the lock.
    #[error("{} is locked by another process", lock_path.display())]
    Locked {
        /// The lock file.
        lock_path: PathBuf,
    },
    /// An I/O error on a lock file.
    #[error("lock file {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn second_acquire_times_out_with_the_lock_path() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("r");
        let _held = LockFile::acquire(&target, Duration::ZERO)?;
        match LockFile::acquire(&target, Duration::from_millis(20)) {
            Err(Error::Locked { lock_path }) => assert_eq!(lock_path, dir.path().join("r.lock")),
            other => panic!("expected Locked, got {:?}", other.map(|_| ())),
        }
        Ok(())
    }

    #[test]
    fn drop_rolls_back_and_commit_renames() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("r");
        {
            let mut l = LockFile::acquire(&target, Duration::ZERO)?;
            l.write_content(b"x")?;
        }
        assert!(!target.exists() && !dir.path().join("r.lock").exists());
        let mut l = LockFile::acquire(&target, Duration::ZERO)?;
        l.write_content(b"y")?;
        l.commit()?;
        assert_eq!(std::fs::read(&target)?, b"y");
        assert!(!dir.path().join("r.lock").exists());
        Ok(())
    }

    #[test]
    fn a_dead_holders_lock_file_is_removed_and_a_live_one_is_not()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("r");
        // What a holder killed with SIGKILL leaves: the file, with no flock on it.
        std::fs::write(dir.path().join("r.lock"), b"sha256:partial")?;
        assert_eq!(is_held(&dir.path().join("r.lock"))?, Some(false));
        let held = LockFile::acquire(&target, Duration::ZERO)?;
        assert_eq!(is_held(held.lock_path())?, Some(true));
        assert!(!remove_if_stale(held.lock_path())?);
        assert!(matches!(
            LockFile::acquire(&target, Duration::from_millis(20)),
            Err(Error::Locked { .. })
        ));
        assert!(held.lock_path().exists());
        drop(held);
        assert_eq!(is_held(&dir.path().join("r.lock"))?, None);
        Ok(())
    }

    #[test]
    fn racing_threads_with_stale_locks_about_never_share_the_lock()
    -> Result<(), Box<dyn std::error::Error>> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("r");
        let inside = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for t in 0..4 {
                let (target, inside) = (&target, &inside);
                s.spawn(move || {
                    for i in 0..200 {
                        if (i + t) % 7 == 0 {
                            // Leave a stale lock now and then (create_new fails if one is there).
                            let _ = crate::fs::create_new(&lock_path_for(target));
                        }
                        let l =
                            LockFile::acquire(target, Duration::from_secs(10)).expect("acquire");
                        assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                        std::thread::yield_now();
                        inside.fetch_sub(1, Ordering::SeqCst);
                        drop(l);
                    }
                });
            }
        });
        Ok(())
    }

    #[test]
    fn exclusive_store_lock_excludes_shared() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("LOCK");
        let shared = StoreLock::acquire(&p, LockMode::Shared, false)?;
        let _shared2 = StoreLock::acquire(&p, LockMode::Shared, false)?;
        assert!(matches!(
            StoreLock::acquire(&p, LockMode::Exclusive, false),
            Err(Error::Locked { .. })
        ));
        drop(shared);
        Ok(())
    }
}
