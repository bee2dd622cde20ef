//! Asking a registry without pulling: `snap ls-remote`, `snap show` and `snap log` of a
//! registry reference, and `snap status --remote`.
//!
//! Only manifests, indexes and snap configs cross the network, and only through the client's
//! bounds: tag lists page by page ([`crate::registry::tags`]), manifests and indexes at most
//! [`MAX_MANIFEST_BYTES`], a snapshot's config at most the same (it is a few hundred bytes;
//! a larger one is refused before it is asked for). Each is checked against its digest as
//! pull checks it. No layer blob is ever requested, and nothing here touches a store: the
//! answers are values the CLI renders as it renders the local ones.
//!
//! Staleness uses the tags `snap push` writes, [`commit_tag`] of each git commit, looked up
//! with `HEAD` requests along the first-parent history of the work tree's HEAD (as
//! `snap pull --walk-back` does).

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::digest::Digest;
use crate::oci::{Descriptor, Node};
use crate::ops::Error;
use crate::ops::push::commit_tag;
use crate::provenance;
use crate::registry::client::MAX_MANIFEST_BYTES;
use crate::registry::{self, Client, ClientOptions, RemoteRef};
use crate::snapshot::{Artifact, LogEntry, NotSnapshot, Snapshot};

/// What a tag names, by kind.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RemoteKind {
    /// A snap snapshot (its config was read).
    Snapshot,
    /// Another image manifest: a container image, an ORAS or OMMX artifact.
    Manifest,
    /// An image index.
    Index,
}

/// One tag of a repository, as `snap ls-remote` lists it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RemoteTag {
    /// The tag.
    pub tag: String,
    /// The manifest or index it names.
    pub digest: Digest,
    /// What that is.
    pub kind: RemoteKind,
    /// Its media type (declared, or implied by its shape).
    #[serde(rename = "mediaType")]
    pub media_type: String,
    /// Its artifact type, for a manifest that declares one.
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
    /// For a snapshot: the git commit it was built from.
    pub commit: Option<String>,
    /// For a snapshot: whether the work tree was dirty.
    #[serde(default)]
    pub dirty: bool,
    /// For a snapshot: its `created` time (RFC 3339), if recorded.
    pub created: Option<String>,
}

/// What `snap ls-remote` found.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct LsRemoteOutcome {
    /// `registry/repository`.
    pub repository: String,
    /// Every tag, sorted by name.
    pub tags: Vec<RemoteTag>,
    /// HTTP requests made.
    pub requests: u64,
}

/// A manifest or index read from a registry, with what it took.
#[derive(Debug)]
pub struct ShowRemoteOutcome {
    /// What was asked for, with the digest found (`registry/repo:tag@sha256:…`).
    pub reference: RemoteRef,
    /// What it is: a snapshot (manifest and config), another manifest, an index.
    pub artifact: Artifact,
    /// HTTP requests made.
    pub requests: u64,
}

/// What `snap log REGISTRY/REPO[:TAG]` found.
#[derive(Debug)]
pub struct RemoteLog {
    /// The snapshots, newest first, as far as the registry has them.
    pub entries: Vec<LogEntry>,
    /// The first parent the registry does not have, if the history goes on without it.
    pub continues_with: Option<Digest>,
    /// HTTP requests made.
    pub requests: u64,
}

/// The nearest snapshot `status --remote` found.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct RemoteSnapshot {
    /// The commit whose tag names it.
    pub commit: String,
    /// The tag.
    pub tag: String,
    /// The snapshot's digest.
    pub digest: Digest,
    /// How many first-parent commits HEAD is ahead of it (0: HEAD's own snapshot).
    pub commits_behind: u64,
}

/// What `snap status --remote` found.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RemoteStatus {
    /// `registry/repository`.
    pub repository: String,
    /// The work tree's HEAD commit.
    pub head: String,
    /// The snapshot of HEAD or of its nearest first-parent ancestor, if one was found.
    pub nearest: Option<RemoteSnapshot>,
    /// Commit tags looked up.
    pub tried: u64,
    /// HTTP requests made.
    pub requests: u64,
}

/// Opens a client for `remote` and logs in for pull.
///
/// # Errors
/// `Registry` errors (credentials, network, refused).
pub fn connect(remote: &RemoteRef, opts: &ClientOptions) -> Result<Client, Error> {
    let client = Client::new(remote, opts.clone())?;
    client.login(false)?;
    Ok(client)
}

/// Reads what `at` names: its manifest or index, and for a snap snapshot its config.
///
/// # Errors
/// `Registry` errors (not found, digest mismatch, too large), `Oci`/`Layout` for content
/// that is not a manifest or index, `Snapshot` for a snap manifest with a bad config.
pub fn fetch(client: &Client, at: &RemoteRef) -> Result<Artifact, Error> {
    let (bytes, _) = client.get_manifest(at)?;
    let manifest = match Node::from_bytes(bytes)? {
        Node::Index(index) => return Ok(Artifact::Index(index)),
        Node::Manifest(m) => m,
    };
    if !manifest.manifest().is_snapshot() {
        return Ok(Artifact::Manifest(manifest));
    }
    let config = fetch_config(client, at, &manifest.manifest().config)?;
    Ok(Artifact::Snapshot(Box::new(Snapshot::from_parts(
        manifest, config,
    )?)))
}

/// A snapshot config's bytes: refused before asking when its descriptor is larger than a
/// manifest may be, then read as exactly its size and digest.
fn fetch_config(client: &Client, at: &RemoteRef, desc: &Descriptor) -> Result<Vec<u8>, Error> {
    if desc.size > MAX_MANIFEST_BYTES {
        return Err(registry::Error::ResponseTooLarge {
            registry: at.registry.clone(),
            what: format!("snapshot config {}", desc.digest),
            limit: MAX_MANIFEST_BYTES,
            declared: Some(desc.size),
        }
        .into());
    }
    let mut bytes = Vec::new();
    client.download(&desc.digest, desc.size, &mut bytes)?;
    Ok(bytes)
}

/// Lists the repository's tags with what each names (`snap ls-remote`).
///
/// # Errors
/// `Registry` errors (not found, bounds, network), content errors as [`fetch`].
pub fn ls_remote(remote: &RemoteRef, opts: &ClientOptions) -> Result<LsRemoteOutcome, Error> {
    let client = connect(remote, opts)?;
    let mut tags = client.list_tags()?;
    tags.sort();
    tags.dedup();
    let listed = in_parallel(&tags, opts.jobs, |tag| {
        let at = remote.with_tag(tag);
        let (bytes, digest) = client.get_manifest(&at)?;
        Ok((at, bytes, digest))
    })?;
    // A config once per snapshot, however many tags name it (`latest` and a commit tag).
    let mut configs: Vec<(Digest, RemoteRef, Descriptor)> = Vec::new();
    let mut rows = Vec::with_capacity(listed.len());
    for (at, bytes, digest) in listed {
        let node = Node::from_bytes(bytes)?;
        let media_type = node.media_type();
        let tag = at.tag.clone().unwrap_or_default();
        let Node::Manifest(manifest) = node else {
            rows.push(row(tag, digest, RemoteKind::Index, media_type));
            continue;
        };
        let v = manifest.manifest();
        let kind = if v.is_snapshot() {
            // Its commit and date are in the config: read once per snapshot, however many
            // tags name it (`latest` and a commit tag), and filled in below.
            if !configs.iter().any(|(d, _, _)| *d == digest) {
                configs.push((digest, at, v.config.clone()));
            }
            RemoteKind::Snapshot
        } else {
            RemoteKind::Manifest
        };
        let mut r = row(tag, digest, kind, media_type);
        r.artifact_type.clone_from(&v.artifact_type);
        rows.push(r);
    }
    let read = in_parallel(&configs, opts.jobs, |(digest, at, desc)| {
        let bytes = fetch_config(&client, at, desc)?;
        let config = crate::object::SnapshotConfig::decode(&bytes).map_err(|problem| {
            crate::snapshot::Error::BadConfig {
                id: *digest,
                problem,
            }
        })?;
        Ok((*digest, config))
    })?;
    for r in &mut rows {
        if let Some((_, c)) = read.iter().find(|(d, _)| *d == r.digest) {
            let git = c.provenance.git.as_ref();
            r.commit = git.map(|g| g.commit.clone());
            r.dirty = git.is_some_and(|g| g.dirty);
            r.created.clone_from(&c.created);
        }
    }
    Ok(LsRemoteOutcome {
        repository: remote.repository_url(),
        tags: rows,
        requests: client.requests(),
    })
}

fn row(tag: String, digest: Digest, kind: RemoteKind, media_type: String) -> RemoteTag {
    RemoteTag {
        tag,
        digest,
        kind,
        media_type,
        artifact_type: None,
        commit: None,
        dirty: false,
        created: None,
    }
}

/// The media type a manifest or index declares, or the one its shape implies.
/// Reads what a registry reference names, for `snap show` (no tag means `latest`).
///
/// # Errors
/// As [`fetch`].
pub fn show(remote: &RemoteRef, opts: &ClientOptions) -> Result<ShowRemoteOutcome, Error> {
    let client = connect(remote, opts)?;
    let at = remote.or_latest();
    let artifact = fetch(&client, &at)?;
    let digest = match &artifact {
        Artifact::Snapshot(s) => s.id,
        Artifact::Manifest(m) => m.digest(),
        Artifact::Index(i) => i.digest(),
    };
    Ok(ShowRemoteOutcome {
        reference: RemoteRef {
            digest: Some(digest),
            ..at
        },
        artifact,
        requests: client.requests(),
    })
}

/// Follows a snapshot's first parents in the registry, by digest, for `snap log` (at most
/// `max` snapshots; no tag means `latest`).
///
/// # Errors
/// As [`fetch`]; `NotASnapshot`-like `Snapshot` errors when the start is not a
/// snap snapshot.
pub fn log(
    remote: &RemoteRef,
    max: Option<usize>,
    opts: &ClientOptions,
) -> Result<RemoteLog, Error> {
    let client = connect(remote, opts)?;
    let mut at = remote.or_latest();
    let mut entries = Vec::new();
    let mut continues_with = None;
    loop {
        if max.is_some_and(|m| entries.len() >= m) {
            break;
        }
        let snap = match fetch(&client, &at) {
            Ok(Artifact::Snapshot(s)) => s,
            Ok(Artifact::Manifest(m)) => {
                let why = NotSnapshot::ArtifactType(m.manifest().artifact_type.clone());
                return Err(not_a_snapshot(m.digest(), why));
            }
            Ok(Artifact::Index(i)) => return Err(not_a_snapshot(i.digest(), NotSnapshot::Index)),
            // A parent the registry does not hold: the history goes on elsewhere.
            Err(Error::Registry(registry::Error::NotFound { .. })) if !entries.is_empty() => {
                continues_with = at.digest;
                break;
            }
            Err(e) => return Err(e),
        };
        entries.push(LogEntry::from(&*snap));
        match snap.parent() {
            Some(p) => at = remote.with_digest(p),
            None => break,
        }
    }
    Ok(RemoteLog {
        entries,
        continues_with,
        requests: client.requests(),
    })
}

fn not_a_snapshot(id: Digest, why: NotSnapshot) -> Error {
    crate::snapshot::Error::NotASnapshot { id, why }.into()
}

/// Whether the registry has a snapshot of the work tree's HEAD, or how far back the nearest
/// one is (`snap status --remote`): `HEAD` requests for the commit tags of at most `max`
/// first-parent commits, nothing else.
///
/// # Errors
/// [`Error::NoGitHistory`] outside a git repository (or before its first commit), `Registry`
/// errors other than "no such tag".
pub fn status(
    remote: &RemoteRef,
    worktree: &Path,
    max: usize,
    opts: &ClientOptions,
) -> Result<RemoteStatus, Error> {
    let commits = provenance::first_parent_history(worktree, max)?;
    let Some(head) = commits.first().cloned() else {
        return Err(Error::NoGitHistory {
            path: worktree.to_owned(),
        });
    };
    let client = connect(remote, opts)?;
    let mut nearest = None;
    let mut tried = 0u64;
    for (n, commit) in commits.iter().enumerate() {
        tried += 1;
        let tag = commit_tag(commit);
        if let Some(digest) = client.resolve_tag(&tag)? {
            nearest = Some(RemoteSnapshot {
                commit: commit.clone(),
                tag,
                digest,
                commits_behind: n as u64,
            });
            break;
        }
    }
    Ok(RemoteStatus {
        repository: remote.repository_url(),
        head,
        nearest,
        tried,
        requests: client.requests(),
    })
}

/// `f` over `items`, `jobs` at a time (a [`Client`] serves several threads), in order; the
/// first failure wins.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    jobs: usize,
    f: impl Fn(&T) -> Result<R, Error> + Sync,
) -> Result<Vec<R>, Error> {
    let next = Mutex::new(items.iter().enumerate());
    let done: Mutex<Vec<(usize, Result<R, Error>)>> = Mutex::new(Vec::new());
    // After a failure no new request starts: the answer is the failure anyway.
    let failed = AtomicBool::new(false);
    std::thread::scope(|s| {
        for _ in 0..jobs.clamp(1, 16).min(items.len().max(1)) {
            s.spawn(|| {
                while !failed.load(Ordering::Relaxed) {
                    let Some((i, item)) = next.lock().ok().and_then(|mut it| it.next()) else {
                        return;
                    };
                    let r = f(item);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    if let Ok(mut d) = done.lock() {
                        d.push((i, r));
                    }
                }
            });
        }
    });
    let mut done = done
        .into_inner()
        .expect("no thread panicked while holding the lock, because none panics");
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_parallel_keeps_the_order_and_stops_at_a_failure() {
        let items: Vec<u32> = (0..50).collect();
        let doubled = in_parallel(&items, 4, |n| Ok(n * 2)).expect("no failure");
        assert_eq!(doubled, items.iter().map(|n| n * 2).collect::<Vec<_>>());
        let started = std::sync::atomic::AtomicUsize::new(0);
        let failed = in_parallel(&items, 1, |n| {
            started.fetch_add(1, Ordering::Relaxed);
            if *n == 3 {
                Err(Error::NothingToCommit)
            } else {
                Ok(*n)
            }
        });
        assert!(
            matches!(failed, Err(Error::NothingToCommit)),
            "the failure is the answer"
        );
        assert_eq!(started.into_inner(), 4, "nothing starts after it");
    }
}
