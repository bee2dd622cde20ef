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
use std::fs::OpenOptions;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};

use crate::digest::Digest;
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
    let io = |source| Error::Io {
        op: "writing",
        path: path.to_owned(),
        source,
    };
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    let mut out = BufWriter::with_capacity(1 << 20, f);
    if !scan {
        client.download(d, size, &mut out)?;
        out.flush().map_err(io)?;
        return Ok(None);
    }
    let (downloaded, index) = indexing(&mut out, |tee| client.download(d, size, tee));
    downloaded?;
    out.flush().map_err(io)?;
    Ok(index)
}

/// Runs `write` over a writer that passes every byte to `out` and to a pack scanner on another
/// thread; returns what `write` returned and the index, when the bytes were a whole pack.
fn indexing<T>(
    out: &mut dyn Write,
    write: impl FnOnce(&mut dyn Write) -> T,
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

/// Writes to the file and hands a copy to the scanner (until the scanner stops).
struct Tee<'a> {
    out: &'a mut dyn Write,
    tx: Option<SyncSender<Vec<u8>>>,
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write_all(buf)?;
        if let Some(tx) = &self.tx
            && tx.send(buf.to_vec()).is_err()
        {
            // The scanner gave up (not a pack): the download goes on without it.
            self.tx = None;
        }
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
