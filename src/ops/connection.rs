//! How to reach a registry: what a caller gives (flags, variables) completed by the store's
//! settings (`remote`, `http.timeout`, `http.low-speed-limit`), then the defaults — applied
//! here, so a library caller gets the same defaults as the CLI.

use std::time::Duration;

use super::Error;
use crate::config::Config;
use crate::registry::{ClientOptions, RemoteRef, Timeouts};
use crate::store::Store;

/// What a caller says about the connection; what it leaves `None` comes from the store's
/// settings, then the defaults.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// Plain HTTP for a registry that is not on this machine (loopback always may).
    pub insecure: bool,
    /// Transfers in flight at once (clamped to 1..=16); `None`: 4.
    pub jobs: Option<usize>,
    /// Upload every blob in chunks.
    pub chunked: bool,
    /// Seconds to wait for a registry; `None`: the `http.timeout` setting, else 30 s.
    pub timeout: Option<Duration>,
    /// Bytes per second below which a transfer fails after the timeout; `None`: the
    /// `http.low-speed-limit` setting, else 1024.
    pub low_speed_limit: Option<u64>,
}

/// The client options for `given`, completed from `store`'s settings when there is a store.
///
/// # Errors
/// [`Error::Config`] when the settings file cannot be read or holds a value its key does
/// not take (a hand-edited file).
pub fn client_options(store: Option<&Store>, given: &Connection) -> Result<ClientOptions, Error> {
    let settings = settings(store)?;
    let defaults = ClientOptions::default();
    let timeout = match given.timeout {
        Some(t) => t,
        None => setting(&settings, "http.timeout", Timeouts::parse_timeout)?
            .unwrap_or(defaults.timeouts.timeout),
    };
    let low_speed_limit = match given.low_speed_limit {
        Some(l) => l,
        None => setting(
            &settings,
            "http.low-speed-limit",
            Timeouts::parse_low_speed_limit,
        )?
        .unwrap_or(defaults.timeouts.low_speed_limit),
    };
    Ok(ClientOptions {
        insecure: given.insecure,
        jobs: given.jobs.unwrap_or(defaults.jobs).clamp(1, 16),
        chunked: given.chunked,
        timeouts: Timeouts {
            timeout,
            low_speed_limit,
        },
    })
}

/// The registry reference `given`, else the store's `remote` setting.
///
/// # Errors
/// [`Error::Registry`] for a reference that does not parse; [`Error::NoRemote`] when none is
/// given and none is set; as [`client_options`].
pub fn remote(store: Option<&Store>, given: Option<&str>) -> Result<RemoteRef, Error> {
    if let Some(text) = given {
        return Ok(RemoteRef::parse(text)?);
    }
    let settings = settings(store)?;
    match setting(&settings, "remote", |v| {
        RemoteRef::parse(v).map_err(|e| e.to_string())
    })? {
        Some(r) => Ok(r),
        None => Err(Error::NoRemote),
    }
}

fn settings(store: Option<&Store>) -> Result<Config, Error> {
    Ok(match store {
        Some(store) => Config::load(store.dir())?,
        None => Config::default(),
    })
}

/// A setting parsed by its key's rule (values were checked when set; a hand-edited file may
/// still hold a bad one).
fn setting<T>(
    settings: &Config,
    key: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Option<T>, Error> {
    settings
        .get(key)
        .map(|v| {
            parse(v).map_err(|reason| {
                Error::Config(crate::config::Error::InvalidValue {
                    key: key.to_owned(),
                    value: v.to_owned(),
                    reason,
                })
            })
        })
        .transpose()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn given_values_win_then_settings_then_defaults() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (store, _) = Store::init(&dir.path().join(".store"))?;
        let none = client_options(Some(&store), &Connection::default())?;
        assert_eq!(none.timeouts.timeout, Timeouts::default().timeout);
        assert_eq!(none.jobs, 4);
        super::super::config::set(&store, "http.timeout", "7")?;
        let set = client_options(Some(&store), &Connection::default())?;
        assert_eq!(set.timeouts.timeout, Duration::from_secs(7));
        let given = Connection {
            timeout: Some(Duration::from_secs(3)),
            jobs: Some(99),
            ..Connection::default()
        };
        let flags = client_options(Some(&store), &given)?;
        assert_eq!(flags.timeouts.timeout, Duration::from_secs(3));
        assert_eq!(flags.jobs, 16, "jobs are clamped");
        Ok(())
    }

    #[test]
    fn remote_is_the_given_one_else_the_setting_else_an_error()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (store, _) = Store::init(&dir.path().join(".store"))?;
        assert!(matches!(remote(Some(&store), None), Err(Error::NoRemote)));
        assert!(matches!(remote(None, None), Err(Error::NoRemote)));
        super::super::config::set(&store, "remote", "127.0.0.1:5000/a/b:v1")?;
        assert_eq!(remote(Some(&store), None)?.repository, "a/b");
        assert_eq!(remote(Some(&store), Some("example.com/c"))?.repository, "c");
        // A hand-edited file with a bad value is named, not ignored.
        std::fs::write(
            crate::store::config_file(store.dir()),
            "http.timeout = soon\n",
        )?;
        let err = client_options(Some(&store), &Connection::default())
            .err()
            .ok_or("a bad setting must fail")?;
        assert!(err.to_string().contains("http.timeout"), "{err}");
        Ok(())
    }
}
