//! The pack format (store format §5): a tar archive whose members sit in independent zstd
//! frames, so the whole pack is an OCI `tar+zstd` layer and each object in it reads alone.
//!
//! * `encode_member` turns one member (header and contents) into its frames; it is pure and
//!   runs on any thread.
//! * [`PackWriter`] concatenates encoded members into a pack, hashing as it writes, and
//!   produces the [`PackIndex`].
//! * [`PackIndex`] is the `.idx` encoding: sorted entries and a checksum.
//! * [`read_object`] decodes one object's frames and verifies its digest.
//! * [`cut_value`] is the per-member hash both content-defined cuts use: where a block ends
//!   (here) and where a group ends (`oci::artifact`).
//!
//! A pack is a pure function of its members (headers and contents) and of the zstd build:
//! the same members give the same bytes. So a block or a content frame that was written once
//! can be copied into a new pack instead of being compressed again
//! ([`PackWriter::copy_block`], [`PackWriter::add_framed`]), and the new pack is byte for
//! byte what compressing would have given.
//!
//! This module knows nothing of where packs live; `store` owns that.

pub mod scan;
pub mod tar;

mod error;
mod index;
mod writer;

pub use error::{Error, HeaderProblem};

pub use index::{IndexEntry, PackIndex};
pub use writer::{Finished, PackWriter};

use std::io;

use crate::digest::{Digest, Hasher};

pub use self::tar::MemberKind;

/// zstd level for every frame.
pub const ZSTD_LEVEL: i32 = 3;
/// Input bytes per content frame.
pub const FRAME_SIZE: usize = 4 << 20;

/// Bumped whenever the bytes a pack is made of change for the same members (tar headers,
/// frame or block rules), so caches of what earlier packs hold are not trusted across it.
pub const RULES_VERSION: u32 = 2;

/// What the bytes of a pack depend on besides its members: the zstd library's version, the
/// level and the frame and block rules. Packs written by the same encoder from the same
/// members are the same bytes; caches of where members already sit in packs name it.
#[must_use]
pub fn encoder_id() -> String {
    format!(
        "snap-pack {RULES_VERSION} zstd {} level {ZSTD_LEVEL} frame {FRAME_SIZE} inline {BLOCK_INLINE_MAX} block {BLOCK_MIN}/{BLOCK_TARGET}/{BLOCK_MAX}",
        zstd::zstd_safe::version_number()
    )
}

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

/// Weight a tar header adds to every member (OCI mapping §3).
pub const HEADER_WEIGHT: u64 = 512;

/// The weight of a member with `size` content bytes: what the content-defined cuts weigh it.
#[must_use]
pub fn weight(size: u64) -> u64 {
    size.saturating_add(HEADER_WEIGHT)
}

/// A member's cut value: the first 8 bytes, big-endian, of
/// `sha256("snap-cut\0" ‖ header ‖ content digest)` (32 zero bytes for a member without
/// contents). It depends on the member alone, so a change moves only the cuts next to it.
#[must_use]
pub fn cut_value(header: &[u8], content: Option<&Digest>) -> u64 {
    let mut h = Hasher::new();
    h.update(b"snap-cut\0");
    h.update(header);
    h.update(content.map_or(&[0u8; 32], Digest::as_bytes).as_slice());
    let d = h.finish();
    let first: [u8; 8] = d.as_bytes()[..8]
        .try_into()
        .expect("a digest has more than 8 bytes");
    u64::from_be_bytes(first)
}

/// Whether a member with cut value `value` and weight `member_weight` cuts for `target`:
/// `value < weight × ⌊2^64 / target⌋` (saturating), which happens with probability
/// `weight / target`.
#[must_use]
pub fn cuts(value: u64, member_weight: u64, target: u64) -> bool {
    value < member_weight.saturating_mul(u64::MAX / target.max(1))
}

/// One member to add to a pack: its tar header block(s) and, for a file, its contents and
/// their digest. Nothing is compressed yet: [`PackWriter`] decides the frames.
#[derive(Debug)]
pub struct Member {
    /// The tar header block(s) (also what the group cut rule hashes).
    pub header: Vec<u8>,
    /// A file's contents and their digest; `None` for directories and symlinks.
    pub content: Option<(Vec<u8>, Digest)>,
    /// The member's [`cut_value`].
    pub cut: u64,
}

impl Member {
    /// A member whose contents are in memory (`content` is `None` for directories and
    /// symlinks); hashes the contents. The content's size must match `kind`'s.
    #[must_use]
    pub fn new(
        path: &str,
        kind: MemberKind,
        link_target: Option<&str>,
        content: Option<Vec<u8>>,
    ) -> Member {
        let header = tar::header(path, kind, link_target);
        let content = content.map(|c| {
            let d = Digest::of(&c);
            (c, d)
        });
        let cut = cut_value(&header, content.as_ref().map(|c| &c.1));
        Member {
            header,
            content,
            cut,
        }
    }

    /// The digest of the contents (files only).
    #[must_use]
    pub fn digest(&self) -> Option<Digest> {
        self.content.as_ref().map(|c| c.1)
    }

    /// Content size in bytes.
    #[must_use]
    pub fn size(&self) -> u64 {
        self.content.as_ref().map_or(0, |c| c.0.len() as u64)
    }
}

/// Largest file contents stored inside a block; larger contents get content frames of their
/// own (store format §5.2).
pub const BLOCK_INLINE_MAX: u64 = 64 << 10;
/// A block holds at least this many bytes before a member's cut value may end it (store
/// format §5.2).
pub const BLOCK_MIN: usize = 64 << 10;
/// The block target: past [`BLOCK_MIN`], a member ends its block with probability
/// `weight / BLOCK_TARGET` (store format §5.2).
pub const BLOCK_TARGET: u64 = 256 << 10;
/// A block ends once it holds this many bytes, whatever the cut values say.
pub const BLOCK_MAX: usize = 1 << 20;

/// Whether the block ends after a member (with cut value `cut` and `size` content bytes
/// stored inline) that brought it to `block_len` bytes: content-defined, so a change moves
/// only the block ends next to it (store format §5.2).
#[must_use]
pub fn ends_block(block_len: usize, cut: u64, size: u64) -> bool {
    block_len >= BLOCK_MAX || (block_len >= BLOCK_MIN && cuts(cut, weight(size), BLOCK_TARGET))
}

/// Largest output a frame of a pack may decompress to: a content frame and its padding (a
/// block is far smaller).
pub const MAX_FRAME_OUTPUT: usize = FRAME_SIZE + 512;

/// Reads one object's frames from `frames` (exactly `entry.length` bytes), decompresses,
/// and verifies size and digest.
///
/// # Errors
/// `InvalidData` naming what does not match.
pub fn read_object(frames: &[u8], entry: &IndexEntry) -> io::Result<Vec<u8>> {
    let bytes = object_bytes(frames, entry)?;
    let actual = Digest::of(&bytes);
    if actual != entry.digest {
        return Err(invalid(&format!(
            "object {} hashes to {actual}",
            entry.digest
        )));
    }
    Ok(bytes)
}

/// The object's bytes from its frames, not verified: content frames decompress to exactly the
/// object and its padding; a block holds it at `skip`.
fn object_bytes(frames: &[u8], entry: &IndexEntry) -> io::Result<Vec<u8>> {
    let size = usize::try_from(entry.size).map_err(|_| invalid("object too large"))?;
    if entry.skip == 0 {
        let padded = size
            .checked_add(tar::padding(entry.size))
            .ok_or_else(|| invalid("object too large"))?;
        let mut bytes = decompress_frames(frames, padded)?;
        bytes.truncate(size);
        return Ok(bytes);
    }
    let block = decompress_block(frames)?;
    block_slice(&block, entry).map(<[u8]>::to_vec)
}

/// Decompresses one block frame (at most [`MAX_FRAME_OUTPUT`] bytes).
///
/// # Errors
/// `InvalidData` if the frame is corrupt or too large.
pub fn decompress_block(frame: &[u8]) -> io::Result<Vec<u8>> {
    let declared = zstd::zstd_safe::get_frame_content_size(frame)
        .ok()
        .flatten()
        .and_then(|n| usize::try_from(n).ok())
        .filter(|n| *n <= MAX_FRAME_OUTPUT)
        .ok_or_else(|| invalid("a block frame without a plausible content size"))?;
    let out = decompress_frames_bulk(frame, declared)?;
    if out.len() != declared {
        return Err(invalid(
            "a block frame decompresses to another size than it says",
        ));
    }
    Ok(out)
}

/// An object's bytes inside its decompressed block.
///
/// # Errors
/// `InvalidData` if the entry reaches past the block.
pub fn block_slice<'a>(block: &'a [u8], entry: &IndexEntry) -> io::Result<&'a [u8]> {
    usize::try_from(entry.skip)
        .ok()
        .zip(usize::try_from(entry.size).ok())
        .and_then(|(skip, size)| block.get(skip..skip.checked_add(size)?))
        .ok_or_else(|| invalid("the object reaches past the end of its block"))
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)]
// tests write fixtures directly
mod tests;
