//! Step 4 of fsck: everything the roots reach — snap snapshots (and their stored ancestors)
//! down to every file, foreign content down to every blob — with the damaged objects each
//! needs and the objects needed but not stored.

use std::collections::{BTreeSet, HashMap};

use super::{Check, FsckReport, Problem, ProblemKind, problem};
use crate::digest::Digest;
use crate::object::{EntryKind, Tree};
use crate::oci::{Node, graph};
use crate::ops::Error;
use crate::snapshot::{MAX_METADATA_BYTES, Snapshot};
use crate::store::Store;

/// Deeper trees than this are reported, not walked (real paths end far earlier: PATH_MAX).
const MAX_DEPTH: usize = 2048;

impl Check<'_> {
    /// Step 4: Walks whatever the roots reach and reports damaged objects with the snapshots
    /// that need them, and objects needed but not stored.
    pub(super) fn walk(&mut self, roots: BTreeSet<Digest>) {
        let good = &self.good;
        let damaged: HashMap<Digest, Problem> = std::mem::take(&mut self.bad)
            .into_iter()
            .filter(|(d, _)| !good.contains_key(d))
            .collect();
        let mut walk = Walk {
            store: self.store,
            good,
            damaged,
            affected: HashMap::new(),
            missing: HashMap::new(),
            tree_memo: HashMap::new(),
            report: &mut self.report,
        };
        let mut seen = BTreeSet::new();
        let mut queue: Vec<Digest> = roots.into_iter().collect();
        while let Some(root) = queue.pop() {
            for node in walk.read_graph(root, &mut seen) {
                let parents = walk.check_node(node);
                queue.extend(
                    parents
                        .into_iter()
                        .filter(|p| walk.store.objects.contains(p) && !seen.contains(p)),
                );
            }
        }
        walk.finish();
    }
}

/// The state of step 4.
struct Walk<'a> {
    store: &'a Store,
    /// Digests with a good copy, and its size.
    good: &'a HashMap<Digest, u64>,
    /// Damaged objects (no good copy), each reported once with the snapshots it breaks.
    damaged: HashMap<Digest, Problem>,
    /// The snapshots (or other manifests) that need each damaged object.
    affected: HashMap<Digest, BTreeSet<Digest>>,
    /// Objects needed but not stored, and who needs them.
    missing: HashMap<Digest, BTreeSet<Digest>>,
    /// Every object below each tree walked.
    tree_memo: HashMap<Digest, Vec<Digest>>,
    report: &'a mut FsckReport,
}

impl Walk<'_> {
    /// The graph below `root` not seen yet. Nodes that cannot be read or parsed are reported as
    /// a broken snapshot each (the damaged object itself is reported by steps 1 and 2).
    fn read_graph(&mut self, root: Digest, seen: &mut BTreeSet<Digest>) -> Vec<graph::Reached> {
        let objects = &self.store.objects;
        let missing = &mut self.missing;
        let broken = std::cell::RefCell::new(Vec::new());
        let reached = graph::walk::<Error>(
            [root],
            seen,
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
        let reached = reached.unwrap_or_else(|e| {
            broken.borrow_mut().push((root, e.to_string()));
            Vec::new()
        });
        for (d, message) in broken.into_inner() {
            self.report.snapshots += 1;
            self.report
                .problems
                .push(problem(ProblemKind::BrokenSnapshot, None, Some(d), message));
        }
        reached
    }

    /// Checks one reached node: its blobs, and for a snap snapshot every object its tree
    /// needs. Returns the snapshot's parents, to walk next.
    fn check_node(&mut self, reached: graph::Reached) -> Vec<Digest> {
        let node = reached.node;
        let id = node.digest();
        let Node::Manifest(manifest) = node else {
            self.report.foreign += 1;
            return Vec::new();
        };
        let m = manifest.manifest();
        self.check_blobs(id, std::iter::once(&m.config).chain(&m.layers));
        if !m.is_snapshot() {
            self.report.foreign += 1;
            return Vec::new();
        }
        self.report.snapshots += 1;
        let snap = match Snapshot::load(self.store, &id) {
            Ok(s) => s,
            Err(e) => {
                self.report.problems.push(problem(
                    ProblemKind::BrokenSnapshot,
                    None,
                    Some(id),
                    e.to_string(),
                ));
                return Vec::new();
            }
        };
        let needed = walk_tree(
            self.store,
            &snap.config.root,
            &mut self.tree_memo,
            self.report,
            0,
        );
        for d in needed {
            if self.damaged.contains_key(&d) {
                self.affected.entry(d).or_default().insert(id);
            } else if !self.store.objects.contains(&d) {
                self.missing.entry(d).or_default().insert(id);
            }
        }
        snap.config.parents
    }

    /// Checks the blobs a manifest (`id`) names: each stored, undamaged, and of the size its
    /// descriptor says.
    fn check_blobs<'d>(
        &mut self,
        id: Digest,
        descriptors: impl Iterator<Item = &'d crate::oci::Descriptor>,
    ) {
        for desc in descriptors {
            let d = desc.digest;
            if self.damaged.contains_key(&d) {
                self.affected.entry(d).or_default().insert(id);
            } else if let Some(&size) = self.good.get(&d) {
                if size != desc.size {
                    self.report.problems.push(Problem {
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
                self.missing.entry(d).or_default().insert(id);
            }
        }
    }

    /// Reports each damaged object with the snapshots that need it, and each missing one.
    fn finish(self) {
        let Walk {
            damaged,
            mut affected,
            missing,
            report,
            ..
        } = self;
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
}

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
