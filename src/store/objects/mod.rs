//! Objects in the store: loose objects, packs, and the index over every pack.
//!
//! Format: store format §4 (loose) and §5 (packs). Invariants: an object file is written
//! once via temp + fsync + rename and made read-only; every read verifies the digest (and the
//! size, where one is recorded). A pack's `.idx` is written before the pack is renamed into
//! place; an index without its pack is skipped (and swept), so objects are found only in
//! packs that are wholly there.
//!
//! This module never moves refs.
//!
//! Cut by concept: `loose.rs` writes loose objects (compressed in frames, streamed),
//! `packset.rs` writes, adopts and indexes packs and keeps the index over all of them,
//! `reader.rs` reads one object wherever it is, verifying as it goes.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::digest::Digest;
use crate::pack::{IndexEntry, PackIndex};

mod loose;
mod packset;
mod reader;

pub use loose::{StreamError, compress_stream};
use packset::PackSet;
pub(crate) use packset::index_digest;
pub use reader::ObjectReader;

/// Read-only mode of object files.
const OBJECT_MODE: u32 = 0o444;

/// Objects of one store.
pub struct Objects {
    loose_dir: PathBuf,
    packs_dir: PathBuf,
    index: RwLock<Option<Arc<PackSet>>>,
    /// Objects this process created (loose object paths and pack paths), so a failed command
    /// can take back what nothing references: see [`crate::store::Store::roll_back`].
    created: std::sync::Mutex<Vec<(Digest, PathBuf)>>,
}

/// A pack just written ([`Objects::finish_pack_detailed`]).
#[derive(Debug)]
pub struct FinishedPack {
    /// The pack's digest.
    pub digest: Digest,
    /// Its length.
    pub len: u64,
    /// Whether it was new (another commit may have written the same pack).
    pub new: bool,
    /// Its index.
    pub index: PackIndex,
    /// Offset and length of each block frame, in pack order.
    pub blocks: Vec<(u64, u64)>,
}

/// Where an object's bytes are.
#[derive(Clone, Debug)]
pub enum Location {
    /// The empty object: present in every store without being stored (empty files are
    /// members without content frames in packs, so there is nothing to point at).
    Empty,
    /// A loose object file (zstd frames).
    Loose(PathBuf),
    /// A pack file; the object is the pack itself (a layer).
    Pack(PathBuf),
    /// Inside a pack, found through its index.
    InPack {
        /// The pack file.
        pack: PathBuf,
        /// Where in the pack.
        entry: IndexEntry,
    },
}

/// The directory of packs and their indexes, inside the store directory.
pub(crate) const PACKS_DIR: &str = "packs";

impl Objects {
    pub(crate) fn new(store_dir: &Path) -> Self {
        Objects {
            loose_dir: store_dir.join("objects").join("sha256"),
            packs_dir: store_dir.join(PACKS_DIR),
            index: RwLock::new(None),
            created: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// The directory holding packs.
    #[must_use]
    pub fn packs_dir(&self) -> &Path {
        &self.packs_dir
    }

    /// The path a loose object has (whether or not it exists).
    #[must_use]
    pub fn loose_path(&self, digest: &Digest) -> PathBuf {
        let hex = digest.hex();
        self.loose_dir.join(&hex[..2]).join(&hex[2..])
    }

    /// The path of the pack whose digest is `digest`.
    #[must_use]
    pub fn pack_path(&self, digest: &Digest) -> PathBuf {
        self.packs_dir.join(format!("{}.pack", digest.hex()))
    }

    fn idx_path(&self, digest: &Digest) -> PathBuf {
        self.packs_dir.join(format!("{}.idx", digest.hex()))
    }

    /// Where `digest` is stored, if anywhere (the preferred copy).
    #[must_use]
    pub fn locate(&self, digest: &Digest) -> Option<Location> {
        // The first of `locate_all`, without loading the pack indexes when a loose copy or a
        // pack that is the object comes first (a ref update checks its new target so).
        self.locate_direct(digest)
            .into_iter()
            .next()
            .or_else(|| self.locate_packed(digest).into_iter().next())
    }

    /// Every stored copy of `digest`, preferred first: loose, a pack that is the object,
    /// then copies inside packs.
    #[must_use]
    pub fn locate_all(&self, digest: &Digest) -> Vec<Location> {
        let mut out = self.locate_direct(digest);
        if out.is_empty() {
            out.extend(self.locate_packed(digest));
        } else {
            out.extend(Self::locate_in(&self.pack_set(), digest));
        }
        out
    }

    /// Every stored copy of `digest` for reading many objects in a row (a restore): copies in
    /// packs first, from the indexes in memory; the others (`stat` calls) only if those run out.
    pub fn locate_all_packed_first(&self, digest: &Digest) -> impl Iterator<Item = Location> {
        // The empty blob is in every store, and cannot be damaged.
        (*digest == Digest::EMPTY)
            .then_some(Location::Empty)
            .into_iter()
            .chain(Self::locate_in(&self.pack_set(), digest))
            .chain(std::iter::once_with(|| self.locate_direct(digest)).flatten())
    }

    /// Copies found without the pack indexes: the empty blob, loose, a pack that is the object.
    fn locate_direct(&self, digest: &Digest) -> Vec<Location> {
        let mut out = Vec::new();
        if *digest == Digest::EMPTY {
            out.push(Location::Empty);
        }
        let loose = self.loose_path(digest);
        if loose.exists() {
            out.push(Location::Loose(loose));
        }
        let pack = self.pack_path(digest);
        if pack.exists() {
            out.push(Location::Pack(pack));
        }
        out
    }

    /// Whether the pack indexes are loaded and list `digest` (loads nothing).
    fn in_loaded_packs(&self, digest: &Digest) -> bool {
        self.index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .is_some_and(|set| set.objects.contains_key(digest))
    }

    /// Copies inside packs (loads the pack indexes on first use; after a miss, looks for packs
    /// stored since).
    fn locate_packed(&self, digest: &Digest) -> Vec<Location> {
        let out = Self::locate_in(&self.pack_set(), digest);
        if out.is_empty() && self.load_new_packs() {
            return Self::locate_in(&self.pack_set(), digest);
        }
        out
    }

    fn locate_in(set: &PackSet, digest: &Digest) -> Vec<Location> {
        let mut out = Vec::new();
        if let Some(first) = set.objects.get(digest) {
            out.push(set.location(*first));
            for more in set.more.get(digest).into_iter().flatten() {
                out.push(set.location(*more));
            }
        }
        out
    }

    /// Whether `digest` is stored.
    #[must_use]
    pub fn contains(&self, digest: &Digest) -> bool {
        self.locate(digest).is_some()
    }

    /// Reads a whole object into memory, verified; refuses objects over `limit` bytes.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::TooLarge`], [`Error::Corrupt`] or [`Error::Io`].
    pub fn read(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, Error> {
        let mut first_error = None;
        // Loose copies first: reading a manifest or config never needs the pack indexes.
        let direct = self.locate_direct(digest);
        let mut tried_packed = false;
        let mut locations = direct
            .into_iter()
            .collect::<std::collections::VecDeque<_>>();
        loop {
            let Some(location) = locations.pop_front() else {
                if tried_packed {
                    break;
                }
                tried_packed = true;
                locations.extend(self.locate_packed(digest));
                continue;
            };
            match self.read_at(digest, location, limit) {
                Ok(bytes) => return Ok(bytes),
                // A damaged copy: another copy may be intact.
                Err(e @ Error::Corrupt { .. }) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_error.unwrap_or(Error::NotFound(*digest)))
    }

    /// Reads the copy of `digest` that `pack`'s index places at `entry`, verified, for a
    /// caller that holds that index already (reading through [`Objects::read`] would load
    /// every pack's index first).
    ///
    /// # Errors
    /// [`Error::TooLarge`], [`Error::Corrupt`] or [`Error::Io`].
    pub fn read_in_pack(
        &self,
        digest: &Digest,
        pack: &Digest,
        entry: IndexEntry,
        limit: u64,
    ) -> Result<Vec<u8>, Error> {
        let location = Location::InPack {
            pack: self.pack_path(pack),
            entry,
        };
        self.read_at(digest, location, limit)
    }

    fn read_at(&self, digest: &Digest, location: Location, limit: u64) -> Result<Vec<u8>, Error> {
        let mut r = self.open_at(digest, location)?;
        let mut out = Vec::new();
        (&mut r)
            .take(limit.saturating_add(1))
            .read_to_end(&mut out)
            .map_err(|e| r.error(e))?;
        if out.len() as u64 > limit {
            return Err(Error::TooLarge {
                digest: *digest,
                limit,
            });
        }
        r.finish()?;
        Ok(out)
    }

    /// Opens an object for streaming. The reader verifies the digest when it reaches the end
    /// and fails the final `read` on mismatch; call [`ObjectReader::finish`] to be sure it
    /// was read to the end and verified.
    ///
    /// # Errors
    /// [`Error::NotFound`] or [`Error::Io`].
    pub fn open(&self, digest: &Digest) -> Result<ObjectReader, Error> {
        let location = self.locate(digest).ok_or(Error::NotFound(*digest))?;
        ObjectReader::open(*digest, location)
    }

    /// Opens the copy of `digest` at `location` (for checking one specific copy).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open_at(&self, digest: &Digest, location: Location) -> Result<ObjectReader, Error> {
        ObjectReader::open(*digest, location)
    }

    /// Reads the copy of `digest` at `location` to the end, verifying it; returns its size.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Io`].
    pub fn verify_at(&self, digest: &Digest, location: Location) -> Result<u64, Error> {
        let mut r = self.open_at(digest, location)?;
        let n = io::copy(&mut r, &mut io::sink()).map_err(|e| r.error(e))?;
        r.finish()?;
        Ok(n)
    }

    /// Digests of loose objects whose hex starts with `prefix` (at least 2 hex digits).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn loose_with_prefix(&self, prefix: &str) -> Result<Vec<Digest>, Error> {
        let Some(fan) = prefix.get(..2) else {
            return Ok(Vec::new());
        };
        let dir = self.loose_dir.join(fan);
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &dir, e)),
        };
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| io_err("listing", &dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Ok(d) = Digest::from_hex(&format!("{fan}{name}"))
                && d.has_hex_prefix(prefix)
            {
                out.push(d);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Every loose object file and its digest (by name), plus stray files found there.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn list_loose(&self) -> Result<(Vec<(Digest, PathBuf)>, Vec<PathBuf>), Error> {
        let mut objects = Vec::new();
        let mut strays = Vec::new();
        let rd = match std::fs::read_dir(&self.loose_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((objects, strays)),
            Err(e) => return Err(io_err("listing", &self.loose_dir, e)),
        };
        for fan in rd {
            let fan = fan.map_err(|e| io_err("listing", &self.loose_dir, e))?;
            let fan_name = fan.file_name().to_string_lossy().into_owned();
            if !fan.path().is_dir() {
                strays.push(fan.path());
                continue;
            }
            for obj in
                std::fs::read_dir(fan.path()).map_err(|e| io_err("listing", &fan.path(), e))?
            {
                let obj = obj.map_err(|e| io_err("listing", &fan.path(), e))?;
                let name = obj.file_name().to_string_lossy().into_owned();
                match Digest::from_hex(&format!("{fan_name}{name}")) {
                    Ok(d) => objects.push((d, obj.path())),
                    Err(_) => strays.push(obj.path()),
                }
            }
        }
        objects.sort();
        Ok((objects, strays))
    }

    /// Every pack (by name) with its index path, plus stray files in the packs directory.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn list_packs(&self) -> Result<(Vec<(Digest, PathBuf, PathBuf)>, Vec<PathBuf>), Error> {
        let (packs, strays, _orphans) = self.list_packs_and_orphans()?;
        Ok((packs, strays))
    }

    /// Indexes whose pack is not there: what a writer killed between writing a pack's index
    /// and renaming the pack leaves behind.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn orphan_indexes(&self) -> Result<Vec<PathBuf>, Error> {
        Ok(self.list_packs_and_orphans()?.2)
    }

    #[allow(clippy::type_complexity)]
    fn list_packs_and_orphans(
        &self,
    ) -> Result<(Vec<(Digest, PathBuf, PathBuf)>, Vec<PathBuf>, Vec<PathBuf>), Error> {
        let mut packs = Vec::new();
        let mut strays = Vec::new();
        let mut orphans = Vec::new();
        let rd = match std::fs::read_dir(&self.packs_dir) {
            Ok(rd) => rd,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((packs, strays, orphans)),
            Err(e) => return Err(io_err("listing", &self.packs_dir, e)),
        };
        for entry in rd {
            let entry = entry.map_err(|e| io_err("listing", &self.packs_dir, e))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(hex) = name.strip_suffix(".pack")
                && let Ok(d) = Digest::from_hex(hex)
            {
                packs.push((d, path.clone(), path.with_extension("idx")));
            } else if index_digest(&name).is_some() {
                // Listed with its pack; an index without a pack is a leftover.
                if !path.with_extension("pack").exists() {
                    orphans.push(path);
                }
            } else {
                strays.push(path);
            }
        }
        packs.sort();
        orphans.sort();
        Ok((packs, strays, orphans))
    }
}

fn io_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Object errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No object with this digest.
    #[error("object {0} is not in the store")]
    NotFound(Digest),
    /// Stored bytes do not match their digest (or cannot be decompressed).
    #[error("object {digest} is corrupt ({}): {reason}", path.display())]
    Corrupt {
        /// The object.
        digest: Digest,
        /// The file it was read from.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A pack index that cannot be used.
    #[error("pack index {} is corrupt: {problem}", path.display())]
    CorruptIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        problem: crate::pack::Error,
    },
    /// A layer that should be a snap pack and is not.
    #[error("layer {digest} is not a snap pack: {problem}")]
    NotAPack {
        /// The layer.
        digest: Digest,
        /// What is wrong.
        problem: crate::pack::Error,
    },
    /// An object larger than the caller accepts.
    #[error("object {digest} is larger than {limit} bytes")]
    TooLarge {
        /// The object.
        digest: Digest,
        /// The limit.
        limit: u64,
    },
    /// An I/O error.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `opening`, `writing`, `renaming into place`, ….
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::NotFound(_) => K::NotFound,
            Error::Corrupt { .. }
            | Error::CorruptIndex { .. }
            | Error::TooLarge { .. }
            | Error::NotAPack { .. } => K::Corrupt,
            _ => K::Io,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)]
// tests write fixtures directly
mod tests;
