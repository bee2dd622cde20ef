//! `snap gc`: removes what no ref and no recent reflog entry can reach.
//!
//! Runs with the store-wide lock held exclusively, so no commit, import or pull is writing
//! meanwhile (they wait for it). Roots are every ref and every reflog entry younger than
//! `expire` (both its old and new value). From each root: a manifest's config and layers; a
//! snap snapshot's parents and the trees its config carries inline (also stored loose, for
//! reading); an index's manifests. Then every loose object and pack that is not reachable and
//! is older than `grace` is removed (a pack is a layer, so a reachable pack is entirely
//! live: gc never rewrites packs, it drops whole ones), with its index. Leftover temp files
//! older than `grace` go too.
//!
//! Before anything is removed, every root must be readable: a damaged store is `fsck`'s to
//! report, and gc refuses to guess what a missing manifest would have kept alive.

use std::collections::{BTreeSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::object::SnapshotConfig;
use crate::oci::{Node, graph};
use crate::ops::Error;
use crate::snapshot::MAX_METADATA_BYTES;
use crate::store::Store;
use crate::store::reflog;

/// Reflog entries younger than this keep what they name (git's `gc.reflogExpire`).
pub const DEFAULT_EXPIRE: Duration = Duration::from_secs(90 * 24 * 3600);
/// Unreachable objects younger than this are kept: they may belong to an operation that has
/// not moved its ref yet (one that ran before this gc took the lock and was killed).
pub const DEFAULT_GRACE: Duration = Duration::from_secs(3600);

/// What to collect.
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Report, remove nothing.
    pub dry_run: bool,
    /// Reflog entries older than this are not roots.
    pub expire: Duration,
    /// Unreachable objects younger than this are kept.
    pub grace: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            dry_run: false,
            expire: DEFAULT_EXPIRE,
            grace: DEFAULT_GRACE,
        }
    }
}

/// What gc found and did.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct GcOutcome {
    /// Whether nothing was removed on purpose.
    pub dry_run: bool,
    /// Refs and young reflog values that were roots.
    pub roots: u64,
    /// Objects reached from them (manifests, configs, layers, trees).
    pub reachable: u64,
    /// Loose objects removed (or that would be).
    pub loose_removed: u64,
    /// Packs removed (or that would be), each with its index.
    pub packs_removed: u64,
    /// Leftover temp files and directories removed (or that would be).
    pub temp_removed: u64,
    /// Bytes freed (or that would be).
    pub bytes_removed: u64,
    /// Unreachable objects kept because they are younger than the grace period.
    pub kept_young: u64,
}

/// Collects garbage.
///
/// # Errors
/// `Corrupt`/`NotFound` when a root cannot be read (nothing is removed then), `Io`.
pub fn gc(store: &Store, opts: &GcOptions) -> Result<GcOutcome, Error> {
    let now = SystemTime::now();
    let mut out = GcOutcome {
        dry_run: opts.dry_run,
        ..GcOutcome::default()
    };

    let (roots, live) = mark(store, opts.expire, now)?;
    out.roots = roots;
    out.reachable = live.len() as u64;

    // Sweep.
    let old_enough = |path: &std::path::Path| -> bool {
        std::fs::symlink_metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age >= opts.grace)
    };
    let size_of = |path: &std::path::Path| std::fs::symlink_metadata(path).map_or(0, |m| m.len());
    // Manifests and indexes go first, and are made durably gone before anything they name: a
    // gc killed half-way then leaves only unnamed objects, never a manifest (still listed in an
    // expired reflog line, which fsck walks) whose config or trees are already gone.
    let mut doomed_heads: Vec<PathBuf> = Vec::new();
    let mut doomed: Vec<PathBuf> = Vec::new();
    let mut removed: BTreeSet<Digest> = BTreeSet::new();
    let (loose, _stray) = store.objects.list_loose()?;
    for (d, path) in loose {
        if live.contains(&d) {
            continue;
        }
        if !old_enough(&path) {
            out.kept_young += 1;
            continue;
        }
        out.loose_removed += 1;
        out.bytes_removed += size_of(&path);
        removed.insert(d);
        if names_others(store, &d) {
            doomed_heads.push(path);
        } else {
            doomed.push(path);
        }
    }
    let (packs, _stray) = store.objects.list_packs()?;
    for (d, pack, idx) in packs {
        if live.contains(&d) {
            continue;
        }
        if !old_enough(&pack) {
            out.kept_young += 1;
            continue;
        }
        out.packs_removed += 1;
        out.bytes_removed += size_of(&pack) + size_of(&idx);
        // The pack before its index: an index without a pack is a leftover the next sweep
        // removes; a pack without an index would look like damage (store format §5.3).
        doomed.push(pack);
        doomed.push(idx);
    }
    // Partial transfers go when stale by their own rule, whatever the grace (store format
    // §2.1): a pull interrupted an hour ago continues, whatever gc ran since.
    for t in crate::store::partial::stale(store.dir(), now) {
        out.temp_removed += 1;
        out.bytes_removed += size_of(&t);
        doomed.push(t);
    }
    for t in store.temp_files()? {
        if old_enough(&t) {
            out.temp_removed += 1;
            out.bytes_removed += size_of(&t);
            doomed.push(t);
        }
    }
    if opts.dry_run {
        return Ok(out);
    }
    // Referrers index lines go before the manifests they name: a line naming a removed
    // referrer, or a file for a removed subject, is never left behind (issue 16).
    let (subjects, _) = store.referrers.subjects()?;
    for s in subjects {
        let subject_goes = removed.contains(&s) || !store.objects.contains(&s);
        store
            .referrers
            .retain(&s, &|r| !subject_goes && !removed.contains(r))?;
    }
    let mut dirs = BTreeSet::new();
    for path in doomed_heads {
        remove(path.clone())?;
        dirs.extend(path.parent().map(std::path::Path::to_path_buf));
    }
    for dir in dirs {
        crate::fs::sync_dir(&dir).map_err(|source| Error::Io {
            op: "syncing directory",
            path: dir,
            source,
        })?;
    }
    for path in doomed {
        remove(path)?;
    }
    store.objects.sync_packs_dir()?;
    Ok(out)
}

/// The roots (refs, and reflog values younger than `expire`) and everything they reach.
///
/// # Errors
/// `Corrupt`/`NotFound` when a ref's snapshot cannot be read, `Io`.
pub(crate) fn mark(
    store: &Store,
    expire: Duration,
    now: SystemTime,
) -> Result<(u64, BTreeSet<Digest>), Error> {
    // Roots.
    let mut roots = BTreeSet::new();
    for (_, d) in store.refs.list()? {
        roots.insert(d);
    }
    let oldest = now
        .checked_sub(expire)
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(i64::MIN, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for name in store.refs.log_names()? {
        let path = store.refs.log_path(&name);
        let (entries, _bad) = reflog::read(&path).map_err(|source| Error::Io {
            op: "reading",
            path,
            source,
        })?;
        for e in entries.iter().filter(|e| e.time > oldest) {
            roots.extend(e.old);
            roots.extend(e.new);
        }
    }

    // Mark. A ref's value must be readable; an old reflog value may already be gone.
    let refs: BTreeSet<Digest> = store.refs.list()?.into_iter().map(|(_, d)| d).collect();
    let mut live: BTreeSet<Digest> = BTreeSet::new();
    // Every node visited (read or not): all of them stay.
    let mut seen: BTreeSet<Digest> = BTreeSet::new();
    let mut queue: VecDeque<(Digest, bool)> =
        roots.iter().map(|d| (*d, refs.contains(d))).collect();
    // The referrers index, read once: a referrer lives while its subject does (issue 16).
    let (subjects, _) = store.referrers.subjects()?;
    let mut pending: Vec<Digest> = subjects;
    loop {
        // Referrers of what is reached so far (and of their referrers, round after round:
        // a fixpoint, bounded by the index's size).
        if queue.is_empty() {
            let (ready, waiting): (Vec<Digest>, Vec<Digest>) =
                pending.into_iter().partition(|s| seen.contains(s));
            pending = waiting;
            for s in ready {
                for r in store.referrers.list(&s)? {
                    if !seen.contains(&r) {
                        queue.push_back((r, false));
                    }
                }
            }
            if queue.is_empty() {
                break;
            }
        }
        let Some((root, required)) = queue.pop_front() else {
            break;
        };
        let reached = graph::walk::<Error>(
            [root],
            &mut seen,
            &mut |d, _| match store.objects.read(d, MAX_METADATA_BYTES) {
                Ok(b) => Ok(Some(b)),
                Err(e) if required => Err(e.into()),
                Err(_) => Ok(None),
            },
            // A blob reached as a root: nothing below it.
            &mut |_, _| Ok(()),
        )?;
        for graph::Reached { node, .. } in reached {
            let Node::Manifest(manifest) = node else {
                continue;
            };
            let m = manifest.manifest();
            live.insert(m.config.digest);
            for l in &m.layers {
                live.insert(l.digest);
            }
            if !m.is_snapshot() {
                continue;
            }
            let d = manifest.digest();
            let cfg = store
                .objects
                .read(&m.config.digest, MAX_METADATA_BYTES)
                .map_err(Error::from)
                .and_then(|b| {
                    SnapshotConfig::decode(&b).map_err(|e| Error::NotAManifest {
                        digest: d,
                        reason: e.to_string(),
                    })
                });
            match cfg {
                Ok(cfg) => {
                    live.extend(cfg.inline_trees().map(|(t, _)| *t));
                    // Lineage stays as far as it is stored; a missing parent is not an error.
                    for p in &cfg.parents {
                        queue.push_back((*p, false));
                    }
                }
                Err(e) if required => return Err(e),
                Err(_) => {}
            }
        }
    }
    live.extend(seen);
    Ok((roots.len() as u64, live))
}

/// What [`roll_back`] took back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RollBack {
    /// Objects (loose objects and packs) removed.
    pub objects: u64,
    /// Bytes freed.
    pub bytes: u64,
}

/// After a failed command, removes the objects this process created that nothing reaches, so
/// a commit that failed half-way (a full disk, say) leaves the store as it was. Safe only
/// because it first takes the store lock exclusively (giving up its shared hold): then no
/// other process is writing, and anything another process committed meanwhile, even reusing
/// an object this one created, is reached from a ref or reflog and kept. When another process
/// uses the store, nothing is removed: `snap gc` collects it later. `None` then.
///
/// # Errors
/// `Io`; a root that cannot be read (nothing is removed then).
pub fn roll_back(store: &Store) -> Result<Option<RollBack>, Error> {
    let created = store.objects.take_created();
    if created.is_empty() || !store.try_hold_alone()? {
        return Ok(None);
    }
    let (_, live) = mark(store, DEFAULT_EXPIRE, SystemTime::now())?;
    let mut done = RollBack::default();
    for (d, path) in created {
        if live.contains(&d) {
            continue;
        }
        let bytes = std::fs::symlink_metadata(&path).map_or(0, |m| m.len());
        remove(path.clone())?;
        if path.extension().is_some_and(|x| x == "pack") {
            // After the pack: an index without its pack is a leftover, a pack without one is not.
            remove(path.with_extension("idx"))?;
        }
        if let Some(dir) = path.parent() {
            crate::fs::sync_dir(dir).map_err(|source| Error::Io {
                op: "syncing directory",
                path: dir.to_owned(),
                source,
            })?;
        }
        done.objects += 1;
        done.bytes += bytes;
    }
    Ok(Some(done))
}

/// Whether the object `d` is a manifest or an index (an object that names others).
fn names_others(store: &Store, d: &Digest) -> bool {
    let Ok(bytes) = store.objects.read(d, MAX_METADATA_BYTES) else {
        return false;
    };
    Node::from_bytes(bytes).is_ok()
}

/// Removes a file or a directory (a leftover temp directory); already gone is fine.
fn remove(path: PathBuf) -> Result<(), Error> {
    let res = if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
        std::fs::remove_dir_all(&path)
    } else {
        std::fs::remove_file(&path)
    };
    crate::fs::crash_point("gc-removed");
    match res {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Io {
            op: "removing",
            path,
            source: e,
        }),
        _ => Ok(()),
    }
}
