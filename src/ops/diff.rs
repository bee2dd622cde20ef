//! `snap diff`: what changed between a snapshot and another snapshot, a directory, or the work
//! tree (limited to the paths the snapshot records). The walk is the library's diff module's.

use std::path::{Path, PathBuf};

use crate::diff;
pub use crate::diff::{Change, ChangeKind};
use crate::ops::Error;
use crate::snapshot::{self, Snapshot};
use crate::store::Store;

/// What to compare.
#[derive(Clone, Debug, Default)]
pub struct DiffOptions {
    /// The old side: a revision.
    pub old: String,
    /// The new side: a revision, or a directory taken as the snapshot's root (`./NAME`, `/…`
    /// or `..` force a directory; a revision wins over a directory of the same name).
    /// `None`: the work tree, limited to what the old snapshot records at its top level.
    pub new: Option<String>,
    /// Where a relative directory is.
    pub cwd: PathBuf,
}

/// The changes from `opts.old` to `opts.new`, in tree order.
///
/// # Errors
/// `NotFound` for an unknown revision (or a new side that is neither a revision nor a
/// directory); what reading the trees or the directory hits.
pub fn diff(store: &Store, opts: &DiffOptions) -> Result<Vec<Change>, Error> {
    let old_id = crate::rev::resolve(store, &opts.old)?;
    let old = Snapshot::load(store, &old_id)?;
    let skip = [store.dir().to_owned()];
    let Some(new) = &opts.new else {
        // The work tree, limited to what the snapshot records at its top level.
        let names: Vec<String> = snapshot::read_tree(store, &old.root())?
            .entries()
            .iter()
            .map(|e| e.name.to_string())
            .collect();
        return Ok(diff::tree_to_dir(
            store,
            &old.root(),
            store.root(),
            &skip,
            Some(&names),
        )?);
    };
    let forced_dir = new == "."
        || new == ".."
        || new.starts_with("./")
        || new.starts_with("../")
        || new.starts_with('/');
    let as_rev = if forced_dir {
        None
    } else {
        crate::rev::resolve(store, new).ok()
    };
    if let Some(new_id) = as_rev {
        let new = Snapshot::load(store, &new_id)?;
        return Ok(diff::trees(store, &old.root(), &new.root())?);
    }
    let dir: PathBuf = opts.cwd.join(new);
    if !Path::new(&dir).is_dir() {
        // Neither: report it as the revision it most likely was meant to be.
        crate::rev::resolve(store, new)?;
    }
    Ok(diff::tree_to_dir(store, &old.root(), &dir, &skip, None)?)
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;
    use crate::diff::ChangeKind;
    use crate::ops::{self, CommitOptions};

    type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    #[test]
    fn snapshots_directories_and_the_work_tree_are_compared() -> Result {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir(d.join("out"))?;
        std::fs::write(d.join("out/a"), "1")?;
        std::fs::write(d.join("out/b"), "2")?;
        let (store, _) = ops::init(None, d)?;
        let commit = |msg: &str| -> Result<()> {
            let opts = CommitOptions {
                paths: vec!["out".into()],
                message: msg.into(),
                cwd: d.to_owned(),
                ..CommitOptions::default()
            };
            ops::commit(&store, &opts, &crate::ops::NoProgress)?;
            Ok(())
        };
        commit("one")?;
        ops::tag(&store, "one", "latest", false)?;
        std::fs::write(d.join("out/a"), "changed")?;
        std::fs::remove_file(d.join("out/b"))?;
        let against = |new: Option<&str>| {
            diff(
                &store,
                &DiffOptions {
                    old: "one".into(),
                    new: new.map(str::to_owned),
                    cwd: d.to_owned(),
                },
            )
        };
        let kinds = |c: Vec<Change>| -> Vec<(String, ChangeKind)> {
            c.into_iter().map(|c| (c.path, c.kind)).collect()
        };
        let expected = vec![
            ("out/a".to_owned(), ChangeKind::Modified),
            ("out/b".to_owned(), ChangeKind::Removed),
        ];
        assert_eq!(kinds(against(None)?), expected, "the work tree");
        commit("two")?;
        assert_eq!(kinds(against(Some("latest"))?), expected, "two snapshots");
        assert!(against(Some("one"))?.is_empty());
        assert!(against(Some("no-such-thing")).is_err());
        Ok(())
    }
}
