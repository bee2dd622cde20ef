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
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::fs::AtomicFile;
use crate::oci::layout::{self, Format, ImageIndex, RawIndex, TarWriter};
use crate::oci::{Descriptor, MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, RawManifest};
use crate::ops::Error;
use crate::rev;
use crate::snapshot::{MAX_METADATA_BYTES, Snapshot};
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

    // Which manifests, in index order: the named ones, then their ancestors.
    let mut entries: Vec<(RawManifest, Option<String>)> = Vec::new();
    let mut seen = BTreeSet::new();
    for r in &opts.revs {
        let id = rev::resolve(store, r)?;
        let tag = store
            .refs
            .find(r)
            .ok()
            .flatten()
            .map(|(n, _)| n.short().to_owned());
        if seen.insert(id) {
            entries.push((load_manifest(store, &id)?, tag));
        } else if let Some(t) = tag
            && let Some(e) = entries.iter_mut().find(|(m, _)| m.digest() == id)
            && e.1.is_none()
        {
            e.1 = Some(t);
        }
    }
    if opts.with_history {
        let mut queue: Vec<Digest> = entries.iter().map(|(m, _)| m.digest()).collect();
        while let Some(id) = queue.pop() {
            let Ok(snap) = Snapshot::load(store, &id) else {
                continue;
            };
            for p in &snap.config.parents {
                if store.objects.contains(p) && seen.insert(*p) {
                    entries.push((load_manifest(store, p)?, None));
                    queue.push(*p);
                }
            }
        }
    }

    // Every blob: the manifests themselves, their configs and layers.
    let mut blobs: BTreeMap<Digest, u64> = BTreeMap::new();
    for (m, _) in &entries {
        blobs.insert(m.digest(), m.bytes().len() as u64);
        let v = m.manifest();
        for d in std::iter::once(&v.config).chain(&v.layers) {
            if !store.objects.contains(&d.digest) {
                return Err(Error::Objects(crate::store::objects::Error::NotFound(
                    d.digest,
                )));
            }
            blobs.insert(d.digest, d.size);
        }
    }
    let index = RawIndex::encode(ImageIndex {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_INDEX.to_owned()),
        manifests: entries
            .iter()
            .map(|(m, tag)| {
                let mut d = Descriptor::new(
                    m.manifest()
                        .media_type
                        .as_deref()
                        .unwrap_or(MEDIA_TYPE_MANIFEST),
                    m.digest(),
                    m.bytes().len() as u64,
                );
                if let Some(t) = tag {
                    d.annotations
                        .insert(layout::ANNOTATION_REF_NAME.to_owned(), t.clone());
                }
                d
            })
            .collect(),
        annotations: BTreeMap::new(),
    });

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
        Format::Dir => write_dir(store, &blobs, &index, &opts.out, progress),
        _ => write_archive(store, &blobs, &index, &opts.out, format, progress),
    };
    progress.end();
    written?;
    Ok(ExportOutcome {
        out: opts.out.clone(),
        format,
        manifests: entries
            .into_iter()
            .map(|(m, tag)| ExportedManifest {
                digest: m.digest(),
                tag,
            })
            .collect(),
        blobs: blobs.len() as u64,
        bytes,
    })
}

fn load_manifest(store: &Store, id: &Digest) -> Result<RawManifest, Error> {
    let bytes = store.objects.read(id, MAX_METADATA_BYTES)?;
    RawManifest::from_bytes(bytes).map_err(|e| Error::NotAManifest {
        digest: *id,
        reason: e.to_string(),
    })
}

/// Copies one blob, verified, into `out`.
fn copy_blob(store: &Store, digest: &Digest, out: &mut dyn Write) -> Result<u64, Error> {
    let mut r = store.objects.open(digest)?;
    let n = io::copy(&mut r, out).map_err(|e| match e.kind() {
        io::ErrorKind::InvalidData => Error::Objects(r.error(e)),
        _ => Error::Io {
            path: r.path().to_owned(),
            source: e,
        },
    })?;
    r.finish()?;
    Ok(n)
}

fn write_archive(
    store: &Store,
    blobs: &BTreeMap<Digest, u64>,
    index: &RawIndex,
    out: &Path,
    format: Format,
    progress: &dyn crate::ops::Progress,
) -> Result<(), Error> {
    let dir = parent_dir(out);
    let io_err = |source| Error::Io {
        path: out.to_owned(),
        source,
    };
    let mut tmp = AtomicFile::new_in(&dir).map_err(io_err)?;
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
        let mut w = TarWriter::new(sink).map_err(io_err)?;
        for (digest, size) in blobs {
            let mut r = store.objects.open(digest)?;
            w.blob(digest, *size, &mut r).map_err(|e| match e.kind() {
                io::ErrorKind::InvalidData => Error::Objects(r.error(e)),
                _ => io_err(e),
            })?;
            r.finish()?;
            progress.advance(*size, 1);
        }
        let sink = w.finish(index.bytes()).map_err(io_err)?;
        // Dropping the encoder finishes the compressed stream; errors surface on flush above.
        drop(sink);
    }
    tmp.persist_replace(out, Some(0o644)).map_err(io_err)?;
    crate::fs::sync_dir(&dir).map_err(|source| Error::Io {
        path: dir.clone(),
        source,
    })
}

fn write_dir(
    store: &Store,
    blobs: &BTreeMap<Digest, u64>,
    index: &RawIndex,
    out: &Path,
    progress: &dyn crate::ops::Progress,
) -> Result<(), Error> {
    let io_at = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Io { path, source }
    };
    if let Ok(mut rd) = std::fs::read_dir(out)
        && rd.next().is_some()
    {
        return Err(Error::OutputNotEmpty {
            path: out.to_owned(),
        });
    }
    let parent = parent_dir(out);
    crate::fs::create_dir_all(&parent).map_err(io_at(&parent))?;
    let stage = tempfile::Builder::new()
        .prefix(crate::fs::TEMP_PREFIX)
        .tempdir_in(&parent)
        .map_err(io_at(&parent))?;
    let blob_dir = stage.path().join("blobs").join("sha256");
    crate::fs::create_dir_all(&blob_dir).map_err(io_at(&blob_dir))?;
    for digest in blobs.keys() {
        let path = blob_dir.join(digest.hex());
        let mut f = BufWriter::new(create_file(&path)?);
        let n = copy_blob(store, digest, &mut f)?;
        progress.advance(n, 1);
        f.flush().map_err(io_at(&path))?;
        f.get_ref().sync_all().map_err(io_at(&path))?;
    }
    for (name, bytes) in [
        (layout::OCI_LAYOUT, layout::OCI_LAYOUT_BYTES),
        (layout::INDEX_JSON, index.bytes()),
    ] {
        let path = stage.path().join(name);
        let mut f = create_file(&path)?;
        f.write_all(bytes).map_err(io_at(&path))?;
        f.sync_all().map_err(io_at(&path))?;
    }
    for d in [
        blob_dir.as_path(),
        &stage.path().join("blobs"),
        stage.path(),
    ] {
        crate::fs::sync_dir(d).map_err(io_at(d))?;
    }
    std::fs::set_permissions(
        stage.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .map_err(io_at(stage.path()))?;
    if out.exists() {
        // An empty directory: replace it (rename over an empty directory is atomic).
        std::fs::remove_dir(out).map_err(io_at(out))?;
    }
    let staged = stage.keep();
    std::fs::rename(&staged, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staged);
        Error::Io {
            path: out.to_owned(),
            source: e,
        }
    })?;
    crate::fs::sync_dir(&parent).map_err(io_at(&parent))
}

fn create_file(path: &Path) -> Result<File, Error> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
}

fn parent_dir(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}
