//! Phase 2 of an import: from `index.json` down, check everything reachable and plan what to
//! store — without storing anything.
//!
//! Each manifest, index and snapshot config is read (at most [`MAX_MANIFEST_BYTES`]), checked
//! and dropped: one JSON document is held at a time, so memory is bounded by that size, by
//! [`MAX_MANIFESTS`] and by [`MAX_DESCRIPTORS`], never by the layout's total size. Other blobs
//! are only hashed (or, for snap's packs, scanned); they are stored in phase 3 from where they
//! are. What a descriptor calls a manifest or an index must be one, and every descriptor of a
//! digest must agree on its size and media type.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read};

use super::source::Source;
use super::{MAX_CONFIG_BYTES, MAX_DESCRIPTORS, MAX_MANIFEST_BYTES, MAX_MANIFESTS};
use crate::digest::Digest;
use crate::object::SnapshotConfig;
use crate::oci::{
    Descriptor, MEDIA_TYPE_ARTIFACT_MANIFEST, MEDIA_TYPE_DOCKER_LIST, MEDIA_TYPE_DOCKER_MANIFEST,
    MEDIA_TYPE_INDEX, MEDIA_TYPE_LAYER_TAR_ZSTD, MEDIA_TYPE_MANIFEST, MEDIA_TYPE_TREES, Node,
    RawManifest, graph,
};
use crate::ops::Error;
use crate::pack::{IndexEntry, PackIndex};
use crate::store::Store;
use crate::store::objects::Objects;
use crate::worktree::checkout::restore;

/// Where a snapshot config is, to read it again when its inline trees are needed.
#[derive(Clone, Copy, Debug)]
pub(super) struct ConfigAt {
    pub size: u64,
    /// Already in the store (a pull that did not download it).
    pub in_store: bool,
}

/// A snap snapshot the layout holds.
pub(super) struct PlannedSnapshot {
    pub manifest: Digest,
    pub root: Digest,
    pub config: Digest,
}

/// What phase 2 decided to store.
#[derive(Default)]
pub(super) struct Plan {
    /// Layers to store as packs, with the index their frames gave when checked.
    pub packs: BTreeMap<Digest, (u64, PackIndex)>,
    /// Other blobs (manifests, indexes, configs, layers) to store loose, from the source.
    pub loose: BTreeMap<Digest, u64>,
    /// Snapshot configs that carry inline trees (direct mode).
    pub configs: BTreeMap<Digest, ConfigAt>,
    /// Inline trees, and the config that carries each.
    pub inline_trees: HashMap<Digest, Digest>,
    /// Snap snapshots, for the completeness check.
    pub snapshots: Vec<PlannedSnapshot>,
    /// Manifests checked.
    pub manifests: u64,
    /// Referrers taken in: (subject, referrer), for the referrers index.
    pub referrers: Vec<(Digest, Digest)>,
}

/// What a walked descriptor says its target is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Manifest,
    DockerManifest,
    Index,
    DockerList,
}

impl Kind {
    fn of(desc: &Descriptor) -> Result<Kind, Error> {
        match desc.media_type.as_str() {
            MEDIA_TYPE_MANIFEST => Ok(Kind::Manifest),
            MEDIA_TYPE_DOCKER_MANIFEST => Ok(Kind::DockerManifest),
            MEDIA_TYPE_INDEX => Ok(Kind::Index),
            MEDIA_TYPE_DOCKER_LIST => Ok(Kind::DockerList),
            MEDIA_TYPE_ARTIFACT_MANIFEST => Err(Error::LegacyArtifactManifest {
                digest: desc.digest,
            }),
            other => Err(Error::BadLayout {
                reason: format!(
                    "{} has media type `{other}`, which is not a manifest or an index",
                    desc.digest
                ),
            }),
        }
    }

    fn is_manifest(self) -> bool {
        matches!(self, Kind::Manifest | Kind::DockerManifest)
    }

    fn media_type(self) -> &'static str {
        match self {
            Kind::Manifest => MEDIA_TYPE_MANIFEST,
            Kind::DockerManifest => MEDIA_TYPE_DOCKER_MANIFEST,
            Kind::Index => MEDIA_TYPE_INDEX,
            Kind::DockerList => MEDIA_TYPE_DOCKER_LIST,
        }
    }
}

/// The walk from the entries down: what it has decided so far.
struct Walk<'a> {
    source: &'a Source,
    fallback: Option<&'a Objects>,
    /// Every manifest or index met, with what its first descriptor said (a root ancestor:
    /// a manifest of the size its blob has).
    described: HashMap<Digest, (Kind, u64)>,
    descriptors: usize,
    plan: Plan,
}

/// Checks everything `entries` (the entries of `index.json`, or what a pull asked for) reach,
/// with the ancestors of snap snapshots the source holds, and plans phase 3.
///
/// The graph is walked by [`graph::walk`] (the bounds on nesting and node count are its),
/// one walk per generation: the entries, then the ancestors they name that are present, and
/// so on. Every node is read through [`Source::read`] (checked against digest and size), and
/// must be what its descriptor calls it.
pub(super) fn plan(
    store: &Store,
    source: &Source,
    fallback: Option<&Objects>,
    entries: &[Descriptor],
) -> Result<Plan, Error> {
    let mut walk = Walk {
        source,
        fallback,
        described: HashMap::new(),
        descriptors: 0,
        plan: Plan::default(),
    };
    let mut roots = Vec::with_capacity(entries.len());
    for d in entries {
        walk.describe(d)?;
        roots.push(d.digest);
    }
    let mut seen = BTreeSet::new();
    while !roots.is_empty() {
        let reached = {
            let described = &mut walk.described;
            graph::walk::<Error>(
                std::mem::take(&mut roots),
                &mut seen,
                &mut |d, by| {
                    if let Some(desc) = by {
                        // Counted below, with the index's other entries.
                        record(described, desc)?;
                    }
                    let &(_, size) = described
                        .get(d)
                        .expect("every root and every child is described before it is read");
                    Ok(Some(source.read(d, size, MAX_MANIFEST_BYTES)?))
                },
                &mut |_, e| Err(e.into()),
            )?
        };
        if seen.len() > MAX_MANIFESTS {
            return Err(Error::BadLayout {
                reason: format!("the layout has more than {MAX_MANIFESTS} manifests and indexes"),
            });
        }
        for graph::Reached { node, .. } in reached {
            let digest = node.digest();
            let (kind, size) = walk.described[&digest];
            let desc = Descriptor::new(kind.media_type(), digest, size);
            match &node {
                Node::Manifest(m) if kind.is_manifest() => {
                    for parent in walk.manifest(m, &desc)? {
                        roots.push(parent);
                    }
                }
                Node::Index(i) if !kind.is_manifest() => {
                    check_media_type(&desc, i.index().media_type.as_deref())?;
                    // Entries seen before were read as their first descriptor said: every
                    // other descriptor of them must agree.
                    for entry in &i.index().manifests {
                        walk.describe(entry)?;
                    }
                    walk.plan.loose.insert(digest, size);
                }
                _ => {
                    return Err(Error::BadLayout {
                        reason: format!(
                            "{digest} is described as `{}` but is not an image {}",
                            kind.media_type(),
                            if kind.is_manifest() {
                                "manifest"
                            } else {
                                "index"
                            }
                        ),
                    });
                }
            }
        }
    }

    // Every referrer's subject must be taken in too, or stored already; referrers are bounded.
    check_referrers(store, &walk.described, &walk.plan.referrers)?;

    // Every snapshot must be whole before anything is stored.
    let plan = walk.plan;
    let packed: HashMap<Digest, (Digest, &IndexEntry)> = plan
        .packs
        .iter()
        .flat_map(|(pack, (_, index))| index.entries().iter().map(|e| (e.digest, (*pack, e))))
        .collect();
    for s in &plan.snapshots {
        check_complete(store, source, fallback, &plan, &packed, s)?;
    }
    Ok(plan)
}

/// Checks the referrers a transfer takes in (issue 16): each subject is taken in or already
/// stored (a referrer of nothing is refused, never stored as garbage), no subject gets more
/// than [`referrers::MAX_REFERRERS`], and chains of referrers of referrers are at most
/// [`referrers::MAX_DEPTH`] long.
fn check_referrers(
    store: &Store,
    described: &HashMap<Digest, (Kind, u64)>,
    taken: &[(Digest, Digest)],
) -> Result<(), Error> {
    use crate::oci::referrers;
    let subject_of: HashMap<Digest, Digest> = taken.iter().map(|(s, r)| (*r, *s)).collect();
    let mut per_subject: HashMap<Digest, BTreeSet<Digest>> = HashMap::new();
    for (subject, r) in taken {
        if !described.contains_key(subject) && !store.objects.contains(subject) {
            return Err(Error::ReferrerSubjectAbsent {
                referrer: *r,
                subject: *subject,
            });
        }
        per_subject.entry(*subject).or_default().insert(*r);
        // Up the chain of subjects that are referrers taken in too.
        let mut at = *subject;
        let mut depth = 1;
        while let Some(next) = subject_of.get(&at) {
            depth += 1;
            if depth > referrers::MAX_DEPTH {
                return Err(referrers::Error::TooDeep {
                    subject: *next,
                    digest: *r,
                    limit: referrers::MAX_DEPTH,
                }
                .into());
            }
            at = *next;
        }
    }
    for (subject, mut rs) in per_subject {
        rs.extend(store.referrers.list(&subject)?);
        referrers::check_count(subject, rs.len())?;
    }
    Ok(())
}

/// Records what descriptor `desc` says a manifest or index is; a digest described before
/// must be described the same way.
fn record(described: &mut HashMap<Digest, (Kind, u64)>, desc: &Descriptor) -> Result<(), Error> {
    let kind = Kind::of(desc)?;
    match described.get(&desc.digest) {
        Some(&(k, size)) if k != kind || size != desc.size => Err(Error::BadLayout {
            reason: format!(
                "{} is described twice, as `{}` of {size} bytes and as `{}` of {} bytes",
                desc.digest,
                k.media_type(),
                kind.media_type(),
                desc.size
            ),
        }),
        Some(_) => Ok(()),
        None => {
            described.insert(desc.digest, (kind, desc.size));
            Ok(())
        }
    }
}

fn too_many_descriptors() -> Error {
    Error::BadLayout {
        reason: format!("the layout has more than {MAX_DESCRIPTORS} descriptors"),
    }
}

impl Walk<'_> {
    /// Counts a descriptor against [`MAX_DESCRIPTORS`].
    fn count(&mut self) -> Result<(), Error> {
        self.descriptors += 1;
        if self.descriptors > MAX_DESCRIPTORS {
            return Err(too_many_descriptors());
        }
        Ok(())
    }

    /// Counts and records a descriptor of a manifest or index (see [`record`]).
    fn describe(&mut self, desc: &Descriptor) -> Result<(), Error> {
        self.count()?;
        record(&mut self.described, desc)
    }

    /// Whether blob `d` is already stored and not in the layout (a pull skipped it).
    fn in_store(&self, d: &Digest) -> Result<bool, Error> {
        Ok(self.fallback.is_some_and(|o| o.contains(d)) && self.source.size(d)?.is_none())
    }

    /// Checks one manifest's config and layers, and plans how to store them. Returns the
    /// ancestors of a snap snapshot that the source holds and no walk has met yet.
    fn manifest(
        &mut self,
        manifest: &RawManifest,
        desc: &Descriptor,
    ) -> Result<Vec<Digest>, Error> {
        let m = manifest.manifest();
        check_media_type(desc, m.media_type.as_deref())?;
        self.plan.manifests += 1;
        self.plan
            .loose
            .insert(manifest.digest(), manifest.bytes().len() as u64);
        if let Some(subject) = &m.subject {
            crate::oci::referrers::check_subject(m, manifest.digest(), subject.digest)?;
            self.plan
                .referrers
                .push((subject.digest, manifest.digest()));
        }
        self.count()?;
        let config_in_store = self.in_store(&m.config.digest)?;
        let mut parents = Vec::new();
        if m.is_snapshot() {
            let at = ConfigAt {
                size: m.config.size,
                in_store: config_in_store,
            };
            let bytes = read_config(self.source, self.fallback, &m.config.digest, at)?;
            let cfg = SnapshotConfig::decode(&bytes).map_err(|e| Error::Incomplete {
                digest: manifest.digest(),
                reason: e.to_string(),
            })?;
            for (d, raw) in cfg.inline_trees() {
                if Digest::of(raw) != *d {
                    return Err(Error::Incomplete {
                        digest: manifest.digest(),
                        reason: format!("inline tree {d} does not match its bytes"),
                    });
                }
                self.plan.inline_trees.insert(*d, m.config.digest);
            }
            if cfg.inline_trees().next().is_some() {
                self.plan.configs.insert(m.config.digest, at);
            }
            self.plan.snapshots.push(PlannedSnapshot {
                manifest: manifest.digest(),
                root: cfg.root,
                config: m.config.digest,
            });
            // Ancestors travel as untagged entries or bare blobs: take the ones that are here,
            // as manifests of the size their blobs have (a descriptor met later must agree).
            for p in &cfg.parents {
                if self.described.contains_key(p) {
                    continue;
                }
                if let Some(size) = self.source.size(p)? {
                    self.count()?;
                    self.described.insert(*p, (Kind::Manifest, size));
                    parents.push(*p);
                }
            }
        } else if !config_in_store {
            if m.config.size > MAX_CONFIG_BYTES {
                return Err(Error::BadLayout {
                    reason: format!(
                        "config {} claims {} bytes, more than the {MAX_CONFIG_BYTES} snap accepts",
                        m.config.digest, m.config.size
                    ),
                });
            }
            self.source.check(&m.config.digest, m.config.size)?;
        }
        if !config_in_store {
            self.plan.loose.insert(m.config.digest, m.config.size);
        }
        for layer in &m.layers {
            self.count()?;
            if self.in_store(&layer.digest)? {
                continue;
            }
            self.source.check(&layer.digest, layer.size)?;
            let is_pack = m.is_snapshot()
                && (layer.media_type == MEDIA_TYPE_LAYER_TAR_ZSTD
                    || layer.media_type == MEDIA_TYPE_TREES);
            if is_pack {
                // Check the frame structure now, so a bad pack is refused before anything is
                // stored — unless it was checked as it was staged (a pull, issue 17).
                let index = if let Some(index) = self.source.staged_index(&layer.digest) {
                    index.clone()
                } else {
                    let mut r =
                        io::BufReader::with_capacity(1 << 20, self.source.open(&layer.digest)?);
                    crate::pack::scan::index_pack(&mut r).map_err(|problem| Error::NotAPack {
                        digest: layer.digest,
                        problem,
                    })?
                };
                self.plan.packs.insert(layer.digest, (layer.size, index));
            } else {
                self.plan.loose.insert(layer.digest, layer.size);
            }
        }
        Ok(parents)
    }
}

/// A descriptor's `mediaType` must be the one the bytes declare for themselves, if they do.
fn check_media_type(desc: &Descriptor, own: Option<&str>) -> Result<(), Error> {
    match own {
        Some(mt) if mt != desc.media_type => Err(Error::BadLayout {
            reason: format!(
                "{} is described as `{}` but says it is `{mt}`",
                desc.digest, desc.media_type
            ),
        }),
        _ => Ok(()),
    }
}

/// Reads a snapshot config (at most [`MAX_MANIFEST_BYTES`]: it is parsed) from the layout, or
/// from the store when a pull did not download it.
pub(super) fn read_config(
    source: &Source,
    fallback: Option<&Objects>,
    digest: &Digest,
    at: ConfigAt,
) -> Result<Vec<u8>, Error> {
    match fallback {
        Some(objects) if at.in_store => {
            let b = objects.read(digest, MAX_MANIFEST_BYTES)?;
            if b.len() as u64 != at.size {
                return Err(Error::BlobSize {
                    digest: *digest,
                    expected: at.size,
                    actual: b.len() as u64,
                });
            }
            Ok(b)
        }
        _ => source.read(digest, at.size, MAX_MANIFEST_BYTES),
    }
}

/// The inline trees of config `digest`, as `(tree digest, exact bytes)`.
pub(super) fn inline_trees_of(
    source: &Source,
    fallback: Option<&Objects>,
    plan: &Plan,
    digest: &Digest,
) -> Result<Vec<(Digest, Vec<u8>)>, Error> {
    let Some(&at) = plan.configs.get(digest) else {
        return Ok(Vec::new());
    };
    let bytes = read_config(source, fallback, digest, at)?;
    let cfg = SnapshotConfig::decode(&bytes).map_err(|e| Error::BadLayout {
        reason: format!("config {digest} changed while it was imported: {e}"),
    })?;
    Ok(cfg
        .inline_trees()
        .map(|(d, raw)| (*d, raw.to_vec()))
        .collect())
}

/// Checks that every tree and file of a snapshot is in the layout's checked blobs or already
/// in the store, reading trees from where they will be stored.
fn check_complete(
    store: &Store,
    source: &Source,
    fallback: Option<&Objects>,
    plan: &Plan,
    packed: &HashMap<Digest, (Digest, &IndexEntry)>,
    snapshot: &PlannedSnapshot,
) -> Result<(), Error> {
    let incomplete = |reason: String| Error::Incomplete {
        digest: snapshot.manifest,
        reason,
    };
    // Its own inline trees, read once; another snapshot's are read when met.
    let own: HashMap<Digest, Vec<u8>> = inline_trees_of(source, fallback, plan, &snapshot.config)?
        .into_iter()
        .collect();
    let read_tree = |d: &Digest| -> Result<Vec<u8>, restore::Error> {
        let not_a_tree = |reason: String| restore::Error::Tree { digest: *d, reason };
        if let Some(b) = own.get(d) {
            return Ok(b.clone());
        }
        if let Some(config) = plan.inline_trees.get(d) {
            let trees = inline_trees_of(source, fallback, plan, config)
                .map_err(|e| not_a_tree(e.to_string()))?;
            return trees
                .into_iter()
                .find(|(t, _)| t == d)
                .map(|(_, b)| b)
                .ok_or_else(|| not_a_tree(format!("config {config} no longer carries it")));
        }
        let Some(&(pack, entry)) = packed.get(d) else {
            return Ok(store.objects.read(d, crate::snapshot::MAX_METADATA_BYTES)?);
        };
        if entry.size > crate::snapshot::MAX_METADATA_BYTES {
            return Err(not_a_tree(format!("it is {} bytes long", entry.size)));
        }
        let mut f = source.open(&pack).map_err(|e| not_a_tree(e.to_string()))?;
        let mut frames = Vec::new();
        io::Seek::seek(&mut f, io::SeekFrom::Start(entry.offset))
            .and_then(|_| f.take(entry.length).read_to_end(&mut frames))
            .map_err(|e| not_a_tree(e.to_string()))?;
        crate::pack::read_object(&frames, entry).map_err(|e| not_a_tree(e.to_string()))
    };
    let p = restore::plan_with(read_tree, &snapshot.root).map_err(|e| incomplete(e.to_string()))?;
    let missing = p.files.iter().find(|f| {
        !(plan.loose.contains_key(&f.digest)
            || packed.contains_key(&f.digest)
            || store.objects.contains(&f.digest))
    });
    match missing {
        Some(f) => Err(incomplete(format!(
            "file {} ({}) is not in its layers",
            f.path, f.digest
        ))),
        None => Ok(()),
    }
}
