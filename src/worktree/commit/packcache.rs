//! The pack cache: which groups, blocks and content frames the store already holds in packs,
//! by what they hold, so a commit reuses a pack whose members are unchanged, and copies the
//! unchanged blocks of a group it rebuilds instead of reading and compressing them again.
//!
//! A pack is a pure function of its members (their tar headers and contents) and of the
//! encoder (the zstd build, level and frame rules): the same members give the same bytes
//! (store format §5). So the cache maps a *key* — a SHA-256 over the members' recorded paths,
//! kinds, sizes, symlink targets and content digests, everything their headers and contents
//! are made of — to where those bytes already are:
//!
//! * a group key to a pack (digest and length);
//! * a block key to a block frame (pack, offset, length);
//! * a content digest to the content frames of a file too big for a block (pack, offset,
//!   length).
//!
//! Records hold no names at all, only digests and numbers, so nothing a file name holds can
//! forge one. The file is derived data (store format §9.1): its body ends with its SHA-256 and
//! it names the encoder that wrote the packs; if either does not match, or it cannot be
//! parsed, it is ignored whole. A record is also checked against the pack's index before it is
//! used (`worktree::commit::groups`), so a pack removed by `gc` or a stale record only costs the work.
//!
//! Format: the line `snap-pack-cache 1`, the encoder line ([`crate::pack::encoder_id`]), then
//! `u64 count` and `count` records of 81 bytes — `u8 kind` (1 group, 2 block, 3 content),
//! `32 key`, `32 pack digest`, `u64 a`, `u64 b` (a group's pack length and 0; a frame's offset
//! and length), little-endian — then the SHA-256 of everything before it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::digest::{Digest, Hasher};

const MAGIC: &[u8] = b"snap-pack-cache 1\n";
const RECORD: usize = 81;
/// Records kept besides this commit's: enough for a few other trees, bounded.
const MIN_KEPT: usize = 4096;

/// What a record points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A group's pack: `(pack, length, 0)`.
    Group = 1,
    /// A block frame: `(pack, offset, length)`.
    Block = 2,
    /// A file's content frames: `(pack, offset, length)`.
    Content = 3,
}

/// Where the bytes for a key are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Place {
    /// The pack.
    pub pack: Digest,
    /// A group's pack length; a frame's offset.
    pub a: u64,
    /// A frame's length (0 for a group).
    pub b: u64,
}

/// The pack cache of a store.
#[derive(Debug, Default)]
pub struct PackCache {
    records: HashMap<(Kind, Digest), Place>,
    /// Oldest last, as read.
    order: Vec<(Kind, Digest)>,
    checksum: Option<Digest>,
}

/// The records a commit used or made, in order.
#[derive(Debug, Default)]
pub struct Used {
    records: Vec<(Kind, Digest, Place)>,
}

impl Used {
    /// Notes a record.
    pub fn push(&mut self, kind: Kind, key: Digest, place: Place) {
        self.records.push((kind, key, place));
    }

    /// Takes `other`'s records after these.
    pub fn append(&mut self, other: &mut Used) {
        self.records.append(&mut other.records);
    }

    /// How many records.
    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl PackCache {
    fn path(store_dir: &Path) -> PathBuf {
        crate::store::cache_file(store_dir, "packs.v1")
    }

    fn header() -> Vec<u8> {
        let mut h = MAGIC.to_vec();
        h.extend_from_slice(crate::pack::encoder_id().as_bytes());
        h.push(b'\n');
        h
    }

    /// Loads the cache; empty if missing, damaged anywhere, or written for another encoder.
    #[must_use]
    pub fn load(store_dir: &Path) -> PackCache {
        Self::try_load(&Self::path(store_dir)).unwrap_or_default()
    }

    fn try_load(path: &Path) -> Option<PackCache> {
        let bytes = std::fs::read(path).ok()?;
        let sum_at = bytes.len().checked_sub(32)?;
        let (body, sum) = bytes.split_at(sum_at);
        let checksum = Digest::of(body);
        if checksum.as_bytes()[..] != *sum {
            return None;
        }
        let rest = body.strip_prefix(&Self::header()[..])?;
        let (count, rest) = rest.split_at_checked(8)?;
        let count = usize::try_from(u64::from_le_bytes(count.try_into().ok()?)).ok()?;
        if count.checked_mul(RECORD) != Some(rest.len()) {
            return None;
        }
        let mut cache = PackCache {
            checksum: Some(checksum),
            ..PackCache::default()
        };
        for r in rest.chunks_exact(RECORD) {
            let kind = match r[0] {
                1 => Kind::Group,
                2 => Kind::Block,
                3 => Kind::Content,
                _ => return None,
            };
            let key = Digest::from_bytes(r[1..33].try_into().ok()?);
            let place = Place {
                pack: Digest::from_bytes(r[33..65].try_into().ok()?),
                a: u64::from_le_bytes(r[65..73].try_into().ok()?),
                b: u64::from_le_bytes(r[73..81].try_into().ok()?),
            };
            if cache.records.insert((kind, key), place).is_none() {
                cache.order.push((kind, key));
            }
        }
        Some(cache)
    }

    /// Where the bytes for `key` are, if recorded.
    #[must_use]
    pub fn get(&self, kind: Kind, key: &Digest) -> Option<Place> {
        self.records.get(&(kind, *key)).copied()
    }

    /// Whether nothing is recorded.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Writes this commit's records first, then earlier ones (newest first) while the total
    /// stays under four times this commit's count (at least `MIN_KEPT`). Skipped when that
    /// is what the file already holds; replaced atomically otherwise.
    ///
    /// # Errors
    /// The I/O error, for the caller to ignore.
    pub fn save(&self, store_dir: &Path, used: &Used) -> std::io::Result<bool> {
        let keep = (used.len() * 4).max(MIN_KEPT);
        let mut seen = std::collections::HashSet::new();
        let mut out: Vec<(Kind, Digest, Place)> = Vec::new();
        for r in &used.records {
            if seen.insert((r.0, r.1)) {
                out.push(*r);
            }
        }
        for k in &self.order {
            if out.len() >= keep {
                break;
            }
            if seen.insert(*k) {
                out.push((k.0, k.1, self.records[k]));
            }
        }
        let mut body = Self::header();
        body.extend_from_slice(&(out.len() as u64).to_le_bytes());
        for (kind, key, p) in &out {
            body.push(*kind as u8);
            body.extend_from_slice(key.as_bytes());
            body.extend_from_slice(p.pack.as_bytes());
            body.extend_from_slice(&p.a.to_le_bytes());
            body.extend_from_slice(&p.b.to_le_bytes());
        }
        let checksum = Digest::of(&body);
        if Some(checksum) == self.checksum {
            return Ok(false);
        }
        body.extend_from_slice(checksum.as_bytes());
        let path = Self::path(store_dir);
        let dir = path.parent().unwrap_or(store_dir);
        crate::fs::create_dir_all(dir)?;
        crate::fs::write_atomic(&path, &body)?;
        Ok(true)
    }
}

/// Hashes what a run of members is made of: the key of a block, or of a one-member group.
#[derive(Clone)]
pub struct KeyHasher(Hasher);

impl Default for KeyHasher {
    fn default() -> Self {
        let mut h = Hasher::new();
        h.update(b"snap-members\0");
        KeyHasher(h)
    }
}

impl KeyHasher {
    /// Adds a member: everything its tar header and contents are made of. Names and targets
    /// go in with their lengths first, so no bytes in them can pass for another field.
    pub fn member(
        &mut self,
        path: &str,
        kind: u8,
        size: u64,
        digest: Option<&Digest>,
        target: Option<&str>,
    ) {
        let h = &mut self.0;
        h.update(&(path.len() as u64).to_le_bytes());
        h.update(path.as_bytes());
        h.update(&[kind]);
        h.update(&size.to_le_bytes());
        h.update(digest.map_or(&[0u8; 32], Digest::as_bytes).as_slice());
        let t = target.unwrap_or("");
        h.update(&(t.len() as u64).to_le_bytes());
        h.update(t.as_bytes());
    }

    /// The key.
    #[must_use]
    pub fn finish(self) -> Digest {
        self.0.finish()
    }
}

/// The key of a group: its blocks' keys, in order (a group is its blocks, and a group cut
/// always ends a block).
#[must_use]
pub fn group_key(block_keys: &[Digest]) -> Digest {
    let mut h = Hasher::new();
    h.update(b"snap-group\0");
    for k in block_keys {
        h.update(k.as_bytes());
    }
    h.finish()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;

    fn place(n: u8) -> Place {
        Place {
            pack: Digest::of(&[n]),
            a: u64::from(n),
            b: 7,
        }
    }

    #[test]
    fn records_round_trip_and_any_damage_drops_the_file() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = tempfile::tempdir()?;
        let mut used = Used::default();
        used.push(Kind::Group, Digest::of(b"g"), place(1));
        used.push(Kind::Block, Digest::of(b"b"), place(2));
        used.push(Kind::Content, Digest::of(b"c"), place(3));
        assert!(PackCache::default().save(dir.path(), &used)?);
        let c = PackCache::load(dir.path());
        assert_eq!(c.get(Kind::Group, &Digest::of(b"g")), Some(place(1)));
        assert_eq!(c.get(Kind::Block, &Digest::of(b"b")), Some(place(2)));
        assert_eq!(c.get(Kind::Content, &Digest::of(b"c")), Some(place(3)));
        assert_eq!(c.get(Kind::Block, &Digest::of(b"g")), None, "kinds apart");
        assert!(!c.save(dir.path(), &used)?, "nothing new: not rewritten");

        let path = PackCache::path(dir.path());
        let good = std::fs::read(&path)?;
        for i in [
            0,
            10,
            MAGIC.len() + 2,
            good.len() - 100,
            good.len() - 40,
            good.len() - 1,
        ] {
            let mut bad = good.clone();
            bad[i] ^= 1;
            std::fs::write(&path, &bad)?;
            assert!(PackCache::load(dir.path()).is_empty(), "flip at {i}");
        }
        for n in [1, 32, 81, good.len() - 1] {
            std::fs::write(&path, &good[..good.len() - n])?;
            assert!(PackCache::load(dir.path()).is_empty(), "{n} bytes short");
        }
        Ok(())
    }

    #[test]
    fn older_records_are_kept_up_to_a_bound() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut many = Used::default();
        for i in 0..MIN_KEPT + 10 {
            many.push(Kind::Block, Digest::of(&i.to_le_bytes()), place(1));
        }
        PackCache::default().save(dir.path(), &many)?;
        let mut one = Used::default();
        one.push(Kind::Group, Digest::of(b"new"), place(2));
        PackCache::load(dir.path()).save(dir.path(), &one)?;
        let c = PackCache::load(dir.path());
        assert_eq!(c.records.len(), MIN_KEPT);
        assert!(c.get(Kind::Group, &Digest::of(b"new")).is_some());
        assert!(
            c.get(Kind::Block, &Digest::of(&0usize.to_le_bytes()))
                .is_some()
        );
        Ok(())
    }

    #[test]
    fn keys_tell_members_apart() {
        let key = |members: &[(&str, u8, u64, Option<&str>)]| {
            let mut k = KeyHasher::default();
            for (p, kind, size, t) in members {
                k.member(p, *kind, *size, None, *t);
            }
            k.finish()
        };
        let a = key(&[("ab", b'f', 1, None)]);
        assert_ne!(a, key(&[("a", b'f', 1, None)]));
        assert_ne!(a, key(&[("ab", b'x', 1, None)]));
        assert_ne!(a, key(&[("ab", b'f', 2, None)]));
        assert_ne!(
            key(&[("a", b'l', 0, Some("b")), ("c", b'd', 0, None)]),
            key(&[("a", b'l', 0, Some("b\0\0\0\0\0\0\0\0\u{1}c"))])
        );
    }
}
