//! Writing a restore plan: into a fresh staging directory or into the destination itself,
//! each object verified as it is written.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Seek, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rayon::prelude::*;

use super::error::{Error, io_err};
use super::{PlannedFile, RestorePlan, RestoreStats};
use crate::store::objects::{self, Location, Objects};
use crate::worktree::checkout::dest::{DirCache, Root};

/// Writes the plan into a fresh staging directory.
pub(super) fn write_fresh(
    objects: &Objects,
    plan: &RestorePlan,
    stage: &Root,
    progress: &dyn crate::progress::Progress,
) -> Result<RestoreStats, Error> {
    let mut stats = RestoreStats::default();
    let mut cache = DirCache::default();
    for d in &plan.dirs {
        stage.mkdir(&mut cache, d)?;
        stats.dirs += 1;
    }
    let bytes = AtomicU64::new(0);
    plan.files
        .par_iter()
        .try_for_each_init(DirCache::default, |cache, f| {
            let n = stage.create(cache, &f.path, file_mode(f), |out, at| {
                write_object(objects, f, out, at)
            })?;
            bytes.fetch_add(n, Ordering::Relaxed);
            progress.advance(n, 1);
            Ok::<(), Error>(())
        })?;
    stats.files = plan.files.len() as u64;
    stats.bytes = bytes.into_inner();
    for (path, target) in &plan.symlinks {
        stage.symlink(&mut cache, path, OsStr::new(target))?;
        stats.symlinks += 1;
    }
    Ok(stats)
}

/// Writes the plan into the destination itself (checked with [`check_in_place`] first):
/// directories made or kept, each file and symlink put in place by rename.
pub(super) fn write_in_place(
    objects: &Objects,
    plan: &RestorePlan,
    root: &Root,
    progress: &dyn crate::progress::Progress,
) -> Result<RestoreStats, Error> {
    let mut stats = RestoreStats::default();
    for d in &plan.dirs {
        if root.replace_dir(d)? {
            stats.dirs += 1;
        }
    }
    let bytes = AtomicU64::new(0);
    plan.files
        .par_iter()
        .try_for_each_init(DirCache::default, |cache, f| {
            let n = root.replace_file(cache, &f.path, file_mode(f), |out, at| {
                write_object(objects, f, out, at)
            })?;
            bytes.fetch_add(n, Ordering::Relaxed);
            progress.advance(n, 1);
            Ok::<(), Error>(())
        })?;
    stats.files = plan.files.len() as u64;
    stats.bytes = bytes.into_inner();
    let mut cache = DirCache::default();
    for (path, target) in &plan.symlinks {
        root.replace_symlink(&mut cache, path, OsStr::new(target))?;
        stats.symlinks += 1;
    }
    Ok(stats)
}

pub(super) fn file_mode(f: &PlannedFile) -> u32 {
    if f.executable { 0o777 } else { 0o666 }
}

/// Writes the object of `f` into `out`, verified. A corrupt copy of the object is skipped in
/// favour of another copy, if the store has one.
pub(super) fn write_object(
    objects: &Objects,
    f: &PlannedFile,
    out: &mut File,
    at: &Path,
) -> Result<u64, Error> {
    let mut last = None;
    for location in objects.locate_all_packed_first(&f.digest) {
        if last.is_some() {
            out.set_len(0)
                .and_then(|()| out.rewind())
                .map_err(|e| io_err("rewinding", at, e))?;
        }
        match write_copy(objects, f, location, out, at) {
            Ok(n) => return Ok(n),
            Err(e) => {
                let corrupt = matches!(e, Error::Objects(objects::Error::Corrupt { .. }));
                last = Some(e);
                if !corrupt {
                    break;
                }
            }
        }
    }
    Err(last.unwrap_or(Error::Objects(objects::Error::NotFound(f.digest))))
}

pub(super) fn write_copy(
    objects: &Objects,
    f: &PlannedFile,
    location: Location,
    out: &mut File,
    target: &Path,
) -> Result<u64, Error> {
    let mut reader = objects.open_at(&f.digest, location)?;
    let mut buf = vec![
        0u8;
        usize::try_from(f.size)
            .unwrap_or(usize::MAX)
            .clamp(1, 256 << 10)
            + 1
    ];
    let mut n = 0u64;
    loop {
        let k =
            io::Read::read(&mut reader, &mut buf).map_err(|e| Error::Objects(reader.error(e)))?;
        if k == 0 {
            break;
        }
        out.write_all(&buf[..k])
            .map_err(|e| io_err("writing", target, e))?;
        n += k as u64;
    }
    reader.finish()?;
    if n != f.size {
        return Err(Error::Objects(objects::Error::Corrupt {
            digest: f.digest,
            path: target.to_owned(),
            reason: format!("object is {n} bytes, the tree says {}", f.size),
        }));
    }
    Ok(n)
}

pub(super) fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}
