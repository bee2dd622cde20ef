//! Atomic file writes and directory durability.
//!
//! Owns [`AtomicFile`]: the only way snap writes a final path. A temp file named `.tmp-*` is
//! created in the target's own directory (so the rename is atomic), filled, fsynced and
//! renamed; the parent directory is then fsynced so the rename survives a crash. If anything
//! fails, dropping the temp file removes it: a final name never points at a partial file.
//!
//! This module knows nothing of the `.store/` layout.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// The prefix of every temp file snap creates.
pub const TEMP_PREFIX: &str = ".tmp-";

/// A file being written that will appear atomically at its final path.
pub struct AtomicFile {
    temp: tempfile::NamedTempFile,
    dir: PathBuf,
}

impl AtomicFile {
    /// Starts a temp file in `dir`.
    ///
    /// # Errors
    /// Any I/O error creating the temp file.
    pub fn new_in(dir: &Path) -> io::Result<Self> {
        let temp = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)?;
        Ok(AtomicFile {
            temp,
            dir: dir.to_owned(),
        })
    }

    /// The open temp file.
    pub fn file(&mut self) -> &mut File {
        self.temp.as_file_mut()
    }

    /// The temp file's path.
    #[must_use]
    pub fn path(&self) -> &Path {
        self.temp.path()
    }

    /// The directory the file will appear in.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fsyncs, sets `mode` (Unix permission bits) and renames over `target`, replacing it.
    /// The parent directory is not fsynced; call [`sync_dir`] (once for many files).
    ///
    /// # Errors
    /// Any I/O error; the temp file is then removed.
    pub fn persist_replace(self, target: &Path, mode: Option<u32>) -> io::Result<()> {
        self.prepare(mode)?;
        crash_point("rename");
        self.temp.persist(target).map_err(|e| e.error)?;
        crash_point("renamed");
        Ok(())
    }

    /// Like [`AtomicFile::persist_replace`] but never replaces: if `target` exists, the temp file
    /// is removed and `Ok(false)` is returned (for content-addressed files, where an existing
    /// file already holds the same bytes).
    ///
    /// # Errors
    /// Any I/O error other than the target existing.
    pub fn persist_new(self, target: &Path, mode: Option<u32>) -> io::Result<bool> {
        self.prepare(mode)?;
        crash_point("rename");
        match self.temp.persist_noclobber(target) {
            Ok(_) => {
                crash_point("renamed");
                Ok(true)
            }
            Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(e.error),
        }
    }

    fn prepare(&self, mode: Option<u32>) -> io::Result<()> {
        let file = self.temp.as_file();
        file.sync_all()?;
        if let Some(mode) = mode {
            set_mode(file, mode)?;
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.temp.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.temp.flush()
    }
}

/// A test hook for crash-safety tests: with `SNAP_CRASH_AT=<point>` or `<point>:<n>` in the
/// environment, the process aborts on the spot the `n`-th time (first by default) it reaches
/// `point` — no destructor runs and nothing is cleaned up, as after a `SIGKILL`. Points:
/// `rename` and `renamed` (around every rename of a final path), `ref-locked` and
/// `ref-logged` (in a ref update), `gc-removed` (after each file gc removes),
/// `download-mib` (after each MiB the process downloaded, before it is written to its
/// file). Without the
/// variable this is one relaxed atomic load.
pub fn crash_point(point: &str) {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static AT: OnceLock<Option<(String, AtomicU64)>> = OnceLock::new();
    let at = AT.get_or_init(|| {
        let spec = std::env::var("SNAP_CRASH_AT").ok()?;
        let (name, n) = match spec.split_once(':') {
            Some((name, n)) => (name.to_owned(), n.parse().ok()?),
            None => (spec, 1),
        };
        Some((name, AtomicU64::new(n)))
    });
    if let Some((name, left)) = at
        && name == point
        && left.fetch_sub(1, Ordering::Relaxed) == 1
    {
        std::process::abort();
    }
}

/// Writes `bytes` to `target` atomically (temp, fsync, rename, fsync of the directory),
/// replacing any previous file.
///
/// # Errors
/// Any I/O error; `target` is then unchanged.
pub fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = parent_of(target)?;
    let mut f = AtomicFile::new_in(dir)?;
    f.write_all(bytes)?;
    f.persist_replace(target, None)?;
    sync_dir(dir)
}

/// Fsyncs a directory so renames and creations inside it are durable.
///
/// # Errors
/// Any I/O error opening or syncing the directory.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and its parents, ignoring `AlreadyExists`.
///
/// # Errors
/// Any other I/O error.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    match fs::create_dir_all(dir) {
        Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Opens `path` for appending, creating it, and writes `line` with one `write` call, then
/// fsyncs. Used for logs where each line must be whole.
///
/// # Errors
/// Any I/O error.
pub fn append_line(path: &Path, line: &[u8]) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(line)?;
    f.sync_data()
}

/// Creates `path` exclusively (`O_CREAT|O_EXCL`), for lock files.
///
/// # Errors
/// `AlreadyExists` if it exists, or any other I/O error.
pub fn create_new(path: &Path) -> io::Result<File> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

fn parent_of(target: &Path) -> io::Result<&Path> {
    match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => Ok(p),
        Some(_) => Ok(Path::new(".")),
        None => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no parent directory", target.display()),
        )),
    }
}

/// Sets Unix permission bits (a no-op elsewhere).
///
/// # Errors
/// Any I/O error.
pub fn set_mode(file: &File, mode: u32) -> io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp_files() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("f");
        write_atomic(&target, b"one")?;
        write_atomic(&target, b"two")?;
        assert_eq!(fs::read(&target)?, b"two");
        let names: Vec<_> = fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()?;
        assert_eq!(names.len(), 1, "only the target remains: {names:?}");
        Ok(())
    }

    #[test]
    fn persist_new_keeps_the_existing_file() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let target = dir.path().join("obj");
        let mut a = AtomicFile::new_in(dir.path())?;
        a.write_all(b"first")?;
        assert!(a.persist_new(&target, Some(0o444))?);
        let mut b = AtomicFile::new_in(dir.path())?;
        b.write_all(b"second")?;
        assert!(!b.persist_new(&target, Some(0o444))?, "second writer loses");
        assert_eq!(fs::read(&target)?, b"first");
        assert_eq!(fs::read_dir(dir.path())?.count(), 1, "temp file removed");
        Ok(())
    }

    #[test]
    fn dropping_an_unpersisted_file_removes_it() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        {
            let mut a = AtomicFile::new_in(dir.path())?;
            a.write_all(b"partial")?;
        }
        assert_eq!(fs::read_dir(dir.path())?.count(), 0);
        Ok(())
    }
}
