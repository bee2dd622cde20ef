//! Stored snapshots, read side: a snapshot's manifest, config and trees, loaded from the store
//! and verified.
//!
//! Every object read here goes through [`crate::store::Objects::read`], which verifies digests;
//! sizes recorded in descriptors are checked too. Nothing here writes.

use crate::digest::Digest;
use crate::object::{SnapshotConfig, Tree};
use crate::oci::RawManifest;
use crate::store::{Store, objects};

/// The most bytes a manifest, config or tree may have.
pub const MAX_METADATA_BYTES: u64 = 256 << 20;

/// A snapshot loaded from the store.
#[derive(Debug)]
pub struct Snapshot {
    /// The snapshot id (the manifest's digest).
    pub id: Digest,
    /// The manifest, with its exact bytes.
    pub manifest: RawManifest,
    /// The config's exact bytes.
    pub config_bytes: Vec<u8>,
    /// The parsed config.
    pub config: SnapshotConfig,
}

impl Snapshot {
    /// Loads and verifies snapshot `id`.
    ///
    /// # Errors
    /// [`Error::Object`] if missing or corrupt, [`Error::NotASnapshot`] if the object is not a
    /// snap snapshot, [`Error::Malformed`] if its config cannot be read.
    pub fn load(store: &Store, id: &Digest) -> Result<Snapshot, Error> {
        let bytes = store.objects.read(id, MAX_METADATA_BYTES)?;
        let manifest = RawManifest::from_bytes(bytes).map_err(|e| Error::NotASnapshot {
            id: *id,
            why: NotSnapshot::Unparsable(e),
        })?;
        if !manifest.manifest().is_snapshot() {
            return Err(Error::NotASnapshot {
                id: *id,
                why: NotSnapshot::ArtifactType(manifest.manifest().artifact_type.clone()),
            });
        }
        let config_bytes = store
            .objects
            .read(&manifest.manifest().config.digest, MAX_METADATA_BYTES)?;
        Self::from_parts(manifest, config_bytes)
    }

    /// A snapshot from a manifest and config read elsewhere (a registry): the same checks as
    /// [`Snapshot::load`] — a snap manifest, a config of the size its descriptor says, that
    /// decodes. The caller has checked the config's digest.
    ///
    /// # Errors
    /// [`Error::NotASnapshot`], [`Error::Malformed`].
    pub fn from_parts(manifest: RawManifest, config_bytes: Vec<u8>) -> Result<Snapshot, Error> {
        let id = manifest.digest();
        if !manifest.manifest().is_snapshot() {
            return Err(Error::NotASnapshot {
                id,
                why: NotSnapshot::ArtifactType(manifest.manifest().artifact_type.clone()),
            });
        }
        let desc = &manifest.manifest().config;
        if config_bytes.len() as u64 != desc.size {
            return Err(Error::ConfigSize {
                id,
                config: desc.digest,
                actual: config_bytes.len() as u64,
                expected: desc.size,
            });
        }
        let config = SnapshotConfig::decode(&config_bytes)
            .map_err(|problem| Error::BadConfig { id, problem })?;
        Ok(Snapshot {
            id,
            manifest,
            config_bytes,
            config,
        })
    }

    /// The first parent, if any.
    #[must_use]
    pub fn parent(&self) -> Option<Digest> {
        self.config.parents.first().copied()
    }

    /// The root tree's digest.
    #[must_use]
    pub fn root(&self) -> Digest {
        self.config.root
    }

    /// The `created` time, if recorded.
    #[must_use]
    pub fn created(&self) -> Option<&str> {
        self.config.created.as_deref()
    }
}

/// Anything a ref can point at: a snap snapshot, another image manifest (a container image,
/// an ORAS artifact), or an image index.
#[derive(Debug)]
pub enum Artifact {
    /// A snap snapshot.
    Snapshot(Box<Snapshot>),
    /// Another image manifest.
    Manifest(RawManifest),
    /// An image index.
    Index(crate::oci::layout::RawIndex),
}

impl Artifact {
    /// Loads whatever `id` is.
    ///
    /// # Errors
    /// [`Error::Object`] if missing or corrupt, [`Error::NotASnapshot`] if it is neither a
    /// manifest nor an index.
    pub fn load(store: &Store, id: &Digest) -> Result<Artifact, Error> {
        let bytes = store.objects.read(id, MAX_METADATA_BYTES)?;
        let not = |e| Error::NotASnapshot {
            id: *id,
            why: NotSnapshot::Unparsable(e),
        };
        let manifest = match crate::oci::Node::from_bytes(bytes).map_err(not)? {
            crate::oci::Node::Index(index) => return Ok(Artifact::Index(index)),
            crate::oci::Node::Manifest(m) => m,
        };
        if manifest.manifest().is_snapshot() {
            return Snapshot::load(store, id).map(|s| Artifact::Snapshot(Box::new(s)));
        }
        Ok(Artifact::Manifest(manifest))
    }
}

/// A snapshot as `snap log` reports it.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct LogEntry {
    /// The snapshot id.
    pub digest: Digest,
    /// Parent snapshots.
    pub parents: Vec<Digest>,
    /// RFC 3339 time, if recorded: `SOURCE_DATE_EPOCH` at commit, else the git commit's time
    /// (snap never records the clock's time, so that a snapshot is reproducible).
    pub created: Option<String>,
    /// The time of the git commit it was built from, if recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_time: Option<String>,
    /// The message.
    pub message: String,
    /// The git commit it was built from.
    pub commit: Option<String>,
    /// The git branch.
    pub branch: Option<String>,
    /// Whether the work tree was dirty.
    pub dirty: bool,
    /// Files recorded.
    pub files: u64,
    /// Bytes of file contents.
    pub bytes: u64,
}

impl From<&Snapshot> for LogEntry {
    fn from(s: &Snapshot) -> Self {
        let git = s.config.provenance.git.as_ref();
        LogEntry {
            digest: s.id,
            parents: s.config.parents.clone(),
            created: s.config.created.clone(),
            message: s.config.message.clone(),
            commit: git.map(|g| g.commit.clone()),
            commit_time: git.and_then(|g| g.time.clone()),
            branch: git.and_then(|g| g.branch.clone()),
            dirty: git.is_some_and(|g| g.dirty),
            files: s.config.stats.files,
            bytes: s.config.stats.bytes,
        }
    }
}

/// Reads and decodes tree `digest`.
///
/// # Errors
/// [`Error::Object`] if missing or corrupt, [`Error::MalformedTree`] if not a tree.
pub fn read_tree(store: &Store, digest: &Digest) -> Result<Tree, Error> {
    let bytes = store.objects.read(digest, MAX_METADATA_BYTES)?;
    Tree::decode(&bytes).map_err(|problem| Error::MalformedTree {
        digest: *digest,
        problem,
    })
}

/// Finds the tree entry at `path` (`/`-separated, relative to the root; empty for the root
/// itself) below tree `root`. Returns `None` if absent.
///
/// # Errors
/// As [`read_tree`].
pub fn lookup(
    store: &Store,
    root: &Digest,
    path: &str,
) -> Result<Option<crate::object::EntryKind>, Error> {
    let path = path.trim_matches('/');
    if path.is_empty() || path == "." {
        return Ok(Some(crate::object::EntryKind::Dir { digest: *root }));
    }
    let mut current = *root;
    let comps: Vec<&str> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .collect();
    for (i, comp) in comps.iter().enumerate() {
        let tree = read_tree(store, &current)?;
        let Some(entry) = tree.get(comp) else {
            return Ok(None);
        };
        if i + 1 == comps.len() {
            return Ok(Some(entry.kind.clone()));
        }
        match &entry.kind {
            crate::object::EntryKind::Dir { digest } => current = *digest,
            _ => return Ok(None),
        }
    }
    Ok(None)
}

/// Errors reading snapshots.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object store failed.
    #[error(transparent)]
    Object(#[from] objects::Error),
    /// The object is not a snap snapshot.
    #[error("{id} is not a snap snapshot: {why}")]
    NotASnapshot {
        /// The object.
        id: Digest,
        /// Why.
        why: NotSnapshot,
    },
    /// A snapshot whose config is not the size its descriptor says.
    #[error(
        "snapshot {id} is malformed: config {config} is {actual} bytes, the manifest says {expected}"
    )]
    ConfigSize {
        /// The snapshot.
        id: Digest,
        /// Its config.
        config: Digest,
        /// The config's size.
        actual: u64,
        /// What the manifest says.
        expected: u64,
    },
    /// A snapshot whose config does not decode.
    #[error("snapshot {id} is malformed: {problem}")]
    BadConfig {
        /// The snapshot.
        id: Digest,
        /// What the decoder found.
        problem: crate::object::snapshot::Error,
    },
    /// A tree object that is not a canonical tree.
    #[error("tree {digest} is malformed: {problem}")]
    MalformedTree {
        /// The tree.
        digest: Digest,
        /// What the decoder found.
        problem: crate::object::tree::Error,
    },
}

/// Why an object is not a snap snapshot.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NotSnapshot {
    /// Not an image manifest or index at all.
    #[error("{0}")]
    Unparsable(crate::oci::Error),
    /// An image manifest of another artifact type.
    #[error("its artifactType is {}", .0.as_deref().unwrap_or("absent"))]
    ArtifactType(Option<String>),
    /// An image index.
    #[error("it is an image index")]
    Index,
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::Object(o) => o.kind(),
            _ => K::Corrupt,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;
    use crate::object::EntryKind;
    use crate::ops::{self, CommitOptions};

    type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    /// A store with two snapshots of `out/` (`out/a`, `out/sub/b`), the second changing `a`.
    fn two_snapshots() -> Result<(tempfile::TempDir, Store, Digest, Digest)> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("out/sub"))?;
        std::fs::write(d.join("out/a"), "1")?;
        std::fs::write(d.join("out/sub/b"), "2")?;
        let (store, _) = ops::init(None, d)?;
        let commit = || -> Result<Digest> {
            let opts = CommitOptions {
                paths: vec!["out".into()],
                cwd: d.to_owned(),
                ..CommitOptions::default()
            };
            Ok(ops::commit(&store, &opts, &ops::NoProgress)?.digest)
        };
        let first = commit()?;
        std::fs::write(d.join("out/a"), "changed")?;
        let second = commit()?;
        Ok((dir, store, first, second))
    }

    #[test]
    fn a_snapshot_loads_with_its_lineage_and_its_paths_are_looked_up() -> Result {
        let (_dir, store, first, second) = two_snapshots()?;
        let s = Snapshot::load(&store, &second)?;
        assert_eq!(s.id, second);
        assert_eq!(s.parent(), Some(first));
        assert_eq!(Snapshot::load(&store, &first)?.parent(), None);
        assert!(matches!(
            lookup(&store, &s.root(), "out/a")?,
            Some(EntryKind::File { size: 7, .. })
        ));
        assert!(matches!(
            lookup(&store, &s.root(), "out/sub")?,
            Some(EntryKind::Dir { .. })
        ));
        assert!(matches!(
            lookup(&store, &s.root(), "/out/sub/b/")?,
            Some(EntryKind::File { size: 1, .. })
        ));
        assert!(lookup(&store, &s.root(), "out/nope")?.is_none());
        assert!(lookup(&store, &s.root(), "out/a/below-a-file")?.is_none());
        Ok(())
    }

    #[test]
    fn other_manifests_and_indexes_are_artifacts_not_snapshots() -> Result {
        let (_dir, store, first, _) = two_snapshots()?;
        assert!(matches!(
            Artifact::load(&store, &first)?,
            Artifact::Snapshot(_)
        ));
        let empty = store.objects.put(b"{}")?;
        let foreign = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{empty}","size":2}},"layers":[]}}"#
        );
        let foreign = store.objects.put(foreign.as_bytes())?;
        assert!(matches!(
            Artifact::load(&store, &foreign)?,
            Artifact::Manifest(_)
        ));
        assert!(matches!(
            Snapshot::load(&store, &foreign),
            Err(Error::NotASnapshot { .. })
        ));
        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{first}","size":1}}]}}"#
        );
        let index = store.objects.put(index.as_bytes())?;
        assert!(matches!(
            Artifact::load(&store, &index)?,
            Artifact::Index(_)
        ));
        let junk = store.objects.put(b"not json")?;
        assert!(Artifact::load(&store, &junk).is_err());
        Ok(())
    }
}
