//! OCI image layouts (image-spec `image-layout.md`): the `oci-layout` file, `index.json`
//! and `blobs/<alg>/<hex>`, as a directory or a tar archive (plain, gzip or zstd).
//!
//! * [`RawIndex`] pairs an image index's exact bytes with its digest and parsed view, like
//!   [`super::RawManifest`].
//! * [`TarWriter`] writes a layout archive deterministically: entries in a fixed order
//!   (`oci-layout`, `blobs/`, `blobs/sha256/`, the blobs sorted by digest, `index.json`), ustar
//!   headers with mtime 0, uid/gid 0, no user names, mode 0644 (0755 for directories).
//! * [`read_tar`] streams a layout archive through snap's bounded tar reader, accepting only
//!   `oci-layout`, `index.json`, `blobs/sha256/<hex>` and their directories (with or without a
//!   `./` prefix); links, devices, absolute or `..` paths, duplicates and unknown entries are
//!   refused. Every blob is hashed while it streams and must match its name; what the archive
//!   may expand to is bounded ([`Expansion`]), and the caller decides blob by blob what is
//!   written ([`BlobSink`]).
//!
//! This module reads and writes bytes; it does not know the store.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::oci::{Descriptor, MEDIA_TYPE_INDEX};
use crate::pack::tar::{self, MemberKind};

mod reader;

pub use reader::{
    BlobSink, Expansion, MAX_ENTRIES, MAX_OCI_LAYOUT_BYTES, Staging, TarLayout, read_tar, sink,
};

/// The `oci-layout` file's name.
pub const OCI_LAYOUT: &str = "oci-layout";
/// The `index.json` file's name.
pub const INDEX_JSON: &str = "index.json";
/// The bytes snap writes into `oci-layout`.
pub const OCI_LAYOUT_BYTES: &[u8] = br#"{"imageLayoutVersion":"1.0.0"}"#;
/// The annotation that names an index entry (a tag).
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// Largest `index.json` accepted: what registries accept for an index. Parsed JSON takes
/// several times its size in memory, so this bounds what reading one costs.
pub const MAX_INDEX_BYTES: u64 = 4 << 20;

/// The typed view of an image index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    pub schema_version: u32,
    /// `application/vnd.oci.image.index.v1+json` (optional in foreign indexes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The manifests it lists (required: without it, any JSON object would be an empty index).
    pub manifests: Vec<Descriptor>,
    /// Index annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// An index's exact bytes, their digest and the parsed view.
#[derive(Clone, Debug)]
pub struct RawIndex {
    bytes: Vec<u8>,
    digest: Digest,
    index: ImageIndex,
}

impl RawIndex {
    /// Hashes and parses index bytes.
    ///
    /// # Errors
    /// [`Error::Malformed`] if the bytes are not an image index.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, Error> {
        let digest = Digest::of(&bytes);
        let fields = crate::oci::Fields::of(&bytes);
        if fields.config || fields.layers {
            return Err(Error::Malformed {
                what: format!("image index {digest}"),
                reason: format!(
                    "it has `{}`, so it is an image manifest, not an image index",
                    if fields.config { "config" } else { "layers" }
                ),
            });
        }
        let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
            what: format!("image index {digest}"),
            reason: e.to_string(),
        })?;
        if index.schema_version != 2 {
            return Err(Error::Malformed {
                what: format!("image index {digest}"),
                reason: format!("schemaVersion {} is not 2", index.schema_version),
            });
        }
        if let Some(mt) = &index.media_type
            && mt != MEDIA_TYPE_INDEX
            && mt != crate::oci::MEDIA_TYPE_DOCKER_LIST
        {
            return Err(Error::Malformed {
                what: format!("image index {digest}"),
                reason: format!("mediaType `{mt}` is not an image index"),
            });
        }
        Ok(RawIndex {
            bytes,
            digest,
            index,
        })
    }

    /// Serializes `index` once, compactly, in the fixed field order.
    #[must_use]
    pub fn encode(index: ImageIndex) -> Self {
        let bytes =
            serde_json::to_vec(&index).expect("serializing plain structs to memory cannot fail");
        RawIndex {
            digest: Digest::of(&bytes),
            bytes,
            index,
        }
    }

    /// The exact bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Their digest.
    #[must_use]
    pub fn digest(&self) -> Digest {
        self.digest
    }

    /// The parsed view.
    #[must_use]
    pub fn index(&self) -> &ImageIndex {
        &self.index
    }
}

/// Checks an `oci-layout` file.
///
/// # Errors
/// [`Error::Malformed`] unless it is JSON with `imageLayoutVersion` `1.0.0`.
pub fn check_oci_layout(bytes: &[u8]) -> Result<(), Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Layout {
        image_layout_version: String,
    }
    let l: Layout = serde_json::from_slice(bytes).map_err(|e| Error::Malformed {
        what: OCI_LAYOUT.into(),
        reason: e.to_string(),
    })?;
    if l.image_layout_version != "1.0.0" {
        return Err(Error::Malformed {
            what: OCI_LAYOUT.into(),
            reason: format!(
                "imageLayoutVersion `{}` is not 1.0.0",
                l.image_layout_version
            ),
        });
    }
    Ok(())
}

/// The ref an index entry names: its `org.opencontainers.image.ref.name`, whole — a tag
/// (`v1`) or a full image reference (`localhost:5000/ommx/lp:v1`), so that an export writes
/// back the name the other tool wrote. `None` for untagged entries and names that pin a
/// digest (`repo@sha256:…`).
#[must_use]
pub fn ref_name(d: &Descriptor) -> Option<String> {
    let name = d.annotations.get(ANNOTATION_REF_NAME)?;
    (!name.is_empty() && !name.contains('@')).then(|| name.clone())
}

/// How a layout is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// A directory.
    Dir,
    /// An uncompressed tar archive.
    Tar,
    /// A gzip-compressed tar archive.
    #[serde(rename = "tar.gz")]
    TarGz,
    /// A zstd-compressed tar archive.
    #[serde(rename = "tar.zst")]
    TarZst,
}

impl Format {
    /// The format a path's name suggests (`.tar` or `.ommx` — OMMX's archives are plain
    /// layout tars —, `.tar.gz`/`.tgz`, `.tar.zst`, else a directory).
    #[must_use]
    pub fn from_name(name: &str) -> Format {
        let n = name.to_ascii_lowercase();
        if n.ends_with(".tar.gz") || n.ends_with(".tgz") {
            Format::TarGz
        } else if n.ends_with(".tar.zst") || n.ends_with(".tzst") {
            Format::TarZst
        } else if n.ends_with(".tar") || n.ends_with(".ommx") {
            Format::Tar
        } else {
            Format::Dir
        }
    }
}

/// Writes a layout archive in snap's fixed order.
pub struct TarWriter<W: Write> {
    out: W,
    last: Option<Digest>,
}

impl<W: Write> TarWriter<W> {
    /// Starts an archive: the `oci-layout` file and the blob directories.
    ///
    /// # Errors
    /// Any write error.
    pub fn new(mut out: W) -> io::Result<Self> {
        write_member(&mut out, OCI_LAYOUT, OCI_LAYOUT_BYTES)?;
        out.write_all(&tar::header("blobs", MemberKind::Dir, None))?;
        out.write_all(&tar::header("blobs/sha256", MemberKind::Dir, None))?;
        Ok(TarWriter { out, last: None })
    }

    /// Adds a blob of `size` bytes read from `content`; blobs must come in increasing digest
    /// order. Returns an error if `content` does not hold exactly `size` bytes.
    ///
    /// # Errors
    /// `InvalidInput` for out-of-order blobs or a wrong size; any read or write error.
    pub fn blob(&mut self, digest: &Digest, size: u64, content: &mut dyn Read) -> io::Result<()> {
        if self.last.is_some_and(|l| l >= *digest) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "layout blobs must be added in increasing digest order",
            ));
        }
        self.last = Some(*digest);
        let path = format!("blobs/sha256/{}", digest.hex());
        self.out.write_all(&tar::header(
            &path,
            MemberKind::File {
                size,
                executable: false,
            },
            None,
        ))?;
        let copied = io::copy(&mut content.take(size), &mut self.out)?;
        // Anything left, or too little, means the source is not the blob it claims to be.
        let mut probe = [0u8; 1];
        if copied != size || content.read(&mut probe)? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {digest} is not {size} bytes long"),
            ));
        }
        self.out.write_all(&vec![0u8; tar::padding(size)])
    }

    /// Writes `index.json` and the end-of-archive marker; returns the inner writer.
    ///
    /// # Errors
    /// Any write error.
    pub fn finish(mut self, index: &[u8]) -> io::Result<W> {
        write_member(&mut self.out, INDEX_JSON, index)?;
        self.out.write_all(&tar::TRAILER)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// Where an export writes a layout: a tar stream ([`TarWriter`]) or a directory
/// ([`DirWriter`]). This is the one layout writer: blobs in increasing digest order, then
/// `index.json` (and `oci-layout`) exactly as given.
pub trait LayoutWriter {
    /// Adds blob `digest` of `size` bytes read from `content`.
    ///
    /// # Errors
    /// `InvalidInput` for out-of-order blobs, `InvalidData` when `content` does not hold
    /// exactly `size` bytes; any read or write error.
    fn blob(&mut self, digest: &Digest, size: u64, content: &mut dyn Read) -> io::Result<()>;

    /// Writes `index.json` and ends the layout.
    ///
    /// # Errors
    /// Any write error.
    fn finish(self: Box<Self>, index: &[u8]) -> io::Result<()>;
}

impl<W: Write> LayoutWriter for TarWriter<W> {
    fn blob(&mut self, digest: &Digest, size: u64, content: &mut dyn Read) -> io::Result<()> {
        TarWriter::blob(self, digest, size, content)
    }

    fn finish(self: Box<Self>, index: &[u8]) -> io::Result<()> {
        TarWriter::finish(*self, index).map(drop)
    }
}

/// Writes a layout into an empty directory (a staging directory its caller renames into
/// place): every file created new and synced, then the directories.
pub struct DirWriter {
    root: std::path::PathBuf,
    blobs: std::path::PathBuf,
    last: Option<Digest>,
}

impl DirWriter {
    /// Starts a layout in the empty directory `root`.
    ///
    /// # Errors
    /// Any error creating `blobs/sha256`.
    pub fn new(root: &std::path::Path) -> io::Result<Self> {
        let blobs = root.join("blobs").join("sha256");
        crate::fs::create_dir_all(&blobs)?;
        Ok(DirWriter {
            root: root.to_owned(),
            blobs,
            last: None,
        })
    }

    fn create(path: &std::path::Path) -> io::Result<std::fs::File> {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
    }
}

impl LayoutWriter for DirWriter {
    fn blob(&mut self, digest: &Digest, size: u64, content: &mut dyn Read) -> io::Result<()> {
        if self.last.is_some_and(|l| l >= *digest) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "layout blobs must be added in increasing digest order",
            ));
        }
        self.last = Some(*digest);
        let path = self.blobs.join(digest.hex());
        let mut f = io::BufWriter::with_capacity(1 << 20, Self::create(&path)?);
        let copied = io::copy(&mut content.take(size), &mut f)?;
        let mut probe = [0u8; 1];
        if copied != size || content.read(&mut probe)? != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("blob {digest} is not {size} bytes long"),
            ));
        }
        f.flush()?;
        f.get_ref().sync_all()
    }

    fn finish(self: Box<Self>, index: &[u8]) -> io::Result<()> {
        for (name, bytes) in [(OCI_LAYOUT, OCI_LAYOUT_BYTES), (INDEX_JSON, index)] {
            let mut f = Self::create(&self.root.join(name))?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        for d in [
            self.blobs.as_path(),
            &self.root.join("blobs"),
            self.root.as_path(),
        ] {
            crate::fs::sync_dir(d)?;
        }
        Ok(())
    }
}

fn write_member(out: &mut dyn Write, path: &str, bytes: &[u8]) -> io::Result<()> {
    out.write_all(&tar::header(
        path,
        MemberKind::File {
            size: bytes.len() as u64,
            executable: false,
        },
        None,
    ))?;
    out.write_all(bytes)?;
    out.write_all(&vec![0u8; tar::padding(bytes.len() as u64)])
}

/// Wraps `input` in a decompressor chosen by its first bytes: gzip (`1f 8b`), zstd
/// (`28 b5 2f fd`) or none.
///
/// # Errors
/// Any read error.
pub fn decompressing<'a>(input: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(1 << 16, input);
    let head = buf.fill_buf()?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buf)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Ok(Box::new(zstd::stream::read::Decoder::with_buffer(buf)?))
    } else {
        Ok(Box::new(buf))
    }
}

/// Layout errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An entry that is not part of an OCI layout.
    #[error(
        "unexpected entry `{path}` in the layout: only oci-layout, index.json and blobs/sha256/<hex> belong there"
    )]
    UnexpectedEntry {
        /// The entry.
        path: String,
    },
    /// An absolute path or one with `..`.
    #[error("unsafe path `{path}` in the archive")]
    UnsafePath {
        /// The entry.
        path: String,
    },
    /// A symlink or hard link in the archive.
    #[error("link entry `{path}` in the archive: layouts hold only regular files")]
    LinkEntry {
        /// The entry.
        path: String,
    },
    /// The same file twice.
    #[error("duplicate entry `{path}` in the archive")]
    Duplicate {
        /// The entry.
        path: String,
    },
    /// A blob under another algorithm than sha256.
    #[error("blob `{path}` uses a digest algorithm snap does not support (only sha256)")]
    UnsupportedAlgorithm {
        /// The entry.
        path: String,
    },
    /// A blob whose bytes do not hash to its name.
    #[error("blob `{path}` does not match its name: its bytes hash to {actual}")]
    DigestMismatch {
        /// The entry.
        path: String,
        /// What the bytes hash to.
        actual: Digest,
    },
    /// A blob shorter than its header says.
    #[error("blob `{path}` is truncated")]
    Truncated {
        /// The entry.
        path: String,
    },
    /// `oci-layout` or `index.json` missing.
    #[error("the layout has no {name}")]
    Missing {
        /// Which file.
        name: &'static str,
    },
    /// A file larger than snap accepts.
    #[error("`{what}` is larger than {limit} bytes")]
    TooLarge {
        /// Which file.
        what: String,
        /// The limit.
        limit: u64,
    },
    /// A JSON file that cannot be used.
    #[error("{what} is malformed: {reason}")]
    Malformed {
        /// Which file.
        what: String,
        /// Why.
        reason: String,
    },
    /// The archive expands past a limit (a decompression bomb stops here).
    #[error("the archive expands to more than {limit} bytes")]
    Expands {
        /// The limit.
        limit: u64,
    },
    /// The tar stream is malformed, or over one of its limits.
    #[error(transparent)]
    Tar(#[from] tar::reader::Error),
    /// Reading or writing failed (including a corrupt compressed stream).
    #[error("cannot read the archive")]
    Io(#[source] io::Error),
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::Io(_) | Error::Tar(crate::pack::tar::reader::Error::Io(_)) => K::Io,
            _ => K::InvalidInput,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests build archives in memory
mod tests;
