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
//! No wait here is unbounded: every `flock` is taken by polling its non-blocking form with
//! backoff until the timeout the caller gives, so a holder that is stopped (`SIGSTOP`,
//! Ctrl-Z) or stuck makes others fail with [`Error::Locked`] instead of hanging. That error
//! names the process holding the lock when the system says ([`holder`]: `/proc/locks` on
//! Linux).
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
                    // Waits only while a waiter is checking this file for staleness (which then
                    // removes it, and we start over), unless that waiter is stopped.
                    lock_within(&file, &lock_path, LockMode::Exclusive, timeout)?;
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
                        return Err(Error::Locked {
                            holder: holder(&lock_path, LockMode::Exclusive),
                            lock_path,
                            waited: timeout,
                        });
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
    /// Takes the lock on `path` (creating the file), waiting up to `timeout` (zero: trying
    /// once) while another process holds a conflicting lock.
    ///
    /// # Errors
    /// [`Error::Locked`] after `timeout`, or [`Error::Io`].
    pub fn acquire(path: &Path, mode: LockMode, timeout: Duration) -> Result<StoreLock, Error> {
        let file = open_lock_file(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        lock_within(&file, path, mode, timeout)?;
        Ok(StoreLock { file })
    }
}

impl StoreLock {
    /// Takes the lock shared, waiting up to `timeout` for an exclusive holder to leave; but
    /// when no other process holds it at all, first runs `alone` while holding it exclusively.
    ///
    /// # Errors
    /// [`Error::Locked`] after `timeout`, or [`Error::Io`].
    pub fn acquire_shared_after(
        path: &Path,
        timeout: Duration,
        alone: impl FnOnce(),
    ) -> Result<StoreLock, Error> {
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
        lock_within(&file, path, LockMode::Shared, timeout)?;
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
    /// Closes the turnstile until dropped, waiting up to `timeout` for another closer to open
    /// it.
    ///
    /// # Errors
    /// [`Error::Locked`] after `timeout`, or [`Error::Io`].
    pub fn close(path: &Path, timeout: Duration) -> Result<Turnstile, Error> {
        let file = open_lock_file(path).map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })?;
        lock_within(&file, path, LockMode::Exclusive, timeout)?;
        Ok(Turnstile { file })
    }

    /// Passes through, waiting up to `timeout` while the turnstile is closed.
    ///
    /// # Errors
    /// [`Error::Locked`] after `timeout`, or [`Error::Io`].
    pub fn pass(path: &Path, timeout: Duration) -> Result<(), Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = open_lock_file(path).map_err(io)?;
        lock_within(&file, path, LockMode::Shared, timeout)?;
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

/// The longest pause between two tries of a `flock`: how late a waiter may notice the lock
/// is free, traded against how often it wakes up.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// Takes `file`'s `flock` in `mode`, trying again with backoff until `timeout` has passed
/// (zero: once). Never blocks in the kernel, so never waits longer than asked.
fn lock_within(file: &File, path: &Path, mode: LockMode, timeout: Duration) -> Result<(), Error> {
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let res = match mode {
            LockMode::Shared => file.try_lock_shared(),
            LockMode::Exclusive => file.try_lock(),
        };
        match res {
            Ok(()) => return Ok(()),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(Error::Io {
                    path: path.to_owned(),
                    source,
                });
            }
        }
        let waited = start.elapsed();
        if waited >= timeout {
            return Err(Error::Locked {
                lock_path: path.to_owned(),
                holder: holder(path, mode),
                waited: timeout,
            });
        }
        std::thread::sleep(pause.min(timeout.saturating_sub(waited)));
        pause = (pause * 2).min(MAX_PAUSE);
    }
}

/// A process holding a lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// Its command line (`snap gc --wait 60`), or its command name, if it could be read.
    pub command: Option<String>,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.command {
            Some(c) => write!(f, "pid {} (`{c}`)", self.pid),
            None => write!(f, "pid {}", self.pid),
        }
    }
}

/// The process that holds a `flock` on the file at `path` in conflict with `wanted`, if the
/// system says: on Linux, `/proc/locks` lists each `flock` with its holder's pid and the
/// device and inode of its file. `None` elsewhere, or when the holder cannot be seen (another
/// pid namespace, or it let go meanwhile).
#[must_use]
pub fn holder(path: &Path, wanted: LockMode) -> Option<Holder> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(path).ok()?;
        let locks = std::fs::read_to_string("/proc/locks").ok()?;
        let pid = holder_in_proc_locks(&locks, meta.dev(), meta.ino(), wanted)?;
        Some(Holder {
            pid,
            command: command_of(pid),
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (path, wanted);
        None
    }
}

/// The pid of a holder (not a waiter: those lines have `->`) of a conflicting `FLOCK` on inode
/// `ino` of device `dev`, in the text of `/proc/locks`: `1: FLOCK  ADVISORY  WRITE 4242
/// fe:01:1234 0 EOF`, the device as hex `major:minor`. A line whose device differs is used
/// only if none matches exactly (some filesystems, btrfs for one, report another device to
/// `stat` than the one the lock list names).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn holder_in_proc_locks(locks: &str, dev: u64, ino: u64, wanted: LockMode) -> Option<u32> {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0x0000_0fff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0x0000_00ff);
    let me = std::process::id();
    let mut other_device = None;
    for line in locks.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [_, "FLOCK", _, access, pid, id, ..] = fields[..] else {
            continue; // a waiter (`->`), or a POSIX or OFD lock
        };
        // A shared holder is in the way only of an exclusive lock.
        if wanted == LockMode::Shared && access != "WRITE" {
            continue;
        }
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        let mut parts = id.split(':');
        let (Some(maj), Some(min), Some(inode)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if pid == 0 || pid == me || inode.parse::<u64>().ok() != Some(ino) {
            continue;
        }
        let same_device = u64::from_str_radix(maj, 16).ok() == Some(major)
            && u64::from_str_radix(min, 16).ok() == Some(minor);
        if same_device {
            return Some(pid);
        }
        other_device.get_or_insert(pid);
    }
    other_device
}

/// What process `pid` runs, for a message: its command line with the program's directory
/// left out, else its command name; control characters shown as `?`, at most 120 characters.
#[cfg(target_os = "linux")]
fn command_of(pid: u32) -> Option<String> {
    let proc = Path::new("/proc").join(pid.to_string());
    let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    let mut args: Vec<String> = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if let Some(program) = args.first_mut()
        && let Some(name) = Path::new(program.as_str()).file_name()
    {
        *program = name.to_string_lossy().into_owned();
    }
    let text = if args.is_empty() {
        std::fs::read_to_string(proc.join("comm")).ok()?
    } else {
        args.join(" ")
    };
    let text: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .take(120)
        .collect();
    (!text.is_empty()).then_some(text)
}

/// Lock errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another live process holds the lock.
    #[error(
        "{} is locked by {}{}",
        lock_path.display(),
        holder.as_ref().map_or_else(|| "another process".to_owned(), ToString::to_string),
        gave_up(*waited)
    )]
    Locked {
        /// The lock file.
        lock_path: PathBuf,
        /// Who holds it, when the system says.
        holder: Option<Holder>,
        /// How long this process waited for it (zero: it tried once).
        waited: Duration,
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

fn gave_up(waited: Duration) -> String {
    match waited.as_millis() {
        0 => String::new(),
        ms @ 1..1000 => format!("; gave up after waiting {ms} ms"),
        _ => format!("; gave up after waiting {:.1} s", waited.as_secs_f64()),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)]
// tests write fixtures directly
mod tests;
