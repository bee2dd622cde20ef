//! What went wrong, in words: a transport failure or an HTTP status (with the registry's own
//! error body, made safe to print) classified into an [`Error`].

use std::sync::atomic::Ordering;

use super::{Client, MAX_MANIFEST_BYTES, What};
use crate::registry::Error;
use crate::registry::http::{self, Failure};

impl Client {
    pub(super) fn classify(&self, f: Failure, what: &What, push: bool) -> Error {
        self.classify_at(&self.remote.registry, f, what, push)
    }

    /// Names a failure: which server, doing what.
    pub(super) fn classify_at(&self, server: &str, f: Failure, what: &What, push: bool) -> Error {
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
            Failure::Interrupted => Error::Interrupted {
                phase: what.phase(),
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
    pub(super) fn status_error(&self, status: u16, body: &[u8], what: &What, push: bool) -> Error {
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

/// Text from a server, made safe to print on one line: whitespace runs become one space,
/// control characters are dropped, at most 300 characters.
pub(super) fn one_line(s: &str) -> String {
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
pub(super) fn network_error(registry: &str, e: &(dyn std::error::Error + 'static)) -> Error {
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
