//! OCI image-spec types as snap reads and writes them.
//!
//! Owns the media types, [`Descriptor`], the typed [`ImageManifest`] view and [`RawManifest`],
//! which pairs a manifest's exact bytes with their digest. A `RawManifest` is built only from
//! bytes ([`RawManifest::from_bytes`], for reading) or by encoding once
//! ([`RawManifest::encode`], for writing); it has no `Serialize`, so nothing can re-encode a
//! manifest on its way to disk or the network.
//!
//! The snapshot ↔ layers mapping lives in [`artifact`]. This module does not touch the store.

pub mod artifact;
pub mod graph;
pub mod layout;
pub mod referrers;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// The largest manifest or index snap reads, stores or sends (distribution's limit, and the
/// common one); a snap snapshot's config is held to it too.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// The tag a reference without a tag or digest names (docker's rule), and so the head `snap
/// commit` moves and `snap pull` fills by default.
pub const LATEST: &str = "latest";

/// `application/vnd.oci.image.manifest.v1+json`
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `application/vnd.oci.image.index.v1+json`
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// Docker's image manifest (schema 2), read like an OCI image manifest.
pub const MEDIA_TYPE_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's manifest list, read like an OCI image index.
pub const MEDIA_TYPE_DOCKER_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// The withdrawn OCI artifact manifest (image-spec 1.1 release candidates). snap never writes
/// it and refuses to import it: registries reject it and tools no longer read it.
pub const MEDIA_TYPE_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
/// The `artifactType` of every snap snapshot.
pub const ARTIFACT_TYPE_SNAPSHOT: &str = "application/vnd.snaptool.snapshot.v1";
/// The snapshot config's media type.
pub const MEDIA_TYPE_CONFIG: &str = "application/vnd.snaptool.snapshot.config.v1+json";
/// A zstd-compressed tar layer (file groups and single-file packs).
pub const MEDIA_TYPE_LAYER_TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
/// A tree layer: tree objects in a zstd-compressed tar.
pub const MEDIA_TYPE_TREES: &str = "application/vnd.snaptool.trees.v1.tar+zstd";
/// A raw file layer (direct mode).
pub const MEDIA_TYPE_FILE: &str = "application/vnd.snaptool.file.v1";
/// The empty descriptor's media type.
pub const MEDIA_TYPE_EMPTY: &str = "application/vnd.oci.empty.v1+json";
/// The bytes of the empty blob.
pub const EMPTY_BLOB: &[u8] = b"{}";

/// The `artifactType` of a snap signature (a referrer of the snapshot it signs; OCI mapping §7).
pub const ARTIFACT_TYPE_SIGNATURE: &str = "application/vnd.snaptool.signature.v1";
/// The media type of a signature's one layer: an armored SSHSIG (`-----BEGIN SSH SIGNATURE-----`).
pub const MEDIA_TYPE_SSHSIG: &str = "application/vnd.snaptool.signature.sshsig.v1";

/// `org.opencontainers.image.title`
pub const ANNOTATION_TITLE: &str = "org.opencontainers.image.title";
/// `org.opencontainers.image.created`
pub const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";
/// `org.opencontainers.image.revision`
pub const ANNOTATION_REVISION: &str = "org.opencontainers.image.revision";
/// `org.opencontainers.image.source`
pub const ANNOTATION_SOURCE: &str = "org.opencontainers.image.source";
/// `dev.snaptool.git.branch`
pub const ANNOTATION_BRANCH: &str = "dev.snaptool.git.branch";
/// `dev.snaptool.git.dirty`
pub const ANNOTATION_DIRTY: &str = "dev.snaptool.git.dirty";

/// An OCI content descriptor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// The referenced content's media type.
    pub media_type: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size in bytes.
    pub size: u64,
    /// The artifact type of the manifest it names (referrers index entries, OCI 1.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations, sorted by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Descriptor {
    /// A descriptor without annotations.
    #[must_use]
    pub fn new(media_type: &str, digest: Digest, size: u64) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest,
            size,
            artifact_type: None,
            annotations: BTreeMap::new(),
        }
    }

    /// The `org.opencontainers.image.title` annotation.
    #[must_use]
    pub fn title(&self) -> Option<&str> {
        self.annotations.get(ANNOTATION_TITLE).map(String::as_str)
    }
}

/// The typed view of an image manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.manifest.v1+json` (optional in foreign manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The artifact type, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// The config blob.
    pub config: Descriptor,
    /// The layers, in order.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 `subject`): set on referrers such as
    /// signatures, never on snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Box<Descriptor>>,
    /// Manifest annotations, sorted by key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ImageManifest {
    /// Whether this manifest is a snap snapshot.
    #[must_use]
    pub fn is_snapshot(&self) -> bool {
        self.artifact_type.as_deref() == Some(ARTIFACT_TYPE_SNAPSHOT)
            && self.config.media_type == MEDIA_TYPE_CONFIG
    }
}

/// A manifest's exact bytes, their digest and the parsed view.
#[derive(Clone, Debug)]
pub struct RawManifest {
    bytes: Vec<u8>,
    digest: Digest,
    manifest: ImageManifest,
}

impl RawManifest {
    /// Hashes and parses manifest bytes (from the store, a layout or a registry).
    ///
    /// # Errors
    /// [`Error::Malformed`] if the bytes are not an image manifest.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        let digest = Digest::of(&bytes);
        // An index with a `config` would otherwise parse as a manifest whose layers are empty.
        if Fields::of(&bytes).manifests {
            return Err(Error::Malformed {
                digest,
                reason: "it has `manifests`, so it is an image index, not an image manifest".into(),
            });
        }
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
                digest,
                reason: e.to_string(),
            })?;
        if manifest.schema_version != 2 {
            return Err(Error::Malformed {
                digest,
                reason: format!("schemaVersion {} is not 2", manifest.schema_version),
            });
        }
        if let Some(mt) = &manifest.media_type
            && mt != MEDIA_TYPE_MANIFEST
            && mt != MEDIA_TYPE_DOCKER_MANIFEST
        {
            return Err(Error::Malformed {
                digest,
                reason: format!("mediaType `{mt}` is not an image manifest"),
            });
        }
        Ok(RawManifest {
            bytes,
            digest,
            manifest,
        })
    }

    /// Serializes `manifest` once, compactly, in the fixed field order.
    #[must_use]
    pub fn encode(manifest: ImageManifest) -> Self {
        let bytes =
            serde_json::to_vec(&manifest).expect("serializing plain structs to memory cannot fail");
        RawManifest {
            digest: Digest::of(&bytes),
            bytes,
            manifest,
        }
    }

    /// The exact bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The digest of [`RawManifest::bytes`].
    #[must_use]
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The parsed view.
    #[must_use]
    pub fn manifest(&self) -> &ImageManifest {
        &self.manifest
    }
}

/// Which of the fields that tell manifests and indexes apart a JSON document has. Serde ignores unknown fields, so without this a
/// manifest parses as an index with no entries and an index with a stray `config` parses as a
/// manifest. Probing skips every value it does not keep, so it allocates next to nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct Fields {
    /// `manifests`: only an image index has it.
    pub manifests: bool,
    /// `config`: only an image manifest has it.
    pub config: bool,
    /// `layers`: only an image manifest has it.
    pub layers: bool,
}

impl Fields {
    /// The fields of `bytes`; none if they are not a JSON object.
    pub(crate) fn of(bytes: &[u8]) -> Fields {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Probe {
            #[serde(default)]
            manifests: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            config: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            layers: Option<serde::de::IgnoredAny>,
        }
        let Ok(p) = serde_json::from_slice::<Probe>(bytes) else {
            return Fields::default();
        };
        Fields {
            manifests: p.manifests.is_some(),
            config: p.config.is_some(),
            layers: p.layers.is_some(),
        }
    }
}

/// A document of an OCI graph: an image manifest or an image index. This is the one place
/// where the two are told apart — by their fields (`manifests` only an index has; `config`
/// and `layers` only a manifest), never by a `mediaType` they may omit.
#[derive(Clone, Debug)]
pub enum Node {
    /// An image manifest (a snap snapshot, a container image, an artifact).
    Manifest(RawManifest),
    /// An image index (or a Docker manifest list).
    Index(layout::RawIndex),
}

impl Node {
    /// Hashes and parses the bytes of a manifest or an index.
    ///
    /// # Errors
    /// [`Error::Malformed`] if they are neither.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Node, Error> {
        if Fields::of(&bytes).manifests {
            let digest = Digest::of(&bytes);
            layout::RawIndex::from_bytes(bytes)
                .map(Node::Index)
                .map_err(|e| Error::Malformed {
                    digest,
                    reason: e.to_string(),
                })
        } else {
            RawManifest::from_bytes(bytes).map(Node::Manifest)
        }
    }

    /// The exact bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        match self {
            Node::Manifest(m) => m.bytes(),
            Node::Index(i) => i.bytes(),
        }
    }

    /// The digest of the bytes.
    #[must_use]
    pub fn digest(&self) -> Digest {
        match self {
            Node::Manifest(m) => m.digest(),
            Node::Index(i) => i.digest(),
        }
    }

    /// The media type it declares, or the one its kind implies.
    #[must_use]
    pub fn media_type(&self) -> String {
        match self {
            Node::Manifest(m) => m.manifest().media_type.clone(),
            Node::Index(i) => i.index().media_type.clone(),
        }
        .unwrap_or_else(|| {
            match self {
                Node::Manifest(_) => MEDIA_TYPE_MANIFEST,
                Node::Index(_) => MEDIA_TYPE_INDEX,
            }
            .to_owned()
        })
    }

    /// What it points at: an index's manifests; a manifest's config and layers.
    pub fn children(&self) -> Box<dyn Iterator<Item = &Descriptor> + '_> {
        match self {
            Node::Manifest(m) => {
                let v = m.manifest();
                Box::new(std::iter::once(&v.config).chain(&v.layers))
            }
            Node::Index(i) => Box::new(i.index().manifests.iter()),
        }
    }
}

/// OCI errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Bytes that are not a manifest.
    #[error("manifest {digest} is malformed: {reason}")]
    Malformed {
        /// The bytes' digest.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn encode_has_the_fixed_field_order_and_round_trips() -> Result<(), Error> {
        let m = ImageManifest {
            schema_version: 2,
            media_type: Some(MEDIA_TYPE_MANIFEST.into()),
            artifact_type: Some(ARTIFACT_TYPE_SNAPSHOT.into()),
            config: Descriptor::new(MEDIA_TYPE_CONFIG, Digest::of(b"c"), 1),
            layers: vec![Descriptor::new(MEDIA_TYPE_EMPTY, Digest::of(EMPTY_BLOB), 2)],
            subject: None,
            annotations: BTreeMap::new(),
        };
        let raw = RawManifest::encode(m.clone());
        let s = String::from_utf8_lossy(raw.bytes());
        assert!(s.starts_with(r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"#), "{s}");
        let back = RawManifest::from_bytes(raw.bytes().to_vec())?;
        assert_eq!(back.digest(), raw.digest());
        assert_eq!(back.manifest(), &m);
        assert!(back.manifest().is_snapshot());
        Ok(())
    }

    #[test]
    fn from_bytes_refuses_indexes_and_garbage() {
        assert!(RawManifest::from_bytes(b"not json".to_vec()).is_err());
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
        assert!(RawManifest::from_bytes(index.to_vec()).is_err());
        // issue 13: without a mediaType, an index that also carries a `config` is still an index.
        let config = format!(
            r#"{{"mediaType":"{MEDIA_TYPE_EMPTY}","digest":"{}","size":2}}"#,
            Digest::of(EMPTY_BLOB)
        );
        let both = format!(r#"{{"schemaVersion":2,"config":{config},"manifests":[]}}"#);
        assert!(RawManifest::from_bytes(both.into_bytes()).is_err());
    }
}
