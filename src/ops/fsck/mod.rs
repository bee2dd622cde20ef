//! `snap fsck`: verify every object, pack, index, ref and reflog, and name the snapshots that
//! depend on anything damaged.
//!
//! Read-only. Every loose object and every object inside a pack is decompressed and hashed;
//! every pack is hashed as a whole (it is a layer blob); every snapshot reachable from a ref
//! or a reflog entry is walked down to its files.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use rayon::prelude::*;

use crate::digest::Digest;
use crate::oci::Node;
use crate::ops::Error;
use crate::store::Store;
use crate::store::objects::Location;

mod report;
mod walk;

use report::problem;
pub use report::{FsckReport, Problem, ProblemKind};

/// Checks the whole store.
///
/// # Errors
/// Only when the store cannot be listed at all; damage is reported in the report.
pub fn fsck(store: &Store) -> Result<FsckReport, Error> {
    let mut check = Check {
        store,
        report: FsckReport::default(),
        bad: HashMap::new(),
        good: HashMap::new(),
    };
    check.loose_objects()?;
    check.packs()?;
    let mut roots = check.roots()?;
    check.referrers(&mut roots)?;
    check.walk(roots);
    check.leftovers()?;
    let mut report = check.report;
    report.leftovers.sort_by(|a, b| a.path.cmp(&b.path));
    report
        .problems
        .sort_by(|a, b| (a.kind, &a.path, a.object).cmp(&(b.kind, &b.path, b.object)));
    Ok(report)
}

/// What one fsck has found so far.
struct Check<'a> {
    store: &'a Store,
    report: FsckReport,
    /// Digests with at least one bad copy.
    bad: HashMap<Digest, Problem>,
    /// Digests with at least one good copy, with its size (descriptors are checked
    /// against it).
    good: HashMap<Digest, u64>,
}

impl Check<'_> {
    /// Step 1: Every loose object hashes to its name; stray files are reported.
    fn loose_objects(&mut self) -> Result<(), Error> {
        let objects = &self.store.objects;
        let (loose, strays) = self.store.objects.list_loose()?;
        self.report.loose_objects = loose.len() as u64;
        let results: Vec<(Digest, PathBuf, Result<u64, String>)> = loose
            .into_par_iter()
            .map(|(d, p)| {
                let r = objects
                    .verify_at(&d, Location::Loose(p.clone()))
                    .map_err(|e| e.to_string());
                (d, p, r)
            })
            .collect();
        for (d, p, r) in results {
            match r {
                Ok(n) => {
                    self.good.insert(d, n);
                }
                Err(msg) => {
                    self.bad.insert(
                        d,
                        problem(ProblemKind::CorruptObject, Some(p), Some(d), msg),
                    );
                }
            }
        }
        for s in strays {
            if !is_temp(&s) {
                self.report.problems.push(problem(
                    ProblemKind::StrayFile,
                    Some(s),
                    None,
                    "unexpected file among loose objects".into(),
                ));
            }
        }
        Ok(())
    }

    /// Step 2: Every pack and every object in it verifies; indexes are present and sound.
    fn packs(&mut self) -> Result<(), Error> {
        let objects = &self.store.objects;
        let (packs, strays) = objects.list_packs()?;
        self.report.packs = packs.len() as u64;
        for (pd, pack_path, idx_path) in packs {
            match objects.verify_at(&pd, Location::Pack(pack_path.clone())) {
                Ok(n) => {
                    self.good.insert(pd, n);
                }
                Err(e) => {
                    self.bad.insert(
                        pd,
                        problem(
                            ProblemKind::CorruptPack,
                            Some(pack_path.clone()),
                            Some(pd),
                            e.to_string(),
                        ),
                    );
                }
            }
            if !idx_path.exists() {
                self.report.problems.push(problem(
                    ProblemKind::MissingIndex,
                    Some(idx_path),
                    Some(pd),
                    format!("pack {pd} has no index; its objects cannot be found"),
                ));
                continue;
            }
            let index = match objects.read_index(&idx_path, &pack_path) {
                Ok(i) => i,
                Err(e) => {
                    self.report.problems.push(problem(
                        ProblemKind::CorruptIndex,
                        Some(idx_path),
                        Some(pd),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            self.report.packed_objects += index.entries().len() as u64;
            // In pack order, so that each thread decompresses a block once for all its objects.
            let mut in_order = index.entries().to_vec();
            in_order.sort_unstable_by_key(|e| (e.offset, e.skip));
            let results: Vec<(Digest, Result<u64, String>)> = in_order
                .par_iter()
                .map(|e| {
                    let loc = Location::InPack {
                        pack: pack_path.clone(),
                        entry: *e,
                    };
                    (
                        e.digest,
                        objects
                            .verify_at(&e.digest, loc)
                            .map_err(|err| err.to_string()),
                    )
                })
                .collect();
            for (d, r) in results {
                match r {
                    Ok(n) => {
                        self.good.insert(d, n);
                    }
                    Err(msg) => {
                        self.bad.entry(d).or_insert_with(|| {
                            problem(
                                ProblemKind::CorruptObject,
                                Some(pack_path.clone()),
                                Some(d),
                                msg,
                            )
                        });
                    }
                }
            }
        }
        for s in strays {
            if !is_temp(&s) {
                self.report.problems.push(problem(
                    ProblemKind::StrayFile,
                    Some(s),
                    None,
                    "unexpected file among packs".into(),
                ));
            }
        }
        Ok(())
    }

    /// Step 3: Refs and reflogs: the snapshots to walk (dangling and corrupt refs reported).
    fn roots(&mut self) -> Result<BTreeSet<Digest>, Error> {
        let (store, objects) = (self.store, &self.store.objects);
        let mut roots: BTreeSet<Digest> = BTreeSet::new();
        for name in store.refs.names()? {
            self.report.refs += 1;
            match store.refs.get(&name) {
                Ok(Some(d)) => {
                    if objects.contains(&d) {
                        roots.insert(d);
                    } else {
                        self.report.problems.push(problem(
                            ProblemKind::DanglingRef,
                            Some(store.refs.path(&name)),
                            Some(d),
                            format!("ref `{name}` points at {d}, which is not in the store"),
                        ));
                    }
                }
                Ok(None) => {}
                Err(e) => self.report.problems.push(problem(
                    ProblemKind::CorruptRef,
                    Some(store.refs.path(&name)),
                    None,
                    e.to_string(),
                )),
            }
        }
        for name in store.refs.log_names()? {
            let (entries, malformed) = store.refs.reflog(&name)?;
            for (line, reason) in malformed {
                self.report.problems.push(problem(
                    ProblemKind::CorruptReflog,
                    Some(store.refs.log_path(&name)),
                    None,
                    format!("reflog of `{name}`, line {line}: {reason}"),
                ));
            }
            roots.extend(
                entries
                    .iter()
                    .filter_map(|e| e.new)
                    .filter(|d| objects.contains(d)),
            );
        }
        Ok(roots)
    }

    /// Step 3b: The referrers index against the truth, each referrer's `subject`: every line
    /// names a stored manifest whose subject is the file's, every stored manifest with a
    /// subject is listed. The referrers of roots are walked as roots too.
    fn referrers(&mut self, roots: &mut BTreeSet<Digest>) -> Result<(), Error> {
        let (store, objects) = (self.store, &self.store.objects);
        let index_problem = |path: Option<PathBuf>, object: Option<Digest>, message: String| {
            problem(ProblemKind::ReferrersIndex, path, object, message)
        };
        let (subjects, strays) = store.referrers.subjects()?;
        for s in strays {
            self.report.problems.push(problem(
                ProblemKind::StrayFile,
                Some(s),
                None,
                "unexpected file in the referrers index".into(),
            ));
        }
        let mut listed: BTreeSet<Digest> = BTreeSet::new();
        for subject in subjects {
            let path = store.referrers.path(&subject);
            let list = match store.referrers.list(&subject) {
                Ok(l) => l,
                Err(e) => {
                    self.report.problems.push(index_problem(
                        Some(path),
                        Some(subject),
                        e.to_string(),
                    ));
                    continue;
                }
            };
            if !objects.contains(&subject) {
                self.report.problems.push(index_problem(
                    Some(path.clone()),
                    Some(subject),
                    format!("the referrers index lists referrers of {subject}, which is not stored; `snap gc` drops the list"),
                ));
            }
            for r in list {
                listed.insert(r);
                match crate::ops::referrers::read_referrer(store, &r, &subject) {
                    Ok(_) => {
                        if objects.contains(&subject) {
                            roots.insert(r);
                        }
                    }
                    Err(e) => self.report.problems.push(index_problem(
                        Some(path.clone()),
                        Some(r),
                        format!("referrer {r} of {subject} in the referrers index: {e}"),
                    )),
                }
            }
        }
        // The other way: stored manifests with a subject that no line lists.
        let (loose, _) = objects.list_loose()?;
        for (d, _) in loose {
            if listed.contains(&d) {
                continue;
            }
            let Ok(bytes) = objects.read(&d, crate::oci::MAX_MANIFEST_BYTES) else {
                continue;
            };
            // A referrer whose subject is gone (kept by a ref of its own) needs no line.
            if let Ok(Node::Manifest(m)) = Node::from_bytes(bytes)
                && let Some(subject) = &m.manifest().subject
                && objects.contains(&subject.digest)
            {
                self.report.problems.push(index_problem(
                    Some(store.referrers.path(&subject.digest)),
                    Some(d),
                    format!(
                        "manifest {d} refers to {} but the referrers index does not list it",
                        subject.digest
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Step 5: Leftovers of interrupted runs: stale locks, temp files, orphan pack indexes.
    fn leftovers(&mut self) -> Result<(), Error> {
        let (store, objects) = (self.store, &self.store.objects);
        for lock in store.refs.lock_files()? {
            // A lock file whose flock nobody holds belongs to a process that died.
            if crate::lock::is_held(&lock).ok().flatten() == Some(false) {
                self.report.leftovers.push(problem(
                    ProblemKind::StaleLock,
                    Some(lock.clone()),
                    None,
                    format!(
                        "lock file {} was left by a snap process that died; the next update of \
                         that ref removes it",
                        lock.display()
                    ),
                ));
            }
        }
        for tmp in store.temp_files()? {
            self.report.leftovers.push(problem(
                ProblemKind::LeftoverTemp,
                Some(tmp.clone()),
                None,
                format!(
                    "temp file {} of an interrupted write (or of one still running); the next \
                     snap command that finds the store unused removes it",
                    tmp.display()
                ),
            ));
        }
        for idx in objects.orphan_indexes()? {
            self.report.leftovers.push(problem(
                ProblemKind::OrphanIndex,
                Some(idx.clone()),
                None,
                format!(
                    "pack index {} has no pack: a write was interrupted before the pack was \
                     renamed into place; the next snap command removes it",
                    idx.display()
                ),
            ));
        }
        Ok(())
    }
}

fn is_temp(p: &std::path::Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(crate::fs::TEMP_PREFIX))
}
