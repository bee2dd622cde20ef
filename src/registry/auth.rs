//! Finding credentials the way the container tools do, with no snap-specific configuration.
//!
//! In order: `SNAP_REGISTRY_TOKEN` (a bearer token), `SNAP_REGISTRY_USER` with
//! `SNAP_REGISTRY_PASSWORD`, docker's `config.json` (`$DOCKER_CONFIG` or `~/.docker`:
//! `auths`, `credsStore`, `credHelpers`), podman's `auth.json` (`$REGISTRY_AUTH_FILE`,
//! `$XDG_RUNTIME_DIR/containers/auth.json`), then anonymous.

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
