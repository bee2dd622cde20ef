//! `snap restore REGISTRY/REPO[:TAG|@DIGEST] DEST [--path DIR]…`: a snapshot's files straight
//! from a registry, fetching only the layers that hold the paths asked for (issue 17) — or
//! from an OCI layout (`oci:DIR[:NAME]`, `oci-archive:FILE[:NAME]`), reading only those
//! layers' blobs (an archive is staged whole first: a tar cannot be read out of order).
//!
//! The manifest, the config and the tree layers are fetched (each checked against its
//! digest; tree layers indexed as they arrive). A grouped snapshot's group boundaries are a
//! pure function of its trees (OCI mapping §3): the members are walked in pre-order as the
//! commit walked them, their tar headers and weights rebuilt, and [`artifact::Grouper`] cuts
//! them again, so each member's layer is known without downloading a group. Only the groups
//! holding a file under a requested path are downloaded; when the cuts do not give as many
//! groups as the manifest has file layers (a snapshot made by other rules), every file layer
//! is. A direct-mode snapshot's files are layers titled with their paths: the ones under the
//! paths are taken. Everything goes into a temp store (packs verified as they download), and
//! the restore itself is `restore::apply` of the plan cut down to the paths, under the same
//! rules as a local restore.
//!
//! It never touches a local store.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::object::{EntryKind, SnapshotConfig, Tree};
use crate::oci::{Descriptor, MEDIA_TYPE_TREES, RawManifest, artifact};
use crate::ops::Error;
use crate::pack::MemberKind;
use crate::registry::ClientOptions;
use crate::snapshot::MAX_METADATA_BYTES;
use crate::store::Store;
use crate::worktree::checkout::dest::Guard;
use crate::worktree::checkout::restore::{self, RestorePlan, RestoreStats};

mod origin;

use origin::Origin;
pub use origin::RestoreSource;

/// What to restore from where.
#[derive(Clone, Debug)]
pub struct RemoteRestoreOptions {
    /// The registry reference or the layout.
    pub source: RestoreSource,
    /// The destination directory.
    pub dest: PathBuf,
    /// Only these paths of the snapshot (all when empty).
    pub paths: Vec<String>,
    /// Write into a non-empty destination, replacing what is in the way.
    pub force: bool,
    /// Connection settings (for a registry).
    pub client: ClientOptions,
}

/// What a restore from a registry did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RemoteRestoreOutcome {
    /// The snapshot restored.
    pub digest: Digest,
    /// The destination.
    pub dest: PathBuf,
    /// Layers the snapshot has.
    pub layers: u64,
    /// Layers downloaded (tree layers included).
    pub layers_fetched: u64,
    /// Bytes of all its layers and config.
    pub snapshot_bytes: u64,
    /// Bytes downloaded (manifest, config and layers).
    pub fetched_bytes: u64,
    /// HTTP requests made.
    pub requests: u64,
    /// Counts.
    #[serde(flatten)]
    pub stats: RestoreStats,
}

/// Restores a snapshot's `paths` (or all of it) from a registry into `opts.dest`.
///
/// # Errors
/// `Registry` errors; `InvalidInput` for a path the snapshot does not hold or a manifest that
/// is not a snap snapshot; `Corrupt` for a blob that is not what its descriptor says; what a
/// local restore refuses (a non-empty destination without `force`, unsafe paths).
pub fn restore_remote(
    opts: &RemoteRestoreOptions,
    progress: &dyn crate::progress::Progress,
) -> Result<RemoteRestoreOutcome, Error> {
    let temp = tempfile::tempdir().map_err(|source| Error::Io {
        op: "creating a temp directory for",
        path: opts.dest.clone(),
        source,
    })?;
    let (store, _) = Store::init(&temp.path().join(".store"))?;
    let origin = Origin::open(&opts.source, &opts.client, &store)?;
    let (bytes, digest) = origin.manifest()?;
    let mut fetched_bytes = bytes.len() as u64;
    let manifest = RawManifest::from_bytes(bytes).map_err(|e| Error::NotAManifest {
        digest,
        reason: e.to_string(),
    })?;
    let m = manifest.manifest();
    if !m.is_snapshot() || m.config.size > MAX_METADATA_BYTES {
        return Err(Error::NotAManifest {
            digest,
            reason: "it is not a snap snapshot".into(),
        });
    }
    let mut config = Vec::new();
    origin.copy(&m.config.digest, m.config.size, &mut config)?;
    fetched_bytes += m.config.size;
    let config = SnapshotConfig::decode(&config).map_err(|e| Error::Incomplete {
        digest,
        reason: e.to_string(),
    })?;
    for (d, raw) in config.inline_trees() {
        if Digest::of(raw) != *d {
            return Err(Error::Incomplete {
                digest,
                reason: format!("inline tree {d} does not match its bytes"),
            });
        }
        store.objects.put(raw)?;
    }
    let (tree_layers, file_layers): (Vec<&Descriptor>, Vec<&Descriptor>) = m
        .layers
        .iter()
        .partition(|l| l.media_type == MEDIA_TYPE_TREES);
    for l in &tree_layers {
        fetch_layer(&origin, &store, l, true)?;
    }
    let plan = restore::plan(&store.objects, &config.root)?;
    let paths = parse_paths(&opts.paths, &plan, digest)?;

    let wanted: Vec<&Descriptor> = if paths.is_empty() {
        file_layers.clone()
    } else if tree_layers.is_empty() {
        // Direct mode: each file a layer titled with its path.
        file_layers
            .iter()
            .copied()
            .filter(|l| {
                l.annotations
                    .get(crate::oci::ANNOTATION_TITLE)
                    .is_some_and(|t| paths.iter().any(|p| is_under(t, p)))
            })
            .collect()
    } else {
        let read = |d: &Digest| Ok(store.objects.read(d, MAX_METADATA_BYTES)?);
        let groups = group_of_files(read, &config.root, &paths)?;
        match groups {
            Some((count, picked)) if count == file_layers.len() => picked
                .into_iter()
                .filter_map(|g| file_layers.get(g).copied())
                .collect(),
            _ => file_layers.clone(),
        }
    };
    progress.begin(
        "Fetching",
        wanted.iter().map(|l| l.size).sum(),
        wanted.len() as u64,
    );
    for l in &wanted {
        fetch_layer(&origin, &store, l, !tree_layers.is_empty())?;
        progress.advance(l.size, 1);
    }
    progress.end();
    fetched_bytes += tree_layers
        .iter()
        .chain(&wanted)
        .map(|l| l.size)
        .sum::<u64>();

    let plan = cut_down(plan, &paths);
    let guard = Guard::new(&opts.dest, store.dir()).map_err(restore::Error::from)?;
    let stats = restore::apply(
        &store.objects,
        &plan,
        &opts.dest,
        opts.force,
        &guard,
        progress,
    )?;
    Ok(RemoteRestoreOutcome {
        digest,
        dest: opts.dest.clone(),
        layers: m.layers.len() as u64,
        layers_fetched: (tree_layers.len() + wanted.len()) as u64,
        snapshot_bytes: manifest.bytes().len() as u64
            + m.config.size
            + m.layers.iter().map(|l| l.size).sum::<u64>(),
        fetched_bytes,
        requests: origin.requests(),
        stats,
    })
}

/// Fetches one layer into `store`: a pack (indexed as it arrives from a registry, scanned
/// from a layout) or a loose blob.
fn fetch_layer(origin: &Origin, store: &Store, l: &Descriptor, pack: bool) -> Result<(), Error> {
    let staging = store.temp_dir()?;
    let path = staging.path().join(l.digest.hex());
    let index = origin.fetch(&l.digest, l.size, &path, pack)?;
    let open = || {
        std::fs::File::open(&path)
            .map(std::io::BufReader::new)
            .map_err(|source| Error::Io {
                op: "opening",
                path: path.clone(),
                source,
            })
    };
    if !pack {
        store.objects.put_stream(&mut open()?, &path)?;
        return Ok(());
    }
    let index = if let Some(i) = index {
        i
    } else {
        // Not snap's pack structure: say how.
        crate::pack::scan::index_pack(&mut open()?).map_err(|problem| Error::NotAPack {
            digest: l.digest,
            problem,
        })?
    };
    store.objects.adopt_pack(&path, &l.digest, index)?;
    Ok(())
}

/// The requested paths, each checked to be in the snapshot (`plan` holds every path).
pub(crate) fn parse_paths(
    given: &[String],
    plan: &RestorePlan,
    snapshot: Digest,
) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for p in given {
        let trimmed = p.trim_end_matches('/');
        let known = plan.dirs.iter().any(|d| d.as_str() == trimmed)
            || plan.files.iter().any(|f| f.path.as_str() == trimmed)
            || plan.symlinks.iter().any(|(s, _)| s.as_str() == trimmed);
        if trimmed.is_empty() || !known {
            return Err(Error::PathNotInSnapshot {
                path: p.clone(),
                snapshot,
            });
        }
        out.push(trimmed.to_owned());
    }
    Ok(out)
}

/// Whether `path` is `prefix` or below it.
fn is_under(path: &str, prefix: &str) -> bool {
    path == prefix
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The plan of only what lies under `paths`, with the directories above them (all of it when
/// `paths` is empty).
pub(crate) fn cut_down(plan: RestorePlan, paths: &[String]) -> RestorePlan {
    if paths.is_empty() {
        return plan;
    }
    let under = |p: &str| paths.iter().any(|q| is_under(p, q));
    let above = |p: &str| paths.iter().any(|q| is_under(q, p));
    RestorePlan {
        dirs: plan
            .dirs
            .into_iter()
            .filter(|d| under(d.as_str()) || above(d.as_str()))
            .collect(),
        files: plan
            .files
            .into_iter()
            .filter(|f| under(f.path.as_str()))
            .collect(),
        symlinks: plan
            .symlinks
            .into_iter()
            .filter(|(s, _)| under(s.as_str()))
            .collect(),
    }
}

/// One member of a grouped snapshot, in tar order.
struct Member {
    path: String,
    kind: MemberKind,
    target: Option<String>,
    digest: Option<Digest>,
}

/// The members below `root` in pre-order (a directory, then everything under it, then its
/// next sibling; names sorted), as the commit walked them.
fn members(
    read: &dyn Fn(&Digest) -> Result<Vec<u8>, Error>,
    root: &Digest,
) -> Result<Vec<Member>, Error> {
    let decode = |d: &Digest| -> Result<Vec<crate::object::TreeEntry>, Error> {
        Tree::decode(&read(d)?)
            .map(|t| t.entries().to_vec())
            .map_err(|e| Error::Incomplete {
                digest: *d,
                reason: e.to_string(),
            })
    };
    let mut out = Vec::new();
    let mut stack = vec![(String::new(), decode(root)?, 0usize)];
    while let Some((prefix, entries, next)) = stack.last_mut() {
        let Some(e) = entries.get(*next).cloned() else {
            stack.pop();
            continue;
        };
        *next += 1;
        let path = if prefix.is_empty() {
            e.name.as_str().to_owned()
        } else {
            format!("{prefix}/{}", e.name.as_str())
        };
        match e.kind {
            EntryKind::File {
                size,
                digest,
                executable,
            } => out.push(Member {
                path,
                kind: MemberKind::File { size, executable },
                target: None,
                digest: Some(digest),
            }),
            EntryKind::Symlink { target } => out.push(Member {
                path,
                kind: MemberKind::Symlink,
                target: Some(target),
                digest: None,
            }),
            EntryKind::Dir { digest } => {
                out.push(Member {
                    path: path.clone(),
                    kind: MemberKind::Dir,
                    target: None,
                    digest: None,
                });
                let below = decode(&digest)?;
                stack.push((path, below, 0));
            }
        }
    }
    Ok(out)
}

/// Cuts the members into groups as the commit did; returns how many groups there are and
/// which hold a file under `paths`. `None` when the walk order cannot be rebuilt.
fn group_of_files(
    read: impl Fn(&Digest) -> Result<Vec<u8>, Error>,
    root: &Digest,
    paths: &[String],
) -> Result<Option<(usize, BTreeSet<usize>)>, Error> {
    let members = members(&read, root)?;
    let size_of = |m: &Member| match m.kind {
        MemberKind::File { size, .. } => size,
        _ => 0,
    };
    let total: u64 = members.iter().map(|m| artifact::weight(size_of(m))).sum();
    let target = artifact::group_target(total);
    let large = artifact::large_file_threshold(target);
    let mut grouper = artifact::Grouper::new(target);
    let mut group = 0usize;
    let mut open = false;
    let mut picked = BTreeSet::new();
    for m in &members {
        let is_file = matches!(m.kind, MemberKind::File { .. });
        let wanted = is_file && paths.iter().any(|p| is_under(&m.path, p));
        if is_file && size_of(m) >= large {
            if open {
                group += 1;
            }
            grouper.reset();
            if wanted {
                picked.insert(group);
            }
            group += 1;
            open = false;
            continue;
        }
        open = true;
        if wanted {
            picked.insert(group);
        }
        let header = crate::pack::tar::header(&m.path, m.kind, m.target.as_deref());
        if grouper.push(&header, m.digest.as_ref(), artifact::weight(size_of(m))) {
            group += 1;
            open = false;
        }
    }
    if open {
        group += 1;
    }
    Ok(Some((group, picked)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_is_under_itself_and_its_ancestors_only_at_a_separator() {
        assert!(is_under("a/b", "a/b"));
        assert!(is_under("a/b/c", "a/b"));
        assert!(
            !is_under("a/bc", "a/b"),
            "a sibling sharing a prefix is not under it"
        );
        assert!(!is_under("a", "a/b"));
    }

    #[test]
    fn members_come_in_pre_order_a_directory_before_its_contents_and_its_next_sibling()
    -> Result<(), Box<dyn std::error::Error>> {
        use crate::object::{EntryName, TreeEntry};
        let file = |name: &str, body: &[u8]| -> Result<TreeEntry, Box<dyn std::error::Error>> {
            Ok(TreeEntry {
                name: EntryName::new(name)?,
                kind: EntryKind::File {
                    size: body.len() as u64,
                    digest: Digest::of(body),
                    executable: false,
                },
            })
        };
        let sub = Tree::new(vec![file("x", b"1")?, file("y", b"2")?])?.encode();
        let root = Tree::new(vec![
            TreeEntry {
                name: EntryName::new("a")?,
                kind: EntryKind::Dir {
                    digest: Digest::of(&sub),
                },
            },
            file("b", b"3")?,
        ])?
        .encode();
        let trees = std::collections::HashMap::from([
            (Digest::of(&sub), sub),
            (Digest::of(&root), root.clone()),
        ]);
        let read = |d: &Digest| {
            trees
                .get(d)
                .cloned()
                .ok_or(Error::MissingBlob { digest: *d })
        };
        let paths: Vec<String> = members(&read, &Digest::of(&root))?
            .into_iter()
            .map(|m| m.path)
            .collect();
        assert_eq!(paths, ["a", "a/x", "a/y", "b"], "the commit's tar order");
        Ok(())
    }
}
