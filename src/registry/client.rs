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
//! | `POST /v2/<repo>/blobs/uploads/`, then `PUT <location>?digest=` (or `PATCH`es first) | uploading |
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

use std::future::Future;
use std::io::{self, Read};
use std::net::IpAddr;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine as _;
use futures_util::StreamExt;
use reqwest::header::{self, HeaderValue};
use reqwest::{Method, Url};

use crate::digest::{Digest, Hasher};

use super::auth::{self, Challenge, Credentials, Found, Token};
use super::http::{self, Body, Failure, Request, Timeouts, Transport};
use super::tags;
use super::{Error, RemoteRef};

pub use crate::oci::MAX_MANIFEST_BYTES;
/// The largest token-server answer snap reads (real tokens are a few KiB, JWTs with
/// certificate chains included).
pub const MAX_TOKEN_BYTES: u64 = 256 << 10;
/// Blobs larger than this go up in chunks (`PATCH`es) rather than in one `PUT`.
pub const CHUNKED_ABOVE: u64 = 512 << 20;
/// The size of an upload chunk (raised to the registry's `OCI-Chunk-Min-Length`, up to
/// [`MAX_CHUNK_BYTES`]).
pub const CHUNK_BYTES: u64 = 4 << 20;
/// The largest upload chunk snap holds in memory.
pub const MAX_CHUNK_BYTES: u64 = 64 << 20;
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

/// A blob to upload: its digest, size, and how to open its bytes (more than once, should a
/// retry be needed).
pub struct Upload<'a> {
    /// The digest.
    pub digest: Digest,
    /// The size.
    pub size: u64,
    /// Opens a reader over exactly the blob's bytes, failing its last read if they are wrong.
    pub open: Box<dyn Fn() -> io::Result<Box<dyn Read + Send>> + Send + Sync + 'a>,
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

    /// Uploads blobs, up to `jobs` at once. `done` is called after each with its size.
    ///
    /// # Errors
    /// The first failure (a classified [`Error`], or [`Error::Source`] when a blob's bytes
    /// could not be read or did not match their digest — nothing wrong is ever committed by
    /// the registry, which checks the digest too).
    pub fn upload(&self, blobs: &[Upload<'_>], done: &(dyn Fn(u64) + Sync)) -> Result<(), Error> {
        let jobs = self.opts.jobs.max(1);
        let results: Vec<Result<(), Error>> = self.rt.block_on(
            futures_util::stream::iter(blobs.iter().map(|b| async move {
                let what = What::blob("uploading", b.digest);
                let r = self
                    .call(true, &what, |auth| self.upload_once(b, auth))
                    .await;
                if r.is_ok() {
                    done(b.size);
                }
                r
            }))
            .buffer_unordered(jobs)
            .collect(),
        );
        results.into_iter().collect()
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
            Ok(a.header("docker-content-digest")
                .map(str::to_owned)
                .or_else(|| {
                    a.location()
                        .map(|l| l.path().rsplit('/').next().unwrap_or("").to_owned())
                }))
        }))?;
        if let Some(answered) = answered.and_then(|d| d.parse::<Digest>().ok())
            && answered != digest
        {
            return Err(Error::DigestMismatch {
                registry: self.remote.registry.clone(),
                expected: digest,
                actual: answered,
            });
        }
        Ok(())
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
        let digest = *digest;
        let what = What::blob("downloading", digest);
        let url = self.url(&format!("blobs/{digest}"))?;
        let url = &url;
        self.rt.block_on(async {
            let answer = self
                .call(false, &what, |auth| async move {
                    let a = self
                        .http
                        .send(
                            Request::new(Method::GET, url.clone()).authorization(&self.base, auth),
                        )
                        .await?;
                    if a.status() == 200 {
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
                return Err(Error::BlobMismatch {
                    registry: self.remote.registry.clone(),
                    digest,
                    reason: format!("it names it {named}"),
                });
            }
            let mut hashing = Hasher::new();
            answer
                .copy_exact(size, &mut |chunk| {
                    hashing.update(chunk);
                    out.write_all(chunk)
                })
                .await
                .map_err(|f| self.classify(f, &what, false))?;
            let actual = hashing.finish();
            if actual != digest {
                return Err(Error::BlobMismatch {
                    registry: self.remote.registry.clone(),
                    digest,
                    reason: format!("it sent {size} bytes hashing to {actual}"),
                });
            }
            Ok(size)
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

    /// One whole upload: a new session, then one `PUT` (or `PATCH`es and a closing `PUT`),
    /// from a freshly opened source — so a retry sends the bytes again from the start.
    async fn upload_once(
        &self,
        blob: &Upload<'_>,
        auth: Option<HeaderValue>,
    ) -> Result<(), Failure> {
        let reader = (blob.open)().map_err(Failure::Source)?;
        let start = Request::new(Method::POST, self.upload_url().map_err(Failure::Protocol)?)
            .header(header::CONTENT_LENGTH, HeaderValue::from_static("0"))
            .authorization(&self.base, auth.clone());
        let a = self.http.send(start).await?;
        if a.status() != 202 {
            return Err(a.into_failure().await);
        }
        let mut location = a
            .location()
            .ok_or_else(|| Failure::Protocol("it started an upload without a Location".into()))?;
        let chunk = a
            .header("oci-chunk-min-length")
            .and_then(|n| n.trim().parse::<u64>().ok())
            .map_or(CHUNK_BYTES, |n| n.clamp(CHUNK_BYTES, MAX_CHUNK_BYTES));
        drop(a);
        let chunked = (self.opts.chunked || blob.size > CHUNKED_ABOVE) && blob.size > 0;
        let body = if chunked {
            let mut reader = reader;
            let mut offset = 0u64;
            loop {
                let piece = read_piece(&mut reader, chunk).map_err(Failure::Source)?;
                if piece.is_empty() {
                    break;
                }
                let end = offset + piece.len() as u64 - 1;
                let range = HeaderValue::from_str(&format!("{offset}-{end}"))
                    .map_err(|e| Failure::Protocol(e.to_string()))?;
                offset = end + 1;
                let req = Request::new(Method::PATCH, location)
                    .header(header::CONTENT_TYPE, octet_stream())
                    .header(header::CONTENT_RANGE, range)
                    .body(Body::Bytes(piece.into()))
                    .authorization(&self.base, auth.clone());
                let a = self.http.send(req).await?;
                if a.status() != 202 {
                    return Err(a.into_failure().await);
                }
                location = a.location().ok_or_else(|| {
                    Failure::Protocol("it took an upload chunk without a Location".into())
                })?;
            }
            if offset != blob.size {
                return Err(Failure::Source(io::Error::other(format!(
                    "read {offset} bytes, expected {}",
                    blob.size
                ))));
            }
            Body::Empty
        } else {
            Body::Reader {
                reader,
                size: blob.size,
            }
        };
        location
            .query_pairs_mut()
            .append_pair("digest", &blob.digest.to_string());
        let req = Request::new(Method::PUT, location)
            .header(header::CONTENT_TYPE, octet_stream())
            .body(body)
            .authorization(&self.base, auth);
        let req = if chunked {
            req.header(header::CONTENT_LENGTH, HeaderValue::from_static("0"))
        } else {
            req
        };
        let a = self.http.send(req).await?;
        if !(200..300).contains(&a.status()) {
            return Err(a.into_failure().await);
        }
        Ok(())
    }

    fn upload_url(&self) -> Result<Url, String> {
        self.url("blobs/uploads/").map_err(|e| e.to_string())
    }

    // ---- authentication --------------------------------------------------------------

    fn current_authorization(&self) -> Option<HeaderValue> {
        self.authorization.read().ok().and_then(|a| a.clone())
    }

    fn set_authorization(&self, value: Option<HeaderValue>) {
        if let Ok(mut a) = self.authorization.write() {
            *a = value;
        }
    }

    /// Runs `attempt` with the current credentials, under the transport's retries; on a 401,
    /// authenticates again once (for the challenge it carries) and runs it once more.
    async fn call<T, F, Fut>(&self, push: bool, what: &What, attempt: F) -> Result<T, Error>
    where
        F: Fn(Option<HeaderValue>) -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut renewed = false;
        loop {
            let auth = self.current_authorization();
            match self.http.retrying(|| attempt(auth.clone())).await {
                Ok(v) => return Ok(v),
                Err(Failure::Status {
                    status: 401,
                    challenge,
                    ..
                }) if !renewed => {
                    renewed = true;
                    self.authenticate(push, challenge.as_deref()).await?;
                }
                Err(f) => return Err(self.classify(f, what, push)),
            }
        }
    }

    /// Logs in: asks `/v2/` for its challenge unless one is given, then answers it — Basic
    /// credentials (checked at once), or a bearer token from the realm.
    async fn authenticate(&self, push: bool, challenge: Option<&str>) -> Result<(), Error> {
        let what = What::new("logging in to", self.remote.registry.clone());
        let root = self.base.join("v2/").map_err(|e| Error::Protocol {
            registry: self.remote.registry.clone(),
            reason: e.to_string(),
        })?;
        let root = &root;
        let challenge = if let Some(c) = challenge {
            c.to_owned()
        } else {
            let asked = self
                .http
                .retrying(|| async {
                    let a = self
                        .http
                        .send(Request::new(Method::GET, root.clone()))
                        .await?;
                    match a.status() {
                        200..=299 => Ok(None),
                        401 => Ok(Some(a.header("www-authenticate").unwrap_or("").to_owned())),
                        _ => Err(a.into_failure().await),
                    }
                })
                .await
                .map_err(|f| self.classify(f, &what, push))?;
            let Some(challenge) = asked else {
                // An open registry: a token given as is still goes along.
                if let Credentials::Bearer(t) = &self.found.credentials {
                    self.set_authorization(Some(secret(&format!("Bearer {t}"))?));
                }
                return Ok(());
            };
            challenge
        };
        let value = match (Challenge::parse(&challenge), &self.found.credentials) {
            (_, Credentials::Bearer(t)) => secret(&format!("Bearer {t}"))?,
            (Some(Challenge::Basic), Credentials::Basic { username, password }) => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                let value = secret(&format!("Basic {encoded}"))?;
                // Check the password now, not in the middle of a transfer.
                let v = &value;
                let status = self
                    .http
                    .retrying(|| async {
                        let a = self
                            .http
                            .send(
                                Request::new(Method::GET, root.clone())
                                    .authorization(&self.base, Some(v.clone())),
                            )
                            .await?;
                        match a.status() {
                            200..=299 | 401 => Ok(a.status()),
                            _ => Err(a.into_failure().await),
                        }
                    })
                    .await
                    .map_err(|f| self.classify(f, &what, push))?;
                if status == 401 {
                    return Err(self.unauthorized(push));
                }
                value
            }
            (
                Some(Challenge::Bearer {
                    realm,
                    service,
                    scope,
                }),
                _,
            ) => {
                let ours = format!(
                    "repository:{}:{}",
                    self.remote.repository,
                    if push { "pull,push" } else { "pull" }
                );
                let mut scopes = vec![ours];
                if let Some(s) = scope
                    && !scopes.contains(&s)
                {
                    scopes.push(s);
                }
                self.fetch_token(&realm, service.as_deref(), &scopes, push)
                    .await?
            }
            (Some(Challenge::Basic) | None, _) => return Err(self.unauthorized(push)),
        };
        self.set_authorization(Some(value));
        Ok(())
    }

    /// A bearer token from `realm`, asked with Basic credentials when there are some.
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
        push: bool,
    ) -> Result<HeaderValue, Error> {
        let bad_realm = |reason: &str| Error::Protocol {
            registry: self.remote.registry.clone(),
            reason: format!("its token realm `{}` {reason}", one_line(realm)),
        };
        let mut url = Url::parse(realm).map_err(|_| bad_realm("is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad_realm("is not an http(s) URL"));
        }
        let server = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", s);
            }
        }
        let basic = match &self.found.credentials {
            Credentials::Basic { username, password } => {
                let encoded = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                Some(secret(&format!("Basic {encoded}"))?)
            }
            _ => None,
        };
        // A password crosses the network in clear text only on this machine, or when asked.
        if basic.is_some()
            && url.scheme() == "http"
            && !self.opts.insecure
            && !is_loopback_url(&url)
        {
            return Err(Error::InsecureRealm {
                registry: self.remote.registry.clone(),
                realm: one_line(realm),
            });
        }
        let what = What::new("fetching", "a token");
        let (url, basic) = (&url, &basic);
        let body = self
            .http
            .retrying(|| async {
                let req = Request::new(Method::GET, url.clone()).authorization(url, basic.clone());
                let a = self.http.send(req).await?;
                if a.status() != 200 {
                    return Err(a.into_failure().await);
                }
                a.read_bounded(MAX_TOKEN_BYTES).await
            })
            .await
            .map_err(|f| match f {
                Failure::Status {
                    status: 401 | 403, ..
                } => self.unauthorized(push),
                f => self.classify_at(&server, f, &what, push),
            })?;
        let token = Token::parse(&body).ok_or_else(|| Error::Protocol {
            registry: server.clone(),
            reason: "its token answer holds no usable token".into(),
        })?;
        secret(&format!("Bearer {}", token.token))
    }

    // ---- errors ----------------------------------------------------------------------

    fn unauthorized(&self, push: bool) -> Error {
        let anonymous = matches!(self.found.credentials, Credentials::Anonymous);
        Error::Unauthorized {
            registry: self.remote.registry.clone(),
            repository: self.remote.repository.clone(),
            source_of_credentials: (!anonymous).then_some(self.found.source),
            push: push || self.pushing.load(Ordering::Relaxed),
        }
    }

    fn classify(&self, f: Failure, what: &What, push: bool) -> Error {
        self.classify_at(&self.remote.registry, f, what, push)
    }

    /// Names a failure: which server, doing what.
    fn classify_at(&self, server: &str, f: Failure, what: &What, push: bool) -> Error {
        let registry = server.to_owned();
        let timeouts = self.http.timeouts();
        match f {
            Failure::Stalled { moved } => Error::Stalled {
                registry,
                phase: what.phase(),
                secs: timeouts.timeout.as_secs(),
                moved,
                low_speed_limit: timeouts.low_speed_limit,
            },
            Failure::Network(e) if e.is_timeout() => Error::Stalled {
                registry,
                phase: "connecting".into(),
                secs: timeouts.timeout.as_secs(),
                moved: 0,
                low_speed_limit: timeouts.low_speed_limit,
            },
            Failure::Network(e) => network_error(&registry, &e),
            Failure::Broken(reason) => Error::Network {
                registry,
                reason: format!(
                    "the connection broke while {}: {}",
                    what.phase(),
                    one_line(&reason)
                ),
            },
            Failure::Redirects { looped } => Error::Redirects {
                registry,
                phase: what.phase(),
                limit: http::MAX_REDIRECTS,
                looped,
            },
            Failure::TooLarge { limit, declared } => match what.digest {
                Some(digest) if what.thing.starts_with("blob") => Error::BlobMismatch {
                    registry,
                    digest,
                    reason: match declared {
                        Some(n) => format!("it sends {n} bytes, the descriptor says {limit}"),
                        None => format!("it sends more than the {limit} bytes of its descriptor"),
                    },
                },
                _ => Error::ResponseTooLarge {
                    registry,
                    what: what.thing.clone(),
                    limit,
                    declared,
                },
            },
            Failure::Short { expected, got } => match what.digest {
                Some(digest) => Error::BlobMismatch {
                    registry,
                    digest,
                    reason: format!("it sent {got} of its {expected} bytes and stopped"),
                },
                None => Error::Network {
                    registry,
                    reason: format!("the answer ended after {got} of {expected} bytes"),
                },
            },
            Failure::Status { status, body, .. } => self.status_error(status, &body, what, push),
            Failure::Protocol(reason) => Error::Protocol { registry, reason },
            Failure::Source(source) => match what.digest {
                Some(digest) => Error::Source { digest, source },
                None => Error::Io {
                    what: what.phase(),
                    source,
                },
            },
            Failure::Sink(source) => Error::Io {
                what: what.thing.clone(),
                source,
            },
            Failure::GaveUp {
                last,
                attempts,
                waited,
                asked,
            } => {
                let status = match &*last {
                    Failure::Status { status, .. } => Some(*status),
                    _ => None,
                };
                match asked {
                    Some(asked) => Error::RetryTooLate {
                        registry,
                        status,
                        asked_secs: asked.as_secs(),
                        budget_secs: timeouts.retry_budget().as_secs(),
                    },
                    None => Error::GaveUp {
                        registry: registry.clone(),
                        status,
                        attempts,
                        waited_secs: waited.as_secs(),
                        last: self.classify_at(&registry, *last, what, push).to_string(),
                    },
                }
            }
        }
    }

    /// An answer's status and error envelope, as a sentence.
    fn status_error(&self, status: u16, body: &[u8], what: &What, push: bool) -> Error {
        #[derive(serde::Deserialize)]
        struct Envelope {
            errors: Vec<EnvelopeError>,
        }
        #[derive(serde::Deserialize)]
        struct EnvelopeError {
            #[serde(default)]
            code: String,
            #[serde(default)]
            message: String,
            #[serde(default)]
            detail: serde_json::Value,
        }
        let registry = self.remote.registry.clone();
        let envelope = serde_json::from_slice::<Envelope>(body).ok();
        let code = envelope
            .as_ref()
            .and_then(|e| e.errors.first())
            .map(|e| e.code.as_str());
        let not_found = || Error::NotFound {
            what: what.thing.clone(),
            repository: self.remote.repository_url(),
        };
        match (status, code) {
            (401, _) | (_, Some("UNAUTHORIZED")) => return self.unauthorized(push),
            (403, _) | (_, Some("DENIED")) => {
                return Error::Denied {
                    registry,
                    repository: self.remote.repository.clone(),
                    push: push || self.pushing.load(Ordering::Relaxed),
                };
            }
            (404, _) | (_, Some("MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN")) => {
                return not_found();
            }
            _ => {}
        }
        let text = match &envelope {
            Some(e) if !e.errors.is_empty() => e
                .errors
                .iter()
                .map(|e| {
                    let detail = match &e.detail {
                        serde_json::Value::Null => String::new(),
                        serde_json::Value::String(s) => format!(" ({s})"),
                        serde_json::Value::Object(o) if o.is_empty() => String::new(),
                        other => format!(" ({other})"),
                    };
                    format!("{}{detail}", e.message)
                })
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::from_utf8_lossy(body).into_owned(),
        };
        if text.contains("request body too large")
            && let Some(digest) = what.digest
        {
            return Error::ManifestTooLarge {
                digest,
                size: MAX_MANIFEST_BYTES + 1,
            };
        }
        let text = one_line(&text);
        Error::Registry {
            registry,
            status: Some(status),
            message: if text.is_empty() {
                reqwest::StatusCode::from_u16(status)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .unwrap_or("no message")
                    .to_owned()
            } else {
                text
            },
        }
    }
}

impl Client {
    /// Every tag of the repository, in the order the registry lists them: pages of
    /// [`tags::TAG_PAGE_SIZE`], each read through [`tags::MAX_TAG_PAGE_BYTES`], at most
    /// [`tags::MAX_TAG_PAGES`] of them, following `Link: <…>; rel="next"` on the registry's
    /// own origin only.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a repository the registry does not know,
    /// [`Error::ResponseTooLarge`] past a bound, [`Error::Protocol`] for a page that is not a
    /// tag list or a link elsewhere, a classified [`Error`] otherwise.
    pub fn list_tags(&self) -> Result<Vec<String>, Error> {
        self.rt.block_on(self.list_tags_async())
    }

    async fn list_tags_async(&self) -> Result<Vec<String>, Error> {
        let protocol = |reason: String| Error::Protocol {
            registry: self.remote.registry.clone(),
            reason,
        };
        let what = What::new("listing", format!("the tags of {}", self.remote.repository));
        let mut next = Some(self.url(&format!("tags/list?n={}", tags::TAG_PAGE_SIZE))?);
        let mut all = Vec::new();
        let mut pages = 0usize;
        while let Some(url) = next.take() {
            pages += 1;
            if pages > tags::MAX_TAG_PAGES {
                return Err(Error::ResponseTooLarge {
                    registry: self.remote.registry.clone(),
                    what: format!("{} (more than {} pages)", what.thing, tags::MAX_TAG_PAGES),
                    limit: tags::MAX_TAG_PAGES as u64 * tags::MAX_TAG_PAGE_BYTES,
                    declared: None,
                });
            }
            let url = &url;
            let (body, link) = self
                .call(false, &what, |auth| async move {
                    let req = Request::new(Method::GET, url.clone())
                        .header(header::ACCEPT, HeaderValue::from_static("application/json"))
                        .authorization(&self.base, auth);
                    let a = self.http.send(req).await?;
                    if a.status() != 200 {
                        return Err(a.into_failure().await);
                    }
                    let link = a.header("link").map(str::to_owned);
                    let answered = a.url().clone();
                    Ok((
                        a.read_bounded(tags::MAX_TAG_PAGE_BYTES).await?,
                        link.map(|l| (l, answered)),
                    ))
                })
                .await?;
            all.extend(tags::parse_page(&body).map_err(protocol)?);
            if let Some((link, answered)) = link
                && let Some(target) = tags::next_link(&link)
            {
                let target = answered.join(target).map_err(|_| {
                    protocol(format!("its next page `{}` is not a URL", one_line(target)))
                })?;
                // Credentials go only to the registry's origin: a page elsewhere is refused.
                if target.origin() != self.base.origin() {
                    return Err(protocol(format!(
                        "its next page of tags is on another server ({})",
                        one_line(target.as_str())
                    )));
                }
                next = Some(target);
            }
        }
        Ok(all)
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

/// Up to `limit` bytes from `reader` (fewer only at its end).
fn read_piece(reader: &mut dyn Read, limit: u64) -> io::Result<Vec<u8>> {
    let mut piece = Vec::with_capacity(usize::try_from(limit).unwrap_or(usize::MAX));
    reader.take(limit).read_to_end(&mut piece)?;
    Ok(piece)
}

/// Text from a server, made safe to print on one line: whitespace runs become one space,
/// control characters are dropped, at most 300 characters.
fn one_line(s: &str) -> String {
    let s: String = s
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

/// Names the network failure: unknown host, refused connection, TLS to a plain-HTTP server.
fn network_error(registry: &str, e: &(dyn std::error::Error + 'static)) -> Error {
    let chain = http::chain_text(e);
    let lower = chain.to_ascii_lowercase();
    let registry = registry.to_owned();
    if lower.contains("dns error") || lower.contains("failed to lookup address") {
        Error::UnknownHost { registry }
    } else if lower.contains("connection refused") {
        Error::ConnectionRefused { registry }
    } else if lower.contains("invalidcontenttype") || lower.contains("corrupt message") {
        Error::NotTls { registry }
    } else if lower.contains("certificate") {
        Error::Network {
            registry,
            reason: format!("TLS certificate problem: {}", one_line(&chain)),
        }
    } else {
        Error::Network {
            registry,
            reason: one_line(&chain),
        }
    }
}

#[cfg(test)]
mod tests {
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
