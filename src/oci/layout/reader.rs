//! Reading a layout archive: a bounded, validating stream over its members (see
//! [`read_tar`]).

use std::collections::HashSet;
use std::io::{self, Read};

use super::{Error, INDEX_JSON, MAX_INDEX_BYTES, decompressing};
use crate::digest::{Digest, HashingReader};
use crate::pack::tar;

/// The small files of a layout archive (its blobs went to the callback).
#[derive(Debug)]
pub struct TarLayout {
    /// The `oci-layout` bytes; `None` when the archive has none (OMMX archives).
    pub oci_layout: Option<Vec<u8>>,
    /// The `index.json` bytes.
    pub index: Vec<u8>,
    /// Total bytes read out of the (decompressed) archive.
    pub bytes_read: u64,
}

/// What a layout archive entry is.
enum EntryName {
    Dir,
    OciLayout,
    Index,
    Blob(Digest),
    /// Docker-compatible metadata that containerd and docker add next to the layout
    /// (`manifest.json`, `repositories`): skipped, never read.
    DockerMetadata,
}

fn classify(raw: &str) -> Result<EntryName, Error> {
    let unsafe_path = || Error::UnsafePath {
        path: raw.to_owned(),
    };
    if raw.starts_with('/') || raw.contains('\\') {
        return Err(unsafe_path());
    }
    let parts: Vec<&str> = raw
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(unsafe_path());
    }
    match parts.as_slice() {
        [] | ["blobs"] | ["blobs", "sha256"] => Ok(EntryName::Dir),
        ["oci-layout"] => Ok(EntryName::OciLayout),
        ["index.json"] => Ok(EntryName::Index),
        ["manifest.json" | "repositories"] => Ok(EntryName::DockerMetadata),
        ["blobs", "sha256", hex] => {
            Digest::from_hex(hex)
                .map(EntryName::Blob)
                .map_err(|_| Error::UnexpectedEntry {
                    path: raw.to_owned(),
                })
        }
        ["blobs", alg, ..] if *alg != "sha256" => Err(Error::UnsupportedAlgorithm {
            path: raw.to_owned(),
        }),
        _ => Err(Error::UnexpectedEntry {
            path: raw.to_owned(),
        }),
    }
}

/// Most members a layout archive may have.
pub const MAX_ENTRIES: u64 = 1 << 18;
/// Largest `oci-layout` file accepted.
pub const MAX_OCI_LAYOUT_BYTES: u64 = 64 << 10;

/// How far a layout archive may expand when decompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expansion {
    /// Bytes the archive may expand to on trust: headers, extension records, `oci-layout`,
    /// `index.json` and the blobs given [`Staging::Budgeted`].
    pub budget: u64,
    /// Bytes read out of the archive in all, whatever is done with them.
    pub ceiling: u64,
}

impl Expansion {
    /// One limit for everything.
    #[must_use]
    pub fn at_most(bytes: u64) -> Self {
        Expansion {
            budget: bytes,
            ceiling: bytes,
        }
    }
}

/// What [`read_tar`] does with one blob, decided from its digest and size before a byte of it
/// is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Staging {
    /// Pass it to [`BlobSink::write`]; its bytes count toward [`Expansion::budget`].
    Budgeted,
    /// Pass it to [`BlobSink::write`] without counting it: a descriptor names it with exactly
    /// this size, so the layout vouches for it.
    Named,
    /// Only hash it (its name is still checked) and drop it; it does not count either.
    Skip,
}

/// Where [`read_tar`] sends the blobs of a layout archive. Any
/// `FnMut(&Digest, u64, &mut dyn Read) -> io::Result<u64>` is one that takes every blob on
/// the budget.
pub trait BlobSink {
    /// What to do with blob `digest` of `size` bytes; `room` is what is left of the budget.
    fn staging(&mut self, digest: &Digest, size: u64, room: u64) -> Staging {
        let _ = (digest, size, room);
        Staging::Budgeted
    }

    /// Takes the exact bytes of a blob that is not skipped: must read `content` to its end
    /// and return how many bytes it read. The digest is checked after.
    ///
    /// # Errors
    /// Any I/O error, which stops the reading.
    fn write(&mut self, digest: &Digest, size: u64, content: &mut dyn Read) -> io::Result<u64>;
}

/// A [`BlobSink`] that takes every blob on the budget, from a closure (this only helps type
/// inference: `read_tar(input, expansion, &mut sink(|digest, size, content| ...))`).
pub fn sink<F: FnMut(&Digest, u64, &mut dyn Read) -> io::Result<u64>>(f: F) -> F {
    f
}

impl<F: FnMut(&Digest, u64, &mut dyn Read) -> io::Result<u64>> BlobSink for F {
    fn write(&mut self, digest: &Digest, size: u64, content: &mut dyn Read) -> io::Result<u64> {
        self(digest, size, content)
    }
}

/// Streams a layout archive (plain, gzip or zstd, detected from the bytes) through snap's
/// bounded tar reader ([`crate::pack::tar::Reader`]): extension records of at most 1 MiB, at
/// most [`MAX_ENTRIES`] members. Each blob goes to `sink` as it decides; every blob, written
/// or not, is hashed while it streams and must match its name. Nothing is read past the
/// limits of `expansion`: a blob that would pass one is refused from its header.
///
/// # Errors
/// [`Error`] for any entry snap refuses, a blob whose bytes do not match its name, a missing
/// `oci-layout` or `index.json`, a truncated or malformed archive, or one that expands past
/// `expansion`.
pub fn read_tar(
    input: impl Read,
    expansion: Expansion,
    sink: &mut dyn BlobSink,
) -> Result<TarLayout, Error> {
    let mut archive = tar::Reader::with_limits(
        decompressing(input).map_err(Error::Io)?,
        tar::Limits {
            max_extension: tar::MAX_EXTENSION_BYTES,
            max_entries: MAX_ENTRIES,
        },
    );
    let mut oci_layout = None;
    let mut index = None;
    let mut seen = HashSet::new();
    // Blob bytes that do not count toward the budget (named or skipped).
    let mut exempt = 0u64;
    while let Some(mut entry) = archive.next_entry()? {
        let position = entry.offset() + 512;
        let trusted = position.saturating_sub(exempt);
        if trusted > expansion.budget || position > expansion.ceiling {
            return Err(Error::Expands {
                limit: expansion.budget.min(expansion.ceiling),
            });
        }
        let path = String::from_utf8_lossy(entry.path_bytes()).into_owned();
        let name = classify(&path)?;
        match (&name, entry.kind()) {
            (EntryName::Dir, tar::EntryKind::Dir) => continue,
            (EntryName::Dir, _) => return Err(Error::UnexpectedEntry { path }),
            (_, tar::EntryKind::File) => {}
            (_, tar::EntryKind::Symlink | tar::EntryKind::HardLink) => {
                return Err(Error::LinkEntry { path });
            }
            _ => return Err(Error::UnexpectedEntry { path }),
        }
        // Keyed by what the entry is, not its spelling: `./oci-layout` is `oci-layout`.
        let key = match &name {
            EntryName::Blob(d) => Some(*d),
            EntryName::OciLayout | EntryName::Index | EntryName::Dir => None,
            EntryName::DockerMetadata => {
                // Budgeted like any other byte, then skipped.
                if trusted.saturating_add(entry.size()) > expansion.budget {
                    return Err(Error::Expands {
                        limit: expansion.budget,
                    });
                }
                io::copy(&mut entry, &mut io::sink()).map_err(|e| content_error(e, &path))?;
                continue;
            }
        };
        let first = match (&name, key) {
            (_, Some(d)) => seen.insert(d),
            (EntryName::OciLayout, None) => oci_layout.is_none(),
            (_, None) => index.is_none(),
        };
        if !first {
            return Err(Error::Duplicate { path });
        }
        let size = entry.size();
        if position.saturating_add(size) > expansion.ceiling {
            return Err(Error::Expands {
                limit: expansion.ceiling,
            });
        }
        match name {
            EntryName::OciLayout | EntryName::Index => {
                let limit = if matches!(name, EntryName::OciLayout) {
                    MAX_OCI_LAYOUT_BYTES
                } else {
                    MAX_INDEX_BYTES
                };
                if size > limit {
                    return Err(Error::TooLarge { what: path, limit });
                }
                if trusted.saturating_add(size) > expansion.budget {
                    return Err(Error::Expands {
                        limit: expansion.budget,
                    });
                }
                let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| content_error(e, &path))?;
                if matches!(name, EntryName::OciLayout) {
                    oci_layout = Some(bytes);
                } else {
                    index = Some(bytes);
                }
            }
            EntryName::Blob(digest) => {
                let budget = Budget {
                    trusted,
                    expansion: &expansion,
                };
                let read = read_blob(&mut entry, digest, size, &path, budget, sink)?;
                exempt = exempt.saturating_add(read);
            }
            EntryName::Dir | EntryName::DockerMetadata => {}
        }
    }
    Ok(TarLayout {
        oci_layout,
        index: index.ok_or(Error::Missing { name: INDEX_JSON })?,
        bytes_read: archive.position(),
    })
}

/// Where an archive is against its expansion limits when a blob starts.
#[derive(Clone, Copy)]
struct Budget<'a> {
    /// Bytes read so far that count toward the budget.
    trusted: u64,
    expansion: &'a Expansion,
}

/// Streams one blob entry into `sink` (or past it, if the sink has it), hashing it: it must
/// be as long as its header says and hash to its name. Returns the bytes exempt from the
/// budget (a blob the sink names or skips).
fn read_blob(
    entry: &mut impl Read,
    digest: Digest,
    size: u64,
    path: &str,
    budget: Budget<'_>,
    sink: &mut dyn BlobSink,
) -> Result<u64, Error> {
    let Budget { trusted, expansion } = budget;
    let staging = sink.staging(&digest, size, expansion.budget.saturating_sub(trusted));
    let exempt = match staging {
        Staging::Budgeted if trusted.saturating_add(size) > expansion.budget => {
            return Err(Error::Expands {
                limit: expansion.budget,
            });
        }
        Staging::Budgeted => 0,
        Staging::Named | Staging::Skip => size,
    };
    let mut hashing = HashingReader::new(entry);
    let read = match staging {
        Staging::Skip => io::copy(&mut hashing, &mut io::sink()),
        Staging::Budgeted | Staging::Named => sink.write(&digest, size, &mut hashing),
    }
    .map_err(|e| content_error(e, path))?;
    let (actual, n, _) = hashing.finish();
    let path = path.to_owned();
    if read != size || n != size {
        return Err(Error::Truncated { path });
    }
    if actual != digest {
        return Err(Error::DigestMismatch { path, actual });
    }
    Ok(exempt)
}

/// A member's content could not be read: cut short, or the input failed.
fn content_error(e: io::Error, path: &str) -> Error {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Error::Truncated {
            path: path.to_owned(),
        }
    } else {
        Error::Io(e)
    }
}
