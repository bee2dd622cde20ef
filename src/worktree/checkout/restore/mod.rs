//! Materializing a tree into a directory, byte for byte.
//!
//! A restore is planned first (every tree read and verified, every path admitted by the
//! [`Guard`]: no `.git` or `.store` anywhere, nothing into the open store), then applied:
//!
//! * into a new or empty destination, everything is written into a staging directory next to
//!   it (`.tmp-restore-*`), the filesystem is synced, and the staging directory (or its
//!   children, for an existing empty destination) is renamed into place: an interrupted
//!   restore leaves no partial destination;
//! * in place — with `force` into a non-empty destination, or into one holding only its
//!   `.store` — the destination is first checked against the plan: where the plan has a file
//!   or symlink and the destination a directory that is not empty, the restore is refused
//!   before anything is written, naming the directory (files the snapshot does not record are
//!   never lost). Then each file is written to a temp file beside its final path and renamed
//!   over it, so no final path ever holds a partial file.
//!
//! Images and artifacts go through [`assemble`]: they are built in a staging directory of
//! their own — so a whiteout can only undo what an earlier layer wrote — which is renamed
//! into a new or empty destination, or merged into the destination by the same rules.
//!
//! Every file's digest is verified before its final rename. Every filesystem operation goes
//! through [`Root`]: relative to directory descriptors, never following a symlink (one in the
//! way of a recorded directory is replaced). Files are created with mode 0666 or 0777 minus
//! the umask.

use std::fs::{self};
use std::io;
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use crate::digest::Digest;
use crate::object::{EntryKind, EntryPath, Tree};
use crate::store::objects::Objects;
use crate::worktree::checkout::dest::{self, DirCache, Guard, Root};

mod error;
mod sync;
mod write;

pub use error::Error;
use error::io_err;
use sync::synced;
use write::{unique, write_fresh, write_in_place};

/// What to restore, flattened in pre-order.
#[derive(Debug, Default)]
pub struct RestorePlan {
    /// Directories, parents first.
    pub dirs: Vec<EntryPath>,
    /// Files: path, digest, size, executable.
    pub files: Vec<PlannedFile>,
    /// Symlinks: path and target.
    pub symlinks: Vec<(EntryPath, String)>,
}

/// One file to write.
#[derive(Clone, Debug)]
pub struct PlannedFile {
    /// Path in the snapshot.
    pub path: EntryPath,
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

    /// Every path of the plan: directories, files, symlinks.
    pub fn paths(&self) -> impl Iterator<Item = &EntryPath> {
        self.dirs
            .iter()
            .chain(self.files.iter().map(|f| &f.path))
            .chain(self.symlinks.iter().map(|(p, _)| p))
    }

    /// The paths that are not directories: files and symlinks.
    fn leaves(&self) -> impl Iterator<Item = &EntryPath> {
        self.files
            .iter()
            .map(|f| &f.path)
            .chain(self.symlinks.iter().map(|(p, _)| p))
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
    let mut stack: Vec<(Option<EntryPath>, Digest)> = vec![(None, *root)];
    // Depth-first, pre-order: pop the last pushed, push children in reverse.
    while let Some((prefix, digest)) = stack.pop() {
        let bytes = read_tree(&digest)?;
        let tree = Tree::decode(&bytes).map_err(|e| Error::Tree {
            digest,
            reason: e.to_string(),
        })?;
        let mut subdirs = Vec::new();
        for e in tree.entries() {
            let path = EntryPath::child(prefix.as_ref(), &e.name);
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
                    subdirs.push((Some(path), *digest));
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
    /// Entries of an image's layers that were not restored: devices, FIFOs, names that are
    /// not UTF-8, and paths with a reserved name (`.git`, `.store`) or into the store.
    #[serde(default)]
    pub skipped: u64,
}

/// Applies `plan` under `dest`.
///
/// # Errors
/// [`dest::Error::Reserved`] or [`dest::Error::Protected`] for a path the guard refuses, and
/// [`dest::Error::WouldDelete`] for a non-empty directory where the plan has a file or symlink
/// (both before anything is written); [`Error::NotEmpty`] if `dest` has entries and `force`
/// is off; [`Error::Objects`] if an object is missing or corrupt (nothing is renamed into
/// place then); [`Error::Io`].
pub fn apply(
    objects: &Objects,
    plan: &RestorePlan,
    dest: &Path,
    force: bool,
    guard: &Guard,
    progress: &dyn crate::progress::Progress,
) -> Result<RestoreStats, Error> {
    for path in plan.paths() {
        guard.admit(path)?;
    }
    let state = DestState::of(dest, force)?;
    progress.begin("Restoring", plan.bytes(), plan.files.len() as u64);
    if state.in_place() {
        let root = Root::open(dest)?;
        check_in_place(&root, plan.leaves())?;
        return synced(dest, || write_in_place(objects, plan, &root, progress));
    }
    staged(dest, state, |stage| {
        write_fresh(objects, plan, stage, progress)
    })
}

/// Runs `build(stage, guard)` in a staging directory of its own, then puts what it wrote in
/// `dest` with the guarantees of [`apply`]: into a new or empty `dest` by renaming the
/// staging directory (beside `dest`) into place; in place (with `force`, or into a
/// destination holding only `.store`) by checking `dest` against what was built, then moving
/// each entry over from the staging directory (inside `dest`, so the moves are renames).
/// `build` must admit with `guard` what it writes; what it built is checked again before the
/// merge. Errors of `build` are returned as they are; the staging directory is removed.
///
/// # Errors
/// [`Error::NotEmpty`], [`Error::NotADirectory`], [`Error::Dest`], [`Error::Io`], or what
/// `build` returns.
pub fn assemble<E: From<Error>>(
    dest: &Path,
    force: bool,
    guard: &Guard,
    build: impl FnOnce(&Root, &Guard) -> Result<RestoreStats, E>,
) -> Result<RestoreStats, E> {
    let state = DestState::of(dest, force)?;
    if !state.in_place() {
        return staged(dest, state, |stage| build(stage, guard));
    }
    let root = Root::open(dest).map_err(Error::from)?;
    let temp = tempfile::Builder::new()
        .prefix(&format!("{}restore-", crate::fs::TEMP_PREFIX))
        .tempdir_in(dest)
        .map_err(|e| io_err("creating a staging directory in", dest, e))?;
    let mut guard = guard.clone();
    if let Some(name) = temp.path().file_name() {
        guard.protect(Path::new(name), temp.path().to_owned());
    }
    let stage = Root::open_scratch(temp.path()).map_err(Error::from)?;
    let stats = build(&stage, &guard)?;
    let built = walk(&stage)?;
    for (path, _) in &built {
        guard.admit(path).map_err(Error::from)?;
    }
    check_in_place(&root, built.iter().filter(|(_, d)| !d).map(|(p, _)| p))?;
    synced(dest, || merge(&stage, &root, &built))?;
    drop(stage);
    temp.close()
        .map_err(|e| io_err("removing the staging directory", dest, e))?;
    Ok(stats)
}

/// What the destination holds before a restore.
#[derive(Clone, Copy, PartialEq, Eq)]
enum DestState {
    Missing,
    Empty,
    NonEmpty,
    OnlyStore,
}

impl DestState {
    /// Looks at `dest`; a non-empty one without `force` is [`Error::NotEmpty`].
    fn of(dest: &Path, force: bool) -> Result<DestState, Error> {
        let state = match fs::symlink_metadata(dest) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => DestState::Missing,
            Err(source) => return Err(io_err("reading the metadata of", dest, source)),
            Ok(m) if m.is_dir() => {
                let mut names = Vec::new();
                for e in fs::read_dir(dest).map_err(|e| io_err("listing", dest, e))? {
                    names.push(e.map_err(|e| io_err("listing", dest, e))?.file_name());
                }
                if names.is_empty() {
                    DestState::Empty
                } else if names == [crate::store::STORE_DIR_NAME] {
                    // A fresh clone holding only its store (`snap pull` then `snap restore
                    // SNAP .`): nothing to overwrite, so write in place, as with `force`.
                    DestState::OnlyStore
                } else {
                    DestState::NonEmpty
                }
            }
            Ok(_) => {
                return Err(Error::NotADirectory {
                    path: dest.to_owned(),
                });
            }
        };
        if state == DestState::NonEmpty && !force {
            return Err(Error::NotEmpty {
                path: dest.to_owned(),
            });
        }
        Ok(state)
    }

    fn in_place(self) -> bool {
        matches!(self, DestState::NonEmpty | DestState::OnlyStore)
    }
}

/// Runs `write` on a staging directory beside `dest` (new or empty), then one filesystem
/// sync, then renames the staging directory (or its entries) into place.
fn staged<E: From<Error>>(
    dest: &Path,
    state: DestState,
    write: impl FnOnce(&Root) -> Result<RestoreStats, E>,
) -> Result<RestoreStats, E> {
    let dest = std::path::absolute(dest).map_err(|e| io_err("resolving", dest, e))?;
    let parent = dest
        .parent()
        .ok_or_else(|| Error::NotADirectory { path: dest.clone() })?;
    crate::fs::create_dir_all(parent).map_err(|e| io_err("creating the directory", parent, e))?;
    let stage_path = parent.join(format!(
        "{}restore-{}-{}",
        crate::fs::TEMP_PREFIX,
        std::process::id(),
        unique()
    ));
    fs::create_dir(&stage_path).map_err(|e| io_err("creating the directory", &stage_path, e))?;
    let mut staging = Staging(Some(stage_path.clone()));
    let stage = Root::open_scratch(&stage_path).map_err(Error::from)?;

    let stats = synced(&stage_path, || write(&stage))?;

    if state == DestState::Missing {
        fs::rename(&stage_path, &dest).map_err(|e| io_err("renaming into place", &dest, e))?;
        staging.0 = None;
    } else {
        let root = Root::open(&dest).map_err(Error::from)?;
        for (name, _) in stage.entries(None).map_err(Error::from)? {
            root.take(&stage, &EntryPath::from_name(&name))
                .map_err(Error::from)?;
        }
        crate::fs::sync_dir(&dest).map_err(|e| io_err("syncing", &dest, e))?;
    }
    crate::fs::sync_dir(parent).map_err(|e| io_err("syncing", parent, e))?;
    Ok(stats)
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

/// Refuses, before anything is written, to put a file or symlink where `root` has a
/// directory that is not empty.
fn check_in_place<'a>(
    root: &Root,
    leaves: impl Iterator<Item = &'a EntryPath>,
) -> Result<(), Error> {
    let mut cache = DirCache::default();
    for path in leaves {
        if root.kind(&mut cache, path)? == Some(FileType::Directory) && !root.is_empty_dir(path)? {
            return Err(dest::Error::WouldDelete {
                path: root.display(path),
            }
            .into());
        }
    }
    Ok(())
}

/// Everything below `stage` with whether it is a directory, in pre-order: sorted by
/// components, each directory comes before what is in it.
fn walk(stage: &Root) -> Result<Vec<(EntryPath, bool)>, Error> {
    let mut out = Vec::new();
    let mut dirs: Vec<Option<EntryPath>> = vec![None];
    while let Some(dir) = dirs.pop() {
        for (name, kind) in stage.entries(dir.as_ref())? {
            let path = EntryPath::child(dir.as_ref(), &name);
            let is_dir = kind == FileType::Directory;
            if is_dir {
                dirs.push(Some(path.clone()));
            }
            out.push((path, is_dir));
        }
    }
    out.sort_by(|a, b| a.0.components().cmp(b.0.components()));
    Ok(out)
}

/// Moves what `walk` found from `stage` into `root`: a directory missing there (or in the way
/// of a file or symlink) moves whole; into an existing one, its entries move one by one.
fn merge(stage: &Root, root: &Root, built: &[(EntryPath, bool)]) -> Result<(), Error> {
    let mut cache = DirCache::default();
    let mut moved: Option<&EntryPath> = None;
    for (path, is_dir) in built {
        if moved.is_some_and(|m| path.starts_with(m)) {
            continue;
        }
        if *is_dir && root.kind(&mut cache, path)? == Some(FileType::Directory) {
            continue;
        }
        root.take(stage, path)?;
        if *is_dir {
            moved = Some(path);
        }
    }
    Ok(())
}
