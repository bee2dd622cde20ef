//! Storing the files of a grouped-mode snapshot as packs (OCI mapping §3), doing only the
//! work a change needs.
//!
//! Members are walked in tar order and cut into blocks (store format §5.2) and groups (OCI
//! mapping §3) by their cut values, exactly as a pack is written; the caches say what is
//! already stored:
//!
//! * a file whose stat is unchanged ([`crate::worktree::commit::statcache`]) has its digest and cut
//!   value without being read;
//! * a group whose key ([`crate::worktree::commit::packcache`]) names a pack the store holds — its
//!   index listing exactly the group's contents — is that pack, reused as it is;
//! * in a group that must be written, a block whose key names a frame the store holds is
//!   copied, as are the content frames of an unchanged file too big for a block; only the
//!   other blocks are read and compressed.
//!
//! Everything reused is what writing would produce (packs are a pure function of their
//! members and the encoder, which the pack cache names), so the layers are byte for byte those
//! of a commit into an empty store. The caches only decide how much work that takes.
//!
//! A planner thread reads and plans a bounded batch of members at a time (reading files on
//! the rayon pool) while the calling thread writes the previous batch into packs. A group is
//! held back, without contents, while every member in it is as recorded (it may turn out to be
//! a pack the store holds); the first member that is not starts writing it.

use std::collections::HashMap;
use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::fs::AtomicFile;
use crate::oci::artifact::{self, Grouper};
use crate::oci::{Descriptor, MEDIA_TYPE_LAYER_TAR_ZSTD};
use crate::pack::{self, BLOCK_INLINE_MAX, IndexEntry, MemberKind, PackWriter};
use crate::progress::Progress;
use crate::store::objects::{self, Objects};
use crate::worktree::commit::build_error::{Error, io};
use crate::worktree::commit::packcache::{self, Kind, PackCache, Place, Used};
pub use crate::worktree::commit::reuse::Reuse;
use crate::worktree::commit::reuse::{SharedIndex, index_holds_exactly, is_one_frame_of};
use crate::worktree::commit::scan::{ScanEntry, ScanKind};
use crate::worktree::commit::statcache::{Lookup, kind_byte};

/// Most bytes of files read into memory per batch.
const BATCH_BYTES: u64 = 32 << 20;
/// Most members per batch.
const BATCH_MEMBERS: usize = 4096;
/// Most bytes of read contents a held-back group may keep before it is written anyway.
const HELD_BYTES: u64 = 32 << 20;

/// What storing the files produced.
pub(crate) struct Stored {
    pub layers: Vec<Descriptor>,
    pub files: Vec<Option<(Digest, u64)>>,
    pub cuts: Vec<u64>,
    pub files_read: u64,
    pub used: Used,
    pub reuse: Reuse,
}

/// What the planner works from.
pub(crate) struct Context<'a> {
    pub objects: &'a Objects,
    pub entries: &'a [ScanEntry],
    pub lookup: &'a Lookup,
    pub packs: &'a PackCache,
    /// Files whose cached digest turned out wrong in an earlier attempt: read them.
    pub distrust: &'a HashSet<usize>,
    pub progress: &'a dyn Progress,
}

/// One member as planned.
#[derive(Debug)]
struct Item {
    idx: usize,
    kind: u8,
    size: u64,
    digest: Option<Digest>,
    cut: u64,
    header_len: usize,
    content: Option<Vec<u8>>,
    /// Where the store holds the contents, found in an index the planner had loaded: read
    /// from there instead of the file (see [`Planner::locate_stored`]).
    stored: Option<(Digest, IndexEntry)>,
    /// Not known to differ from what was recorded: its group may still be a stored pack (which
    /// the group's key decides).
    stable: bool,
}

impl Item {
    fn is_file(&self) -> bool {
        matches!(self.kind, b'f' | b'x')
    }

    /// Contents stored inside the block, after the header.
    fn inline(&self) -> u64 {
        if self.is_file() && self.size <= BLOCK_INLINE_MAX {
            self.size
        } else {
            0
        }
    }

    /// Contents in frames of their own, after the block its header ends.
    fn framed(&self) -> bool {
        self.is_file() && self.size > BLOCK_INLINE_MAX
    }

    fn block_bytes(&self) -> usize {
        let inline = self.inline();
        self.header_len + usize::try_from(inline).unwrap_or(usize::MAX) + pack::tar::padding(inline)
    }
}

fn member_kind(e: &ScanEntry, size: u64) -> (MemberKind, Option<&str>) {
    match &e.kind {
        ScanKind::File { executable, .. } => (
            MemberKind::File {
                size,
                executable: *executable,
            },
            None,
        ),
        ScanKind::Dir => (MemberKind::Dir, None),
        ScanKind::Symlink { target } => (MemberKind::Symlink, Some(target.as_str())),
    }
}

fn header(e: &ScanEntry, size: u64) -> Vec<u8> {
    let (kind, target) = member_kind(e, size);
    pack::tar::header(&e.path, kind, target)
}

/// A closed block of the open group.
struct Block {
    items: Vec<Item>,
    key: Digest,
    len: usize,
}

/// What the writer does next, in member order (contents not yet read).
enum Step {
    /// Compress a member into the open pack.
    Add(Item),
    /// A member whose content frames are copied.
    Framed(Item, Place),
    /// A block copied whole (its items kept to fall back on).
    Copy {
        block: Block,
        place: Place,
        objects: Vec<(Digest, u64, u64)>,
        tail: Option<Place>,
    },
    /// A group that is a stored pack.
    Reuse { key: Digest, place: Place },
    /// The open pack is complete.
    Cut { key: Digest, blocks: Vec<Digest> },
    /// A large file, in a pack of its own.
    Large(Item),
}

/// What the writer thread receives.
enum Work {
    Add(pack::Member),
    Framed(Vec<u8>, Vec<u8>, Digest, u64),
    Copy {
        frame: Vec<u8>,
        objects: Vec<(Digest, u64, u64)>,
        members: u64,
        tail: Option<(Vec<u8>, Digest, u64)>,
    },
    Reuse {
        key: Digest,
        place: Place,
    },
    Cut {
        key: Digest,
        blocks: Vec<Digest>,
    },
    Large(Item),
    Fail(Error),
}

/// Stores the files of `ctx.entries` in groups.
pub(crate) fn store(ctx: &Context<'_>) -> Result<Stored, Error> {
    let entries = ctx.entries;
    let total: u64 = entries
        .iter()
        .map(|e| match e.kind {
            ScanKind::File { size, .. } => artifact::weight(size),
            _ => artifact::weight(0),
        })
        .sum();
    let target = artifact::group_target(total);
    let large = artifact::large_file_threshold(target);

    std::thread::scope(|scope| -> Result<Stored, Error> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Work>>(1);
        let planner = scope.spawn(move || {
            let mut p = Planner::new(ctx, target, large);
            let res = p.run(&tx);
            if let Err(e) = res {
                let _ = tx.send(vec![Work::Fail(e)]);
            }
            p.finish()
        });
        let written = write(ctx, rx);
        let planned = planner.join().map_err(|_| Error::Internal {
            what: "the group planner panicked",
        })?;
        let mut w = written?;
        let (mut files, mut cuts, files_read, mut used, reuse) = planned;
        for (idx, digest, size, cut) in w.large {
            files[idx] = Some((digest, size));
            cuts[idx] = cut;
        }
        used.append(&mut w.used);
        let mut reuse_all = reuse;
        reuse_all.packs_reused += w.reuse.packs_reused;
        reuse_all.packs_written += w.reuse.packs_written;
        Ok(Stored {
            layers: w.layers,
            files,
            cuts,
            files_read: files_read + w.large_read,
            used,
            reuse: reuse_all,
        })
    })
}

/// What the writer thread did.
struct Written {
    layers: Vec<Descriptor>,
    used: Used,
    reuse: Reuse,
    large: Vec<(usize, Digest, u64, u64)>,
    large_read: u64,
}

type OpenPack = PackWriter<BufWriter<AtomicFile>>;

/// Writes packs from the planner's work, in order.
fn write(ctx: &Context<'_>, rx: std::sync::mpsc::Receiver<Vec<Work>>) -> Result<Written, Error> {
    let objects = ctx.objects;
    let mut out = Written {
        layers: Vec::new(),
        used: Used::default(),
        reuse: Reuse::default(),
        large: Vec::new(),
        large_read: 0,
    };
    let mut open: Option<OpenPack> = None;
    fn pack<'p>(
        objects: &Objects,
        open: &'p mut Option<OpenPack>,
    ) -> Result<&'p mut OpenPack, Error> {
        if open.is_none() {
            *open = Some(objects.begin_pack()?);
        }
        Ok(open.as_mut().expect("set just above"))
    }
    let packs_dir = objects.packs_dir().to_owned();
    for batch in rx {
        for work in batch {
            match work {
                Work::Add(m) => pack(objects, &mut open)?
                    .add(m)
                    .map_err(|e| io(&packs_dir, e))?,
                Work::Framed(header, frames, digest, size) => pack(objects, &mut open)?
                    .add_framed(&header, frames, digest, size)
                    .map_err(|e| io(&packs_dir, e))?,
                Work::Copy {
                    frame,
                    objects: inside,
                    members,
                    tail,
                } => pack(objects, &mut open)?
                    .copy_block(frame, inside, members, tail)
                    .map_err(|e| io(&packs_dir, e))?,
                Work::Cut { key, blocks } => {
                    if let Some(w) = open.take() {
                        finish(objects, w, key, Some(&blocks), &mut out)?;
                    }
                }
                Work::Reuse { key, place } => {
                    out.layers.push(Descriptor::new(
                        MEDIA_TYPE_LAYER_TAR_ZSTD,
                        place.pack,
                        place.a,
                    ));
                    out.used.push(Kind::Group, key, place);
                    out.reuse.packs_reused += 1;
                }
                Work::Large(item) => {
                    let e = &ctx.entries[item.idx];
                    let mut w = objects.begin_pack()?;
                    let (digest, size) = store_large(&mut w, e)?;
                    out.large_read += 1;
                    ctx.progress.advance(size, 1);
                    let header = header(e, size);
                    let cut = pack::cut_value(&header, Some(&digest));
                    let mut k = packcache::KeyHasher::default();
                    k.member(&e.path, item.kind, size, Some(&digest), None);
                    let key = packcache::group_key(&[k.finish()]);
                    finish(objects, w, key, None, &mut out)?;
                    out.large.push((item.idx, digest, size, cut));
                }
                Work::Fail(e) => return Err(e),
            }
        }
    }
    if open.is_some() {
        return Err(Error::Internal {
            what: "a pack was left open",
        });
    }
    Ok(out)
}

/// Persists a written pack, and records it, its blocks (when `blocks` lists their keys) and
/// its content frames in the pack cache.
fn finish(
    objects: &Objects,
    w: OpenPack,
    key: Digest,
    blocks: Option<&[Digest]>,
    out: &mut Written,
) -> Result<(), Error> {
    let f = objects.finish_pack_detailed(w)?;
    out.layers
        .push(Descriptor::new(MEDIA_TYPE_LAYER_TAR_ZSTD, f.digest, f.len));
    out.reuse.packs_written += 1;
    let at = |a, b| Place {
        pack: f.digest,
        a,
        b,
    };
    out.used.push(Kind::Group, key, at(f.len, 0));
    if let Some(keys) = blocks {
        // The planner's blocks and the writer's are cut by the same rule; if they ever
        // disagreed, recording them would mislead later commits.
        if keys.len() == f.blocks.len() {
            for (k, (o, l)) in keys.iter().zip(&f.blocks) {
                out.used.push(Kind::Block, *k, at(*o, *l));
            }
        }
    }
    for e in f.index.entries().iter().filter(|e| e.skip == 0) {
        out.used
            .push(Kind::Content, e.digest, at(e.offset, e.length));
    }
    Ok(())
}

/// Streams a large file into `pack` as its only member.
fn store_large(pack: &mut OpenPack, e: &ScanEntry) -> Result<(Digest, u64), Error> {
    let src = e
        .source
        .as_deref()
        .expect("files are scanned, never synthesized");
    let ScanKind::File { size, executable } = e.kind else {
        unreachable!("only files are large");
    };
    let header = pack::tar::header(&e.path, MemberKind::File { size, executable }, None);
    let mut file = File::open(src).map_err(|source| io(src, source))?;
    let mut result = None;
    let mut failure = None;
    pack.add_streamed(&header, |out| {
        let mut limited = (&mut file).take(size.saturating_add(1));
        match objects::compress_stream(&mut limited, out, true) {
            Ok((digest, n)) => {
                result = Some((digest, n));
                Ok((digest, n))
            }
            Err(objects::StreamError::Read(e)) => {
                failure = Some(io(src, e));
                Err(std::io::Error::other("read failed"))
            }
            Err(objects::StreamError::Write(e)) => Err(e),
        }
    })
    .map_err(|source| failure.take().unwrap_or_else(|| io(src, source)))?;
    let (digest, n) = result.expect("set when add_streamed succeeds");
    if n != size {
        return Err(Error::Changed {
            path: src.to_owned(),
        });
    }
    Ok((digest, n))
}

/// The planner: members to blocks and groups, and what each needs.
struct Planner<'a> {
    ctx: &'a Context<'a>,
    large: u64,
    grouper: Grouper,
    block: Vec<Item>,
    block_key: packcache::KeyHasher,
    block_len: usize,
    /// Closed blocks of the open group not yet planned (the group is held back).
    held: Vec<Block>,
    held_bytes: u64,
    /// Keys of the open group's closed blocks.
    group_keys: Vec<Digest>,
    streaming: bool,
    steps: Vec<Step>,
    indexes: HashMap<Digest, Option<SharedIndex>>,
    /// The packs of `indexes` that loaded, in the order they were first asked for.
    loaded: Vec<Digest>,
    files: Vec<Option<(Digest, u64)>>,
    cuts: Vec<u64>,
    files_read: u64,
    used: Used,
    reuse: Reuse,
}

impl<'a> Planner<'a> {
    fn new(ctx: &'a Context<'a>, target: u64, large: u64) -> Self {
        let n = ctx.entries.len();
        Planner {
            ctx,
            large,
            grouper: Grouper::new(target),
            block: Vec::new(),
            block_key: packcache::KeyHasher::default(),
            block_len: 0,
            held: Vec::new(),
            held_bytes: 0,
            group_keys: Vec::new(),
            streaming: false,
            steps: Vec::new(),
            indexes: HashMap::new(),
            loaded: Vec::new(),
            files: vec![None; n],
            cuts: vec![0; n],
            files_read: 0,
            used: Used::default(),
            reuse: Reuse::default(),
        }
    }

    fn finish(self) -> (Vec<Option<(Digest, u64)>>, Vec<u64>, u64, Used, Reuse) {
        (
            self.files,
            self.cuts,
            self.files_read,
            self.used,
            self.reuse,
        )
    }

    fn is_large(&self, e: &ScanEntry) -> bool {
        matches!(e.kind, ScanKind::File { size, .. } if size >= self.large)
    }

    fn run(&mut self, tx: &std::sync::mpsc::SyncSender<Vec<Work>>) -> Result<(), Error> {
        let entries = self.ctx.entries;
        let mut i = 0;
        while i < entries.len() {
            // A batch: members up to a bound of members and of bytes to read.
            let mut j = i;
            let mut bytes = 0;
            while j < entries.len() && j - i < BATCH_MEMBERS && bytes < BATCH_BYTES {
                if let ScanKind::File { size, .. } = entries[j].kind
                    && self.must_read(j)
                    && !self.is_large(&entries[j])
                {
                    bytes += size;
                }
                j += 1;
            }
            let items: Vec<Result<Item, Error>> =
                (i..j).into_par_iter().map(|idx| self.item(idx)).collect();
            for it in items {
                let it = it?;
                if it.content.is_some() {
                    self.files_read += 1;
                }
                if self.is_large(&entries[it.idx]) {
                    self.close_group();
                    self.grouper.reset();
                    self.large_file(it);
                } else {
                    self.push(it);
                }
            }
            self.send(tx)?;
            i = j;
        }
        self.close_group();
        self.send(tx)
    }

    fn must_read(&self, idx: usize) -> bool {
        self.ctx.distrust.contains(&idx) || self.ctx.lookup.priors[idx].known().is_none()
    }

    /// Plans one member: its digest (from the stat cache, or by reading it) and cut value.
    fn item(&self, idx: usize) -> Result<Item, Error> {
        let e = &self.ctx.entries[idx];
        let prior = &self.ctx.lookup.priors[idx];
        let kind = kind_byte(&e.kind);
        let mut content = None;
        let (size, digest) = match &e.kind {
            ScanKind::File { size, .. } if self.is_large(e) => {
                // Streamed by the writer; only a known digest helps here.
                match prior.known() {
                    Some((d, s)) if !self.ctx.distrust.contains(&idx) && s == *size => (s, Some(d)),
                    _ => (*size, None),
                }
            }
            ScanKind::File { .. } => match prior.known() {
                Some((d, s)) if !self.ctx.distrust.contains(&idx) => (s, Some(d)),
                _ => {
                    let src = e
                        .source
                        .as_deref()
                        .expect("files are scanned, never synthesized");
                    let buf = read_file(src, self.large)?;
                    let d = Digest::of(&buf);
                    let n = buf.len() as u64;
                    content = Some(buf);
                    (n, Some(d))
                }
            },
            _ => (0, None),
        };
        let (mkind, target) = member_kind(e, size);
        let cached = prior.cut_for(kind, size, digest.as_ref());
        let cut = match cached {
            Some(c) => c,
            None if digest.is_none() && e.kind != ScanKind::Dir && target.is_none() => 0,
            None => pack::cut_value(&pack::tar::header(&e.path, mkind, target), digest.as_ref()),
        };
        Ok(Item {
            idx,
            kind,
            size,
            digest,
            cut,
            header_len: pack::tar::header_len(&e.path, mkind, target),
            content,
            stored: None,
            // A directory or symlink costs nothing to hold back: only a file with new contents
            // says the group is surely new. (A command-line root has no recorded cut value,
            // and treating it as new rebuilt the first group on every commit.)
            stable: cached.is_some() || !matches!(e.kind, ScanKind::File { .. }),
        })
    }

    fn note(&mut self, it: &Item) {
        if let Some(d) = it.digest {
            self.files[it.idx] = Some((d, it.size));
        }
        self.cuts[it.idx] = it.cut;
    }

    /// Adds a member to the open block and group.
    fn push(&mut self, it: Item) {
        self.note(&it);
        if !it.stable && !self.streaming {
            self.start_streaming();
        }
        let e = &self.ctx.entries[it.idx];
        let target = match &e.kind {
            ScanKind::Symlink { target } => Some(target.as_str()),
            _ => None,
        };
        self.block_key
            .member(&e.path, it.kind, it.size, it.digest.as_ref(), target);
        self.block_len += it.block_bytes();
        let (cut, size, inline, framed) = (it.cut, it.size, it.inline(), it.framed());
        self.held_bytes += it.content.as_ref().map_or(0, |c| c.len() as u64);
        self.block.push(it);
        let block_end = framed || pack::ends_block(self.block_len, cut, inline);
        let group_end = self.grouper.push_value(cut, artifact::weight(size));
        if block_end || group_end {
            self.close_block();
        }
        if group_end {
            self.close_group();
        }
    }

    fn close_block(&mut self) {
        if self.block.is_empty() {
            return;
        }
        let block = Block {
            items: std::mem::take(&mut self.block),
            key: std::mem::take(&mut self.block_key).finish(),
            len: std::mem::take(&mut self.block_len),
        };
        self.group_keys.push(block.key);
        if self.streaming {
            self.plan_block(block);
        } else {
            self.held.push(block);
            if self.held_bytes > HELD_BYTES {
                self.start_streaming();
            }
        }
    }

    /// The open group will be written: plan the blocks held so far.
    fn start_streaming(&mut self) {
        self.streaming = true;
        for b in std::mem::take(&mut self.held) {
            self.plan_block(b);
        }
        self.held_bytes = 0;
    }

    fn close_group(&mut self) {
        self.close_block();
        if self.group_keys.is_empty() {
            return;
        }
        let key = packcache::group_key(&self.group_keys);
        if !self.streaming {
            let want: Option<Vec<(Digest, u64)>> = self
                .held
                .iter()
                .flat_map(|b| &b.items)
                .filter(|it| it.is_file())
                .map(|it| it.digest.map(|d| (d, it.size)))
                .collect();
            if let Some(place) = self.ctx.packs.get(Kind::Group, &key)
                && let Some(want) = want
                && self.holds(place, want)
            {
                // Keep the records of its blocks and frames for a later partial rewrite.
                for b in std::mem::take(&mut self.held) {
                    for it in b.items.iter().filter(|it| it.is_file()) {
                        self.ctx.progress.advance(it.size, 1);
                    }
                    if let Some(p) = self.ctx.packs.get(Kind::Block, &b.key) {
                        self.used.push(Kind::Block, b.key, p);
                    }
                    for it in b.items.iter().filter(|it| it.framed()) {
                        if let Some(d) = it.digest
                            && let Some(p) = self.ctx.packs.get(Kind::Content, &d)
                        {
                            self.used.push(Kind::Content, d, p);
                        }
                    }
                }
                self.steps.push(Step::Reuse { key, place });
            } else {
                self.start_streaming();
            }
        }
        if self.streaming {
            self.steps.push(Step::Cut {
                key,
                blocks: std::mem::take(&mut self.group_keys),
            });
        }
        self.group_keys.clear();
        self.held.clear();
        self.held_bytes = 0;
        self.streaming = false;
    }

    fn large_file(&mut self, it: Item) {
        self.note(&it);
        if let Some(d) = it.digest {
            let e = &self.ctx.entries[it.idx];
            let mut k = packcache::KeyHasher::default();
            k.member(&e.path, it.kind, it.size, Some(&d), None);
            let key = packcache::group_key(&[k.finish()]);
            if let Some(place) = self.ctx.packs.get(Kind::Group, &key)
                && self.verify_pack(place, std::iter::once(&it))
            {
                self.ctx.progress.advance(it.size, 1);
                self.steps.push(Step::Reuse { key, place });
                return;
            }
        }
        self.steps.push(Step::Large(it));
    }

    /// Plans a block of a group being written: copied if the store holds it, else built.
    fn plan_block(&mut self, block: Block) {
        if let Some(place) = self.ctx.packs.get(Kind::Block, &block.key)
            && let Some((objects, tail)) = self.verify_block(&block, place)
        {
            self.steps.push(Step::Copy {
                block,
                place,
                objects,
                tail,
            });
            return;
        }
        self.reuse.blocks_compressed += 1;
        for it in block.items {
            if it.framed()
                && it.content.is_none()
                && let Some(d) = it.digest
                && let Some(place) = self.content_place(&d, it.size)
            {
                self.steps.push(Step::Framed(it, place));
            } else {
                self.steps.push(Step::Add(it));
            }
        }
    }

    fn index(&mut self, pack: &Digest) -> Option<SharedIndex> {
        let objects = self.ctx.objects;
        let loaded = &mut self.loaded;
        self.indexes
            .entry(*pack)
            .or_insert_with(|| {
                let ix = objects.pack_index(pack).ok().map(Arc::new);
                if ix.is_some() {
                    loaded.push(*pack);
                }
                ix
            })
            .clone()
    }

    /// Where a member to compress again, whose contents the stat cache trusts, is in the
    /// store: looked up in the indexes already loaded to check copies and reuse, newest first
    /// (the rebuilt group's old pack holds its blocks' neighbours). Reading a member through
    /// `Objects::read` would load every pack's index for it; a member found in none of these
    /// is read from its file (and checked against the digest it was planned with).
    fn locate_stored(&self, digest: &Digest, size: u64) -> Option<(Digest, IndexEntry)> {
        /// Indexes searched per member: the few loaded last.
        const SEARCHED: usize = 16;
        self.loaded.iter().rev().take(SEARCHED).find_map(|pack| {
            let ix = self.indexes.get(pack)?.as_ref()?;
            let e = ix.0.find(digest)?;
            (e.size == size).then_some((*pack, *e))
        })
    }

    /// Whether the pack at `place` holds exactly the contents of `items` (its index lists
    /// each non-empty file's digest and size, and nothing else) and has the recorded length.
    fn verify_pack<'i>(&mut self, place: Place, items: impl Iterator<Item = &'i Item>) -> bool {
        let mut want = Vec::new();
        for it in items {
            match it.digest {
                Some(d) => want.push((d, it.size)),
                None if it.is_file() => return false,
                None => {}
            }
        }
        self.holds(place, want)
    }

    fn holds(&mut self, place: Place, want: Vec<(Digest, u64)>) -> bool {
        let Some(ix) = self.index(&place.pack) else {
            return false;
        };
        index_holds_exactly(&ix.0, ix.1, place, want.into_iter())
    }

    /// The objects inside the block frame at `place`, if the pack's index agrees with what
    /// the block holds (each content at its place), and the content frames of its last
    /// member if those are outside it.
    fn verify_block(
        &mut self,
        block: &Block,
        place: Place,
    ) -> Option<(Vec<(Digest, u64, u64)>, Option<Place>)> {
        let ix = self.index(&place.pack)?;
        let (index, len) = &*ix;
        if place.a.checked_add(place.b)? > *len {
            return None;
        }
        let mut skip = 0u64;
        let mut objects = Vec::new();
        for it in &block.items {
            skip += it.header_len as u64;
            let inline = it.inline();
            if inline > 0 {
                let d = it.digest?;
                let e = index.find(&d)?;
                // An earlier copy of the same contents is what the index names.
                if e.size != inline
                    || (e.offset == place.a && (e.length != place.b || e.skip != skip))
                {
                    return None;
                }
                objects.push((d, skip, inline));
                skip += inline + pack::tar::padding(inline) as u64;
            }
        }
        if usize::try_from(skip).ok()? != block.len {
            return None;
        }
        let tail = match block.items.last() {
            Some(last) if last.framed() => Some(self.content_place(&last.digest?, last.size)?),
            _ => None,
        };
        Some((objects, tail))
    }

    /// Where the content frames of a file too big for a block already are, checked against
    /// that pack's index.
    fn content_place(&mut self, digest: &Digest, size: u64) -> Option<Place> {
        let place = self.ctx.packs.get(Kind::Content, digest)?;
        let ix = self.index(&place.pack)?;
        let e = ix.0.find(digest)?;
        (e.skip == 0 && e.offset == place.a && e.length == place.b && e.size == size)
            .then_some(place)
    }

    /// Reads what the planned steps need (files, and frames to copy) and sends them to the
    /// writer, at most [`BATCH_BYTES`] of file contents at a time.
    fn send(&mut self, tx: &std::sync::mpsc::SyncSender<Vec<Work>>) -> Result<(), Error> {
        let mut steps = std::mem::take(&mut self.steps);
        for s in &mut steps {
            if let Step::Add(it) = s
                && it.is_file()
                && it.content.is_none()
                && let Some(d) = it.digest
            {
                it.stored = self.locate_stored(&d, it.size);
            }
        }
        let mut chunk = Vec::new();
        let mut bytes = 0;
        for s in steps {
            bytes += match &s {
                Step::Add(it) if it.content.is_none() => it.size,
                Step::Copy { place, .. } => place.b,
                _ => 0,
            };
            chunk.push(s);
            if bytes >= BATCH_BYTES {
                self.send_chunk(std::mem::take(&mut chunk), tx)?;
                bytes = 0;
            }
        }
        self.send_chunk(chunk, tx)
    }

    fn send_chunk(
        &mut self,
        steps: Vec<Step>,
        tx: &std::sync::mpsc::SyncSender<Vec<Work>>,
    ) -> Result<(), Error> {
        if steps.is_empty() {
            return Ok(());
        }
        let (objects, entries, progress) = (self.ctx.objects, self.ctx.entries, self.ctx.progress);
        let realized: Vec<Result<Realized, Error>> = steps
            .into_par_iter()
            .map(|s| realize(objects, entries, progress, s))
            .collect();
        let mut out = Vec::with_capacity(realized.len());
        for r in realized {
            let r = r?;
            self.files_read += r.reads;
            self.reuse.blocks_copied += r.copied;
            self.reuse.blocks_compressed += r.fell_back;
            out.extend(r.work);
        }
        tx.send(out).map_err(|_| Error::Internal {
            what: "the pack writer stopped",
        })
    }
}

/// A step made ready for the writer.
#[derive(Default)]
struct Realized {
    work: Vec<Work>,
    /// Files read from disk for it.
    reads: u64,
    /// Blocks copied.
    copied: u64,
    /// Blocks planned as copies that had to be built after all.
    fell_back: u64,
}

/// Turns a planned step into the writer's work: reads the files and frames it needs.
fn realize(
    objects: &Objects,
    entries: &[ScanEntry],
    progress: &dyn Progress,
    s: Step,
) -> Result<Realized, Error> {
    let mut r = Realized::default();
    match s {
        Step::Add(it) => {
            let e = &entries[it.idx];
            let content = if it.is_file() {
                let stored = match (&it.content, it.digest, it.stored) {
                    // Planned from the stat cache, which trusts the file to hold these
                    // contents (as it does when it reuses a pack without reading): the
                    // store's verified copy, from the block it sits in, costs less than
                    // opening the file (one decompressed block serves its neighbours too).
                    (None, Some(d), Some((pack, entry))) => objects
                        .read_in_pack(&d, &pack, entry, it.size)
                        .ok()
                        .filter(|b| b.len() as u64 == it.size),
                    _ => None,
                };
                let bytes = if let Some(c) = it.content {
                    c
                } else if let Some(b) = stored {
                    b
                } else {
                    let src = e
                        .source
                        .as_deref()
                        .expect("files are scanned, never synthesized");
                    let buf = read_file(src, it.size.saturating_add(1))?;
                    r.reads += 1;
                    // Planned from the stat cache: the bytes must be those it named, or the
                    // blocks and groups were cut on a wrong digest.
                    if Digest::of(&buf) != it.digest.unwrap_or(Digest::EMPTY)
                        || buf.len() as u64 != it.size
                    {
                        return Err(Error::Stale { index: it.idx });
                    }
                    buf
                };
                progress.advance(it.size, 1);
                Some((bytes, it.digest.expect("files have a digest once planned")))
            } else {
                None
            };
            r.work.push(Work::Add(pack::Member {
                header: header(e, it.size),
                content,
                cut: it.cut,
            }));
        }
        Step::Framed(it, place) => {
            let frames = objects.read_pack_range(&place.pack, place.a, place.b)?;
            let e = &entries[it.idx];
            progress.advance(it.size, 1);
            r.work.push(Work::Framed(
                header(e, it.size),
                frames,
                it.digest.expect("files have a digest once planned"),
                it.size,
            ));
        }
        Step::Copy {
            block,
            place,
            objects: inside,
            tail,
        } => {
            let frame = objects.read_pack_range(&place.pack, place.a, place.b).ok();
            let tail_frames = match tail {
                Some(t) => objects
                    .read_pack_range(&t.pack, t.a, t.b)
                    .ok()
                    .map(|f| Some((f, t))),
                None => Some(None),
            };
            match (frame, tail_frames) {
                (Some(frame), Some(tail)) if is_one_frame_of(&frame, block.len) => {
                    for it in &block.items {
                        if it.is_file() {
                            progress.advance(it.size, 1);
                        }
                    }
                    let tail = match (tail, block.items.last()) {
                        (Some((f, _)), Some(last)) => {
                            Some((f, last.digest.unwrap_or(Digest::EMPTY), last.size))
                        }
                        _ => None,
                    };
                    r.copied = 1;
                    r.work.push(Work::Copy {
                        frame,
                        objects: inside,
                        members: block.items.len() as u64,
                        tail,
                    });
                }
                _ => {
                    r.fell_back = 1;
                    for it in block.items {
                        let more = realize(objects, entries, progress, Step::Add(it))?;
                        r.reads += more.reads;
                        r.work.extend(more.work);
                    }
                }
            }
        }
        Step::Reuse { key, place } => r.work.push(Work::Reuse { key, place }),
        Step::Cut { key, blocks } => r.work.push(Work::Cut { key, blocks }),
        Step::Large(it) => r.work.push(Work::Large(it)),
    }
    Ok(r)
}

/// Reads a file of less than `limit` bytes.
fn read_file(src: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    File::open(src)
        .and_then(|f| f.take(limit).read_to_end(&mut buf))
        .map_err(|source| io(src, source))?;
    if buf.len() as u64 >= limit {
        return Err(Error::Changed {
            path: src.to_owned(),
        });
    }
    Ok(buf)
}
