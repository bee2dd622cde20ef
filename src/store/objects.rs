//! Objects in the store: loose objects, packs, and the index over every pack.
//!
//! Format: store format §4 (loose) and §5 (packs). Invariants: an object file is written
//! once via temp + fsync + rename and made read-only; every read verifies the digest (and the
//! size, where one is recorded). A pack's `.idx` is written before the pack is renamed into
//! place; an index without its pack is skipped (and swept), so objects are found only in
//! packs that are wholly there.
//!
//! This module never moves refs.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rayon::prelude::*;

use crate::digest::{Digest, HashingReader};
use crate::fs::{self, AtomicFile};
use crate::pack::{self, IndexEntry, PackIndex};

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

/// Every pack's index, merged.
#[derive(Clone, Default)]
struct PackSet {
    packs: Vec<PathBuf>,
    /// The packs in `packs`, for adding only new ones when the directory is read again.
    loaded: std::collections::HashSet<PathBuf>,
    /// The packs directory's modification time when it was last listed, and when that was:
    /// another process adding a pack changes it (see [`Objects::load_new_packs`]).
    listed: Option<(std::time::SystemTime, std::time::SystemTime)>,
    /// The first copy of each object, by pack name order.
    objects: HashMap<Digest, (u32, IndexEntry)>,
    /// Further copies (the same file in several packs), tried when a copy is corrupt.
    more: HashMap<Digest, Vec<(u32, IndexEntry)>>,
}

impl PackSet {
    fn add(&mut self, pack_path: &Path, index: &PackIndex) {
        if !self.loaded.insert(pack_path.to_owned()) {
            return;
        }
        let id = u32::try_from(self.packs.len()).unwrap_or(u32::MAX);
        self.packs.push(pack_path.to_owned());
        for e in index.entries() {
            match self.objects.entry(e.digest) {
                std::collections::hash_map::Entry::Vacant(v) => {
                    v.insert((id, *e));
                }
                std::collections::hash_map::Entry::Occupied(_) => {
                    self.more.entry(e.digest).or_default().push((id, *e));
                }
            }
        }
    }

    fn location(&self, (id, entry): (u32, IndexEntry)) -> Location {
        Location::InPack {
            pack: self.packs[id as usize].clone(),
            entry,
        }
    }
}

/// The directory of packs and their indexes, inside the store directory.
pub(crate) const PACKS_DIR: &str = "packs";

/// The pack a file name `<64 hex>.idx` indexes; `None` for any other name. Only files so
/// named in the packs directory are pack indexes (store format §5.3).
pub(crate) fn index_digest(name: &str) -> Option<Digest> {
    name.strip_suffix(".idx")
        .and_then(|hex| Digest::from_hex(hex).ok())
}

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

    /// Starts a pack file in the packs directory.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn begin_pack(&self) -> Result<pack::PackWriter<BufWriter<AtomicFile>>, Error> {
        let tmp = AtomicFile::new_in(&self.packs_dir)
            .map_err(|e| io_err("creating a temp file in", &self.packs_dir, e))?;
        Ok(pack::PackWriter::new(BufWriter::with_capacity(
            1 << 20,
            tmp,
        )))
    }

    /// Finishes a pack: persists it under its digest, then its index. Returns the digest,
    /// the pack's length and whether it was new.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn finish_pack(
        &self,
        writer: pack::PackWriter<BufWriter<AtomicFile>>,
    ) -> Result<(Digest, u64, bool), Error> {
        let f = self.finish_pack_detailed(writer)?;
        Ok((f.digest, f.len, f.new))
    }

    /// Like [`Objects::finish_pack`], also giving the pack's index and where its blocks are.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn finish_pack_detailed(
        &self,
        writer: pack::PackWriter<BufWriter<AtomicFile>>,
    ) -> Result<FinishedPack, Error> {
        let dir = self.packs_dir.clone();
        let f = writer
            .finish_with_blocks()
            .map_err(|e| io_err("writing", &dir, e))?;
        let tmp = f
            .inner
            .into_inner()
            .map_err(|e| io_err("writing", &dir, e.into_error()))?;
        let pack_path = self.pack_path(&f.digest);
        self.persist_index(&self.idx_path(&f.digest), &f.index)?;
        let new = tmp
            .persist_new(&pack_path, Some(OBJECT_MODE))
            .map_err(|e| io_err("renaming into place", &pack_path, e))?;
        if new {
            self.note_created(f.digest, pack_path.clone());
        }
        self.add_to_index(&pack_path, &f.index);
        Ok(FinishedPack {
            digest: f.digest,
            len: f.len,
            new,
            index: f.index,
            blocks: f.blocks,
        })
    }

    /// The index of the pack `digest` and the pack's length, read and validated (the pack
    /// must be there).
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::CorruptIndex`].
    pub fn pack_index(&self, digest: &Digest) -> Result<(PackIndex, u64), Error> {
        let pack_path = self.pack_path(digest);
        let len = std::fs::metadata(&pack_path)
            .map_err(|e| io_err("reading the metadata of", &pack_path, e))?
            .len();
        let index = self.read_index(&self.idx_path(digest), &pack_path)?;
        Ok((index, len))
    }

    /// `length` bytes of the pack `digest` at `offset` (frames to copy into another pack).
    ///
    /// # Errors
    /// [`Error::Io`], also when the pack is shorter.
    pub fn read_pack_range(
        &self,
        digest: &Digest,
        offset: u64,
        length: u64,
    ) -> Result<Vec<u8>, Error> {
        use std::os::unix::fs::FileExt;
        let path = self.pack_path(digest);
        let len = usize::try_from(length)
            .map_err(|_| io_err("reading", &path, io::Error::other("range too large")))?;
        let mut buf = vec![0u8; len];
        File::open(&path)
            .and_then(|f| f.read_exact_at(&mut buf, offset))
            .map_err(|e| io_err("reading", &path, e))?;
        Ok(buf)
    }

    /// Stores a pack that arrives whole (a layer from an import or a pull): copies it into the
    /// packs directory, checks its digest, rebuilds its index from its frames (refusing
    /// anything that is not snap's pack structure), then makes both visible. Returns whether
    /// the pack is new.
    ///
    /// # Errors
    /// [`Error::Corrupt`] if the bytes do not hash to `digest`, [`Error::NotAPack`] if the
    /// structure is wrong, [`Error::Io`].
    pub fn import_pack(&self, source: &mut dyn Read, digest: &Digest) -> Result<bool, Error> {
        self.import_pack_indexed(source, digest, None)
    }

    /// Like [`Objects::import_pack`], with the index already built by the caller (who scanned
    /// the same bytes while checking them); the digest is still verified while copying.
    ///
    /// # Errors
    /// As [`Objects::import_pack`].
    pub fn import_pack_indexed(
        &self,
        source: &mut dyn Read,
        digest: &Digest,
        known: Option<PackIndex>,
    ) -> Result<bool, Error> {
        let pack_path = self.pack_path(digest);
        let idx_path = self.idx_path(digest);
        if pack_path.exists() && idx_path.exists() {
            return Ok(false);
        }
        let dir = self.packs_dir.clone();
        let mut tmp =
            AtomicFile::new_in(&dir).map_err(|e| io_err("creating a temp file in", &dir, e))?;
        let tmp_path = tmp.path().to_owned();
        let (actual, _) = {
            let mut w = crate::digest::HashingWriter::new(BufWriter::new(&mut tmp));
            io::copy(source, &mut w).map_err(|e| io_err("writing", &tmp_path, e))?;
            let (d, n, mut inner) = w.finish();
            inner.flush().map_err(|e| io_err("writing", &tmp_path, e))?;
            (d, n)
        };
        if actual != *digest {
            return Err(Error::Corrupt {
                digest: *digest,
                path: tmp_path,
                reason: format!("the layer's bytes hash to {actual}"),
            });
        }
        let index = if let Some(index) = known {
            index
        } else {
            let f = File::open(&tmp_path).map_err(|e| io_err("opening", &tmp_path, e))?;
            pack::scan::index_pack(&mut io::BufReader::with_capacity(1 << 20, f)).map_err(
                |reason| Error::NotAPack {
                    digest: *digest,
                    reason,
                },
            )?
        };
        self.persist_index(&idx_path, &index)?;
        let new = tmp
            .persist_new(&pack_path, Some(OBJECT_MODE))
            .map_err(|e| io_err("renaming into place", &pack_path, e))?;
        if new {
            self.note_created(*digest, pack_path.clone());
        }
        self.add_to_index(&pack_path, &index);
        Ok(new)
    }

    /// Moves a pack that was verified as it was written (a pull's staging file, in a
    /// temporary directory of this store) into place instead of copying it: synced, made
    /// read-only, renamed; its index written beside it. Falls back to a copy across
    /// filesystems.
    ///
    /// # Errors
    /// [`Error::Io`], or those of [`Objects::import_pack_indexed`] on the fallback.
    pub fn adopt_pack(
        &self,
        staged: &Path,
        digest: &Digest,
        index: PackIndex,
    ) -> Result<bool, Error> {
        let pack_path = self.pack_path(digest);
        let idx_path = self.idx_path(digest);
        if pack_path.exists() && idx_path.exists() {
            return Ok(false);
        }
        {
            let f = File::open(staged).map_err(|e| io_err("opening", staged, e))?;
            f.sync_all().map_err(|e| io_err("syncing", staged, e))?;
            let mut perms = f
                .metadata()
                .map_err(|e| io_err("reading the metadata of", staged, e))?
                .permissions();
            std::os::unix::fs::PermissionsExt::set_mode(&mut perms, OBJECT_MODE);
            std::fs::set_permissions(staged, perms)
                .map_err(|e| io_err("setting the mode of", staged, e))?;
        }
        self.persist_index(&idx_path, &index)?;
        fs::crash_point("rename");
        if let Err(e) = std::fs::rename(staged, &pack_path) {
            if e.kind() == io::ErrorKind::CrossesDevices {
                let f = File::open(staged).map_err(|e| io_err("opening", staged, e))?;
                return self.import_pack_indexed(
                    &mut io::BufReader::with_capacity(1 << 20, f),
                    digest,
                    Some(index),
                );
            }
            return Err(io_err("renaming into place", &pack_path, e));
        }
        self.note_created(*digest, pack_path.clone());
        self.add_to_index(&pack_path, &index);
        Ok(true)
    }

    fn note_created(&self, digest: Digest, path: PathBuf) {
        self.created
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((digest, path));
    }

    /// Takes the list of objects this process created (loose object and pack paths).
    pub fn take_created(&self) -> Vec<(Digest, PathBuf)> {
        std::mem::take(
            &mut *self
                .created
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Writes a pack's index (unless there already is one). Always before the pack itself is
    /// renamed into place (store format §5.3): a writer killed in between leaves an index
    /// without a pack, which readers skip and the next sweep removes, never a pack without an
    /// index, which would look like damage.
    fn persist_index(&self, idx_path: &Path, index: &PackIndex) -> Result<(), Error> {
        if !idx_path.exists() {
            let dir = &self.packs_dir;
            let mut itmp =
                AtomicFile::new_in(dir).map_err(|e| io_err("creating a temp file in", dir, e))?;
            itmp.write_all(&index.encode())
                .map_err(|e| io_err("writing", idx_path, e))?;
            itmp.persist_new(idx_path, Some(OBJECT_MODE))
                .map_err(|e| io_err("renaming into place", idx_path, e))?;
        }
        Ok(())
    }

    /// Fsyncs the packs directory (once after writing many packs).
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn sync_packs_dir(&self) -> Result<(), Error> {
        fs::sync_dir(&self.packs_dir).map_err(|e| io_err("syncing directory", &self.packs_dir, e))
    }

    fn add_to_index(&self, pack_path: &Path, index: &PackIndex) {
        let mut guard = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(set) = guard.as_mut() {
            Arc::make_mut(set).add(pack_path, index);
        }
    }

    fn pack_set(&self) -> Arc<PackSet> {
        if let Some(set) = self
            .index
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
        {
            return Arc::clone(set);
        }
        let set = Arc::new(self.load_pack_set());
        let mut guard = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(guard.get_or_insert(set))
    }

    /// Loads every readable `.idx`; damaged ones are skipped here and reported by fsck.
    fn load_pack_set(&self) -> PackSet {
        let mut set = PackSet::default();
        self.add_listed_packs(&mut set);
        set
    }

    /// Lists the packs directory and adds the indexes `set` does not hold yet, noting the
    /// directory's modification time first (so a pack added during the listing changes it).
    fn add_listed_packs(&self, set: &mut PackSet) -> bool {
        let now = std::time::SystemTime::now();
        set.listed = std::fs::metadata(&self.packs_dir)
            .and_then(|m| m.modified())
            .ok()
            .map(|mtime| (mtime, now));
        let Ok(dir) = std::fs::read_dir(&self.packs_dir) else {
            return false;
        };
        let mut names: Vec<PathBuf> = dir
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "idx"))
            .filter(|p| !set.loaded.contains(&p.with_extension("pack")))
            .collect();
        names.sort();
        let mut added = false;
        for idx_path in names {
            let pack_path = idx_path.with_extension("pack");
            let Ok(index) = self.read_index(&idx_path, &pack_path) else {
                continue;
            };
            set.add(&pack_path, &index);
            added = true;
        }
        added
    }

    /// After a miss: adds the packs another process stored since the indexes were loaded (a
    /// concurrent pull or commit), as git re-reads its pack directory when an object is not
    /// found. The directory is listed again only when its modification time moved, or when
    /// the last listing was too close to that time to be sure nothing was added in the same
    /// clock tick. Returns whether a pack was added.
    fn load_new_packs(&self) -> bool {
        /// Timestamps closer than this to the listing may hide a later change (coarse clocks).
        const RACY: std::time::Duration = std::time::Duration::from_secs(2);
        let mut guard = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(set) = guard.as_mut() else {
            return false;
        };
        let mtime = std::fs::metadata(&self.packs_dir)
            .and_then(|m| m.modified())
            .ok();
        let unchanged = match (set.listed, mtime) {
            (Some((then, at)), Some(now)) => {
                then == now && at.duration_since(then).is_ok_and(|d| d >= RACY)
            }
            _ => false,
        };
        if unchanged {
            return false;
        }
        self.add_listed_packs(Arc::make_mut(set))
    }

    /// Reads and validates a pack index.
    ///
    /// # Errors
    /// [`Error::Io`] or [`Error::CorruptIndex`].
    pub fn read_index(&self, idx_path: &Path, pack_path: &Path) -> Result<PackIndex, Error> {
        let pack_len = std::fs::metadata(pack_path)
            .map_err(|e| io_err("reading the metadata of", pack_path, e))?
            .len();
        let bytes = std::fs::read(idx_path).map_err(|e| io_err("reading", idx_path, e))?;
        PackIndex::decode(&bytes, pack_len).map_err(|reason| Error::CorruptIndex {
            path: idx_path.to_owned(),
            reason,
        })
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

fn chunks_or_empty(bytes: &[u8]) -> Vec<&[u8]> {
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

fn stream_err(e: StreamError, source: &Path, out: &Path) -> Error {
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

fn read_chunk(r: &mut dyn Read) -> io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(pack::FRAME_SIZE);
    r.take(pack::FRAME_SIZE as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// A verified streaming reader of one object.
pub struct ObjectReader {
    digest: Digest,
    path: PathBuf,
    inner: HashingReader<Box<dyn Read + Send>>,
    expected_size: Option<u64>,
    verified: bool,
}

/// Objects at most this big (compressed and not) are read from packs in one piece.
const SMALL_OBJECT: u64 = 4 << 20;

/// A reader whose first read fails with the error it holds.
struct FailingReader(Option<io::Error>);

impl Read for FailingReader {
    fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
        match self.0.take() {
            Some(e) => Err(e),
            None => Ok(0),
        }
    }
}

impl ObjectReader {
    fn open(digest: Digest, location: Location) -> Result<Self, Error> {
        let (path, inner, expected_size): (PathBuf, Box<dyn Read + Send>, Option<u64>) =
            match location {
                Location::Empty => (PathBuf::new(), Box::new(io::empty()), Some(0)),
                Location::Loose(path) => {
                    let f = File::open(&path).map_err(|e| io_err("opening", &path, e))?;
                    let d = zstd::stream::read::Decoder::new(f)
                        .map_err(|e| io_err("reading", &path, e))?;
                    (path, Box::new(d), None)
                }
                Location::Pack(path) => {
                    let f = File::open(&path).map_err(|e| io_err("opening", &path, e))?;
                    (
                        path,
                        Box::new(io::BufReader::with_capacity(1 << 20, f)),
                        None,
                    )
                }
                Location::InPack { pack, entry } if entry.skip > 0 => {
                    // Inside a block: from the last block this thread decompressed, if it is
                    // this one (readers go in pack order), else read and decompress it.
                    let inner: Box<dyn Read + Send> = match read_in_block(&pack, &entry)? {
                        Ok(bytes) => Box::new(io::Cursor::new(bytes)),
                        // Report it as the stream would: a corrupt object, on first read.
                        Err(e) => Box::new(FailingReader(Some(e))),
                    };
                    (pack, inner, Some(entry.size))
                }
                Location::InPack { pack, entry }
                    if entry.length <= SMALL_OBJECT && entry.size <= SMALL_OBJECT =>
                {
                    // Small objects are decompressed whole, with a reused context.
                    let mut frames = Vec::with_capacity(usize::try_from(entry.length).unwrap_or(0));
                    read_frames(&pack, &entry, &mut frames)?;
                    let size = usize::try_from(entry.size).unwrap_or(usize::MAX);
                    let padded = size.saturating_add(pack::tar::padding(entry.size));
                    let inner: Box<dyn Read + Send> =
                        match pack::decompress_frames_bulk(&frames, padded) {
                            Ok(mut bytes) => {
                                bytes.truncate(size);
                                Box::new(io::Cursor::new(bytes))
                            }
                            // Report it as the stream would: a corrupt object, on first read.
                            Err(e) => Box::new(FailingReader(Some(io::Error::other(format!(
                                "cannot decompress: {e}"
                            ))))),
                        };
                    (pack, inner, Some(entry.size))
                }
                Location::InPack { pack, entry } => {
                    let mut f = File::open(&pack).map_err(|e| io_err("opening", &pack, e))?;
                    f.seek(io::SeekFrom::Start(entry.offset))
                        .map_err(|e| io_err("reading", &pack, e))?;
                    let frames = f.take(entry.length);
                    let d = zstd::stream::read::Decoder::new(frames)
                        .map_err(|e| io_err("reading", &pack, e))?;
                    (pack, Box::new(d.take(entry.size)), Some(entry.size))
                }
            };
        Ok(ObjectReader {
            digest,
            path,
            inner: HashingReader::new(inner),
            expected_size,
            verified: false,
        })
    }

    /// The file the object is read from.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Turns an I/O error from reading into the right [`Error`]: corruption if the data was
    /// bad, I/O otherwise.
    #[must_use]
    pub fn error(&self, e: io::Error) -> Error {
        // Errors that did not come from the operating system come from decoding (zstd
        // reports bad frames as `Other`) or from verification: the stored bytes are bad.
        if e.raw_os_error().is_none() {
            Error::Corrupt {
                digest: self.digest,
                path: self.path.clone(),
                reason: e.to_string(),
            }
        } else {
            io_err("reading", &self.path, e)
        }
    }

    /// Reads any rest and checks the digest.
    ///
    /// # Errors
    /// [`Error::Corrupt`] or [`Error::Io`].
    pub fn finish(mut self) -> Result<(), Error> {
        if !self.verified {
            io::copy(&mut self, &mut io::sink()).map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    fn check(&mut self) -> io::Result<()> {
        let (digest, len) = {
            let h = std::mem::replace(&mut self.inner, HashingReader::new(Box::new(io::empty())));
            let (d, n, _) = h.finish();
            (d, n)
        };
        self.verified = true;
        if let Some(size) = self.expected_size
            && size != len
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("object {} is {len} bytes, expected {size}", self.digest),
            ));
        }
        if digest != self.digest {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("object {} hashes to {digest}", self.digest),
            ));
        }
        Ok(())
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.verified {
            return Ok(0);
        }
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.check()?;
        }
        Ok(n)
    }
}

/// Reads an entry's frames (`length` bytes at `offset`) into `buf`.
fn read_frames(pack: &Path, entry: &IndexEntry, buf: &mut Vec<u8>) -> Result<(), Error> {
    let mut f = File::open(pack).map_err(|e| io_err("opening", pack, e))?;
    f.seek(io::SeekFrom::Start(entry.offset))
        .map_err(|e| io_err("reading", pack, e))?;
    buf.clear();
    f.take(entry.length)
        .read_to_end(buf)
        .map_err(|e| io_err("reading", pack, e))?;
    if buf.len() as u64 != entry.length {
        return Err(io_err(
            "reading",
            pack,
            io::Error::new(io::ErrorKind::UnexpectedEof, "the pack ends inside a frame"),
        ));
    }
    Ok(())
}

/// The (unverified) bytes of an object inside a block; the outer error is I/O, the inner one
/// corruption. Each thread keeps the last block it decompressed: a restore or an fsck reads a
/// block's objects one after another, and decompresses the block once.
fn read_in_block(pack: &Path, entry: &IndexEntry) -> Result<io::Result<Vec<u8>>, Error> {
    type Cached = Option<(PathBuf, u64, u64, std::sync::Arc<Vec<u8>>)>;
    thread_local! {
        static LAST: std::cell::RefCell<Cached> = const { std::cell::RefCell::new(None) };
    }
    let hit = LAST.with(|c| {
        c.borrow().as_ref().and_then(|(p, o, l, b)| {
            (*o == entry.offset && *l == entry.length && p.as_os_str() == pack.as_os_str())
                .then(|| b.clone())
        })
    });
    let block = if let Some(b) = hit {
        b
    } else {
        let mut frames = Vec::new();
        read_frames(pack, entry, &mut frames)?;
        let block = match pack::decompress_block(&frames) {
            Ok(b) => std::sync::Arc::new(b),
            Err(e) => return Ok(Err(io::Error::other(format!("cannot decompress: {e}")))),
        };
        LAST.with(|c| {
            *c.borrow_mut() = Some((pack.to_owned(), entry.offset, entry.length, block.clone()));
        });
        block
    };
    Ok(pack::block_slice(&block, entry).map(<[u8]>::to_vec))
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
    #[error("pack index {} is corrupt: {reason}", path.display())]
    CorruptIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A layer that should be a snap pack and is not.
    #[error("layer {digest} is not a snap pack: {reason}")]
    NotAPack {
        /// The layer.
        digest: Digest,
        /// What is wrong.
        reason: String,
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
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    fn objects() -> io::Result<(tempfile::TempDir, Objects)> {
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("objects/sha256"))?;
        std::fs::create_dir_all(dir.path().join("packs"))?;
        let o = Objects::new(dir.path());
        Ok((dir, o))
    }

    /// Stores a pack holding one file `a` with the bytes `abc`.
    fn pack_abc(o: &Objects) -> Result<(Digest, u64, bool), Box<dyn std::error::Error>> {
        let mut w = o.begin_pack()?;
        w.add(pack::Member::new(
            "a",
            pack::MemberKind::File {
                size: 3,
                executable: false,
            },
            None,
            Some(b"abc".to_vec()),
        ))?;
        Ok(o.finish_pack(w)?)
    }

    #[test]
    fn put_then_read_verifies_and_dedupes() -> Result<(), Box<dyn std::error::Error>> {
        let (_d, o) = objects()?;
        let a = o.put(b"hello")?;
        assert_eq!(a, Digest::of(b"hello"));
        assert_eq!(o.put(b"hello")?, a);
        assert_eq!(o.read(&a, 100)?, b"hello");
        assert!(matches!(o.read(&a, 2), Err(Error::TooLarge { .. })));
        assert!(matches!(
            o.read(&Digest::of(b"x"), 9),
            Err(Error::NotFound(_))
        ));
        let empty = o.put(b"")?;
        assert_eq!(o.read(&empty, 0)?, b"");
        Ok(())
    }

    #[test]
    fn put_stream_matches_put_for_multi_frame_objects() -> Result<(), Box<dyn std::error::Error>> {
        let (_d, o) = objects()?;
        let data: Vec<u8> = (0..(pack::FRAME_SIZE * 2 + 77))
            .map(|i| (i % 251) as u8)
            .collect();
        let (d, n) = o.put_stream(&mut &data[..], Path::new("src"))?;
        assert_eq!((d, n), (Digest::of(&data), data.len() as u64));
        let on_disk = std::fs::read(o.loose_path(&d))?;
        let (d2, _) = {
            let (_d2dir, o2) = objects()?;
            let d2 = o2.put(&data)?;
            (d2, std::fs::read(o2.loose_path(&d2))? == on_disk)
        };
        assert_eq!(d2, d);
        assert_eq!(o.read(&d, u64::MAX)?, data);
        let (e, _) = o.put_stream(&mut io::empty(), Path::new("empty"))?;
        assert_eq!(o.read(&e, 0)?, b"");
        Ok(())
    }

    #[test]
    fn corrupt_loose_object_is_reported_not_returned() -> Result<(), Box<dyn std::error::Error>> {
        let (_d, o) = objects()?;
        let a = o.put(b"some content that compresses")?;
        let p = o.loose_path(&a);
        let mut bytes = std::fs::read(&p)?;
        let n = bytes.len();
        bytes[n - 2] ^= 0x55;
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
        std::fs::write(&p, &bytes)?;
        assert!(matches!(o.read(&a, 1000), Err(Error::Corrupt { .. })));
        Ok(())
    }

    #[test]
    fn packed_objects_are_found_and_verified() -> Result<(), Box<dyn std::error::Error>> {
        let (dir, o) = objects()?;
        let (pd, len, new) = pack_abc(&o)?;
        let store_dir = dir.path();
        assert!(new && len > 0);
        assert!(matches!(o.locate(&pd), Some(Location::Pack(_))));
        assert_eq!(o.read(&Digest::of(b"abc"), 10)?, b"abc");
        // A fresh handle loads the index from disk.
        let o2 = Objects::new(store_dir);
        assert_eq!(o2.read(&Digest::of(b"abc"), 10)?, b"abc");
        Ok(())
    }

    // A pull that had loaded the pack indexes missed the files of a pack another pull stored
    // meanwhile, and refused the snapshot as incomplete (concurrent pulls of one tag).
    #[test]
    fn packs_stored_by_another_process_after_loading_are_found()
    -> Result<(), Box<dyn std::error::Error>> {
        let (dir, o) = objects()?;
        let reader = Objects::new(dir.path());
        assert!(
            !reader.contains(&Digest::of(b"abc")),
            "loads the (empty) pack set"
        );
        pack_abc(&o)?;
        assert!(reader.contains(&Digest::of(b"abc")));
        assert_eq!(reader.read(&Digest::of(b"abc"), 10)?, b"abc");
        Ok(())
    }
}
