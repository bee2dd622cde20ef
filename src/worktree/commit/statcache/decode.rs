//! Decoding the cache file: the segment table, sections and entry records, every read
//! bounds-checked (a damaged file yields `None`, never a panic); and the two length helpers
//! the encoder shares.

use super::{
    ENTRY_RACY, MAGIC, MAX_CACHE_BYTES, Record, SECTION_COMPLETE, SECTION_TREE, SEGMENT_ROW,
    Section, TreeRecord,
};
use crate::digest::Digest;
use crate::worktree::commit::scan::FileStat;

/// Reads one section at `r`: its directory (as a range of the body) and where it is.
pub(super) fn read_section(r: &mut Reader<'_>) -> Option<(std::ops::Range<usize>, Section)> {
    let start = r.at;
    let path = r.bytes_u32()?;
    let recorded = match r.u8()? {
        0 => None,
        1 => Some(r.bytes_u32()?),
        _ => return None,
    };
    let flags = r.u8()?;
    let tree = if flags & SECTION_TREE != 0 {
        Some(TreeRecord {
            digest: r.digest()?,
            size: r.u64()?,
            cut: r.u64()?,
        })
    } else {
        None
    };
    let age = r.u32()?;
    let count = r.u32()?;
    let entries_start = r.at;
    let mut last: Option<&[u8]> = None;
    for _ in 0..count {
        let rec = r.record()?;
        // Sorted and unique, as written: the merge with a scan relies on it.
        if last.is_some_and(|l| l >= rec.name) {
            return None;
        }
        last = Some(rec.name);
    }
    let section = Section {
        raw: start..r.at,
        recorded: recorded.map(|(s, e)| s..e),
        complete: flags & SECTION_COMPLETE != 0,
        tree,
        age,
        entries: entries_start..r.at,
        count,
    };
    Some((path.0..path.1, section))
}

/// The segment table of a cache file: each frame's offset and length in the file, its
/// decompressed length and SHA-256. `None` unless the header, the table's checksum, the frames'
/// extent and the total size are all as they must be.
pub(super) fn table(bytes: &[u8]) -> Option<Vec<(u64, u64, usize, Digest)>> {
    if !bytes.starts_with(MAGIC) {
        return None;
    }
    let sum_at = bytes.len().checked_sub(32)?;
    let count_at = sum_at.checked_sub(4)?;
    let count =
        usize::try_from(u32::from_le_bytes(bytes[count_at..sum_at].try_into().ok()?)).ok()?;
    let table_at = count_at.checked_sub(count.checked_mul(SEGMENT_ROW)?)?;
    if table_at < MAGIC.len()
        || Digest::of(&bytes[table_at..sum_at]).as_bytes()[..] != bytes[sum_at..]
    {
        return None;
    }
    let mut r = Reader::new(&bytes[..count_at], table_at);
    let mut at = MAGIC.len() as u64;
    let mut total = 0u64;
    let mut rows = Vec::with_capacity(count);
    for _ in 0..count {
        let len = r.u64()?;
        let raw_len = r.u64()?;
        let sha = r.digest()?;
        total = total.checked_add(raw_len)?;
        rows.push((at, len, usize::try_from(raw_len).ok()?, sha));
        at = at.checked_add(len)?;
    }
    (at == table_at as u64 && total <= MAX_CACHE_BYTES).then_some(rows)
}

pub(super) fn count_u32(n: usize) -> u32 {
    u32::try_from(n).expect("a directory holds fewer than 2^32 entries")
}

pub(super) fn put_bytes_u32(body: &mut Vec<u8>, bytes: &[u8]) {
    body.extend_from_slice(&count_u32(bytes.len()).to_le_bytes());
    body.extend_from_slice(bytes);
}

/// Bounds-checked reading of the body.
#[derive(Clone)]
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8], at: usize) -> Self {
        Reader { bytes, at }
    }

    pub(super) fn is_done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    pub(super) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(s)
    }

    pub(super) fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    pub(super) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }

    pub(super) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    pub(super) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    pub(super) fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }

    pub(super) fn digest(&mut self) -> Option<Digest> {
        Some(Digest::from_bytes(self.take(32)?.try_into().ok()?))
    }

    /// A length-prefixed byte string, as its range in the body.
    pub(super) fn bytes_u32(&mut self) -> Option<(usize, usize)> {
        let n = usize::try_from(self.u32()?).ok()?;
        let start = self.at;
        self.take(n)?;
        Some((start, self.at))
    }

    pub(super) fn record(&mut self) -> Option<Record<'a>> {
        let kind = self.u8()?;
        let flags = self.u8()?;
        let n = usize::from(self.u16()?);
        let name = self.take(n)?;
        if name.is_empty() {
            return None;
        }
        let cut = self.u64()?;
        let mut rec = Record {
            kind,
            racy: flags & ENTRY_RACY != 0,
            name,
            cut,
            stat: None,
            target: None,
        };
        match kind {
            b'f' | b'x' => {
                let stat = FileStat {
                    size: self.u64()?,
                    mtime_ns: self.i128()?,
                    ctime_ns: self.i128()?,
                    ino: self.u64()?,
                    dev: self.u64()?,
                };
                rec.stat = Some((stat, self.digest()?));
            }
            b'l' => {
                let (s, e) = self.bytes_u32()?;
                rec.target = Some(&self.bytes[s..e]);
            }
            b'd' => {}
            _ => return None,
        }
        Some(rec)
    }
}
