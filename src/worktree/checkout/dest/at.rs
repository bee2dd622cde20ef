//! System calls relative to an open directory, never following a symlink: create, stat,
//! remove a tree.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, FileType, Mode, OFlags};
use rustix::io::Errno;

use super::DIR_FLAGS;

/// Creates a new file (`O_EXCL`, `O_NOFOLLOW`) in `dir`.
pub(super) fn create_at(dir: BorrowedFd<'_>, name: &str, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(mode & 0o777),
    )?;
    Ok(File::from(fd))
}

/// The type of `name` in `dir`, not following a symlink; `None` if it does not exist.
pub(super) fn kind_at(dir: BorrowedFd<'_>, name: &str) -> io::Result<Option<FileType>> {
    match rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything in it — each level opened
/// with `O_NOFOLLOW`, so a symlink inside is removed, never followed.
pub(super) fn remove_tree(dir: BorrowedFd<'_>, name: &std::ffi::CStr) -> io::Result<()> {
    let fd = match rustix::fs::openat(dir, name, DIR_FLAGS, Mode::empty()) {
        Ok(fd) => fd,
        Err(Errno::NOTDIR | Errno::LOOP) => {
            return Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?);
        }
        Err(Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut names = Vec::new();
    for e in rustix::fs::Dir::read_from(&fd)? {
        let e = e?;
        let raw = e.file_name().to_bytes();
        if !matches!(raw, b"." | b"..") {
            names.push(e.file_name().to_owned());
        }
    }
    for n in names {
        match rustix::fs::unlinkat(&fd, n.as_c_str(), AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => {}
            Err(Errno::ISDIR | Errno::PERM) => remove_tree(fd.as_fd(), &n)?,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)?)
}

/// Whether `e` means "nothing there": missing, or a non-directory (or symlink) on the way.
pub(super) fn is_absent(e: &io::Error) -> bool {
    [Errno::NOENT, Errno::NOTDIR, Errno::LOOP]
        .iter()
        .any(|n| e.raw_os_error() == Some(n.raw_os_error()))
}

pub(super) fn temp_name() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}{}-{}",
        crate::fs::TEMP_PREFIX,
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
