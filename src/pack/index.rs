//! A pack's index (`.idx`, store format §5.3): where each object sits, encoded and decoded
//! (every decoded entry checked to lie inside its pack and frame).

use super::{Error, MAX_FRAME_OUTPUT};
use crate::digest::{Digest, Hasher};

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
pub(super) const IDX_MAGIC: &[u8; 8] = b"SNAPIDX2";
pub(super) const IDX_ENTRY: usize = 64;
/// The index of store format 1 (no `skip`: every object starts its frames); still read.
pub(super) const IDX1_MAGIC: &[u8; 8] = b"SNAPIDX1";
pub(super) const IDX1_ENTRY: usize = 56;

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
    /// [`Error`] if the checksum fails, the layout is wrong, entries are unsorted or point
    /// outside the pack.
    pub fn decode(bytes: &[u8], pack_len: u64) -> Result<Self, Error> {
        let entry_len = match bytes.get(..8) {
            Some(m) if m == IDX_MAGIC => IDX_ENTRY,
            Some(m) if m == IDX1_MAGIC => IDX1_ENTRY,
            _ => return Err(Error::NotAnIndex),
        };
        if bytes.len() < 48 {
            return Err(Error::NotAnIndex);
        }
        let (body, sum) = bytes.split_at(bytes.len() - 32);
        if Digest::of(body).as_bytes()[..] != *sum {
            return Err(Error::IndexChecksum);
        }
        let claimed = u64::from_le_bytes(body[8..16].try_into().map_err(|_| Error::NotAnIndex)?);
        let count = usize::try_from(claimed).map_err(|_| Error::IndexLength {
            count: claimed,
            bytes: body.len(),
        })?;
        let expected = count.checked_mul(entry_len).and_then(|n| n.checked_add(16));
        if expected != Some(body.len()) {
            return Err(Error::IndexLength {
                count: claimed,
                bytes: body.len(),
            });
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
                return Err(Error::OutsidePack { digest: e.digest });
            }
            if e.skip
                .checked_add(e.size)
                .is_none_or(|end| end > MAX_FRAME_OUTPUT as u64)
                && e.skip > 0
            {
                return Err(Error::OutsideFrame { digest: e.digest });
            }
            if entries
                .last()
                .is_some_and(|p: &IndexEntry| p.digest >= e.digest)
            {
                return Err(Error::Unsorted);
            }
            entries.push(e);
        }
        Ok(PackIndex { entries })
    }
}
