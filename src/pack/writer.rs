//! Writing a pack: members gathered into blocks and content frames, compressed in parallel,
//! written in order, indexed as they go.

use std::io::{self, Write};

use super::tar;
use super::{
    BLOCK_INLINE_MAX, FRAME_SIZE, IndexEntry, Member, PackIndex, compress_frame, ends_block,
};
use crate::digest::{Digest, HashingWriter};

/// Input a [`PackWriter`] gathers before compressing it, in parallel, and writing it.
pub(super) const FLUSH_BYTES: usize = 16 << 20;

/// A frame decided but not yet compressed.
pub(super) enum FrameInput {
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
    pub(super) fn input(&self) -> Option<&[u8]> {
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

    pub(super) fn end_block(&mut self) {
        if !self.block.is_empty() {
            self.pending_bytes += self.block.len();
            self.pending.push(FrameInput::Block(
                std::mem::take(&mut self.block),
                std::mem::take(&mut self.block_objects),
            ));
        }
    }

    /// Compresses the pending frames on the rayon pool and writes them in order.
    pub(super) fn flush(&mut self) -> io::Result<()> {
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
