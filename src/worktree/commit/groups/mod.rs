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

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Read};

use crate::digest::Digest;
use crate::fs::AtomicFile;
use crate::oci::artifact::{self};
use crate::oci::{Descriptor, MEDIA_TYPE_LAYER_TAR_ZSTD};
use crate::pack::{self, BLOCK_INLINE_MAX, IndexEntry, MemberKind, PackWriter};
use crate::progress::Progress;
use crate::store::objects::{self, Objects};
use crate::worktree::commit::build_error::{Error, io};
use crate::worktree::commit::packcache::{self, Kind, PackCache, Place, Used};
pub use crate::worktree::commit::reuse::Reuse;
use crate::worktree::commit::scan::{ScanEntry, ScanKind};
use crate::worktree::commit::statcache::Lookup;

mod plan;
mod realize;

use plan::Planner;

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
                    .map_err(|e| io("writing a pack in", &packs_dir, e))?,
                Work::Framed(header, frames, digest, size) => pack(objects, &mut open)?
                    .add_framed(&header, frames, digest, size)
                    .map_err(|e| io("writing a pack in", &packs_dir, e))?,
                Work::Copy {
                    frame,
                    objects: inside,
                    members,
                    tail,
                } => pack(objects, &mut open)?
                    .copy_block(frame, inside, members, tail)
                    .map_err(|e| io("writing a pack in", &packs_dir, e))?,
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
    let mut file = File::open(src).map_err(|source| io("opening", src, source))?;
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
                failure = Some(io("reading", src, e));
                Err(std::io::Error::other("read failed"))
            }
            Err(objects::StreamError::Write(e)) => Err(e),
        }
    })
    .map_err(|source| failure.take().unwrap_or_else(|| io("reading", src, source)))?;
    let (digest, n) = result.expect("set when add_streamed succeeds");
    if n != size {
        return Err(Error::Changed {
            path: src.to_owned(),
        });
    }
    Ok((digest, n))
}
