//! Realizing a planned step: the files it needs read and the frames it copies fetched, on the
//! rayon pool, into the writer's work.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use super::{Step, Work, header};
use crate::digest::Digest;
use crate::pack;
use crate::progress::Progress;
use crate::store::objects::Objects;
use crate::worktree::commit::build_error::{Error, io};
use crate::worktree::commit::reuse::is_one_frame_of;
use crate::worktree::commit::scan::ScanEntry;

/// A step made ready for the writer.
#[derive(Default)]
pub(super) struct Realized {
    pub(super) work: Vec<Work>,
    /// Files read from disk for it.
    pub(super) reads: u64,
    /// Blocks copied.
    pub(super) copied: u64,
    /// Blocks planned as copies that had to be built after all.
    pub(super) fell_back: u64,
}

/// Turns a planned step into the writer's work: reads the files and frames it needs.
pub(super) fn realize(
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
pub(super) fn read_file(src: &Path, limit: u64) -> Result<Vec<u8>, Error> {
    let mut buf = Vec::new();
    File::open(src)
        .and_then(|f| f.take(limit).read_to_end(&mut buf))
        .map_err(|source| io("reading", src, source))?;
    if buf.len() as u64 >= limit {
        return Err(Error::Changed {
            path: src.to_owned(),
        });
    }
    Ok(buf)
}
