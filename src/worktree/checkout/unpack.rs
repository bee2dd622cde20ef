//! Materializing manifests that are not snap snapshots: ORAS-style artifacts (each layer a
//! file named by its `org.opencontainers.image.title`) and container images (tar layers
//! applied in order, with whiteouts).
//!
//! Everything in a foreign layer is untrusted. Every path — title, entry, hard-link target,
//! whiteout victim — is parsed into an [`EntryPath`] (relative, no `..`) before anything is
//! written, and every write goes through [`Root`] into a staging directory of the image's own
//! (see [`crate::worktree::checkout::restore::assemble`]): nothing is ever written through a symlink (a
//! layer that tries is refused), whiteouts only remove what an earlier layer wrote, and
//! `.git`/`.store` are never written (refused in titles, skipped and counted in layers, as are
//! devices and FIFOs). Every blob is verified against its digest as it streams.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rustix::fs::FileType;

use crate::digest::Digest;
use crate::object::{EntryName, EntryPath};
use crate::oci::{Descriptor, ImageManifest};
use crate::pack::tar::EntryKind as TarKind;
use crate::store::objects::{self, Objects};
use crate::worktree::checkout::dest::{self, DirCache, Guard, Root};
use crate::worktree::checkout::restore::RestoreStats;

/// Tar layer media types snap applies as filesystem layers.
const TAR_LAYERS: &[&str] = &[
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar",
];

/// Whether `d` is a filesystem (tar) layer.
#[must_use]
pub fn is_tar_layer(d: &Descriptor) -> bool {
    TAR_LAYERS.contains(&d.media_type.as_str())
}

/// How a foreign manifest is laid out on disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Every layer is a file named by its title (what `oras push` makes).
    Files,
    /// Every layer is a tar layer (a container image, or an ORAS directory).
    Image,
}

/// ORAS marks a titled tar layer that holds a directory to unpack with this annotation.
pub const ANNOTATION_ORAS_UNPACK: &str = "io.deis.oras.content.unpack";

/// Decides how `m` is materialized: a manifest whose layers are all untitled tar layers is
/// a container image (applied in order); anything else is an artifact, each layer a file —
/// at its title (what `oras push` makes, whatever the media type: ORAS labels plain files as
/// tar layers), or, untitled, at `blobs/sha256/<hex>` (OMMX layers, a config-like blob):
/// see [`artifact_files`].
#[must_use]
pub fn kind(m: &ImageManifest) -> Kind {
    let mut layers = m
        .layers
        .iter()
        .filter(|l| l.media_type != crate::oci::MEDIA_TYPE_EMPTY)
        .peekable();
    if layers.peek().is_some() && layers.all(|l| l.title().is_none() && is_tar_layer(l)) {
        Kind::Image
    } else {
        Kind::Files
    }
}

/// The directory untitled layers of an artifact are written to, as in an OCI image layout.
pub const UNTITLED_DIR: &str = "blobs/sha256";

/// The file each layer of an artifact ([`Kind::Files`]) becomes, in layer order: its title, or
/// `blobs/sha256/<hex>` when it has none; layers of the empty media type are left out (ORAS
/// puts one in manifests without files). A title is checked as any path from outside is
/// (relative, no `..`); titles and blob paths may not equal or lie below one another.
///
/// # Errors
/// [`Error::UnsafePath`] or [`Error::TitleClash`].
pub fn artifact_files(m: &ImageManifest) -> Result<Vec<(EntryPath, &Descriptor)>, Error> {
    let mut files = Vec::new();
    for l in m
        .layers
        .iter()
        .filter(|l| l.media_type != crate::oci::MEDIA_TYPE_EMPTY)
    {
        let path = match l.title() {
            Some(title) => layer_path(title)?.ok_or_else(|| Error::UnsafePath {
                path: title.to_owned(),
            })?,
            None => EntryPath::new(format!("{UNTITLED_DIR}/{}", l.digest.hex()))
                .expect("a hex digest below a fixed directory is a valid path"),
        };
        // The same blob twice under one name is one file.
        if !files
            .iter()
            .any(|(p, d): &(EntryPath, &Descriptor)| *p == path && d.digest == l.digest)
        {
            files.push((path, l));
        }
    }
    let mut paths: Vec<&EntryPath> = files.iter().map(|(p, _)| p).collect();
    paths.sort_by(|a, b| a.components().cmp(b.components()));
    // Sorted by components, a path's descendants follow it directly.
    if let Some(w) = paths.windows(2).find(|w| w[1].starts_with(w[0])) {
        return Err(Error::TitleClash {
            path: w[1].to_string(),
            other: w[0].to_string(),
        });
    }
    Ok(files)
}

fn unpacks(l: &Descriptor) -> bool {
    l.title().is_some()
        && l.annotations
            .get(ANNOTATION_ORAS_UNPACK)
            .is_some_and(|v| v == "true")
        && is_tar_layer(l)
}

/// The path a layer entry or a title names, below the destination: any leading `./` and one
/// trailing `/` are dropped, and what remains must be an [`EntryPath`] (relative, without
/// `..`, empty or `.` components). `None` for the root itself (``, `.`, `./`, `/`).
///
/// # Errors
/// [`Error::UnsafePath`] for anything else (absolute paths, `..`, `a//b`, NUL).
pub fn layer_path(raw: &str) -> Result<Option<EntryPath>, Error> {
    let mut rest = raw;
    while let Some(r) = rest.strip_prefix("./") {
        rest = r;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.is_empty() || rest == "." {
        return Ok(None);
    }
    EntryPath::new(rest)
        .map(Some)
        .map_err(|_| Error::UnsafePath {
            path: raw.to_owned(),
        })
}

/// The whiteout that empties its directory.
const OPAQUE: &str = ".wh..wh..opq";
/// The prefix of a whiteout: `.wh.NAME` removes `NAME`.
const WHITEOUT: &str = ".wh.";

/// Streams a verified blob into `out`.
fn copy_blob(
    objects: &Objects,
    digest: &Digest,
    out: &mut dyn Write,
    out_path: &Path,
) -> Result<u64, Error> {
    let mut r = objects.open(digest)?;
    let mut buf = vec![0u8; 256 << 10];
    let mut n = 0u64;
    loop {
        let k = r.read(&mut buf).map_err(|e| Error::Objects(r.error(e)))?;
        if k == 0 {
            break;
        }
        out.write_all(&buf[..k])
            .map_err(|e| io("writing", out_path, e))?;
        n += k as u64;
    }
    r.finish()?;
    Ok(n)
}

/// Writes each layer of an artifact to its file ([`artifact_files`]: its title, or
/// `blobs/sha256/<hex>`) below the staging directory `stage`. Every path is checked before
/// anything is written: a title that is not a safe relative path, that names a reserved name
/// (`.git`, `.store`) or the store, or that equals or lies below another refuses the whole
/// artifact.
///
/// # Errors
/// [`Error::UnsafePath`], [`Error::TitleClash`], [`Error::Dest`] (refused titles, writes
/// through symlinks, I/O), missing or corrupt blobs.
pub fn write_files(
    objects: &Objects,
    m: &ImageManifest,
    stage: &Root,
    guard: &Guard,
) -> Result<RestoreStats, Error> {
    let titled = artifact_files(m)?;
    for (path, _) in &titled {
        guard.admit(path)?;
    }
    let mut stats = RestoreStats::default();
    for (path, l) in &titled {
        if unpacks(l) {
            // A directory pushed by ORAS: its tar holds the directory under its title.
            apply_tar_layer(objects, l, stage, guard, &mut stats)?;
            continue;
        }
        if let Some(parent) = path.parent() {
            stats.dirs += stage.make_dirs(&parent)?;
        }
        stage.remove(path)?;
        stats.bytes += stage.create(&mut DirCache::default(), path, 0o666, |f, at| {
            copy_blob(objects, &l.digest, f, at)
        })?;
        stats.files += 1;
    }
    Ok(stats)
}

/// Applies tar layers in order, with OCI whiteouts, into the staging directory `stage`
/// (which starts empty: a whiteout removes only what an earlier layer wrote).
///
/// Refused (the whole image): paths that are not safe relative paths (absolute, `..`),
/// whiteouts of `.`/`..`/`` (`.wh.`, `.wh..`, `.wh...`), anything written, removed or linked
/// through a symlink, hard links to something that is not a file of the image. Skipped and
/// counted in [`RestoreStats::skipped`]: devices, FIFOs and other special files, names that
/// are not UTF-8, and every entry, whiteout or hard link whose path (or target) has a
/// reserved name (`.git`, `.store`) or lies in the store.
///
/// # Errors
/// [`Error`] for refused entries, malformed tars, missing or corrupt blobs, I/O.
pub fn apply_layers(
    objects: &Objects,
    m: &ImageManifest,
    stage: &Root,
    guard: &Guard,
) -> Result<RestoreStats, Error> {
    let mut stats = RestoreStats::default();
    for layer in m.layers.iter().filter(|l| is_tar_layer(l)) {
        apply_tar_layer(objects, layer, stage, guard, &mut stats)?;
    }
    Ok(stats)
}

fn apply_tar_layer(
    objects: &Objects,
    layer: &Descriptor,
    stage: &Root,
    guard: &Guard,
    stats: &mut RestoreStats,
) -> Result<(), Error> {
    each_entry(objects, layer, |entry| {
        apply_entry(stage, guard, layer, entry, stats)
    })
}

/// Applies one tar entry (see [`apply_layers`] for what is refused and what skipped).
fn apply_entry(
    stage: &Root,
    guard: &Guard,
    layer: &Descriptor,
    entry: &mut LayerMember<'_>,
    stats: &mut RestoreStats,
) -> Result<(), Error> {
    // PAX and GNU extension records never reach here: the reader applies them to their member.
    let kind = entry.kind();
    let Ok(raw) = String::from_utf8(entry.path_bytes().to_vec()) else {
        stats.skipped += 1;
        return Ok(());
    };
    let Some(path) = layer_path(&raw)? else {
        return Ok(()); // the root itself
    };
    let parent = path.parent();
    let name = path.file_name();
    if name == OPAQUE {
        if parent.as_ref().is_some_and(|p| guard.admit(p).is_err()) {
            stats.skipped += 1;
        } else {
            stage.clear(parent.as_ref())?;
        }
        return Ok(());
    }
    if let Some(victim) = name.strip_prefix(WHITEOUT) {
        // `.wh.`, `.wh..` and `.wh...` name no entry: refused, like `..` in a path.
        let victim = EntryName::new(victim).map_err(|_| Error::UnsafePath { path: raw.clone() })?;
        let target = EntryPath::child(parent.as_ref(), &victim);
        if guard.admit(&target).is_err() {
            stats.skipped += 1;
        } else {
            stage.remove(&target)?;
        }
        return Ok(());
    }
    let supported = !matches!(kind, TarKind::Other(_));
    if !supported || guard.admit(&path).is_err() {
        stats.skipped += 1;
        return Ok(());
    }
    if let Some(p) = &parent {
        stats.dirs += stage.make_dirs(p)?;
    }
    let mut cache = DirCache::default();
    match kind {
        TarKind::Dir => {
            if stage.kind(&mut cache, &path)? != Some(FileType::Directory) {
                stage.remove(&path)?;
                stage.mkdir(&mut cache, &path)?;
                stats.dirs += 1;
            }
        }
        TarKind::Symlink => {
            let target = entry
                .link_bytes()
                .filter(|t| !t.is_empty())
                .map(|t| {
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(t).to_owned()
                })
                .ok_or_else(|| Error::BadLayer {
                    digest: layer.digest,
                    reason: format!("symlink {raw} has no target"),
                })?;
            stage.remove(&path)?;
            stage.symlink(&mut cache, &path, &target)?;
            stats.symlinks += 1;
        }
        TarKind::HardLink => {
            let not_a_file = |target: &str| Error::BadLayer {
                digest: layer.digest,
                reason: format!(
                    "hard link {raw} points at {target}, which is not a file in the image"
                ),
            };
            let raw_target = entry
                .link_bytes()
                .map(|t| String::from_utf8_lossy(t).into_owned())
                .unwrap_or_default();
            let Some(target) = layer_path(&raw_target)? else {
                return Err(not_a_file(&raw_target));
            };
            if guard.admit(&target).is_err() {
                stats.skipped += 1;
                return Ok(());
            }
            if target == path {
                return Err(not_a_file(&raw_target));
            }
            stage.remove(&path)?;
            if !stage.hard_link(&target, &path)? {
                return Err(not_a_file(&raw_target));
            }
            stats.files += 1;
        }
        TarKind::File | TarKind::Other(_) => {
            let mode = entry.mode();
            stage.remove(&path)?;
            stats.bytes += stage.create(&mut cache, &path, mode, |f, _| {
                io::copy(entry, f).map_err(|e| bad_tar(layer, &e))
            })?;
            stats.files += 1;
        }
    }
    Ok(())
}

/// The one place tar layers are read: the blob is verified as it streams (at its end),
/// decompressed, each entry handed to `each` in order, and the rest drained so the digest is
/// checked even if the tar trailer is missing or the archive carries padding.
///
/// Layers go through snap's bounded tar reader ([`crate::pack::tar::Reader`]): an extension
/// record (PAX header, GNU long name) larger than it reads is refused before it is read.
fn each_entry(
    objects: &Objects,
    layer: &Descriptor,
    mut each: impl FnMut(&mut LayerMember<'_>) -> Result<(), Error>,
) -> Result<(), Error> {
    let reader = objects.open(&layer.digest)?;
    let decoded: Box<dyn Read> = crate::oci::layout::decompressing(VerifyAtEnd {
        inner: Some(reader),
    })
    .map_err(|e| bad_tar(layer, &e))?;
    let mut archive = crate::pack::tar::Reader::new(decoded);
    while let Some(mut entry) = archive.next_entry().map_err(|e| bad_tar(layer, &e))? {
        each(&mut entry)?;
    }
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(|e| bad_tar(layer, &e))?;
    Ok(())
}

/// One entry of an image layer, as `snap ls` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerEntry {
    /// Index of the layer in the manifest.
    pub layer: usize,
    /// The path in the layer, as written there (normalized: no leading `./` or `/`).
    pub path: String,
    /// `file`, `dir`, `symlink`, `hardlink`, `whiteout` or `other`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Size of a file.
    pub size: u64,
    /// Permission bits.
    pub mode: u32,
    /// Target of a link.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
}

/// Calls `each` for every entry of every tar layer of `m`, in order. Blobs are verified.
///
/// # Errors
/// [`Error`] for unreadable layers, or what `each` returns (as I/O).
pub fn list_layers(
    objects: &Objects,
    m: &ImageManifest,
    mut each: impl FnMut(&LayerEntry) -> io::Result<()>,
) -> Result<(), Error> {
    for (i, layer) in m.layers.iter().enumerate().filter(|(_, l)| is_tar_layer(l)) {
        each_entry(objects, layer, |entry| {
            let raw = String::from_utf8_lossy(entry.path_bytes()).into_owned();
            let path = raw
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_owned();
            if path.is_empty() || path == "." {
                return Ok(());
            }
            let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            let kind = match entry.kind() {
                _ if name.starts_with(WHITEOUT) => "whiteout",
                TarKind::Dir => "dir",
                TarKind::File => "file",
                TarKind::Symlink => "symlink",
                TarKind::HardLink => "hardlink",
                TarKind::Other(_) => "other",
            };
            let e = LayerEntry {
                layer: i,
                path: path.trim_end_matches('/').to_owned(),
                kind: kind.to_owned(),
                size: entry.size(),
                mode: entry.mode(),
                target: entry
                    .link_bytes()
                    .map(|t| String::from_utf8_lossy(t).into_owned()),
            };
            each(&e).map_err(|source| Error::Io {
                op: "listing the entry",
                path: PathBuf::from(&e.path),
                source,
            })
        })?;
    }
    Ok(())
}

/// A member of a layer, as the bounded tar reader gives it.
type LayerMember<'a> = crate::pack::tar::Entry<'a, Box<dyn Read>>;

/// Verifies the blob when the decompressor reaches its end.
struct VerifyAtEnd {
    inner: Option<objects::ObjectReader>,
}

impl Read for VerifyAtEnd {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(r) = self.inner.as_mut() else {
            return Ok(0);
        };
        let n = r.read(buf)?;
        if n == 0 && !buf.is_empty() {
            let r = self.inner.take().expect("checked just above");
            r.finish()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        }
        Ok(n)
    }
}

fn bad_tar(layer: &Descriptor, e: &dyn std::fmt::Display) -> Error {
    Error::BadLayer {
        digest: layer.digest,
        reason: e.to_string(),
    }
}

fn io(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Unpacking errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A title or tar path that would escape the destination.
    #[error("refusing the unsafe path `{path}`")]
    UnsafePath {
        /// The path.
        path: String,
    },
    /// Two titles of an artifact that name one path, or one below the other.
    #[error("refusing the artifact: the title `{path}` clashes with the title `{other}`")]
    TitleClash {
        /// The later title, in path order.
        path: String,
        /// The title it equals or lies below.
        other: String,
    },
    /// A path refused, or a filesystem operation that failed, in the staging directory.
    #[error(transparent)]
    Dest(#[from] dest::Error),
    /// A layer that is not a readable tar (or fails its digest).
    #[error("layer {digest} cannot be applied: {reason}")]
    BadLayer {
        /// The layer.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// An object is missing or corrupt.
    #[error(transparent)]
    Objects(#[from] objects::Error),
    /// An I/O error.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `opening`, `writing`, `syncing`, ….
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::Dest(d) => d.kind(),
            Error::Objects(o) => o.kind(),
            Error::Io { .. } => K::Io,
            _ => K::InvalidInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in [
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a/..",
            "a//b",
            "./../x",
            "a/./b",
        ] {
            assert!(layer_path(bad).is_err(), "{bad:?}");
        }
        for root in ["", ".", "./", "/"] {
            assert!(matches!(layer_path(root), Ok(None)), "{root:?} is the root");
        }
        assert_eq!(
            layer_path("./a/b/").ok().flatten().map(|p| p.to_string()),
            Some("a/b".to_owned())
        );
    }
}
