//! Registry references: `HOST[:PORT]/REPOSITORY[:TAG][@DIGEST]`.

use std::fmt;
use std::net::IpAddr;

use crate::digest::Digest;

use super::Error;

/// The tag grammar of the distribution spec.
#[must_use]
pub fn is_valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

/// `input` with any user information (`user:password@` before the host) replaced by `***@`.
/// An `@` that introduces a digest (`repo@sha256:…`) is not user information.
fn redacted(input: &str) -> String {
    let (scheme, rest) = match input.split_once("://") {
        Some((s, r)) => (Some(s), r),
        None => (None, input),
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let Some(at) = authority.rfind('@') else {
        return input.to_owned();
    };
    if scheme.is_none() && rest[at + 1..].parse::<Digest>().is_ok() {
        return input.to_owned();
    }
    let scheme = scheme.map(|s| format!("{s}://")).unwrap_or_default();
    format!("{scheme}***@{}", &rest[at + 1..])
}

/// Where a snapshot goes or comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteRef {
    /// `host[:port]` (`docker.io` when the reference names none).
    pub registry: String,
    /// The repository path (`acme/index`; `library/x` on Docker Hub).
    pub repository: String,
    /// The tag, if the reference gives one.
    pub tag: Option<String>,
    /// The digest, if the reference gives one.
    pub digest: Option<Digest>,
}

impl RemoteRef {
    /// Parses a reference the way docker and oras do: the first path component is the
    /// registry when it has a `.` or a `:` or is `localhost`. No tag is not `latest`: the
    /// caller decides.
    ///
    /// # Errors
    /// [`Error::BadReference`] naming what is wrong.
    pub fn parse(input: &str) -> Result<RemoteRef, Error> {
        // A URL (`https://user:secret@host/repo`) is not a reference: say so, and never echo
        // the credentials back.
        let shown = redacted(input);
        if shown != input {
            return Err(Error::BadReference {
                input: shown,
                reason: "credentials do not go in a reference (they would end up in logs and \
                         shell history): log in with `docker login HOST`, or set \
                         SNAP_REGISTRY_USER and SNAP_REGISTRY_PASSWORD"
                    .to_owned(),
            });
        }
        if let Some((_, rest)) = input.split_once("://") {
            return Err(Error::BadReference {
                input: input.to_owned(),
                reason: format!(
                    "a reference has no scheme: write `{rest}` (snap speaks HTTPS, and plain \
                     HTTP to localhost or with --insecure)"
                ),
            });
        }
        let bad = |reason: &str| Error::BadReference {
            input: input.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, digest) = match input.split_once('@') {
            Some((r, d)) => (
                r,
                Some(
                    d.parse::<Digest>()
                        .map_err(|_| bad("the digest must be sha256:<64 hex digits>"))?,
                ),
            ),
            None => (input, None),
        };
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|s| colon > s) => {
                (&rest[..colon], Some(rest[colon + 1..].to_owned()))
            }
            _ => (rest, None),
        };
        if let Some(t) = &tag
            && !is_valid_tag(t)
        {
            return Err(bad(
                "a tag is 1 to 128 letters, digits, `_`, `.` or `-`, not starting with `.` or `-`",
            ));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), path.to_owned())
            }
            _ => ("docker.io".to_owned(), name.to_owned()),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        if registry.is_empty() || repository.is_empty() {
            return Err(bad("expected REGISTRY/REPOSITORY[:TAG|@DIGEST]"));
        }
        if !is_valid_repository(&repository) {
            return Err(bad(
                "repository names are lowercase letters and digits, separated by `/`, `.`, `_`, `__` or `-`",
            ));
        }
        if repository.len() > 255 {
            return Err(bad("the repository name is longer than 255 characters"));
        }
        Ok(RemoteRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// Parses `input` only when it names its registry explicitly: its first component has a
    /// `.` or a `:`, or is `localhost` (so `ghcr.io/a/b`, `127.0.0.1:5000/a:v1`,
    /// `localhost/a`, but not `ubuntu` or `acme/index`, which would mean Docker Hub). This is
    /// how a SNAP argument that does not resolve in the store is read as a registry
    /// reference; `None` when it is not one.
    #[must_use]
    pub fn parse_explicit(input: &str) -> Option<RemoteRef> {
        let (first, _) = input.split_once('/')?;
        let names_registry = first.contains('.') || first.contains(':') || first == "localhost";
        if !names_registry || first.contains('@') {
            return None;
        }
        RemoteRef::parse(input).ok()
    }

    /// This reference, or its repository's [`crate::oci::LATEST`] tag when it names neither a tag nor a
    /// digest (what `docker pull REPO` fetches).
    #[must_use]
    pub fn or_latest(&self) -> RemoteRef {
        if self.tag.is_none() && self.digest.is_none() {
            self.with_tag(crate::oci::LATEST)
        } else {
            self.clone()
        }
    }

    /// The same repository with this tag and no digest.
    #[must_use]
    pub fn with_tag(&self, tag: &str) -> RemoteRef {
        RemoteRef {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository at this digest.
    #[must_use]
    pub fn with_digest(&self, digest: Digest) -> RemoteRef {
        RemoteRef {
            tag: None,
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// `registry/repository`.
    #[must_use]
    pub fn repository_url(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The host without its port.
    #[must_use]
    pub fn host(&self) -> &str {
        if let Some(rest) = self.registry.strip_prefix('[') {
            return rest.split(']').next().unwrap_or(rest);
        }
        self.registry
            .rsplit_once(':')
            .map_or(self.registry.as_str(), |(h, _)| h)
    }

    /// Whether the registry is on this machine (`localhost`, 127.0.0.0/8, `::1`): the only
    /// place snap speaks plain HTTP without `--insecure`.
    #[must_use]
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

fn is_valid_repository(repo: &str) -> bool {
    repo.split('/').all(|component| {
        let b = component.as_bytes();
        if b.is_empty() || !b[0].is_ascii_alphanumeric() || !b[b.len() - 1].is_ascii_alphanumeric()
        {
            return false;
        }
        // Separators between alphanumeric runs: `.`, `_`, `__` or one or more `-`.
        let mut i = 0;
        while i < b.len() {
            if b[i].is_ascii_lowercase() || b[i].is_ascii_digit() {
                i += 1;
                continue;
            }
            let start = i;
            while i < b.len() && matches!(b[i], b'.' | b'_' | b'-') {
                i += 1;
            }
            let sep = &component[start..i];
            let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|c| c == b'-');
            if !ok || i == start {
                return false;
            }
        }
        true
    })
}

impl fmt::Display for RemoteRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_tags_and_digests() {
        let r = RemoteRef::parse("127.0.0.1:5000/acme/index:v1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "acme/index");
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(r.is_loopback());
        let r = RemoteRef::parse("ghcr.io/acme/index").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((r.registry.as_str(), r.tag.as_deref()), ("ghcr.io", None));
        assert!(!r.is_loopback());
        let d = format!("sha256:{}", "a".repeat(64));
        let r =
            RemoteRef::parse(&format!("localhost:5000/x@{d}")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.digest.map(|d| d.to_string()), Some(d));
        assert!(r.is_loopback());
        let r = RemoteRef::parse("ubuntu:24.04").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.to_string(), "docker.io/library/ubuntu:24.04");
        let r = RemoteRef::parse("[::1]:5000/a/b:t").unwrap_or_else(|e| panic!("{e}"));
        assert!(r.is_loopback());
        assert_eq!(r.repository, "a/b");
    }

    // Issue 19: a URL with credentials was refused for a wrong reason ("the digest must be…")
    // and the password was echoed back.
    #[test]
    fn urls_and_credentials_are_refused_without_echoing_a_secret() {
        for (input, says) in [
            ("http://user:s3cret@host:5000/a/b", "credentials do not go"),
            ("user:s3cret@host:5000/a/b:v1", "credentials do not go"),
            ("user:s3cret@host", "credentials do not go"),
            (
                "https://ghcr.io/acme/index",
                "has no scheme: write `ghcr.io/acme/index`",
            ),
        ] {
            let e = RemoteRef::parse(input)
                .map(|_| ())
                .err()
                .map(|e| e.to_string());
            let e = e.unwrap_or_default();
            assert!(e.contains(says), "{input}: {e}");
            assert!(!e.contains("s3cret"), "{input}: the secret is echoed: {e}");
        }
        let d = format!("sha256:{}", "a".repeat(64));
        assert!(RemoteRef::parse(&format!("ubuntu@{d}")).is_ok());
        assert!(RemoteRef::parse(&format!("ghcr.io/acme/index@{d}")).is_ok());
    }

    #[test]
    fn only_a_reference_that_names_its_registry_is_explicit() {
        for remote in [
            "ghcr.io/acme/index",
            "127.0.0.1:5000/acme/index:v1",
            "localhost/a",
            "localhost:5000/ommx/lp:v1",
            "[::1]:5000/a/b@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ] {
            assert!(RemoteRef::parse_explicit(remote).is_some(), "{remote}");
        }
        for local in [
            "latest",
            "tags/v1",
            "acme/index",
            "ubuntu:24.04",
            "main~2",
            "latest@{1}",
            "user:pw@host/a",
            "ghcr.io/Upper",
        ] {
            assert!(RemoteRef::parse_explicit(local).is_none(), "{local}");
        }
    }

    #[test]
    fn refuses_what_registries_refuse() {
        for bad in [
            "",
            "ghcr.io/",
            "ghcr.io/Upper/case",
            "ghcr.io/a..b",
            "ghcr.io/a___b",
            "ghcr.io/a:-tag",
            "ghcr.io/a:.tag",
            "ghcr.io/a@sha256:12",
            &format!("ghcr.io/a:{}", "t".repeat(129)),
        ] {
            assert!(RemoteRef::parse(bad).is_err(), "{bad} was accepted");
        }
        assert!(RemoteRef::parse("ghcr.io/a__b/c-d/e.f_g:1.0-rc_1").is_ok());
    }
}
