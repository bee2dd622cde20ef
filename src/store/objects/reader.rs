//! Reading one object wherever it is — loose, a block of a pack, or frames of its own — and
//! verifying its digest (and size) as it streams.

use std::fs::File;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};

use super::{Error, Location, io_err};
use crate::digest::{Digest, HashingReader};
use crate::pack::{self, IndexEntry};

/// A verified streaming reader of one object.
pub struct ObjectReader {
    digest: Digest,
    path: PathBuf,
    inner: HashingReader<Box<dyn Read + Send>>,
    expected_size: Option<u64>,
    verified: bool,
}

/// Objects at most this big (compressed and not) are read from packs in one piece.
pub(super) const SMALL_OBJECT: u64 = 4 << 20;

/// A reader whose first read fails with the error it holds.
pub(super) struct FailingReader(Option<io::Error>);

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

impl ObjectReader {
    pub(super) fn open(digest: Digest, location: Location) -> Result<Self, Error> {
        let (path, inner, expected_size): (PathBuf, Box<dyn Read + Send>, Option<u64>) =
            match location {
                Location::Empty => (PathBuf::new(), Box::new(io::empty()), Some(0)),
                Location::Loose(path) => {
                    let f = File::open(&path).map_err(|e| io_err("opening", &path, e))?;
                    let d = zstd::stream::read::Decoder::new(f)
                        .map_err(|e| io_err("reading", &path, e))?;
                    (path, Box::new(d), None)
                }
                Location::Pack(path) => {
                    let f = File::open(&path).map_err(|e| io_err("opening", &path, e))?;
                    (
                        path,
                        Box::new(io::BufReader::with_capacity(1 << 20, f)),
                        None,
                    )
                }
                Location::InPack { pack, entry } if entry.skip > 0 => {
                    // Inside a block: from the last block this thread decompressed, if it is
                    // this one (readers go in pack order), else read and decompress it.
                    let inner: Box<dyn Read + Send> = match read_in_block(&pack, &entry)? {
                        Ok(bytes) => Box::new(io::Cursor::new(bytes)),
                        // Report it as the stream would: a corrupt object, on first read.
                        Err(e) => Box::new(FailingReader(Some(e))),
                    };
                    (pack, inner, Some(entry.size))
                }
                Location::InPack { pack, entry }
                    if entry.length <= SMALL_OBJECT && entry.size <= SMALL_OBJECT =>
                {
                    // Small objects are decompressed whole, with a reused context.
                    let mut frames = Vec::with_capacity(usize::try_from(entry.length).unwrap_or(0));
                    read_frames(&pack, &entry, &mut frames)?;
                    let size = usize::try_from(entry.size).unwrap_or(usize::MAX);
                    let padded = size.saturating_add(pack::tar::padding(entry.size));
                    let inner: Box<dyn Read + Send> =
                        match pack::decompress_frames_bulk(&frames, padded) {
                            Ok(mut bytes) => {
                                bytes.truncate(size);
                                Box::new(io::Cursor::new(bytes))
                            }
                            // Report it as the stream would: a corrupt object, on first read.
                            Err(e) => Box::new(FailingReader(Some(io::Error::other(format!(
                                "cannot decompress: {e}"
                            ))))),
                        };
                    (pack, inner, Some(entry.size))
                }
                Location::InPack { pack, entry } => {
                    let mut f = File::open(&pack).map_err(|e| io_err("opening", &pack, e))?;
                    f.seek(io::SeekFrom::Start(entry.offset))
                        .map_err(|e| io_err("reading", &pack, e))?;
                    let frames = f.take(entry.length);
                    let d = zstd::stream::read::Decoder::new(frames)
                        .map_err(|e| io_err("reading", &pack, e))?;
                    (pack, Box::new(d.take(entry.size)), Some(entry.size))
                }
            };
        Ok(ObjectReader {
            digest,
            path,
            inner: HashingReader::new(inner),
            expected_size,
            verified: false,
        })
    }

    /// The file the object is read from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Turns an I/O error from reading into the right [`Error`]: corruption if the data was
    /// bad, I/O otherwise.
    #[must_use]
    pub fn error(&self, e: io::Error) -> Error {
        // Errors that did not come from the operating system come from decoding (zstd
        // reports bad frames as `Other`) or from verification: the stored bytes are bad.
        if e.raw_os_error().is_none() {
            Error::Corrupt {
                digest: self.digest,
                path: self.path.clone(),
                reason: e.to_string(),
            }
        } else {
            io_err("reading", &self.path, e)
        }
    }

    /// Reads any rest and checks the digest.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Io`].
    pub fn finish(mut self) -> Result<(), Error> {
        if !self.verified {
            io::copy(&mut self, &mut io::sink()).map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    fn check(&mut self) -> io::Result<()> {
        let (digest, len) = {
            let h = std::mem::replace(&mut self.inner, HashingReader::new(Box::new(io::empty())));
            let (d, n, _) = h.finish();
            (d, n)
        };
        self.verified = true;
        if let Some(size) = self.expected_size
            && size != len
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("object {} is {len} bytes, expected {size}", self.digest),
            ));
        }
        if digest != self.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("object {} hashes to {digest}", self.digest),
            ));
        }
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
        }
        Ok(n)
    }
}

/// Reads an entry's frames (`length` bytes at `offset`) into `buf`.
pub(super) fn read_frames(pack: &Path, entry: &IndexEntry, buf: &mut Vec<u8>) -> Result<(), Error> {
    let mut f = File::open(pack).map_err(|e| io_err("opening", pack, e))?;
    f.seek(io::SeekFrom::Start(entry.offset))
        .map_err(|e| io_err("reading", pack, e))?;
    buf.clear();
    f.take(entry.length)
        .read_to_end(buf)
        .map_err(|e| io_err("reading", pack, e))?;
    if buf.len() as u64 != entry.length {
        return Err(io_err(
            "reading",
            pack,
            io::Error::new(io::ErrorKind::UnexpectedEof, "the pack ends inside a frame"),
        ));
    }
    Ok(())
}

/// The (unverified) bytes of an object inside a block; the outer error is I/O, the inner one
/// corruption. Each thread keeps the last block it decompressed: a restore or an fsck reads a
/// block's objects one after another, and decompresses the block once.
pub(super) fn read_in_block(pack: &Path, entry: &IndexEntry) -> Result<io::Result<Vec<u8>>, Error> {
    type Cached = Option<(PathBuf, u64, u64, std::sync::Arc<Vec<u8>>)>;
    thread_local! {
        static LAST: std::cell::RefCell<Cached> = const { std::cell::RefCell::new(None) };
    }
    let hit = LAST.with(|c| {
        c.borrow().as_ref().and_then(|(p, o, l, b)| {
            (*o == entry.offset && *l == entry.length && p.as_os_str() == pack.as_os_str())
                .then(|| b.clone())
        })
    });
    let block = if let Some(b) = hit {
        b
    } else {
        let mut frames = Vec::new();
        read_frames(pack, entry, &mut frames)?;
        let block = match pack::decompress_block(&frames) {
            Ok(b) => std::sync::Arc::new(b),
            Err(e) => return Ok(Err(io::Error::other(format!("cannot decompress: {e}")))),
        };
        LAST.with(|c| {
            *c.borrow_mut() = Some((pack.to_owned(), entry.offset, entry.length, block.clone()));
        });
        block
    };
    Ok(pack::block_slice(&block, entry).map(<[u8]>::to_vec))
}
