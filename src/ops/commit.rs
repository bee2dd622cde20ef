//! `snap commit`: record paths as a snapshot on a ref.
//!
//! Order: scan, store files and trees (durable), then per attempt: read the ref, build config
//! and manifest on it as parent, store them, and move the ref by compare-and-swap. If another
//! process moved the ref first, the snapshot is rebuilt on the winner (re-parented) and the
//! swap retried: no reported commit is ever lost.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::object::{Provenance, SnapshotConfig, Stats};
use crate::oci::{self, Descriptor, MEDIA_TYPE_CONFIG, MEDIA_TYPE_EMPTY, artifact};
use crate::ops::Error;
use crate::provenance;
use crate::snapshot::Snapshot;
use crate::store::{Expected, RefEdit, RefName, Store};
use crate::timestamp::Timestamp;
use crate::worktree::commit::build::{self, Built, Progress};
use crate::worktree::commit::fingerprint::{self, TreeCache};
use crate::worktree::commit::groups::Reuse;
use crate::worktree::commit::packcache::PackCache;
use crate::worktree::commit::racy::RacyRule;
use crate::worktree::commit::scan::{self, Root};
use crate::worktree::commit::statcache::StatCache;

/// How many times a commit re-parents before giving up.
pub const MAX_ATTEMPTS: u32 = 32;

/// What to commit.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    /// Paths to record (relative to `cwd` or absolute).
    pub paths: Vec<PathBuf>,
    /// The message.
    pub message: String,
    /// The head to move; `None`: the store's `commit.ref` setting, else `latest`.
    pub ref_name: Option<RefName>,
    /// Extra manifest annotations, `KEY=VALUE`.
    pub annotations: Vec<String>,
    /// Input paths whose git state is recorded.
    pub inputs: Vec<PathBuf>,
    /// Resolve and record paths relative to this directory instead of the store root (`-C`).
    pub base: Option<PathBuf>,
    /// The directory relative paths are resolved against.
    pub cwd: PathBuf,
    /// Patterns (gitignore syntax, anchored at the recording base) to leave out.
    pub excludes: Vec<String>,
    /// Also honour `.gitignore` files (`.snapignore` files always are).
    pub gitignore: bool,
}

/// How the ref changed.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Update {
    /// The ref was created.
    Inserted,
    /// The ref moved.
    Replaced,
    /// Nothing changed: the ref's snapshot already records this.
    Unchanged,
}

/// What a commit did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct CommitOutcome {
    /// The snapshot id (for `unchanged`, the existing snapshot).
    pub digest: Digest,
    /// The ref (short name).
    #[serde(rename = "ref")]
    pub ref_name: String,
    /// The previous snapshot on the ref.
    pub parent: Option<Digest>,
    /// How the ref changed.
    pub update: Update,
    /// Files recorded.
    pub files: u64,
    /// Directories recorded.
    pub dirs: u64,
    /// Symlinks recorded.
    pub symlinks: u64,
    /// Bytes of file contents recorded.
    pub bytes: u64,
    /// Layers in the manifest.
    pub layers: usize,
    /// Bytes of the manifest.
    pub manifest_bytes: usize,
    /// Attempts the ref update took (more than 1 when another commit won a race).
    pub attempts: u32,
    /// Files whose contents were read (the others were known unchanged from the stat cache).
    #[serde(default)]
    pub files_read: u64,
    /// Packs reused and written, blocks copied and compressed.
    #[serde(default)]
    pub reuse: Reuse,
}

/// Commits `opts.paths` to a head in `store`.
///
/// # Errors
/// `InvalidInput` for bad paths, annotations or ref names; `NotFound` for missing paths;
/// `Conflict` when the ref's lock stays held; `Io` for filesystem failures.
pub fn commit(
    store: &Store,
    opts: &CommitOptions,
    progress: &dyn Progress,
) -> Result<CommitOutcome, Error> {
    let opts = &with_settings(store, opts)?;
    let res = commit_inner(store, opts, progress);
    if res.is_err() {
        // Best effort: what cannot be taken back now, `snap gc` collects.
        let _ = crate::ops::gc::roll_back(store);
    }
    res
}

/// The store's settings fill in what the options leave open, so a library caller gets what
/// the CLI does: `commit.ref` names the head when `ref_name` is `None`, `commit.gitignore`
/// turns `gitignore` on.
fn with_settings(store: &Store, opts: &CommitOptions) -> Result<CommitOptions, Error> {
    let settings = crate::config::Config::load(store.dir())?;
    let mut opts = opts.clone();
    if opts.ref_name.is_none()
        && let Some(r) = settings.get("commit.ref")
    {
        // Checked when it was set; a hand-edited file is checked here.
        opts.ref_name = Some(RefName::head(r)?);
    }
    opts.gitignore |= settings.flag("commit.gitignore");
    Ok(opts)
}

fn commit_inner(
    store: &Store,
    opts: &CommitOptions,
    progress: &dyn Progress,
) -> Result<CommitOutcome, Error> {
    if opts.paths.is_empty() {
        return Err(Error::NothingToCommit);
    }
    let name = match &opts.ref_name {
        Some(n) => n.clone(),
        None => RefName::head(crate::oci::LATEST)?,
    };
    if store.refs.get(&RefName::tag(name.short())?)?.is_some() {
        return Err(Error::CommitToTag {
            name: name.short().to_owned(),
        });
    }
    let user_annotations = parse_annotations(&opts.annotations)?;

    let (base, store_dir, roots) = roots(store, opts)?;

    let (provenance, created) = provenance_of(opts, &base, &roots)?;

    // What changed since the last commit is judged by stat alone where possible: a
    // fingerprint of the whole scan names the root tree it produced last time, and per-file
    // records give the digests of unchanged files (worktree::commit::statcache).
    let started = RacyRule::now();
    let filter = scan::Filter::for_commit(store_dir, &base, opts.gitignore, &opts.excludes);
    let entries = scan::scan_filtered(&roots, &filter)?;
    let racy = RacyRule::for_scan(started, &entries);
    let fingerprint = fingerprint::fingerprint(&entries, &racy);
    let mut tree_cache = TreeCache::load(store.dir());
    let mut loaded = None;
    let known_root = if let Some(root) = fingerprint.and_then(|f| tree_cache.get(&f)) {
        Some(root)
    } else {
        let cache = StatCache::load(store.dir(), racy.clone());
        let lookup = cache.lookup(&entries);
        let root = build::cached_root(&entries, &lookup).map(|(r, _)| r);
        loaded = Some((cache, lookup));
        root
    };
    // Nothing changed since the last commit on this ref: stat every file, read none.
    if let Some(root) = known_root
        && let Some((p, prev)) = unchanged(store, &name, root, &provenance, &user_annotations)?
    {
        if let Some(f) = fingerprint {
            let _ = tree_cache.record(store.dir(), f, root);
        }
        return Ok(outcome(
            &name,
            p,
            prev.parent(),
            Update::Unchanged,
            &prev.config.stats,
            &prev,
            1,
        ));
    }

    let (cache, lookup) = loaded.unwrap_or_else(|| {
        let cache = StatCache::load(store.dir(), racy);
        let lookup = cache.lookup(&entries);
        (cache, lookup)
    });
    let packs = PackCache::load(store.dir());
    let built = build::build(&store.objects, &entries, &lookup, &packs, progress)?;
    drop(lookup);
    let Built {
        root,
        layers: layers_built,
        inline_trees: inline_built,
        stats,
        files,
        cuts,
        dir_trees,
        files_read,
        used,
        reuse,
        ..
    } = built;
    let built = Recorded {
        root,
        stats,
        files_read,
        reuse,
    };
    let store_dir = store.dir().to_owned();
    std::thread::scope(|scope| {
        // The caches are saved while the snapshot is written (each waits on its own syncs).
        // Only speed depends on them: a failure to save them is not the commit's failure.
        let saver = scope.spawn(|| {
            let _ = cache.save(&store_dir, &entries, &files, &cuts, &dir_trees);
            drop(cache);
            let _ = packs.save(&store_dir, &used);
            if let Some(f) = fingerprint {
                let _ = tree_cache.record(&store_dir, f, root);
            }
        });
        let out = write_snapshot(
            store,
            Pending {
                name: &name,
                built: &built,
                layers: layers_built,
                inline_trees: inline_built,
                provenance: &provenance,
                created: created.as_deref(),
                user_annotations: &user_annotations,
                message: &opts.message,
            },
        );
        let _ = saver.join();
        out
    })
}

/// The paths to commit as scan roots, each with the path it is recorded under (relative to
/// the base: `-C DIR`, else the directory holding the store), the base, and the store's own
/// directory (never recorded).
fn roots(store: &Store, opts: &CommitOptions) -> Result<(PathBuf, PathBuf, Vec<Root>), Error> {
    let base = match &opts.base {
        Some(b) => canonical(&opts.cwd.join(b))?,
        None => store
            .root()
            .canonicalize()
            .map_err(|_| Error::PathNotFound {
                path: store.root().to_owned(),
            })?,
    };
    // The store is never recorded: a snapshot of it, restored, would rewind its refs and
    // reflogs behind their locks. Found inside a directory, it is skipped (scan::Filter).
    let store_dir = canonical(store.dir())?;
    let mut roots = Vec::new();
    for p in &opts.paths {
        // With -C, paths are given relative to that directory (as with `tar -C`).
        let from = if opts.base.is_some() {
            &base
        } else {
            &opts.cwd
        };
        let abs = canonical_keep_last(&from.join(p))?;
        if abs.starts_with(&store_dir) {
            return Err(Error::RecordsStore {
                path: abs,
                store: store_dir,
            });
        }
        let recorded = match abs.strip_prefix(&base) {
            Ok(rel) => rel
                .components()
                .map(|c| c.as_os_str().to_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| scan::Error::InvalidPath { path: abs.clone() })?
                .join("/"),
            Err(_) => abs
                .file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| scan::Error::InvalidPath { path: abs.clone() })?
                .to_owned(),
        };
        roots.push(Root {
            recorded,
            source: abs,
        });
    }
    Ok((base, store_dir, roots))
}

/// Where the output came from (git, read from the work tree holding the first path, and the
/// inputs' digests) and when it was made (`SOURCE_DATE_EPOCH`, else the git commit's time).
fn provenance_of(
    opts: &CommitOptions,
    base: &Path,
    roots: &[Root],
) -> Result<(Provenance, Option<String>), Error> {
    let git_anchor = roots.first().map_or_else(
        || base.to_owned(),
        |r| r.source.parent().unwrap_or(&r.source).to_owned(),
    );
    let inputs: Vec<PathBuf> = opts.inputs.iter().map(|i| opts.cwd.join(i)).collect();
    let provenance = provenance::collect(&git_anchor, &inputs)?.unwrap_or_default();
    let created = Timestamp::from_source_date_epoch()
        .map(|t| t.to_string())
        .or_else(|| provenance.git.as_ref().and_then(|g| g.time.clone()));
    Ok((provenance, created))
}

/// The ref's snapshot, when it already records `root` with the same provenance and user
/// annotations (a commit then moves nothing).
fn unchanged(
    store: &Store,
    name: &RefName,
    root: Digest,
    provenance: &Provenance,
    user_annotations: &BTreeMap<String, String>,
) -> Result<Option<(Digest, Snapshot)>, Error> {
    let Some(p) = store.refs.get(name)? else {
        return Ok(None);
    };
    let prev = Snapshot::load(store, &p)?;
    let same = prev.config.root == root
        && prev.config.provenance == *provenance
        && user_keys(&prev.manifest.manifest().annotations) == *user_annotations;
    Ok(same.then_some((p, prev)))
}

/// A built snapshot waiting for its ref: what the config and manifest record.
struct Pending<'a> {
    name: &'a RefName,
    built: &'a Recorded,
    layers: Vec<Descriptor>,
    inline_trees: BTreeMap<Digest, Box<serde_json::value::RawValue>>,
    provenance: &'a Provenance,
    created: Option<&'a str>,
    user_annotations: &'a BTreeMap<String, String>,
    message: &'a str,
}

/// Writes the config and manifest on top of the ref's current value and moves the ref by
/// compare-and-swap, again on top of the winner when another commit moved it first (at most
/// `MAX_ATTEMPTS` times); nothing is written when the ref already names the same content.
fn write_snapshot(store: &Store, p: Pending<'_>) -> Result<CommitOutcome, Error> {
    let Pending {
        name,
        built,
        layers: layers_built,
        inline_trees: inline_built,
        provenance,
        created,
        user_annotations,
        message,
    } = p;
    let name = name.clone();
    let created = created.map(str::to_owned);
    let mut layers = layers_built;
    if layers.is_empty() {
        let d = store.objects.put(oci::EMPTY_BLOB)?;
        layers.push(Descriptor::new(
            MEDIA_TYPE_EMPTY,
            d,
            oci::EMPTY_BLOB.len() as u64,
        ));
    }
    let annotations = manifest_annotations(provenance, created.as_deref(), user_annotations);

    let message = message.to_owned();
    let mut inline_trees = inline_built;
    for attempt in 1..=MAX_ATTEMPTS {
        let parent = store.refs.get(&name)?;
        if let Some(p) = parent {
            let prev = Snapshot::load(store, &p)?;
            let same_user_annotations =
                user_keys(&prev.manifest.manifest().annotations) == *user_annotations;
            if prev.config.root == built.root
                && prev.config.provenance == *provenance
                && same_user_annotations
            {
                let mut out = outcome(
                    &name,
                    p,
                    prev.parent(),
                    Update::Unchanged,
                    &prev.config.stats,
                    &prev,
                    attempt,
                );
                out.files_read = built.files_read;
                out.reuse = built.reuse;
                return Ok(out);
            }
        }
        let config = SnapshotConfig {
            root: built.root,
            parents: parent.into_iter().collect(),
            message: message.clone(),
            created: created.clone(),
            provenance: provenance.clone(),
            stats: built.stats,
            trees: std::mem::take(&mut inline_trees),
        };
        let config_bytes = config.encode();
        inline_trees = config.trees;
        let config_digest = store.objects.put(&config_bytes)?;
        let manifest = artifact::snapshot_manifest(
            Descriptor::new(MEDIA_TYPE_CONFIG, config_digest, config_bytes.len() as u64),
            layers.clone(),
            annotations.clone(),
        );
        let id = store.objects.put(manifest.bytes())?;
        let edit = RefEdit {
            name: name.clone(),
            expected: parent.map_or(Expected::Absent, Expected::Is),
            new: Some(id),
            message: reflog_message(parent.is_none(), &message),
        };
        match store.update_ref(&edit) {
            Ok(()) => {
                let update = if parent.is_some() {
                    Update::Replaced
                } else {
                    Update::Inserted
                };
                return Ok(CommitOutcome {
                    digest: id,
                    ref_name: name.short().to_owned(),
                    parent,
                    update,
                    files: built.stats.files,
                    dirs: built.stats.dirs,
                    symlinks: built.stats.symlinks,
                    bytes: built.stats.bytes,
                    layers: manifest.manifest().layers.len(),
                    manifest_bytes: manifest.bytes().len(),
                    attempts: attempt,
                    files_read: built.files_read,
                    reuse: built.reuse,
                });
            }
            // Another commit won: rebuild on top of it.
            Err(crate::store::refs::Error::OutOfDate { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::TooManyRetries {
        name,
        attempts: MAX_ATTEMPTS,
    })
}

/// What the snapshot records of a build.
struct Recorded {
    root: Digest,
    stats: Stats,
    files_read: u64,
    reuse: Reuse,
}

fn outcome(
    name: &RefName,
    id: Digest,
    parent: Option<Digest>,
    update: Update,
    stats: &Stats,
    snap: &Snapshot,
    attempts: u32,
) -> CommitOutcome {
    CommitOutcome {
        digest: id,
        ref_name: name.short().to_owned(),
        parent,
        update,
        files: stats.files,
        dirs: stats.dirs,
        symlinks: stats.symlinks,
        bytes: stats.bytes,
        layers: snap.manifest.manifest().layers.len(),
        manifest_bytes: snap.manifest.bytes().len(),
        attempts,
        files_read: 0,
        reuse: Reuse::default(),
    }
}

fn reflog_message(initial: bool, message: &str) -> String {
    let first = message.lines().next().unwrap_or("");
    let kind = if initial {
        "commit (initial)"
    } else {
        "commit"
    };
    if first.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {first}")
    }
}

/// Annotation keys snap sets itself.
const RESERVED: &[&str] = &[
    oci::ANNOTATION_CREATED,
    oci::ANNOTATION_REVISION,
    oci::ANNOTATION_SOURCE,
    oci::ANNOTATION_BRANCH,
    oci::ANNOTATION_DIRTY,
];

fn parse_annotations(raw: &[String]) -> Result<BTreeMap<String, String>, Error> {
    let mut out = BTreeMap::new();
    for a in raw {
        let (k, v) = a
            .split_once('=')
            .ok_or_else(|| Error::InvalidAnnotation { input: a.clone() })?;
        if k.is_empty() {
            return Err(Error::InvalidAnnotation { input: a.clone() });
        }
        if RESERVED.contains(&k) {
            return Err(Error::ReservedAnnotation { key: k.to_owned() });
        }
        out.insert(k.to_owned(), v.to_owned());
    }
    Ok(out)
}

fn user_keys(all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    all.iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn manifest_annotations(
    provenance: &Provenance,
    created: Option<&str>,
    user: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    let mut a = user.clone();
    if let Some(c) = created {
        a.insert(oci::ANNOTATION_CREATED.into(), c.to_owned());
    }
    if let Some(g) = &provenance.git {
        a.insert(oci::ANNOTATION_REVISION.into(), g.commit.clone());
        if let Some(r) = &g.remote {
            a.insert(oci::ANNOTATION_SOURCE.into(), r.clone());
        }
        if let Some(b) = &g.branch {
            a.insert(oci::ANNOTATION_BRANCH.into(), b.clone());
        }
        a.insert(oci::ANNOTATION_DIRTY.into(), g.dirty.to_string());
    }
    a
}

fn canonical(p: &Path) -> Result<PathBuf, Error> {
    p.canonicalize()
        .map_err(|_| Error::PathNotFound { path: p.to_owned() })
}

/// Canonicalizes the parent and keeps the last component as is, so a symlink given as a path
/// is recorded as a symlink.
fn canonical_keep_last(p: &Path) -> Result<PathBuf, Error> {
    let name = p.file_name().filter(|n| *n != "." && *n != "..");
    match (name, p.parent()) {
        (Some(name), Some(parent)) if !parent.as_os_str().is_empty() => {
            let abs = canonical(parent)?.join(name);
            if std::fs::symlink_metadata(&abs).is_err() {
                return Err(Error::PathNotFound { path: p.to_owned() });
            }
            Ok(abs)
        }
        _ => canonical(p),
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn annotations_are_parsed_and_reserved_keys_refused() {
        assert!(parse_annotations(&["a=b=c".into()]).is_ok_and(|m| m["a"] == "b=c"));
        assert!(matches!(
            parse_annotations(&["novalue".into()]),
            Err(Error::InvalidAnnotation { .. })
        ));
        assert!(matches!(
            parse_annotations(&["=x".into()]),
            Err(Error::InvalidAnnotation { .. })
        ));
        assert!(matches!(
            parse_annotations(&["org.opencontainers.image.revision=x".into()]),
            Err(Error::ReservedAnnotation { .. })
        ));
    }

    #[test]
    fn reflog_messages_use_the_first_line() {
        assert_eq!(reflog_message(true, "a\nb"), "commit (initial): a");
        assert_eq!(reflog_message(false, ""), "commit");
    }
}
