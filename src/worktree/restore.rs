//! Materializing a tree into a directory, byte for byte.
//!
//! A restore is planned first (every tree read and verified), then applied:
//!
//! * into a new or empty destination, everything is written into a staging directory next to
//!   it (`.tmp-restore-*`), the filesystem is synced, and the staging directory (or its
//!   children, for an existing empty destination) is renamed into place: an interrupted
//!   restore leaves no partial destination;
//! * with `force` into a non-empty destination, each file is written to a temp file beside
//!   its final path and renamed over it, so no final path ever holds a partial file.
//!
//! Every file's digest is verified before its final rename. Symlinks are created, never
//! followed: anything in the way of a recorded directory (a symlink, a file) is replaced only
//! with `force`. Files are created with mode 0666 or 0777 minus the umask.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use crate::digest::Digest;
use crate::object::{EntryKind, Tree};
use crate::store::objects::{self, Location, Objects};

/// What to restore, flattened in pre-order.
#[derive(Debug, Default)]
pub struct RestorePlan {
    /// Directories, parents first (relative paths).
    pub dirs: Vec<String>,
    /// Files: relative path, digest, size, executable.
    pub files: Vec<PlannedFile>,
    /// Symlinks: relative path and target.
    pub symlinks: Vec<(String, String)>,
}

/// One file to write.
#[derive(Clone, Debug)]
pub struct PlannedFile {
    /// Relative path.
    pub path: String,
    /// Content digest.
    pub digest: Digest,
    /// Size.
    pub size: u64,
    /// Executable bit.
    pub executable: bool,
}

impl RestorePlan {
    /// Total bytes of files.
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Reads every tree below `root` (verifying each) into a plan.
///
/// # Errors
/// [`Error::Objects`] if a tree is missing or corrupt; [`Error::Tree`] if malformed.
pub fn plan(objects: &Objects, root: &Digest) -> Result<RestorePlan, Error> {
    plan_with(
        |d| Ok(objects.read(d, crate::snapshot::MAX_METADATA_BYTES)?),
        root,
    )
}

/// Like [`plan`], reading each tree through `read_tree` (which must verify what it returns):
/// `snap import` plans a snapshot from blobs it has checked but not stored yet.
///
/// # Errors
/// Whatever `read_tree` returns; [`Error::Tree`] if a tree is malformed.
pub fn plan_with(
    mut read_tree: impl FnMut(&Digest) -> Result<Vec<u8>, Error>,
    root: &Digest,
) -> Result<RestorePlan, Error> {
    let mut plan = RestorePlan::default();
    let mut stack = vec![(String::new(), *root)];
    // Depth-first, pre-order: pop the last pushed, push children in reverse.
    while let Some((prefix, digest)) = stack.pop() {
        let bytes = read_tree(&digest)?;
        let tree = Tree::decode(&bytes).map_err(|e| Error::Tree {
            digest,
            reason: e.to_string(),
        })?;
        let mut subdirs = Vec::new();
        for e in tree.entries() {
            let path = if prefix.is_empty() {
                e.name.as_str().to_owned()
            } else {
                format!("{prefix}/{}", e.name)
            };
            match &e.kind {
                EntryKind::File {
                    size,
                    digest,
                    executable,
                } => plan.files.push(PlannedFile {
                    path,
                    digest: *digest,
                    size: *size,
                    executable: *executable,
                }),
                EntryKind::Dir { digest } => {
                    plan.dirs.push(path.clone());
                    subdirs.push((path, *digest));
                }
                EntryKind::Symlink { target } => plan.symlinks.push((path, target.clone())),
            }
        }
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(plan)
}

/// Counts of what a restore wrote.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    serde::Serialize,
    serde::Deserialize,
    PartialEq,
    Eq,
    schemars::JsonSchema,
)]
pub struct RestoreStats {
    /// Files written.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// Applies `plan` under `dest`.
///
/// # Errors
/// [`Error::NotEmpty`] if `dest` has entries and `force` is off; [`Error::Objects`] if an
/// object is missing or corrupt (nothing is renamed into place then); [`Error::Io`].
pub fn apply(
    objects: &Objects,
    plan: &RestorePlan,
    dest: &Path,
    force: bool,
    progress: &dyn crate::worktree::build::Progress,
) -> Result<RestoreStats, Error> {
    progress.begin(plan.files.len() as u64, plan.bytes());
    materialize(dest, force, |base, replace| {
        write_all(objects, plan, base, replace, progress)
    })
}

/// Runs `write(base, replace)` so that `dest` ends up holding what it writes, with the same
/// guarantees as [`apply`]: into a new or empty `dest` through a staging directory beside it
/// (then one filesystem sync and a rename), into a non-empty one only with `force`, in place
/// (`replace` is then true). Errors of `write` are returned as they are; the staging
/// directory is removed.
///
/// # Errors
/// [`Error::NotEmpty`], [`Error::NotADirectory`], [`Error::Io`], or what `write` returns.
pub fn materialize<E: From<Error>>(
    dest: &Path,
    force: bool,
    write: impl FnOnce(&Path, bool) -> Result<RestoreStats, E>,
) -> Result<RestoreStats, E> {
    let state = match fs::symlink_metadata(dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => DestState::Missing,
        Err(source) => return Err(io_err(dest, source).into()),
        Ok(m) if m.is_dir() => {
            let mut names = Vec::new();
            for e in fs::read_dir(dest).map_err(|e| io_err(dest, e))? {
                names.push(e.map_err(|e| io_err(dest, e))?.file_name());
            }
            if names.is_empty() {
                DestState::Empty
            } else if names == [crate::store::STORE_DIR_NAME] {
                // A fresh clone holding only its store (`snap pull` then `snap restore SNAP .`):
                // nothing to overwrite, so write in place, as with `force`.
                DestState::OnlyStore
            } else {
                DestState::NonEmpty
            }
        }
        Ok(_) => {
            return Err(Error::NotADirectory {
                path: dest.to_owned(),
            }
            .into());
        }
    };
    if state == DestState::OnlyStore {
        return synced(dest, || write(dest, true));
    }
    if state == DestState::NonEmpty {
        if !force {
            return Err(Error::NotEmpty {
                path: dest.to_owned(),
            }
            .into());
        }
        return synced(dest, || write(dest, true));
    }

    let dest = std::path::absolute(dest).map_err(|e| io_err(dest, e))?;
    let parent = dest
        .parent()
        .ok_or_else(|| Error::NotADirectory { path: dest.clone() })?;
    crate::fs::create_dir_all(parent).map_err(|e| io_err(parent, e))?;
    let stage_path = parent.join(format!(
        "{}restore-{}-{}",
        crate::fs::TEMP_PREFIX,
        std::process::id(),
        unique()
    ));
    fs::create_dir(&stage_path).map_err(|e| io_err(&stage_path, e))?;
    let mut staging = Staging(Some(stage_path.clone()));

    let stats = synced(&stage_path, || write(&stage_path, false))?;

    if state == DestState::Missing {
        fs::rename(&stage_path, &dest).map_err(|e| io_err(&dest, e))?;
        staging.0 = None;
    } else {
        for entry in fs::read_dir(&stage_path).map_err(|e| io_err(&stage_path, e))? {
            let entry = entry.map_err(|e| io_err(&stage_path, e))?;
            let target = dest.join(entry.file_name());
            fs::rename(entry.path(), &target).map_err(|e| io_err(&target, e))?;
        }
        crate::fs::sync_dir(&dest).map_err(|e| io_err(&dest, e))?;
    }
    crate::fs::sync_dir(parent).map_err(|e| io_err(parent, e))?;
    Ok(stats)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DestState {
    Missing,
    Empty,
    NonEmpty,
    OnlyStore,
}

/// Removes a staging directory unless disarmed.
struct Staging(Option<PathBuf>);

impl Drop for Staging {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_dir_all(p);
        }
    }
}

/// Writes the plan under `base`. With `replace`, existing entries in the way are replaced
/// (files and symlinks atomically; a non-directory where a directory goes is removed).
fn write_all(
    objects: &Objects,
    plan: &RestorePlan,
    base: &Path,
    replace: bool,
    progress: &dyn crate::worktree::build::Progress,
) -> Result<RestoreStats, Error> {
    let mut stats = RestoreStats::default();
    for d in &plan.dirs {
        let p = base.join(d);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(_) if replace => {
                fs::remove_file(&p).map_err(|e| io_err(&p, e))?;
                fs::create_dir(&p).map_err(|e| io_err(&p, e))?;
                stats.dirs += 1;
            }
            _ => {
                fs::create_dir(&p).map_err(|e| io_err(&p, e))?;
                stats.dirs += 1;
            }
        }
    }
    let bytes = AtomicU64::new(0);
    plan.files
        .par_iter()
        .try_for_each_init(Dirs::default, |dirs, f| {
            let n = write_file(objects, f, base, &mut *dirs, replace)?;
            bytes.fetch_add(n, Ordering::Relaxed);
            progress.stored(1, n);
            Ok::<(), Error>(())
        })?;
    stats.files = plan.files.len() as u64;
    stats.bytes = bytes.into_inner();
    for (path, target) in &plan.symlinks {
        let p = base.join(path);
        if replace {
            let tmp = temp_sibling(&p);
            symlink(target, &tmp).map_err(|e| io_err(&p, e))?;
            if let Ok(m) = fs::symlink_metadata(&p)
                && m.is_dir()
            {
                fs::remove_dir_all(&p).map_err(|e| io_err(&p, e))?;
            }
            fs::rename(&tmp, &p).map_err(|e| io_err(&p, e))?;
        } else {
            symlink(target, &p).map_err(|e| io_err(&p, e))?;
        }
        stats.symlinks += 1;
    }
    Ok(stats)
}

/// Writes one file: directly (staging) or via a temp file and rename (`replace`). A corrupt
/// copy of the object is skipped in favour of another copy, if the store has one.
fn write_file(
    objects: &Objects,
    f: &PlannedFile,
    base: &Path,
    dirs: &mut Dirs,
    replace: bool,
) -> Result<u64, Error> {
    let path = &base.join(&f.path);
    let target = if replace {
        temp_sibling(path)
    } else {
        path.clone()
    };
    let mut last = None;
    for location in objects.locate_all_packed_first(&f.digest) {
        let created = if replace {
            create_file(&target, f.executable)
        } else {
            dirs.create(base, &f.path, f.executable)
        };
        let out = created.map_err(|e| io_err(&target, e))?;
        match write_copy(objects, f, location, out, path, &target, replace) {
            Ok(n) => return Ok(n),
            Err(e) => {
                let _ = fs::remove_file(&target);
                let corrupt = matches!(e, Error::Objects(objects::Error::Corrupt { .. }));
                last = Some(e);
                if !corrupt {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or(Error::Objects(objects::Error::NotFound(f.digest))))
}

fn write_copy(
    objects: &Objects,
    f: &PlannedFile,
    location: Location,
    mut out: File,
    path: &Path,
    target: &Path,
    replace: bool,
) -> Result<u64, Error> {
    let mut reader = objects.open_at(&f.digest, location)?;
    let mut buf = vec![
        0u8;
        usize::try_from(f.size)
            .unwrap_or(usize::MAX)
            .clamp(1, 256 << 10)
            + 1
    ];
    let mut n = 0u64;
    loop {
        let k =
            io::Read::read(&mut reader, &mut buf).map_err(|e| Error::Objects(reader.error(e)))?;
        if k == 0 {
            break;
        }
        out.write_all(&buf[..k]).map_err(|e| io_err(target, e))?;
        n += k as u64;
    }
    reader.finish()?;
    if n != f.size {
        return Err(Error::Objects(objects::Error::Corrupt {
            digest: f.digest,
            path: target.to_owned(),
            reason: format!("object is {n} bytes, the tree says {}", f.size),
        }));
    }
    if replace {
        out.sync_data().map_err(|e| io_err(target, e))?;
        if let Ok(m) = fs::symlink_metadata(path)
            && m.is_dir()
        {
            fs::remove_dir_all(path).map_err(|e| io_err(path, e))?;
        }
        fs::rename(target, path).map_err(|e| io_err(path, e))?;
    }
    Ok(n)
}

fn create_file(path: &Path, executable: bool) -> io::Result<File> {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(if executable { 0o777 } else { 0o666 });
    }
    #[cfg(not(unix))]
    let _ = executable;
    o.open(path)
}

/// The last directory a restore thread created a file in, kept open: files are created
/// relative to it (`openat`) instead of walking the whole path from `/` for each. Lives for one
/// rayon job of one restore, so it never outlives the tree it was opened in.
#[derive(Default)]
struct Dirs {
    last: Option<(PathBuf, std::os::fd::OwnedFd)>,
}

impl Dirs {
    /// Creates the new file `rel` (a `/`-separated path below `base`, whose directories exist).
    #[cfg(unix)]
    fn create(&mut self, base: &Path, rel: &str, executable: bool) -> io::Result<File> {
        use rustix::fs::{Mode, OFlags};
        let (dir, name) = match rel.rsplit_once('/') {
            Some((d, n)) => (base.join(d), n),
            None => (base.to_owned(), rel),
        };
        let fd = match &self.last {
            Some((p, fd)) if *p == dir => fd,
            _ => {
                let fd = rustix::fs::open(
                    &dir,
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                &self.last.insert((dir, fd)).1
            }
        };
        let mode = if executable { 0o777 } else { 0o666 };
        let file = rustix::fs::openat(
            fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
            Mode::from_raw_mode(mode),
        )?;
        Ok(File::from(file))
    }

    #[cfg(not(unix))]
    fn create(&mut self, base: &Path, rel: &str, executable: bool) -> io::Result<File> {
        create_file(&base.join(rel), executable)
    }
}

#[cfg(unix)]
fn symlink(target: &str, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn symlink(_target: &str, _path: &Path) -> io::Result<()> {
    Err(io::Error::other("symlinks are supported on Unix only"))
}

fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = format!(
        "{}{}-{}",
        crate::fs::TEMP_PREFIX,
        std::process::id(),
        unique()
    );
    path.with_file_name(name)
}

/// Runs `write`, then flushes everything written on `dir`'s filesystem (one `syncfs` instead
/// of an fsync per file). Meanwhile a second thread syncs every [`FLUSH_INTERVAL`], so the
/// disk writes overlap with decompressing and verifying instead of all waiting for the end.
/// The descriptor synced last is opened first, so a write-back error that happens at any time
/// is reported to it; one seen by the background syncs is reported too.
fn synced<T, E: From<Error>>(dir: &Path, write: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let f = File::open(dir).map_err(|e| io_err(dir, e))?;
    let done = (std::sync::Mutex::new(false), std::sync::Condvar::new());
    let background_error = std::sync::Mutex::new(None);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            let mut stop = done
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            loop {
                stop = done
                    .1
                    .wait_timeout(stop, FLUSH_INTERVAL)
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .0;
                if *stop {
                    return;
                }
                if let Err(e) = rustix::fs::syncfs(&f) {
                    *background_error
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                    return;
                }
            }
        });
        let out = write();
        *done
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        done.1.notify_all();
        out
    })?;
    let seen = background_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(e) = seen {
        return Err(io_err(dir, e.into()).into());
    }
    rustix::fs::syncfs(&f).map_err(|e| io_err(dir, e.into()))?;
    Ok(out)
}

/// How often a restore syncs while it writes (see [`synced`]).
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

fn io_err(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Restore errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The destination has entries and `force` was not given.
    #[error("{} is not empty", path.display())]
    NotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// The destination exists and is not a directory.
    #[error("{} exists and is not a directory", path.display())]
    NotADirectory {
        /// The destination.
        path: PathBuf,
    },
    /// A tree that cannot be decoded.
    #[error("tree {digest} is malformed: {reason}")]
    Tree {
        /// The tree.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// An object is missing or corrupt.
    #[error(transparent)]
    Objects(#[from] objects::Error),
    /// An I/O error.
    #[error("{}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}
