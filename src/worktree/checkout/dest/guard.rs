//! The paths a restore must leave alone besides the reserved names (the open store inside the
//! destination, the staging directory), compared as the file system folds names.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::error::{Error, io_err};
use crate::object::EntryPath;
use crate::object::path::fold;

/// The paths a restore into one destination must leave alone, besides the reserved names of
/// [`EntryPath::reserved_component`]: the open store when it lies inside the destination
/// under another name (`--store`), and the staging directory of an in-place restore.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    /// Folded components (as [`fold`] spells them) and what lives there.
    protected: Vec<(Vec<String>, PathBuf)>,
}

impl Guard {
    /// The guard for restoring into `dest` with the store at `store_dir` open.
    ///
    /// # Errors
    /// [`Error::InStore`] if `dest` is the store or inside it; [`Error::Io`] if a path cannot
    /// be resolved.
    pub fn new(dest: &Path, store_dir: &Path) -> Result<Guard, Error> {
        let store = store_dir
            .canonicalize()
            .map_err(|e| io_err("resolving", store_dir, e))?;
        let dest_real = resolve_lenient(dest).map_err(|e| io_err("resolving", dest, e))?;
        if dest_real.starts_with(&store) {
            return Err(Error::InStore {
                dest: dest.to_owned(),
                store,
            });
        }
        let mut guard = Guard::default();
        if let Ok(rel) = store.strip_prefix(&dest_real) {
            guard.protect(rel, store.clone());
        }
        Ok(guard)
    }

    /// Adds `rel` (relative to the destination) and everything below it, where `what` lives.
    pub fn protect(&mut self, rel: &Path, what: PathBuf) {
        let parts: Vec<String> = rel
            .components()
            .map(|c| fold(&c.as_os_str().to_string_lossy()))
            .collect();
        if !parts.is_empty() {
            self.protected.push((parts, what));
        }
    }

    /// Checks that restore may write `path`: no reserved name in it, not into a protected
    /// path. Compared as a case-insensitive filesystem would.
    ///
    /// # Errors
    /// [`Error::Reserved`], [`Error::Protected`].
    pub fn admit(&self, path: &EntryPath) -> Result<(), Error> {
        if let Some(name) = path.reserved_component() {
            return Err(Error::Reserved {
                path: path.to_string(),
                name: name.to_owned(),
            });
        }
        for (parts, what) in &self.protected {
            let mut ours = path.components();
            if parts
                .iter()
                .all(|p| ours.next().is_some_and(|c| fold(c) == *p))
            {
                return Err(Error::Protected {
                    path: path.to_string(),
                    what: what.clone(),
                });
            }
        }
        Ok(())
    }
}

/// `path` made absolute with symlinks resolved as far as it exists; the rest is appended
/// lexically (`..` drops a component).
pub(super) fn resolve_lenient(path: &Path) -> io::Result<PathBuf> {
    let abs = std::path::absolute(path)?;
    let mut existing = abs.as_path();
    let mut rest = Vec::new();
    let mut real = loop {
        match existing.canonicalize() {
            Ok(real) => break real,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(parent) = existing.parent() else {
                    return Err(e);
                };
                rest.extend(existing.file_name().map(ToOwned::to_owned));
                if existing.file_name().is_none() {
                    rest.push("..".into());
                }
                existing = parent;
            }
            Err(e) => return Err(e),
        }
    };
    for part in rest.iter().rev() {
        match Path::new(part).components().next() {
            Some(Component::ParentDir) => {
                real.pop();
            }
            Some(Component::Normal(n)) => real.push(n),
            _ => {}
        }
    }
    Ok(real)
}
