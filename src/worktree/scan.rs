//! Walking the paths to commit into a flat, pre-ordered list of entries.
//!
//! The order is the tar member order of the OCI mapping: depth-first, a directory before its
//! contents, siblings sorted by the bytes of their names. Each recorded path's missing parent
//! directories are synthesized. Symlinks are recorded, never followed. The store directory and
//! `.git` directories are never recorded.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::object::EntryName;

/// What a scanned entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScanKind {
    /// A regular file, as `lstat` saw it.
    File {
        /// Size when scanned.
        size: u64,
        /// Owner-execute bit.
        executable: bool,
    },
    /// A directory.
    Dir,
    /// A symlink and its target.
    Symlink {
        /// The target.
        target: String,
    },
}

/// One entry below the root.
#[derive(Clone, Debug)]
pub struct ScanEntry {
    /// The recorded path, `/`-separated, relative to the root.
    pub path: String,
    /// The last component.
    pub name: EntryName,
    /// Index of the parent directory's entry; `None` for entries directly in the root.
    pub parent: Option<usize>,
    /// Where it is on disk; `None` for synthesized parent directories.
    pub source: Option<PathBuf>,
    /// What it is.
    pub kind: ScanKind,
    /// What `lstat` said, for files (the stat cache's key).
    pub stat: Option<crate::worktree::statcache::FileStat>,
}

/// A path to record: where it is on disk and the path it is recorded under.
#[derive(Clone, Debug)]
pub struct Root {
    /// `/`-separated recorded path; empty to record the directory's contents as the root.
    pub recorded: String,
    /// The file or directory on disk.
    pub source: PathBuf,
}

/// Walks `roots` and returns every entry in tar member order. `skip` lists directories never
/// to enter (the store itself).
///
/// # Errors
/// [`Error`] naming the path: missing, unreadable, not UTF-8, an unsupported file type, or two
/// roots recorded under the same path.
pub fn scan(roots: &[Root], skip: &[PathBuf]) -> Result<Vec<ScanEntry>, Error> {
    // A trie of recorded paths: synthesized directories lead to the roots.
    #[derive(Default)]
    struct Node {
        children: BTreeMap<String, Node>,
        source: Option<PathBuf>,
    }
    let mut top = Node::default();
    for root in roots {
        let comps: Vec<&str> = root.recorded.split('/').filter(|c| !c.is_empty()).collect();
        let mut node = &mut top;
        let mut covered = false;
        for c in &comps {
            EntryName::new(*c).map_err(|_| Error::InvalidPath {
                path: root.source.clone(),
            })?;
            if node.source.is_some() {
                covered = true; // an ancestor is recorded already, and covers this root
                break;
            }
            node = node.children.entry((*c).to_owned()).or_default();
        }
        if covered {
            continue;
        }
        match &node.source {
            None => {
                node.source = Some(root.source.clone());
                node.children.clear(); // recording the directory covers anything below it
            }
            Some(existing) if *existing == root.source => {}
            Some(_) => {
                return Err(Error::Conflict {
                    path: root.recorded.clone(),
                });
            }
        }
    }

    let skip: Vec<PathBuf> = skip
        .iter()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .collect();
    let mut out = Vec::new();

    fn visit(
        node: &Node,
        prefix: &str,
        parent: Option<usize>,
        skip: &[PathBuf],
        out: &mut Vec<ScanEntry>,
    ) -> Result<(), Error> {
        if let Some(src) = &node.source {
            return walk_dir_or_file(src, prefix, parent, skip, out, true);
        }
        for (name, child) in &node.children {
            let path = join(prefix, name);
            if child.source.is_none() {
                let idx = out.len();
                out.push(ScanEntry {
                    path: path.clone(),
                    name: EntryName::new(name.clone()).map_err(|_| Error::InvalidPath {
                        path: PathBuf::from(&path),
                    })?,
                    parent,
                    source: None,
                    kind: ScanKind::Dir,
                    stat: None,
                });
                visit(child, &path, Some(idx), skip, out)?;
            } else {
                visit(child, &path, parent, skip, out)?;
            }
        }
        Ok(())
    }

    visit(&top, "", None, &skip, &mut out)?;
    Ok(out)
}

/// Records `src` under `path` (or, if `path` is empty, records its contents as the root).
fn walk_dir_or_file(
    src: &Path,
    path: &str,
    parent: Option<usize>,
    skip: &[PathBuf],
    out: &mut Vec<ScanEntry>,
    is_root: bool,
) -> Result<(), Error> {
    let meta = std::fs::symlink_metadata(src).map_err(|source| {
        if is_root && source.kind() == std::io::ErrorKind::NotFound {
            Error::Missing {
                path: src.to_owned(),
            }
        } else {
            Error::Io {
                path: src.to_owned(),
                source,
            }
        }
    })?;
    walk_with_meta(src, &meta, path, parent, skip, out, PARALLEL_LEVELS)
}

/// How many directory levels below a root are scanned in parallel: enough to keep both cores
/// busy, few enough that entries are moved between vectors at most this many times.
const PARALLEL_LEVELS: u32 = 2;

/// [`walk_dir_or_file`] with `lstat` already done (by the parent's directory entry, which
/// stats relative to the open directory instead of walking the whole path again).
fn walk_with_meta(
    src: &Path,
    meta: &std::fs::Metadata,
    path: &str,
    parent: Option<usize>,
    skip: &[PathBuf],
    out: &mut Vec<ScanEntry>,
    parallel_levels: u32,
) -> Result<(), Error> {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        ScanKind::Dir
    } else if ft.is_file() {
        ScanKind::File {
            size: meta.len(),
            executable: is_executable(meta),
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(src).map_err(|source| Error::Io {
            path: src.to_owned(),
            source,
        })?;
        let target = target
            .into_os_string()
            .into_string()
            .map_err(|_| Error::InvalidPath {
                path: src.to_owned(),
            })?;
        ScanKind::Symlink { target }
    } else {
        return Err(Error::Unsupported {
            path: src.to_owned(),
        });
    };

    let dir_index = if path.is_empty() {
        // The contents become the root: only a directory can be the root.
        if kind != ScanKind::Dir {
            return Err(Error::RootNotDir {
                path: src.to_owned(),
            });
        }
        parent
    } else {
        let name = path.rsplit('/').next().unwrap_or(path);
        let idx = out.len();
        out.push(ScanEntry {
            path: path.to_owned(),
            name: EntryName::new(name).map_err(|_| Error::InvalidPath {
                path: src.to_owned(),
            })?,
            parent,
            source: Some(src.to_owned()),
            stat: matches!(kind, ScanKind::File { .. })
                .then(|| crate::worktree::statcache::FileStat::of(meta)),
            kind: kind.clone(),
        });
        if kind != ScanKind::Dir {
            return Ok(());
        }
        Some(idx)
    };

    let rd = std::fs::read_dir(src).map_err(|source| Error::Io {
        path: src.to_owned(),
        source,
    })?;
    let mut children = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| Error::Io {
            path: src.to_owned(),
            source,
        })?;
        let child = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| Error::InvalidPath {
                path: child.clone(),
            })?;
        if name == ".git" || skip.contains(&child) {
            continue;
        }
        // fstatat relative to the open directory: no path walk per file.
        let meta = entry.metadata().map_err(|source| Error::Io {
            path: child.clone(),
            source,
        })?;
        children.push((name, child, meta));
    }
    children.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if parallel_levels == 0 || children.len() < 2 {
        for (name, child, meta) in children {
            walk_with_meta(&child, &meta, &join(path, &name), dir_index, skip, out, 0)?;
        }
        return Ok(());
    }
    // Each child's subtree on its own (parents relative to it; `None`: this directory), then
    // appended in order, so the result is the same as the sequential walk's.
    let parts: Vec<Result<Vec<ScanEntry>, Error>> = children
        .into_par_iter()
        .map(|(name, child, meta)| {
            let mut local = Vec::new();
            walk_with_meta(
                &child,
                &meta,
                &join(path, &name),
                None,
                skip,
                &mut local,
                parallel_levels - 1,
            )?;
            Ok(local)
        })
        .collect();
    for part in parts {
        let base = out.len();
        out.extend(part?.into_iter().map(|mut e| {
            e.parent = e.parent.map_or(dir_index, |p| Some(p + base));
            e
        }));
    }
    Ok(())
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{prefix}/{name}")
    }
}

#[cfg(unix)]
fn is_executable(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o100 != 0
}

#[cfg(not(unix))]
fn is_executable(_meta: &std::fs::Metadata) -> bool {
    false
}

/// Scan errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path to commit does not exist.
    #[error("{} does not exist", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
    },
    /// A name snap cannot record (not UTF-8, or `.`/`..` in a recorded path).
    #[error("cannot record {}: snap records UTF-8 names only", path.display())]
    InvalidPath {
        /// The path.
        path: PathBuf,
    },
    /// A device, socket or FIFO.
    #[error("cannot record {}: only regular files, directories and symlinks are supported", path.display())]
    Unsupported {
        /// The path.
        path: PathBuf,
    },
    /// `-C FILE .`: the root must be a directory.
    #[error("{} is not a directory, so its contents cannot be the snapshot's root", path.display())]
    RootNotDir {
        /// The path.
        path: PathBuf,
    },
    /// Two paths recorded under one name.
    #[error("two paths would be recorded as `{path}`")]
    Conflict {
        /// The recorded path.
        path: String,
    },
    /// An I/O error.
    #[error("{}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    fn paths(entries: &[ScanEntry]) -> Vec<&str> {
        entries.iter().map(|e| e.path.as_str()).collect()
    }

    #[test]
    fn pre_order_sorts_siblings_by_name_bytes_and_synthesizes_parents()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let idx = dir.path().join("build/index");
        std::fs::create_dir_all(idx.join("a"))?;
        std::fs::write(idx.join("a/x"), "x")?;
        std::fs::write(idx.join("a.b"), "ab")?;
        std::fs::create_dir_all(idx.join(".git"))?;
        std::os::unix::fs::symlink("a.b", idx.join("link"))?;
        let entries = scan(
            &[Root {
                recorded: "build/index".into(),
                source: idx.clone(),
            }],
            &[],
        )?;
        assert_eq!(
            paths(&entries),
            [
                "build",
                "build/index",
                "build/index/a",
                "build/index/a/x",
                "build/index/a.b",
                "build/index/link"
            ]
        );
        assert_eq!(entries[0].source, None, "build/ is synthesized");
        assert_eq!(entries[3].parent, Some(2));
        assert_eq!(
            entries[5].kind,
            ScanKind::Symlink {
                target: "a.b".into()
            }
        );
        Ok(())
    }

    #[test]
    fn contents_as_root_and_nested_roots_are_covered() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("d/e"))?;
        std::fs::write(dir.path().join("d/e/f"), "f")?;
        let as_root = scan(
            &[Root {
                recorded: String::new(),
                source: dir.path().join("d"),
            }],
            &[],
        )?;
        assert_eq!(paths(&as_root), ["e", "e/f"]);
        let nested = scan(
            &[
                Root {
                    recorded: "d/e".into(),
                    source: dir.path().join("d/e"),
                },
                Root {
                    recorded: "d".into(),
                    source: dir.path().join("d"),
                },
            ],
            &[],
        )?;
        assert_eq!(paths(&nested), ["d", "d/e", "d/e/f"]);
        Ok(())
    }

    #[test]
    fn missing_paths_and_fifos_are_refused() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let err = scan(
            &[Root {
                recorded: "nope".into(),
                source: dir.path().join("nope"),
            }],
            &[],
        );
        assert!(matches!(err, Err(Error::Missing { .. })));
        let status = std::process::Command::new("mkfifo")
            .arg(dir.path().join("fifo"))
            .status()?;
        assert!(status.success());
        let err = scan(
            &[Root {
                recorded: "fifo".into(),
                source: dir.path().join("fifo"),
            }],
            &[],
        );
        assert!(matches!(err, Err(Error::Unsupported { .. })));
        Ok(())
    }
}
