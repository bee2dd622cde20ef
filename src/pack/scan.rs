//! Rebuilding a pack's index from the pack alone (for packs that arrive as layers from an
//! import or a pull), checking on the way that the pack has exactly snap's frame structure
//! (store format §5.2): a header frame per member, content frames holding exactly the member's
//! bytes and padding, a trailer frame, nothing after it.
//!
//! Streaming and bounded: frames are delimited by parsing zstd frame and block headers, and
//! no frame may decompress to more than [`super::FRAME_SIZE`] plus a tar padding block, so
//! neither a huge pack nor a decompression bomb holds much memory.

use std::io::{self, Read};

use crate::digest::Hasher;
use crate::pack::{FRAME_SIZE, IndexEntry, PackIndex};

/// Largest decompressed frame a pack may have.
const MAX_FRAME_OUTPUT: usize = FRAME_SIZE + 512;
/// Largest compressed frame accepted (incompressible input plus zstd's overhead).
const MAX_FRAME_INPUT: usize = FRAME_SIZE + (FRAME_SIZE >> 6) + 1024;
/// Largest header frame (a PAX header with long names, and the ustar block).
const MAX_HEADER_OUTPUT: usize = 64 << 10;

/// Reads a whole pack and returns its index.
///
/// # Errors
/// A reason naming the first thing that is not snap's pack structure, or an I/O error.
pub fn index_pack(input: &mut dyn Read) -> Result<PackIndex, String> {
    let mut r = Frames {
        inner: input,
        offset: 0,
    };
    let mut entries = Vec::new();
    loop {
        let Some((start, frame)) = r.next_frame()? else {
            return Err("the pack ends without its trailer frame".into());
        };
        let header = decompress(&frame, MAX_HEADER_OUTPUT)?;
        if header.len() == 1024 && header.iter().all(|b| *b == 0) {
            // The trailer: nothing may follow it.
            return match r.next_frame()? {
                None => Ok(PackIndex::new(entries)),
                Some(_) => Err("data after the trailer frame".into()),
            };
        }
        let size = member_size(&header).map_err(|e| format!("member header at {start}: {e}"))?;
        if size == 0 {
            continue;
        }
        let padded = size + crate::pack::tar::padding(size) as u64;
        let mut got = 0u64;
        let mut hasher = Hasher::new();
        let mut first = None;
        let mut length = 0u64;
        while got < padded {
            let (at, frame) = r
                .next_frame()?
                .ok_or_else(|| format!("member at {start} ends early"))?;
            first.get_or_insert(at);
            length += frame.len() as u64;
            let out = decompress(&frame, MAX_FRAME_OUTPUT)?;
            let remaining = padded - got;
            if out.len() as u64 > remaining || out.is_empty() {
                return Err(format!(
                    "content frame at {at} does not end at the member's end"
                ));
            }
            // Hash the content part; the padding must be zeros.
            let content_left = size.saturating_sub(got);
            let split = usize::try_from(content_left.min(out.len() as u64)).unwrap_or(out.len());
            hasher.update(&out[..split]);
            if out[split..].iter().any(|b| *b != 0) {
                return Err(format!("tar padding of the member at {start} is not zero"));
            }
            got += out.len() as u64;
        }
        entries.push(IndexEntry {
            digest: hasher.finish(),
            offset: first.unwrap_or(start),
            length,
            size,
        });
    }
}

/// The content size of the member whose header block(s) are `h`: the PAX `size` record if
/// any, else the ustar field. Only files, directories, symlinks and PAX headers are accepted.
fn member_size(h: &[u8]) -> Result<u64, String> {
    if h.len() < 512 || !h.len().is_multiple_of(512) {
        return Err("not a whole number of tar blocks".into());
    }
    let (pax, last) = h.split_at(h.len() - 512);
    let mut pax_size = None;
    if !pax.is_empty() {
        if pax[156] != b'x' {
            return Err("extra header blocks that are not a PAX header".into());
        }
        let declared = octal(&pax[124..136])?;
        let records = pax
            .get(512..512 + usize::try_from(declared).map_err(|_| "PAX size")?)
            .ok_or("PAX records truncated")?;
        for rec in String::from_utf8_lossy(records).lines() {
            if let Some((_, kv)) = rec.split_once(' ')
                && let Some(v) = kv.strip_prefix("size=")
            {
                pax_size = Some(v.parse::<u64>().map_err(|_| "bad PAX size")?);
            }
        }
    }
    if &last[257..262] != b"ustar" {
        return Err("not a ustar header".into());
    }
    let size = match last[156] {
        b'0' | 0 => pax_size.map_or_else(|| octal(&last[124..136]), Ok)?,
        b'5' | b'2' => 0,
        t => {
            return Err(format!(
                "member type `{}` is not a file, directory or symlink",
                t as char
            ));
        }
    };
    Ok(size)
}

fn octal(field: &[u8]) -> Result<u64, String> {
    let s: String = field
        .iter()
        .take_while(|b| **b != 0 && **b != b' ')
        .map(|b| *b as char)
        .collect();
    let s = s.trim();
    if s.is_empty() {
        return Ok(0);
    }
    u64::from_str_radix(s, 8).map_err(|_| format!("bad octal number `{s}`"))
}

fn decompress(frame: &[u8], limit: usize) -> Result<Vec<u8>, String> {
    // A per-thread context: packs have two frames per member, and creating a context costs
    // more than decompressing a small one. Output beyond `limit` is an error, never memory.
    let declared = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) => usize::try_from(n).unwrap_or(usize::MAX),
        _ => limit,
    };
    super::decompress_frames_bulk(frame, declared.min(limit)).map_err(|e| {
        match zstd::zstd_safe::get_frame_content_size(frame) {
            Ok(Some(n)) if n > limit as u64 => {
                format!("a frame decompresses to more than {limit} bytes")
            }
            _ => format!("bad zstd frame: {e}"),
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
    fn next_frame(&mut self) -> Result<Option<(u64, Vec<u8>)>, String> {
        let start = self.offset;
        let mut frame = Vec::new();
        let mut magic = [0u8; 4];
        match read_exact_or_eof(self.inner, &mut magic).map_err(|e| e.to_string())? {
            0 => return Ok(None),
            4 => {}
            _ => return Err(format!("truncated frame at {start}")),
        }
        if magic != [0x28, 0xb5, 0x2f, 0xfd] {
            return Err(format!("no zstd frame at {start}"));
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
                _ => return Err(format!("reserved block type in the frame at {start}")),
            };
            if content > 128 << 10 {
                return Err(format!("oversized block in the frame at {start}"));
            }
            self.take(&mut frame, content)?;
            if frame.len() > MAX_FRAME_INPUT {
                return Err(format!(
                    "the frame at {start} is larger than any snap writes"
                ));
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

    fn take<'b>(&mut self, frame: &'b mut Vec<u8>, n: usize) -> Result<&'b [u8], String> {
        let at = frame.len();
        frame.resize(at + n, 0);
        let got = read_exact_or_eof(self.inner, &mut frame[at..]).map_err(|e| e.to_string())?;
        if got != n {
            return Err(format!("truncated frame at {}", self.offset));
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
    use crate::pack::{MemberKind, PackWriter, encode_member};

    fn pack(members: &[(&str, &[u8])]) -> io::Result<(Vec<u8>, PackIndex)> {
        let mut w = PackWriter::new(Vec::new());
        w.add(&encode_member("d", MemberKind::Dir, None, None)?)?;
        for (p, c) in members {
            w.add(&encode_member(
                p,
                MemberKind::File {
                    size: c.len() as u64,
                    executable: false,
                },
                None,
                Some(c),
            )?)?;
        }
        w.add(&encode_member(
            "l",
            MemberKind::Symlink,
            Some(&"t".repeat(300)),
            None,
        )?)?;
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
}
