//! Finding credentials the way the container tools do, with no snap-specific configuration.
//!
//! In order: `SNAP_REGISTRY_TOKEN` (a bearer token), `SNAP_REGISTRY_USER` with
//! `SNAP_REGISTRY_PASSWORD`, docker's `config.json` (`$DOCKER_CONFIG` or `~/.docker`:
//! `auths`, `credsStore`, `credHelpers`), podman's `auth.json` (`$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`), then anonymous.
//!
//! And reading what a registry asks for: [`Challenge::parse`] reads a `WWW-Authenticate`
//! header (`Basic realm=…` or `Bearer realm=…,service=…,scope=…`); [`Token::parse`] reads a
//! token server's answer. Both are pure: the requests are `client`'s.

use std::fmt;

use docker_credential::{CredentialRetrievalError, DockerCredential};

use super::Error;

/// What to present to a registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing.
    Anonymous,
    /// A user name and password (or a personal access token used as one).
    Basic {
        /// The user.
        username: String,
        /// The password.
        password: String,
    },
    /// A bearer token, sent as is.
    Bearer(String),
}

impl fmt::Debug for Credentials {
    // Never print a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Anonymous => f.write_str("Anonymous"),
            Credentials::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Credentials::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

/// Credentials and where they were found, for messages.
#[derive(Clone, Debug)]
pub struct Found {
    /// The credentials.
    pub credentials: Credentials,
    /// Where they came from: `SNAP_REGISTRY_USER`, `docker config.json`, ….
    pub source: &'static str,
}

/// The environment variables, read once.
pub const ENV_TOKEN: &str = "SNAP_REGISTRY_TOKEN";
/// See [`ENV_TOKEN`].
pub const ENV_USER: &str = "SNAP_REGISTRY_USER";
/// See [`ENV_TOKEN`].
pub const ENV_PASSWORD: &str = "SNAP_REGISTRY_PASSWORD";

/// Finds credentials for `registry` (`host[:port]`).
///
/// # Errors
/// [`Error::Credentials`] when a source is configured but unusable: half of the user and
/// password variables, a credential helper that fails, an identity token.
pub fn find(registry: &str) -> Result<Found, Error> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(token) = var(ENV_TOKEN) {
        return Ok(Found {
            credentials: Credentials::Bearer(token),
            source: ENV_TOKEN,
        });
    }
    match (var(ENV_USER), var(ENV_PASSWORD)) {
        (Some(username), Some(password)) => {
            return Ok(Found {
                credentials: Credentials::Basic { username, password },
                source: ENV_USER,
            });
        }
        (Some(_), None) | (None, Some(_)) => {
            return Err(Error::Credentials {
                registry: registry.to_owned(),
                reason: format!("set both {ENV_USER} and {ENV_PASSWORD}, or neither"),
            });
        }
        (None, None) => {}
    }
    let server = docker_key(registry);
    for (source, lookup) in [
        (
            "docker config.json",
            docker_credential::get_credential as fn(&str) -> _,
        ),
        (
            "podman auth.json",
            docker_credential::get_podman_credential as fn(&str) -> _,
        ),
    ] {
        match lookup(&server) {
            Ok(DockerCredential::UsernamePassword(username, password)) => {
                return Ok(Found {
                    credentials: Credentials::Basic { username, password },
                    source,
                });
            }
            Ok(DockerCredential::IdentityToken(_)) => {
                return Err(Error::Credentials {
                    registry: registry.to_owned(),
                    reason: format!(
                        "the {source} entry is an identity token (an OAuth refresh token), which snap cannot use; set {ENV_USER}/{ENV_PASSWORD} or {ENV_TOKEN}"
                    ),
                });
            }
            Err(
                CredentialRetrievalError::NoCredentialConfigured
                | CredentialRetrievalError::ConfigNotFound
                | CredentialRetrievalError::ConfigReadError,
            ) => {}
            Err(e) => {
                return Err(Error::Credentials {
                    registry: registry.to_owned(),
                    reason: format!("{source}: {e}"),
                });
            }
        }
    }
    Ok(Found {
        credentials: Credentials::Anonymous,
        source: "anonymous",
    })
}

/// Docker keys Docker Hub's credentials by its v1 URL.
fn docker_key(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => {
            "https://index.docker.io/v1/".to_owned()
        }
        other => other.to_owned(),
    }
}

/// What a registry's 401 asks for (its `WWW-Authenticate` header).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Challenge {
    /// User name and password on every request.
    Basic,
    /// A token from `realm`, for `service` and `scope`.
    Bearer {
        /// The token server's URL.
        realm: String,
        /// The `service` parameter to pass back.
        service: Option<String>,
        /// The scope the registry says the request needs (e.g. `repository:a/b:pull,push`).
        scope: Option<String>,
    },
}

impl Challenge {
    /// Parses a `WWW-Authenticate` value (RFC 9110 §11.6.1: a scheme, then `name=value` or
    /// `name="quoted value"` parameters separated by commas). `None` when it names neither
    /// scheme, or a bearer challenge names no realm.
    #[must_use]
    pub fn parse(header: &str) -> Option<Challenge> {
        let header = header.trim_start();
        let (scheme, rest) = header
            .split_once(|c: char| c.is_ascii_whitespace())
            .unwrap_or((header, ""));
        let params = auth_params(rest)?;
        let get = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.clone())
        };
        if scheme.eq_ignore_ascii_case("basic") {
            Some(Challenge::Basic)
        } else if scheme.eq_ignore_ascii_case("bearer") {
            Some(Challenge::Bearer {
                realm: get("realm").filter(|r| !r.is_empty())?,
                service: get("service"),
                scope: get("scope"),
            })
        } else {
            None
        }
    }
}

/// `a=b, c="d,e"` → `[(a, b), (c, d,e)]`; `None` on a malformed list.
fn auth_params(mut s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c == ',' || c.is_ascii_whitespace());
        if s.is_empty() {
            return Some(out);
        }
        let eq = s.find('=')?;
        let name = s[..eq].trim();
        if name.is_empty() || name.contains(|c: char| c.is_ascii_whitespace() || c == ',') {
            return None;
        }
        s = s[eq + 1..].trim_start();
        let value = if let Some(quoted) = s.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let end = loop {
                match chars.next()? {
                    (i, '"') => break i,
                    (_, '\\') => value.push(chars.next()?.1),
                    (_, c) => value.push(c),
                }
            };
            s = &quoted[end + 1..];
            value
        } else {
            let end = s.find(',').unwrap_or(s.len());
            let value = s[..end].trim().to_owned();
            s = &s[end..];
            value
        };
        out.push((name.to_owned(), value));
    }
}

/// A token server's answer: `{"token": …}` or `{"access_token": …}` (OAuth 2), with an
/// optional `expires_in`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The bearer token.
    pub token: String,
}

impl fmt::Debug for Token {
    // Never print a secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// Parses a token server's JSON answer; `None` when it holds no usable token (empty,
    /// or with characters an HTTP header cannot carry).
    #[must_use]
    pub fn parse(body: &[u8]) -> Option<Token> {
        #[derive(serde::Deserialize)]
        struct Answer {
            token: Option<String>,
            access_token: Option<String>,
        }
        let a: Answer = serde_json::from_slice(body).ok()?;
        let token = a.token.filter(|t| !t.is_empty()).or(a.access_token)?;
        let visible = |b: u8| b.is_ascii_graphic();
        (!token.is_empty() && token.bytes().all(visible)).then_some(Token { token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_with_quoted_commas_and_any_case() {
        assert_eq!(
            Challenge::parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:a/b:pull,push""#
            ),
            Some(Challenge::Bearer {
                realm: "https://auth.docker.io/token".into(),
                service: Some("registry.docker.io".into()),
                scope: Some("repository:a/b:pull,push".into()),
            })
        );
        assert_eq!(
            Challenge::parse(
                r#"bearer realm=http://127.0.0.1:1/token , error="insufficient_scope""#
            ),
            Some(Challenge::Bearer {
                realm: "http://127.0.0.1:1/token".into(),
                service: None,
                scope: None,
            })
        );
        assert_eq!(
            Challenge::parse(r#"Basic realm="snap-test-realm""#),
            Some(Challenge::Basic)
        );
        assert_eq!(Challenge::parse(r#"Bearer service="x""#), None, "no realm");
        assert_eq!(Challenge::parse(r#"Bearer realm="unterminated"#), None);
        assert_eq!(Challenge::parse("Negotiate abc"), None);
    }

    #[test]
    fn tokens_must_be_non_empty_header_safe_strings() {
        let t = Token::parse(br#"{"token":"abc.def","expires_in":300}"#);
        assert_eq!(t.map(|t| t.token), Some("abc.def".to_owned()));
        let t = Token::parse(br#"{"access_token":"xyz"}"#);
        assert_eq!(t.map(|t| t.token), Some("xyz".to_owned()));
        assert!(Token::parse(br#"{"token":""}"#).is_none());
        assert!(Token::parse(br#"{"token":"a\nb"}"#).is_none());
        assert!(Token::parse(b"not json").is_none());
        assert_eq!(
            format!("{:?}", Token::parse(br#"{"token":"s3cret"}"#)),
            "Some(Token(***))"
        );
    }
}
