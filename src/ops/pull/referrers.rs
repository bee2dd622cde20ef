//! A pulled manifest's referrers (signatures, attached artifacts; issue 16): listed by the
//! registry's referrers API or its fallback tag, each fetched by digest, checked to name the
//! subject it was listed under, and staged with the blobs the store lacks.

use std::collections::BTreeSet;

use super::{download_one, media_type_of, write_blob};
use crate::digest::Digest;
use crate::oci::Descriptor;
use crate::ops::Error;
use crate::store::Store;

/// A referrer fetched from a registry, staged: its descriptor (as an entry to take in) and
/// its manifest.
pub(crate) struct FetchedReferrer {
    /// Its entry: media type, digest, size.
    pub entry: Descriptor,
    /// Its manifest.
    pub manifest: crate::oci::RawManifest,
}

/// The registry's referrers of `subject` (and theirs, at most [`crate::oci::referrers::MAX_DEPTH`] deep), each
/// fetched by digest, checked to name the subject it was listed under, and staged with the
/// blobs the store lacks into `source` (OCI mapping §7.4): the referrers API, else the
/// fallback tag.
///
/// # Errors
/// `Referrers` errors for a forged list (a referrer of another subject: a cycle), more than
/// [`crate::oci::referrers::MAX_REFERRERS`] for one subject; registry errors.
pub(crate) fn fetch_referrers(
    client: &crate::registry::Client,
    subject: Digest,
    source: &mut crate::ops::transfer::Source,
    store: Option<&Store>,
) -> Result<Vec<FetchedReferrer>, Error> {
    let crate::ops::transfer::Source::Staged { dir, sizes, .. } = source else {
        return Ok(Vec::new());
    };
    let dir = dir.path().to_owned();
    let mut out = Vec::new();
    let mut seen: BTreeSet<Digest> = BTreeSet::from([subject]);
    let mut queue: std::collections::VecDeque<(Digest, usize)> =
        std::collections::VecDeque::from([(subject, 0)]);
    while let Some((s, depth)) = queue.pop_front() {
        let listed = list_remote(client, &s)?;
        if listed.is_empty() {
            continue;
        }
        if depth >= crate::oci::referrers::MAX_DEPTH {
            return Err(crate::oci::referrers::Error::TooDeep {
                subject,
                digest: s,
                limit: crate::oci::referrers::MAX_DEPTH,
            }
            .into());
        }
        crate::oci::referrers::check_count(s, listed.len())?;
        if out.len() + listed.len() > crate::oci::referrers::MAX_TOTAL {
            return Err(crate::oci::referrers::Error::TooMany {
                subject,
                count: out.len() + listed.len(),
                limit: crate::oci::referrers::MAX_TOTAL,
            }
            .into());
        }
        for d in listed {
            if !seen.insert(d.digest) {
                // Listed twice, or a cycle back to something already taken: its subject
                // cannot be `s` too.
                if out
                    .iter()
                    .any(|f: &FetchedReferrer| f.entry.digest == d.digest)
                {
                    continue;
                }
                return Err(crate::oci::referrers::Error::Cycle {
                    referrer: d.digest,
                    subject: s,
                }
                .into());
            }
            let (bytes, got) = client.get_manifest(&client.remote().with_digest(d.digest))?;
            let media_type = media_type_of(&bytes)?;
            let m =
                crate::oci::RawManifest::from_bytes(bytes).map_err(|e| Error::NotAManifest {
                    digest: got,
                    reason: e.to_string(),
                })?;
            crate::oci::referrers::check_subject(m.manifest(), got, s)?;
            write_blob(&dir, &got, m.bytes())?;
            sizes.insert(got, m.bytes().len() as u64);
            let v = m.manifest();
            for b in std::iter::once(&v.config).chain(&v.layers) {
                if sizes.contains_key(&b.digest)
                    || store.is_some_and(|st| st.objects.contains(&b.digest))
                {
                    continue;
                }
                download_one(client, &dir, &b.digest, b.size)?;
                sizes.insert(b.digest, b.size);
            }
            out.push(FetchedReferrer {
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
        None => match client.get_manifest(
            &client
                .remote()
                .with_tag(&crate::oci::referrers::fallback_tag(subject)),
        ) {
            Ok((b, _)) => b,
            Err(crate::registry::Error::NotFound { .. }) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        },
    };
    let index = crate::oci::layout::RawIndex::from_bytes(bytes)?;
    Ok(index.index().manifests.clone())
}
