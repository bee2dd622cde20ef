//! `snap ls` and `snap cat`: what a snapshot (or an imported image or artifact) holds, and one
//! file's bytes, read from the store and verified.
//!
//! A snap snapshot lists its trees; an artifact its titled files (untitled layers as
//! `blobs/sha256/<hex>`); an image every entry of its layers; an index its manifests.

use std::io::Write;

use crate::digest::Digest;
use crate::object::{EntryKind, Tree};
use crate::oci::{Descriptor, ImageManifest};
use crate::ops::Error;
use crate::snapshot::{self, Artifact, Snapshot};
use crate::store::Store;
use crate::worktree::checkout::unpack::{self, Kind};

pub use unpack::{LayerEntry, UNTITLED_DIR};

/// Files up to this size are read and verified whole before [`cat`] writes a byte of them.
pub const VERIFY_FIRST_LIMIT: u64 = 64 << 20;

/// What to list.
#[derive(Clone, Debug, Default)]
pub struct LsOptions {
    /// The snapshot, image, artifact or index.
    pub rev: String,
    /// A directory or file inside it (empty: the root).
    pub path: String,
    /// Everything below `path`, not only its entries.
    pub recursive: bool,
}

/// One `snap ls --json` record: a file, directory or symlink.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LsEntry {
    /// The path from the root.
    pub path: String,
    /// `file`, `dir` or `symlink`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A file's size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// A file's or directory's digest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// A file's executable bit.
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub executable: bool,
    /// A symlink's target.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The layer's media type, for a file of an image or artifact.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub media_type: Option<String>,
}

/// One thing [`ls`] lists, in order.
#[derive(Debug)]
pub enum Listed<'a> {
    /// An entry of a snapshot or a file of an artifact; `name` is what a listing shows (the
    /// entry's name, or its path when listing recursively).
    Entry {
        /// The entry.
        entry: LsEntry,
        /// Its name in a listing.
        name: String,
    },
    /// An entry of an image's layers.
    Layer(&'a LayerEntry),
    /// A manifest an index lists.
    Manifest(&'a Descriptor),
}

/// Lists what `opts.rev` holds below `opts.path`, handing each item to `each` as it is read
/// (a listing of a million files is never held whole).
///
/// # Errors
/// `NotFound` for an unknown revision or a path the snapshot does not hold; store errors;
/// what `each` returns.
pub fn ls(
    store: &Store,
    opts: &LsOptions,
    each: &mut dyn FnMut(Listed<'_>) -> std::io::Result<()>,
) -> Result<(), Error> {
    let id = crate::rev::resolve(store, &opts.rev)?;
    let snap = match Artifact::load(store, &id)? {
        Artifact::Snapshot(s) => s,
        Artifact::Manifest(m) => return ls_foreign(store, m.manifest(), &opts.path, each),
        Artifact::Index(i) => {
            for d in &i.index().manifests {
                each(Listed::Manifest(d)).map_err(io)?;
            }
            return Ok(());
        }
    };
    let kind = lookup(store, &snap, &id, &opts.path)?;
    let base = opts.path.trim_matches('/').to_owned();
    match &kind {
        EntryKind::Dir { digest } => list(store, digest, &base, opts.recursive, each),
        other => each(Listed::Entry {
            entry: entry(base.clone(), other),
            name: base,
        })
        .map_err(io),
    }
}

/// Writes the file `path` of `rev` to `out`: a snapshot's file, an artifact's file (a title,
/// or `blobs/sha256/<hex>` for an untitled layer), an image's config or layer by blob path.
/// Files up to [`VERIFY_FIRST_LIMIT`] are verified before a byte is written; larger ones
/// stream and fail at the end if their digest does not match.
///
/// # Errors
/// `NotFound` for an unknown revision or path; `InvalidInput` for a path that is not a file
/// or an index (which holds no files); `Corrupt` for damaged bytes; what writing hits.
pub fn cat(store: &Store, rev: &str, path: &str, out: &mut dyn Write) -> Result<(), Error> {
    let id = crate::rev::resolve(store, rev)?;
    let (digest, size) = match Artifact::load(store, &id)? {
        Artifact::Snapshot(snap) => match lookup(store, &snap, &id, path)? {
            EntryKind::File { digest, size, .. } => (digest, size),
            other => {
                return Err(Error::NotAFile {
                    path: path.to_owned(),
                    kind: other.type_name(),
                });
            }
        },
        Artifact::Manifest(m) => foreign_blob(m.manifest(), path, &id, rev)?,
        Artifact::Index(_) => {
            return Err(Error::IndexHoldsNoFiles {
                index: id,
                rev: rev.to_owned(),
            });
        }
    };
    if size <= VERIFY_FIRST_LIMIT {
        let bytes = store.objects.read(&digest, size)?;
        out.write_all(&bytes).map_err(io)?;
        return out.flush().map_err(io);
    }
    let mut reader = store.objects.open(&digest)?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = std::io::Read::read(&mut reader, &mut buf).map_err(|e| reader.error(e))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).map_err(io)?;
    }
    out.flush().map_err(io)?;
    reader.finish()?;
    Ok(())
}

fn io(source: std::io::Error) -> Error {
    Error::Io {
        op: "writing",
        path: "standard output".into(),
        source,
    }
}

fn lookup(store: &Store, snap: &Snapshot, id: &Digest, path: &str) -> Result<EntryKind, Error> {
    snapshot::lookup(store, &snap.root(), path)?.ok_or_else(|| Error::PathNotInSnapshot {
        path: path.to_owned(),
        snapshot: *id,
    })
}

fn entry(path: String, kind: &EntryKind) -> LsEntry {
    let mut e = LsEntry {
        path,
        kind: kind.type_name().to_owned(),
        size: None,
        digest: None,
        executable: false,
        target: None,
        media_type: None,
    };
    match kind {
        EntryKind::File {
            size,
            digest,
            executable,
        } => {
            e.size = Some(*size);
            e.digest = Some(*digest);
            e.executable = *executable;
        }
        EntryKind::Dir { digest } => e.digest = Some(*digest),
        EntryKind::Symlink { target } => e.target = Some(target.clone()),
    }
    e
}

fn list(
    store: &Store,
    tree: &Digest,
    prefix: &str,
    recursive: bool,
    each: &mut dyn FnMut(Listed<'_>) -> std::io::Result<()>,
) -> Result<(), Error> {
    let tree: Tree = snapshot::read_tree(store, tree)?;
    for e in tree.entries() {
        let path = if prefix.is_empty() {
            e.name.to_string()
        } else {
            format!("{prefix}/{}", e.name)
        };
        let name = if recursive {
            path.clone()
        } else {
            e.name.to_string()
        };
        each(Listed::Entry {
            entry: entry(path.clone(), &e.kind),
            name,
        })
        .map_err(io)?;
        if recursive && let EntryKind::Dir { digest } = &e.kind {
            list(store, digest, &path, true, each)?;
        }
    }
    Ok(())
}

/// The blob `path` names in a foreign manifest `id` (see [`cat`]).
fn foreign_blob(
    m: &ImageManifest,
    path: &str,
    id: &Digest,
    rev: &str,
) -> Result<(Digest, u64), Error> {
    let wanted = path.trim_matches('/');
    if unpack::kind(m) == Kind::Files {
        for (p, l) in unpack::artifact_files(m)? {
            if p.to_string() == wanted {
                return Ok((l.digest, l.size));
            }
        }
    }
    let blob = std::iter::once(&m.config).chain(&m.layers).find(|d| {
        wanted
            .strip_prefix(unpack::UNTITLED_DIR)
            .and_then(|r| r.strip_prefix('/'))
            == Some(d.digest.hex().as_str())
    });
    match blob {
        Some(d) => Ok((d.digest, d.size)),
        None if unpack::kind(m) == Kind::Image => Err(Error::NotABlobOfImage {
            path: path.to_owned(),
            image: *id,
        }),
        None => Err(Error::PathNotInArtifact {
            path: path.to_owned(),
            artifact: *id,
            rev: rev.to_owned(),
        }),
    }
}

/// Lists a foreign manifest: an artifact's titled files, or every entry of an image's layers
/// (with the layer it comes from), below `path`.
fn ls_foreign(
    store: &Store,
    m: &ImageManifest,
    path: &str,
    each: &mut dyn FnMut(Listed<'_>) -> std::io::Result<()>,
) -> Result<(), Error> {
    let prefix = path.trim_matches('/');
    let under = |p: &str| prefix.is_empty() || p == prefix || p.starts_with(&format!("{prefix}/"));
    match unpack::kind(m) {
        Kind::Files => {
            for (path, l) in unpack::artifact_files(m)? {
                let path = path.to_string();
                if !under(&path) {
                    continue;
                }
                let entry = LsEntry {
                    path: path.clone(),
                    kind: "file".into(),
                    size: Some(l.size),
                    digest: Some(l.digest),
                    executable: false,
                    target: None,
                    media_type: Some(l.media_type.clone()),
                };
                each(Listed::Entry { entry, name: path }).map_err(io)?;
            }
        }
        Kind::Image => {
            unpack::list_layers(&store.objects, m, |e: &LayerEntry| {
                if under(&e.path) {
                    each(Listed::Layer(e))
                } else {
                    Ok(())
                }
            })?;
        }
    }
    Ok(())
}
