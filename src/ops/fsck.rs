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
use crate::object::{EntryKind, Tree};
use crate::oci::{Node, graph};
use crate::ops::Error;
use crate::snapshot::{MAX_METADATA_BYTES, Snapshot};
use crate::store::Store;
use crate::store::objects::Location;

/// What kind of problem fsck found.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// An object's bytes do not match its digest.
    CorruptObject,
    /// A pack's bytes do not match its name.
    CorruptPack,
    /// A pack index is unreadable.
    CorruptIndex,
    /// A pack has no index.
    MissingIndex,
    /// An object a snapshot needs is not stored.
    MissingObject,
    /// A snapshot's manifest, config or tree cannot be read.
    BrokenSnapshot,
    /// A stored object's size differs from the size a manifest or index describes.
    SizeMismatch,
    /// A ref file is not a digest.
    CorruptRef,
    /// A ref points at a snapshot that is not stored.
    DanglingRef,
    /// A reflog line cannot be parsed.
    CorruptReflog,
    /// A ref `.lock` file whose holder died (a leftover, not damage).
    StaleLock,
    /// A `.tmp-*` file or directory left behind (a leftover, not damage).
    LeftoverTemp,
    /// A pack index whose pack is not there (a leftover, not damage).
    OrphanIndex,
    /// A file that does not belong in the store.
    StrayFile,
    /// The referrers index disagrees with the referrers' own `subject` (issue 16).
    ReferrersIndex,
}

/// One problem.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The file concerned.
    pub path: Option<PathBuf>,
    /// The object concerned.
    pub object: Option<Digest>,
    /// What is wrong, in a sentence.
    pub message: String,
    /// Snapshots that depend on the damaged object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Digest>,
}

/// The fsck report.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct FsckReport {
    /// Loose objects verified.
    pub loose_objects: u64,
    /// Packs verified.
    pub packs: u64,
    /// Objects inside packs verified.
    pub packed_objects: u64,
    /// Refs checked.
    pub refs: u64,
    /// Snapshots walked.
    pub snapshots: u64,
    /// Foreign manifests and indexes walked (container images, ORAS and OMMX artifacts).
    #[serde(default)]
    pub foreign: u64,
    /// Problems found (empty when the store is healthy).
    pub problems: Vec<Problem>,
    /// Leftovers of interrupted runs (stale locks, temp files): harmless, never referenced,
    /// and removed by the next snap command that finds the store unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<Problem>,
}

impl FsckReport {
    /// Whether no problem was found.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

fn problem(
    kind: ProblemKind,
    path: Option<PathBuf>,
    object: Option<Digest>,
    message: String,
) -> Problem {
    Problem {
        kind,
        path,
        object,
        message,
        snapshots: Vec::new(),
    }
}

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

    /// Step 4: Walks whatever the roots reach — snap snapshots (and their stored ancestors) down to
    /// every file, foreign content down to every blob — and reports damaged objects with the
    /// snapshots that need them, and objects needed but not stored.
    fn walk(&mut self, roots: BTreeSet<Digest>) {
        let (store, objects) = (self.store, &self.store.objects);
        let report = &mut self.report;
        let good = &self.good;
        let damaged: HashMap<Digest, Problem> = std::mem::take(&mut self.bad)
            .into_iter()
            .filter(|(d, _)| !good.contains_key(d))
            .collect();
        let mut affected: HashMap<Digest, BTreeSet<Digest>> = HashMap::new();
        let mut missing: HashMap<Digest, BTreeSet<Digest>> = HashMap::new();
        let mut tree_memo: HashMap<Digest, Vec<Digest>> = HashMap::new();
        // Whatever a ref reaches: snap snapshots (and their stored ancestors), or foreign content
        // (an image, an ORAS or OMMX artifact, an index), each walked down to every blob it names.
        let mut seen = BTreeSet::new();
        let mut queue: Vec<Digest> = roots.into_iter().collect();
        while let Some(root) = queue.pop() {
            // Nodes that cannot be read or parsed: a broken snapshot each (the damaged object
            // itself is reported by steps 1 and 2).
            let broken = std::cell::RefCell::new(Vec::new());
            let reached = graph::walk::<Error>(
                [root],
                &mut seen,
                &mut |d, _| {
                    if !objects.contains(d) {
                        missing.entry(*d).or_default().insert(root);
                        return Ok(None);
                    }
                    match objects.read(d, MAX_METADATA_BYTES) {
                        Ok(b) => Ok(Some(b)),
                        Err(e) => {
                            broken.borrow_mut().push((*d, e.to_string()));
                            Ok(None)
                        }
                    }
                },
                &mut |d, e| {
                    broken.borrow_mut().push((*d, e.to_string()));
                    Ok(())
                },
            );
            let reached = match reached {
                Ok(r) => r,
                Err(e) => {
                    broken.borrow_mut().push((root, e.to_string()));
                    Vec::new()
                }
            };
            for (d, message) in broken.into_inner() {
                report.snapshots += 1;
                report
                    .problems
                    .push(problem(ProblemKind::BrokenSnapshot, None, Some(d), message));
            }
            for graph::Reached { node, .. } in reached {
                let id = node.digest();
                let Node::Manifest(manifest) = node else {
                    report.foreign += 1;
                    continue;
                };
                let m = manifest.manifest();
                check_blobs(
                    id,
                    std::iter::once(&m.config).chain(&m.layers),
                    good,
                    &damaged,
                    &mut affected,
                    &mut missing,
                    report,
                );
                if !m.is_snapshot() {
                    report.foreign += 1;
                    continue;
                }
                report.snapshots += 1;
                let snap = match Snapshot::load(store, &id) {
                    Ok(s) => s,
                    Err(e) => {
                        report.problems.push(problem(
                            ProblemKind::BrokenSnapshot,
                            None,
                            Some(id),
                            e.to_string(),
                        ));
                        continue;
                    }
                };
                queue.extend(
                    snap.config
                        .parents
                        .iter()
                        .filter(|p| objects.contains(p) && !seen.contains(p)),
                );
                let needed = walk_tree(store, &snap.config.root, &mut tree_memo, report, 0);
                for d in needed {
                    if damaged.contains_key(&d) {
                        affected.entry(d).or_default().insert(id);
                    } else if !objects.contains(&d) {
                        missing.entry(d).or_default().insert(id);
                    }
                }
            }
        }
        for (d, mut p) in damaged {
            p.snapshots = affected
                .remove(&d)
                .map(|s| s.into_iter().collect())
                .unwrap_or_default();
            report.problems.push(p);
        }
        for (d, snaps) in missing {
            report.problems.push(Problem {
                kind: ProblemKind::MissingObject,
                path: None,
                object: Some(d),
                message: format!("object {d} is needed but not stored"),
                snapshots: snaps.into_iter().collect(),
            });
        }
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

/// Checks the blobs a manifest (`id`) names: each stored, undamaged, and of the size its
/// descriptor says.
fn check_blobs<'a>(
    id: Digest,
    descriptors: impl Iterator<Item = &'a crate::oci::Descriptor>,
    good: &HashMap<Digest, u64>,
    damaged: &HashMap<Digest, Problem>,
    affected: &mut HashMap<Digest, BTreeSet<Digest>>,
    missing: &mut HashMap<Digest, BTreeSet<Digest>>,
    report: &mut FsckReport,
) {
    for desc in descriptors {
        let d = desc.digest;
        if damaged.contains_key(&d) {
            affected.entry(d).or_default().insert(id);
        } else if let Some(&size) = good.get(&d) {
            if size != desc.size {
                report.problems.push(Problem {
                    kind: ProblemKind::SizeMismatch,
                    path: None,
                    object: Some(d),
                    message: format!(
                        "{d} is described as {} bytes by {id}, but it has {size}",
                        desc.size
                    ),
                    snapshots: vec![id],
                });
            }
        } else if d != Digest::EMPTY {
            missing.entry(d).or_default().insert(id);
        }
    }
}

/// Deeper trees than this are reported, not walked (real paths end far earlier: PATH_MAX).
const MAX_DEPTH: usize = 2048;

/// Every object below `tree` (trees included), memoized per tree.
fn walk_tree(
    store: &Store,
    tree: &Digest,
    memo: &mut HashMap<Digest, Vec<Digest>>,
    report: &mut FsckReport,
    depth: usize,
) -> Vec<Digest> {
    if let Some(v) = memo.get(tree) {
        return v.clone();
    }
    if depth > MAX_DEPTH {
        report.problems.push(problem(
            ProblemKind::BrokenSnapshot,
            None,
            Some(*tree),
            format!("tree {tree} is nested more than {MAX_DEPTH} levels deep"),
        ));
        return vec![*tree];
    }
    let mut out = vec![*tree];
    let parsed = store
        .objects
        .read(tree, MAX_METADATA_BYTES)
        .map_err(|e| e.to_string())
        .and_then(|b| Tree::decode(&b).map_err(|e| e.to_string()));
    match parsed {
        Ok(t) => {
            for e in t.entries() {
                match &e.kind {
                    EntryKind::File { digest, size, .. } if *size > 0 => out.push(*digest),
                    EntryKind::Dir { digest } => {
                        let sub = walk_tree(store, digest, memo, report, depth + 1);
                        out.extend(sub);
                    }
                    _ => {}
                }
            }
        }
        Err(msg) if store.objects.contains(tree) => {
            report.problems.push(problem(
                ProblemKind::BrokenSnapshot,
                None,
                Some(*tree),
                format!("tree {tree}: {msg}"),
            ));
        }
        Err(_) => {}
    }
    out.sort();
    out.dedup();
    memo.insert(*tree, out.clone());
    out
}

fn is_temp(p: &std::path::Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(crate::fs::TEMP_PREFIX))
}
