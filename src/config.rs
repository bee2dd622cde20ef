//! `.store/config`: a store's settings, read by commands as defaults that flags override.
//!
//! Format (store format §2): UTF-8 lines `key = value`; `#` starts a comment line; blank lines
//! are ignored; a key appears at most once. The file is rewritten whole, atomically and under
//! a lock file, by [`Config::update`]; comments are not kept. Only the keys in [`KEYS`] can be set; unknown keys
//! in the file (from a newer snap) are kept and listed, never used.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A key snap knows, with what it means and how its value is checked.
#[derive(Clone, Copy, Debug)]
pub struct Key {
    /// The key.
    pub name: &'static str,
    /// What it sets, in a sentence.
    pub help: &'static str,
    check: fn(&str) -> Result<(), String>,
}

fn check_ref(v: &str) -> Result<(), String> {
    crate::store::refs::RefName::head(v)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn check_bool(v: &str) -> Result<(), String> {
    match v {
        "true" | "false" => Ok(()),
        _ => Err("write true or false".into()),
    }
}

fn check_timeout(v: &str) -> Result<(), String> {
    crate::registry::Timeouts::parse_timeout(v).map(|_| ())
}

fn check_low_speed_limit(v: &str) -> Result<(), String> {
    crate::registry::Timeouts::parse_low_speed_limit(v).map(|_| ())
}

fn check_path(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("expected a path".into());
    }
    Ok(())
}

fn check_remote(v: &str) -> Result<(), String> {
    crate::registry::RemoteRef::parse(v)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Every key snap reads.
pub const KEYS: &[Key] = &[
    Key {
        name: "commit.ref",
        help: "the head `snap commit` moves when --ref is not given (default: latest)",
        check: check_ref,
    },
    Key {
        name: "commit.gitignore",
        help: "true to honour .gitignore files on every commit, as --gitignore does",
        check: check_bool,
    },
    Key {
        name: "remote",
        help: "the REGISTRY/REPO[:TAG] `snap push` and `snap pull` use when none is given",
        check: check_remote,
    },
    Key {
        name: "push.history",
        help: "true to send every stored ancestor with each push, as --with-history",
        check: check_bool,
    },
    Key {
        name: "sign.key",
        help: "the SSH private key `snap sign` uses when --key is not given (like git's user.signingkey)",
        check: check_path,
    },
    Key {
        name: "verify.allowed-signers",
        help: "the allowed-signers file (ssh-keygen's format) `snap verify` and `snap pull --verify` use",
        check: check_path,
    },
    Key {
        name: "pull.verify",
        help: "true to verify every pull as --verify does: refused unless an allowed signer signed",
        check: check_bool,
    },
    Key {
        name: "http.timeout",
        help: "seconds push and pull wait for a registry to connect or make progress (default 30), as --timeout",
        check: check_timeout,
    },
    Key {
        name: "http.low-speed-limit",
        help: "bytes per second below which a transfer fails after the timeout (default 1024; 0: only when nothing moves), as --low-speed-limit",
        check: check_low_speed_limit,
    },
];

/// A store's settings.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    values: BTreeMap<String, String>,
}

impl Config {
    /// Reads `<store>/config`; a missing file is an empty config.
    ///
    /// # Errors
    /// [`Error::Io`], or [`Error::Syntax`] naming the line.
    pub fn load(store_dir: &Path) -> Result<Config, Error> {
        let path = crate::store::config_file(store_dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(source) => {
                return Err(Error::Io {
                    op: "reading",
                    path,
                    source,
                });
            }
        };
        Config::parse(&text).map_err(|(line, reason)| Error::Syntax { path, line, reason })
    }

    /// Parses the file's text; the error is the 1-based line and what is wrong.
    ///
    /// # Errors
    /// A line that is not `key = value`, or a key given twice.
    pub fn parse(text: &str) -> Result<Config, (usize, String)> {
        let mut values = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or((i + 1, "expected `key = value`".to_owned()))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty()
                || !k
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-_".contains(c))
            {
                return Err((i + 1, format!("`{k}` is not a key")));
            }
            if values.insert(k.to_owned(), v.to_owned()).is_some() {
                return Err((i + 1, format!("`{k}` is set twice")));
            }
        }
        Ok(Config { values })
    }

    /// The file's text.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out =
            String::from("# snap store settings: `snap config KEY VALUE` edits this file\n");
        for (k, v) in &self.values {
            out.push_str(k);
            out.push_str(" = ");
            out.push_str(v);
            out.push('\n');
        }
        out
    }

    /// Changes `<store>/config` under its lock file (`config.lock`, as refs are changed): reads
    /// it while holding the lock, applies `change`, and renames the new file into place — two
    /// `snap config` runs at once cannot lose each other's setting.
    ///
    /// # Errors
    /// [`Error::Locked`] when another process holds the lock for longer than `timeout`, what
    /// `change` returns, [`Error::Io`] or [`Error::Syntax`].
    pub fn update<T>(
        store_dir: &Path,
        timeout: std::time::Duration,
        change: impl FnOnce(&mut Config) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let path = crate::store::config_file(store_dir);
        let mut lock = crate::lock::LockFile::acquire(&path, timeout)
            .map_err(|e| Error::from_lock("locking", e))?;
        let mut config = Config::load(store_dir)?;
        let out = change(&mut config)?;
        lock.write_content(config.encode().as_bytes())
            .map_err(|e| Error::from_lock("writing", e))?;
        lock.commit()
            .map_err(|e| Error::from_lock("replacing", e))?;
        Ok(out)
    }

    /// A key's value, if set.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.values.get(key).map(String::as_str)
    }

    /// A boolean key's value (false when unset).
    #[must_use]
    pub fn flag(&self, key: &str) -> bool {
        self.get(key) == Some("true")
    }

    /// Every key and value, sorted by key.
    pub fn entries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Sets a known key to a valid value.
    ///
    /// # Errors
    /// [`Error::UnknownKey`] or [`Error::InvalidValue`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), Error> {
        let known = find(key)?;
        (known.check)(value).map_err(|reason| Error::InvalidValue {
            key: key.to_owned(),
            value: value.to_owned(),
            reason,
        })?;
        self.values.insert(key.to_owned(), value.to_owned());
        Ok(())
    }

    /// Removes a key; returns whether it was set.
    pub fn unset(&mut self, key: &str) -> bool {
        self.values.remove(key).is_some()
    }
}

/// The known key named `key`.
///
/// # Errors
/// [`Error::UnknownKey`].
pub fn find(key: &str) -> Result<&'static Key, Error> {
    KEYS.iter()
        .find(|k| k.name == key)
        .ok_or_else(|| Error::UnknownKey {
            key: key.to_owned(),
        })
}

/// Config errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a key snap knows.
    #[error("`{key}` is not a setting snap knows; `snap config --keys` lists them")]
    UnknownKey {
        /// The key.
        key: String,
    },
    /// A value the key does not take.
    #[error("`{value}` is not a valid {key}: {reason}")]
    InvalidValue {
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Why.
        reason: String,
    },
    /// A line of the file that does not parse.
    #[error("{}, line {line}: {reason}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The line (1-based).
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// Another process is changing the config.
    #[error("{} is locked by another process", path.display())]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// Reading or writing the file failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `reading`, `locking`, `writing`, `replacing`.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::Locked { .. } => K::Conflict,
            Error::Io { .. } => K::Io,
            _ => K::InvalidInput,
        }
    }
}

impl Error {
    fn from_lock(op: &'static str, e: crate::lock::Error) -> Error {
        match e {
            crate::lock::Error::Locked { lock_path, .. } => Error::Locked { path: lock_path },
            crate::lock::Error::Io { path, source } => Error::Io { op, path, source },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_encode_round_trip_and_validation() -> Result<(), Box<dyn std::error::Error>> {
        let c = Config::parse("# c\n\ncommit.ref = nightly\nremote=ghcr.io/acme/index\n")
            .map_err(|e| format!("{e:?}"))?;
        assert_eq!(c.get("commit.ref"), Some("nightly"));
        assert_eq!(Config::parse(&c.encode()).map_err(|e| format!("{e:?}"))?, c);
        assert_eq!(
            Config::parse("x\n").map(|_| ()),
            Err((1, "expected `key = value`".into()))
        );
        assert!(Config::parse("a = 1\na = 2\n").is_err());
        let mut c = Config::default();
        assert!(matches!(
            c.set("commit.ref", "../x"),
            Err(Error::InvalidValue { .. })
        ));
        assert!(matches!(c.set("nope", "1"), Err(Error::UnknownKey { .. })));
        assert!(matches!(
            c.set("commit.gitignore", "yes"),
            Err(Error::InvalidValue { .. })
        ));
        c.set("commit.gitignore", "true")?;
        assert!(c.flag("commit.gitignore"));
        assert!(c.unset("commit.gitignore") && !c.unset("commit.gitignore"));
        Ok(())
    }
}
