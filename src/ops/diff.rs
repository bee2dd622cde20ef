//! `snap diff`: what changed between a snapshot and another snapshot, a directory, or the work
//! tree (limited to the paths the snapshot records). The walk is the library's diff module's.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::diff;
pub use crate::diff::{Change, ChangeKind};
use crate::ops::Error;
use crate::snapshot::{self, Snapshot};
use crate::store::Store;
use crate::worktree::commit::scan::{self, Filter, Root};

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
    /// Patterns (gitignore syntax) left out of a directory side, as `snap commit --exclude`.
    pub excludes: Vec<String>,
    /// Honour `.gitignore` files on a directory side, as `snap commit --gitignore` (also
    /// when the store's `commit.gitignore` setting is true).
    pub gitignore: bool,
}

/// The changes from `opts.old` to `opts.new`, in tree order.
///
/// # Errors
/// `NotFound` for an unknown revision (or a new side that is neither a revision nor a
/// directory); what reading the trees or the directory hits.
pub fn diff(store: &Store, opts: &DiffOptions) -> Result<Vec<Change>, Error> {
    let old_id = crate::rev::resolve(store, &opts.old)?;
    let old = Snapshot::load(store, &old_id)?;
    let Some(new) = &opts.new else {
        // The work tree, limited to what the snapshot records at its top level.
        let base = store.root();
        let mut roots = Vec::new();
        for e in snapshot::read_tree(store, &old.root())?.entries() {
            let source = base.join(e.name.as_str());
            // What is gone is not scanned: the tree side reports it removed.
            if std::fs::symlink_metadata(&source).is_ok() {
                roots.push(Root {
                    recorded: e.name.to_string(),
                    source,
                });
            }
        }
        return against_scan(store, &old, &roots, base, opts);
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
    // The directory is the snapshot's root: its contents are recorded at the top level.
    let roots = [Root {
        recorded: String::new(),
        source: dir.clone(),
    }];
    against_scan(store, &old, &roots, &dir, opts)
}

/// The snapshot against the scan a commit of `roots` would make (the same filter, with the
/// store's `commit.gitignore` setting as the default).
fn against_scan(
    store: &Store,
    old: &Snapshot,
    roots: &[Root],
    base: &Path,
    opts: &DiffOptions,
) -> Result<Vec<Change>, Error> {
    let gitignore = opts.gitignore || Config::load(store.dir())?.flag("commit.gitignore");
    let filter = Filter::for_commit(store.dir().to_owned(), base, gitignore, &opts.excludes);
    let entries = scan::scan_filtered(roots, &filter)?;
    Ok(diff::tree_to_scan(store, &old.root(), &entries)?)
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
                    ..DiffOptions::default()
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

    // issue 15: diff walked directories with its own walker, so a file `.snapignore` or
    // `--exclude` keeps out of every commit showed up as added. It now compares against the
    // scan a commit would make.
    #[test]
    fn a_directory_side_leaves_out_what_a_commit_would() -> Result {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir(d.join("out"))?;
        std::fs::write(d.join("out/kept"), "k")?;
        let (store, _) = ops::init(None, d)?;
        let opts = CommitOptions {
            paths: vec!["out".into()],
            cwd: d.to_owned(),
            ..CommitOptions::default()
        };
        ops::commit(&store, &opts, &crate::ops::NoProgress)?;
        std::fs::write(d.join("out/.snapignore"), "*.tmp\n")?;
        std::fs::write(d.join("out/scratch.tmp"), "t")?;
        std::fs::write(d.join("out/build.log"), "l")?;
        std::fs::write(d.join("out/.gitignore"), "*.log\n")?;
        std::fs::write(d.join("out/cache.bin"), "c")?;
        let paths = |excludes: &[&str], gitignore: bool| -> Result<Vec<String>> {
            let out = diff(
                &store,
                &DiffOptions {
                    old: "latest".into(),
                    cwd: d.to_owned(),
                    excludes: excludes.iter().map(|e| (*e).to_owned()).collect(),
                    gitignore,
                    ..DiffOptions::default()
                },
            )?;
            Ok(out.into_iter().map(|c| c.path).collect())
        };
        assert_eq!(
            paths(&[], false)?,
            [
                "out/.gitignore",
                "out/.snapignore",
                "out/build.log",
                "out/cache.bin"
            ]
        );
        assert_eq!(
            paths(&["/out/cache.bin"], true)?,
            ["out/.gitignore", "out/.snapignore"]
        );
        // The store's `commit.gitignore` setting is the default, as for commit.
        super::super::config::set(&store, "commit.gitignore", "true")?;
        assert_eq!(
            paths(&[], false)?,
            ["out/.gitignore", "out/.snapignore", "out/cache.bin"]
        );
        // A directory side too: `./out` is the root, excludes anchored there.
        let dir_side = diff(
            &store,
            &DiffOptions {
                old: "latest".into(),
                new: Some("./out".into()),
                cwd: d.to_owned(),
                excludes: vec!["/cache.bin".into()],
                ..DiffOptions::default()
            },
        )?;
        let kinds: Vec<(String, ChangeKind)> =
            dir_side.into_iter().map(|c| (c.path, c.kind)).collect();
        assert!(
            kinds
                .iter()
                .all(|(p, _)| p != "cache.bin" && p != "scratch.tmp"),
            "{kinds:?}"
        );
        Ok(())
    }
}
