//! Referrers (OCI image-spec 1.1 `subject`): manifests that refer to another manifest without
//! changing it — snap's signatures, `snap attach` artifacts, cosign/notation/oras attachments.
//!
//! Owns the referrer manifest snap writes (artifact style: the empty config, `artifactType`,
//! `subject`), the descriptor a referrers index lists for one, the referrers index itself and
//! the fallback tag schema of distribution-spec 1.1 (`sha256-<hex>`, an image index of the
//! referrers of that digest) for registries without the referrers API. See OCI mapping §7.
//!
//! Everything is pure: no I/O. The bounds every reader applies are here too: a hostile
//! registry or layout can list any number of referrers, nest referrers of referrers, or claim
//! a subject that is not the one asked for.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::oci::layout::{ImageIndex, RawIndex};
use crate::oci::{
    Descriptor, EMPTY_BLOB, ImageManifest, MEDIA_TYPE_EMPTY, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST,
    RawManifest,
};

/// Most referrers snap keeps, sends or takes for one subject.
pub const MAX_REFERRERS: usize = 1024;
/// Most referrers (referrers of referrers included) snap takes or sends with one manifest.
pub const MAX_TOTAL: usize = 4 * MAX_REFERRERS;
/// Longest chain of referrers of referrers snap follows (a signature of an SBOM of a
/// snapshot is 2).
pub const MAX_DEPTH: usize = 4;

/// The fallback tag holding the referrers index of `subject`: `sha256-<64 hex>`.
#[must_use]
pub fn fallback_tag(subject: &Digest) -> String {
    format!("sha256-{}", subject.hex())
}

/// The empty config every referrer snap writes carries.
#[must_use]
pub fn empty_config() -> Descriptor {
    Descriptor::new(
        MEDIA_TYPE_EMPTY,
        Digest::of(EMPTY_BLOB),
        EMPTY_BLOB.len() as u64,
    )
}

/// A referrer of `subject`: an image manifest with `artifactType`, the empty config, `layers`
/// (or the empty descriptor when there are none, as image-spec asks) and `annotations`.
#[must_use]
pub fn manifest(
    subject: Descriptor,
    artifact_type: &str,
    layers: Vec<Descriptor>,
    annotations: BTreeMap<String, String>,
) -> RawManifest {
    let layers = if layers.is_empty() {
        vec![empty_config()]
    } else {
        layers
    };
    RawManifest::encode(ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.to_owned()),
        artifact_type: Some(artifact_type.to_owned()),
        config: empty_config(),
        layers,
        subject: Some(Box::new(subject)),
        annotations,
    })
}

/// The artifact type of a manifest as a referrers index gives it: its `artifactType`, else its
/// config's media type (distribution-spec's rule).
#[must_use]
pub fn artifact_type(m: &ImageManifest) -> String {
    m.artifact_type
        .clone()
        .unwrap_or_else(|| m.config.media_type.clone())
}

/// The entry a referrers index lists for referrer `m`: its media type, digest and size, its
/// artifact type and its annotations.
#[must_use]
pub fn descriptor(m: &RawManifest) -> Descriptor {
    let mut d = Descriptor::new(
        m.manifest()
            .media_type
            .as_deref()
            .unwrap_or(MEDIA_TYPE_MANIFEST),
        m.digest(),
        m.bytes().len() as u64,
    );
    d.artifact_type = Some(artifact_type(m.manifest()));
    d.annotations.clone_from(&m.manifest().annotations);
    d
}

/// A referrers index listing `entries` (sorted by digest, each once).
#[must_use]
pub fn index(mut entries: Vec<Descriptor>) -> RawIndex {
    entries.sort_by_key(|d| d.digest);
    entries.dedup_by_key(|d| d.digest);
    RawIndex::encode(ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
        manifests: entries,
        annotations: BTreeMap::new(),
    })
}

/// `existing` (a fallback tag's index, if there is one) with `added` merged in, as oras
/// maintains it: entries already listed stay as they are, new ones are appended. `None` when
/// nothing is new (no need to put the tag again).
#[must_use]
pub fn merge(existing: Option<&ImageIndex>, added: &[Descriptor]) -> Option<RawIndex> {
    let mut entries: Vec<Descriptor> = existing.map(|i| i.manifests.clone()).unwrap_or_default();
    let before = entries.len();
    for d in added {
        if !entries.iter().any(|e| e.digest == d.digest) {
            entries.push(d.clone());
        }
    }
    if existing.is_some() && entries.len() == before {
        return None;
    }
    Some(RawIndex::encode(ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
        manifests: entries,
        annotations: existing.map(|i| i.annotations.clone()).unwrap_or_default(),
    }))
}

/// Why a list of referrers cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// More referrers than [`MAX_REFERRERS`] for one subject.
    #[error("{subject} has {count} referrers, more than the {limit} snap takes")]
    TooMany {
        /// The subject.
        subject: Digest,
        /// How many were listed.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Referrers of referrers nested deeper than [`MAX_DEPTH`].
    #[error("referrers of referrers of {subject} nest deeper than {limit} levels (at {digest})")]
    TooDeep {
        /// Where the chain starts.
        subject: Digest,
        /// The referrer past the limit.
        digest: Digest,
        /// The limit.
        limit: usize,
    },
    /// A referrer listed again below itself, or the subject listed as its own referrer.
    #[error(
        "{referrer} is listed as a referrer of {subject}, which is itself or refers to it: a cycle through subject"
    )]
    Cycle {
        /// The referrer listed.
        referrer: Digest,
        /// The subject it was listed under.
        subject: Digest,
    },
    /// A listed referrer whose `subject` is another manifest (or none): a forged list, or a
    /// cycle through `subject`.
    #[error("{referrer} is listed as a referrer of {subject} but {}", match actual {
        Some(a) => format!("its subject is {a}"),
        None => "it has no subject".to_owned(),
    })]
    WrongSubject {
        /// The referrer.
        referrer: Digest,
        /// The subject it was listed under.
        subject: Digest,
        /// The subject it names.
        actual: Option<Digest>,
    },
}

/// Checks that referrer `m`, listed under `subject`, names it.
///
/// # Errors
/// [`Error::WrongSubject`].
pub fn check_subject(m: &ImageManifest, referrer: Digest, subject: Digest) -> Result<(), Error> {
    match &m.subject {
        Some(s) if s.digest == subject && referrer != subject => Ok(()),
        other => Err(Error::WrongSubject {
            referrer,
            subject,
            actual: other.as_ref().map(|s| s.digest),
        }),
    }
}

/// Checks a count of referrers of one subject against [`MAX_REFERRERS`].
///
/// # Errors
/// [`Error::TooMany`].
pub fn check_count(subject: Digest, count: usize) -> Result<(), Error> {
    if count > MAX_REFERRERS {
        return Err(Error::TooMany {
            subject,
            count,
            limit: MAX_REFERRERS,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject() -> Descriptor {
        Descriptor::new(MEDIA_TYPE_MANIFEST, Digest::of(b"snapshot"), 8)
    }

    #[test]
    fn a_referrer_names_its_subject_and_has_the_empty_config()
    -> Result<(), Box<dyn std::error::Error>> {
        let m = manifest(subject(), "application/x.test", Vec::new(), BTreeMap::new());
        let back = RawManifest::from_bytes(m.bytes().to_vec())?;
        assert_eq!(
            back.manifest().subject.as_ref().map(|s| s.digest),
            Some(Digest::of(b"snapshot"))
        );
        assert_eq!(back.manifest().config, empty_config());
        assert_eq!(
            back.manifest().layers,
            vec![empty_config()],
            "image-spec: no layers means the empty descriptor"
        );
        let text = String::from_utf8_lossy(m.bytes()).into_owned();
        assert!(text.find("\"layers\"") < text.find("\"subject\""), "{text}");
        check_subject(back.manifest(), back.digest(), Digest::of(b"snapshot"))?;
        assert!(check_subject(back.manifest(), back.digest(), Digest::of(b"other")).is_err());
        Ok(())
    }

    #[test]
    fn merging_keeps_what_is_listed_and_reports_no_change() -> Result<(), Box<dyn std::error::Error>>
    {
        let m = manifest(subject(), "application/x.test", Vec::new(), BTreeMap::new());
        let d = descriptor(&m);
        assert_eq!(d.artifact_type.as_deref(), Some("application/x.test"));
        let first = merge(None, std::slice::from_ref(&d)).ok_or("a new tag is always written")?;
        assert_eq!(first.index().manifests.len(), 1);
        assert!(
            merge(Some(first.index()), &[d]).is_none(),
            "nothing new: no put"
        );
        assert_eq!(fallback_tag(&Digest::of(b"x")).len(), "sha256-".len() + 64);
        Ok(())
    }

    #[test]
    fn counts_past_the_bound_are_refused() {
        assert!(check_count(Digest::of(b"s"), MAX_REFERRERS).is_ok());
        assert!(matches!(
            check_count(Digest::of(b"s"), MAX_REFERRERS + 1),
            Err(Error::TooMany { .. })
        ));
    }
}
