//! Packs: writing, importing and adopting them (index first, then the pack, store format
//! §5.3), and the index over every pack, reloaded when `packs/` changes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{Error, FinishedPack, Location, OBJECT_MODE, Objects, io_err};
use crate::digest::Digest;
use crate::fs::{self, AtomicFile};
use crate::pack::{self, IndexEntry, PackIndex};

/// Every pack's index, merged.
#[derive(Clone, Default)]
pub(super) struct PackSet {
    packs: Vec<PathBuf>,
    /// The packs in `packs`, for adding only new ones when the directory is read again.
    loaded: std::collections::HashSet<PathBuf>,
    /// The packs directory's modification time when it was last listed, and when that was:
    /// another process adding a pack changes it (see [`Objects::load_new_packs`]).
    listed: Option<(std::time::SystemTime, std::time::SystemTime)>,
    /// The first copy of each object, by pack name order.
    pub(super) objects: HashMap<Digest, (u32, IndexEntry)>,
    /// Further copies (the same file in several packs), tried when a copy is corrupt.
    pub(super) more: HashMap<Digest, Vec<(u32, IndexEntry)>>,
}

impl PackSet {
    pub(super) fn add(&mut self, pack_path: &Path, index: &PackIndex) {
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

    pub(super) fn location(&self, (id, entry): (u32, IndexEntry)) -> Location {
        Location::InPack {
            pack: self.packs[id as usize].clone(),
            entry,
        }
    }
}

/// The pack a file name `<64 hex>.idx` indexes; `None` for any other name. Only files so
/// named in the packs directory are pack indexes (store format §5.3).
pub(crate) fn index_digest(name: &str) -> Option<Digest> {
    name.strip_suffix(".idx")
        .and_then(|hex| Digest::from_hex(hex).ok())
}

impl Objects {
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
                |problem| Error::NotAPack {
                    digest: *digest,
                    problem,
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

    pub(super) fn note_created(&self, digest: Digest, path: PathBuf) {
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
    pub(super) fn persist_index(&self, idx_path: &Path, index: &PackIndex) -> Result<(), Error> {
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

    pub(super) fn add_to_index(&self, pack_path: &Path, index: &PackIndex) {
        let mut guard = self
            .index
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(set) = guard.as_mut() {
            Arc::make_mut(set).add(pack_path, index);
        }
    }

    pub(super) fn pack_set(&self) -> Arc<PackSet> {
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
    pub(super) fn load_pack_set(&self) -> PackSet {
        let mut set = PackSet::default();
        self.add_listed_packs(&mut set);
        set
    }

    /// Lists the packs directory and adds the indexes `set` does not hold yet, noting the
    /// directory's modification time first (so a pack added during the listing changes it).
    pub(super) fn add_listed_packs(&self, set: &mut PackSet) -> bool {
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
    pub(super) fn load_new_packs(&self) -> bool {
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
        PackIndex::decode(&bytes, pack_len).map_err(|problem| Error::CorruptIndex {
            path: idx_path.to_owned(),
            problem,
        })
    }
}
