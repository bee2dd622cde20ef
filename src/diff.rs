//! What changed between two trees, or between a tree and a directory on disk.
//!
//! Both sides are walked together in tree order (pre-order, names sorted by bytes). Between
//! two trees, a subdirectory whose digest is the same on both sides is skipped without being
//! read, so the cost is proportional to the changes (the Merkle property). Against a
//! directory, a file is hashed only when its size matches the recorded one.
//!
//! Read-only. Symlinks are compared by target and never followed. A directory side is the
//! scan a commit of it would make (`worktree::commit::scan`: ignore files, excludes, the store
//! and `.git` left out), so its changes are what committing it would change.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};
use crate::object::EntryKind;
use crate::snapshot::{self, read_tree};
use crate::store::Store;
use crate::worktree::commit::scan::{ScanEntry, ScanKind};

/// How an entry changed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Only on the new side.
    Added,
    /// Only on the old side.
    Removed,
    /// Same type, different contents, executable bit or target.
    Modified,
    /// A file became a directory or symlink, or the other way round.
    TypeChanged,
}

impl ChangeKind {
    /// The one-letter code of `git diff --name-status`.
    #[must_use]
    pub fn letter(self) -> char {
        match self {
            ChangeKind::Added => 'A',
            ChangeKind::Removed => 'D',
            ChangeKind::Modified => 'M',
            ChangeKind::TypeChanged => 'T',
        }
    }
}

/// One side of a change.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct EntrySummary {
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: String,
    /// File size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// File or tree digest (absent for directories on disk and unhashed files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Owner-execute bit of a file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub executable: bool,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// One changed path.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Change {
    /// `/`-separated path relative to the root.
    pub path: String,
    /// How it changed.
    pub kind: ChangeKind,
    /// The old side, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old: Option<EntrySummary>,
    /// The new side, if present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new: Option<EntrySummary>,
}

/// Changes from tree `old` to tree `new`.
///
/// # Errors
/// [`Error::Snapshot`] if a tree is missing, corrupt or malformed.
pub fn trees(store: &Store, old: &Digest, new: &Digest) -> Result<Vec<Change>, Error> {
    let mut out = Vec::new();
    let ctx = Ctx {
        store,
        scanned: Scanned::default(),
    };
    ctx.compare(
        Some(&Side::Tree(*old)),
        Some(&Side::Tree(*new)),
        "",
        &mut out,
    )?;
    Ok(out)
}

/// Changes from tree `old` to what a scan of the work tree or a directory found (the scan
/// that a commit of it would record: the same ignore rules and excludes, the store and
/// `.git` left out), so the changes are what committing it would change.
///
/// # Errors
/// [`Error::Snapshot`] for tree problems, [`Error::Io`] hashing a file.
pub fn tree_to_scan(
    store: &Store,
    old: &Digest,
    entries: &[ScanEntry],
) -> Result<Vec<Change>, Error> {
    let mut children: HashMap<Option<usize>, Vec<usize>> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        children.entry(e.parent).or_default().push(i);
    }
    let mut out = Vec::new();
    let ctx = Ctx {
        store,
        scanned: Scanned { entries, children },
    };
    ctx.compare(
        Some(&Side::Tree(*old)),
        Some(&Side::Scanned(None)),
        "",
        &mut out,
    )?;
    Ok(out)
}

/// Where a directory listing comes from.
#[derive(Clone, Debug)]
enum Side {
    Tree(Digest),
    /// The scanned directory at this index of the scan (`None`: the scan's root).
    Scanned(Option<usize>),
}

/// A scan, with each directory's entries.
#[derive(Default)]
struct Scanned<'a> {
    entries: &'a [ScanEntry],
    children: HashMap<Option<usize>, Vec<usize>>,
}

/// One entry of a listing.
struct Node {
    name: String,
    summary: EntrySummary,
    /// The file on disk (for lazy hashing) or the subdirectory to descend into.
    child: Option<Side>,
    file: Option<PathBuf>,
}

struct Ctx<'a> {
    store: &'a Store,
    scanned: Scanned<'a>,
}

fn summary(kind: &str) -> EntrySummary {
    EntrySummary {
        kind: kind.to_owned(),
        size: None,
        digest: None,
        executable: false,
        target: None,
    }
}

impl Ctx<'_> {
    fn list(&self, side: &Side) -> Result<Vec<Node>, Error> {
        match side {
            Side::Tree(d) => {
                let tree = read_tree(self.store, d)?;
                Ok(tree
                    .entries()
                    .iter()
                    .map(|e| {
                        let mut s = summary(e.kind.type_name());
                        let mut child = None;
                        match &e.kind {
                            EntryKind::File {
                                size,
                                digest,
                                executable,
                            } => {
                                s.size = Some(*size);
                                s.digest = Some(*digest);
                                s.executable = *executable;
                            }
                            EntryKind::Dir { digest } => {
                                s.digest = Some(*digest);
                                child = Some(Side::Tree(*digest));
                            }
                            EntryKind::Symlink { target } => s.target = Some(target.clone()),
                        }
                        Node {
                            name: e.name.as_str().to_owned(),
                            summary: s,
                            child,
                            file: None,
                        }
                    })
                    .collect())
            }
            Side::Scanned(dir) => Ok(self.list_scanned(*dir)),
        }
    }

    /// The entries a scan found in one directory, in name order.
    fn list_scanned(&self, dir: Option<usize>) -> Vec<Node> {
        let Some(children) = self.scanned.children.get(&dir) else {
            return Vec::new();
        };
        let mut out: Vec<Node> = children
            .iter()
            .map(|&i| {
                let e = &self.scanned.entries[i];
                let (s, child, file) = match &e.kind {
                    ScanKind::Dir => (summary("dir"), Some(Side::Scanned(Some(i))), None),
                    ScanKind::Symlink { target } => {
                        let mut s = summary("symlink");
                        s.target = Some(target.clone());
                        (s, None, None)
                    }
                    ScanKind::File { size, executable } => {
                        let mut s = summary("file");
                        s.size = Some(*size);
                        s.executable = *executable;
                        (s, None, e.source.clone())
                    }
                };
                Node {
                    name: e.name.as_str().to_owned(),
                    summary: s,
                    child,
                    file,
                }
            })
            .collect();
        out.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        out
    }

    fn compare(
        &self,
        old: Option<&Side>,
        new: Option<&Side>,
        prefix: &str,
        out: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let olds = old.map(|s| self.list(s)).transpose()?.unwrap_or_default();
        let news = new.map(|s| self.list(s)).transpose()?.unwrap_or_default();
        self.merge(olds, news, prefix, out)
    }

    fn merge(
        &self,
        olds: Vec<Node>,
        news: Vec<Node>,
        prefix: &str,
        out: &mut Vec<Change>,
    ) -> Result<(), Error> {
        let mut olds = olds.into_iter().peekable();
        let mut news = news.into_iter().peekable();
        loop {
            let order = match (olds.peek(), news.peek()) {
                (None, None) => return Ok(()),
                (Some(_), None) => std::cmp::Ordering::Less,
                (None, Some(_)) => std::cmp::Ordering::Greater,
                (Some(o), Some(n)) => o.name.as_bytes().cmp(n.name.as_bytes()),
            };
            match order {
                std::cmp::Ordering::Less => {
                    let o = olds.next().expect("peeked");
                    let path = join(prefix, &o.name);
                    self.removed(o, &path, out)?;
                }
                std::cmp::Ordering::Greater => {
                    let n = news.next().expect("peeked");
                    let path = join(prefix, &n.name);
                    self.added(n, &path, out)?;
                }
                std::cmp::Ordering::Equal => {
                    let o = olds.next().expect("peeked");
                    let n = news.next().expect("peeked");
                    let path = join(prefix, &o.name);
                    self.both(o, n, &path, out)?;
                }
            }
        }
    }

    fn removed(&self, o: Node, path: &str, out: &mut Vec<Change>) -> Result<(), Error> {
        out.push(Change {
            path: path.to_owned(),
            kind: ChangeKind::Removed,
            old: Some(o.summary),
            new: None,
        });
        if let Some(child) = &o.child {
            self.compare(Some(child), None, path, out)?;
        }
        Ok(())
    }

    fn added(&self, mut n: Node, path: &str, out: &mut Vec<Change>) -> Result<(), Error> {
        if let Some(f) = &n.file {
            n.summary.digest = Some(hash_file(f)?);
        }
        out.push(Change {
            path: path.to_owned(),
            kind: ChangeKind::Added,
            old: None,
            new: Some(n.summary),
        });
        if let Some(child) = &n.child {
            self.compare(None, Some(child), path, out)?;
        }
        Ok(())
    }

    fn both(&self, o: Node, mut n: Node, path: &str, out: &mut Vec<Change>) -> Result<(), Error> {
        if o.summary.kind != n.summary.kind {
            if let Some(f) = &n.file {
                n.summary.digest = Some(hash_file(f)?);
            }
            out.push(Change {
                path: path.to_owned(),
                kind: ChangeKind::TypeChanged,
                old: Some(o.summary),
                new: Some(n.summary),
            });
            // What was below an old directory is gone; what is below a new one is new.
            if let Some(child) = &o.child {
                self.compare(Some(child), None, path, out)?;
            }
            if let Some(child) = &n.child {
                self.compare(None, Some(child), path, out)?;
            }
            return Ok(());
        }
        match o.summary.kind.as_str() {
            "dir" => {
                // Equal tree digests: the whole subtree is identical (Merkle).
                if let (Some(Side::Tree(a)), Some(Side::Tree(b))) = (&o.child, &n.child)
                    && a == b
                {
                    return Ok(());
                }
                self.compare(o.child.as_ref(), n.child.as_ref(), path, out)
            }
            "symlink" => {
                if o.summary.target != n.summary.target {
                    out.push(modified(path, o.summary, n.summary));
                }
                Ok(())
            }
            _ => {
                let changed = if o.summary.size != n.summary.size
                    || o.summary.executable != n.summary.executable
                {
                    true
                } else if let Some(f) = &n.file {
                    // Same size on disk: only the contents can tell.
                    let d = hash_file(f)?;
                    n.summary.digest = Some(d);
                    o.summary.digest != Some(d)
                } else {
                    o.summary.digest != n.summary.digest
                };
                if changed {
                    out.push(modified(path, o.summary, n.summary));
                }
                Ok(())
            }
        }
    }
}

fn modified(path: &str, old: EntrySummary, new: EntrySummary) -> Change {
    Change {
        path: path.to_owned(),
        kind: ChangeKind::Modified,
        old: Some(old),
        new: Some(new),
    }
}

fn hash_file(path: &Path) -> Result<Digest, Error> {
    let io = |source| Error::Io {
        op: "reading",
        path: path.to_owned(),
        source,
    };
    let f = std::fs::File::open(path).map_err(io)?;
    let mut r = HashingReader::new(f);
    std::io::copy(&mut r, &mut std::io::sink()).map_err(io)?;
    Ok(r.finish().0)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

/// Diff errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tree could not be read.
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    /// Hashing a file failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `listing`, `reading`, ….
        op: &'static str,
        /// The path.
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
            Error::Snapshot(s) => s.kind(),
            _ => K::Io,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;
    use crate::ops::{self, CommitOptions};

    type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

    fn commit(store: &Store, dir: &Path) -> Result<Digest> {
        let opts = CommitOptions {
            paths: vec!["out".into()],
            cwd: dir.to_owned(),
            ..CommitOptions::default()
        };
        let id = ops::commit(store, &opts, &ops::NoProgress)?.digest;
        Ok(crate::snapshot::Snapshot::load(store, &id)?.root())
    }

    #[test]
    fn every_kind_of_change_between_trees_and_against_a_directory() -> Result {
        let dir = tempfile::tempdir()?;
        let d = dir.path();
        std::fs::create_dir_all(d.join("out/gone"))?;
        std::fs::create_dir_all(d.join("out/same"))?;
        std::fs::write(d.join("out/gone/x"), "x")?;
        std::fs::write(d.join("out/same/y"), "y")?;
        std::fs::write(d.join("out/edit"), "1")?;
        std::fs::write(d.join("out/kind"), "file")?;
        let (store, _) = ops::init(None, d)?;
        let old = commit(&store, d)?;
        std::fs::remove_dir_all(d.join("out/gone"))?;
        std::fs::write(d.join("out/edit"), "2")?;
        std::fs::remove_file(d.join("out/kind"))?;
        std::os::unix::fs::symlink("edit", d.join("out/kind"))?;
        std::fs::write(d.join("out/new"), "n")?;
        let expected = [
            ("out/edit".to_owned(), ChangeKind::Modified),
            ("out/gone".to_owned(), ChangeKind::Removed),
            // A removed directory's contents are listed too, as git lists them.
            ("out/gone/x".to_owned(), ChangeKind::Removed),
            ("out/kind".to_owned(), ChangeKind::TypeChanged),
            ("out/new".to_owned(), ChangeKind::Added),
        ];
        let kinds = |c: Vec<Change>| -> Vec<(String, ChangeKind)> {
            c.into_iter().map(|c| (c.path, c.kind)).collect()
        };
        // Against the scan a commit of `out` would make (the store is left out).
        let roots = [crate::worktree::commit::scan::Root {
            recorded: "out".into(),
            source: d.join("out"),
        }];
        let filter = crate::worktree::commit::scan::Filter::for_commit(
            store.dir().to_owned(),
            d,
            false,
            &[],
        );
        let scanned = crate::worktree::commit::scan::scan_filtered(&roots, &filter)?;
        let against_dir = kinds(tree_to_scan(&store, &old, &scanned)?);
        assert_eq!(against_dir, expected, "tree against directory");
        let new = commit(&store, d)?;
        assert_eq!(
            kinds(trees(&store, &old, &new)?),
            expected,
            "tree against tree"
        );
        assert!(trees(&store, &new, &new)?.is_empty());
        Ok(())
    }
}
