//! The snapshot config: root tree, parents, message, time, provenance and stats, in the
//! compact JSON of the OCI mapping (§4).
//!
//! [`SnapshotConfig::encode`] serializes once, with a fixed field order; the bytes it returns
//! are what gets hashed, stored and sent. [`SnapshotConfig::decode`] reads such bytes back,
//! keeping any inline trees as their exact raw bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::digest::Digest;

/// Git facts about the work tree a snapshot was taken from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GitProvenance {
    /// Full HEAD commit id (hex).
    pub commit: String,
    /// HEAD's branch; `None` when detached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Whether the work tree had tracked changes or untracked files.
    pub dirty: bool,
    /// The `origin` URL with credentials removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    /// HEAD's committer time, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
}

/// The state of one declared input path at HEAD.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputState {
    /// The path, relative to the git work tree root, `/`-separated.
    pub path: String,
    /// The git tree (or blob) id at HEAD; `None` if the path is not in HEAD.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<String>,
    /// Whether the path has uncommitted changes or untracked files.
    pub dirty: bool,
}

/// Where a snapshot came from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Provenance {
    /// Git facts; `None` outside a git repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<GitProvenance>,
    /// Declared inputs (`--inputs`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<InputState>,
}

/// Counts over a snapshot's tree.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Stats {
    /// Regular files.
    pub files: u64,
    /// Directories below the root.
    pub dirs: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Sum of file sizes.
    pub bytes: u64,
}

/// A snapshot's config blob.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotConfig {
    /// The root tree.
    pub root: Digest,
    /// Parent snapshots, first parent first.
    pub parents: Vec<Digest>,
    /// The commit message (may be empty).
    pub message: String,
    /// RFC 3339 time, never the wall clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// Where it came from.
    pub provenance: Provenance,
    /// Counts.
    pub stats: Stats,
    /// Inline trees (direct mode): digest → exact canonical bytes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub trees: BTreeMap<Digest, Box<RawValue>>,
}

impl SnapshotConfig {
    /// The canonical bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("serializing plain structs to memory cannot fail")
    }

    /// Decodes config bytes.
    ///
    /// # Errors
    /// [`Error`] if the bytes are not a snapshot config.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        serde_json::from_slice(bytes).map_err(Error::Json)
    }

    /// Inline trees as `(digest, raw bytes)`.
    pub fn inline_trees(&self) -> impl Iterator<Item = (&Digest, &[u8])> {
        self.trees.iter().map(|(d, raw)| (d, raw.get().as_bytes()))
    }
}

/// Embeds a canonical tree's bytes verbatim as a JSON value.
///
/// # Errors
/// [`Error`] if the bytes are not JSON (canonical trees always are).
pub fn raw_tree(bytes: &[u8]) -> Result<Box<RawValue>, Error> {
    let s = std::str::from_utf8(bytes).map_err(Error::NotUtf8)?;
    RawValue::from_string(s.to_owned()).map_err(Error::Json)
}

/// The bytes are not a snapshot config (or an inline tree cannot be embedded in one).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// What the JSON decoder found wrong.
    #[error("malformed snapshot config: {0}")]
    Json(serde_json::Error),
    /// A tree to embed that is not UTF-8.
    #[error("a tree to embed is not UTF-8: {0}")]
    NotUtf8(std::str::Utf8Error),
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn inline_trees_keep_their_exact_bytes() -> Result<(), Box<dyn std::error::Error>> {
        let tree = br#"{"entries":[{"name":"a","type":"symlink","target":"b"}]}"#;
        let mut trees = BTreeMap::new();
        trees.insert(Digest::of(tree), raw_tree(tree)?);
        let cfg = SnapshotConfig {
            root: Digest::of(tree),
            parents: vec![],
            message: "m".into(),
            created: None,
            provenance: Provenance::default(),
            stats: Stats::default(),
            trees,
        };
        let bytes = cfg.encode();
        let back = SnapshotConfig::decode(&bytes)?;
        let (d, raw) = back.inline_trees().next().ok_or("one tree")?;
        assert_eq!(raw, tree);
        assert_eq!(*d, Digest::of(raw));
        assert_eq!(back.encode(), bytes, "encoding is stable");
        Ok(())
    }

    #[test]
    fn field_order_is_fixed() -> Result<(), Box<dyn std::error::Error>> {
        let cfg = SnapshotConfig {
            root: Digest::of(b""),
            parents: vec![],
            message: String::new(),
            created: Some("1970-01-01T00:00:00Z".into()),
            provenance: Provenance::default(),
            stats: Stats::default(),
            trees: BTreeMap::new(),
        };
        let s = String::from_utf8(cfg.encode())?;
        let keys = [
            "\"root\"",
            "\"parents\"",
            "\"message\"",
            "\"created\"",
            "\"provenance\"",
            "\"stats\"",
        ];
        let pos: Vec<_> = keys
            .iter()
            .map(|k| s.find(k))
            .collect::<Option<_>>()
            .ok_or("all keys")?;
        assert!(pos.windows(2).all(|w| w[0] < w[1]), "{s}");
        Ok(())
    }
}
