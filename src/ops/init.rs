//! Finding, opening and creating stores.
//!
//! A store is given explicitly (`--store DIR` / `SNAP_STORE`, naming the store directory
//! itself) or found by walking up from the current directory. `snap commit` without a store
//! creates one at the git work tree's root, or in the current directory outside git.

use std::path::{Path, PathBuf};

use crate::ops::Error;
use crate::provenance;
use crate::store::{self, STORE_DIR_NAME, Store};

/// Opens the store named by `explicit`, or the one found above `cwd`.
///
/// # Errors
/// `NotFound` when there is none.
pub fn open(explicit: Option<&Path>, cwd: &Path) -> Result<Store, Error> {
    match explicit {
        Some(dir) => Ok(Store::open(&cwd.join(dir))?),
        None => Ok(Store::discover(cwd)?),
    }
}

/// Opens the store as [`open`] does, leaving the leftovers of interrupted runs in place (for
/// `fsck`, which reports them).
///
/// # Errors
/// As [`open`].
pub fn open_as_is(explicit: Option<&Path>, cwd: &Path) -> Result<Store, Error> {
    let dir = match explicit {
        Some(dir) => cwd.join(dir),
        None => Store::find(cwd).ok_or_else(|| crate::store::Error::NotFound {
            start: cwd.to_owned(),
        })?,
    };
    Ok(Store::open_as_is(&dir)?)
}

/// Opens the store as [`open`] does, holding the store-wide lock exclusively (for `gc`),
/// waiting for up to `wait` while other snap processes use the store.
///
/// # Errors
/// As [`open`]; a lock error when the store is still in use after `wait`.
pub fn open_exclusive(
    explicit: Option<&Path>,
    cwd: &Path,
    wait: std::time::Duration,
) -> Result<Store, Error> {
    let dir = match explicit {
        Some(dir) => cwd.join(dir),
        None => Store::find(cwd).ok_or_else(|| crate::store::Error::NotFound {
            start: cwd.to_owned(),
        })?,
    };
    let start = std::time::Instant::now();
    // Close the turnstile while waiting, so commits that start meanwhile queue behind this
    // gc instead of keeping the store busy forever; it opens again when this returns. Commands
    // pass it in an instant, so even `--wait 0` waits a moment for them; another gc holds it
    // closed for as long as it waits itself.
    let _turnstile = crate::lock::Turnstile::close(
        &dir.join(crate::store::TURNSTILE),
        wait.max(TURNSTILE_CLOSE_MIN),
    )
    .map_err(crate::store::Error::from)?;
    Ok(Store::open_exclusive(
        &dir,
        wait.saturating_sub(start.elapsed()),
    )?)
}

/// The least time gc waits to close the turnstile, whatever `--wait` says.
const TURNSTILE_CLOSE_MIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Creates a store in `dir` (a directory to hold `.store/`), or at `explicit` (the store
/// directory itself). Returns the store and whether it was created.
///
/// # Errors
/// `Io` if it cannot be created.
pub fn init(explicit: Option<&Path>, dir: &Path) -> Result<(Store, bool), Error> {
    let store_dir = match explicit {
        Some(e) => dir.join(e),
        None => dir.join(STORE_DIR_NAME),
    };
    Ok(Store::init(&store_dir)?)
}

/// Opens the store as [`open`] does, creating one if there is none: at the root of the git
/// work tree holding `cwd`, else in `cwd`. Returns the store and the created directory, if any.
///
/// # Errors
/// As [`open`] and [`init`].
pub fn open_or_create(
    explicit: Option<&Path>,
    cwd: &Path,
) -> Result<(Store, Option<PathBuf>), Error> {
    match open(explicit, cwd) {
        Ok(s) => Ok((s, None)),
        Err(Error::Store(store::Error::NotFound { .. } | store::Error::NotAStore { .. })) => {
            let (store, created) = if let Some(e) = explicit {
                init(Some(e), cwd)?
            } else {
                let base = provenance::worktree_root(cwd).unwrap_or_else(|| cwd.to_owned());
                init(None, &base)?
            };
            let dir = created.then(|| store.dir().to_owned());
            Ok((store, dir))
        }
        Err(e) => Err(e),
    }
}
