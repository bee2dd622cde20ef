//! Referrers in the store: storing one (objects first, then the index line), listing the
//! referrers of a snapshot (`snap referrers`, `snap show`), and the bounded closure of
//! referrers of referrers that export and push carry along.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::digest::Digest;
use crate::oci::referrers::{self, MAX_DEPTH, MAX_REFERRERS};
use crate::oci::{Descriptor, Node, RawManifest};
use crate::ops::Error;
use crate::rev;
use crate::store::Store;

/// One referrer of a snapshot.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ReferrerInfo {
    /// The referrer's manifest.
    pub digest: Digest,
    /// What it refers to (the snapshot, or another referrer).
    pub subject: Digest,
    /// Its artifact type (`artifactType`, else its config's media type).
    pub artifact_type: String,
    /// Its manifest's size in bytes.
    pub size: u64,
    /// 1 for a referrer of the snapshot, 2 for a referrer of a referrer, …
    pub depth: usize,
    /// The titles of its layers (`org.opencontainers.image.title`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// Its manifest's annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// `snap referrers SNAP`: every referrer the store holds for it, referrers of referrers too.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ReferrersReport {
    /// The snapshot.
    pub subject: Digest,
    /// Its referrers, nearest first.
    pub referrers: Vec<ReferrerInfo>,
}

/// Lists the referrers of `rev`.
///
/// # Errors
/// `NotFound` for an unknown revision; `Corrupt` for a referrer that cannot be read.
pub fn list_referrers(store: &Store, rev: &str) -> Result<ReferrersReport, Error> {
    let subject = rev::resolve(store, rev)?;
    Ok(ReferrersReport {
        subject,
        referrers: referrers_of(store, &[subject])?,
    })
}

/// The referrers the store holds for `roots`, and theirs, at most [`MAX_DEPTH`] deep, each
/// once, nearest first (a subject always before its referrers).
///
/// # Errors
/// Index and object errors; a listed referrer that is not a manifest naming its subject.
pub(crate) fn referrers_of(store: &Store, roots: &[Digest]) -> Result<Vec<ReferrerInfo>, Error> {
    let mut out = Vec::new();
    let mut seen: BTreeSet<Digest> = roots.iter().copied().collect();
    for root in roots {
        // Bounded per root: an export of many signed snapshots is not one hostile list.
        let mut taken = 0usize;
        let mut queue: VecDeque<(Digest, usize)> = VecDeque::from([(*root, 0)]);
        while let Some((subject, depth)) = queue.pop_front() {
            if depth >= MAX_DEPTH {
                continue;
            }
            for r in store.referrers.list(&subject)? {
                if !seen.insert(r) {
                    continue;
                }
                taken += 1;
                if taken > referrers::MAX_TOTAL {
                    return Err(referrers::Error::TooMany {
                        subject: *root,
                        count: taken,
                        limit: referrers::MAX_TOTAL,
                    }
                    .into());
                }
                let m = read_referrer(store, &r, &subject)?;
                let v = m.manifest();
                out.push(ReferrerInfo {
                    digest: r,
                    subject,
                    artifact_type: referrers::artifact_type(v),
                    size: m.bytes().len() as u64,
                    depth: depth + 1,
                    files: v
                        .layers
                        .iter()
                        .filter_map(|l| l.title().map(str::to_owned))
                        .collect(),
                    annotations: v.annotations.clone(),
                });
                queue.push_back((r, depth + 1));
            }
        }
    }
    Ok(out)
}

/// Reads referrer `r` of `subject` from the store, checked to name it.
pub(crate) fn read_referrer(
    store: &Store,
    r: &Digest,
    subject: &Digest,
) -> Result<RawManifest, Error> {
    let bytes = store.objects.read(r, crate::oci::MAX_MANIFEST_BYTES)?;
    let m = RawManifest::from_bytes(bytes)?;
    referrers::check_subject(m.manifest(), *r, *subject)?;
    Ok(m)
}

/// The descriptor of stored manifest (or index) `digest`, as a `subject` names it.
pub(crate) fn subject_descriptor(store: &Store, digest: &Digest) -> Result<Descriptor, Error> {
    let bytes = store.objects.read(digest, crate::oci::MAX_MANIFEST_BYTES)?;
    let size = bytes.len() as u64;
    let node = Node::from_bytes(bytes)?;
    Ok(Descriptor::new(&node.media_type(), *digest, size))
}

/// Stores referrer `m` (its blobs must be stored already): the manifest, then its line in the
/// referrers index of its subject, which must be in the store.
pub(crate) fn store_referrer(store: &Store, m: &RawManifest) -> Result<Digest, Error> {
    let Some(subject) = &m.manifest().subject else {
        return Err(referrers::Error::WrongSubject {
            referrer: m.digest(),
            subject: m.digest(),
            actual: None,
        }
        .into());
    };
    if !store.objects.contains(&subject.digest) {
        return Err(Error::ReferrerSubjectAbsent {
            referrer: m.digest(),
            subject: subject.digest,
        });
    }
    let d = store.objects.put(m.bytes())?;
    // The object is durable (put syncs its directory) before the line that finds it.
    store
        .referrers
        .add(&subject.digest, &[d], MAX_REFERRERS)
        .map_err(Error::from)?;
    Ok(d)
}
