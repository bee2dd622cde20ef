//! `snap show`: what a snapshot (or any stored manifest or index) says about itself — its
//! refs, provenance, stats, mode and layers — as one value a printer renders. A registry
//! reference is read by [`crate::ops::remote::show`] and described the same way.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::object::{Provenance, Stats};
use crate::oci::{self, Descriptor};
use crate::ops::Error;
use crate::snapshot::{Artifact, Snapshot};
use crate::store::Store;
use crate::worktree::checkout::unpack;

/// `snap show --json` of a snap snapshot.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Show {
    /// The snapshot id (its manifest's digest).
    pub digest: Digest,
    /// The refs that name it (none for a registry's).
    pub refs: Vec<String>,
    /// Its root tree.
    pub root: Digest,
    /// Its parents.
    pub parents: Vec<Digest>,
    /// Its message.
    pub message: String,
    /// Its time, if it has one.
    pub created: Option<String>,
    /// Where it came from.
    pub provenance: Provenance,
    /// Counts.
    pub stats: Stats,
    /// `grouped` or `direct`.
    pub mode: String,
    /// The manifest's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The config's descriptor.
    pub config: Descriptor,
    /// The layers' descriptors.
    pub layers: Vec<Descriptor>,
    /// Its signatures and other referrers the store holds (and theirs), nearest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub referrers: Vec<crate::ops::referrers::ReferrerInfo>,
}

/// `snap show --json` of a manifest or index that is not a snap snapshot.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ShowForeign {
    /// Its digest.
    pub digest: Digest,
    /// `image`, `artifact` or `index`.
    pub kind: String,
    /// The media type it declares.
    #[serde(rename = "mediaType")]
    pub media_type: Option<String>,
    /// An artifact's type.
    #[serde(rename = "artifactType")]
    pub artifact_type: Option<String>,
    /// A manifest's config.
    pub config: Option<Descriptor>,
    /// A manifest's layers.
    pub layers: Vec<Descriptor>,
    /// An index's manifests.
    pub manifests: Vec<Descriptor>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// What it refers to, for a referrer (a signature, an attached artifact).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
}

/// What [`show`] found, with the exact bytes of its manifest or index (`--manifest`).
#[derive(Clone, Debug)]
pub enum Shown {
    /// A snap snapshot.
    Snapshot {
        /// The description.
        show: Box<Show>,
        /// The manifest's bytes.
        manifest: Vec<u8>,
    },
    /// Anything else.
    Foreign {
        /// The description.
        show: Box<ShowForeign>,
        /// The manifest's or index's bytes.
        bytes: Vec<u8>,
    },
}

/// Describes `rev` from the store.
///
/// # Errors
/// `NotFound` for an unknown revision; a manifest, index or config that cannot be read.
pub fn show(store: &Store, rev: &str) -> Result<Shown, Error> {
    let id = crate::rev::resolve(store, rev)?;
    describe(Some(store), Artifact::load(store, &id)?)
}

/// Describes an artifact read from the store, or (`store` = `None`) from a registry.
///
/// # Errors
/// Refs that cannot be listed.
pub fn describe(store: Option<&Store>, artifact: Artifact) -> Result<Shown, Error> {
    Ok(match artifact {
        Artifact::Snapshot(s) => snapshot(store, &s)?,
        Artifact::Manifest(m) => {
            let v = m.manifest();
            let kind = match unpack::kind(v) {
                unpack::Kind::Image => "image",
                unpack::Kind::Files => "artifact",
            };
            Shown::Foreign {
                show: Box::new(ShowForeign {
                    digest: m.digest(),
                    kind: kind.to_owned(),
                    media_type: v.media_type.clone(),
                    artifact_type: v.artifact_type.clone(),
                    config: Some(v.config.clone()),
                    layers: v.layers.clone(),
                    manifests: Vec::new(),
                    annotations: v.annotations.clone(),
                    subject: v.subject.as_deref().cloned(),
                }),
                bytes: m.bytes().to_vec(),
            }
        }
        Artifact::Index(i) => Shown::Foreign {
            show: Box::new(ShowForeign {
                digest: i.digest(),
                kind: "index".to_owned(),
                media_type: i.index().media_type.clone(),
                artifact_type: None,
                config: None,
                layers: Vec::new(),
                manifests: i.index().manifests.clone(),
                annotations: i.index().annotations.clone(),
                subject: None,
            }),
            bytes: i.bytes().to_vec(),
        },
    })
}

fn snapshot(store: Option<&Store>, snap: &Snapshot) -> Result<Shown, Error> {
    let id = snap.id;
    let m = snap.manifest.manifest();
    let refs: Vec<String> = match store {
        Some(store) => store
            .refs
            .list()?
            .into_iter()
            .filter(|(_, d)| *d == id)
            .map(|(n, _)| n.to_string())
            .collect(),
        None => Vec::new(),
    };
    let direct = m.layers.iter().all(|l| {
        l.media_type != oci::MEDIA_TYPE_LAYER_TAR_ZSTD && l.media_type != oci::MEDIA_TYPE_TREES
    });
    Ok(Shown::Snapshot {
        show: Box::new(Show {
            digest: id,
            refs,
            root: snap.root(),
            parents: snap.config.parents.clone(),
            message: snap.config.message.clone(),
            created: snap.config.created.clone(),
            provenance: snap.config.provenance.clone(),
            stats: snap.config.stats,
            mode: if direct { "direct" } else { "grouped" }.to_owned(),
            annotations: m.annotations.clone(),
            config: m.config.clone(),
            layers: m.layers.clone(),
            referrers: match store {
                Some(store) => crate::ops::referrers::referrers_of(store, &[id])?,
                None => Vec::new(),
            },
        }),
        manifest: snap.manifest.bytes().to_vec(),
    })
}
