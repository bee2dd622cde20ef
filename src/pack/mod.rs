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

use std::io::{self, Write};

use crate::digest::{Digest, Hasher, HashingWriter};

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
/// Input a [`PackWriter`] gathers before compressing it, in parallel, and writing it.
const FLUSH_BYTES: usize = 16 << 20;

/// A frame decided but not yet compressed.
enum FrameInput {
    /// A block: members' headers and small contents; the objects in it as (digest, skip,
    /// size).
    Block(Vec<u8>, Vec<(Digest, u64, u64)>),
    /// One of a file's content frames: the first carries the object (digest, size), the last
    /// is marked.
    Content(Vec<u8>, Option<(Digest, u64)>, bool),
    /// A block's frame, already compressed (copied from a pack that holds the same block).
    CopiedBlock(Vec<u8>, Vec<(Digest, u64, u64)>),
    /// A file's content frames, already compressed: the object (digest, size).
    CopiedContent(Vec<u8>, (Digest, u64)),
}

impl FrameInput {
    /// What to compress, or `None` for frames that are already compressed.
    fn input(&self) -> Option<&[u8]> {
        match self {
            FrameInput::Block(b, _) | FrameInput::Content(b, _, _) => Some(b),
            FrameInput::CopiedBlock(..) | FrameInput::CopiedContent(..) => None,
        }
    }
}

/// Writes a pack: members in order cut into blocks and content frames (store format §5.2),
/// then the trailer frame. Frames are compressed in parallel, `FLUSH_BYTES` at a time.
pub struct PackWriter<W: Write> {
    out: HashingWriter<W>,
    entries: Vec<IndexEntry>,
    members: u64,
    block: Vec<u8>,
    block_objects: Vec<(Digest, u64, u64)>,
    pending: Vec<FrameInput>,
    pending_bytes: usize,
    /// The object whose content frames are being written: digest, size, offset, length.
    open: Option<(Digest, u64, u64, u64)>,
    /// Offset and length of every block frame written, in order.
    blocks: Vec<(u64, u64)>,
}

impl<W: Write> PackWriter<W> {
    /// Starts a pack on `out`.
    pub fn new(out: W) -> Self {
        PackWriter {
            out: HashingWriter::new(out),
            entries: Vec::new(),
            members: 0,
            block: Vec::new(),
            block_objects: Vec::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            open: None,
            blocks: Vec::new(),
        }
    }

    /// Whether no member was added.
    pub fn is_empty(&self) -> bool {
        self.members == 0
    }

    /// Members added so far.
    pub fn members(&self) -> u64 {
        self.members
    }

    /// Appends a member.
    ///
    /// # Errors
    /// Any write error, or one from zstd.
    pub fn add(&mut self, m: Member) -> io::Result<()> {
        self.members += 1;
        self.block.extend_from_slice(&m.header);
        let cut = m.cut;
        let mut inline = 0;
        if let Some((mut bytes, digest)) = m.content
            && !bytes.is_empty()
        {
            let size = bytes.len() as u64;
            inline = size;
            let pad = tar::padding(size);
            if size <= BLOCK_INLINE_MAX {
                self.block_objects
                    .push((digest, self.block.len() as u64, size));
                self.block.extend_from_slice(&bytes);
                self.block.resize(self.block.len() + pad, 0);
            } else {
                self.end_block();
                self.pending_bytes += bytes.len() + pad;
                if bytes.len() <= FRAME_SIZE {
                    bytes.resize(bytes.len() + pad, 0);
                    self.pending
                        .push(FrameInput::Content(bytes, Some((digest, size)), true));
                } else {
                    let n = bytes.len().div_ceil(FRAME_SIZE);
                    for (i, chunk) in bytes.chunks(FRAME_SIZE).enumerate() {
                        let mut input = chunk.to_vec();
                        if i + 1 == n {
                            input.resize(chunk.len() + pad, 0);
                        }
                        self.pending.push(FrameInput::Content(
                            input,
                            (i == 0).then_some((digest, size)),
                            i + 1 == n,
                        ));
                    }
                }
            }
        }
        if !self.block.is_empty() && ends_block(self.block.len(), cut, inline) {
            self.end_block();
        }
        if self.pending_bytes >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Whether no block is open: the next member starts a block (where a copied block may go).
    pub fn at_block_start(&self) -> bool {
        self.block.is_empty()
    }

    /// Appends a block that was compressed before: `frame` is exactly what compressing the
    /// block's bytes gives, `members` the members whose headers it holds, `objects` the
    /// (digest, skip, size) of the contents inside it. `tail` carries the compressed content
    /// frames of its last member, if its contents are not inside the block.
    ///
    /// # Errors
    /// `InvalidInput` if a block is open (a copied block must start a block), or any write
    /// error.
    pub fn copy_block(
        &mut self,
        frame: Vec<u8>,
        objects: Vec<(Digest, u64, u64)>,
        members: u64,
        tail: Option<(Vec<u8>, Digest, u64)>,
    ) -> io::Result<()> {
        if !self.block.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a copied block must start a block",
            ));
        }
        self.members += members;
        self.pending_bytes += frame.len();
        self.pending.push(FrameInput::CopiedBlock(frame, objects));
        if let Some((frames, digest, size)) = tail {
            self.pending_bytes += frames.len();
            self.pending
                .push(FrameInput::CopiedContent(frames, (digest, size)));
        }
        if self.pending_bytes >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends a member whose contents (more than [`BLOCK_INLINE_MAX`] bytes, so in content
    /// frames of their own) were compressed before: `frames` is exactly what compressing them
    /// and their padding gives.
    ///
    /// # Errors
    /// `InvalidInput` for contents that belong inside a block, or any write error.
    pub fn add_framed(
        &mut self,
        header: &[u8],
        frames: Vec<u8>,
        digest: Digest,
        size: u64,
    ) -> io::Result<()> {
        if size <= BLOCK_INLINE_MAX {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "contents this small belong inside a block",
            ));
        }
        self.members += 1;
        self.block.extend_from_slice(header);
        self.end_block();
        self.pending_bytes += frames.len();
        self.pending
            .push(FrameInput::CopiedContent(frames, (digest, size)));
        if self.pending_bytes >= FLUSH_BYTES {
            self.flush()?;
        }
        Ok(())
    }

    fn end_block(&mut self) {
        if !self.block.is_empty() {
            self.pending_bytes += self.block.len();
            self.pending.push(FrameInput::Block(
                std::mem::take(&mut self.block),
                std::mem::take(&mut self.block_objects),
            ));
        }
    }

    /// Compresses the pending frames on the rayon pool and writes them in order.
    fn flush(&mut self) -> io::Result<()> {
        use rayon::prelude::*;
        let pending = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        let compressed: Vec<Option<io::Result<Vec<u8>>>> = pending
            .par_iter()
            .map(|f| f.input().map(compress_frame))
            .collect();
        for (f, c) in pending.into_iter().zip(compressed) {
            let offset = self.out.len();
            let length = match (&f, c) {
                (_, Some(c)) => {
                    let c = c?;
                    self.out.write_all(&c)?;
                    c.len() as u64
                }
                (FrameInput::CopiedBlock(frame, _) | FrameInput::CopiedContent(frame, _), None) => {
                    self.out.write_all(frame)?;
                    frame.len() as u64
                }
                _ => unreachable!("only copied frames have nothing to compress"),
            };
            match f {
                FrameInput::Block(_, objects) | FrameInput::CopiedBlock(_, objects) => {
                    self.blocks.push((offset, length));
                    for (digest, skip, size) in objects {
                        self.entries.push(IndexEntry {
                            digest,
                            offset,
                            length,
                            skip,
                            size,
                        });
                    }
                }
                FrameInput::Content(_, first, last) => {
                    if let Some((digest, size)) = first {
                        self.open = Some((digest, size, offset, 0));
                    }
                    if let Some(o) = &mut self.open {
                        o.3 += length;
                    }
                    if last && let Some((digest, size, offset, length)) = self.open.take() {
                        self.entries
                            .push(IndexEntry::in_frames(digest, offset, length, size));
                    }
                }
                FrameInput::CopiedContent(_, (digest, size)) => {
                    self.entries
                        .push(IndexEntry::in_frames(digest, offset, length, size));
                }
            }
        }
        Ok(())
    }

    /// Appends a member whose content frames are streamed by `write_content`, which returns
    /// the contents' digest and size once done. The header ends the current block.
    ///
    /// # Errors
    /// Any error of `write_content` or of writing.
    pub fn add_streamed(
        &mut self,
        header: &[u8],
        write_content: impl FnOnce(&mut dyn Write) -> io::Result<(Digest, u64)>,
    ) -> io::Result<()> {
        self.block.extend_from_slice(header);
        self.end_block();
        self.flush()?;
        let offset = self.out.len();
        let (digest, size) = write_content(&mut self.out)?;
        let length = self.out.len() - offset;
        if size > 0 {
            self.entries
                .push(IndexEntry::in_frames(digest, offset, length, size));
        }
        self.members += 1;
        Ok(())
    }

    /// Writes the last block and the trailer frame, and returns the pack's digest, its length,
    /// its index and the inner writer.
    ///
    /// # Errors
    /// Any write error.
    pub fn finish(self) -> io::Result<(Digest, u64, PackIndex, W)> {
        let f = self.finish_with_blocks()?;
        Ok((f.digest, f.len, f.index, f.inner))
    }

    /// Like [`PackWriter::finish`], also giving where every block frame went.
    ///
    /// # Errors
    /// Any write error.
    pub fn finish_with_blocks(mut self) -> io::Result<Finished<W>> {
        self.end_block();
        self.flush()?;
        self.out.write_all(&compress_frame(&tar::TRAILER)?)?;
        let (digest, len, inner) = self.out.finish();
        Ok(Finished {
            digest,
            len,
            index: PackIndex::new(self.entries),
            blocks: self.blocks,
            inner,
        })
    }
}

/// A finished pack.
#[derive(Debug)]
pub struct Finished<W> {
    /// The pack's digest.
    pub digest: Digest,
    /// Its length in bytes.
    pub len: u64,
    /// Its index.
    pub index: PackIndex,
    /// Offset and length of each block frame, in pack order (content frames and the trailer
    /// are not blocks).
    pub blocks: Vec<(u64, u64)>,
    /// The writer it was written to.
    pub inner: W,
}

/// Where one object sits in a pack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The object's digest.
    pub digest: Digest,
    /// Offset of the first frame holding it: its block, or its first content frame.
    pub offset: u64,
    /// Total length of the frames holding it.
    pub length: u64,
    /// Bytes the frames decompress to before the object's first byte: its place in its
    /// block; 0 for content frames.
    pub skip: u64,
    /// Object size (content frames hold size + padding bytes).
    pub size: u64,
}

impl IndexEntry {
    /// An object in content frames of its own (`skip` 0).
    #[must_use]
    pub fn in_frames(digest: Digest, offset: u64, length: u64, size: u64) -> IndexEntry {
        IndexEntry {
            digest,
            offset,
            length,
            skip: 0,
            size,
        }
    }
}

/// A pack's index: entries sorted by digest, unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackIndex {
    entries: Vec<IndexEntry>,
}

/// The index written since store format 2: entries carry `skip`.
const IDX_MAGIC: &[u8; 8] = b"SNAPIDX2";
const IDX_ENTRY: usize = 64;
/// The index of store format 1 (no `skip`: every object starts its frames); still read.
const IDX1_MAGIC: &[u8; 8] = b"SNAPIDX1";
const IDX1_ENTRY: usize = 56;

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
            out.extend_from_slice(&e.skip.to_le_bytes());
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
        let entry_len = match bytes.get(..8) {
            Some(m) if m == IDX_MAGIC => IDX_ENTRY,
            Some(m) if m == IDX1_MAGIC => IDX1_ENTRY,
            _ => return Err("not a pack index (bad magic or too short)".into()),
        };
        if bytes.len() < 48 {
            return Err("not a pack index (bad magic or too short)".into());
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Digest::of(body).as_bytes()[..] != *sum {
            return Err("pack index checksum mismatch".into());
        }
        let count = u64::from_le_bytes(body[8..16].try_into().map_err(|_| "short header")?);
        let count = usize::try_from(count).map_err(|_| "absurd entry count")?;
        let expected = count.checked_mul(entry_len).and_then(|n| n.checked_add(16));
        if expected != Some(body.len()) {
            return Err(format!(
                "pack index claims {count} entries but has {} bytes",
                body.len()
            ));
        }
        let mut entries = Vec::with_capacity(count);
        for chunk in body[16..].chunks_exact(entry_len) {
            let u = |r: std::ops::Range<usize>| {
                u64::from_le_bytes(chunk[r].try_into().expect("8-byte slice of an entry"))
            };
            let mut d = [0u8; 32];
            d.copy_from_slice(&chunk[..32]);
            let (skip, size) = if entry_len == IDX_ENTRY {
                (u(48..56), u(56..64))
            } else {
                (0, u(48..56))
            };
            let e = IndexEntry {
                digest: Digest::from_bytes(d),
                offset: u(32..40),
                length: u(40..48),
                skip,
                size,
            };
            if e.offset
                .checked_add(e.length)
                .is_none_or(|end| end > pack_len)
            {
                return Err(format!("entry {} lies outside the pack", e.digest));
            }
            if e.skip
                .checked_add(e.size)
                .is_none_or(|end| end > MAX_FRAME_OUTPUT as u64)
                && e.skip > 0
            {
                return Err(format!("entry {} lies outside its frame", e.digest));
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
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;
    use std::io::Read;

    fn build(
        members: &[(&str, MemberKind, Option<&str>, Option<&[u8]>)],
    ) -> io::Result<(Vec<u8>, PackIndex)> {
        let mut w = PackWriter::new(Vec::new());
        for (p, k, l, c) in members {
            w.add(Member::new(p, *k, *l, c.map(<[u8]>::to_vec)))?;
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

    fn file(size: usize) -> MemberKind {
        MemberKind::File {
            size: size as u64,
            executable: false,
        }
    }

    /// The frames of a pack: (offset, compressed length, decompressed length).
    fn frames(pack: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < pack.len() {
            let n = zstd::zstd_safe::find_frame_compressed_size(&pack[at..]).expect("a frame");
            let size = zstd::zstd_safe::get_frame_content_size(&pack[at..])
                .ok()
                .flatten()
                .expect("content size") as usize;
            out.push((at, n, size));
            at += n;
        }
        out
    }

    #[test]
    fn small_files_share_blocks_and_large_ones_get_frames() -> io::Result<()> {
        // 64 KiB is the most a block holds inline; one byte more gets frames of its own.
        let inline = vec![7u8; BLOCK_INLINE_MAX as usize];
        let own = vec![8u8; BLOCK_INLINE_MAX as usize + 1];
        let smalls: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10_000]).collect();
        let mut members: Vec<(String, Vec<u8>)> =
            vec![("a".into(), inline.clone()), ("b".into(), own.clone())];
        for (i, c) in smalls.iter().enumerate() {
            members.push((format!("s{i:02}"), c.clone()));
        }
        let mut w = PackWriter::new(Vec::new());
        for (p, c) in &members {
            w.add(Member::new(p, file(c.len()), None, Some(c.clone())))?;
        }
        let (_, _, idx, pack) = w.finish()?;
        // [a's header, a, b's header] [b's contents and padding] [the small members, in
        // blocks that end where their cut values say, once past 64 KiB] [the trailer]
        let member = 512 + 10_240;
        let mut small_blocks = Vec::new();
        let mut open = 0;
        for (p, c) in &members[2..] {
            open += member;
            let m = Member::new(p, file(c.len()), None, Some(c.clone()));
            if ends_block(open, m.cut, c.len() as u64) {
                small_blocks.push(open);
                open = 0;
            }
        }
        if open > 0 {
            small_blocks.push(open);
        }
        let sizes: Vec<usize> = frames(&pack).iter().map(|f| f.2).collect();
        let mut expected = vec![512 + inline.len() + 512, own.len() + 511];
        expected.extend(&small_blocks);
        expected.push(1024);
        assert_eq!(sizes, expected);
        assert!(small_blocks.len() >= 2, "{small_blocks:?}");
        for b in &small_blocks[..small_blocks.len() - 1] {
            assert!(
                (BLOCK_MIN..BLOCK_MAX + member).contains(b),
                "{small_blocks:?}"
            );
        }
        let a = idx.find(&Digest::of(&inline)).ok_or_else(|| invalid("a"))?;
        assert_eq!((a.offset, a.skip), (0, 512));
        let b = idx.find(&Digest::of(&own)).ok_or_else(|| invalid("b"))?;
        assert_eq!(b.skip, 0, "b has frames of its own");
        // Every object reads alone, and the whole pack is still one tar.
        for (_, c) in &members {
            let e = idx.find(&Digest::of(c)).ok_or_else(|| invalid("indexed"))?;
            let bytes = &pack[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(&read_object(bytes, e)?, c);
        }
        let tar_bytes = zstd::stream::decode_all(&pack[..])?;
        assert_eq!(
            ::tar::Archive::new(&tar_bytes[..]).entries()?.count(),
            members.len()
        );
        Ok(())
    }

    #[test]
    fn version_1_indexes_read_with_skip_zero() -> io::Result<()> {
        let (pack, idx) = build(&[("x", file(3), None, Some(b"abc"))])?;
        let e = idx.entries()[0];
        let mut v1 = Vec::new();
        v1.extend_from_slice(b"SNAPIDX1");
        v1.extend_from_slice(&1u64.to_le_bytes());
        v1.extend_from_slice(e.digest.as_bytes());
        for n in [e.offset, e.length, e.size] {
            v1.extend_from_slice(&n.to_le_bytes());
        }
        let sum = Digest::of(&v1);
        v1.extend_from_slice(sum.as_bytes());
        let decoded = PackIndex::decode(&v1, pack.len() as u64).map_err(|e| invalid(&e))?;
        assert_eq!(decoded.entries()[0], IndexEntry { skip: 0, ..e });
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

    /// Small members with distinct contents of a few KiB each.
    fn smalls(n: usize, salt: u8) -> Vec<(String, Vec<u8>)> {
        (0..n)
            .map(|i| {
                let len = 1000 + (i * 7919) % 6000;
                let c: Vec<u8> = (0..len)
                    .map(|j| (i.wrapping_mul(31) ^ j ^ usize::from(salt)) as u8)
                    .collect();
                (format!("d/f{i:04}"), c)
            })
            .collect()
    }

    fn block_frames(members: &[(String, Vec<u8>)]) -> io::Result<Vec<Vec<u8>>> {
        let mut w = PackWriter::new(Vec::new());
        for (p, c) in members {
            w.add(Member::new(p, file(c.len()), None, Some(c.clone())))?;
        }
        let f = w.finish_with_blocks()?;
        Ok(f.blocks
            .iter()
            .map(|(o, l)| f.inner[*o as usize..(o + l) as usize].to_vec())
            .collect())
    }

    #[test]
    fn block_ends_are_content_defined_so_a_change_moves_only_nearby_ones() -> io::Result<()> {
        let before = smalls(600, 0);
        let mut after = before.clone();
        after[40].1.extend_from_slice(b"one more line\n");
        after.insert(300, ("d/f0299b".into(), vec![9u8; 3000]));
        after.remove(500);
        let a = block_frames(&before)?;
        let b = block_frames(&after)?;
        let same = a.iter().filter(|f| b.contains(f)).count();
        assert!(a.len() > 8, "{} blocks", a.len());
        assert!(
            same + 6 >= a.len(),
            "three changes, {same} of {} blocks kept",
            a.len()
        );
        Ok(())
    }

    #[test]
    fn copied_blocks_and_frames_give_the_bytes_compressing_gives() -> io::Result<()> {
        let mut members = smalls(300, 1);
        members.insert(
            120,
            ("d/big".into(), vec![5u8; BLOCK_INLINE_MAX as usize + 77]),
        );
        let mut w = PackWriter::new(Vec::new());
        for (p, c) in &members {
            w.add(Member::new(p, file(c.len()), None, Some(c.clone())))?;
        }
        let orig = w.finish_with_blocks()?;
        let pack = &orig.inner;
        let slice = |o: u64, l: u64| pack[o as usize..(o + l) as usize].to_vec();

        // The same members again, each block copied whole from the first pack (with the big
        // file's content frames after its header's block), except one block that is built.
        let mut w = PackWriter::new(Vec::new());
        let mut at = 0;
        for (bi, (offset, length)) in orig.blocks.iter().enumerate() {
            // The members of this block: until the writer would end it.
            let mut len = 0;
            let start = at;
            let mut tail = None;
            while at < members.len() {
                let (p, c) = &members[at];
                let m = Member::new(p, file(c.len()), None, Some(c.clone()));
                len += m.header.len();
                at += 1;
                if c.len() as u64 > BLOCK_INLINE_MAX {
                    let e = orig
                        .index
                        .find(&Digest::of(c))
                        .ok_or_else(|| invalid("big"))?;
                    tail = Some((slice(e.offset, e.length), e.digest, e.size));
                    break;
                }
                len += c.len() + tar::padding(c.len() as u64);
                if ends_block(len, m.cut, c.len() as u64) {
                    break;
                }
            }
            if bi == 3 {
                for (p, c) in &members[start..at] {
                    let m = Member::new(p, file(c.len()), None, Some(c.clone()));
                    match &tail {
                        Some((frames, d, size)) if c.len() as u64 > BLOCK_INLINE_MAX => {
                            w.add_framed(&m.header, frames.clone(), *d, *size)?;
                        }
                        _ => w.add(m)?,
                    }
                }
                assert!(w.at_block_start(), "block {bi} ends where the rule says");
                continue;
            }
            let objects: Vec<(Digest, u64, u64)> = orig
                .index
                .entries()
                .iter()
                .filter(|e| e.offset == *offset && e.skip > 0)
                .map(|e| (e.digest, e.skip, e.size))
                .collect();
            w.copy_block(slice(*offset, *length), objects, (at - start) as u64, tail)?;
        }
        assert_eq!(at, members.len(), "every member is in a block");
        let copy = w.finish_with_blocks()?;
        assert_eq!(copy.inner, orig.inner, "byte for byte");
        assert_eq!(copy.index, orig.index);
        assert_eq!(copy.blocks, orig.blocks);
        Ok(())
    }

    #[test]
    fn a_copied_block_must_start_a_block() -> io::Result<()> {
        let mut w = PackWriter::new(Vec::new());
        w.add(Member::new("x", file(1), None, Some(vec![1])))?;
        assert!(!w.at_block_start());
        assert!(w.copy_block(Vec::new(), Vec::new(), 1, None).is_err());
        Ok(())
    }
}
