//! Ref names (store format §6.1): `heads/<name>` or `tags/<name>`, checked once when a
//! [`RefName`] is made — no empty, `.` or `..` component, no component starting with `.` or
//! ending with `.lock`, no control characters, within the length limits — so a name that
//! could leave `refs/` or collide with a lock file cannot be held.

use std::fmt;

use super::Error;

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
    pub(super) fn dir(self) -> &'static str {
        match self {
            RefKind::Head => "heads",
            RefKind::Tag => "tags",
        }
    }
}

/// Bytes a ref name may have in all (store format §6.1).
pub const MAX_NAME_BYTES: usize = 255;
/// Bytes one `/`-separated component of a new ref name may have: its lock file
/// `<component>.lock` must fit the 255-byte limit most filesystems put on a file name.
pub const MAX_COMPONENT_BYTES: usize = 255 - ".lock".len();
/// First components that would make a name read as a qualified one (`heads/x`, `tags/x`).
pub(super) const NAMESPACES: [&str; 2] = ["heads", "tags"];

/// A validated ref name with its namespace.
///
/// No ref name can be the name of another file snap keeps beside ref files and reflogs: no
/// component starts with `.` (temp files are `.tmp-*`) or ends with `.lock` (lock files).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RefName {
    pub(super) kind: RefKind,
    pub(super) name: String,
}

impl RefName {
    /// Validates `name` (store format §6.1) in namespace `kind`: a name a ref can be created
    /// with.
    ///
    /// # Errors
    /// [`Error::NameTooLong`], [`Error::ReservedPrefix`] or [`Error::InvalidName`] with the
    /// reason.
    pub fn new(kind: RefKind, name: &str) -> Result<Self, Error> {
        // Before any other rule: this is the limit a user cannot guess from the characters.
        if name.len() > MAX_NAME_BYTES {
            return Err(Error::NameTooLong {
                name: name.to_owned(),
                length: name.len(),
                limit: MAX_NAME_BYTES,
            });
        }
        if let Some(long) = name.split('/').find(|c| c.len() > MAX_COMPONENT_BYTES) {
            return Err(Error::NameTooLong {
                name: name.to_owned(),
                length: long.len(),
                limit: MAX_COMPONENT_BYTES,
            });
        }
        let name = Self::existing(kind, name)?;
        if let Some(prefix) = NAMESPACES.into_iter().find(|p| {
            name.name
                .strip_prefix(p)
                .is_some_and(|r| r.starts_with('/'))
        }) {
            return Err(Error::ReservedPrefix {
                name: name.name,
                prefix,
            });
        }
        Ok(name)
    }

    /// Validates `name` by the rules every ref on disk follows, also those created before
    /// [`RefName::new`] refused some names (longer components, a `heads/` or `tags/` start):
    /// for finding, listing and deleting existing refs, never for creating one.
    pub(super) fn existing(kind: RefKind, name: &str) -> Result<Self, Error> {
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

    /// Parses `heads/x` or `tags/x`, to look up an existing ref; returns `None` for an
    /// unqualified name.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if qualified but invalid.
    pub fn parse_qualified(s: &str) -> Result<Option<Self>, Error> {
        if let Some(rest) = s.strip_prefix("heads/") {
            return Self::existing(RefKind::Head, rest).map(Some);
        }
        if let Some(rest) = s.strip_prefix("tags/") {
            return Self::existing(RefKind::Tag, rest).map(Some);
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
            // A head made before such names were refused would read as a qualified name.
            RefKind::Head if self.has_namespace_prefix() => write!(f, "heads/{}", self.name),
            RefKind::Head => f.write_str(&self.name),
            RefKind::Tag => write!(f, "tags/{}", self.name),
        }
    }
}

impl RefName {
    pub(super) fn has_namespace_prefix(&self) -> bool {
        NAMESPACES.into_iter().any(|p| {
            self.name
                .strip_prefix(p)
                .is_some_and(|r| r.starts_with('/'))
        })
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

pub(super) fn validate(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > MAX_NAME_BYTES {
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
        if comp.starts_with(':') {
            return Err("a component starts with `:`");
        }
        if !comp
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
        {
            return Err("only ASCII letters, digits, `.`, `_`, `-`, `:` and `/` are allowed");
        }
    }
    // `:` is there for names that are image references (`localhost:5000/ommx/lp:v1`); one
    // that reads as a digest would shadow the snapshot it names.
    if name.starts_with("sha256:") {
        return Err("it starts with `sha256:`, as a digest does");
    }
    Ok(())
}
