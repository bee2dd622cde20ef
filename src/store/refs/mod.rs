//! Refs: named pointers to snapshots, moved only by compare-and-swap under a lock file.
//!
//! Format: store format §6. `refs/heads/<name>` move with commits; `refs/tags/<name>` are
//! immutable unless forced. Each file holds `sha256:<hex>\n`.
//!
//! [`Refs::update`] runs the protocol in this order: lock, read under the lock, compare,
//! (caller-checked) target exists, write the lock, append the reflog, rename. A failure before
//! the rename leaves the ref as it was and removes the lock.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::digest::Digest;
use crate::fs;
use crate::lock::{self, LockFile};
use crate::store::reflog::{self, ReflogEntry};

mod name;
mod transaction;

pub use name::{MAX_COMPONENT_BYTES, MAX_NAME_BYTES, RefKind, RefName};
pub use transaction::{Expected, RefEdit, Transaction};
use transaction::{Locked, check_message};

/// The refs of one store.
pub struct Refs {
    dir: PathBuf,
    logs_dir: PathBuf,
    lock_timeout: Duration,
}

impl Refs {
    pub(crate) fn new(store_dir: &Path) -> Self {
        let ms = std::env::var("SNAP_LOCK_TIMEOUT_MS")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(2000);
        Refs {
            dir: store_dir.join("refs"),
            logs_dir: store_dir.join("logs"),
            lock_timeout: Duration::from_millis(ms),
        }
    }

    /// The file of a ref.
    #[must_use]
    pub fn path(&self, name: &RefName) -> PathBuf {
        self.dir.join(name.kind.dir()).join(&name.name)
    }

    /// The reflog file of a ref.
    #[must_use]
    pub fn log_path(&self, name: &RefName) -> PathBuf {
        self.logs_dir.join(name.kind.dir()).join(&name.name)
    }

    /// The ref's value, or `None` if it does not exist.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the file is not a digest; [`Error::Io`].
    pub fn get(&self, name: &RefName) -> Result<Option<Digest>, Error> {
        read_ref(&self.path(name))
    }

    /// Resolves a user-given name: `heads/x` or `tags/x` exactly, otherwise a head, then a
    /// tag. Returns `None` if nothing matches.
    ///
    /// # Errors
    /// [`Error::Ambiguous`] when both a head and a tag have the name; [`Error::InvalidName`];
    /// [`Error::Corrupt`]; [`Error::Io`].
    pub fn find(&self, s: &str) -> Result<Option<(RefName, Digest)>, Error> {
        if let Some(name) = RefName::parse_qualified(s)? {
            return Ok(self.get(&name)?.map(|d| (name, d)));
        }
        let head = RefName::existing(RefKind::Head, s)?;
        let tag = RefName::existing(RefKind::Tag, s)?;
        match (self.get(&head)?, self.get(&tag)?) {
            (Some(_), Some(_)) => Err(Error::Ambiguous { name: s.to_owned() }),
            (Some(d), None) => Ok(Some((head, d))),
            (None, Some(d)) => Ok(Some((tag, d))),
            (None, None) => Ok(None),
        }
    }

    /// Every ref, sorted (heads first).
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Io`].
    pub fn list(&self) -> Result<Vec<(RefName, Digest)>, Error> {
        let mut out = Vec::new();
        for kind in [RefKind::Head, RefKind::Tag] {
            let base = self.dir.join(kind.dir());
            let mut names = Vec::new();
            walk_files(&base, &base, &mut names)?;
            names.sort();
            for n in names {
                if n.ends_with(".lock") || n.split('/').any(|c| c.starts_with(".tmp-")) {
                    continue;
                }
                let Ok(name) = RefName::existing(kind, &n) else {
                    continue;
                };
                if let Some(d) = self.get(&name)? {
                    out.push((name, d));
                }
            }
        }
        Ok(out)
    }

    /// Every ref name, without reading the values (so a corrupt ref is still listed).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn names(&self) -> Result<Vec<RefName>, Error> {
        names_below(&self.dir)
    }

    /// Names of every reflog file, so logs of deleted refs are checked too.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn log_names(&self) -> Result<Vec<RefName>, Error> {
        names_below(&self.logs_dir)
    }

    /// Lock files present under `refs/` (stale if no snap process is running).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn lock_files(&self) -> Result<Vec<PathBuf>, Error> {
        let mut names = Vec::new();
        walk_files(&self.dir, &self.dir, &mut names)?;
        Ok(names
            .into_iter()
            .filter(|n| n.ends_with(".lock"))
            .map(|n| self.dir.join(n))
            .collect())
    }

    /// The reflog of a ref, oldest first, with malformed lines listed separately.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn reflog(
        &self,
        name: &RefName,
    ) -> Result<(Vec<ReflogEntry>, Vec<(usize, reflog::LineError)>), Error> {
        let p = self.log_path(name);
        reflog::read(&p).map_err(|source| Error::Io {
            op: "reading",
            path: p,
            source,
        })
    }

    /// Applies `edit` by compare-and-swap: a transaction of one ref.
    /// `target_exists` is asked, under the lock, whether the new value's object is stored
    /// (objects before refs).
    ///
    /// # Errors
    /// [`Error::Lock`] if the lock is held, [`Error::OutOfDate`] if the ref moved,
    /// [`Error::MissingTarget`], [`Error::Corrupt`], [`Error::Io`].
    pub fn update(
        &self,
        edit: &RefEdit,
        target_exists: impl Fn(&Digest) -> bool,
    ) -> Result<(), Error> {
        if edit.new.is_some() {
            // Before anything is written: a ref found by a laxer rule may be deleted, not set,
            // and no name may be both a ref and a directory of refs.
            RefName::new(edit.name.kind, &edit.name.name)?;
            self.check_available(&edit.name)?;
        }
        // Refuse bad messages before taking the lock.
        check_message(&edit.message)?;
        let mut tx = self.transaction([edit.name.clone()])?;
        let actual = tx.actual(&edit.name);
        if !edit.expected.matches(actual) {
            return Err(Error::OutOfDate {
                name: edit.name.clone(),
                expected: edit.expected,
                actual,
            });
        }
        tx.stage(&edit.name, edit.new, &edit.message)?;
        tx.commit(target_exists)
    }

    /// Locks the refs `names` — in sorted order, so that transactions over overlapping refs
    /// never wait on each other in a cycle — and reads each under its lock: one place where
    /// an operation that moves several refs (an import, a pull) decides from values no other
    /// process can change until [`Transaction::commit`] writes them all (as gitoxide's ref
    /// transactions do). Dropping the transaction releases every lock and changes nothing.
    ///
    /// # Errors
    /// [`Error::Lock`] when a lock stays held past the timeout, [`Error::Corrupt`],
    /// [`Error::Io`] (or a name conflict when a ref's directory cannot be made).
    pub fn transaction(
        &self,
        names: impl IntoIterator<Item = RefName>,
    ) -> Result<Transaction<'_>, Error> {
        let mut names: Vec<RefName> = names.into_iter().collect();
        names.sort();
        names.dedup();
        let mut entries = Vec::with_capacity(names.len());
        for name in names {
            let path = self.path(&name);
            let log_path = self.log_path(&name);
            for dir in [path.parent(), log_path.parent()].into_iter().flatten() {
                fs::create_dir_all(dir).map_err(|source| {
                    self.io_or_conflict("creating directory", &name, dir, source)
                })?;
            }
            // 1. Lock.  2. Read under the lock: only this value can be trusted.
            let lock = LockFile::acquire(&path, self.lock_timeout)?;
            let actual = read_ref(&path)?;
            entries.push(Locked {
                name,
                lock,
                actual,
                staged: None,
            });
        }
        Ok(Transaction {
            refs: self,
            entries,
        })
    }

    /// Fails if `name` cannot be created beside the refs and reflogs there are: when a
    /// shorter name on its path is a ref (`a` for `a/b`), or longer names live below it (`a/b`
    /// for `a`), or the reflog of such a deleted ref is kept (as git refuses `a/b` next to `a`).
    /// Empty directories left by deleted refs are not in the way: they are removed.
    fn check_available(&self, name: &RefName) -> Result<(), Error> {
        let conflict = |existing: &str, deleted: bool| {
            RefName::existing(name.kind, existing).map_or_else(
                |e| e,
                |existing| Error::NameConflict {
                    name: name.clone(),
                    existing,
                    deleted,
                },
            )
        };
        let mut prefix = String::new();
        let comps: Vec<&str> = name.name.split('/').collect();
        for c in &comps[..comps.len() - 1] {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(c);
            let shorter = RefName {
                kind: name.kind,
                name: prefix.clone(),
            };
            if self.path(&shorter).is_file() {
                return Err(conflict(&prefix, false));
            }
            if self.log_path(&shorter).is_file() {
                return Err(conflict(&prefix, true));
            }
        }
        let (dir, log_dir) = (self.path(name), self.log_path(name));
        if dir.is_dir() {
            let mut below = Vec::new();
            walk_files(&dir, &dir, &mut below)?;
            below.sort();
            if let Some(first) = below
                .iter()
                .find(|n| RefName::existing(name.kind, n).is_ok())
            {
                return Err(conflict(&format!("{}/{first}", name.name), false));
            }
        }
        if log_dir.is_dir() {
            let mut below = Vec::new();
            walk_files(&log_dir, &log_dir, &mut below)?;
            below.sort();
            if let Some(first) = below.first() {
                return Err(conflict(&format!("{}/{first}", name.name), true));
            }
        }
        for d in [dir, log_dir] {
            remove_empty_dirs(&d).map_err(|source| Error::Io {
                op: "removing empty directories under",
                path: d,
                source,
            })?;
        }
        Ok(())
    }

    /// An I/O error on the way to `name`'s files, or the conflict that caused it when another
    /// process created a clashing ref since [`Refs::check_available`] looked.
    fn io_or_conflict(
        &self,
        op: &'static str,
        name: &RefName,
        path: &Path,
        source: std::io::Error,
    ) -> Error {
        if matches!(
            source.kind(),
            std::io::ErrorKind::NotADirectory | std::io::ErrorKind::IsADirectory
        ) && let Err(e) = self.check_available(name)
        {
            return e;
        }
        Error::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}

/// Removes `dir` and the directories below it if they hold no file; a file anywhere below
/// keeps it (and what leads to it). Absent is fine.
fn remove_empty_dirs(dir: &Path) -> std::io::Result<()> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    for entry in rd {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            remove_empty_dirs(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        // Not empty: a file (a lock file of a concurrent creator, say) keeps it.
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// The ref names of the files below `root`'s `heads/` and `tags/` (refs or reflogs), sorted;
/// a file whose name is not a ref name is left out.
fn names_below(root: &Path) -> Result<Vec<RefName>, Error> {
    let mut out = Vec::new();
    for kind in [RefKind::Head, RefKind::Tag] {
        let base = root.join(kind.dir());
        let mut names = Vec::new();
        walk_files(&base, &base, &mut names)?;
        names.sort();
        out.extend(names.iter().filter_map(|n| RefName::existing(kind, n).ok()));
    }
    Ok(out)
}

fn walk_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), Error> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                op: "listing",
                path: dir.to_owned(),
                source,
            });
        }
    };
    for entry in rd {
        let entry = entry.map_err(|source| Error::Io {
            op: "listing",
            path: dir.to_owned(),
            source,
        })?;
        let p = entry.path();
        if p.is_dir() {
            walk_files(base, &p, out)?;
        } else if let Ok(rel) = p.strip_prefix(base) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

fn read_ref(path: &Path) -> Result<Option<Digest>, Error> {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        // A directory holds longer names (`a/b` for `a`); a file on the way is a shorter one.
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::IsADirectory
                    | std::io::ErrorKind::NotADirectory
            ) =>
        {
            return Ok(None);
        }
        Err(source) => {
            return Err(Error::Io {
                op: "reading",
                path: path.to_owned(),
                source,
            });
        }
    };
    let s = std::str::from_utf8(&text).map_err(|_| Error::Corrupt {
        path: path.to_owned(),
        reason: "not UTF-8".into(),
    })?;
    let s = s.strip_suffix('\n').unwrap_or(s);
    s.parse()
        .map(Some)
        .map_err(|e: crate::digest::Error| Error::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// Ref errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a valid ref name.
    #[error("invalid ref name `{name}`: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A name longer than the store can hold (store format §6.1).
    #[error(
        "ref name too long: `{}` {}; at most {limit} bytes are allowed{}",
        shorten(name),
        if *limit == MAX_COMPONENT_BYTES { format!("has a component of {length} bytes") } else { format!("is {length} bytes") },
        if *limit == MAX_COMPONENT_BYTES { " per component" } else { "" }
    )]
    NameTooLong {
        /// The name.
        name: String,
        /// Bytes in the name, or in its longest component when that is what is too long.
        length: usize,
        /// The limit that was exceeded: [`MAX_NAME_BYTES`] or [`MAX_COMPONENT_BYTES`].
        limit: usize,
    },
    /// A name starting with `heads/` or `tags/`, which would read as a qualified name.
    #[error(
        "invalid ref name `{name}`: it starts with `{prefix}/`, which selects a namespace and cannot begin a name"
    )]
    ReservedPrefix {
        /// The name.
        name: String,
        /// `heads` or `tags`.
        prefix: &'static str,
    },
    /// A name that is a directory of existing ref names, or has one as a directory.
    #[error(
        "cannot create ref `{name}`: {} `{existing}` {}",
        if *deleted { "the reflog of deleted ref" } else { "ref" },
        if *deleted { "is kept there" } else { "exists" }
    )]
    NameConflict {
        /// The ref that was to be created.
        name: RefName,
        /// The ref in the way: a shorter name on its path, or a longer one below it.
        existing: RefName,
        /// Whether `existing` is deleted and only its reflog is in the way.
        deleted: bool,
    },
    /// Both `heads/<name>` and `tags/<name>` exist.
    #[error("ref name `{name}` is ambiguous: both heads/{name} and tags/{name} exist")]
    Ambiguous {
        /// The name.
        name: String,
    },
    /// A ref staged in a transaction that did not lock it (a bug of the caller).
    #[error("ref `{name}` is not part of this transaction")]
    NotInTransaction {
        /// The ref.
        name: RefName,
    },
    /// The ref moved since it was read.
    #[error("ref `{name}` moved: expected {}, found {}", show_expected(*expected), show(*actual))]
    OutOfDate {
        /// The ref.
        name: RefName,
        /// What the caller expected.
        expected: Expected,
        /// What it holds.
        actual: Option<Digest>,
    },
    /// The new value's object is not in the store.
    #[error("cannot point ref `{name}` at {target}: that snapshot is not in the store")]
    MissingTarget {
        /// The ref.
        name: RefName,
        /// The missing object.
        target: Digest,
    },
    /// A ref file that does not hold a digest.
    #[error("ref file {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A reflog message that cannot be written.
    #[error("invalid reflog message: {reason}")]
    InvalidMessage {
        /// Why.
        reason: crate::store::reflog::LineError,
    },
    /// The ref's lock is held.
    #[error(transparent)]
    Lock(#[from] lock::Error),
    /// An I/O error.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `reading`, `appending to`, ….
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::OutOfDate { .. } | Error::Lock(crate::lock::Error::Locked { .. }) => K::Conflict,
            Error::InvalidName { .. }
            | Error::Ambiguous { .. }
            | Error::InvalidMessage { .. }
            | Error::NameTooLong { .. }
            | Error::ReservedPrefix { .. }
            | Error::NameConflict { .. } => K::InvalidInput,
            Error::MissingTarget { .. } => K::NotFound,
            Error::Corrupt { .. } => K::Corrupt,
            _ => K::Io,
        }
    }
}

/// The start of a long name, for messages.
fn shorten(name: &str) -> String {
    if name.len() <= 40 {
        return name.to_owned();
    }
    let mut out: String = name.chars().take(32).collect();
    out.push('…');
    out
}

fn show(d: Option<Digest>) -> String {
    d.map_or_else(|| "nothing".into(), |d| d.to_string())
}

fn show_expected(e: Expected) -> String {
    match e {
        Expected::Any => "anything".into(),
        Expected::Absent => "no ref".into(),
        Expected::Is(d) => d.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)]
// tests write fixtures directly
mod tests;
