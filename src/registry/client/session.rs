//! Authentication: the credentials a request carries, the 401 challenge it may get back, and
//! the token exchange that answers it (`Basic` or `Bearer`, per distribution's token spec).

use std::future::Future;
use std::sync::atomic::Ordering;

use base64::Engine as _;
use reqwest::header::HeaderValue;
use reqwest::{Method, Url};

use super::failures::one_line;
use super::{Client, MAX_TOKEN_BYTES, What, is_loopback_url, secret};
use crate::registry::Error;
use crate::registry::auth::{Challenge, Credentials, Token};
use crate::registry::http::{Failure, Request};

impl Client {
    pub(super) fn current_authorization(&self) -> Option<HeaderValue> {
        self.authorization.read().ok().and_then(|a| a.clone())
    }

    pub(super) fn set_authorization(&self, value: Option<HeaderValue>) {
        if let Ok(mut a) = self.authorization.write() {
            *a = value;
        }
    }

    /// Runs `attempt` with the current credentials, under the transport's retries; on a 401,
    /// authenticates again once (for the challenge it carries) and runs it once more.
    pub(super) async fn call<T, F, Fut>(
        &self,
        push: bool,
        what: &What,
        attempt: F,
    ) -> Result<T, Error>
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
    pub(super) async fn authenticate(
        &self,
        push: bool,
        challenge: Option<&str>,
    ) -> Result<(), Error> {
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
    pub(super) async fn fetch_token(
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

    pub(super) fn unauthorized(&self, push: bool) -> Error {
        let anonymous = matches!(self.found.credentials, Credentials::Anonymous);
        Error::Unauthorized {
            registry: self.remote.registry.clone(),
            repository: self.remote.repository.clone(),
            source_of_credentials: (!anonymous).then_some(self.found.source),
            push: push || self.pushing.load(Ordering::Relaxed),
        }
    }
}
