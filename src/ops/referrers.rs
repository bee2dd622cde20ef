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
    let mut queue: VecDeque<(Digest, usize)> = roots.iter().map(|d| (*d, 0)).collect();
    while let Some((subject, depth)) = queue.pop_front() {
        if depth >= MAX_DEPTH {
            continue;
        }
        for r in store.referrers.list(&subject)? {
            if !seen.insert(r) {
                continue;
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

/// What [`push`] sent.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pushed {
    /// Referrer manifests put.
    pub referrers: u64,
    /// Fallback tags (`sha256-<hex>`) put.
    pub fallback_tags: u64,
}

/// Sends the referrers the store holds for `subject` (and theirs) after it: their blobs the
/// repository lacks, then each manifest by digest, then — for a registry without the
/// referrers API — the fallback tag of each subject, read, merged and put (OCI mapping §7.4).
pub(crate) fn push(
    store: &Store,
    client: &crate::registry::Client,
    subject: Digest,
    progress: &dyn crate::ops::Progress,
) -> Result<Pushed, Error> {
    let infos = referrers_of(store, &[subject])?;
    if infos.is_empty() {
        return Ok(Pushed::default());
    }
    let roots: Vec<Digest> = infos.iter().map(|i| i.digest).collect();
    let closure = crate::ops::transfer::closure(store, &roots, &mut BTreeSet::new())?;
    let digests: Vec<Digest> = closure.blobs.iter().map(|(d, _)| *d).collect();
    let present = client.blobs_exist(&digests)?;
    let missing: Vec<(Digest, u64)> = closure
        .blobs
        .iter()
        .zip(present)
        .filter(|(_, here)| !here)
        .map(|(b, _)| *b)
        .collect();
    crate::ops::push::upload(store, client, &missing, progress)?;
    let mut out = Pushed::default();
    // Subject by subject, nearest first: every referrer of one subject, then its tag.
    let mut by_subject: Vec<(Digest, Vec<RawManifest>)> = Vec::new();
    for info in &infos {
        let m = read_referrer(store, &info.digest, &info.subject)?;
        let handled = client.put_referrer(
            m.bytes(),
            m.manifest()
                .media_type
                .as_deref()
                .unwrap_or(crate::oci::MEDIA_TYPE_MANIFEST),
        )?;
        out.referrers += 1;
        if handled {
            continue;
        }
        match by_subject.iter_mut().find(|(s, _)| *s == info.subject) {
            Some((_, v)) => v.push(m),
            None => by_subject.push((info.subject, vec![m])),
        }
    }
    for (s, ms) in by_subject {
        let tag = referrers::fallback_tag(&s);
        let existing = match client.get_manifest(&client.remote().with_tag(&tag)) {
            Ok((bytes, _)) => Some(crate::oci::layout::RawIndex::from_bytes(bytes)?),
            Err(crate::registry::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let added: Vec<Descriptor> = ms.iter().map(referrers::descriptor).collect();
        if let Some(index) = referrers::merge(
            existing.as_ref().map(crate::oci::layout::RawIndex::index),
            &added,
        ) {
            referrers::check_count(s, index.index().manifests.len())?;
            client.put_manifest(index.bytes(), crate::oci::MEDIA_TYPE_INDEX, Some(&tag))?;
            out.fallback_tags += 1;
        }
    }
    Ok(out)
}

/// A referrer fetched from a registry, staged: its descriptor (as an entry to take in) and
/// its manifest.
pub(crate) struct Fetched {
    /// Its entry: media type, digest, size.
    pub entry: Descriptor,
    /// Its manifest.
    pub manifest: RawManifest,
}

/// The registry's referrers of `subject` (and theirs, at most [`MAX_DEPTH`] deep), each
/// fetched by digest, checked to name the subject it was listed under, and staged with the
/// blobs the store lacks into `source` (OCI mapping §7.4): the referrers API, else the
/// fallback tag.
///
/// # Errors
/// `Referrers` errors for a forged list (a referrer of another subject: a cycle), more than
/// [`MAX_REFERRERS`] for one subject; registry errors.
pub(crate) fn fetch(
    client: &crate::registry::Client,
    subject: Digest,
    source: &mut crate::ops::transfer::Source,
    store: Option<&Store>,
) -> Result<Vec<Fetched>, Error> {
    let crate::ops::transfer::Source::Staged { dir, sizes } = source else {
        return Ok(Vec::new());
    };
    let dir = dir.path().to_owned();
    let mut out = Vec::new();
    let mut seen: BTreeSet<Digest> = BTreeSet::from([subject]);
    let mut queue: VecDeque<(Digest, usize)> = VecDeque::from([(subject, 0)]);
    while let Some((s, depth)) = queue.pop_front() {
        let listed = list_remote(client, &s)?;
        if listed.is_empty() {
            continue;
        }
        if depth >= MAX_DEPTH {
            return Err(referrers::Error::TooDeep {
                subject,
                digest: s,
                limit: MAX_DEPTH,
            }
            .into());
        }
        referrers::check_count(s, listed.len())?;
        for d in listed {
            if !seen.insert(d.digest) {
                // Listed twice, or a cycle back to something already taken: its subject
                // cannot be `s` too.
                if out.iter().any(|f: &Fetched| f.entry.digest == d.digest) {
                    continue;
                }
                return Err(referrers::Error::Cycle {
                    referrer: d.digest,
                    subject: s,
                }
                .into());
            }
            let (bytes, got) = client.get_manifest(&client.remote().with_digest(d.digest))?;
            let media_type = crate::ops::pull::media_type_of(&bytes)?;
            let m = RawManifest::from_bytes(bytes).map_err(|e| Error::NotAManifest {
                digest: got,
                reason: e.to_string(),
            })?;
            referrers::check_subject(m.manifest(), got, s)?;
            crate::ops::pull::write_blob(&dir, &got, m.bytes())?;
            sizes.insert(got, m.bytes().len() as u64);
            let v = m.manifest();
            for b in std::iter::once(&v.config).chain(&v.layers) {
                if sizes.contains_key(&b.digest)
                    || store.is_some_and(|st| st.objects.contains(&b.digest))
                {
                    continue;
                }
                crate::ops::pull::download_one(client, &dir, &b.digest, b.size)?;
                sizes.insert(b.digest, b.size);
            }
            out.push(Fetched {
                entry: Descriptor::new(&media_type, got, m.bytes().len() as u64),
                manifest: m,
            });
            queue.push_back((got, depth + 1));
        }
    }
    Ok(out)
}

/// The descriptors a registry lists as referrers of `subject`: its referrers API, else the
/// fallback tag's index, else none.
fn list_remote(
    client: &crate::registry::Client,
    subject: &Digest,
) -> Result<Vec<Descriptor>, Error> {
    let bytes = match client.referrers_api(subject)? {
        Some(b) => b,
        None => match client
            .get_manifest(&client.remote().with_tag(&referrers::fallback_tag(subject)))
        {
            Ok((b, _)) => b,
            Err(crate::registry::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        },
    };
    let index = crate::oci::layout::RawIndex::from_bytes(bytes)?;
    Ok(index.index().manifests.clone())
}
