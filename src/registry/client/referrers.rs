//! The referrers of a manifest in a registry (distribution-spec 1.1): the referrers API,
//! `GET /v2/<repo>/referrers/<digest>`, and putting a manifest with a `subject`. The fallback
//! tag schema (`sha256-<hex>`) is plain manifests and tags, so it is the caller's
//! (`ops::referrers`).

use reqwest::Method;
use reqwest::header::{self, HeaderValue};

use super::{Client, MAX_MANIFEST_BYTES, What};
use crate::digest::Digest;
use crate::registry::Error;
use crate::registry::http::Request;

impl Client {
    /// Puts a manifest that has a `subject` (a referrer) by its digest; returns whether the
    /// registry took the subject into its referrers API (it answered `OCI-Subject`). When it
    /// did not, the caller maintains the fallback tag.
    ///
    /// # Errors
    /// As [`Client::put_manifest`].
    pub fn put_referrer(&self, bytes: &[u8], media_type: &str) -> Result<bool, Error> {
        self.put_manifest_answer(bytes, media_type, None)
    }

    /// The referrers index the registry's referrers API gives for `subject` (its exact bytes,
    /// at most [`MAX_MANIFEST_BYTES`]); `None` when it answers 404: no referrers API (CNCF
    /// distribution 2.8 answers every such path with a plain-text 404), or an unknown
    /// repository — the caller then reads the fallback tag.
    ///
    /// # Errors
    /// [`Error::ResponseTooLarge`], a classified [`Error`] for any other answer.
    pub fn referrers_api(&self, subject: &Digest) -> Result<Option<Vec<u8>>, Error> {
        let what = What::new("listing", format!("the referrers of {subject}"));
        let url = self.url(&format!("referrers/{subject}"))?;
        let url = &url;
        self.rt.block_on(self.call(false, &what, |auth| async move {
            let req = Request::new(Method::GET, url.clone())
                .header(
                    header::ACCEPT,
                    HeaderValue::from_static(crate::oci::MEDIA_TYPE_INDEX),
                )
                .authorization(&self.base, auth);
            let a = self.http.send(req).await?;
            match a.status() {
                200 => Ok(Some(a.read_bounded(MAX_MANIFEST_BYTES).await?)),
                404 => Ok(None),
                _ => Err(a.into_failure().await),
            }
        }))
    }
}

impl Client {
    /// The repository this client talks to (as given: with its tag or digest, if any).
    #[must_use]
    pub fn remote(&self) -> &crate::registry::RemoteRef {
        &self.remote
    }
}
