//! Downloading a pack and indexing it in the same pass (issue 17).
//!
//! A pulled pack used to be read twice: hashed while it downloaded, then read back from its
//! staging file and frame-scanned by [`crate::pack::scan::index_pack`] when the transfer
//! checked it (decompressing every frame and hashing every member: most of a pull's CPU).
//! Here every chunk the registry sends goes to the staging file *and*, through a bounded
//! channel, to a scanner thread running `index_pack` over the same bytes, so the scan runs
//! while the bytes arrive, on another core, and the file is never read again.
//!
//! The index is kept only when the download succeeded, i.e. when the bytes the scanner saw —
//! exactly those written and hashed — hash to the digest asked for. A scan that fails keeps
//! no index, and the transfer's check scans the file itself and reports the problem as it
//! always has. Memory is bounded by the channel: [`IN_FLIGHT`] chunks.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::digest::{Digest, Hasher};
use crate::ops::Error;
use crate::pack::PackIndex;
use crate::registry::Client;

/// Chunks of a download in flight between the network and the scanner.
const IN_FLIGHT: usize = 64;

/// Downloads blob `d` of `size` bytes into a new file `path`, checked against its digest,
/// and — when `scan` — returns the index of the pack it holds (`None` when it is not one).
///
/// # Errors
/// What [`Client::download`] returns, or `Io` on `path`.
pub(crate) fn download(
    client: &Client,
    path: &Path,
    d: &Digest,
    size: u64,
    scan: bool,
) -> Result<Option<PackIndex>, Error> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(writing(path))?;
    Ok(fill_after(client, &f, path, 0, d, size, scan)?.0)
}

/// What [`download_resumable`] did.
pub(crate) struct Downloaded {
    /// The pack's index, when asked to scan and the blob is a whole pack.
    pub index: Option<PackIndex>,
    /// Bytes that crossed the wire.
    pub wire_bytes: u64,
    /// Whether it continued bytes kept from an interrupted run.
    pub resumed: bool,
    /// The partial download now holding the whole blob (removed when the pull is over), or
    /// `None` when another process held it and the blob went straight to `path`.
    pub part: Option<PathBuf>,
}

/// Downloads blob `d` as [`download`] does, into `path`, continuing the partial download
/// `part` (store format §2.1): the bytes an interrupted run left there are hashed (and
/// scanned) and only the rest is asked for. Then `path` is made a second name of the whole
/// part, which stays until the pull is over, so a pull that fails later keeps it. A part
/// another process is writing is left alone (the blob is downloaded into `path` alone); a part
/// whose bytes turn out not to be the blob's is emptied and the blob downloaded whole.
///
/// # Errors
/// As [`download`]; `Io` on the part. A blob whose bytes do not match also loses its part.
pub(crate) fn download_resumable(
    client: &Client,
    part: &Path,
    path: &Path,
    d: &Digest,
    size: u64,
    scan: bool,
) -> Result<Downloaded, Error> {
    let Some(file) = open_part(part)? else {
        let index = download(client, path, d, size, scan)?;
        return Ok(Downloaded {
            index,
            wire_bytes: size,
            resumed: false,
            part: None,
        });
    };
    let have = file.metadata().map_err(writing(part))?.len();
    let attempt = |have: u64| -> Result<(Option<PackIndex>, u64), Error> {
        if have > size {
            return Err(Error::BlobSize {
                digest: *d,
                expected: size,
                actual: have,
            });
        }
        fill_after(client, &file, part, have, d, size, scan)
    };
    let (index, wire_bytes, resumed) = match attempt(have) {
        Ok((index, wire)) => (index, wire, have > 0),
        // Kept bytes that are not the blob's: start again from nothing, once.
        Err(e) if have > 0 && is_mismatch(&e) => {
            file.set_len(0).map_err(writing(part))?;
            match attempt(0) {
                Ok((index, wire)) => (index, wire, false),
                Err(e) => return Err(drop_part(part, e)),
            }
        }
        Err(e) if is_mismatch(&e) => return Err(drop_part(part, e)),
        Err(e) => return Err(e),
    };
    // A second name in the pull's staging directory (same filesystem: both in the store),
    // made while the part is still locked; where links are not to be had, the part itself
    // moves there.
    let part = if std::fs::hard_link(part, path).is_ok() {
        Some(part.to_owned())
    } else {
        std::fs::rename(part, path).map_err(writing(path))?;
        None
    };
    drop(file);
    Ok(Downloaded {
        index,
        wire_bytes,
        resumed,
        part,
    })
}

/// Opens (creating) and locks the part; `None` when another process holds it, or when the
/// part, or `partial/` itself, is anything but a plain file in a plain directory — a symlink
/// planted there is never followed, so a pull writes nothing outside the store (the blob is
/// then downloaded without resuming).
fn open_part(part: &Path) -> Result<Option<File>, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = part.parent() {
        match std::fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match std::fs::create_dir(dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(source) => return Err(writing(dir)(source)),
            },
            Err(source) => return Err(writing(dir)(source)),
        }
    }
    let nofollow = i32::try_from(rustix::fs::OFlags::NOFOLLOW.bits()).unwrap_or(0);
    let file = match OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .custom_flags(nofollow)
        .open(part)
    {
        Ok(f) => f,
        // A symlink (ELOOP), a directory (EISDIR), anything but a file where the part would be.
        Err(_) if std::fs::symlink_metadata(part).is_ok_and(|m| !m.is_file()) => {
            return Ok(None);
        }
        Err(source) => return Err(writing(part)(source)),
    };
    if !file.metadata().map_err(writing(part))?.is_file() {
        return Ok(None);
    }
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(None),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io {
            op: "locking",
            path: part.to_owned(),
            source,
        }),
    }
}

/// Hashes the part's first `have` bytes, handing each piece to `scan` as well (the pack
/// scanner, when there is one): read in pieces, never held whole.
fn hash_prefix(
    file: &File,
    part: &Path,
    have: u64,
    scan: &mut dyn FnMut(&[u8]),
) -> Result<Hasher, Error> {
    let mut f = file;
    f.seek(SeekFrom::Start(0)).map_err(reading(part))?;
    let mut hashed = Hasher::new();
    let mut r = f.take(have);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).map_err(reading(part))?;
        if n == 0 {
            break;
        }
        hashed.update(&buf[..n]);
        scan(&buf[..n]);
    }
    if r.limit() > 0 {
        return Err(Error::Io {
            op: "reading",
            path: part.to_owned(),
            source: io::Error::new(io::ErrorKind::UnexpectedEof, "the part shrank"),
        });
    }
    Ok(hashed)
}

/// Fills the file `file` at `path`, which holds the blob's first `have` bytes: they are
/// hashed (and scanned) first, then the rest is downloaded after them. Returns the index
/// (when scanning a pack) and the bytes that crossed the wire.
fn fill_after(
    client: &Client,
    file: &File,
    path: &Path,
    have: u64,
    d: &Digest,
    size: u64,
    scan: bool,
) -> Result<(Option<PackIndex>, u64), Error> {
    let rest = |hashed: Hasher, out: &mut dyn Write| -> Result<u64, Error> {
        if have == size {
            // Whole already (the run stopped before the pull was over): nothing to ask for.
            return if hashed.finish() == *d {
                Ok(0)
            } else {
                Err(Error::BlobSize {
                    digest: *d,
                    expected: size,
                    actual: have,
                })
            };
        }
        Ok(client.download_from(d, size, have, hashed, out)?)
    };
    let mut f = file;
    let mut out = Watched {
        out: BufWriter::with_capacity(1 << 20, f),
    };
    let (wire, index) = if scan {
        indexing(&mut out, |tee| {
            let hashed = hash_prefix(file, path, have, &mut |c| tee.scan_only(c))?;
            f.seek(SeekFrom::Start(have)).map_err(writing(path))?;
            rest(hashed, tee)
        })
    } else {
        let hashed = hash_prefix(file, path, have, &mut |_| {})?;
        f.seek(SeekFrom::Start(have)).map_err(writing(path))?;
        (rest(hashed, &mut out), None)
    };
    // What arrived stays in the file, whatever happened.
    let flushed = out.flush().map_err(writing(path));
    let wire = wire?;
    flushed?;
    Ok((index, wire))
}

/// Whether `e` says the bytes were not the blob's (a rerun would not cure it).
fn is_mismatch(e: &Error) -> bool {
    matches!(
        e,
        Error::BlobSize { .. } | Error::Registry(crate::registry::Error::BlobMismatch { .. })
    )
}

/// Removes the part of a blob that did not match, and passes the error on.
fn drop_part(part: &Path, e: Error) -> Error {
    let _ = std::fs::remove_file(part);
    e
}

fn writing(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Io {
        op: "writing",
        path: path.to_owned(),
        source,
    }
}

fn reading(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Io {
        op: "reading",
        path: path.to_owned(),
        source,
    }
}

/// Runs `write` over a writer that passes every byte to `out` and to a pack scanner on another
/// thread; returns what `write` returned and the index, when the bytes were a whole pack.
fn indexing<T>(
    out: &mut dyn Write,
    write: impl FnOnce(&mut Tee<'_>) -> T,
) -> (T, Option<PackIndex>) {
    let (tx, rx) = sync_channel::<Vec<u8>>(IN_FLIGHT);
    std::thread::scope(|s| {
        let scanner = s.spawn(move || {
            crate::pack::scan::index_pack(&mut ChannelReader {
                rx,
                chunk: VecDeque::new(),
            })
            .ok()
        });
        let mut tee = Tee { out, tx: Some(tx) };
        let written = write(&mut tee);
        // Closing the channel ends the scanner's input.
        drop(tee);
        (written, scanner.join().ok().flatten())
    })
}

/// A download's file writer that stops when a stop was asked for (`crate::interrupt`), and
/// reaches the crash point `download-mib` after each MiB the process has downloaded in all
/// (the crash tests' "killed mid-transfer", store format §2.1): two atomic operations per
/// write.
struct Watched<W> {
    out: W,
}

/// Bytes every download of this process has written.
static DOWNLOADED: AtomicU64 = AtomicU64::new(0);

impl<W: Write> Write for Watched<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // A stop asked for: what arrived before is in the file (`crate::interrupt`).
        if crate::interrupt::requested() {
            return Err(io::Error::other("stopped, as asked"));
        }
        let n = buf.len() as u64;
        let before = DOWNLOADED.fetch_add(n, Ordering::Relaxed);
        for _ in before >> 20..(before + n) >> 20 {
            crate::fs::crash_point("download-mib");
        }
        self.out.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Writes to the file and hands a copy to the scanner (until the scanner stops).
struct Tee<'a> {
    out: &'a mut dyn Write,
    tx: Option<SyncSender<Vec<u8>>>,
}

impl Tee<'_> {
    /// Hands bytes the file already holds to the scanner alone.
    fn scan_only(&mut self, buf: &[u8]) {
        for piece in buf.chunks(1 << 20) {
            if let Some(tx) = &self.tx
                && tx.send(piece.to_vec()).is_err()
            {
                self.tx = None;
            }
        }
    }
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write_all(buf)?;
        self.scan_only(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The scanner's input: the chunks sent, in order, then the end when the sender is gone.
struct ChannelReader {
    rx: Receiver<Vec<u8>>,
    chunk: VecDeque<u8>,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            match self.rx.recv() {
                Ok(c) => self.chunk = VecDeque::from(c),
                Err(_) => return Ok(0),
            }
        }
        self.chunk.read(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pack of `files` members (and one file in frames of its own) from the pack writer.
    fn pack(files: usize) -> Vec<u8> {
        use crate::pack::{FRAME_SIZE, Member, MemberKind, PackWriter};
        let mut w = PackWriter::new(Vec::new());
        let big = vec![42u8; FRAME_SIZE + 1000];
        let bodies = (0..files)
            .map(|i| format!("file {i} ").repeat(i * 37 % 5000).into_bytes())
            .chain(std::iter::once(big));
        for (i, body) in bodies.enumerate() {
            let kind = MemberKind::File {
                size: body.len() as u64,
                executable: false,
            };
            w.add(Member::new(&format!("d/f{i}"), kind, None, Some(body)))
                .expect("adding a member in memory");
        }
        w.finish().expect("finishing a pack in memory").3
    }

    #[test]
    fn a_pack_indexed_while_it_is_written_has_the_index_a_scan_of_the_file_gives() {
        let bytes = pack(300);
        let mut copy = Vec::new();
        let ((), index) = indexing(&mut copy, |w| {
            for piece in bytes.chunks(1000) {
                w.write_all(piece).expect("writing to memory");
            }
        });
        assert_eq!(copy, bytes, "every byte reaches the file, once, in order");
        let scanned = crate::pack::scan::index_pack(&mut &bytes[..]).expect("a pack");
        assert_eq!(
            index,
            Some(scanned),
            "the same index as reading the file again"
        );
    }

    #[test]
    fn bytes_that_are_not_a_pack_are_written_whole_and_give_no_index() {
        let mut bytes = pack(50);
        bytes.truncate(bytes.len() / 2);
        bytes.extend(std::iter::repeat_n(7u8, 3 << 20));
        let mut copy = Vec::new();
        let ((), index) = indexing(&mut copy, |w| w.write_all(&bytes).expect("writing"));
        assert_eq!(
            copy.len(),
            bytes.len(),
            "the scanner giving up stops nothing"
        );
        assert!(index.is_none(), "no index for what is not a whole pack");
    }

    #[test]
    fn the_channel_reader_gives_back_the_chunks_in_order_then_the_end() {
        let (tx, rx) = sync_channel(4);
        let mut r = ChannelReader {
            rx,
            chunk: VecDeque::new(),
        };
        std::thread::scope(|s| {
            s.spawn(move || {
                for c in [&b"ab"[..], b"", b"cde"] {
                    tx.send(c.to_vec()).expect("the reader is alive");
                }
            });
            let mut all = Vec::new();
            r.read_to_end(&mut all).expect("reading a channel");
            assert_eq!(all, b"abcde", "every byte once, in order");
        });
    }
}
