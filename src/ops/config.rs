//! `snap config`: the store's settings (`<store>/config`, store format §2), read and changed
//! under the file's lock. The keys snap knows are [`crate::config::KEYS`].

use std::time::Duration;

use super::Error;
use crate::config::{self, Config};

pub use crate::config::{KEYS, Key};
use crate::store::Store;

/// How long a change waits for another process's change of the file.
pub const LOCK_TIMEOUT: Duration = Duration::from_secs(2);

/// Every setting of the store, in key order.
///
/// # Errors
/// [`Error::Config`]: I/O, or a syntax error naming the line.
pub fn list(store: &Store) -> Result<Vec<(String, String)>, Error> {
    Ok(Config::load(store.dir())?
        .entries()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// A known key's value, if set.
///
/// # Errors
/// [`Error::Config`] for a key snap does not know; as [`list`].
pub fn get(store: &Store, key: &str) -> Result<Option<String>, Error> {
    config::find(key)?;
    Ok(Config::load(store.dir())?.get(key).map(str::to_owned))
}

/// Sets a known key (its value checked by the key's rule).
///
/// # Errors
/// [`Error::Config`]: an unknown key, a value the key does not take, the file held by another
/// process longer than [`LOCK_TIMEOUT`] (a conflict), or I/O.
pub fn set(store: &Store, key: &str, value: &str) -> Result<(), Error> {
    Ok(Config::update(store.dir(), LOCK_TIMEOUT, |c| {
        c.set(key, value)
    })?)
}

/// Removes a known key's setting; whether it was set.
///
/// # Errors
/// As [`set`].
pub fn unset(store: &Store, key: &str) -> Result<bool, Error> {
    config::find(key)?;
    Ok(Config::update(store.dir(), LOCK_TIMEOUT, |c| {
        Ok(c.unset(key))
    })?)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn set_get_list_unset_round_trip_and_unknown_keys_are_refused()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let (store, _) = Store::init(&dir.path().join(".store"))?;
        let key = "commit.ref";
        assert_eq!(get(&store, key)?, None);
        assert!(!unset(&store, key)?);
        let value = "main";
        set(&store, key, value)?;
        assert_eq!(get(&store, key)?.as_deref(), Some(value));
        assert_eq!(list(&store)?, vec![(key.to_owned(), value.to_owned())]);
        assert!(unset(&store, key)?);
        assert!(list(&store)?.is_empty());
        assert!(matches!(
            get(&store, "no.such-key"),
            Err(Error::Config(config::Error::UnknownKey { .. }))
        ));
        assert!(matches!(
            set(&store, "no.such-key", "x"),
            Err(Error::Config(config::Error::UnknownKey { .. }))
        ));
        Ok(())
    }

    // issue 15: the CLI applied `commit.ref` and `commit.gitignore` itself, so a library
    // caller's commit ignored them and moved `latest`.
    #[test]
    fn a_library_commit_gets_the_store_settings_as_defaults()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir(d.join("out"))?;
        std::fs::write(d.join("out/kept"), "k")?;
        std::fs::write(d.join("out/ignored.tmp"), "i")?;
        std::fs::write(d.join("out/.gitignore"), "*.tmp\n")?;
        let (store, _) = crate::ops::init(None, d)?;
        set(&store, "commit.ref", "main")?;
        set(&store, "commit.gitignore", "true")?;
        let opts = crate::ops::CommitOptions {
            paths: vec!["out".into()],
            cwd: d.to_owned(),
            ..crate::ops::CommitOptions::default()
        };
        let out = crate::ops::commit(&store, &opts, &crate::ops::NoProgress)?;
        assert_eq!(crate::rev::resolve(&store, "main")?, out.digest);
        assert!(
            crate::rev::resolve(&store, "latest").is_err(),
            "latest moved"
        );
        let mut names = Vec::new();
        crate::ops::ls::ls(
            &store,
            &crate::ops::ls::LsOptions {
                rev: "main".into(),
                path: "out".into(),
                recursive: false,
            },
            &mut |item| {
                if let crate::ops::ls::Listed::Entry { name, .. } = item {
                    names.push(name);
                }
                Ok(())
            },
        )?;
        assert_eq!(names, [".gitignore", "kept"]);
        Ok(())
    }
}
