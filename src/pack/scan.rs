//! Rebuilding a pack's index from the pack alone (for packs that arrive as layers from an
//! import or a pull), checking on the way that the pack has snap's frame structure (store
//! format §5.2): every member's header blocks inside one frame; a file's contents and padding
//! either inside the frame that holds its header (a block) or in frames of their own that
//! start right after it and end with it; a trailer frame; nothing after it.
//!
//! Streaming and bounded: frames are delimited by parsing zstd frame and block headers, and
//! no frame may decompress to more than [`MAX_FRAME_OUTPUT`], so neither a huge pack nor a
//! decompression bomb holds much memory.

use std::io::{self, Read};

use crate::digest::{Digest, Hasher};
use crate::pack::{Error, FRAME_SIZE, HeaderProblem, IndexEntry, MAX_FRAME_OUTPUT, PackIndex};

/// Largest compressed frame accepted (incompressible input plus zstd's overhead).
const MAX_FRAME_INPUT: usize = FRAME_SIZE + (FRAME_SIZE >> 6) + 1024;

/// Reads a whole pack and returns its index.
///
/// # Errors
/// [`Error`] naming the first thing that is not snap's pack structure, or the read error.
pub fn index_pack(input: &mut dyn Read) -> Result<PackIndex, Error> {
    let mut r = Frames {
        inner: input,
        offset: 0,
    };
    let mut entries = Vec::new();
    loop {
        let Some((start, frame)) = r.next_frame()? else {
            return Err(Error::NoTrailer);
        };
        let out = decompress(&frame, MAX_FRAME_OUTPUT)?;
        if out.len() == 1024 && out.iter().all(|b| *b == 0) {
            // The trailer: nothing may follow it.
            return match r.next_frame()? {
                None => Ok(PackIndex::new(entries)),
                Some(_) => Err(Error::AfterTrailer),
            };
        }
        if out.is_empty() {
            return Err(Error::EmptyFrame { at: start });
        }
        // The members whose headers are in this frame.
        let mut pos = 0;
        while pos < out.len() {
            let at = |problem| Error::Header {
                frame: start,
                pos,
                problem,
            };
            let hlen = header_len(&out[pos..]).map_err(at)?;
            let size = member_size(&out[pos..pos + hlen]).map_err(at)?;
            pos += hlen;
            if size == 0 {
                continue;
            }
            let padded = size + crate::pack::tar::padding(size) as u64;
            if pos == out.len() {
                // Contents in frames of their own.
                let (offset, length, digest) = content_frames(&mut r, size, padded, start)?;
                entries.push(IndexEntry::in_frames(digest, offset, length, size));
                continue;
            }
            // Contents inside this frame, after the header: a block.
            let end = usize::try_from(padded)
                .ok()
                .and_then(|p| pos.checked_add(p))
                .filter(|end| *end <= out.len())
                .ok_or(Error::CrossesFrame { frame: start, pos })?;
            let content_end = pos + usize::try_from(size).unwrap_or(usize::MAX);
            if out[content_end..end].iter().any(|b| *b != 0) {
                return Err(Error::Padding { frame: start });
            }
            entries.push(IndexEntry {
                digest: Digest::of(&out[pos..content_end]),
                offset: start,
                length: frame.len() as u64,
                skip: pos as u64,
                size,
            });
            pos = end;
        }
    }
}

/// Reads the content frames of a member of `size` bytes (`padded` with its padding) whose
/// header ended the frame at `start`: they must end exactly where the padding does. Returns
/// their offset, total length and the contents' digest.
fn content_frames(
    r: &mut Frames<'_>,
    size: u64,
    padded: u64,
    start: u64,
) -> Result<(u64, u64, Digest), Error> {
    let mut got = 0u64;
    let mut hasher = Hasher::new();
    let mut first = None;
    let mut length = 0u64;
    while got < padded {
        let (at, frame) = r.next_frame()?.ok_or(Error::EndsEarly { frame: start })?;
        first.get_or_insert(at);
        length += frame.len() as u64;
        let out = decompress(&frame, MAX_FRAME_OUTPUT)?;
        let remaining = padded - got;
        if out.len() as u64 > remaining || out.is_empty() {
            return Err(Error::ContentFrame { at });
        }
        // Hash the content part; the padding must be zeros.
        let content_left = size.saturating_sub(got);
        let split = usize::try_from(content_left.min(out.len() as u64)).unwrap_or(out.len());
        hasher.update(&out[..split]);
        if out[split..].iter().any(|b| *b != 0) {
            return Err(Error::Padding { frame: start });
        }
        got += out.len() as u64;
    }
    Ok((first.unwrap_or(start), length, hasher.finish()))
}

/// The length of the header blocks at the start of `buf`: one ustar block, or a PAX header,
/// its records and the ustar block. They must all be in `buf` (one frame).
fn header_len(buf: &[u8]) -> Result<usize, HeaderProblem> {
    let first = buf.get(..512).ok_or(HeaderProblem::HeaderCut)?;
    if first[156] != b'x' {
        return Ok(512);
    }
    let declared = octal(&first[124..136])?;
    let total = usize::try_from(declared)
        .ok()
        .and_then(|d| d.checked_add(511))
        .map(|d| d / 512 * 512)
        .and_then(|d| d.checked_add(1024))
        .ok_or(HeaderProblem::PaxSize)?;
    if buf.len() < total {
        return Err(HeaderProblem::PaxCut);
    }
    Ok(total)
}

/// The content size of the member whose header block(s) are `h`: the PAX `size` record if
/// any, else the ustar field. Only files, directories, symlinks and PAX headers are accepted.
fn member_size(h: &[u8]) -> Result<u64, HeaderProblem> {
    if h.len() < 512 || !h.len().is_multiple_of(512) {
        return Err(HeaderProblem::NotWholeBlocks);
    }
    let (pax, last) = h.split_at(h.len() - 512);
    let mut pax_size = None;
    if !pax.is_empty() {
        if pax[156] != b'x' {
            return Err(HeaderProblem::ExtraBlocks);
        }
        let declared = octal(&pax[124..136])?;
        let records = pax
            .get(512..512 + usize::try_from(declared).map_err(|_| HeaderProblem::PaxSize)?)
            .ok_or(HeaderProblem::PaxCut)?;
        for rec in String::from_utf8_lossy(records).lines() {
            if let Some((_, kv)) = rec.split_once(' ')
                && let Some(v) = kv.strip_prefix("size=")
            {
                pax_size = Some(v.parse::<u64>().map_err(|_| HeaderProblem::BadPaxSize)?);
            }
        }
    }
    if &last[257..262] != b"ustar" {
        return Err(HeaderProblem::NotUstar);
    }
    let size = match last[156] {
        b'0' | 0 => pax_size.map_or_else(|| octal(&last[124..136]), Ok)?,
        b'5' | b'2' => 0,
        t => {
            return Err(HeaderProblem::MemberType { kind: t as char });
        }
    };
    Ok(size)
}

fn octal(field: &[u8]) -> Result<u64, HeaderProblem> {
    let s: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| HeaderProblem::BadOctal { text: s.to_owned() })
}

fn decompress(frame: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    // A per-thread context: creating one costs more than decompressing a small frame. Output beyond `limit` is an error, never memory.
    let declared = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        _ => limit,
    };
    super::decompress_frames_bulk(frame, declared.min(limit)).map_err(|e| {
        match zstd::zstd_safe::get_frame_content_size(frame) {
            Ok(Some(n)) if n > limit as u64 => Error::FrameOutput { limit },
            _ => Error::BadFrame(e),
        }
    })
}

/// Splits a stream into zstd frames by their headers.
struct Frames<'a> {
    inner: &'a mut dyn Read,
    offset: u64,
}

impl Frames<'_> {
    /// The next frame's offset and bytes, or `None` at the end of the stream.
    fn next_frame(&mut self) -> Result<Option<(u64, Vec<u8>)>, Error> {
        let start = self.offset;
        let mut frame = Vec::new();
        let mut magic = [0u8; 4];
        match read_exact_or_eof(self.inner, &mut magic).map_err(Error::Read)? {
            0 => return Ok(None),
            4 => {}
            _ => return Err(Error::TruncatedFrame { at: start }),
        }
        if magic != [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(Error::NoFrame { at: start });
        }
        frame.extend_from_slice(&magic);
        self.offset += 4;
        let fhd = self.take(&mut frame, 1)?[0];
        let single_segment = fhd & 0x20 != 0;
        let checksum = fhd & 0x04 != 0;
        let dict_len = [0, 1, 2, 4][usize::from(fhd & 0x03)];
        let fcs_len = match fhd >> 6 {
            0 => usize::from(single_segment),
            1 => 2,
            2 => 4,
            _ => 8,
        };
        let rest = usize::from(!single_segment) + dict_len + fcs_len;
        self.take(&mut frame, rest)?;
        loop {
            let bh = self.take(&mut frame, 3)?;
            let header = u32::from(bh[0]) | u32::from(bh[1]) << 8 | u32::from(bh[2]) << 16;
            let last = header & 1 == 1;
            let size = (header >> 3) as usize;
            let content = match (header >> 1) & 3 {
                0 | 2 => size,
                1 => 1,
                _ => return Err(Error::ReservedBlock { at: start }),
            };
            if content > 128 << 10 {
                return Err(Error::OversizedBlock { at: start });
            }
            self.take(&mut frame, content)?;
            if frame.len() > MAX_FRAME_INPUT {
                return Err(Error::FrameTooLong { at: start });
            }
            if last {
                break;
            }
        }
        if checksum {
            self.take(&mut frame, 4)?;
        }
        Ok(Some((start, frame)))
    }

    fn take<'b>(&mut self, frame: &'b mut Vec<u8>, n: usize) -> Result<&'b [u8], Error> {
        let at = frame.len();
        frame.resize(at + n, 0);
        let got = read_exact_or_eof(self.inner, &mut frame[at..]).map_err(Error::Read)?;
        if got != n {
            return Err(Error::TruncatedFrame { at: self.offset });
        }
        self.offset += n as u64;
        Ok(&frame[at..])
    }
}

fn read_exact_or_eof(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation)]
mod tests {
    use super::*;
    use crate::digest::Digest;
    use crate::pack::{Member, MemberKind, PackWriter};

    fn pack(members: &[(&str, &[u8])]) -> io::Result<(Vec<u8>, PackIndex)> {
        let mut w = PackWriter::new(Vec::new());
        w.add(Member::new("d", MemberKind::Dir, None, None))?;
        for (p, c) in members {
            w.add(Member::new(
                p,
                MemberKind::File {
                    size: c.len() as u64,
                    executable: false,
                },
                None,
                Some(c.to_vec()),
            ))?;
        }
        w.add(Member::new(
            "l",
            MemberKind::Symlink,
            Some(&"t".repeat(300)),
            None,
        ))?;
        let (_, _, idx, bytes) = w.finish()?;
        Ok((bytes, idx))
    }

    #[test]
    fn the_scanned_index_equals_the_written_one() -> Result<(), Box<dyn std::error::Error>> {
        let big: Vec<u8> = (0..FRAME_SIZE * 2 + 999).map(|i| (i % 253) as u8).collect();
        let long_name = format!("{}/f", "n".repeat(300));
        let (bytes, idx) = pack(&[
            ("d/a", b"hello"),
            ("d/big", &big),
            ("d/e", b""),
            (&long_name, b"x"),
        ])?;
        assert_eq!(index_pack(&mut &bytes[..])?, idx);
        assert!(idx.find(&Digest::of(&big)).is_some());
        Ok(())
    }

    #[test]
    fn anything_but_snaps_structure_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        let (bytes, _) = pack(&[("d/a", b"hello world")])?;
        // A whole tar compressed as one stream is a valid layer but not a pack.
        let tar = zstd::stream::decode_all(&bytes[..])?;
        let single = zstd::stream::encode_all(&tar[..], 3)?;
        assert!(index_pack(&mut &single[..]).is_err());
        // Truncated, trailing garbage, flipped bytes.
        assert!(index_pack(&mut &bytes[..bytes.len() - 5]).is_err());
        let mut trailing = bytes.clone();
        trailing.extend_from_slice(b"junk");
        assert!(index_pack(&mut &trailing[..]).is_err());
        for i in (0..bytes.len()).step_by(7) {
            let mut bad = bytes.clone();
            bad[i] ^= 0x40;
            // Must not panic; may or may not detect (content changes are caught by digests).
            let _ = index_pack(&mut &bad[..]);
        }
        assert!(index_pack(&mut &b""[..]).is_err());
        Ok(())
    }

    /// A pack as store format version 1 wrote them: a frame for every member's header, content
    /// frames for every file.
    fn version_1_pack(members: &[(&str, &[u8])]) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        for (p, c) in members {
            let kind = MemberKind::File {
                size: c.len() as u64,
                executable: false,
            };
            out.extend(crate::pack::compress_frame(&crate::pack::tar::header(
                p, kind, None,
            ))?);
            if !c.is_empty() {
                let mut padded = c.to_vec();
                padded.resize(c.len() + crate::pack::tar::padding(c.len() as u64), 0);
                out.extend(crate::pack::compress_frame(&padded)?);
            }
        }
        out.extend(crate::pack::compress_frame(&crate::pack::tar::TRAILER)?);
        Ok(out)
    }

    #[test]
    fn version_1_packs_still_index() -> Result<(), Box<dyn std::error::Error>> {
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let members: [(&str, &[u8]); 3] = [("a", b"hello"), ("b", &big), ("c", b"")];
        let bytes = version_1_pack(&members)?;
        let idx = index_pack(&mut &bytes[..])?;
        assert_eq!(idx.entries().len(), 2);
        for (_, c) in &members[..2] {
            let e = idx.find(&Digest::of(c)).ok_or("indexed")?;
            assert_eq!(e.skip, 0, "content frames of its own");
            let frames = &bytes[e.offset as usize..(e.offset + e.length) as usize];
            assert_eq!(crate::pack::read_object(frames, e)?, *c);
        }
        Ok(())
    }

    #[test]
    fn blocks_index_as_written_and_members_may_not_straddle_frames()
    -> Result<(), Box<dyn std::error::Error>> {
        let smalls: Vec<(String, Vec<u8>)> = (0..60u8)
            .map(|i| (format!("d/f{i:02}"), vec![i; 7_000 + usize::from(i)]))
            .collect();
        let refs: Vec<(&str, &[u8])> = smalls.iter().map(|(p, c)| (p.as_str(), &c[..])).collect();
        let (bytes, idx) = pack(&refs)?;
        assert_eq!(index_pack(&mut &bytes[..])?, idx);
        assert!(idx.entries().iter().all(|e| e.skip > 0), "all in blocks");
        // The same tar cut into frames at 4,000-byte steps: members cross frame boundaries.
        let tar = zstd::stream::decode_all(&bytes[..])?;
        let (body, trailer) = tar.split_at(tar.len() - 1024);
        let mut recut = Vec::new();
        for chunk in body.chunks(4_000) {
            recut.extend(crate::pack::compress_frame(chunk)?);
        }
        recut.extend(crate::pack::compress_frame(trailer)?);
        let e = index_pack(&mut &recut[..]).expect_err("straddling members");
        assert!(
            matches!(
                e,
                Error::CrossesFrame { .. }
                    | Error::Header {
                        problem: HeaderProblem::HeaderCut | HeaderProblem::PaxCut,
                        ..
                    }
            ),
            "{e}"
        );
        Ok(())
    }
}
