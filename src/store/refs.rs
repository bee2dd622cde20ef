//! Refs: named pointers to snapshots, moved only by compare-and-swap under a lock file.
//!
//! Format: store format §6. `refs/heads/<name>` move with commits; `refs/tags/<name>` are
//! immutable unless forced. Each file holds `sha256:<hex>\n`.
//!
//! [`Refs::update`] runs the protocol in this order: lock, read under the lock, compare,
//! (caller-checked) target exists, write the lock, append the reflog, rename. A failure before
//! the rename leaves the ref as it was and removes the lock.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::digest::Digest;
use crate::fs;
use crate::lock::{self, LockFile};
use crate::store::reflog::{self, ReflogEntry};
use crate::timestamp::Timestamp;

/// The namespace of a ref.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum RefKind {
    /// Moved by commits (`refs/heads/`).
    Head,
    /// Immutable unless forced (`refs/tags/`).
    Tag,
}

impl RefKind {
    fn dir(self) -> &'static str {
        match self {
            RefKind::Head => "heads",
            RefKind::Tag => "tags",
        }
    }
}

/// A validated ref name with its namespace.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefName {
    kind: RefKind,
    name: String,
}

impl RefName {
    /// Validates `name` (store format §6.1) in namespace `kind`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] with the reason.
    pub fn new(kind: RefKind, name: &str) -> Result<Self, Error> {
        validate(name).map_err(|reason| Error::InvalidName {
            name: name.to_owned(),
            reason,
        })?;
        Ok(RefName {
            kind,
            name: name.to_owned(),
        })
    }

    /// A head.
    ///
    /// # Errors
    /// [`Error::InvalidName`].
    pub fn head(name: &str) -> Result<Self, Error> {
        Self::new(RefKind::Head, name)
    }

    /// A tag.
    ///
    /// # Errors
    /// [`Error::InvalidName`].
    pub fn tag(name: &str) -> Result<Self, Error> {
        Self::new(RefKind::Tag, name)
    }

    /// Parses `heads/x` or `tags/x`; returns `None` for an unqualified name.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if qualified but invalid.
    pub fn parse_qualified(s: &str) -> Result<Option<Self>, Error> {
        if let Some(rest) = s.strip_prefix("heads/") {
            return Self::head(rest).map(Some);
        }
        if let Some(rest) = s.strip_prefix("tags/") {
            return Self::tag(rest).map(Some);
        }
        Ok(None)
    }

    /// The namespace.
    #[must_use]
    pub fn kind(&self) -> RefKind {
        self.kind
    }

    /// The name without its namespace.
    #[must_use]
    pub fn short(&self) -> &str {
        &self.name
    }

    /// `heads/<name>` or `tags/<name>`.
    #[must_use]
    pub fn full(&self) -> String {
        format!("{}/{}", self.kind.dir(), self.name)
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            RefKind::Head => f.write_str(&self.name),
            RefKind::Tag => write!(f, "tags/{}", self.name),
        }
    }
}

impl fmt::Debug for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RefName({})", self.full())
    }
}

impl serde::Serialize for RefName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

fn validate(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 255 {
        return Err("it is longer than 255 bytes");
    }
    for comp in name.split('/') {
        if comp.is_empty() {
            return Err("it has an empty path component");
        }
        if comp.starts_with('.') {
            return Err("a component starts with `.`");
        }
        if comp.ends_with(".lock") {
            return Err("a component ends with `.lock`");
        }
        if !comp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err("only ASCII letters, digits, `.`, `_`, `-` and `/` are allowed");
        }
    }
    Ok(())
}

/// The compare-and-swap precondition of an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Whatever the ref holds.
    Any,
    /// The ref must not exist.
    Absent,
    /// The ref must hold this value.
    Is(Digest),
}

impl Expected {
    fn matches(self, actual: Option<Digest>) -> bool {
        match self {
            Expected::Any => true,
            Expected::Absent => actual.is_none(),
            Expected::Is(d) => actual == Some(d),
        }
    }
}

/// A ref change.
#[derive(Clone, Debug)]
pub struct RefEdit {
    /// The ref.
    pub name: RefName,
    /// What it must hold now.
    pub expected: Expected,
    /// What it will hold; `None` deletes it.
    pub new: Option<Digest>,
    /// The reflog message.
    pub message: String,
}

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
        let head = RefName::head(s)?;
        let tag = RefName::tag(s)?;
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
                let Ok(name) = RefName::new(kind, &n) else {
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
        let mut out = Vec::new();
        for kind in [RefKind::Head, RefKind::Tag] {
            let base = self.dir.join(kind.dir());
            let mut names = Vec::new();
            walk_files(&base, &base, &mut names)?;
            names.sort();
            out.extend(names.iter().filter_map(|n| RefName::new(kind, n).ok()));
        }
        Ok(out)
    }

    /// Names of every reflog file, so logs of deleted refs are checked too.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn log_names(&self) -> Result<Vec<RefName>, Error> {
        let mut out = Vec::new();
        for kind in [RefKind::Head, RefKind::Tag] {
            let base = self.logs_dir.join(kind.dir());
            let mut names = Vec::new();
            walk_files(&base, &base, &mut names)?;
            names.sort();
            out.extend(names.iter().filter_map(|n| RefName::new(kind, n).ok()));
        }
        Ok(out)
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
    ) -> Result<(Vec<ReflogEntry>, Vec<(usize, String)>), Error> {
        let p = self.log_path(name);
        reflog::read(&p).map_err(|source| Error::Io { path: p, source })
    }

    /// Applies `edit` by compare-and-swap. `target_exists` is asked, under the lock, whether
    /// the new value's object is stored (objects before refs).
    ///
    /// # Errors
    /// [`Error::Lock`] if the lock is held, [`Error::OutOfDate`] if the ref moved,
    /// [`Error::MissingTarget`], [`Error::Corrupt`], [`Error::Io`].
    pub fn update(
        &self,
        edit: &RefEdit,
        target_exists: impl Fn(&Digest) -> bool,
    ) -> Result<(), Error> {
        let path = self.path(&edit.name);
        let log_path = self.log_path(&edit.name);
        for dir in [path.parent(), log_path.parent()].into_iter().flatten() {
            fs::create_dir_all(dir).map_err(|source| Error::Io {
                path: dir.to_owned(),
                source,
            })?;
        }
        let line = ReflogEntry {
            old: None,
            new: edit.new,
            time: Timestamp::now().0,
            message: edit.message.clone(),
        };
        // Refuse bad messages before taking the lock.
        line.encode()
            .map_err(|reason| Error::InvalidMessage { reason })?;

        // 1. Lock.
        let mut lock = LockFile::acquire(&path, self.lock_timeout)?;
        // 2. Read under the lock: only this value can be trusted for the comparison.
        let actual = read_ref(&path)?;
        // 3. Compare.
        if !edit.expected.matches(actual) {
            return Err(Error::OutOfDate {
                name: edit.name.clone(),
                expected: edit.expected,
                actual,
            });
        }
        // 4. Objects before refs.
        if let Some(new) = edit.new
            && !target_exists(&new)
        {
            return Err(Error::MissingTarget {
                name: edit.name.clone(),
                target: new,
            });
        }
        // 5. Stage the new value.
        if let Some(new) = edit.new {
            lock.write_content(format!("{new}\n").as_bytes())?;
        }
        // 6. Reflog before ref: a log line without a ref move is recoverable, the reverse is not.
        let line = ReflogEntry {
            old: actual,
            ..line
        }
        .encode()
        .map_err(|reason| Error::InvalidMessage { reason })?;
        fs::append_line(&log_path, line.as_bytes()).map_err(|source| Error::Io {
            path: log_path.clone(),
            source,
        })?;
        fs::crash_point("ref-logged");
        // 7. Move the ref.
        match edit.new {
            Some(_) => lock.commit()?,
            None => lock.commit_delete()?,
        }
        Ok(())
    }
}

fn walk_files(base: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), Error> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(source) => {
            return Err(Error::Io {
                path: dir.to_owned(),
                source,
            });
        }
    };
    for entry in rd {
        let entry = entry.map_err(|source| Error::Io {
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
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => return Ok(None),
        Err(source) => {
            return Err(Error::Io {
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
    /// Both `heads/<name>` and `tags/<name>` exist.
    #[error("ref name `{name}` is ambiguous: both heads/{name} and tags/{name} exist")]
    Ambiguous {
        /// The name.
        name: String,
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
        reason: String,
    },
    /// The ref's lock is held.
    #[error(transparent)]
    Lock(#[from] lock::Error),
    /// An I/O error.
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
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
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    fn refs() -> std::io::Result<(tempfile::TempDir, Refs)> {
        let dir = tempfile::tempdir()?;
        let r = Refs::new(dir.path());
        Ok((dir, r))
    }

    fn edit(name: &RefName, expected: Expected, new: Option<Digest>) -> RefEdit {
        RefEdit {
            name: name.clone(),
            expected,
            new,
            message: "test".into(),
        }
    }

    #[test]
    fn ref_names_are_validated() {
        for bad in [
            "", "a//b", "/a", "a/", ".hidden", "a/.b", "x.lock", "a b", "a\\b", "ü", "..", "a/../b",
        ] {
            assert!(RefName::head(bad).is_err(), "{bad:?} must be refused");
        }
        for good in ["latest", "ci/main", "v1.2.3", "a_b-c"] {
            assert!(RefName::head(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn cas_update_fails_when_ref_moved() -> Result<(), Box<dyn std::error::Error>> {
        let (_d, r) = refs()?;
        let n = RefName::head("main")?;
        let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
        r.update(&edit(&n, Expected::Absent, Some(a)), |_| true)?;
        assert!(matches!(
            r.update(&edit(&n, Expected::Absent, Some(b)), |_| true),
            Err(Error::OutOfDate { .. })
        ));
        r.update(&edit(&n, Expected::Is(a), Some(b)), |_| true)?;
        assert_eq!(r.get(&n)?, Some(b));
        let (log, bad) = r.reflog(&n)?;
        assert!(bad.is_empty());
        assert_eq!(
            log.iter().map(|e| (e.old, e.new)).collect::<Vec<_>>(),
            [(None, Some(a)), (Some(a), Some(b))]
        );
        r.update(&edit(&n, Expected::Is(b), None), |_| true)?;
        assert_eq!(r.get(&n)?, None);
        assert_eq!(r.reflog(&n)?.0.len(), 3, "deletion is logged");
        Ok(())
    }

    #[test]
    fn missing_target_is_refused_and_nothing_changes() -> Result<(), Box<dyn std::error::Error>> {
        let (_d, r) = refs()?;
        let n = RefName::head("main")?;
        assert!(matches!(
            r.update(&edit(&n, Expected::Any, Some(Digest::of(b"a"))), |_| false),
            Err(Error::MissingTarget { .. })
        ));
        assert_eq!(r.get(&n)?, None);
        assert!(r.reflog(&n)?.0.is_empty());
        assert!(r.lock_files()?.is_empty(), "lock removed");
        Ok(())
    }

    #[test]
    fn racing_updates_with_the_same_expectation_have_one_winner()
    -> Result<(), Box<dyn std::error::Error>> {
        let (_d, r) = refs()?;
        let r = Arc::new(r);
        let n = RefName::head("race")?;
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8u8)
            .map(|i| {
                let (r, n, barrier) = (Arc::clone(&r), n.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    r.update(&edit(&n, Expected::Absent, Some(Digest::of(&[i]))), |_| {
                        true
                    })
                })
            })
            .collect();
        let mut wins = 0;
        for h in handles {
            match h.join().map_err(|_| "thread panicked")? {
                Ok(()) => wins += 1,
                Err(Error::OutOfDate { .. } | Error::Lock(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        assert_eq!(wins, 1, "exactly one CAS from absent succeeds");
        assert_eq!(r.reflog(&n)?.0.len(), 1);
        Ok(())
    }

    #[test]
    fn find_prefers_qualified_names_and_reports_ambiguity() -> Result<(), Box<dyn std::error::Error>>
    {
        let (_d, r) = refs()?;
        let a = Digest::of(b"a");
        r.update(
            &edit(&RefName::head("x")?, Expected::Absent, Some(a)),
            |_| true,
        )?;
        assert_eq!(r.find("x")?.map(|f| f.1), Some(a));
        r.update(
            &edit(&RefName::tag("x")?, Expected::Absent, Some(a)),
            |_| true,
        )?;
        assert!(matches!(r.find("x"), Err(Error::Ambiguous { .. })));
        assert_eq!(r.find("tags/x")?.map(|f| f.0.kind()), Some(RefKind::Tag));
        assert_eq!(r.list()?.len(), 2);
        Ok(())
    }
}
