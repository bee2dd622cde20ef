//! The transfer layer: OCI graphs moved between the places bytes live — the store, a layout
//! directory, a layout archive, a registry — by one walker ([`crate::oci::graph::walk`]).
//!
//! * **Into the store** ([`receive`]): import (from a layout directory or the blobs an archive
//!   staged) and pull (from the blobs it downloaded) hand a [`Source`], the entries to take
//!   and the ref edits to make. Everything reachable is checked first ([`check::plan`]: every
//!   node is what its descriptor says, every blob has its size and digest, every snap snapshot
//!   is whole), then stored (packs adopted or copied, other blobs loose), then the refs move as
//!   one transaction. Hostile or broken input changes nothing.
//! * **Out of the store** ([`closure`]): export (to a layout, through
//!   [`crate::oci::layout::LayoutWriter`]) and push (to a registry) walk the same graph from
//!   the store and get its nodes children first, with every blob they need.
//!
//! The bounds are the walker's ([`MAX_INDEX_DEPTH`], [`MAX_MANIFESTS`] per walk) and these:
//! node and snapshot-config bytes ([`MAX_MANIFEST_BYTES`]), other configs
//! ([`MAX_CONFIG_BYTES`]), descriptors followed ([`MAX_DESCRIPTORS`]).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::oci::{Descriptor, Node, graph};
use crate::ops::Error;
use crate::ops::refs::{ImportedRef, RefUpdate};
use crate::snapshot::MAX_METADATA_BYTES;
use crate::store::{RefName, Store};

mod check;
mod source;
pub(crate) mod tee;

pub(crate) use source::Source;

pub use crate::oci::MAX_MANIFEST_BYTES;
/// Largest config of another kind accepted (it is hashed, not parsed).
pub const MAX_CONFIG_BYTES: u64 = 64 << 20;
/// How deep image indexes may nest.
pub const MAX_INDEX_DEPTH: usize = graph::MAX_DEPTH;
/// Most manifests and indexes one walk meets.
pub const MAX_MANIFESTS: usize = graph::MAX_NODES;
/// Most descriptors (index entries, configs, layers, ancestors) one transfer follows.
pub const MAX_DESCRIPTORS: usize = 1 << 20;

/// What to take into the store, and how its refs move.
pub(crate) struct Receive<'a> {
    /// Where the blobs are.
    pub source: &'a Source,
    /// Blobs the source lacks may already be in the store (a pull downloads only the rest).
    pub store_fallback: bool,
    /// The manifests and indexes to take (a layout's `index.json` entries; what a pull asked
    /// for and the ancestors it found).
    pub entries: &'a [Descriptor],
    /// The refs to point, each at one of the entries; parsed before anything is read.
    pub refs: &'a [(RefName, Digest)],
    /// Move refs that point elsewhere.
    pub force: bool,
    /// A ref that points at an ancestor moves without `force` (a pull).
    pub fast_forward: bool,
    /// The reflog line of every moved ref.
    pub message: &'a str,
}

/// What [`receive`] did.
pub(crate) struct Received {
    /// Manifests stored (entries, nested ones, ancestors).
    pub manifests: u64,
    /// Blobs stored.
    pub blobs: u64,
    /// Bytes of blobs.
    pub bytes: u64,
    /// Each ref's outcome.
    pub refs: Vec<ImportedRef>,
}

/// Checks, stores and points refs at what `r.entries` reach in `r.source` (see the module
/// documentation).
///
/// # Errors
/// `InvalidInput` or `Corrupt` for content that is malformed, hostile or incomplete (nothing
/// is stored then), store errors. Ref conflicts are not errors: they are in the outcome.
pub(crate) fn receive(
    store: &Store,
    r: &Receive<'_>,
    progress: &dyn crate::ops::Progress,
) -> Result<Received, Error> {
    let fallback = r.store_fallback.then_some(&store.objects);
    let plan = check::plan(store, r.source, fallback, r.entries)?;

    let mut blobs = 0u64;
    let mut bytes = 0u64;
    let total: u64 =
        plan.packs.values().map(|(s, _)| s).sum::<u64>() + plan.loose.values().sum::<u64>();
    progress.begin(
        "Importing",
        total,
        (plan.packs.len() + plan.loose.len()) as u64,
    );
    let stored = store_plan(
        store, r.source, fallback, &plan, &mut blobs, &mut bytes, progress,
    );
    progress.end();
    stored?;
    store.objects.sync_packs_dir()?;

    // The referrers index: only now that every referrer and its subject is durable.
    let mut by_subject: std::collections::BTreeMap<Digest, Vec<Digest>> =
        std::collections::BTreeMap::new();
    for (subject, r) in &plan.referrers {
        by_subject.entry(*subject).or_default().push(*r);
    }
    for (subject, rs) in by_subject {
        store
            .referrers
            .add(&subject, &rs, crate::oci::referrers::MAX_REFERRERS)?;
    }

    // The refs, as one transaction: all locked (in name order), each decided from the value
    // read under its lock, then all written.
    let message = r.message.replace(['\n', '\r'], " ");
    let mut tx = store
        .refs
        .transaction(r.refs.iter().map(|(n, _)| n.clone()))?;
    let mut refs = Vec::with_capacity(r.refs.len());
    for (name, digest) in r.refs {
        let previous = tx.actual(name);
        let update = match previous {
            Some(p) if p == *digest => RefUpdate::Unchanged,
            Some(p) if (r.force || r.fast_forward) && is_ancestor(store, &p, digest) => {
                RefUpdate::FastForward
            }
            Some(_) if r.force => RefUpdate::Replaced,
            Some(_) => RefUpdate::Conflicted,
            None => RefUpdate::Inserted,
        };
        if matches!(
            update,
            RefUpdate::Inserted | RefUpdate::FastForward | RefUpdate::Replaced
        ) {
            tx.stage(name, Some(*digest), &message)?;
        }
        refs.push(ImportedRef {
            name: name.short().to_owned(),
            digest: *digest,
            previous,
            update,
        });
    }
    tx.commit(|d: &Digest| store.objects.contains(d))?;
    Ok(Received {
        manifests: plan.manifests,
        blobs,
        bytes,
        refs,
    })
}

/// Stores what the plan checked, from where it is.
fn store_plan(
    store: &Store,
    source: &Source,
    fallback: Option<&crate::store::objects::Objects>,
    plan: &check::Plan,
    blobs: &mut u64,
    bytes: &mut u64,
    progress: &dyn crate::ops::Progress,
) -> Result<(), Error> {
    for (d, (size, index)) in &plan.packs {
        match source.staged_path(d) {
            // Verified as it was staged, in the store's own temp directory: move it.
            Some(path) => {
                store.objects.adopt_pack(&path, d, index.clone())?;
            }
            None => {
                store.objects.import_pack_indexed(
                    &mut io::BufReader::new(source.open(d)?),
                    d,
                    Some(index.clone()),
                )?;
            }
        }
        *blobs += 1;
        *bytes += size;
        progress.advance(*size, 1);
    }
    for (d, size) in &plan.loose {
        if !store.objects.contains(d) {
            let path = PathBuf::from(d.to_string());
            let (stored, _) = store
                .objects
                .put_stream(&mut io::BufReader::new(source.open(d)?), &path)?;
            if stored != *d {
                return Err(Error::BlobDigest {
                    digest: *d,
                    actual: stored,
                });
            }
        }
        *blobs += 1;
        *bytes += size;
        progress.advance(*size, 1);
    }
    for config in plan.configs.keys() {
        for (d, tree) in check::inline_trees_of(source, fallback, plan, config)? {
            if !store.objects.contains(&d) {
                store.objects.put(&tree)?;
            }
        }
    }
    Ok(())
}

/// Whether `old` is among the stored ancestors of snapshot `new` (any parent, as far as the
/// store holds them).
fn is_ancestor(store: &Store, old: &Digest, new: &Digest) -> bool {
    let mut seen = BTreeSet::new();
    let mut queue = vec![*new];
    while let Some(id) = queue.pop() {
        if seen.len() > 100_000 || !seen.insert(id) {
            continue;
        }
        let Ok(s) = crate::snapshot::Snapshot::load(store, &id) else {
            continue;
        };
        for p in &s.config.parents {
            if p == old {
                return true;
            }
            queue.push(*p);
        }
    }
    false
}

/// The graph below `roots` in the store, for a sink: what `seen` does not hold yet.
pub(crate) struct Closure {
    /// Manifests and indexes, children before parents.
    pub nodes: Vec<Node>,
    /// Every config and layer they name, once, in the order first named, with its size.
    pub blobs: Vec<(Digest, u64)>,
}

/// Walks the store's graph below `roots` (skipping what `seen` holds, and adding to it).
///
/// # Errors
/// `NotFound` for a node or blob the store lacks, `Corrupt` for a node that is neither a
/// manifest nor an index, the walker's bounds.
pub(crate) fn closure(
    store: &Store,
    roots: &[Digest],
    seen: &mut BTreeSet<Digest>,
) -> Result<Closure, Error> {
    let reached = graph::walk::<Error>(
        roots.iter().copied(),
        seen,
        &mut |d, _| Ok(Some(store.objects.read(d, MAX_METADATA_BYTES)?)),
        &mut |d, e| {
            Err(Error::NotAManifest {
                digest: *d,
                reason: e.to_string(),
            })
        },
    )?;
    let mut blobs = Vec::new();
    let mut named = HashMap::new();
    let mut nodes = Vec::with_capacity(reached.len());
    for graph::Reached { node, .. } in reached {
        if let Node::Manifest(m) = &node {
            let v = m.manifest();
            for d in std::iter::once(&v.config).chain(&v.layers) {
                if !store.objects.contains(&d.digest) {
                    return Err(Error::Objects(crate::store::objects::Error::NotFound(
                        d.digest,
                    )));
                }
                if named.insert(d.digest, d.size).is_none() {
                    blobs.push((d.digest, d.size));
                }
            }
        }
        nodes.push(node);
    }
    Ok(Closure { nodes, blobs })
}
