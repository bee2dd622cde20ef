//! OCI registries: references, credentials, and snap's own distribution client.
//!
//! [`client`] speaks exactly the endpoints snap uses, over [`http`] (reqwest on rustls with
//! ring), whose rules bound what a registry can cost: every body read through a limit,
//! timeouts and a low-speed rule, bounded retries of 429/503 and broken connections, bounded
//! redirects that never carry credentials to another origin. The async code stays inside
//! this module, behind [`Client`]'s blocking methods. Everything a registry can answer is
//! turned into an [`Error`] that says what happened and what to do, never a panic.

pub mod auth;
pub mod client;
pub mod http;
pub mod reference;
pub mod retry;
pub mod tags;

use std::io;

pub use client::{Client, ClientOptions, Journal, Upload, Uploaded};
pub use http::Timeouts;
pub use reference::RemoteRef;

use crate::digest::Digest;

/// Errors of registry access.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A reference that does not parse.
    #[error("`{input}` is not a registry reference: {reason}")]
    BadReference {
        /// What was given.
        input: String,
        /// What is wrong.
        reason: String,
    },
    /// Credentials are configured but cannot be used.
    #[error("credentials for {registry}: {reason}")]
    Credentials {
        /// The registry.
        registry: String,
        /// Why.
        reason: String,
    },
    /// DNS does not know the host.
    #[error("cannot resolve the registry host `{registry}`")]
    UnknownHost {
        /// The registry.
        registry: String,
    },
    /// Nothing listens there.
    #[error("{registry} refused the connection")]
    ConnectionRefused {
        /// The registry.
        registry: String,
    },
    /// HTTPS to a server that speaks plain HTTP.
    #[error("{registry} does not speak HTTPS")]
    NotTls {
        /// The registry.
        registry: String,
    },
    /// Another network failure.
    #[error("network error talking to {registry}: {reason}")]
    Network {
        /// The registry.
        registry: String,
        /// What failed.
        reason: String,
    },
    /// 401: no credentials, or the ones given were refused.
    #[error("{registry} refused {} access to {repository}{}",
        if *push { "push" } else { "pull" },
        match source_of_credentials {
            Some(s) => format!(" with the credentials from {s} (401)"),
            None => " without credentials (401)".to_owned(),
        })]
    Unauthorized {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// Where the credentials came from; `None` when anonymous.
        source_of_credentials: Option<&'static str>,
        /// Whether pushing.
        push: bool,
    },
    /// 403: the credentials are good but lack the permission.
    #[error("{registry} denied {} access to {repository} (403)", if *push { "push" } else { "pull" })]
    Denied {
        /// The registry.
        registry: String,
        /// The repository.
        repository: String,
        /// Whether pushing.
        push: bool,
    },
    /// 404 or "manifest unknown".
    #[error("{what} not found in {repository}")]
    NotFound {
        /// What was asked for.
        what: String,
        /// `registry/repository`.
        repository: String,
    },
    /// A manifest over the registries' limit.
    #[error("manifest {digest} is {size} bytes; registries accept at most 4 MiB")]
    ManifestTooLarge {
        /// The manifest.
        digest: Digest,
        /// Its size.
        size: u64,
    },
    /// The registry stored or sent a manifest other than the one asked for.
    #[error("{registry} answered with manifest {actual}, expected {expected}")]
    DigestMismatch {
        /// The registry.
        registry: String,
        /// What snap asked for or sent.
        expected: Digest,
        /// What the registry named.
        actual: Digest,
    },
    /// A blob whose bytes are not what its descriptor says.
    #[error("blob {digest} from {registry} is wrong: {reason}")]
    BlobMismatch {
        /// The registry (or the server it redirected to).
        registry: String,
        /// The blob.
        digest: Digest,
        /// How.
        reason: String,
    },
    /// The registry broke the protocol.
    #[error("{registry} broke the distribution protocol: {reason}")]
    Protocol {
        /// The registry.
        registry: String,
        /// How.
        reason: String,
    },
    /// An error the registry reported, decoded.
    #[error("{registry} said: {message}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Registry {
        /// The registry.
        registry: String,
        /// The HTTP status, when known.
        status: Option<u16>,
        /// Its message.
        message: String,
    },
    /// A local blob could not be read, or does not match its digest: nothing was sent.
    #[error("cannot upload {digest}")]
    Source {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A transfer that stalled, or crawled below the low-speed limit, for the timeout.
    #[error("{registry}: {} for {secs} s while {phase}",
        if *moved == 0 { "no progress".to_owned() }
        else { format!("under {low_speed_limit} bytes/s ({moved} bytes)") })]
    Stalled {
        /// The server (registry or token server).
        registry: String,
        /// What was being done (`downloading blob sha256:…`).
        phase: String,
        /// The timeout.
        secs: u64,
        /// Bytes moved in the last `secs`.
        moved: u64,
        /// The low-speed limit, bytes per second.
        low_speed_limit: u64,
    },
    /// An answer longer than snap reads of it (a manifest, a token).
    #[error("{registry} {} for {what}, more than the {limit} bytes snap reads",
        match declared { Some(n) => format!("announced {n} bytes"), None => "sent more".to_owned() })]
    ResponseTooLarge {
        /// The server.
        registry: String,
        /// What was asked for.
        what: String,
        /// What snap reads.
        limit: u64,
        /// The `Content-Length`, when it already said too much.
        declared: Option<u64>,
    },
    /// Redirects in a loop, or too many of them.
    #[error("{registry} redirected {} while {phase}",
        if *looped { "in a loop".to_owned() } else { format!("more than {limit} times") })]
    Redirects {
        /// The registry.
        registry: String,
        /// What was being done.
        phase: String,
        /// Redirects followed at most.
        limit: usize,
        /// Whether a URL came back.
        looped: bool,
    },
    /// Transient failures (429, 503, broken connections) that outlasted the retries.
    #[error("gave up on {registry} after {attempts} attempts over {waited_secs} s: {last}")]
    GaveUp {
        /// The server.
        registry: String,
        /// The last HTTP status, if the last failure was one.
        status: Option<u16>,
        /// Attempts made.
        attempts: u32,
        /// Seconds spent waiting between them.
        waited_secs: u64,
        /// The last failure, as a sentence.
        last: String,
    },
    /// A `Retry-After` longer than snap waits.
    #[error("{registry} asked to be asked again in {asked_secs} s{}; snap waits at most {budget_secs} s (twice the timeout)",
        status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    RetryTooLate {
        /// The server.
        registry: String,
        /// The status that came with it.
        status: Option<u16>,
        /// The wait asked for.
        asked_secs: u64,
        /// What snap waits in all.
        budget_secs: u64,
    },
    /// A password would go in clear text to a token server elsewhere.
    #[error(
        "{registry} sends its logins to `{realm}`, over plain HTTP: refusing to send the password there"
    )]
    InsecureRealm {
        /// The registry.
        registry: String,
        /// The token server's URL.
        realm: String,
    },
    /// A stop was asked for (Ctrl-C, `SIGTERM`) and taken at a clean point.
    #[error("stopped while {phase}, as asked")]
    Interrupted {
        /// What was being done.
        phase: String,
    },
    /// A local I/O error.
    #[error("{what}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        use Error as R;
        match self {
            R::BadReference { .. } | R::Credentials { .. } | R::ManifestTooLarge { .. } => {
                K::InvalidInput
            }
            R::NotFound { .. } => K::NotFound,
            R::BlobMismatch { .. } | R::DigestMismatch { .. } | R::Protocol { .. } => K::Corrupt,
            R::Source { .. } => K::Corrupt,
            R::Io { .. } => K::Io,
            R::Interrupted { .. } => K::Interrupted,
            R::ResponseTooLarge { .. } => K::Corrupt,
            R::InsecureRealm { .. } => K::InvalidInput,
            R::Stalled { .. } | R::Redirects { .. } | R::GaveUp { .. } | R::RetryTooLate { .. } => {
                K::Network
            }
            _ => K::Network,
        }
    }
}
