//! The pack format (store format §5): a tar archive whose members sit in independent zstd
//! frames, so the whole pack is an OCI `tar+zstd` layer and each object in it reads alone.
//!
//! * [`encode_member`] turns one member (header and contents) into its frames; it is pure and
//!   runs on any thread.
//! * [`PackWriter`] concatenates encoded members into a pack, hashing as it writes, and
//!   produces the [`PackIndex`].
//! * [`PackIndex`] is the `.idx` encoding: sorted entries and a checksum.
//! * [`read_object`] decodes one object's frames and verifies its digest.
//!
//! This module knows nothing of where packs live; `store` owns that.

pub mod scan;
pub mod tar;

use std::io::{self, Write};

use crate::digest::{Digest, Hasher, HashingWriter};

pub use self::tar::MemberKind;

/// zstd level for every frame.
pub const ZSTD_LEVEL: i32 = 3;
/// Input bytes per content frame.
pub const FRAME_SIZE: usize = 4 << 20;

/// Compresses one frame with snap's fixed parameters.
///
/// # Errors
/// An I/O error from zstd (out of memory, in practice).
pub fn compress_frame(input: &[u8]) -> io::Result<Vec<u8>> {
    thread_local! {
        static CCTX: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let mut c = zstd::bulk::Compressor::new(ZSTD_LEVEL)?;
            c.include_checksum(false)?;
            c.include_contentsize(true)?;
            *slot = Some(c);
        }
        let c = slot.as_mut().expect("initialised just above");
        c.compress(input)
    })
}

/// Decompresses a run of frames held in memory into at most `capacity` bytes, with a
/// decompression context kept per thread (creating one costs more than decompressing a small
/// file).
///
/// # Errors
/// `InvalidData`-like errors from zstd if the frames are corrupt or exceed `capacity`.
pub fn decompress_frames_bulk(frames: &[u8], capacity: usize) -> io::Result<Vec<u8>> {
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        let d = slot.as_mut().expect("initialised just above");
        let mut out = Vec::with_capacity(capacity);
        d.decompress_to_buffer(frames, &mut out)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
        Ok(out)
    })
}

/// Decompresses a run of frames whose total decompressed size is exactly `expected`.
///
/// # Errors
/// `InvalidData` if the frames are corrupt or decompress to another size.
pub fn decompress_frames(frames: &[u8], expected: usize) -> io::Result<Vec<u8>> {
    // `expected` may come from an untrusted index: never reserve more than the frames could
    // plausibly hold up front; the vector grows if they really do.
    let mut out = Vec::with_capacity(expected.min(frames.len().saturating_mul(32)).min(64 << 20));
    let mut decoder = zstd::stream::read::Decoder::with_buffer(frames)?;
    let mut limited = io::Read::take(&mut decoder, expected as u64 + 1);
    io::Read::read_to_end(&mut limited, &mut out)?;
    if out.len() != expected {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "frames decompress to {} bytes, expected {expected}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

/// One member, encoded: its header frame and its content frames.
#[derive(Debug)]
pub struct EncodedMember {
    /// The uncompressed header block(s), used by the group cut rule.
    pub header: Vec<u8>,
    /// The compressed header frame.
    pub header_frame: Vec<u8>,
    /// Compressed content frames (contents plus padding); empty for members without contents.
    pub content_frames: Vec<u8>,
    /// Digest of the contents (files only).
    pub digest: Option<Digest>,
    /// Content size in bytes.
    pub size: u64,
}

impl EncodedMember {
    /// Encoded bytes in the pack.
    #[must_use]
    pub fn packed_len(&self) -> u64 {
        (self.header_frame.len() + self.content_frames.len()) as u64
    }
}

/// Encodes a member whose contents are in memory (`content` is `None` for directories and
/// symlinks). The content's size must match `kind`'s.
///
/// # Errors
/// An I/O error from zstd.
pub fn encode_member(
    path: &str,
    kind: MemberKind,
    link_target: Option<&str>,
    content: Option<&[u8]>,
) -> io::Result<EncodedMember> {
    let header = tar::header(path, kind, link_target);
    let header_frame = compress_frame(&header)?;
    let (content_frames, digest, size) = match content {
        Some(bytes) => {
            let (frames, digest) = encode_content(bytes)?;
            (frames, Some(digest), bytes.len() as u64)
        }
        None => (Vec::new(), None, 0),
    };
    Ok(EncodedMember {
        header,
        header_frame,
        content_frames,
        digest,
        size,
    })
}

/// Compresses contents into frames of [`FRAME_SIZE`] with the tar padding in the last frame,
/// and hashes them.
///
/// # Errors
/// An I/O error from zstd.
pub fn encode_content(bytes: &[u8]) -> io::Result<(Vec<u8>, Digest)> {
    let digest = Digest::of(bytes);
    if bytes.is_empty() {
        return Ok((Vec::new(), digest));
    }
    let pad = tar::padding(bytes.len() as u64);
    let mut frames = Vec::with_capacity(bytes.len() / 3 + 64);
    let chunks: Vec<&[u8]> = bytes.chunks(FRAME_SIZE).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        if i + 1 == chunks.len() && pad > 0 {
            let mut last = Vec::with_capacity(chunk.len() + pad);
            last.extend_from_slice(chunk);
            last.resize(chunk.len() + pad, 0);
            frames.extend(compress_frame(&last)?);
        } else {
            frames.extend(compress_frame(chunk)?);
        }
    }
    Ok((frames, digest))
}

/// Writes a pack: members in order, then the trailer frame.
pub struct PackWriter<W: Write> {
    out: HashingWriter<W>,
    entries: Vec<IndexEntry>,
    members: u64,
}

impl<W: Write> PackWriter<W> {
    /// Starts a pack on `out`.
    pub fn new(out: W) -> Self {
        PackWriter {
            out: HashingWriter::new(out),
            entries: Vec::new(),
            members: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.out.len()
    }

    /// Whether no member was added.
    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// Members added so far.
    pub fn members(&self) -> u64 {
        self.members
    }

    /// Appends an encoded member.
    ///
    /// # Errors
    /// Any write error.
    pub fn add(&mut self, m: &EncodedMember) -> io::Result<()> {
        self.out.write_all(&m.header_frame)?;
        let offset = self.out.len();
        self.out.write_all(&m.content_frames)?;
        if let Some(digest) = m.digest
            && m.size > 0
        {
            self.entries.push(IndexEntry {
                digest,
                offset,
                length: m.content_frames.len() as u64,
                size: m.size,
            });
        }
        self.members += 1;
        Ok(())
    }

    /// Appends a member whose content frames are streamed by `write_content`, which returns
    /// the contents' digest and size once done.
    ///
    /// # Errors
    /// Any error of `write_content` or of writing.
    pub fn add_streamed(
        &mut self,
        header_frame: &[u8],
        write_content: impl FnOnce(&mut dyn Write) -> io::Result<(Digest, u64)>,
    ) -> io::Result<()> {
        self.out.write_all(header_frame)?;
        let offset = self.out.len();
        let (digest, size) = write_content(&mut self.out)?;
        let length = self.out.len() - offset;
        if size > 0 {
            self.entries.push(IndexEntry {
                digest,
                offset,
                length,
                size,
            });
        }
        self.members += 1;
        Ok(())
    }

    /// Writes the trailer frame and returns the pack's digest, its length, its index and the
    /// inner writer.
    ///
    /// # Errors
    /// Any write error.
    pub fn finish(mut self) -> io::Result<(Digest, u64, PackIndex, W)> {
        self.out.write_all(&compress_frame(&tar::TRAILER)?)?;
        let (digest, len, inner) = self.out.finish();
        Ok((digest, len, PackIndex::new(self.entries), inner))
    }
}

/// Where one object sits in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The object's digest.
    pub digest: Digest,
    /// Offset of its first content frame.
    pub offset: u64,
    /// Total length of its content frames.
    pub length: u64,
    /// Object size (the frames hold size + padding bytes).
    pub size: u64,
}

/// A pack's index: entries sorted by digest, unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackIndex {
    entries: Vec<IndexEntry>,
}

const IDX_MAGIC: &[u8; 8] = b"SNAPIDX1";
const IDX_ENTRY: usize = 56;

impl PackIndex {
    /// Sorts and deduplicates entries (the first occurrence of a digest wins).
    #[must_use]
    pub fn new(mut entries: Vec<IndexEntry>) -> Self {
        entries.sort_by(|a, b| a.digest.cmp(&b.digest).then(a.offset.cmp(&b.offset)));
        entries.dedup_by(|b, a| a.digest == b.digest);
        PackIndex { entries }
    }

    /// The entries, sorted by digest.
    #[must_use]
    pub fn entries(&self) -> &[IndexEntry] {
        &self.entries
    }

    /// The entry for `digest`.
    #[must_use]
    pub fn find(&self, digest: &Digest) -> Option<&IndexEntry> {
        self.entries
            .binary_search_by(|e| e.digest.cmp(digest))
            .ok()
            .map(|i| &self.entries[i])
    }

    /// The `.idx` bytes.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.entries.len() * IDX_ENTRY + 32);
        out.extend_from_slice(IDX_MAGIC);
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        for e in &self.entries {
            out.extend_from_slice(e.digest.as_bytes());
            out.extend_from_slice(&e.offset.to_le_bytes());
            out.extend_from_slice(&e.length.to_le_bytes());
            out.extend_from_slice(&e.size.to_le_bytes());
        }
        let mut h = Hasher::new();
        h.update(&out);
        out.extend_from_slice(h.finish().as_bytes());
        out
    }

    /// Decodes `.idx` bytes of a pack that is `pack_len` bytes long.
    ///
    /// # Errors
    /// A reason if the checksum fails, the layout is wrong, entries are unsorted or point
    /// outside the pack.
    pub fn decode(bytes: &[u8], pack_len: u64) -> Result<Self, String> {
        if bytes.len() < 48 || &bytes[..8] != IDX_MAGIC {
            return Err("not a pack index (bad magic or too short)".into());
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Digest::of(body).as_bytes()[..] != *sum {
            return Err("pack index checksum mismatch".into());
        }
        let count = u64::from_le_bytes(body[8..16].try_into().map_err(|_| "short header")?);
        let count = usize::try_from(count).map_err(|_| "absurd entry count")?;
        let expected = count.checked_mul(IDX_ENTRY).and_then(|n| n.checked_add(16));
        if expected != Some(body.len()) {
            return Err(format!(
                "pack index claims {count} entries but has {} bytes",
                body.len()
            ));
        }
        let mut entries = Vec::with_capacity(count);
        for chunk in body[16..].chunks_exact(IDX_ENTRY) {
            let u = |r: std::ops::Range<usize>| {
                u64::from_le_bytes(
                    chunk[r]
                        .try_into()
                        .expect("8-byte slice of a 56-byte chunk"),
                )
            };
            let mut d = [0u8; 32];
            d.copy_from_slice(&chunk[..32]);
            let e = IndexEntry {
                digest: Digest::from_bytes(d),
                offset: u(32..40),
                length: u(40..48),
                size: u(48..56),
            };
            if e.offset
                .checked_add(e.length)
                .is_none_or(|end| end > pack_len)
            {
                return Err(format!("entry {} lies outside the pack", e.digest));
            }
            if entries
                .last()
                .is_some_and(|p: &IndexEntry| p.digest >= e.digest)
            {
                return Err("pack index entries are not sorted and unique".into());
            }
            entries.push(e);
        }
        Ok(PackIndex { entries })
    }
}

/// Reads one object's frames from `frames` (exactly `entry.length` bytes), decompresses,
/// and verifies size and digest.
///
/// # Errors
/// `InvalidData` naming what does not match.
pub fn read_object(frames: &[u8], entry: &IndexEntry) -> io::Result<Vec<u8>> {
    let size = usize::try_from(entry.size).map_err(|_| invalid("object too large"))?;
    let padded = size
        .checked_add(tar::padding(entry.size))
        .ok_or_else(|| invalid("object too large"))?;
    let mut bytes = decompress_frames(frames, padded)?;
    bytes.truncate(size);
    let actual = Digest::of(&bytes);
    if actual != entry.digest {
        return Err(invalid(&format!(
            "object {} hashes to {actual}",
            entry.digest
        )));
    }
    Ok(bytes)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;
    use std::io::Read;

    fn build(
        members: &[(&str, MemberKind, Option<&str>, Option<&[u8]>)],
    ) -> io::Result<(Vec<u8>, PackIndex)> {
        let mut w = PackWriter::new(Vec::new());
        for (p, k, l, c) in members {
            w.add(&encode_member(p, *k, *l, *c)?)?;
        }
        let (d, len, idx, bytes) = w.finish()?;
        assert_eq!(d, Digest::of(&bytes));
        assert_eq!(len, bytes.len() as u64);
        Ok((bytes, idx))
    }

    #[test]
    fn a_pack_is_a_tar_zstd_and_each_object_reads_alone() -> io::Result<()> {
        let big = vec![42u8; FRAME_SIZE + 1000];
        let (pack, idx) = build(&[
            ("d", MemberKind::Dir, None, None),
            (
                "d/a",
                MemberKind::File {
                    size: 5,
                    executable: false,
                },
                None,
                Some(b"hello"),
            ),
            (
                "d/big",
                MemberKind::File {
                    size: big.len() as u64,
                    executable: true,
                },
                None,
                Some(&big),
            ),
            (
                "d/empty",
                MemberKind::File {
                    size: 0,
                    executable: false,
                },
                None,
                Some(b""),
            ),
            ("d/l", MemberKind::Symlink, Some("a"), None),
        ])?;
        // As a whole: one zstd stream holding a tar.
        let tar_bytes = zstd::stream::decode_all(&pack[..])?;
        let mut ar = ::tar::Archive::new(&tar_bytes[..]);
        let mut names = Vec::new();
        for e in ar.entries()? {
            let mut e = e?;
            let mut v = Vec::new();
            e.read_to_end(&mut v)?;
            names.push((e.path()?.to_string_lossy().into_owned(), v.len()));
        }
        assert_eq!(
            names,
            [
                ("d/".into(), 0),
                ("d/a".into(), 5),
                ("d/big".into(), big.len()),
                ("d/empty".into(), 0),
                ("d/l".into(), 0)
            ]
        );
        // Alone: through the index.
        assert_eq!(idx.entries().len(), 2, "empty files are not indexed");
        for (content, digest) in [
            (&b"hello"[..], Digest::of(b"hello")),
            (&big[..], Digest::of(&big)),
        ] {
            let e = idx.find(&digest).ok_or_else(|| invalid("indexed"))?;
            let frames = &pack[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(read_object(frames, e)?, content);
        }
        Ok(())
    }

    #[test]
    fn packs_are_deterministic() -> io::Result<()> {
        let m: &[(&str, MemberKind, Option<&str>, Option<&[u8]>)] = &[(
            "x",
            MemberKind::File {
                size: 3,
                executable: false,
            },
            None,
            Some(b"abc"),
        )];
        assert_eq!(build(m)?.0, build(m)?.0);
        Ok(())
    }

    #[test]
    fn index_round_trips_and_rejects_damage() -> io::Result<()> {
        let (pack, idx) = build(&[
            (
                "a",
                MemberKind::File {
                    size: 1,
                    executable: false,
                },
                None,
                Some(b"1"),
            ),
            (
                "b",
                MemberKind::File {
                    size: 1,
                    executable: false,
                },
                None,
                Some(b"2"),
            ),
            (
                "c",
                MemberKind::File {
                    size: 1,
                    executable: false,
                },
                None,
                Some(b"1"),
            ),
        ])?;
        assert_eq!(idx.entries().len(), 2, "duplicates indexed once");
        let bytes = idx.encode();
        assert_eq!(
            PackIndex::decode(&bytes, pack.len() as u64),
            Ok(idx.clone())
        );
        for i in [0, 9, 20, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(
                PackIndex::decode(&bad, pack.len() as u64).is_err(),
                "flip at {i}"
            );
        }
        assert!(
            PackIndex::decode(&bytes, 10).is_err(),
            "entries beyond a short pack"
        );
        assert!(PackIndex::decode(&bytes[..40], 1000).is_err());
        Ok(())
    }

    #[test]
    fn read_object_detects_corrupt_frames() -> io::Result<()> {
        let (pack, idx) = build(&[(
            "a",
            MemberKind::File {
                size: 11,
                executable: false,
            },
            None,
            Some(b"hello world"),
        )])?;
        let e = *idx
            .find(&Digest::of(b"hello world"))
            .ok_or_else(|| invalid("indexed"))?;
        let mut frames = pack[e.offset as usize..(e.offset + e.length) as usize].to_vec();
        let last = frames.len() - 3;
        frames[last] ^= 0xff;
        assert!(read_object(&frames, &e).is_err());
        let wrong = IndexEntry {
            digest: Digest::of(b"other"),
            ..e
        };
        let good = &pack[e.offset as usize..(e.offset + e.length) as usize];
        assert!(read_object(good, &wrong).is_err());
        Ok(())
    }
}
