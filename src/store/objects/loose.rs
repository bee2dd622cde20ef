//! Loose objects: one file per object, compressed in frames, written once (temp, fsync,
//! rename, read-only; store format §4).

use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use rayon::prelude::*;

use super::{Error, OBJECT_MODE, Objects, io_err};
use crate::digest::{Digest, HashingReader};
use crate::fs::{self, AtomicFile};
use crate::pack;

impl Objects {
    /// Stores `bytes` as a loose object (if not already present) and returns its digest.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn put(&self, bytes: &[u8]) -> Result<Digest, Error> {
        let digest = Digest::of(bytes);
        // A copy inside a pack is looked for only in indexes loaded already: loading every
        // pack's index to spare writing one small object costs more than the object (a
        // commit's config and manifest are new; a second copy is only space, which gc keeps
        // or frees with the first).
        if !self.locate_direct(&digest).is_empty() || self.in_loaded_packs(&digest) {
            return Ok(digest);
        }
        let target = self.loose_path(&digest);
        let dir = target.parent().expect("loose paths have a fan-out parent");
        fs::create_dir_all(dir).map_err(|e| io_err("creating directory", dir, e))?;
        // Temp files live in `objects/sha256/` itself, never in a fan-out directory, so the
        // sweep of leftovers need not read the fan-out directories.
        let mut tmp = AtomicFile::new_in(&self.loose_dir)
            .map_err(|e| io_err("creating a temp file in", &self.loose_dir, e))?;
        for chunk in chunks_or_empty(bytes) {
            let frame =
                pack::compress_frame(chunk).map_err(|e| io_err("writing", tmp.path(), e))?;
            tmp.write_all(&frame)
                .map_err(|e| io_err("writing", &target, e))?;
        }
        if tmp
            .persist_new(&target, Some(OBJECT_MODE))
            .map_err(|e| io_err("renaming into place", &target, e))?
        {
            self.note_created(digest, target.clone());
        }
        fs::sync_dir(dir).map_err(|e| io_err("syncing directory", dir, e))?;
        Ok(digest)
    }

    /// Streams `reader` into a loose object, compressing [`pack::FRAME_SIZE`] chunks on all
    /// cores with bounded memory, and returns its digest and size.
    ///
    /// # Errors
    /// [`Error::Io`], naming `source_path` for read errors.
    pub fn put_stream(
        &self,
        reader: &mut dyn Read,
        source_path: &Path,
    ) -> Result<(Digest, u64), Error> {
        fs::create_dir_all(&self.loose_dir)
            .map_err(|e| io_err("creating directory", &self.loose_dir, e))?;
        let mut tmp = AtomicFile::new_in(&self.loose_dir)
            .map_err(|e| io_err("creating a temp file in", &self.loose_dir, e))?;
        let tmp_path = tmp.path().to_owned();
        let (digest, size) = {
            let mut out = BufWriter::new(&mut tmp);
            let res = compress_stream(reader, &mut out, false)
                .map_err(|e| stream_err(e, source_path, &tmp_path))?;
            out.flush().map_err(|e| io_err("writing", &tmp_path, e))?;
            res
        };
        let target = self.loose_path(&digest);
        if target.exists() {
            return Ok((digest, size));
        }
        let dir = target.parent().expect("loose paths have a fan-out parent");
        fs::create_dir_all(dir).map_err(|e| io_err("creating directory", dir, e))?;
        if tmp
            .persist_new(&target, Some(OBJECT_MODE))
            .map_err(|e| io_err("renaming into place", &target, e))?
        {
            self.note_created(digest, target.clone());
        }
        fs::sync_dir(dir).map_err(|e| io_err("syncing directory", dir, e))?;
        Ok((digest, size))
    }
}

pub(super) fn chunks_or_empty(bytes: &[u8]) -> Vec<&[u8]> {
    if bytes.is_empty() {
        vec![bytes]
    } else {
        bytes.chunks(pack::FRAME_SIZE).collect()
    }
}

/// Where a streaming compression failed.
#[derive(Debug)]
pub enum StreamError {
    /// Reading the source failed.
    Read(io::Error),
    /// Writing the output failed.
    Write(io::Error),
}

pub(super) fn stream_err(e: StreamError, source: &Path, out: &Path) -> Error {
    match e {
        StreamError::Read(e) => io_err("reading", source, e),
        StreamError::Write(e) => io_err("writing", out, e),
    }
}

/// Reads `reader` to the end in [`pack::FRAME_SIZE`] chunks, compresses batches of chunks in
/// parallel, and writes the frames in order. With `pad`, the tar padding goes into the last
/// frame. Returns the digest and size of the input. Memory: a few chunks at a time.
///
/// # Errors
/// [`StreamError`] saying whether reading or writing failed.
pub fn compress_stream(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    pad: bool,
) -> Result<(Digest, u64), StreamError> {
    let batch = rayon::current_num_threads().clamp(1, 8);
    let mut hashing = HashingReader::new(reader);
    let mut pending: Option<Vec<u8>> = None;
    let mut wrote_any = false;
    loop {
        let mut chunks = Vec::with_capacity(batch + 1);
        if let Some(p) = pending.take() {
            chunks.push(p);
        }
        let mut eof = false;
        while chunks.len() < batch + 1 {
            let chunk = read_chunk(&mut hashing).map_err(StreamError::Read)?;
            if chunk.is_empty() {
                eof = true;
                break;
            }
            chunks.push(chunk);
        }
        // Keep one chunk back unless at the end, so padding lands in the true last frame.
        if !eof && let Some(last) = chunks.pop() {
            pending = Some(last);
        }
        if eof
            && pad
            && let Some(last) = chunks.last_mut()
        {
            let total = hashing.len();
            last.resize(last.len() + crate::pack::tar::padding(total), 0);
        }
        if eof && chunks.is_empty() && !wrote_any && !pad {
            // An empty object is one empty frame.
            chunks.push(Vec::new());
        }
        let frames: Vec<io::Result<Vec<u8>>> =
            chunks.par_iter().map(|c| pack::compress_frame(c)).collect();
        for f in frames {
            let f = f.map_err(StreamError::Write)?;
            out.write_all(&f).map_err(StreamError::Write)?;
            wrote_any = true;
        }
        if eof {
            break;
        }
    }
    let (digest, len, _) = hashing.finish();
    Ok((digest, len))
}

pub(super) fn read_chunk(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(pack::FRAME_SIZE);
    r.take(pack::FRAME_SIZE as u64).read_to_end(&mut buf)?;
    Ok(buf)
}
