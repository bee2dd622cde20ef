//! Where restore writes: a directory opened once ([`Root`]), below which every path is an
//! [`EntryPath`] resolved relative to directory descriptors without ever following a
//! symlink, and the [`Guard`] that says which paths restore must never write.
//!
//! Resolution: on Linux, `openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` opens the
//! directory of a path in one call and the kernel refuses any symlink on the way; elsewhere,
//! or where a sandbox refuses `openat2`, the components are opened one by one with
//! `O_NOFOLLOW | O_DIRECTORY`. The last component is then created, replaced or removed
//! relative to that descriptor (`mkdirat`, `openat(O_CREAT|O_EXCL|O_NOFOLLOW)`, `symlinkat`,
//! `linkat`, `renameat`, `unlinkat`): a symlink already in a destination, or one a layer just
//! made, is replaced or refused, never written, created, removed or linked through.
//!
//! Guarantees: nothing here writes outside its root. A destination root never loses a
//! non-empty directory (only an empty one is replaced); only a *scratch* root — a staging
//! directory restore created itself — has directories removed recursively.
//!
//! This module knows nothing of objects, trees or layers.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use crate::object::{EntryName, EntryPath};

mod at;
mod error;
mod guard;

use at::{create_at, is_absent, kind_at, remove_tree, temp_name};
pub use error::Error;
use error::io_err;
pub use guard::Guard;

const DIR_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::DIRECTORY)
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC);

/// A directory restore writes below, open by descriptor.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
    scratch: bool,
}

/// The directory a restore thread used last, kept open: operations on its entries skip the
/// path walk. Only for writes that never replace a directory (a snapshot's files, once its
/// directories exist), so the descriptor cannot go stale.
#[derive(Debug, Default)]
pub struct DirCache {
    last: Option<(String, OwnedFd)>,
}

impl DirCache {
    fn get<'a>(&'a mut self, root: &'a Root, dir: Option<&str>) -> io::Result<BorrowedFd<'a>> {
        let Some(dir) = dir else {
            return Ok(root.fd.as_fd());
        };
        if !matches!(&self.last, Some((p, _)) if p == dir) {
            let fd = root.open_dir(dir)?;
            self.last = Some((dir.to_owned(), fd));
        }
        Ok(self.last.as_ref().expect("set just above").1.as_fd())
    }
}

impl Root {
    /// Opens the destination `path` (a directory; the user's own path is resolved as given).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open(path: &Path) -> Result<Root, Error> {
        Root::open_as(path, false)
    }

    /// Opens `path`, a staging directory this restore created and alone writes: directories
    /// in it may be removed recursively (layers replace and white out what earlier ones
    /// wrote).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open_scratch(path: &Path) -> Result<Root, Error> {
        Root::open_as(path, true)
    }

    fn open_as(path: &Path, scratch: bool) -> Result<Root, Error> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_err("opening", path, e.into()))?;
        Ok(Root {
            fd,
            path: path.to_owned(),
            scratch,
        })
    }

    /// The directory, as opened.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `rel` below the root, for messages.
    #[must_use]
    pub fn display(&self, rel: &EntryPath) -> PathBuf {
        self.path.join(rel.as_str())
    }

    /// Opens the directory `dir` (a `/`-separated path of entry names) without following a
    /// symlink anywhere: `ELOOP` if one is in the way, `ENOTDIR` for a file.
    fn open_dir(&self, dir: &str) -> io::Result<OwnedFd> {
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::ResolveFlags;
            static NO_OPENAT2: std::sync::atomic::AtomicBool =
                std::sync::atomic::AtomicBool::new(false);
            if !NO_OPENAT2.load(Ordering::Relaxed) {
                match rustix::fs::openat2(
                    &self.fd,
                    dir,
                    DIR_FLAGS,
                    Mode::empty(),
                    ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
                ) {
                    // Older kernels and some sandboxes: walk instead, from now on.
                    Err(Errno::NOSYS | Errno::PERM | Errno::TOOBIG) => {
                        NO_OPENAT2.store(true, Ordering::Relaxed);
                    }
                    r => return r.map_err(io::Error::from),
                }
            }
        }
        self.walk_dir(dir)
    }

    /// [`Root::open_dir`] without `openat2`: one `O_NOFOLLOW | O_DIRECTORY` open per component.
    fn walk_dir(&self, dir: &str) -> io::Result<OwnedFd> {
        let mut parts = dir.split('/');
        let first = parts.next().unwrap_or(".");
        let mut fd = rustix::fs::openat(&self.fd, first, DIR_FLAGS, Mode::empty())?;
        for part in parts {
            fd = rustix::fs::openat(&fd, part, DIR_FLAGS, Mode::empty())?;
        }
        Ok(fd)
    }

    /// Maps an error on `rel` to [`Error`]: a symlink in the way is refused by name.
    fn fail(&self, op: &'static str, rel: &EntryPath, e: io::Error) -> Error {
        if self.is_blocked_by_symlink(rel, &e) {
            Error::ThroughSymlink {
                path: rel.to_string(),
            }
        } else {
            io_err(op, &self.display(rel), e)
        }
    }

    /// Whether `e`, met resolving `rel`, is a symlink on the way: `O_NOFOLLOW|O_DIRECTORY`
    /// gives `ENOTDIR` for one, `RESOLVE_NO_SYMLINKS` `ELOOP`; only then are the directories
    /// of `rel` looked at, one by one.
    fn is_blocked_by_symlink(&self, rel: &EntryPath, e: &io::Error) -> bool {
        let code = e.raw_os_error();
        if code != Some(Errno::LOOP.raw_os_error()) && code != Some(Errno::NOTDIR.raw_os_error()) {
            return false;
        }
        let mut fd: Option<OwnedFd> = None;
        let parts: Vec<&str> = rel.components().collect();
        for part in &parts[..parts.len() - 1] {
            let dir = fd.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
            match rustix::fs::openat(dir, *part, DIR_FLAGS, Mode::empty()) {
                Ok(next) => fd = Some(next),
                Err(_) => return matches!(kind_at(dir, part), Ok(Some(FileType::Symlink))),
            }
        }
        false
    }

    /// Creates the directory `path`, whose parent exists.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::Io`] (also if `path` exists).
    pub fn mkdir(&self, cache: &mut DirCache, path: &EntryPath) -> Result<(), Error> {
        let (dir, name) = path.split_last();
        cache
            .get(self, dir)
            .and_then(|fd| Ok(rustix::fs::mkdirat(fd, name, Mode::from_raw_mode(0o777))?))
            .map_err(|e| self.fail("creating the directory", path, e))
    }

    /// Creates the new file `path` (its parent exists, nothing is there) with permission bits
    /// `mode` (minus the umask) and hands it to `write`; on failure the file is removed.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::Io`], or what `write` returns.
    pub fn create<T, E: From<Error>>(
        &self,
        cache: &mut DirCache,
        path: &EntryPath,
        mode: u32,
        write: impl FnOnce(&mut File, &Path) -> Result<T, E>,
    ) -> Result<T, E> {
        let (dir, name) = path.split_last();
        let fd = cache
            .get(self, dir)
            .map_err(|e| self.fail("creating", path, e))?;
        let mut file = create_at(fd, name, mode).map_err(|e| self.fail("creating", path, e))?;
        match write(&mut file, &self.display(path)) {
            Ok(t) => Ok(t),
            Err(e) => {
                let _ = rustix::fs::unlinkat(fd, name, AtFlags::empty());
                Err(e)
            }
        }
    }

    /// Creates the symlink `path` → `target` (its parent exists, nothing is there).
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::Io`].
    pub fn symlink(
        &self,
        cache: &mut DirCache,
        path: &EntryPath,
        target: &OsStr,
    ) -> Result<(), Error> {
        let (dir, name) = path.split_last();
        cache
            .get(self, dir)
            .and_then(|fd| Ok(rustix::fs::symlinkat(target, fd, name)?))
            .map_err(|e| self.fail("creating the symlink", path, e))
    }

    /// What is at `path` (not following a symlink); `None` when nothing is, including when a
    /// directory on the way is missing or is not a directory.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn kind(&self, cache: &mut DirCache, path: &EntryPath) -> Result<Option<FileType>, Error> {
        let (dir, name) = path.split_last();
        let fd = match cache.get(self, dir) {
            Ok(fd) => fd,
            Err(e) if is_absent(&e) => return Ok(None),
            Err(e) => return Err(self.fail("reading the type of", path, e)),
        };
        kind_at(fd, name).map_err(|e| io_err("reading the type of", &self.display(path), e))
    }

    /// Whether the directory `path` has no entries.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::Io`].
    pub fn is_empty_dir(&self, path: &EntryPath) -> Result<bool, Error> {
        let fd = self
            .open_dir(path.as_str())
            .map_err(|e| self.fail("listing", path, e))?;
        let mut entries =
            rustix::fs::Dir::new(fd).map_err(|e| self.fail("listing", path, e.into()))?;
        for e in &mut entries {
            let e = e.map_err(|e| self.fail("listing", path, e.into()))?;
            if !matches!(e.file_name().to_bytes(), b"." | b"..") {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The entries of directory `dir` (`None`: the root), with their types. Names that are
    /// not valid entry names (which restore never creates) are an error.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::Io`].
    pub fn entries(&self, dir: Option<&EntryPath>) -> Result<Vec<(EntryName, FileType)>, Error> {
        let at = |e: io::Error| match dir {
            Some(d) => self.fail("listing", d, e),
            None => io_err("listing", &self.path, e),
        };
        let fd = match dir {
            Some(d) => self.open_dir(d.as_str()),
            None => rustix::fs::openat(&self.fd, ".", DIR_FLAGS, Mode::empty()).map_err(Into::into),
        }
        .map_err(at)?;
        let mut out = Vec::new();
        let mut entries = rustix::fs::Dir::read_from(&fd).map_err(|e| at(e.into()))?;
        for e in &mut entries {
            let e = e.map_err(|e| at(e.into()))?;
            let raw = e.file_name().to_bytes();
            if matches!(raw, b"." | b"..") {
                continue;
            }
            let name = std::str::from_utf8(raw)
                .ok()
                .and_then(|n| EntryName::new(n).ok())
                .ok_or_else(|| {
                    at(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("unexpected entry {:?}", String::from_utf8_lossy(raw)),
                    ))
                })?;
            let kind = match e.file_type() {
                FileType::Unknown => kind_at(fd.as_fd(), name.as_str())
                    .map_err(at)?
                    .unwrap_or(FileType::Unknown),
                k => k,
            };
            out.push((name, kind));
        }
        Ok(out)
    }

    /// Removes whatever is at `path`; nothing there is fine. In a scratch root a directory
    /// goes with everything in it; in a destination only an empty one goes
    /// ([`Error::WouldDelete`] otherwise).
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`] if a directory on the way is a symlink, [`Error::WouldDelete`],
    /// [`Error::Io`].
    pub fn remove(&self, path: &EntryPath) -> Result<(), Error> {
        let (dir, name) = path.split_last();
        let mut cache = DirCache::default();
        let fd = match cache.get(self, dir) {
            Ok(fd) => fd,
            // Nothing there to remove: a directory on the way is missing or a file.
            Err(e) if is_absent(&e) && !self.is_blocked_by_symlink(path, &e) => return Ok(()),
            Err(e) => return Err(self.fail("removing", path, e)),
        };
        self.remove_at(fd, name, path)
    }

    fn remove_at(&self, fd: BorrowedFd<'_>, name: &str, path: &EntryPath) -> Result<(), Error> {
        let err = |e: io::Error| io_err("removing", &self.display(path), e);
        match kind_at(fd, name).map_err(err)? {
            None => Ok(()),
            Some(FileType::Directory) => {
                if self.scratch {
                    let name = std::ffi::CString::new(name)
                        .expect("entry names hold no NUL, EntryName checks");
                    remove_tree(fd, &name).map_err(err)
                } else {
                    self.rmdir_at(fd, name, path)
                }
            }
            Some(_) => rustix::fs::unlinkat(fd, name, AtFlags::empty()).map_err(|e| err(e.into())),
        }
    }

    /// Removes the empty directory `name`; a non-empty one is [`Error::WouldDelete`].
    fn rmdir_at(&self, fd: BorrowedFd<'_>, name: &str, path: &EntryPath) -> Result<(), Error> {
        match rustix::fs::unlinkat(fd, name, AtFlags::REMOVEDIR) {
            Ok(()) => Ok(()),
            Err(Errno::NOTEMPTY | Errno::EXIST) => Err(Error::WouldDelete {
                path: self.display(path),
            }),
            Err(e) => Err(io_err("removing", &self.display(path), e.into())),
        }
    }

    /// Empties the directory `dir` (`None`: the root) of a scratch root; a missing directory
    /// is fine.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::Io`].
    pub fn clear(&self, dir: Option<&EntryPath>) -> Result<(), Error> {
        let entries = match self.entries(dir) {
            Err(Error::Io { source, .. }) if is_absent(&source) => return Ok(()),
            r => r?,
        };
        for (name, _) in entries {
            self.remove(&EntryPath::child(dir, &name))?;
        }
        Ok(())
    }

    /// Creates every missing directory of `path`, returning how many. A symlink on the way is
    /// [`Error::ThroughSymlink`]; another non-directory is replaced in a scratch root (a later
    /// layer's directory replaces an earlier layer's file) and an error in a destination.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::Io`].
    pub fn make_dirs(&self, path: &EntryPath) -> Result<u64, Error> {
        let mut created = 0;
        let mut fd: Option<OwnedFd> = None;
        let mut walked: Option<EntryPath> = None;
        for part in path.components() {
            let here = EntryPath::child(
                walked.as_ref(),
                &EntryName::new(part).expect("components of an EntryPath are entry names"),
            );
            let parent = fd.as_ref().map_or(self.fd.as_fd(), AsFd::as_fd);
            let next = match rustix::fs::openat(parent, part, DIR_FLAGS, Mode::empty()) {
                Ok(next) => next,
                Err(e) => {
                    match (
                        e,
                        kind_at(parent, part)
                            .map_err(|e| self.fail("creating the directory", &here, e))?,
                    ) {
                        (_, Some(FileType::Symlink)) => {
                            return Err(Error::ThroughSymlink {
                                path: here.to_string(),
                            });
                        }
                        (Errno::NOENT, None) => {}
                        (_, Some(k)) if self.scratch && k != FileType::Directory => {
                            rustix::fs::unlinkat(parent, part, AtFlags::empty()).map_err(|e| {
                                self.fail("creating the directory", &here, e.into())
                            })?;
                        }
                        (e, _) => return Err(self.fail("creating the directory", &here, e.into())),
                    }
                    rustix::fs::mkdirat(parent, part, Mode::from_raw_mode(0o777))
                        .map_err(|e| self.fail("creating the directory", &here, e.into()))?;
                    created += 1;
                    rustix::fs::openat(parent, part, DIR_FLAGS, Mode::empty())
                        .map_err(|e| self.fail("creating the directory", &here, e.into()))?
                }
            };
            fd = Some(next);
            walked = Some(here);
        }
        Ok(created)
    }

    /// Makes `path` a directory: kept if it is one, created if nothing is there, replacing a
    /// file or symlink. Returns whether it created one. Its parent must be a directory.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::Io`].
    pub fn replace_dir(&self, path: &EntryPath) -> Result<bool, Error> {
        let (dir, name) = path.split_last();
        let mut cache = DirCache::default();
        let fd = cache
            .get(self, dir)
            .map_err(|e| self.fail("replacing with a directory", path, e))?;
        let err = |e: io::Error| io_err("replacing with a directory", &self.display(path), e);
        match kind_at(fd, name).map_err(err)? {
            Some(FileType::Directory) => return Ok(false),
            Some(_) => {
                rustix::fs::unlinkat(fd, name, AtFlags::empty()).map_err(|e| err(e.into()))?;
            }
            None => {}
        }
        rustix::fs::mkdirat(fd, name, Mode::from_raw_mode(0o777)).map_err(|e| err(e.into()))?;
        Ok(true)
    }

    /// Puts a new file at `path` atomically: `write` fills a temp file beside it, which is
    /// synced and renamed over whatever is there (an empty directory is removed first; a
    /// non-empty one is [`Error::WouldDelete`]). Its parent must be a directory.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::WouldDelete`], [`Error::Io`], or what `write` returns.
    pub fn replace_file<T, E: From<Error>>(
        &self,
        cache: &mut DirCache,
        path: &EntryPath,
        mode: u32,
        write: impl FnOnce(&mut File, &Path) -> Result<T, E>,
    ) -> Result<T, E> {
        let (dir, name) = path.split_last();
        let fd = cache
            .get(self, dir)
            .map_err(|e| self.fail("writing", path, e))?;
        let temp = temp_name();
        let mut file = create_at(fd, &temp, mode).map_err(|e| self.fail("writing", path, e))?;
        let out = write(&mut file, &self.display(path)).and_then(|t| {
            file.sync_data()
                .map_err(|e| io_err("writing", &self.display(path), e))?;
            self.rename_over(fd, &temp, fd, name, path, false)?;
            Ok(t)
        });
        if out.is_err() {
            let _ = rustix::fs::unlinkat(fd, temp.as_str(), AtFlags::empty());
        }
        out
    }

    /// Puts the symlink `path` → `target` in place atomically, like [`Root::replace_file`].
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::WouldDelete`], [`Error::Io`].
    pub fn replace_symlink(
        &self,
        cache: &mut DirCache,
        path: &EntryPath,
        target: &OsStr,
    ) -> Result<(), Error> {
        let (dir, name) = path.split_last();
        let fd = cache
            .get(self, dir)
            .map_err(|e| self.fail("creating the symlink", path, e))?;
        let temp = temp_name();
        rustix::fs::symlinkat(target, fd, temp.as_str())
            .map_err(|e| self.fail("creating the symlink", path, e.into()))?;
        let out = self.rename_over(fd, &temp, fd, name, path, false);
        if out.is_err() {
            let _ = rustix::fs::unlinkat(fd, temp.as_str(), AtFlags::empty());
        }
        out
    }

    /// Moves `path` from the scratch root `from` (on the same filesystem) to `path` here,
    /// replacing a file or symlink there, or an empty directory; a non-empty directory is
    /// [`Error::WouldDelete`]. Its parent here must be a directory.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::WouldDelete`], [`Error::Io`].
    pub fn take(&self, from: &Root, path: &EntryPath) -> Result<(), Error> {
        let (dir, name) = path.split_last();
        let mut ours = DirCache::default();
        let mut theirs = DirCache::default();
        let to = ours
            .get(self, dir)
            .map_err(|e| self.fail("moving into place", path, e))?;
        let src = theirs
            .get(from, dir)
            .map_err(|e| from.fail("moving into place", path, e))?;
        let is_dir = kind_at(src, name)
            .map_err(|e| io_err("moving into place", &from.display(path), e))?
            == Some(FileType::Directory);
        self.rename_over(src, name, to, name, path, is_dir)
    }

    /// Renames `from_name` (in `from_dir`) to `name` (in `dir`): a file or symlink there is
    /// replaced by the rename itself; a directory there must be empty and is removed first;
    /// when a directory is moved, a file or symlink in its way is removed first.
    fn rename_over(
        &self,
        from_dir: BorrowedFd<'_>,
        from_name: &str,
        dir: BorrowedFd<'_>,
        name: &str,
        path: &EntryPath,
        moving_dir: bool,
    ) -> Result<(), Error> {
        let err = |e: io::Error| io_err("moving into place", &self.display(path), e);
        match kind_at(dir, name).map_err(err)? {
            Some(FileType::Directory) => self.rmdir_at(dir, name, path)?,
            Some(_) if moving_dir => {
                rustix::fs::unlinkat(dir, name, AtFlags::empty()).map_err(|e| err(e.into()))?;
            }
            _ => {}
        }
        crate::fs::crash_point("rename");
        rustix::fs::renameat(from_dir, from_name, dir, name).map_err(|e| err(e.into()))
    }

    /// Hard-links the regular file `target` at the new name `path`; `false` (and nothing
    /// done) if `target` is not a regular file.
    ///
    /// # Errors
    /// [`Error::ThroughSymlink`], [`Error::Io`].
    pub fn hard_link(&self, target: &EntryPath, path: &EntryPath) -> Result<bool, Error> {
        let (tdir, tname) = target.split_last();
        let (dir, name) = path.split_last();
        let mut theirs = DirCache::default();
        let mut ours = DirCache::default();
        let src = match theirs.get(self, tdir) {
            Ok(fd) => fd,
            Err(e) if is_absent(&e) && !self.is_blocked_by_symlink(target, &e) => {
                return Ok(false);
            }
            Err(e) => return Err(self.fail("linking", target, e)),
        };
        if kind_at(src, tname).map_err(|e| io_err("linking", &self.display(target), e))?
            != Some(FileType::RegularFile)
        {
            return Ok(false);
        }
        let to = ours
            .get(self, dir)
            .map_err(|e| self.fail("linking", path, e))?;
        // No AT_SYMLINK_FOLLOW: the name itself is linked, and it was just checked to be a file.
        rustix::fs::linkat(src, tname, to, name, AtFlags::empty())
            .map_err(|e| self.fail("linking", path, e.into()))?;
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests;
