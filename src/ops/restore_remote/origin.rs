//! Where a restore without a store reads a snapshot: a registry, or an OCI image layout read in
//! place — a directory, or an archive staged first (issue 17: "partial restore from a registry
//! (and from a layout)").
//!
//! Either way every blob is checked against its descriptor's size and digest before anything
//! uses it, and a layout's blobs must be regular files (a symlink in a layout is refused, never
//! followed).

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};
use crate::oci::Descriptor;
use crate::oci::MAX_MANIFEST_BYTES;
use crate::oci::layout::{self, RawIndex};
use crate::ops::Error;
use crate::ops::import::{archive, layout_files};
use crate::ops::transfer::tee;
use crate::pack::PackIndex;
use crate::registry::{Client, ClientOptions, RemoteRef};
use crate::store::Store;

/// A snapshot to restore without a store.
#[derive(Clone, Debug)]
pub enum RestoreSource {
    /// A registry reference (`REGISTRY/REPO[:TAG|@DIGEST]`).
    Registry(RemoteRef),
    /// An OCI image layout: a directory (`oci:DIR[:NAME]`) or an archive, `.tar`, `.tar.gz`,
    /// `.tar.zst` (`oci-archive:FILE[:NAME]`), and the name of one of its entries
    /// (`org.opencontainers.image.ref.name`, or the tag at its end); without one, its only
    /// entry, or the one named `latest`.
    Layout {
        /// The directory or archive.
        path: PathBuf,
        /// The entry's name.
        name: Option<String>,
    },
}

impl RestoreSource {
    /// A layout spelled as skopeo spells it, `oci:PATH[:NAME]` or `oci-archive:PATH[:NAME]`
    /// (PATH relative to `cwd`); `None` for anything else. The name is what follows the last
    /// `:` when no `/` follows it.
    #[must_use]
    pub fn layout(spec: &str, cwd: &Path) -> Option<RestoreSource> {
        let rest = spec
            .strip_prefix("oci:")
            .or_else(|| spec.strip_prefix("oci-archive:"))?;
        let (path, name) = match rest.rsplit_once(':') {
            Some((path, name)) if !name.contains('/') => {
                (path, Some(name.to_owned()).filter(|n| !n.is_empty()))
            }
            _ => (rest, None),
        };
        (!path.is_empty()).then(|| RestoreSource::Layout {
            path: cwd.join(path),
            name,
        })
    }
}

/// An open source of blobs.
pub(super) enum Origin {
    /// A registry, logged in, and the reference to restore.
    Registry(Box<Client>, RemoteRef),
    /// A layout: its blobs and its index.
    Layout {
        /// The directory of blobs named by their hex digests: the layout's `blobs/sha256`,
        /// or where an archive's were staged.
        blobs: PathBuf,
        /// Its `index.json`.
        index: RawIndex,
        /// The entry to restore.
        name: Option<String>,
        /// An archive's staged blobs, removed when done.
        _staged: Option<tempfile::TempDir>,
    },
}

impl Origin {
    /// Opens `source`: logs in to a registry, or reads a layout's index (staging an archive's
    /// blobs into `store`, a temp store).
    pub(super) fn open(
        source: &RestoreSource,
        client: &ClientOptions,
        store: &Store,
    ) -> Result<Origin, Error> {
        match source {
            RestoreSource::Registry(at) => {
                let c = Client::new(at, client.clone())?;
                c.login(false)?;
                Ok(Origin::Registry(Box::new(c), at.or_latest()))
            }
            RestoreSource::Layout { path, name } => {
                let meta = std::fs::metadata(path)
                    .map_err(|_| Error::PathNotFound { path: path.clone() })?;
                let (oci_layout, index, blobs, staged) = if meta.is_dir() {
                    let (oci_layout, index) = layout_files(path)?;
                    (oci_layout, index, path.join("blobs/sha256"), None)
                } else {
                    let s = archive::stage(store, path, meta.len(), None)?;
                    let dir = s.dir.path().to_owned();
                    (s.oci_layout, s.index, dir, Some(s.dir))
                };
                if let Some(bytes) = &oci_layout {
                    layout::check_oci_layout(bytes)?;
                }
                Ok(Origin::Layout {
                    blobs,
                    index: RawIndex::from_bytes(index)?,
                    name: name.clone(),
                    _staged: staged,
                })
            }
        }
    }

    /// The manifest to restore: its bytes (checked) and digest.
    pub(super) fn manifest(&self) -> Result<(Vec<u8>, Digest), Error> {
        match self {
            Origin::Registry(c, at) => Ok(c.get_manifest(at)?),
            Origin::Layout { index, name, .. } => {
                let entry = pick(&index.index().manifests, name.as_deref())?;
                if entry.size > MAX_MANIFEST_BYTES {
                    return Err(Error::BadLayout {
                        reason: format!(
                            "manifest {} is {} bytes, more than {MAX_MANIFEST_BYTES}",
                            entry.digest, entry.size
                        ),
                    });
                }
                let mut bytes = Vec::new();
                self.copy(&entry.digest, entry.size, &mut bytes)?;
                Ok((bytes, entry.digest))
            }
        }
    }

    /// Blob `d` of `size` bytes into `out`, checked.
    pub(super) fn copy(&self, d: &Digest, size: u64, out: &mut dyn Write) -> Result<(), Error> {
        match self {
            Origin::Registry(c, _) => {
                c.download(d, size, out)?;
                Ok(())
            }
            Origin::Layout { blobs, .. } => {
                let path = blobs.join(d.hex());
                let file = open_blob(&path, size)?;
                let mut r = HashingReader::new(file.take(size));
                let copied = io::copy(&mut r, out).map_err(|source| Error::Io {
                    op: "reading",
                    path: path.clone(),
                    source,
                })?;
                let (actual, _, _) = r.finish();
                if copied != size || actual != *d {
                    return Err(Error::BadLayout {
                        reason: format!(
                            "blob {d} is not what its descriptor says ({copied} bytes hashing \
                             to {actual})"
                        ),
                    });
                }
                Ok(())
            }
        }
    }

    /// Blob `d` into the new file `path`, checked; a registry's packs are indexed as they
    /// arrive (`scan`), a layout's are left for the caller to scan.
    pub(super) fn fetch(
        &self,
        d: &Digest,
        size: u64,
        path: &Path,
        scan: bool,
    ) -> Result<Option<PackIndex>, Error> {
        match self {
            Origin::Registry(c, _) => tee::download(c, path, d, size, scan),
            Origin::Layout { .. } => {
                let io = |source| Error::Io {
                    op: "writing",
                    path: path.to_owned(),
                    source,
                };
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(path)
                    .map_err(io)?;
                let mut out = io::BufWriter::with_capacity(1 << 20, f);
                self.copy(d, size, &mut out)?;
                out.flush().map_err(io)?;
                Ok(None)
            }
        }
    }

    /// HTTP requests made (none for a layout).
    pub(super) fn requests(&self) -> u64 {
        match self {
            Origin::Registry(c, _) => c.requests(),
            Origin::Layout { .. } => 0,
        }
    }
}

/// Opens a layout's blob: a regular file of exactly `size` bytes.
fn open_blob(path: &Path, size: u64) -> Result<File, Error> {
    let m = std::fs::symlink_metadata(path).map_err(|_| Error::BadLayout {
        reason: format!("the layout has no blob {}", path.display()),
    })?;
    if !m.is_file() || m.len() != size {
        return Err(Error::BadLayout {
            reason: format!("{} is not a regular file of {size} bytes", path.display()),
        });
    }
    File::open(path).map_err(|source| Error::Io {
        op: "opening",
        path: path.to_owned(),
        source,
    })
}

/// The index entry to restore: the one `name` names (whole, or as the tag at the end of an
/// image reference, as OMMX writes them), else the only one, else the one named `latest`.
fn pick<'a>(entries: &'a [Descriptor], name: Option<&str>) -> Result<&'a Descriptor, Error> {
    let named = |n: &str| {
        entries.iter().find(|e| {
            layout::ref_name(e).is_some_and(|r| {
                r == n
                    || r.rsplit_once(':').is_some_and(|(repo, tag)| {
                        tag == n && !tag.contains('/') && !repo.is_empty()
                    })
            })
        })
    };
    let found = match name {
        Some(n) => named(n),
        None if entries.len() == 1 => entries.first(),
        None => named(crate::oci::LATEST),
    };
    found.ok_or_else(|| {
        let names: Vec<String> = entries.iter().filter_map(layout::ref_name).collect();
        Error::BadLayout {
            reason: match name {
                Some(n) => format!(
                    "it has no entry named `{n}` (it has: {})",
                    if names.is_empty() {
                        "no named entries".to_owned()
                    } else {
                        names.join(", ")
                    }
                ),
                None => format!(
                    "it has {} entries and none is `latest`: name one (it has: {})",
                    entries.len(),
                    names.join(", ")
                ),
            },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(spec: &str) -> Option<(PathBuf, Option<String>)> {
        match RestoreSource::layout(spec, Path::new("/w"))? {
            RestoreSource::Layout { path, name } => Some((path, name)),
            RestoreSource::Registry(_) => None,
        }
    }

    #[test]
    fn a_layout_is_spelled_as_skopeo_spells_it() {
        let at = |p: &str, n: Option<&str>| Some((PathBuf::from(p), n.map(str::to_owned)));
        assert_eq!(layout("oci:lay"), at("/w/lay", None));
        assert_eq!(layout("oci:lay:v1"), at("/w/lay", Some("v1")));
        assert_eq!(
            layout("oci-archive:/x/a.tar.zst:v1"),
            at("/x/a.tar.zst", Some("v1"))
        );
        assert_eq!(
            layout("oci:a:b/c"),
            at("/w/a:b/c", None),
            "a `:` inside the path"
        );
        assert_eq!(layout("oci:lay:"), at("/w/lay", None));
        for not in ["lay", "oci:", "oci::v1", "docker://x", "127.0.0.1:5000/a:b"] {
            assert_eq!(layout(not), None, "{not}");
        }
    }

    #[test]
    fn an_entry_is_picked_by_name_by_its_tag_or_for_being_alone_or_latest() {
        let entry = |name: Option<&str>, seed: &[u8]| {
            let mut d = Descriptor::new(
                "application/vnd.oci.image.manifest.v1+json",
                Digest::of(seed),
                1,
            );
            if let Some(n) = name {
                d.annotations
                    .insert(layout::ANNOTATION_REF_NAME.into(), n.into());
            }
            d
        };
        let one = [entry(None, b"a")];
        assert_eq!(pick(&one, None).ok().map(|d| d.digest), Some(one[0].digest));
        let many = [
            entry(Some("v1"), b"a"),
            entry(Some("localhost:5000/ommx/lp:v2"), b"b"),
            entry(Some("latest"), b"c"),
        ];
        let digest = |name| pick(&many, name).ok().map(|d| d.digest);
        assert_eq!(digest(Some("v1")), Some(many[0].digest));
        assert_eq!(
            digest(Some("v2")),
            Some(many[1].digest),
            "the tag of a full name"
        );
        assert_eq!(digest(None), Some(many[2].digest), "latest");
        let err = pick(&many[..2], None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("none is `latest`"), "{err}");
        let err = pick(&many, Some("v3"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("no entry named `v3`"), "{err}");
    }
}
