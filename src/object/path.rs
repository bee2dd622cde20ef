//! [`EntryPath`]: a path inside a snapshot or a layer, and the names restore never writes.
//!
//! An `EntryPath` is one or more [`EntryName`]s joined by `/`: relative, normalised (no empty,
//! `.` or `..` component, no leading or trailing `/`), without NUL. Every writer of a restore
//! (snap snapshots, ORAS titles, container layer entries, hard-link and whiteout targets)
//! holds one of these before it touches the filesystem, so a path that could leave its
//! destination cannot even be represented.
//!
//! The names restore never writes (`.git`, `.store` in every spelling) are
//! [`super::spelling`]'s; [`is_reserved`] and [`fold`] are re-exported here.
//!
//! This module only checks strings; it never touches the filesystem.

use std::fmt;

pub use crate::object::spelling::{fold, is_reserved};
use crate::object::tree::{EntryName, Error};

/// A relative path of one or more valid entry names, `/`-separated.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryPath(String);

impl EntryPath {
    /// Parses `path`: every `/`-separated component must be an [`EntryName`].
    ///
    /// # Errors
    /// [`Error::InvalidPath`] for an empty path, an absolute one, or an empty, `.`, `..` or
    /// NUL-containing component.
    pub fn new(path: impl Into<String>) -> Result<Self, Error> {
        let path = path.into();
        if path.is_empty() || path.split('/').any(|c| EntryName::new(c).is_err()) {
            return Err(Error::InvalidPath { path });
        }
        Ok(EntryPath(path))
    }

    /// The path of one name.
    #[must_use]
    pub fn from_name(name: &EntryName) -> Self {
        EntryPath(name.as_str().to_owned())
    }

    /// `self/name`.
    #[must_use]
    pub fn join(&self, name: &EntryName) -> Self {
        EntryPath(format!("{}/{name}", self.0))
    }

    /// `parent/name`, or `name` at the top.
    #[must_use]
    pub fn child(parent: Option<&EntryPath>, name: &EntryName) -> Self {
        match parent {
            Some(p) => p.join(name),
            None => EntryPath::from_name(name),
        }
    }

    /// The path as written, `/`-separated.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The components, each a valid [`EntryName`].
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The directory part (`None` at the top) and the last name.
    #[must_use]
    pub fn split_last(&self) -> (Option<&str>, &str) {
        match self.0.rsplit_once('/') {
            Some((dir, name)) => (Some(dir), name),
            None => (None, &self.0),
        }
    }

    /// The parent path, `None` at the top.
    #[must_use]
    pub fn parent(&self) -> Option<EntryPath> {
        self.split_last().0.map(|d| EntryPath(d.to_owned()))
    }

    /// The last name.
    #[must_use]
    pub fn file_name(&self) -> &str {
        self.split_last().1
    }

    /// Whether `self` is `other` or lies below it (component-wise).
    #[must_use]
    pub fn starts_with(&self, other: &EntryPath) -> bool {
        self.0 == other.0
            || (self.0.len() > other.0.len()
                && self.0.starts_with(&other.0)
                && self.0.as_bytes()[other.0.len()] == b'/')
    }

    /// The first component restore must never write ([`is_reserved`]), if any.
    #[must_use]
    pub fn reserved_component(&self) -> Option<&str> {
        self.components().find(|c| is_reserved(c))
    }
}

impl fmt::Display for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntryPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_relative_normalised_names() {
        for bad in [
            "", "/", "/a", "a/", "a//b", ".", "./a", "a/.", "..", "a/../b", "../a", "a\0b",
        ] {
            assert!(EntryPath::new(bad).is_err(), "{bad:?} must be refused");
        }
        for good in ["a", "a/b", "...", ".wh.a", "a b/c", "é/..."] {
            assert_eq!(
                EntryPath::new(good).map(|p| p.to_string()).ok(),
                Some(good.to_owned())
            );
        }
    }

    #[test]
    fn split_parent_and_prefix_follow_components() -> Result<(), Error> {
        let p = EntryPath::new("a/bc/d")?;
        assert_eq!(p.split_last(), (Some("a/bc"), "d"));
        assert_eq!(p.parent(), Some(EntryPath::new("a/bc")?));
        assert_eq!(EntryPath::new("a")?.split_last(), (None, "a"));
        assert!(p.starts_with(&EntryPath::new("a/bc")?));
        assert!(p.starts_with(&p));
        assert!(
            !p.starts_with(&EntryPath::new("a/b")?),
            "not a component prefix"
        );
        let n = EntryName::new("e")?;
        assert_eq!(p.join(&n).as_str(), "a/bc/d/e");
        Ok(())
    }

    #[test]
    fn a_path_names_its_first_reserved_component() -> Result<(), Error> {
        assert_eq!(
            EntryPath::new("a/.GIT/hooks/x")?.reserved_component(),
            Some(".GIT")
        );
        assert_eq!(EntryPath::new("a/b")?.reserved_component(), None);
        Ok(())
    }
}
