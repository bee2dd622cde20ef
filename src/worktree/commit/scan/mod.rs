//! Walking the paths to commit into a flat, pre-ordered list of entries.
//!
//! The order is the tar member order of the OCI mapping: depth-first, a directory before its
//! contents, siblings sorted by the bytes of their names. Each recorded path's missing parent
//! directories are synthesized. Symlinks are recorded, never followed. The store directory, and
//! entries any filesystem takes for `.git` or `.store` ([`is_reserved`]), are never recorded.
//!
//! Exclusions ([`Filter`]): ignore files in gitignore syntax — `.snapignore`, and `.gitignore`
//! when asked — in every scanned directory and in the roots' ancestors up to the store root,
//! plus patterns given on the command line. The paths given to commit are never excluded
//! themselves, only what is found below them. An ignored directory is not entered.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::object::EntryName;

mod rules;

use rules::{Rules, rules_for_root};

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

/// What `lstat` said about a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i128,
    /// Inode number.
    pub ino: u64,
    /// Device.
    pub dev: u64,
}

impl FileStat {
    /// From `lstat` metadata.
    #[must_use]
    pub fn of(meta: &std::fs::Metadata) -> FileStat {
        use std::os::unix::fs::MetadataExt;
        FileStat {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ctime_ns: i128::from(meta.ctime()) * 1_000_000_000 + i128::from(meta.ctime_nsec()),
            ino: meta.ino(),
            dev: meta.dev(),
        }
    }
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
    pub stat: Option<FileStat>,
}

/// A path to record: where it is on disk and the path it is recorded under.
#[derive(Clone, Debug)]
pub struct Root {
    /// `/`-separated recorded path; empty to record the directory's contents as the root.
    pub recorded: String,
    /// The file or directory on disk.
    pub source: PathBuf,
}

/// What a scan leaves out.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Directories never entered (the store itself).
    pub skip: Vec<PathBuf>,
    /// Names of ignore files to honour (`.snapignore`, and `.gitignore` when asked).
    pub ignore_files: Vec<String>,
    /// Patterns in gitignore syntax, anchored at `base`; they take precedence over files.
    pub excludes: Vec<String>,
    /// The store root: where `excludes` are anchored, and how far up ignore files are looked
    /// for above each root.
    pub base: PathBuf,
}

/// The ignore file every commit honours.
pub const SNAPIGNORE: &str = ".snapignore";

impl Filter {
    /// What a commit leaves out: the store, what `.snapignore` says (and `.gitignore`, read
    /// first so `.snapignore` has the last word, when `gitignore`), and `excludes` anchored at
    /// `base`.
    #[must_use]
    pub fn for_commit(
        store_dir: PathBuf,
        base: &Path,
        gitignore: bool,
        excludes: &[String],
    ) -> Filter {
        let mut ignore_files = vec![SNAPIGNORE.to_owned()];
        if gitignore {
            ignore_files.insert(0, ".gitignore".to_owned());
        }
        Filter {
            skip: vec![store_dir],
            ignore_files,
            excludes: excludes.to_vec(),
            base: base.to_owned(),
        }
    }
}

/// [`scan_filtered`] with only the store left out.
///
/// # Errors
/// As [`scan_filtered`].
pub fn scan(roots: &[Root], skip: &[PathBuf]) -> Result<Vec<ScanEntry>, Error> {
    scan_filtered(
        roots,
        &Filter {
            skip: skip.to_vec(),
            ..Filter::default()
        },
    )
}

/// Walks `roots` and returns every entry in tar member order, leaving out what `filter` says.
///
/// # Errors
/// [`Error`] naming the path: missing, unreadable, not UTF-8, an unsupported file type, two
/// roots recorded under the same path, or an ignore pattern or exclude that does not parse.
pub fn scan_filtered(roots: &[Root], filter: &Filter) -> Result<Vec<ScanEntry>, Error> {
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
            if is_reserved(c) {
                return Err(Error::Reserved {
                    path: root.source.clone(),
                    name: (*c).to_owned(),
                });
            }
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

    let mut filter = filter.clone();
    filter.skip = filter
        .skip
        .iter()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.clone()))
        .collect();
    let filter = &filter;
    let mut out = Vec::new();

    fn visit(
        node: &Node,
        prefix: &str,
        parent: Option<usize>,
        filter: &Filter,
        out: &mut Vec<ScanEntry>,
    ) -> Result<(), Error> {
        if let Some(src) = &node.source {
            let rules = rules_for_root(src, filter)?;
            return walk_dir_or_file(src, prefix, parent, filter, &rules, out, true);
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
                visit(child, &path, Some(idx), filter, out)?;
            } else {
                visit(child, &path, parent, filter, out)?;
            }
        }
        Ok(())
    }

    visit(&top, "", None, filter, &mut out)?;
    Ok(out)
}

/// Records `src` under `path` (or, if `path` is empty, records its contents as the root).
fn walk_dir_or_file(
    src: &Path,
    path: &str,
    parent: Option<usize>,
    filter: &Filter,
    rules: &Rules,
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
                op: "reading the metadata of",
                path: src.to_owned(),
                source,
            }
        }
    })?;
    let scanned = if path.is_empty() {
        // The contents become the root: only a directory can be the root.
        if !meta.is_dir() {
            return Err(Error::RootNotDir {
                path: src.to_owned(),
            });
        }
        scan_dir(src, path, filter, rules)?
    } else {
        vec![scan_one(
            src.to_owned(),
            &meta,
            path.to_owned(),
            filter,
            rules,
        )?]
    };
    flatten(scanned, parent, out);
    Ok(())
}

/// One scanned entry and, for a directory, what is in it, in order.
struct Scanned {
    entry: ScanEntry,
    below: Vec<Scanned>,
}

/// Appends `items` and everything below them to `out` in pre-order (a directory, then its
/// contents, then its next sibling), setting each entry's parent index. Every entry is moved
/// once, whatever the depth.
fn flatten(items: Vec<Scanned>, parent: Option<usize>, out: &mut Vec<ScanEntry>) {
    for Scanned { mut entry, below } in items {
        let idx = out.len();
        entry.parent = parent;
        out.push(entry);
        flatten(below, Some(idx), out);
    }
}

/// The entry for `src` (already `lstat`ed as `meta`, by the parent's directory entry, which
/// stats relative to the open directory instead of walking the whole path again), recorded as
/// `path`; a directory is scanned too.
fn scan_one(
    src: PathBuf,
    meta: &std::fs::Metadata,
    path: String,
    filter: &Filter,
    rules: &Rules,
) -> Result<Scanned, Error> {
    let ft = meta.file_type();
    let kind = if ft.is_dir() {
        ScanKind::Dir
    } else if ft.is_file() {
        ScanKind::File {
            size: meta.len(),
            executable: is_executable(meta),
        }
    } else if ft.is_symlink() {
        let target = std::fs::read_link(&src).map_err(|source| Error::Io {
            op: "reading the link",
            path: src.clone(),
            source,
        })?;
        let target = target
            .into_os_string()
            .into_string()
            .map_err(|_| Error::InvalidPath { path: src.clone() })?;
        ScanKind::Symlink { target }
    } else {
        return Err(Error::Unsupported { path: src });
    };
    let name = path.rsplit('/').next().unwrap_or(&path);
    let name = EntryName::new(name).map_err(|_| Error::InvalidPath { path: src.clone() })?;
    let below = if kind == ScanKind::Dir {
        scan_dir(&src, &path, filter, rules)?
    } else {
        Vec::new()
    };
    Ok(Scanned {
        entry: ScanEntry {
            path,
            name,
            parent: None,
            stat: matches!(kind, ScanKind::File { .. }).then(|| FileStat::of(meta)),
            source: Some(src),
            kind,
        },
        below,
    })
}

/// The entries of directory `src` (recorded as `path`), sorted by name, each with what is
/// below it. Every directory's entries are stated and scanned in parallel, so both cores stay
/// busy however the tree is shaped; small directories stay on one thread.
fn scan_dir(src: &Path, path: &str, filter: &Filter, rules: &Rules) -> Result<Vec<Scanned>, Error> {
    let rd = std::fs::read_dir(src).map_err(|source| Error::Io {
        op: "listing",
        path: src.to_owned(),
        source,
    })?;
    let mut children = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|source| Error::Io {
            op: "listing",
            path: src.to_owned(),
            source,
        })?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| Error::InvalidPath { path: entry.path() })?;
        if is_reserved(&name) {
            continue;
        }
        children.push((name, entry));
    }
    if !filter.skip.is_empty() {
        children.retain(|(name, _)| !filter.skip.contains(&src.join(name)));
    }
    children.sort_unstable_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let rules = &rules.enter(src, children.iter().map(|c| c.0.as_str()), filter)?;
    children
        .into_par_iter()
        .with_min_len(MIN_PER_THREAD)
        .filter_map(|(name, entry)| {
            let child = entry.path();
            // fstatat relative to the open directory: no path walk per file.
            let meta = match entry.metadata() {
                Ok(m) => m,
                Err(source) => {
                    return Some(Err(Error::Io {
                        op: "reading the metadata of",
                        path: child,
                        source,
                    }));
                }
            };
            if !rules.is_empty() && rules.excludes(&child, meta.is_dir()) {
                return None;
            }
            Some(scan_one(child, &meta, join(path, &name), filter, rules))
        })
        .collect()
}

/// Entries of one directory handled by one thread before another may take some: a file costs
/// about one `fstatat`, so splitting finer costs more than it gains.
const MIN_PER_THREAD: usize = 1;

/// Whether an entry named `name` is never recorded: a name some filesystem takes for `.git` or
/// `.store` (any letter case, NTFS and HFS+ spellings: [`crate::object::path::is_reserved`]).
/// Restore never writes such a path, so a snapshot holding one could not be restored; and a
/// store inside a committed directory is snap's own state, not content.
#[must_use]
pub fn is_reserved(name: &str) -> bool {
    crate::object::path::is_reserved(name)
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_owned()
    } else {
        let mut s = String::with_capacity(prefix.len() + 1 + name.len());
        s.push_str(prefix);
        s.push('/');
        s.push_str(name);
        s
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
    /// A path to commit whose recorded path has a `.git` or `.store` component.
    #[error(
        "cannot record {}: `{name}` is a spelling of `.git` or `.store`, which are never recorded, since restore never writes one",
        path.display()
    )]
    Reserved {
        /// The path given.
        path: PathBuf,
        /// The reserved component.
        name: String,
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
    /// An ignore file with a pattern that does not parse.
    #[error("{}: {reason}", path.display())]
    BadIgnore {
        /// The ignore file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// An `--exclude` pattern that does not parse.
    #[error("--exclude `{pattern}`: {reason}")]
    BadExclude {
        /// The pattern.
        pattern: String,
        /// What is wrong.
        reason: String,
    },
    /// Two paths recorded under one name.
    #[error("two paths would be recorded as `{path}`")]
    Conflict {
        /// The recorded path.
        path: String,
    },
    /// An I/O error.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `listing`, `reading the metadata of`, ….
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
            Error::Missing { .. } => K::NotFound,
            Error::Io { .. } => K::Io,
            _ => K::InvalidInput,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)]
// tests write fixtures directly
mod tests;
