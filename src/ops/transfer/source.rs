//! Where [`super::receive`] reads blobs from: a layout directory in place, or blobs staged in a
//! temp directory of the store (an archive's, a pull's downloads). Every read is checked
//! against the digest and size asked for.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};
use crate::ops::Error;
use crate::pack::PackIndex;

/// Where blobs come from.
pub(crate) enum Source {
    /// A layout directory, read in place: every blob is hashed when it is checked.
    Layout(PathBuf),
    /// Blobs in a temp directory of the store (`DIR/<hex>`), each checked against its digest
    /// as it was written: an archive's (import), a registry's (pull).
    Staged {
        /// The directory; removed when the source is dropped.
        dir: tempfile::TempDir,
        /// Every blob it holds, with its size.
        sizes: HashMap<Digest, u64>,
        /// The indexes of the packs among them, taken as they were staged from the very bytes
        /// that were checked (a pull indexes as it downloads); the others are scanned when
        /// checked.
        indexes: HashMap<Digest, PackIndex>,
    },
}

impl Source {
    pub(super) fn size(&self, d: &Digest) -> Result<Option<u64>, Error> {
        match self {
            Source::Layout(root) => {
                let p = blob_path(root, d);
                match std::fs::symlink_metadata(&p) {
                    Ok(m) if m.file_type().is_file() => Ok(Some(m.len())),
                    Ok(_) => Err(Error::BadLayout {
                        reason: format!("{} is not a regular file", p.display()),
                    }),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
                    Err(source) => Err(Error::Io {
                        op: "reading the metadata of",
                        path: p,
                        source,
                    }),
                }
            }
            Source::Staged { sizes, .. } => Ok(sizes.get(d).copied()),
        }
    }

    /// Every staged blob with its size (none for a layout read in place).
    pub(crate) fn blobs(&self) -> impl Iterator<Item = (Digest, u64)> + '_ {
        match self {
            Source::Layout(_) => None,
            Source::Staged { sizes, .. } => Some(sizes.iter().map(|(d, s)| (*d, *s))),
        }
        .into_iter()
        .flatten()
    }

    /// Where a staged blob is: its file may be moved into the store rather than copied.
    pub(super) fn staged_path(&self, d: &Digest) -> Option<PathBuf> {
        match self {
            Source::Layout(_) => None,
            Source::Staged { dir, sizes, .. } => {
                sizes.contains_key(d).then(|| dir.path().join(d.hex()))
            }
        }
    }

    /// The index a staged pack was given as it was staged, if it was.
    pub(super) fn staged_index(&self, d: &Digest) -> Option<&PackIndex> {
        match self {
            Source::Layout(_) => None,
            Source::Staged { indexes, .. } => indexes.get(d),
        }
    }

    pub(crate) fn open(&self, d: &Digest) -> Result<File, Error> {
        let p = match self {
            Source::Layout(root) => blob_path(root, d),
            Source::Staged { dir, .. } => dir.path().join(d.hex()),
        };
        File::open(&p).map_err(|source| Error::Io {
            op: "opening",
            path: p,
            source,
        })
    }

    /// Checks that blob `d` exists with `size` bytes and (for a directory) hashes to `d`.
    pub(super) fn check(&self, d: &Digest, size: u64) -> Result<(), Error> {
        match self.size(d)? {
            None => return Err(Error::MissingBlob { digest: *d }),
            Some(actual) if actual != size => {
                return Err(Error::BlobSize {
                    digest: *d,
                    expected: size,
                    actual,
                });
            }
            Some(_) => {}
        }
        if let Source::Layout(_) = self {
            let mut r = HashingReader::new(self.open(d)?);
            io::copy(&mut r, &mut io::sink()).map_err(|source| Error::Io {
                op: "reading",
                path: PathBuf::from(d.to_string()),
                source,
            })?;
            let (actual, _, _) = r.finish();
            if actual != *d {
                return Err(Error::BlobDigest { digest: *d, actual });
            }
        }
        Ok(())
    }

    /// Reads a small blob whole, checked.
    pub(super) fn read(&self, d: &Digest, size: u64, limit: u64) -> Result<Vec<u8>, Error> {
        if size > limit {
            return Err(Error::BadLayout {
                reason: format!(
                    "{d} claims {size} bytes, more than the {limit} snap accepts for metadata"
                ),
            });
        }
        self.check(d, size)?;
        let mut bytes = Vec::new();
        self.open(d)?
            .take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| Error::Io {
                op: "reading",
                path: PathBuf::from(d.to_string()),
                source,
            })?;
        if Digest::of(&bytes) != *d || bytes.len() as u64 != size {
            return Err(Error::BlobDigest {
                digest: *d,
                actual: Digest::of(&bytes),
            });
        }
        Ok(bytes)
    }
}

fn blob_path(root: &Path, d: &Digest) -> PathBuf {
    root.join("blobs").join("sha256").join(d.hex())
}
