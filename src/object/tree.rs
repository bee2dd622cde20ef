//! Trees: one object per directory, in the canonical JSON of the store format (§3).
//!
//! [`Tree::encode`] produces the canonical bytes; [`Tree::decode`] accepts exactly those bytes
//! and nothing else (it re-encodes to check, and keeps the caller's bytes as the truth).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// A validated entry name: non-empty UTF-8, not `.` or `..`, no `/` and no NUL.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EntryName(String);

impl EntryName {
    /// Validates `name`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] naming the refused name.
    pub fn new(name: impl Into<String>) -> Result<Self, Error> {
        let name = name.into();
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(Error::InvalidName { name });
        }
        Ok(EntryName(name))
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether restore must never write an entry of this name: `.git`, `.store` or a spelling
    /// some filesystem takes for one of them (see [`crate::object::spelling::is_reserved`]).
    #[must_use]
    pub fn is_reserved(&self) -> bool {
        crate::object::spelling::is_reserved(&self.0)
    }
}

impl fmt::Display for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EntryName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

/// What a tree entry is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A regular file.
    File {
        /// Size in bytes.
        size: u64,
        /// Digest of the contents.
        digest: Digest,
        /// Whether the owner-execute bit was set.
        executable: bool,
    },
    /// A subdirectory.
    Dir {
        /// Digest of its tree.
        digest: Digest,
    },
    /// A symbolic link, never followed.
    Symlink {
        /// The link target as stored.
        target: String,
    },
}

impl EntryKind {
    /// `file`, `dir` or `symlink`.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        match self {
            EntryKind::File { .. } => "file",
            EntryKind::Dir { .. } => "dir",
            EntryKind::Symlink { .. } => "symlink",
        }
    }
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TreeEntry {
    /// The entry's name in its directory.
    pub name: EntryName,
    /// What it is.
    pub kind: EntryKind,
}

/// A directory listing, entries sorted by name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    entries: Vec<TreeEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireTree<'a> {
    #[serde(borrow)]
    entries: Vec<WireEntry<'a>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEntry<'a> {
    #[serde(borrow)]
    name: std::borrow::Cow<'a, str>,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    digest: Option<Digest>,
    #[serde(skip_serializing_if = "Option::is_none")]
    executable: Option<bool>,
    #[serde(borrow, skip_serializing_if = "Option::is_none")]
    target: Option<std::borrow::Cow<'a, str>>,
}

impl Tree {
    /// Builds a tree, sorting entries by name.
    ///
    /// # Errors
    /// [`Error::DuplicateName`] if two entries share a name; [`Error::InvalidSymlink`] for an
    /// empty or NUL-containing symlink target.
    pub fn new(mut entries: Vec<TreeEntry>) -> Result<Self, Error> {
        entries.sort_by(|a, b| a.name.as_str().as_bytes().cmp(b.name.as_str().as_bytes()));
        for pair in entries.windows(2) {
            if pair[0].name == pair[1].name {
                return Err(Error::DuplicateName {
                    name: pair[0].name.to_string(),
                });
            }
        }
        for e in &entries {
            if let EntryKind::Symlink { target } = &e.kind
                && (target.is_empty() || target.contains('\0'))
            {
                return Err(Error::InvalidSymlink {
                    name: e.name.to_string(),
                });
            }
        }
        Ok(Tree { entries })
    }

    /// The entries, sorted by name.
    #[must_use]
    pub fn entries(&self) -> &[TreeEntry] {
        &self.entries
    }

    /// The entry called `name`.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&TreeEntry> {
        self.entries
            .binary_search_by(|e| e.name.as_str().as_bytes().cmp(name.as_bytes()))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The canonical bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let wire = WireTree {
            entries: self
                .entries
                .iter()
                .map(|e| {
                    let mut w = WireEntry {
                        name: e.name.as_str().into(),
                        kind: e.kind.type_name(),
                        size: None,
                        digest: None,
                        executable: None,
                        target: None,
                    };
                    match &e.kind {
                        EntryKind::File {
                            size,
                            digest,
                            executable,
                        } => {
                            w.size = Some(*size);
                            w.digest = Some(*digest);
                            w.executable = executable.then_some(true);
                        }
                        EntryKind::Dir { digest } => w.digest = Some(*digest),
                        EntryKind::Symlink { target } => w.target = Some(target.as_str().into()),
                    }
                    w
                })
                .collect(),
        };
        serde_json::to_vec(&wire).expect("serializing plain structs to memory cannot fail")
    }

    /// Decodes canonical bytes.
    ///
    /// # Errors
    /// [`Error::Malformed`] for anything but the exact canonical encoding of a valid tree.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let malformed = |reason: String| Error::Malformed { reason };
        let wire: WireTree<'_> =
            serde_json::from_slice(bytes).map_err(|e| malformed(e.to_string()))?;
        let mut entries = Vec::with_capacity(wire.entries.len());
        for w in wire.entries {
            let name = EntryName::new(w.name.into_owned()).map_err(|e| malformed(e.to_string()))?;
            let kind = match (w.kind, w.size, w.digest, w.executable, w.target) {
                ("file", Some(size), Some(digest), executable, None) => EntryKind::File {
                    size,
                    digest,
                    executable: executable.unwrap_or(false),
                },
                ("dir", None, Some(digest), None, None) => EntryKind::Dir { digest },
                ("symlink", None, None, None, Some(target)) => EntryKind::Symlink {
                    target: target.into_owned(),
                },
                (kind, ..) => {
                    return Err(malformed(format!(
                        "entry `{name}` of type `{kind}` has the wrong fields"
                    )));
                }
            };
            entries.push(TreeEntry { name, kind });
        }
        let tree = Tree::new(entries).map_err(|e| malformed(e.to_string()))?;
        if tree.encode() != bytes {
            return Err(malformed("not in canonical form".into()));
        }
        Ok(tree)
    }
}

/// Tree errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name that cannot be a directory entry.
    #[error(
        "invalid entry name {name:?}: names must be non-empty UTF-8 without `/` or NUL, and not `.` or `..`"
    )]
    InvalidName {
        /// The name.
        name: String,
    },
    /// A path that is not a `/`-separated sequence of valid entry names.
    #[error(
        "invalid path {path:?}: paths must be relative, `/`-separated entry names, without empty, `.` or `..` components"
    )]
    InvalidPath {
        /// The path.
        path: String,
    },
    /// Two entries with one name.
    #[error("duplicate entry name {name:?}")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A symlink with an empty or NUL-containing target.
    #[error("symlink {name:?} has an empty or invalid target")]
    InvalidSymlink {
        /// The entry name.
        name: String,
    },
    /// Bytes that are not a canonical tree.
    #[error("malformed tree: {reason}")]
    Malformed {
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    fn sample() -> Result<Tree, Error> {
        Tree::new(vec![
            TreeEntry {
                name: EntryName::new("run.sh")?,
                kind: EntryKind::File {
                    size: 3,
                    digest: Digest::of(b"x\n\n"),
                    executable: true,
                },
            },
            TreeEntry {
                name: EntryName::new("a dir")?,
                kind: EntryKind::Dir {
                    digest: Digest::of(b"{}"),
                },
            },
            TreeEntry {
                name: EntryName::new("link")?,
                kind: EntryKind::Symlink {
                    target: "../x \"quoted\"".into(),
                },
            },
        ])
    }

    #[test]
    fn decode_of_encode_is_identity_and_sorted() -> Result<(), Error> {
        let t = sample()?;
        let bytes = t.encode();
        assert_eq!(Tree::decode(&bytes)?, t);
        let names: Vec<_> = t.entries().iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a dir", "link", "run.sh"]);
        Ok(())
    }

    #[test]
    fn encoding_is_the_documented_json() -> Result<(), Error> {
        let t = Tree::new(vec![TreeEntry {
            name: EntryName::new("f")?,
            kind: EntryKind::File {
                size: 0,
                digest: Digest::of(b""),
                executable: false,
            },
        }])?;
        assert_eq!(
            String::from_utf8_lossy(&t.encode()),
            r#"{"entries":[{"name":"f","type":"file","size":0,"digest":"sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}]}"#
        );
        Ok(())
    }

    #[test]
    fn decode_rejects_non_canonical_bytes() -> Result<(), Error> {
        let bytes = sample()?.encode();
        let spaced = String::from_utf8_lossy(&bytes).replace("\":", "\": ");
        assert!(Tree::decode(spaced.as_bytes()).is_err(), "whitespace");
        let unsorted = br#"{"entries":[{"name":"b","type":"symlink","target":"x"},{"name":"a","type":"symlink","target":"x"}]}"#;
        assert!(Tree::decode(unsorted).is_err(), "unsorted");
        let dup = br#"{"entries":[{"name":"a","type":"symlink","target":"x"},{"name":"a","type":"symlink","target":"x"}]}"#;
        assert!(Tree::decode(dup).is_err(), "duplicate");
        let bad_name = br#"{"entries":[{"name":"../a","type":"symlink","target":"x"}]}"#;
        assert!(Tree::decode(bad_name).is_err(), "traversal name");
        let extra = br#"{"entries":[],"x":1}"#;
        assert!(Tree::decode(extra).is_err(), "unknown field");
        assert!(Tree::decode(b"\xff").is_err(), "garbage");
        Ok(())
    }

    #[test]
    fn entry_names_refuse_separators_and_dots() {
        for bad in ["", ".", "..", "a/b", "nul\0"] {
            assert!(EntryName::new(bad).is_err(), "{bad:?}");
        }
        assert!(EntryName::new("...").is_ok());
    }
}
