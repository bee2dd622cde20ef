//! Materializing manifests that are not snap snapshots: ORAS-style artifacts (each layer a
//! file named by its `org.opencontainers.image.title`) and container images (tar layers
//! applied in order, with whiteouts).
//!
//! Everything in a foreign layer is untrusted. Paths are relative, without `..`; nothing is
//! ever written through a symlink (a layer that tries is refused); whiteouts only remove
//! things below the destination; devices and FIFOs are skipped and counted. Every blob is
//! verified against its digest as it streams.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use crate::digest::Digest;
use crate::oci::{Descriptor, ImageManifest};
use crate::store::objects::{self, Objects};
use crate::worktree::restore::RestoreStats;

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

/// Decides how `m` can be materialized: with titles on every layer it is an ORAS-style
/// artifact (each layer a file at its title, whatever its media type — `oras push` labels
/// plain files as tar layers), without any title and only tar layers it is a container image.
///
/// # Errors
/// [`Error::Unsupported`] for anything else (some layers titled, untitled non-tar layers).
pub fn kind(m: &ImageManifest) -> Result<Kind, Error> {
    let layers: Vec<&Descriptor> = m
        .layers
        .iter()
        .filter(|l| l.media_type != crate::oci::MEDIA_TYPE_EMPTY)
        .collect();
    if layers.iter().all(|l| l.title().is_some()) {
        return Ok(Kind::Files);
    }
    if layers
        .iter()
        .all(|l| l.title().is_none() && is_tar_layer(l))
    {
        return Ok(Kind::Image);
    }
    let l = layers
        .iter()
        .find(|l| l.title().is_none() && !is_tar_layer(l))
        .or_else(|| layers.first())
        .expect("a mixed manifest has layers");
    Err(Error::Unsupported {
        reason: format!(
            "layer {} ({}) is neither a titled file nor part of an all-tar image",
            l.digest, l.media_type
        ),
    })
}

fn unpacks(l: &Descriptor) -> bool {
    l.annotations
        .get(ANNOTATION_ORAS_UNPACK)
        .is_some_and(|v| v == "true")
        && is_tar_layer(l)
}

/// A safe relative path: no root, no `..`, not empty.
///
/// # Errors
/// [`Error::UnsafePath`].
pub fn safe_relative(raw: &str) -> Result<PathBuf, Error> {
    let mut out = PathBuf::new();
    for c in Path::new(raw).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir => {}
            _ => {
                return Err(Error::UnsafePath {
                    path: raw.to_owned(),
                });
            }
        }
    }
    if out.as_os_str().is_empty() {
        return Err(Error::UnsafePath {
            path: raw.to_owned(),
        });
    }
    Ok(out)
}

/// Creates every directory of `rel` below `base`, refusing to pass through a symlink or a
/// non-directory.
fn ensure_dirs(base: &Path, rel: &Path, stats: &mut RestoreStats) -> Result<(), Error> {
    let mut p = base.to_owned();
    for c in rel.components() {
        p.push(c);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                return Err(Error::ThroughSymlink {
                    path: rel.display().to_string(),
                });
            }
            Ok(_) => {
                fs::remove_file(&p).map_err(|e| io(&p, e))?;
                fs::create_dir(&p).map_err(|e| io(&p, e))?;
                stats.dirs += 1;
            }
            Err(_) => {
                fs::create_dir(&p).map_err(|e| io(&p, e))?;
                stats.dirs += 1;
            }
        }
    }
    Ok(())
}

/// Removes whatever is at `path` (not following symlinks).
fn remove_any(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).map_err(|e| io(path, e)),
        Ok(_) => fs::remove_file(path).map_err(|e| io(path, e)),
        Err(_) => Ok(()),
    }
}

fn create_file(path: &Path, mode: u32) -> Result<File, Error> {
    remove_any(path)?;
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(mode & 0o777);
    }
    #[cfg(not(unix))]
    let _ = mode;
    o.open(path).map_err(|e| io(path, e))
}

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
        out.write_all(&buf[..k]).map_err(|e| io(out_path, e))?;
        n += k as u64;
    }
    r.finish()?;
    Ok(n)
}

/// Writes each titled layer to `dest/<title>`.
///
/// # Errors
/// [`Error`] for unsafe titles, missing or corrupt blobs, I/O.
pub fn write_files(
    objects: &Objects,
    m: &ImageManifest,
    dest: &Path,
) -> Result<RestoreStats, Error> {
    let mut stats = RestoreStats::default();
    for l in &m.layers {
        let Some(title) = l.title() else { continue };
        if unpacks(l) {
            // A directory pushed by ORAS: its tar holds the directory under its title.
            let single = ImageManifest {
                layers: vec![Descriptor {
                    annotations: std::collections::BTreeMap::new(),
                    ..l.clone()
                }],
                ..m.clone()
            };
            let (s, _) = apply_layers(objects, &single, dest)?;
            stats.files += s.files;
            stats.dirs += s.dirs;
            stats.symlinks += s.symlinks;
            stats.bytes += s.bytes;
            continue;
        }
        let rel = safe_relative(title)?;
        if let Some(parent) = rel.parent() {
            ensure_dirs(dest, parent, &mut stats)?;
        }
        let path = dest.join(&rel);
        let mut f = create_file(&path, 0o666)?;
        stats.bytes += copy_blob(objects, &l.digest, &mut f, &path)?;
        stats.files += 1;
    }
    Ok(stats)
}

/// Applies tar layers in order, with OCI whiteouts.
///
/// # Errors
/// [`Error`] for unsafe paths, writes through symlinks, malformed tars, missing or corrupt
/// blobs, I/O.
pub fn apply_layers(
    objects: &Objects,
    m: &ImageManifest,
    dest: &Path,
) -> Result<(RestoreStats, u64), Error> {
    let mut stats = RestoreStats::default();
    let mut skipped = 0u64;
    for layer in m.layers.iter().filter(|l| is_tar_layer(l)) {
        let reader = objects.open(&layer.digest)?;
        let verifying = VerifyAtEnd {
            inner: Some(reader),
        };
        let decoded = crate::oci::layout::decompressing(verifying).map_err(|e| io(dest, e))?;
        let mut archive = tar::Archive::new(decoded);
        let entries = archive.entries().map_err(|e| bad_tar(layer, &e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| bad_tar(layer, &e))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            if raw.trim_matches('/').trim_start_matches("./").is_empty()
                || raw == "."
                || raw == "./"
            {
                continue; // the root itself
            }
            let rel = safe_relative(&raw)?;
            let name = rel
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let parent = rel.parent().map(Path::to_path_buf).unwrap_or_default();
            // Whiteouts: `.wh..wh..opq` empties its directory, `.wh.NAME` deletes NAME.
            if name == ".wh..wh..opq" {
                ensure_dirs(dest, &parent, &mut stats)?;
                let dir = dest.join(&parent);
                for e in fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
                    let e = e.map_err(|e| io(&dir, e))?;
                    remove_any(&e.path())?;
                }
                continue;
            }
            if let Some(victim) = name.strip_prefix(".wh.") {
                ensure_dirs(dest, &parent, &mut stats)?;
                remove_any(&dest.join(&parent).join(victim))?;
                continue;
            }
            ensure_dirs(dest, &parent, &mut stats)?;
            let path = dest.join(&rel);
            let mode = entry.header().mode().unwrap_or(0o644);
            match entry.header().entry_type() {
                tar::EntryType::Directory => match fs::symlink_metadata(&path) {
                    Ok(m) if m.is_dir() => {}
                    _ => {
                        remove_any(&path)?;
                        fs::create_dir(&path).map_err(|e| io(&path, e))?;
                        stats.dirs += 1;
                    }
                },
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut f = create_file(&path, mode)?;
                    stats.bytes += io::copy(&mut entry, &mut f).map_err(|e| bad_tar(layer, &e))?;
                    stats.files += 1;
                }
                tar::EntryType::Symlink => {
                    let target = entry
                        .link_name()
                        .map_err(|e| bad_tar(layer, &e))?
                        .ok_or_else(|| Error::BadLayer {
                            digest: layer.digest,
                            reason: format!("symlink {raw} has no target"),
                        })?;
                    remove_any(&path)?;
                    symlink(&target, &path).map_err(|e| io(&path, e))?;
                    stats.symlinks += 1;
                }
                tar::EntryType::Link => {
                    let target = entry
                        .link_name()
                        .map_err(|e| bad_tar(layer, &e))?
                        .ok_or_else(|| Error::BadLayer {
                            digest: layer.digest,
                            reason: format!("hard link {raw} has no target"),
                        })?;
                    let target_rel = safe_relative(&target.to_string_lossy())?;
                    if let Some(p) = target_rel.parent() {
                        ensure_dirs(dest, p, &mut stats)?;
                    }
                    let source = dest.join(&target_rel);
                    match fs::symlink_metadata(&source) {
                        Ok(m) if m.is_file() => {}
                        _ => {
                            return Err(Error::BadLayer {
                                digest: layer.digest,
                                reason: format!(
                                    "hard link {raw} points at {}, which is not a file in the image",
                                    target.display()
                                ),
                            });
                        }
                    }
                    remove_any(&path)?;
                    fs::hard_link(&source, &path).map_err(|e| io(&path, e))?;
                    stats.files += 1;
                }
                // PAX and GNU extension headers are consumed by the tar reader.
                tar::EntryType::XGlobalHeader | tar::EntryType::XHeader => {}
                _ => skipped += 1,
            }
        }
        // Drain to the end so the blob's digest is checked even if the tar trailer is missing
        // or the archive carries padding.
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| bad_tar(layer, &e))?;
    }
    Ok((stats, skipped))
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
        let reader = objects.open(&layer.digest)?;
        let decoded = crate::oci::layout::decompressing(VerifyAtEnd {
            inner: Some(reader),
        })
        .map_err(|e| bad_tar(layer, &e))?;
        let mut archive = tar::Archive::new(decoded);
        for entry in archive.entries().map_err(|e| bad_tar(layer, &e))? {
            let entry = entry.map_err(|e| bad_tar(layer, &e))?;
            let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let path = raw
                .trim_start_matches("./")
                .trim_start_matches('/')
                .to_owned();
            if path.is_empty() || path == "." {
                continue;
            }
            let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
            let h = entry.header();
            let kind = match h.entry_type() {
                _ if name.starts_with(".wh.") => "whiteout",
                tar::EntryType::Directory => "dir",
                tar::EntryType::Regular | tar::EntryType::Continuous => "file",
                tar::EntryType::Symlink => "symlink",
                tar::EntryType::Link => "hardlink",
                _ => "other",
            };
            let e = LayerEntry {
                layer: i,
                path: path.trim_end_matches('/').to_owned(),
                kind: kind.to_owned(),
                size: h.size().unwrap_or(0),
                mode: h.mode().unwrap_or(0),
                target: entry
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|t| t.to_string_lossy().into_owned()),
            };
            each(&e).map_err(|source| Error::Io {
                path: PathBuf::from(&e.path),
                source,
            })?;
        }
        let mut rest = archive.into_inner();
        io::copy(&mut rest, &mut io::sink()).map_err(|e| bad_tar(layer, &e))?;
    }
    Ok(())
}

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

fn bad_tar(layer: &Descriptor, e: &io::Error) -> Error {
    Error::BadLayer {
        digest: layer.digest,
        reason: e.to_string(),
    }
}

#[cfg(unix)]
fn symlink(target: &Path, path: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, path)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _path: &Path) -> io::Result<()> {
    Err(io::Error::other("symlinks are supported on Unix only"))
}

fn io(path: &Path, source: io::Error) -> Error {
    Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// Unpacking errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A manifest snap cannot turn into files.
    #[error("cannot restore this artifact: {reason}")]
    Unsupported {
        /// Why.
        reason: String,
    },
    /// A title or tar path that would escape the destination.
    #[error("refusing the unsafe path `{path}`")]
    UnsafePath {
        /// The path.
        path: String,
    },
    /// A layer that writes below a symlink.
    #[error("refusing to write `{path}` through a symlink")]
    ThroughSymlink {
        /// The path.
        path: String,
    },
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
    #[error("{}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths_are_refused() {
        for bad in ["/etc/passwd", "../x", "a/../../x", "", ".", "a/.."] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
        assert_eq!(safe_relative("./a/b").ok(), Some(PathBuf::from("a/b")));
    }
}
