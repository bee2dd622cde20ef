//! A blocking client over oci-client: the async world stays in this file.
//!
//! One tokio runtime per [`Client`], `block_on` per call. Every call that the registry
//! answers with 401 re-authenticates once and tries again (a token that expired in the middle
//! of a long transfer), then gives up with a sentence a person can act on.

use std::io::{self, Read};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use oci_client::RegistryOperation;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciErrorCode};
use oci_client::secrets::RegistryAuth;

use crate::digest::{Digest, Hasher};

use super::auth::{self, Credentials, Found};
use super::{Error, RemoteRef};

/// The largest manifest registries accept (distribution's limit, and the common one).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// Blobs larger than this go up in chunks (4 MiB `PATCH`es) rather than in one `PUT`.
pub const CHUNKED_ABOVE: u64 = 512 << 20;
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
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            insecure: false,
            jobs: 4,
            chunked: false,
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

/// A connection to one repository of one registry.
pub struct Client {
    rt: tokio::runtime::Runtime,
    inner: oci_client::Client,
    auth: RegistryAuth,
    found: Found,
    remote: RemoteRef,
    opts: ClientOptions,
    requests: AtomicU64,
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
        let auth = match &found.credentials {
            Credentials::Anonymous => RegistryAuth::Anonymous,
            Credentials::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Credentials::Bearer(t) => RegistryAuth::Bearer(t.clone()),
        };
        let protocol = if opts.insecure || remote.is_loopback() {
            ClientProtocol::HttpsExcept(vec![remote.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let inner = oci_client::Client::new(ClientConfig {
            protocol,
            use_monolithic_push: true,
            max_concurrent_upload: opts.jobs.max(1),
            max_concurrent_download: opts.jobs.max(1),
            user_agent: concat!("snap/", env!("CARGO_PKG_VERSION")),
            connect_timeout: Some(std::time::Duration::from_secs(30)),
            read_timeout: Some(std::time::Duration::from_secs(300)),
            ..ClientConfig::default()
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                what: "the network runtime".into(),
                source,
            })?;
        Ok(Client {
            rt,
            inner,
            auth,
            found,
            remote: remote.clone(),
            opts,
            requests: AtomicU64::new(0),
            pushing: AtomicBool::new(false),
        })
    }

    /// Where the credentials came from (`anonymous` when there were none).
    pub fn credential_source(&self) -> &'static str {
        self.found.source
    }

    /// HTTP requests made so far (counted by this facade, token requests included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn count(&self, n: u64) {
        self.requests.fetch_add(n, Ordering::Relaxed);
    }

    /// Logs in for `op` (pull, or pull and push), so a wrong password or a missing
    /// permission fails here, before any transfer.
    ///
    /// # Errors
    /// A classified [`Error`].
    pub fn login(&self, push: bool) -> Result<(), Error> {
        if push {
            self.pushing.store(true, Ordering::Relaxed);
        }
        let op = if push {
            RegistryOperation::Push
        } else {
            RegistryOperation::Pull
        };
        self.count(2);
        let r = self.remote.to_oci();
        self.rt
            .block_on(self.inner.auth(&r, &self.auth, op))
            .map(|_| ())
            .map_err(|e| self.classify(e, "the registry's API root", push))
    }

    /// Runs `f`, re-authenticating and running it once more if the registry answers 401.
    fn retry<T>(
        &self,
        push: bool,
        what: &str,
        f: impl Fn() -> Result<T, OciDistributionError>,
    ) -> Result<T, Error> {
        match f() {
            Err(e) if is_unauthorized(&e) => {
                self.login(push)?;
                f().map_err(|e| self.classify(e, what, push))
            }
            other => other.map_err(|e| self.classify(e, what, push)),
        }
    }

    /// The digest a tag names, or `None` when the repository has no such tag.
    ///
    /// # Errors
    /// A classified [`Error`] for anything but "manifest unknown".
    pub fn resolve_tag(&self, tag: &str) -> Result<Option<Digest>, Error> {
        let r = self.remote.with_tag(tag).to_oci();
        self.count(1);
        let got = self.retry(false, &format!("tag `{tag}`"), || {
            self.rt
                .block_on(self.inner.fetch_manifest_digest(&r, &self.auth))
        });
        match got {
            Ok(d) => d.parse().map(Some).map_err(|_| Error::Protocol {
                registry: self.remote.registry.clone(),
                reason: format!("it named tag `{tag}`'s digest `{d}`"),
            }),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the repository has the blob.
    ///
    /// # Errors
    /// A classified [`Error`].
    pub fn blob_exists(&self, digest: &Digest) -> Result<bool, Error> {
        let r = self.remote.to_oci();
        let d = digest.to_string();
        self.count(1);
        self.retry(true, &format!("blob {digest}"), || {
            self.rt.block_on(self.inner.blob_exists(&r, &d))
        })
    }

    /// Which of `digests` the repository has, asking up to `jobs` at once.
    ///
    /// # Errors
    /// The first classified [`Error`].
    pub fn blobs_exist(&self, digests: &[Digest]) -> Result<Vec<bool>, Error> {
        let jobs = self.opts.jobs.max(1);
        let r = self.remote.to_oci();
        self.count(digests.len() as u64);
        let answers: Vec<(usize, Result<bool, OciDistributionError>)> = self.rt.block_on(async {
            futures_util::stream::iter(digests.iter().enumerate().map(|(i, d)| {
                let r = &r;
                async move { (i, self.inner.blob_exists(r, &d.to_string()).await) }
            }))
            .buffer_unordered(jobs)
            .collect()
            .await
        });
        let mut out = vec![false; digests.len()];
        for (i, a) in answers {
            out[i] = match a {
                Ok(b) => b,
                // An expired token: log in again and ask this one once more.
                Err(e) if is_unauthorized(&e) => self.blob_exists(&digests[i])?,
                Err(e) => return Err(self.classify(e, &format!("blob {}", digests[i]), true)),
            };
        }
        Ok(out)
    }

    /// Uploads blobs, up to `jobs` at once. `done` is called after each with its size.
    ///
    /// # Errors
    /// The first failure (a classified [`Error`], or [`Error::Source`] when a blob's bytes
    /// could not be read or did not match their digest — nothing wrong is ever committed by
    /// the registry, which checks the digest too).
    pub fn upload(&self, blobs: &[Upload<'_>], done: &(dyn Fn(u64) + Sync)) -> Result<(), Error> {
        let jobs = self.opts.jobs.max(1);
        let results: Vec<Result<(), Error>> = self.rt.block_on(async {
            futures_util::stream::iter(blobs.iter().map(|b| async move {
                let r = self.upload_one(b).await;
                if r.is_ok() {
                    done(b.size);
                }
                r
            }))
            .buffer_unordered(jobs)
            .collect()
            .await
        });
        results.into_iter().collect()
    }

    async fn upload_one(&self, blob: &Upload<'_>) -> Result<(), Error> {
        let what = format!("blob {}", blob.digest);
        let mut first = true;
        loop {
            let failure: Arc<Mutex<Option<io::Error>>> = Arc::default();
            let reader = (blob.open)().map_err(|source| Error::Source {
                digest: blob.digest,
                source,
            })?;
            let stream = read_stream(reader, Arc::clone(&failure));
            let r = self.remote.to_oci();
            let d = blob.digest.to_string();
            let chunked = self.opts.chunked || blob.size > CHUNKED_ABOVE;
            let result = if chunked && blob.size > 0 {
                self.count(2 + blob.size.div_ceil(4 << 20));
                self.inner
                    .push_blob_stream_chunked(&r, stream)
                    .await
                    .and_then(|resp| {
                        if resp.blob_digest == d {
                            Ok(())
                        } else {
                            Err(OciDistributionError::GenericError(Some(format!(
                                "uploaded bytes hash to {}",
                                resp.blob_digest
                            ))))
                        }
                    })
            } else {
                self.count(2);
                self.inner
                    .push_blob_stream(&r, stream, &d, Some(blob.size))
                    .await
                    .map(|_| ())
            };
            if let Some(source) = failure.lock().ok().and_then(|mut f| f.take()) {
                return Err(Error::Source {
                    digest: blob.digest,
                    source,
                });
            }
            match result {
                Ok(()) => return Ok(()),
                Err(e) if first && is_unauthorized(&e) => {
                    first = false;
                    self.count(2);
                    self.inner
                        .auth(&r, &self.auth, RegistryOperation::Push)
                        .await
                        .map_err(|e| self.classify(e, &what, true))?;
                }
                Err(e) => return Err(self.classify(e, &what, true)),
            }
        }
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
        let r = match tag {
            Some(t) => self.remote.with_tag(t),
            None => self.remote.with_digest(digest),
        }
        .to_oci();
        let content_type = reqwest_header(media_type).ok_or_else(|| Error::Protocol {
            registry: self.remote.registry.clone(),
            reason: format!("`{media_type}` is not a valid content type"),
        })?;
        let body = bytes::Bytes::copy_from_slice(bytes);
        self.count(1);
        let location = self.retry(true, &format!("manifest {digest}"), || {
            self.rt.block_on(
                self.inner
                    .push_manifest_raw(&r, body.clone(), content_type.clone()),
            )
        })?;
        // The Location names the stored manifest by digest.
        if let Some(answered) = location
            .rsplit('/')
            .next()
            .and_then(|d| d.parse::<Digest>().ok())
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

    /// Fetches a manifest (or index) by tag or digest: its exact bytes, checked against the
    /// digest asked for and the one the registry names, at most 4 MiB.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::ManifestTooLarge`], a classified [`Error`].
    pub fn get_manifest(&self, at: &RemoteRef) -> Result<(Vec<u8>, Digest), Error> {
        let r = at.to_oci();
        self.count(1);
        let (body, digest) = self.retry(false, &format!("manifest {at}"), || {
            self.rt.block_on(
                self.inner
                    .pull_manifest_raw(&r, &self.auth, MANIFEST_ACCEPT),
            )
        })?;
        let actual = Digest::of(&body);
        if body.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(Error::ManifestTooLarge {
                digest: actual,
                size: body.len() as u64,
            });
        }
        if digest.parse::<Digest>().ok() != Some(actual) || at.digest.is_some_and(|d| d != actual) {
            return Err(Error::DigestMismatch {
                registry: self.remote.registry.clone(),
                expected: at.digest.unwrap_or(actual),
                actual,
            });
        }
        Ok((body.to_vec(), actual))
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
        let r = self.remote.to_oci();
        let d = digest.to_string();
        self.count(1);
        let sized = self.retry(false, &format!("blob {digest}"), || {
            self.rt
                .block_on(self.inner.pull_blob_stream(&r, d.as_str()))
        })?;
        if sized.content_length.is_some_and(|n| n != size) {
            return Err(Error::BlobMismatch {
                digest: *digest,
                reason: format!(
                    "the registry sends {} bytes, the descriptor says {size}",
                    sized.content_length.unwrap_or_default()
                ),
            });
        }
        let mut stream = sized.stream;
        let mut hashing = Hasher::new();
        let mut n = 0u64;
        let io_err = |source| Error::Io {
            what: format!("blob {digest}"),
            source,
        };
        while let Some(chunk) = self.rt.block_on(stream.next()) {
            let chunk = chunk.map_err(|e| self.classify_io(&e, digest))?;
            n += chunk.len() as u64;
            if n > size {
                return Err(Error::BlobMismatch {
                    digest: *digest,
                    reason: format!(
                        "the registry sends more than the {size} bytes of its descriptor"
                    ),
                });
            }
            hashing.update(&chunk);
            out.write_all(&chunk).map_err(io_err)?;
        }
        let actual = hashing.finish();
        if n != size || actual != *digest {
            return Err(Error::BlobMismatch {
                digest: *digest,
                reason: format!("the registry sent {n} bytes hashing to {actual}"),
            });
        }
        Ok(n)
    }

    fn classify_io(&self, e: &io::Error, digest: &Digest) -> Error {
        if e.to_string().contains("digest") {
            Error::BlobMismatch {
                digest: *digest,
                reason: e.to_string(),
            }
        } else {
            Error::Network {
                registry: self.remote.registry.clone(),
                reason: e.to_string(),
            }
        }
    }

    /// Turns oci-client's error into one a person can act on.
    fn classify(&self, e: OciDistributionError, what: &str, push: bool) -> Error {
        let push = push || self.pushing.load(Ordering::Relaxed);
        let registry = self.remote.registry.clone();
        let repository = self.remote.repository.clone();
        let anonymous = matches!(self.found.credentials, Credentials::Anonymous);
        let unauthorized = || Error::Unauthorized {
            registry: registry.clone(),
            repository: repository.clone(),
            source_of_credentials: (!anonymous).then_some(self.found.source),
            push,
        };
        let denied = || Error::Denied {
            registry: registry.clone(),
            repository: repository.clone(),
            push,
        };
        match e {
            OciDistributionError::RequestError(re) => network_error(&registry, &re),
            OciDistributionError::UnauthorizedError { .. }
            | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
            OciDistributionError::ServerError { code: 401, .. } => unauthorized(),
            OciDistributionError::ServerError { code: 403, .. } => denied(),
            OciDistributionError::ServerError { code: 404, .. }
            | OciDistributionError::ImageManifestNotFoundError(_) => Error::NotFound {
                what: what.to_owned(),
                repository: self.remote.repository_url(),
            },
            OciDistributionError::ServerError { code, message, .. } => Error::Registry {
                registry,
                status: Some(code),
                message: one_line(&message),
            },
            OciDistributionError::RegistryError { envelope, .. } => {
                let first = envelope.errors.first();
                match first.map(|e| &e.code) {
                    Some(
                        OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NotFound,
                    ) => Error::NotFound {
                        what: what.to_owned(),
                        repository: self.remote.repository_url(),
                    },
                    Some(OciErrorCode::Unauthorized) => unauthorized(),
                    Some(OciErrorCode::Denied) => denied(),
                    _ => {
                        let text: Vec<String> = envelope
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
                            .collect();
                        let text = text.join("; ");
                        if text.contains("request body too large") {
                            Error::ManifestTooLarge {
                                digest: Digest::of(b""),
                                size: MAX_MANIFEST_BYTES + 1,
                            }
                        } else {
                            Error::Registry {
                                registry,
                                status: None,
                                message: one_line(&text),
                            }
                        }
                    }
                }
            }
            OciDistributionError::DigestError(d) => Error::Protocol {
                registry,
                reason: d.to_string(),
            },
            other => Error::Registry {
                registry,
                status: None,
                message: one_line(&other.to_string()),
            },
        }
    }
}

fn is_unauthorized(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::ServerError { code: 401, .. } => true,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| e.code == OciErrorCode::Unauthorized),
        _ => false,
    }
}

fn one_line(s: &str) -> String {
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s
    }
}

/// Names the network failure: unknown host, refused connection, TLS to a plain-HTTP server,
/// a timeout.
fn network_error(registry: &str, e: &(dyn std::error::Error + 'static)) -> Error {
    let mut chain = String::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        chain.push_str(&err.to_string());
        chain.push_str(": ");
        cur = err.source();
    }
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
    } else if lower.contains("timed out") || lower.contains("timeout") {
        Error::Network {
            registry,
            reason: "the connection timed out".into(),
        }
    } else {
        Error::Network {
            registry,
            reason: one_line(chain.trim_end_matches(": ")),
        }
    }
}

fn reqwest_header(v: &str) -> Option<http::HeaderValue> {
    http::HeaderValue::from_str(v).ok()
}

/// Turns a reader into the byte stream oci-client uploads, 1 MiB at a time; a read error is
/// kept in `failure` (the stream only carries oci-client's error type).
fn read_stream(
    reader: Box<dyn Read + Send>,
    failure: Arc<Mutex<Option<io::Error>>>,
) -> impl futures_util::Stream<Item = Result<bytes::Bytes, OciDistributionError>> + Send + 'static {
    futures_util::stream::unfold(Some(reader), move |state| {
        let failure = Arc::clone(&failure);
        async move {
            let mut reader = state?;
            let mut buf = vec![0u8; 1 << 20];
            let mut filled = 0;
            while filled < buf.len() {
                match reader.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let msg = e.to_string();
                        if let Ok(mut f) = failure.lock() {
                            *f = Some(e);
                        }
                        return Some((
                            Err(OciDistributionError::IoError(io::Error::other(msg))),
                            None,
                        ));
                    }
                }
            }
            if filled == 0 {
                return None;
            }
            buf.truncate(filled);
            Some((Ok(bytes::Bytes::from(buf)), Some(reader)))
        }
    })
}
