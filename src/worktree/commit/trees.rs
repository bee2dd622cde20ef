//! The trees of a scan (store format §3) and the tree layers that carry them (OCI mapping §3),
//! encoding only the directories that changed.
//!
//! Trees are built bottom-up. A directory the stat cache reports unchanged
//! ([`Lookup::clean_tree`]: every entry below it as recorded) keeps its recorded tree without
//! being encoded; the others, which are the changed paths and their ancestors, are encoded.
//! Tree layers are grouped like file groups, and a group whose key names a pack the store
//! holds (its index listing exactly the group's trees) is that pack; a group to write encodes
//! any unchanged tree it needs and checks it against the recorded digest.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::digest::Digest;
use crate::object::{EntryKind, Stats, Tree, TreeEntry};
use crate::oci::artifact::{self, Grouper};
use crate::oci::{Descriptor, MEDIA_TYPE_TREES};
use crate::pack::{self, MemberKind};
use crate::store::objects::Objects;
use crate::worktree::commit::build_error::{Error, io};
use crate::worktree::commit::packcache::{self, Kind, PackCache, Place, Used};
use crate::worktree::commit::reuse::{Reuse, SharedIndex, holds_exactly, is_one_frame_of};
use crate::worktree::commit::scan::{ScanEntry, ScanKind};
use crate::worktree::commit::statcache::{Lookup, TreeRecord};

/// One distinct tree of the snapshot.
struct Item {
    digest: Digest,
    size: u64,
    cut: u64,
    /// The encoded tree: the root's; the others are encoded again when needed.
    bytes: Option<Vec<u8>>,
    /// The directory entry it is the tree of (`None` for the root).
    dir: Option<usize>,
}

/// Every tree of a scan.
pub(crate) struct Trees {
    /// The root tree.
    pub root: Digest,
    /// Counts.
    pub stats: Stats,
    /// The tree of each directory (by entry index), for the stat cache.
    pub dirs: HashMap<usize, TreeRecord>,
    /// The distinct trees, root first, then in pre-order of first appearance.
    list: Vec<Item>,
}

fn tree_header(digest: &Digest, size: u64) -> Vec<u8> {
    pack::tar::header(
        &format!("sha256/{}", digest.hex()),
        MemberKind::File {
            size,
            executable: false,
        },
        None,
    )
}

fn tree_entry(
    e: &ScanEntry,
    file: Option<(Digest, u64)>,
    dir: Option<Digest>,
) -> Result<TreeEntry, Error> {
    let kind = match &e.kind {
        ScanKind::File { executable, .. } => {
            let (digest, size) = file.expect("every file was stored before trees are built");
            EntryKind::File {
                size,
                digest,
                executable: *executable,
            }
        }
        ScanKind::Symlink { target } => EntryKind::Symlink {
            target: target.clone(),
        },
        ScanKind::Dir => EntryKind::Dir {
            digest: dir.ok_or(Error::Internal {
                what: "a directory was recorded without its tree",
            })?,
        },
    };
    Ok(TreeEntry {
        name: e.name.clone(),
        kind,
    })
}

impl Trees {
    /// Builds every tree of `entries` bottom-up, given each file's digest and size. With a
    /// `lookup`, unchanged directories keep their recorded trees unencoded. Only the root's
    /// bytes are kept: the others are encoded again from the scan when they are written.
    ///
    /// # Errors
    /// [`Error::InvalidTree`] if a directory's entries do not make a tree.
    pub(crate) fn build(
        entries: &[ScanEntry],
        files: &[Option<(Digest, u64)>],
        lookup: Option<&Lookup>,
    ) -> Result<Trees, Error> {
        let clean = |idx: usize| lookup.and_then(|l| l.clean_tree(idx));
        let mut children: Vec<Vec<TreeEntry>> = vec![Vec::new(); entries.len()];
        let mut root_children = Vec::new();
        let mut stats = Stats::default();
        // Each tree's digest and size: its bytes are dropped once hashed and encoded again
        // when its group is written (`bytes_of`), so a million files' trees (~130 MB) are
        // never all held at once (issue 17).
        let mut encoded: HashMap<usize, (Digest, u64)> = HashMap::new();
        let mut known: HashMap<usize, TreeRecord> = HashMap::new();
        for idx in (0..entries.len()).rev() {
            let e = &entries[idx];
            let mut dir_digest = None;
            match &e.kind {
                ScanKind::File { .. } => {
                    let (_, size) = files[idx].expect("every file was stored before trees");
                    stats.files += 1;
                    stats.bytes += size;
                }
                ScanKind::Symlink { .. } => stats.symlinks += 1,
                ScanKind::Dir => {
                    stats.dirs += 1;
                    if let Some(t) = clean(idx) {
                        dir_digest = Some(t.digest);
                        known.insert(idx, t);
                    } else {
                        let tree =
                            Tree::new(std::mem::take(&mut children[idx])).map_err(|source| {
                                Error::InvalidTree {
                                    path: e.path.clone(),
                                    source,
                                }
                            })?;
                        let bytes = tree.encode();
                        let digest = Digest::of(&bytes);
                        dir_digest = Some(digest);
                        encoded.insert(idx, (digest, bytes.len() as u64));
                    }
                }
            }
            // A clean parent keeps its recorded tree: it needs no entries.
            match e.parent {
                Some(p) if clean(p).is_some() => {}
                Some(p) => children[p].push(tree_entry(e, files[idx], dir_digest)?),
                None => root_children.push(tree_entry(e, files[idx], dir_digest)?),
            }
        }
        drop(children);
        let root = Tree::new(root_children).map_err(|source| Error::InvalidTree {
            path: String::new(),
            source,
        })?;
        let root_bytes = root.encode();
        let root_digest = Digest::of(&root_bytes);

        let mut list = vec![Item {
            digest: root_digest,
            size: root_bytes.len() as u64,
            cut: 0,
            bytes: Some(root_bytes),
            dir: None,
        }];
        let mut seen = HashSet::from([root_digest]);
        let mut dirs = HashMap::new();
        let mut cuts: HashMap<Digest, u64> = HashMap::new();
        for (idx, e) in entries.iter().enumerate() {
            if e.kind != ScanKind::Dir {
                continue;
            }
            let (digest, size, cut, bytes) = if let Some(t) = known.remove(&idx) {
                (t.digest, t.size, Some(t.cut), None)
            } else {
                let (d, size) = encoded
                    .remove(&idx)
                    .expect("every other directory was encoded");
                // An unchanged tree in a changed directory keeps its recorded cut value.
                let old = lookup
                    .and_then(|l| l.old_tree(idx))
                    .filter(|t| t.digest == d && t.size == size);
                (d, size, old.map(|t| t.cut), None)
            };
            let cut = *cuts
                .entry(digest)
                .or_insert_with(|| cut.unwrap_or_else(|| tree_cut(&digest, size)));
            dirs.insert(idx, TreeRecord { digest, size, cut });
            if seen.insert(digest) {
                list.push(Item {
                    digest,
                    size,
                    cut,
                    bytes,
                    dir: Some(idx),
                });
            }
        }
        list[0].cut = tree_cut(&root_digest, list[0].size);
        Ok(Trees {
            root: root_digest,
            stats,
            dirs,
            list,
        })
    }

    /// Every distinct tree's digest and bytes, root first (encoding any that were known
    /// unchanged).
    ///
    /// # Errors
    /// As [`Trees::build`], and [`Error::StaleTree`] if a recorded tree does not encode to
    /// its digest.
    pub(crate) fn all_bytes(
        &mut self,
        entries: &[ScanEntry],
        files: &[Option<(Digest, u64)>],
    ) -> Result<Vec<(Digest, Vec<u8>)>, Error> {
        let mut kids = None;
        let mut out = Vec::with_capacity(self.list.len());
        for i in 0..self.list.len() {
            let bytes = self.bytes_of(i, entries, files, &mut kids)?;
            out.push((self.list[i].digest, bytes));
        }
        Ok(out)
    }

    /// The bytes of tree `i` of the list, encoding it from the scan if needed.
    fn bytes_of(
        &self,
        i: usize,
        entries: &[ScanEntry],
        files: &[Option<(Digest, u64)>],
        kids: &mut Option<Vec<Vec<usize>>>,
    ) -> Result<Vec<u8>, Error> {
        let item = &self.list[i];
        if let Some(b) = &item.bytes {
            return Ok(b.clone());
        }
        let dir = item.dir.expect("the root is always encoded");
        let kids = kids.get_or_insert_with(|| {
            let mut k = vec![Vec::new(); entries.len()];
            for (idx, e) in entries.iter().enumerate() {
                if let Some(p) = e.parent {
                    k[p].push(idx);
                }
            }
            k
        });
        let mut tree_entries = Vec::with_capacity(kids[dir].len());
        for &c in &kids[dir] {
            let sub = self.dirs.get(&c).map(|t| t.digest);
            tree_entries.push(tree_entry(&entries[c], files[c], sub)?);
        }
        let tree = Tree::new(tree_entries).map_err(|source| Error::InvalidTree {
            path: entries[dir].path.clone(),
            source,
        })?;
        let bytes = tree.encode();
        if Digest::of(&bytes) != item.digest || bytes.len() as u64 != item.size {
            return Err(Error::StaleTree);
        }
        Ok(bytes)
    }

    /// Stores the tree layers: each group a pack the store holds already, or a new one whose
    /// unchanged blocks are copied from the packs that hold them (as file groups are,
    /// `worktree::commit::groups`): a change rewrites the root's group, but encodes and compresses
    /// only the blocks that hold changed trees.
    ///
    /// # Errors
    /// [`Error`] from the store, or [`Error::StaleTree`].
    pub(crate) fn store_layers(
        &self,
        objects: &Objects,
        entries: &[ScanEntry],
        files: &[Option<(Digest, u64)>],
        packs: &PackCache,
        used: &mut Used,
        reuse: &mut Reuse,
    ) -> Result<Vec<Descriptor>, Error> {
        let total: u64 = self.list.iter().map(|t| artifact::weight(t.size)).sum();
        let mut grouper = Grouper::new(artifact::tree_target(total));
        let mut layers = Vec::new();
        let mut kids = None;
        let mut indexes: HashMap<Digest, Option<SharedIndex>> = HashMap::new();
        let mut group: Vec<usize> = Vec::new();
        let mut blocks: Vec<TreeBlock> = Vec::new();
        let mut block = packcache::KeyHasher::default();
        let mut block_len = 0;
        let mut block_start = 0;
        let mut block_inline = true;
        for (i, t) in self.list.iter().enumerate() {
            let name = format!("sha256/{}", t.digest.hex());
            block.member(&name, b'f', t.size, Some(&t.digest), None);
            let mkind = MemberKind::File {
                size: t.size,
                executable: false,
            };
            let inline = if t.size <= pack::BLOCK_INLINE_MAX {
                t.size
            } else {
                0
            };
            block_inline &= inline == t.size;
            block_len += pack::tar::header_len(&name, mkind, None)
                + usize::try_from(inline).unwrap_or(usize::MAX)
                + pack::tar::padding(inline);
            group.push(i);
            let group_end = grouper.push_value(t.cut, artifact::weight(t.size));
            let last = i + 1 == self.list.len();
            if group_end || last || inline == 0 || pack::ends_block(block_len, t.cut, inline) {
                blocks.push(TreeBlock {
                    key: std::mem::take(&mut block).finish(),
                    members: block_start..group.len(),
                    len: block_len,
                    inline: block_inline,
                });
                block_len = 0;
                block_start = group.len();
                block_inline = true;
            }
            if group_end || last {
                let keys: Vec<Digest> = blocks.iter().map(|b| b.key).collect();
                let key = packcache::group_key(&keys);
                let place = packs.get(Kind::Group, &key).filter(|p| {
                    holds_exactly(
                        objects,
                        *p,
                        group
                            .iter()
                            .map(|&g| (self.list[g].digest, self.list[g].size)),
                    )
                });
                let place = if let Some(p) = place {
                    reuse.tree_packs_reused += 1;
                    // Its blocks' records, for a later rewrite of the group.
                    for b in &blocks {
                        if let Some(bp) = packs.get(Kind::Block, &b.key) {
                            used.push(Kind::Block, b.key, bp);
                        }
                    }
                    p
                } else {
                    let mut sources = Sources {
                        objects,
                        packs,
                        entries,
                        files,
                        indexes: &mut indexes,
                        kids: &mut kids,
                    };
                    self.write_group(&mut sources, &group, &blocks, used, reuse)?
                };
                used.push(Kind::Group, key, place);
                layers.push(Descriptor::new(MEDIA_TYPE_TREES, place.pack, place.a));
                group.clear();
                blocks.clear();
                block_start = 0;
            }
        }
        Ok(layers)
    }

    /// Writes one group of trees as a new pack: blocks a stored pack holds already are
    /// copied, the others encoded and compressed. Records every block and returns where the
    /// pack is.
    fn write_group(
        &self,
        src: &mut Sources<'_>,
        group: &[usize],
        blocks: &[TreeBlock],
        used: &mut Used,
        reuse: &mut Reuse,
    ) -> Result<Place, Error> {
        let mut w = src.objects.begin_pack()?;
        for b in blocks {
            let members = &group[b.members.clone()];
            let copy = self.stored_block(src.objects, src.packs, b, members, src.indexes);
            if let Some((frame, inside)) = copy.filter(|_| w.at_block_start()) {
                w.copy_block(frame, inside, members.len() as u64, None)
                    .map_err(|source| io("writing a pack in", src.objects.packs_dir(), source))?;
                reuse.tree_blocks_copied += 1;
                continue;
            }
            for &g in members {
                let t = &self.list[g];
                let bytes = self.bytes_of(g, src.entries, src.files, src.kids)?;
                w.add(pack::Member {
                    header: tree_header(&t.digest, t.size),
                    content: Some((bytes, t.digest)),
                    cut: t.cut,
                })
                .map_err(|source| io("writing a pack in", src.objects.packs_dir(), source))?;
            }
        }
        let f = src.objects.finish_pack_detailed(w)?;
        reuse.tree_packs_written += 1;
        // Cut by the writer's rule: if they ever disagreed, recording them would
        // mislead later commits.
        if f.blocks.len() == blocks.len() {
            for (b, (o, l)) in blocks.iter().zip(&f.blocks) {
                let at = Place {
                    pack: f.digest,
                    a: *o,
                    b: *l,
                };
                used.push(Kind::Block, b.key, at);
            }
        }
        Ok(Place {
            pack: f.digest,
            a: f.len,
            b: 0,
        })
    }

    /// The frame of a block of trees that a pack the store holds has already (the pack
    /// cache's record for the block's key, checked against that pack's index: every tree at
    /// its place in it), and the trees inside it; `None` if it must be written.
    fn stored_block(
        &self,
        objects: &Objects,
        packs: &PackCache,
        block: &TreeBlock,
        members: &[usize],
        indexes: &mut HashMap<Digest, Option<SharedIndex>>,
    ) -> Option<(Vec<u8>, Vec<(Digest, u64, u64)>)> {
        if !block.inline {
            return None;
        }
        let place = packs.get(Kind::Block, &block.key)?;
        let ix = indexes
            .entry(place.pack)
            .or_insert_with(|| objects.pack_index(&place.pack).ok().map(Arc::new))
            .clone()?;
        let (index, len) = &*ix;
        if place.a.checked_add(place.b)? > *len {
            return None;
        }
        let mut skip = 0u64;
        let mut inside = Vec::with_capacity(members.len());
        for &g in members {
            let t = &self.list[g];
            let name = format!("sha256/{}", t.digest.hex());
            let mkind = MemberKind::File {
                size: t.size,
                executable: false,
            };
            skip += pack::tar::header_len(&name, mkind, None) as u64;
            if t.size > 0 {
                let e = index.find(&t.digest)?;
                if e.size != t.size || e.offset != place.a || e.length != place.b || e.skip != skip
                {
                    return None;
                }
                inside.push((t.digest, skip, t.size));
                skip += t.size + pack::tar::padding(t.size) as u64;
            }
        }
        if usize::try_from(skip).ok()? != block.len {
            return None;
        }
        let frame = objects
            .read_pack_range(&place.pack, place.a, place.b)
            .ok()?;
        is_one_frame_of(&frame, block.len).then_some((frame, inside))
    }
}

/// Where the bytes of a tree group come from when it is written.
struct Sources<'a> {
    objects: &'a Objects,
    packs: &'a PackCache,
    entries: &'a [ScanEntry],
    files: &'a [Option<(Digest, u64)>],
    indexes: &'a mut HashMap<Digest, Option<SharedIndex>>,
    kids: &'a mut Option<Vec<Vec<usize>>>,
}

/// A block of a tree group: its key, its members (indices into the group), its length, and
/// whether every member's contents are inside it.
struct TreeBlock {
    key: Digest,
    members: std::ops::Range<usize>,
    len: usize,
    inline: bool,
}

/// A tree's cut value as the tree layer member `sha256/<hex>`.
fn tree_cut(digest: &Digest, size: u64) -> u64 {
    pack::cut_value(&tree_header(digest, size), Some(digest))
}
