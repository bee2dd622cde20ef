//! The planner: members walked in tar order, cut into blocks and groups by their cut values,
//! each marked with what it needs (reused as a stored pack, copied frames, or read and
//! compressed), using the stat and pack caches.

use std::collections::HashMap;
use std::sync::Arc;

use rayon::prelude::*;

use super::realize::{Realized, read_file, realize};
use super::{
    BATCH_BYTES, BATCH_MEMBERS, Block, Context, HELD_BYTES, Item, Step, Work, member_kind,
};
use crate::digest::Digest;
use crate::oci::artifact::{self, Grouper};
use crate::pack::{self, IndexEntry};
use crate::worktree::commit::build_error::Error;
use crate::worktree::commit::packcache::{self, Kind, Place, Used};
use crate::worktree::commit::reuse::{Reuse, SharedIndex, index_holds_exactly};
use crate::worktree::commit::scan::{ScanEntry, ScanKind};
use crate::worktree::commit::statcache::kind_byte;

/// The planner: members to blocks and groups, and what each needs.
pub(super) struct Planner<'a> {
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
    pub(super) fn new(ctx: &'a Context<'a>, target: u64, large: u64) -> Self {
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

    pub(super) fn finish(self) -> (Vec<Option<(Digest, u64)>>, Vec<u64>, u64, Used, Reuse) {
        (
            self.files,
            self.cuts,
            self.files_read,
            self.used,
            self.reuse,
        )
    }

    pub(super) fn is_large(&self, e: &ScanEntry) -> bool {
        matches!(e.kind, ScanKind::File { size, .. } if size >= self.large)
    }

    pub(super) fn run(&mut self, tx: &std::sync::mpsc::SyncSender<Vec<Work>>) -> Result<(), Error> {
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

    pub(super) fn must_read(&self, idx: usize) -> bool {
        self.ctx.distrust.contains(&idx) || self.ctx.lookup.priors[idx].known().is_none()
    }

    /// Plans one member: its digest (from the stat cache, or by reading it) and cut value.
    pub(super) fn item(&self, idx: usize) -> Result<Item, Error> {
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

    pub(super) fn note(&mut self, it: &Item) {
        if let Some(d) = it.digest {
            self.files[it.idx] = Some((d, it.size));
        }
        self.cuts[it.idx] = it.cut;
    }

    /// Adds a member to the open block and group.
    pub(super) fn push(&mut self, it: Item) {
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

    pub(super) fn close_block(&mut self) {
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
    pub(super) fn start_streaming(&mut self) {
        self.streaming = true;
        for b in std::mem::take(&mut self.held) {
            self.plan_block(b);
        }
        self.held_bytes = 0;
    }

    pub(super) fn close_group(&mut self) {
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

    pub(super) fn large_file(&mut self, it: Item) {
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
    pub(super) fn plan_block(&mut self, block: Block) {
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

    pub(super) fn index(&mut self, pack: &Digest) -> Option<SharedIndex> {
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
    pub(super) fn locate_stored(&self, digest: &Digest, size: u64) -> Option<(Digest, IndexEntry)> {
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
    pub(super) fn verify_pack<'i>(
        &mut self,
        place: Place,
        items: impl Iterator<Item = &'i Item>,
    ) -> bool {
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

    pub(super) fn holds(&mut self, place: Place, want: Vec<(Digest, u64)>) -> bool {
        let Some(ix) = self.index(&place.pack) else {
            return false;
        };
        index_holds_exactly(&ix.0, ix.1, place, want.into_iter())
    }

    /// The objects inside the block frame at `place`, if the pack's index agrees with what
    /// the block holds (each content at its place), and the content frames of its last
    /// member if those are outside it.
    pub(super) fn verify_block(
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
    pub(super) fn content_place(&mut self, digest: &Digest, size: u64) -> Option<Place> {
        let place = self.ctx.packs.get(Kind::Content, digest)?;
        let ix = self.index(&place.pack)?;
        let e = ix.0.find(digest)?;
        (e.skip == 0 && e.offset == place.a && e.length == place.b && e.size == size)
            .then_some(place)
    }

    /// Reads what the planned steps need (files, and frames to copy) and sends them to the
    /// writer, at most [`BATCH_BYTES`] of file contents at a time.
    pub(super) fn send(
        &mut self,
        tx: &std::sync::mpsc::SyncSender<Vec<Work>>,
    ) -> Result<(), Error> {
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

    pub(super) fn send_chunk(
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
