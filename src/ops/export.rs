//! `snap export --oci`: write snapshots as an OCI image layout — a directory or a tar archive
//! (plain, gzip or zstd) — that skopeo, oras, umoci and registries understand.
//!
//! Every blob is streamed from the store exactly as stored (packs are the layers, so nothing is
//! re-encoded) and verified on the way; memory stays bounded and nothing is staged as a second
//! full copy. Archives are byte-reproducible: fixed entry order and tar headers, gzip without
//! name or time, zstd at level 3 with two workers whatever the machine.
//!
//! Output appears atomically: a directory is built beside its final name and renamed, an
//! archive is written to a temp file in the destination directory and renamed. A corrupt object
//! stops the export and leaves nothing behind.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::fs::AtomicFile;
use crate::oci::layout::{self, DirWriter, Format, ImageIndex, LayoutWriter, RawIndex, TarWriter};
use crate::oci::{Descriptor, MEDIA_TYPE_INDEX, Node};
use crate::ops::{Error, transfer};
use crate::rev;
use crate::snapshot::Snapshot;
use crate::store::Store;

/// zstd level of `.tar.zst` exports.
pub const ARCHIVE_ZSTD_LEVEL: i32 = 3;
/// zstd workers of `.tar.zst` exports: fixed, so the bytes do not depend on the machine.
pub const ARCHIVE_ZSTD_WORKERS: u32 = 2;

/// What to export where.
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// Snapshots (`SNAP` syntax); a ref name becomes the entry's tag.
    pub revs: Vec<String>,
    /// The directory or archive to write.
    pub out: PathBuf,
    /// The format; by default from `out`'s name.
    pub format: Option<Format>,
    /// Also export every stored ancestor (untagged), so lineage survives the trip.
    pub with_history: bool,
}

/// One manifest in the exported index.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ExportedManifest {
    /// The manifest (snapshot id).
    pub digest: Digest,
    /// Its tag (`org.opencontainers.image.ref.name`), if any.
    pub tag: Option<String>,
}

/// What an export wrote.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ExportOutcome {
    /// The directory or archive written.
    pub out: PathBuf,
    /// Its format.
    pub format: Format,
    /// The index's entries, in order.
    pub manifests: Vec<ExportedManifest>,
    /// Blobs written.
    pub blobs: u64,
    /// Bytes of blobs written.
    pub bytes: u64,
}

/// Exports snapshots as an OCI image layout.
///
/// # Errors
/// `NotFound` for an unknown revision or a missing object, `Corrupt` for a damaged one (nothing
/// is written then), `InvalidInput` for a non-empty output directory, `Io` otherwise.
pub fn export(store: &Store, opts: &ExportOptions) -> Result<ExportOutcome, Error> {
    export_with(store, opts, &crate::ops::NoProgress)
}

/// [`export`], reporting each blob written to `progress`.
///
/// # Errors
/// As [`export`].
pub fn export_with(
    store: &Store,
    opts: &ExportOptions,
    progress: &dyn crate::ops::Progress,
) -> Result<ExportOutcome, Error> {
    if opts.revs.is_empty() {
        return Err(Error::NothingToExport);
    }
    let format = opts.format.unwrap_or_else(|| {
        Format::from_name(&opts.out.file_name().unwrap_or_default().to_string_lossy())
    });

    let entries = entries(store, opts)?;

    // Everything they reach (images' indexes and child manifests too), every blob once.
    let roots: Vec<Digest> = entries.iter().map(|(d, _)| *d).collect();
    let graph = transfer::closure(store, &roots, &mut BTreeSet::new())?;
    let mut blobs: BTreeMap<Digest, u64> = graph.blobs.iter().copied().collect();
    let mut nodes: BTreeMap<Digest, &Node> = BTreeMap::new();
    for node in &graph.nodes {
        blobs.insert(node.digest(), node.bytes().len() as u64);
        nodes.insert(node.digest(), node);
    }
    let index = index_of(&entries, &nodes);

    // Never write a layout snap itself would refuse to import (import.md, limits).
    if index.bytes().len() as u64 > layout::MAX_INDEX_BYTES {
        return Err(Error::IndexTooLarge {
            size: index.bytes().len() as u64,
            entries: entries.len(),
            limit: layout::MAX_INDEX_BYTES,
        });
    }

    let bytes = blobs.values().sum();
    progress.begin("Exporting", bytes, blobs.len() as u64);
    let written = match format {
        Format::Dir => write_dir(&opts.out, |w| {
            write_layout(
                BlobSource::Store(store),
                &blobs,
                &index,
                w,
                &opts.out,
                progress,
            )
        }),
        _ => write_archive(&opts.out, format, |w| {
            write_layout(
                BlobSource::Store(store),
                &blobs,
                &index,
                w,
                &opts.out,
                progress,
            )
        }),
    };
    progress.end();
    written?;
    Ok(ExportOutcome {
        out: opts.out.clone(),
        format,
        manifests: entries
            .into_iter()
            .map(|(digest, tag)| ExportedManifest { digest, tag })
            .collect(),
        blobs: blobs.len() as u64,
        bytes,
    })
}

/// The index's entries, in order: the snapshots named (each with the ref name it was named
/// by), then their stored ancestors (`with_history`), then the referrers of all of them
/// (signatures, attached artifacts) and of those, untagged — an import recognises referrers
/// by their `subject` (OCI mapping §7).
fn entries(store: &Store, opts: &ExportOptions) -> Result<Vec<(Digest, Option<String>)>, Error> {
    let mut entries: Vec<(Digest, Option<String>)> = Vec::new();
    for r in &opts.revs {
        let id = rev::resolve(store, r)?;
        let tag = store
            .refs
            .find(r)
            .ok()
            .flatten()
            .map(|(n, _)| n.short().to_owned());
        match entries.iter_mut().find(|(d, _)| *d == id) {
            None => entries.push((id, tag)),
            Some(e) if e.1.is_none() => e.1 = tag,
            Some(_) => {}
        }
    }
    if opts.with_history {
        let mut listed: BTreeSet<Digest> = entries.iter().map(|(d, _)| *d).collect();
        let mut queue: Vec<Digest> = listed.iter().copied().collect();
        while let Some(id) = queue.pop() {
            let Ok(snap) = Snapshot::load(store, &id) else {
                continue;
            };
            for p in &snap.config.parents {
                if store.objects.contains(p) && listed.insert(*p) {
                    entries.push((*p, None));
                    queue.push(*p);
                }
            }
        }
    }

    let tops: Vec<Digest> = entries.iter().map(|(d, _)| *d).collect();
    for r in crate::ops::referrers::referrers_of(store, &tops)? {
        if !entries.iter().any(|(d, _)| *d == r.digest) {
            entries.push((r.digest, None));
        }
    }
    Ok(entries)
}

/// `index.json` for `entries`: each entry's descriptor (with its `artifactType` when it is a
/// referrer) and its ref name.
fn index_of(entries: &[(Digest, Option<String>)], nodes: &BTreeMap<Digest, &Node>) -> RawIndex {
    RawIndex::encode(ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
        manifests: entries
            .iter()
            .map(|(id, tag)| {
                let node = nodes
                    .get(id)
                    .expect("the closure holds every root, or failed");
                let mut d = Descriptor::new(&node.media_type(), *id, node.bytes().len() as u64);
                if let Node::Manifest(m) = node
                    && m.manifest().subject.is_some()
                {
                    d.artifact_type = Some(crate::oci::referrers::artifact_type(m.manifest()));
                }
                if let Some(t) = tag {
                    d.annotations
                        .insert(layout::ANNOTATION_REF_NAME.to_owned(), t.clone());
                }
                d
            })
            .collect(),
        annotations: BTreeMap::new(),
    })
}

/// Copies what a registry reference names into an OCI layout, without a store: a
/// registry→layout transfer (`snap export --oci REGISTRY/REPO[:TAG|@DIGEST]`). Every node and
/// blob is checked against its digest as it arrives (staged beside OUT), then written as
/// [`export`] writes; the entry is tagged with the reference's tag. `with_history` also
/// copies the ancestor snapshots the registry holds (a push with history), untagged.
///
/// # Errors
/// `Registry` errors, content that is neither a manifest nor an index, the transfer's bounds;
/// as [`export`] for the output.
pub fn export_remote(
    remote: &crate::registry::RemoteRef,
    opts: &ExportOptions,
    client: &crate::registry::ClientOptions,
    progress: &dyn crate::ops::Progress,
) -> Result<ExportOutcome, Error> {
    let format = opts.format.unwrap_or_else(|| {
        Format::from_name(&opts.out.file_name().unwrap_or_default().to_string_lossy())
    });
    if format == Format::Dir
        && let Ok(mut rd) = std::fs::read_dir(&opts.out)
        && rd.next().is_some()
    {
        return Err(Error::OutputNotEmpty {
            path: opts.out.clone(),
        });
    }
    let at = remote.or_latest();
    let connection = crate::registry::Client::new(&at, client.clone())?;
    connection.login(false)?;
    let parent = parent_dir(&opts.out);
    crate::fs::create_dir_all(&parent).map_err(|source| Error::Io {
        op: "creating directory",
        path: parent.clone(),
        source,
    })?;
    let staging = tempfile::Builder::new()
        .prefix(crate::fs::TEMP_PREFIX)
        .tempdir_in(&parent)
        .map_err(|source| Error::Io {
            op: "creating a temp directory in",
            path: parent.clone(),
            source,
        })?;
    let mut fetched = crate::ops::pull::fetch(
        &connection,
        &at,
        if opts.with_history { None } else { Some(0) },
        staging,
        None,
        client.jobs,
        progress,
    )?;
    // The referrers of every entry (signatures, attachments), as a local export writes them:
    // untagged entries with their artifactType (OCI mapping §7.3).
    let mut referrers = Vec::new();
    for d in std::iter::once(fetched.top.digest)
        .chain(fetched.ancestors.iter().map(|a| a.digest))
        .collect::<Vec<_>>()
    {
        referrers.extend(crate::ops::pull::fetch_referrers(
            &connection,
            d,
            &mut fetched.source,
            None,
        )?);
    }
    let tag = if at.digest.is_none() {
        at.tag.clone()
    } else {
        None
    };
    let mut top = fetched.top.clone();
    if let Some(t) = &tag {
        top.annotations
            .insert(layout::ANNOTATION_REF_NAME.to_owned(), t.clone());
    }
    let manifests: Vec<ExportedManifest> = std::iter::once(ExportedManifest {
        digest: top.digest,
        tag,
    })
    .chain(fetched.ancestors.iter().map(|d| ExportedManifest {
        digest: d.digest,
        tag: None,
    }))
    .collect();
    let index = RawIndex::encode(ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
        manifests: std::iter::once(top)
            .chain(fetched.ancestors.iter().cloned())
            .chain(referrers.iter().map(|r| {
                let mut d = r.entry.clone();
                d.artifact_type = Some(crate::oci::referrers::artifact_type(r.manifest.manifest()));
                d
            }))
            .collect(),
        annotations: BTreeMap::new(),
    });
    let blobs: BTreeMap<Digest, u64> = fetched.source.blobs().collect();
    let bytes = blobs.values().sum();
    let from = BlobSource::Staged(&fetched.source);
    progress.begin("Exporting", bytes, blobs.len() as u64);
    let written = match format {
        Format::Dir => write_dir(&opts.out, |w| {
            write_layout(from, &blobs, &index, w, &opts.out, progress)
        }),
        _ => write_archive(&opts.out, format, |w| {
            write_layout(from, &blobs, &index, w, &opts.out, progress)
        }),
    };
    progress.end();
    written?;
    Ok(ExportOutcome {
        out: opts.out.clone(),
        format,
        manifests,
        blobs: blobs.len() as u64,
        bytes,
    })
}

/// Writes every blob, verified as it is read from the store, then `index.json`, into the
/// layout at `out`.
/// Where the blobs of a layout being written come from.
#[derive(Clone, Copy)]
enum BlobSource<'a> {
    /// The store: every object verified as it streams.
    Store(&'a Store),
    /// Blobs a registry transfer staged, each checked against its digest as it arrived.
    Staged(&'a transfer::Source),
}

fn write_layout(
    from: BlobSource<'_>,
    blobs: &BTreeMap<Digest, u64>,
    index: &RawIndex,
    mut w: Box<dyn LayoutWriter + '_>,
    out: &Path,
    progress: &dyn crate::ops::Progress,
) -> Result<(), Error> {
    let io_err = |source| Error::Io {
        op: "writing",
        path: out.to_owned(),
        source,
    };
    for (digest, size) in blobs {
        match from {
            BlobSource::Store(store) => {
                let mut r = store.objects.open(digest)?;
                w.blob(digest, *size, &mut r).map_err(|e| match e.kind() {
                    io::ErrorKind::InvalidData => Error::Objects(r.error(e)),
                    _ => io_err(e),
                })?;
                r.finish()?;
            }
            BlobSource::Staged(source) => {
                let mut r = io::BufReader::with_capacity(1 << 20, source.open(digest)?);
                w.blob(digest, *size, &mut r).map_err(io_err)?;
            }
        }
        progress.advance(*size, 1);
    }
    w.finish(index.bytes()).map_err(io_err)
}

fn write_archive(
    out: &Path,
    format: Format,
    write: impl FnOnce(Box<dyn LayoutWriter + '_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let dir = parent_dir(out);
    let io_err = |source| Error::Io {
        op: "writing",
        path: out.to_owned(),
        source,
    };
    let mut tmp = AtomicFile::new_in(&dir).map_err(|source| Error::Io {
        op: "creating a temp file in",
        path: dir.clone(),
        source,
    })?;
    {
        let file = BufWriter::with_capacity(1 << 20, tmp.file());
        let sink: Box<dyn Write + '_> = match format {
            Format::TarGz => Box::new(
                flate2::GzBuilder::new()
                    .mtime(0)
                    .operating_system(255)
                    .write(file, flate2::Compression::fast()),
            ),
            Format::TarZst => {
                let mut enc =
                    zstd::stream::write::Encoder::new(file, ARCHIVE_ZSTD_LEVEL).map_err(io_err)?;
                enc.multithread(ARCHIVE_ZSTD_WORKERS).map_err(io_err)?;
                enc.include_checksum(true).map_err(io_err)?;
                Box::new(enc.auto_finish())
            }
            _ => Box::new(file),
        };
        // Finishing the writer flushes the tar stream; dropping the encoder then ends the
        // compressed stream.
        write(Box::new(TarWriter::new(sink).map_err(io_err)?))?;
    }
    tmp.persist_replace(out, Some(0o644))
        .map_err(|source| Error::Io {
            op: "renaming into place",
            path: out.to_owned(),
            source,
        })?;
    crate::fs::sync_dir(&dir).map_err(|source| Error::Io {
        op: "syncing directory",
        path: dir.clone(),
        source,
    })
}

fn write_dir(
    out: &Path,
    write: impl FnOnce(Box<dyn LayoutWriter + '_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let io_at = |op: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { op, path, source }
    };
    if let Ok(mut rd) = std::fs::read_dir(out)
        && rd.next().is_some()
    {
        return Err(Error::OutputNotEmpty {
            path: out.to_owned(),
        });
    }
    let parent = parent_dir(out);
    crate::fs::create_dir_all(&parent).map_err(io_at("creating directory", &parent))?;
    let stage = tempfile::Builder::new()
        .prefix(crate::fs::TEMP_PREFIX)
        .tempdir_in(&parent)
        .map_err(io_at("creating a temp directory in", &parent))?;
    write(Box::new(
        DirWriter::new(stage.path()).map_err(io_at("writing", out))?,
    ))?;
    std::fs::set_permissions(
        stage.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(io_at("setting the mode of", stage.path()))?;
    if out.exists() {
        // An empty directory: replace it (rename over an empty directory is atomic).
        std::fs::remove_dir(out).map_err(io_at("replacing the empty directory", out))?;
    }
    let staged = stage.keep();
    std::fs::rename(&staged, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        Error::Io {
            op: "renaming into place",
            path: out.to_owned(),
            source: e,
        }
    })?;
    crate::fs::sync_dir(&parent).map_err(io_at("syncing directory", &parent))
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}
