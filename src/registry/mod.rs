//! OCI registries: references, credentials, and a blocking client.
//!
//! The protocol is oci-client's (on rustls with ring); its async API stays inside
//! [`client`], behind [`Client`]'s blocking methods. Everything a registry can answer is
//! turned into an [`Error`] that says what happened and what to do, never a panic.

pub mod auth;
pub mod client;
pub mod reference;

use std::io;

pub use client::{Client, ClientOptions, Upload};
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
    #[error("blob {digest} from the registry is wrong: {reason}")]
    BlobMismatch {
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
    #[error("cannot upload {digest}: {source}")]
    Source {
        /// The blob.
        digest: Digest,
        /// The cause.
        #[source]
        source: io::Error,
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
