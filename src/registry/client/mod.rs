//! snap's distribution client: exactly the endpoints snap uses, one async function per
//! endpoint, behind a blocking [`Client`].
//!
//! | endpoint | used for |
//! |---|---|
//! | `GET /v2/` | the auth challenge ([`Client::login`]) |
//! | `GET <realm>?service=…&scope=…` | a bearer token, with Basic credentials when there are some |
//! | `HEAD`/`GET /v2/<repo>/manifests/<tag or digest>` | resolving a tag, fetching a manifest |
//! | `PUT /v2/<repo>/manifests/<tag or digest>` | pushing a manifest's exact bytes |
//! | `HEAD`/`GET /v2/<repo>/blobs/<digest>` | skipping blobs the repository has, downloading |
//! | `POST /v2/<repo>/blobs/uploads/?mount=<digest>&from=<repo>`, then `PUT <location>?digest=` (or `PATCH`es first) | uploading (`upload.rs`) |
//! | `GET <location>` of an earlier upload session | continuing an interrupted chunked upload |
//! | `GET /v2/<repo>/tags/list?n=…`, then its `Link: <…>; rel="next"` pages | listing tags ([`Client::list_tags`]) |
//!
//! Every body is read through a bound: manifests and indexes at most [`MAX_MANIFEST_BYTES`],
//! token answers [`MAX_TOKEN_BYTES`], error envelopes [`super::http::MAX_ENVELOPE_BYTES`],
//! blobs exactly their descriptor's size; every manifest and blob is checked against the
//! digest asked for (and `Docker-Content-Digest` when sent). Timeouts, retries and redirects
//! are [`super::http`]'s. An answer of 401 re-authenticates once (a token that expired in the
//! middle of a long transfer) and tries again; everything else becomes an [`Error`] a person
//! can act on.
//!
//! One tokio runtime per [`Client`] and `block_on` per call: nothing async leaves `registry`.

use std::io;
use std::net::IpAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Url};

use crate::digest::{Digest, Hasher};

use super::auth::{self, Found};
use super::http::{self, Body, Request, Timeouts, Transport};
use super::{Error, RemoteRef};

pub use crate::oci::MAX_MANIFEST_BYTES;

mod failures;
mod listing;
mod referrers;
mod session;
mod upload;

pub use upload::{CHUNK_BYTES, CHUNKED_ABOVE, Journal, MAX_CHUNK_BYTES, Upload, Uploaded};

use failures::one_line;
/// The largest token-server answer snap reads (real tokens are a few KiB, JWTs with
/// certificate chains included).
pub const MAX_TOKEN_BYTES: u64 = 256 << 10;
/// The media types snap asks for when it fetches a manifest.
pub const MANIFEST_ACCEPT: &[&str] = &[
    crate::oci::MEDIA_TYPE_MANIFEST,
    crate::oci::MEDIA_TYPE_INDEX,
    crate::oci::MEDIA_TYPE_DOCKER_MANIFEST,
    crate::oci::MEDIA_TYPE_DOCKER_LIST,
];

/// How to talk to a registry.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Plain HTTP even for a registry that is not on this machine.
    pub insecure: bool,
    /// Uploads or downloads in flight at once.
    pub jobs: usize,
    /// Upload every blob in chunks (for registries or proxies that refuse large requests).
    pub chunked: bool,
    /// When to give up on a slow registry.
    pub timeouts: Timeouts,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            jobs: 4,
            chunked: false,
            timeouts: Timeouts::default(),
        }
    }
}

/// What a request is about, for messages: `downloading` + `blob sha256:…`.
struct What {
    action: &'static str,
    thing: String,
    digest: Option<Digest>,
}

impl What {
    fn new(action: &'static str, thing: impl Into<String>) -> What {
        What {
            action,
            thing: thing.into(),
            digest: None,
        }
    }

    fn blob(action: &'static str, digest: Digest) -> What {
        What {
            action,
            thing: format!("blob {digest}"),
            digest: Some(digest),
        }
    }

    fn phase(&self) -> String {
        format!("{} {}", self.action, self.thing)
    }
}

/// A connection to one repository of one registry.
pub struct Client {
    rt: tokio::runtime::Runtime,
    http: Transport,
    found: Found,
    remote: RemoteRef,
    /// `scheme://host[:port]/` of the registry's API: the only origin credentials go to.
    base: Url,
    opts: ClientOptions,
    /// The `Authorization` value for the registry, once logged in.
    authorization: RwLock<Option<HeaderValue>>,
    /// Whether this client logged in to push (errors then speak of push access).
    pushing: AtomicBool,
}

impl Client {
    /// Prepares a client for `remote`'s repository, with the credentials [`auth::find`]
    /// finds. Nothing is sent yet.
    ///
    /// # Errors
    /// [`Error::Credentials`] for unusable credentials, [`Error::Io`] if the runtime cannot
    /// start.
    pub fn new(remote: &RemoteRef, opts: ClientOptions) -> Result<Client, Error> {
        // reqwest's rustls needs a process-wide provider; a second install is a no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let found = auth::find(&remote.registry)?;
        let scheme = if opts.insecure || remote.is_loopback() {
            "http"
        } else {
            "https"
        };
        let base =
            Url::parse(&format!("{scheme}://{}/", api_host(&remote.registry))).map_err(|_| {
                Error::BadReference {
                    input: remote.to_string(),
                    reason: format!("`{}` is not a host name", remote.registry),
                }
            })?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                what: "the network runtime".into(),
                source,
            })?;
        let http = {
            let _inside = rt.enter();
            Transport::new(opts.timeouts).map_err(|e| Error::Io {
                what: "the HTTP client".into(),
                source: io::Error::other(http::chain_text(&e)),
            })?
        };
        Ok(Client {
            rt,
            http,
            found,
            remote: remote.clone(),
            base,
            opts,
            authorization: RwLock::new(None),
            pushing: AtomicBool::new(false),
        })
    }

    /// Where the credentials came from (`anonymous` when there were none).
    pub fn credential_source(&self) -> &'static str {
        self.found.source
    }

    /// HTTP requests sent so far: every redirect, retry and token request included.
    pub fn requests(&self) -> u64 {
        self.http.requests()
    }

    /// Logs in for pull, or pull and push, so a wrong password or a missing permission fails
    /// here, before any transfer.
    ///
    /// # Errors
    /// A classified [`Error`].
    pub fn login(&self, push: bool) -> Result<(), Error> {
        if push {
            self.pushing.store(true, Ordering::Relaxed);
        }
        self.rt.block_on(self.authenticate(push, None))
    }

    /// The digest a tag names, or `None` when the repository has no such tag.
    ///
    /// # Errors
    /// A classified [`Error`] for anything but "manifest unknown".
    pub fn resolve_tag(&self, tag: &str) -> Result<Option<Digest>, Error> {
        self.rt.block_on(self.resolve_tag_async(tag))
    }

    /// Whether the repository has the blob.
    ///
    /// # Errors
    /// A classified [`Error`].
    pub fn blob_exists(&self, digest: &Digest) -> Result<bool, Error> {
        self.rt.block_on(self.blob_exists_async(*digest))
    }

    /// Which of `digests` the repository has, asking up to `jobs` at once.
    ///
    /// # Errors
    /// The first classified [`Error`].
    pub fn blobs_exist(&self, digests: &[Digest]) -> Result<Vec<bool>, Error> {
        let jobs = self.opts.jobs.max(1);
        self.rt.block_on(async {
            let answers: Vec<(usize, Result<bool, Error>)> = futures_util::stream::iter(
                digests
                    .iter()
                    .enumerate()
                    .map(|(i, d)| async move { (i, self.blob_exists_async(*d).await) }),
            )
            .buffer_unordered(jobs)
            .collect()
            .await;
            let mut out = vec![false; digests.len()];
            for (i, a) in answers {
                out[i] = a?;
            }
            Ok(out)
        })
    }

    /// Puts a manifest's exact bytes under `tag` (or its digest when `tag` is `None`) and
    /// checks the digest the registry answers with.
    ///
    /// # Errors
    /// [`Error::ManifestTooLarge`] before sending more than 4 MiB, [`Error::DigestMismatch`]
    /// if the registry stored something else, a classified [`Error`] otherwise.
    pub fn put_manifest(
        &self,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<(), Error> {
        self.put_manifest_answer(bytes, media_type, tag).map(drop)
    }

    /// [`Client::put_manifest`], returning whether the registry answered with an
    /// `OCI-Subject` header: it took the manifest's `subject` into its referrers API.
    fn put_manifest_answer(
        &self,
        bytes: &[u8],
        media_type: &str,
        tag: Option<&str>,
    ) -> Result<bool, Error> {
        let digest = Digest::of(bytes);
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Error::ManifestTooLarge {
                digest,
                size: bytes.len() as u64,
            });
        }
        let content_type = HeaderValue::from_str(media_type).map_err(|_| Error::Protocol {
            registry: self.remote.registry.clone(),
            reason: format!("`{media_type}` is not a valid content type"),
        })?;
        let reference = tag.map_or_else(|| digest.to_string(), str::to_owned);
        let url = self.url(&format!("manifests/{reference}"))?;
        let body = bytes::Bytes::copy_from_slice(bytes);
        let mut what = What::new("putting", format!("manifest {digest}"));
        what.digest = Some(digest);
        let (url, body, content_type) = (&url, &body, &content_type);
        let answered = self.rt.block_on(self.call(true, &what, |auth| async move {
            let req = Request::new(Method::PUT, url.clone())
                .header(header::CONTENT_TYPE, content_type.clone())
                .body(Body::Bytes(body.clone()))
                .authorization(&self.base, auth);
            let a = self.http.send(req).await?;
            if !(200..300).contains(&a.status()) {
                return Err(a.into_failure().await);
            }
            // The registry names what it stored: its digest header, or the Location's last
            // segment.
            let subject = a.header("oci-subject").is_some();
            Ok((
                a.header("docker-content-digest")
                    .map(str::to_owned)
                    .or_else(|| {
                        a.location()
                            .map(|l| l.path().rsplit('/').next().unwrap_or("").to_owned())
                    }),
                subject,
            ))
        }))?;
        let (answered, subject) = answered;
        if let Some(answered) = answered.and_then(|d| d.parse::<Digest>().ok())
            && answered != digest
        {
            return Err(Error::DigestMismatch {
                registry: self.remote.registry.clone(),
                expected: digest,
                actual: answered,
            });
        }
        Ok(subject)
    }

    /// Fetches a manifest (or index) by tag or digest: its exact bytes, at most
    /// [`MAX_MANIFEST_BYTES`], checked against the digest asked for and the one the registry
    /// names.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::ResponseTooLarge`], [`Error::DigestMismatch`], a
    /// classified [`Error`].
    pub fn get_manifest(&self, at: &RemoteRef) -> Result<(Vec<u8>, Digest), Error> {
        self.rt.block_on(self.get_manifest_async(at))
    }

    /// Streams a blob into `out`, checking its size and digest as it goes.
    ///
    /// # Errors
    /// [`Error::BlobMismatch`] when the bytes are not the blob, a classified [`Error`], or
    /// [`Error::Io`] from `out`.
    pub fn download(
        &self,
        digest: &Digest,
        size: u64,
        out: &mut dyn io::Write,
    ) -> Result<u64, Error> {
        self.download_from(digest, size, 0, Hasher::new(), out)
    }

    /// Streams the rest of a blob into `out`: its bytes from `offset` on, where `hashed` has
    /// hashed the first `offset` (a partial download being continued, store format §2.1).
    /// Asks for them with `Range: bytes=<offset>-`; a registry that answers `200` with the
    /// whole blob has its first `offset` bytes hashed and dropped instead, so `out` gets the
    /// same bytes either way. The whole blob's size and digest are checked as in
    /// [`Client::download`]. Returns the bytes that crossed the wire.
    ///
    /// # Errors
    /// As [`Client::download`]; [`Error::BlobMismatch`] when a `206` answer covers another
    /// range than the one asked for.
    pub fn download_from(
        &self,
        digest: &Digest,
        size: u64,
        offset: u64,
        hashed: Hasher,
        out: &mut dyn io::Write,
    ) -> Result<u64, Error> {
        let digest = *digest;
        let offset = offset.min(size);
        let what = What::blob("downloading", digest);
        let url = self.url(&format!("blobs/{digest}"))?;
        let url = &url;
        let mismatch = |reason: String| Error::BlobMismatch {
            registry: self.remote.registry.clone(),
            digest,
            reason,
        };
        self.rt.block_on(async {
            let answer = self
                .call(false, &what, |auth| async move {
                    let mut req =
                        Request::new(Method::GET, url.clone()).authorization(&self.base, auth);
                    if offset > 0 {
                        req = req.header(
                            header::RANGE,
                            HeaderValue::from_str(&format!("bytes={offset}-"))
                                .map_err(|e| http::Failure::Protocol(e.to_string()))?,
                        );
                    }
                    let a = self.http.send(req).await?;
                    if a.status() == 200 || (offset > 0 && a.status() == 206) {
                        Ok(a)
                    } else {
                        Err(a.into_failure().await)
                    }
                })
                .await?;
            if let Some(named) = answer
                .header("docker-content-digest")
                .and_then(|d| d.parse::<Digest>().ok())
                && named != digest
            {
                return Err(mismatch(format!("it names it {named}")));
            }
            // Where the body starts: the offset asked for, or 0 for the whole blob.
            let from = if answer.status() == 206 {
                let range = answer.header("content-range").unwrap_or_default();
                if content_range_start(range) != Some(offset) {
                    return Err(mismatch(format!(
                        "asked for the bytes from {offset}, it sent the range `{}`",
                        one_line(range)
                    )));
                }
                offset
            } else {
                0
            };
            // A registry that ignored the range sends bytes `out` already has: hashed, compared
            // with what `out` has (through their digests), dropped.
            let ours = (from == 0 && offset > 0).then(|| hashed.clone().finish());
            let mut hashing = if from == 0 { Hasher::new() } else { hashed };
            let mut skip = offset - from;
            let mut theirs = None;
            answer
                .copy_exact(size - from, &mut |chunk| {
                    let n = usize::try_from(skip).unwrap_or(usize::MAX).min(chunk.len());
                    hashing.update(&chunk[..n]);
                    if n > 0 {
                        skip -= n as u64;
                        if skip == 0 {
                            theirs = Some(hashing.clone().finish());
                        }
                    }
                    hashing.update(&chunk[n..]);
                    out.write_all(&chunk[n..])
                })
                .await
                .map_err(|f| self.classify(f, &what, false))?;
            if ours.is_some() && theirs != ours {
                return Err(mismatch(format!(
                    "the first {offset} bytes it sent differ from the ones kept from before"
                )));
            }
            let actual = hashing.finish();
            if actual != digest {
                return Err(mismatch(format!(
                    "it sent {size} bytes hashing to {actual}"
                )));
            }
            Ok(size - from)
        })
    }

    // ---- endpoints -------------------------------------------------------------------

    /// `/v2/<repository>/<rest>` on the registry.
    fn url(&self, rest: &str) -> Result<Url, Error> {
        // Repository, tag and digest were checked by `RemoteRef::parse`: nothing to escape.
        self.base
            .join(&format!("v2/{}/{rest}", self.remote.repository))
            .map_err(|e| Error::Protocol {
                registry: self.remote.registry.clone(),
                reason: format!("cannot form the URL of `{rest}`: {e}"),
            })
    }

    fn accept_manifests() -> HeaderValue {
        HeaderValue::from_static(concat!(
            "application/vnd.oci.image.manifest.v1+json, ",
            "application/vnd.oci.image.index.v1+json, ",
            "application/vnd.docker.distribution.manifest.v2+json, ",
            "application/vnd.docker.distribution.manifest.list.v2+json"
        ))
    }

    async fn resolve_tag_async(&self, tag: &str) -> Result<Option<Digest>, Error> {
        let what = What::new("resolving", format!("tag `{tag}`"));
        let url = self.url(&format!("manifests/{tag}"))?;
        let url = &url;
        let named = self
            .call(false, &what, |auth| async move {
                let req = Request::new(Method::HEAD, url.clone())
                    .header(header::ACCEPT, Client::accept_manifests())
                    .authorization(&self.base, auth);
                let a = self.http.send(req).await?;
                match a.status() {
                    200 => Ok(Some(a.header("docker-content-digest").map(str::to_owned))),
                    404 => Ok(None),
                    _ => Err(a.into_failure().await),
                }
            })
            .await?;
        match named {
            None => Ok(None),
            Some(Some(d)) => d.parse().map(Some).map_err(|_| Error::Protocol {
                registry: self.remote.registry.clone(),
                reason: format!("it named tag `{tag}`'s digest `{}`", one_line(&d)),
            }),
            // No digest header: fetch the manifest and hash it.
            Some(None) => match self.get_manifest_async(&self.remote.with_tag(tag)).await {
                Ok((_, d)) => Ok(Some(d)),
                Err(Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            },
        }
    }

    async fn get_manifest_async(&self, at: &RemoteRef) -> Result<(Vec<u8>, Digest), Error> {
        let reference = match (&at.digest, &at.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => crate::oci::LATEST.to_owned(),
        };
        let mut what = What::new("fetching", format!("manifest {at}"));
        what.digest = at.digest;
        let url = self.url(&format!("manifests/{reference}"))?;
        let url = &url;
        let (body, named) = self
            .call(false, &what, |auth| async move {
                let req = Request::new(Method::GET, url.clone())
                    .header(header::ACCEPT, Client::accept_manifests())
                    .authorization(&self.base, auth);
                let a = self.http.send(req).await?;
                if a.status() != 200 {
                    return Err(a.into_failure().await);
                }
                let named = a.header("docker-content-digest").map(str::to_owned);
                Ok((a.read_bounded(MAX_MANIFEST_BYTES).await?, named))
            })
            .await?;
        let actual = Digest::of(&body);
        let named = named.and_then(|d| d.parse::<Digest>().ok());
        if let Some(expected) = at.digest.or(named)
            && expected != actual
        {
            return Err(Error::DigestMismatch {
                registry: self.remote.registry.clone(),
                expected,
                actual,
            });
        }
        if let (Some(asked), Some(named)) = (at.digest, named)
            && asked != named
        {
            return Err(Error::DigestMismatch {
                registry: self.remote.registry.clone(),
                expected: asked,
                actual: named,
            });
        }
        Ok((body, actual))
    }

    async fn blob_exists_async(&self, digest: Digest) -> Result<bool, Error> {
        let what = What::blob("checking", digest);
        let url = self.url(&format!("blobs/{digest}"))?;
        let url = &url;
        self.call(true, &what, |auth| async move {
            let req = Request::new(Method::HEAD, url.clone()).authorization(&self.base, auth);
            let a = self.http.send(req).await?;
            match a.status() {
                200 => Ok(true),
                404 => Ok(false),
                _ => Err(a.into_failure().await),
            }
        })
        .await
    }
}

/// The host serving a registry's API: Docker Hub's is not its name.
fn api_host(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

fn is_loopback_url(url: &Url) -> bool {
    let host = url.host_str().unwrap_or("");
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn octet_stream() -> HeaderValue {
    HeaderValue::from_static("application/octet-stream")
}

/// An `Authorization` value, marked sensitive (never printed by the HTTP stack).
fn secret(text: &str) -> Result<HeaderValue, Error> {
    let mut v = HeaderValue::from_str(text).map_err(|_| Error::Credentials {
        registry: String::new(),
        reason: "the credentials hold characters an HTTP header cannot carry".into(),
    })?;
    v.set_sensitive(true);
    Ok(v)
}

/// The first byte a `Content-Range: bytes <first>-<last>/<size>` answer covers.
fn content_range_start(value: &str) -> Option<u64> {
    let (first, _) = value.trim().strip_prefix("bytes ")?.split_once('-')?;
    first.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_content_range_gives_its_first_byte() {
        assert_eq!(super::content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(super::content_range_start(" bytes 0-0/1 "), Some(0));
        for bad in [
            "",
            "bytes */200",
            "items 1-2/3",
            "bytes -5/9",
            "bytes x-1/2",
        ] {
            assert_eq!(super::content_range_start(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn server_text_is_printed_on_one_safe_line() {
        assert_eq!(one_line("a\n\n b\x1b[31mc"), "a b[31mc");
        assert_eq!(one_line(&"x".repeat(400)).chars().count(), 301);
    }

    #[test]
    fn docker_hub_is_served_from_its_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
    }
}
