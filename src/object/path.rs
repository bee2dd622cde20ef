//! [`EntryPath`]: a path inside a snapshot or a layer, and the names restore never writes.
//!
//! An `EntryPath` is one or more [`EntryName`]s joined by `/`: relative, normalised (no empty,
//! `.` or `..` component, no leading or trailing `/`), without NUL. Every writer of a restore
//! (snap snapshots, ORAS titles, container layer entries, hard-link and whiteout targets)
//! holds one of these before it touches the filesystem, so a path that could leave its
//! destination cannot even be represented.
//!
//! [`is_reserved`] names the entries restore never creates, removes or writes through:
//! `.git` and `.store`, with every spelling a filesystem may treat as one of them — the rules
//! of git's `verify_path` (read-cache.c) with `core.protectHFS` and `core.protectNTFS` on, as
//! `git fsck` applies them: ASCII case is ignored; the code points HFS+ ignores are dropped;
//! trailing dots and spaces and an NTFS alternate data stream (`:…`) are dropped; the NTFS
//! short names `git~1` and `store~1` are the same names; a backslash separates (NTFS).
//!
//! This module only checks strings; it never touches the filesystem.

use std::fmt;

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

/// The names restore never writes, as [`fold`] spells them.
const RESERVED: &[&str] = &[".git", "git~1", ".store", "store~1"];

/// Whether a directory entry called `name` would be, on some filesystem, `.git` or `.store`
/// (see the module documentation for the rules).
#[must_use]
pub fn is_reserved(name: &str) -> bool {
    // The common case without allocating: an ASCII name (HFS+-ignorable code points are not
    // ASCII) that does not contain `git` or `store` in any case folds to neither.
    let b = name.as_bytes();
    if b.is_ascii()
        && !b.windows(3).any(|w| w.eq_ignore_ascii_case(b"git"))
        && !b.windows(5).any(|w| w.eq_ignore_ascii_case(b"store"))
    {
        return false;
    }
    // NTFS takes a backslash as a separator: each part is a name there.
    name.split('\\')
        .any(|part| RESERVED.contains(&fold(part).as_str()))
}

/// The spelling of `name` a case-insensitive, HFS+ or NTFS filesystem would compare: the
/// code points HFS+ ignores removed, ASCII lowercased, an alternate data stream (from the
/// first `:`) and then trailing dots and spaces cut. Two names with the same fold may be one
/// file on such a filesystem.
#[must_use]
pub fn fold(name: &str) -> String {
    let mut out: String = name
        .chars()
        .filter(|c| !is_hfs_ignorable(*c))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if let Some(i) = out.find(':') {
        out.truncate(i);
    }
    let kept = out.trim_end_matches(['.', ' ']).len();
    out.truncate(kept);
    out
}

/// The code points HFS+ drops when it compares names (git's `next_hfs_char`).
fn is_hfs_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'
    )
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
    fn every_spelling_of_git_and_store_is_reserved() {
        for name in [
            ".git",
            ".GIT",
            ".Git",
            ".git.",
            ".git ",
            ".git. . ",
            ".git::$INDEX_ALLOCATION",
            ".git:stream",
            "git~1",
            "GIT~1",
            "git~1.",
            ".g\u{200c}it",
            "\u{feff}.git",
            ".gi\u{206f}t\u{200e}",
            ".store",
            ".STORE",
            ".store..",
            ".store::$DATA",
            "store~1",
            "STORE~1 ",
            ".st\u{202a}ore",
            "x\\.git",
            ".store\\x",
        ] {
            assert!(is_reserved(name), "{name:?} must be reserved");
        }
        for name in [
            "git",
            ".gitignore",
            ".gitmodules",
            ".git2",
            "a.git",
            ".store2",
            "store",
            "git~2",
            "store~2",
            ".g\u{200b}it", // ZERO WIDTH SPACE is not ignored by HFS+
            ".gıt",         // no Unicode case folding: HFS+ compares these apart
            ".wh..git",
        ] {
            assert!(!is_reserved(name), "{name:?} is an ordinary name");
        }
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
