//! Downloading a pull's blobs, `jobs` at a time, each through its partial download in the
//! store (store format §2.1), so that an interrupted pull's next run continues it.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::digest::Digest;
use crate::ops::transfer;
use crate::ops::{Error, ErrorKind, Progress};
use crate::registry::Client;
use crate::store::Store;

/// What [`download_all`] did.
#[derive(Default)]
pub(super) struct Downloads {
    /// The indexes of the packs, scanned as they downloaded.
    pub(super) indexes: HashMap<Digest, crate::pack::PackIndex>,
    /// Bytes that crossed the wire.
    pub(super) wire_bytes: u64,
    /// Blobs continued from a part an interrupted run left.
    pub(super) resumed: u64,
    /// The parts holding whole blobs (second names of the staged files).
    pub(super) parts: Vec<(Digest, PathBuf)>,
}

/// Downloads blobs into `dir`, `jobs` at a time, each checked as it streams; the ones in
/// `packs` are indexed in the same pass (issue 17), and their indexes returned. With a store,
/// each continues its partial download there, if any (store format §2.1). Returns what was
/// done, and the first failure.
pub(super) fn download_all(
    client: &Client,
    dir: &Path,
    store: Option<&Store>,
    blobs: &[(Digest, u64)],
    packs: &BTreeSet<Digest>,
    jobs: usize,
    progress: &dyn Progress,
) -> (Downloads, Option<Error>) {
    let next = Mutex::new(blobs.iter());
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let done = Mutex::new(Downloads::default());
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, 16) {
            s.spawn(|| {
                loop {
                    if failure.lock().is_ok_and(|f| f.is_some()) {
                        return;
                    }
                    let Some((d, size)) = next.lock().ok().and_then(|mut it| it.next()) else {
                        return;
                    };
                    let path = dir.join(d.hex());
                    let scan = packs.contains(d);
                    let got = match store {
                        Some(store) => {
                            let part = crate::store::partial::download_path(store.dir(), d);
                            transfer::tee::download_resumable(client, &part, &path, d, *size, scan)
                        }
                        None => {
                            transfer::tee::download(client, &path, d, *size, scan).map(|index| {
                                transfer::tee::Downloaded {
                                    index,
                                    wire_bytes: *size,
                                    resumed: false,
                                    part: None,
                                }
                            })
                        }
                    };
                    match got {
                        Ok(got) => {
                            if let Ok(mut done) = done.lock() {
                                done.wire_bytes += got.wire_bytes;
                                done.resumed += u64::from(got.resumed);
                                done.parts.extend(got.part.map(|p| (*d, p)));
                                if let Some(index) = got.index {
                                    done.indexes.insert(*d, index);
                                }
                            }
                        }
                        Err(e) => {
                            if let Ok(mut f) = failure.lock() {
                                f.get_or_insert(e);
                            }
                            return;
                        }
                    }
                    progress.advance(*size, 1);
                }
            });
        }
    });
    (
        done.into_inner().unwrap_or_default(),
        failure.into_inner().ok().flatten(),
    )
}

/// Whether a pull that failed with `e` keeps its partial downloads for the next run: when a
/// rerun may cure it (the network, the disk, a lost race), not when the content is refused.
pub(super) fn keeps_parts(e: &Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::Network | ErrorKind::Io | ErrorKind::Conflict | ErrorKind::Interrupted
    )
}

/// Removes partial downloads whose blobs are stored, or that are of no more use.
pub(crate) fn remove_parts<'a>(parts: impl IntoIterator<Item = &'a (Digest, PathBuf)>) {
    for (_, p) in parts {
        // Best effort: a part left behind is swept when stale.
        let _ = std::fs::remove_file(p);
    }
}

pub(crate) fn download_one(
    client: &Client,
    dir: &Path,
    d: &Digest,
    size: u64,
) -> Result<(), Error> {
    transfer::tee::download(client, &dir.join(d.hex()), d, size, false).map(drop)
}
