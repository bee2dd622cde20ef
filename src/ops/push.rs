//! `snap push`: a snapshot (or any stored manifest or index) to a registry repository.
//!
//! Blobs first, a few at a time, each in one request when the repository already has it (a
//! mount of the repository into itself) and two when it does not (the session that mount
//! opened, then the bytes, verified as they are read from the store), then the manifest's exact
//! bytes under each tag, with the digest the registry answers checked against ours. A blob
//! that goes up in chunks keeps its session in the store's upload record (store format
//! §2.1), so a push run again after an interruption continues it instead of starting over.
//!
//! Tags: the one the reference gives; for a snapshot with git provenance, the short commit
//! ([`COMMIT_TAG_LEN`] hex digits), which is immutable (refused when it names another digest,
//! unless `force`); and a moving tag (`latest` by default). A snapshot of a dirty work tree is
//! refused unless `allow_dirty`, and then gets no commit tag (its content is not that
//! commit's).

use std::collections::BTreeSet;
use std::io::Read;

use crate::digest::Digest;
use crate::oci::Node;
use crate::ops::transfer;
use crate::ops::{Error, Progress};
use crate::registry::{Client, ClientOptions, Journal, RemoteRef, Upload, Uploaded};
use crate::store::Store;
use crate::store::partial::UploadClaim;
use crate::{rev, snapshot};

/// Hex digits of the git commit in the commit tag.
pub const COMMIT_TAG_LEN: usize = 12;

/// The tag `snap push` gives a snapshot of `commit`, and `snap pull --walk-back` looks for.
#[must_use]
pub fn commit_tag(commit: &str) -> String {
    commit.chars().take(COMMIT_TAG_LEN).collect()
}

/// What to push where.
#[derive(Clone, Debug)]
#[allow(clippy::struct_excessive_bools)] // one bool per independent flag of `snap push`
pub struct PushOptions {
    /// The snapshot.
    pub rev: String,
    /// The repository, with an optional tag.
    pub target: RemoteRef,
    /// The moving tag to set as well (`latest` by default; `None` for none).
    pub moving_tag: Option<String>,
    /// Whether to set the commit tag when the snapshot has git provenance.
    pub commit_tag: bool,
    /// Move the commit tag even if it names another digest.
    pub force: bool,
    /// Push a snapshot of a dirty work tree.
    pub allow_dirty: bool,
    /// Also send every stored ancestor snapshot, each tagged [`history_tag`] so that a
    /// registry's garbage collector keeps it (`--with-history`).
    pub history: bool,
    /// Only say what would happen: log in, resolve the tags and HEAD-check the blobs, then
    /// stop before uploading anything or putting any manifest.
    pub dry_run: bool,
    /// Another repository of the same registry that may hold the blobs (`--mount-from`): a
    /// blob it holds is mounted from there in one request, no bytes sent (its tag, if any, is
    /// ignored).
    pub mount_from: Option<RemoteRef>,
    /// Connection settings.
    pub client: ClientOptions,
}

/// The tag that keeps an ancestor snapshot pushed with history alive in a registry:
/// `sha256-<hex>.snap` (oci-mapping §6). Not the referrers tag scheme's `sha256-<hex>`.
#[must_use]
pub fn history_tag(digest: &Digest) -> String {
    format!("sha256-{}.snap", digest.hex())
}

/// Why a tag was set.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TagKind {
    /// Given in the reference.
    Given,
    /// The git commit's short id.
    Commit,
    /// The moving tag.
    Moving,
}

/// What happened to a tag.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum TagUpdate {
    /// It did not exist.
    Inserted,
    /// It already named this manifest.
    Unchanged,
    /// It named another manifest and now names this one.
    Replaced,
}

/// One tag's outcome.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct PushedTag {
    /// The tag.
    pub tag: String,
    /// Why it was set.
    pub kind: TagKind,
    /// What it named before.
    pub previous: Option<Digest>,
    /// What happened.
    pub update: TagUpdate,
}

/// What a push did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PushOutcome {
    /// The manifest pushed.
    pub digest: Digest,
    /// `registry/repository`.
    pub repository: String,
    /// The tags set.
    pub tags: Vec<PushedTag>,
    /// Blobs the manifest needs (configs and layers, child manifests included).
    pub blobs: u64,
    /// Blobs uploaded.
    pub uploaded: u64,
    /// Bytes sent in this run: a blob continued from an interrupted push counts only what
    /// was sent now (a dry run: the sizes of the blobs it would upload).
    pub uploaded_bytes: u64,
    /// Blobs whose upload continued where an interrupted push stopped.
    #[serde(default)]
    pub resumed: u64,
    /// Blobs the repository already had.
    pub skipped: u64,
    /// Ancestor snapshots sent with `--with-history` (each tagged [`history_tag`]).
    #[serde(default)]
    pub history: u64,
    /// Referrers (signatures, attached artifacts) sent after the snapshot.
    #[serde(default)]
    pub referrers: u64,
    /// HTTP requests made.
    pub requests: u64,
    /// Where the credentials came from.
    pub credentials: String,
    /// Nothing was sent: `uploaded` and `tags` say what a push would upload and set.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

/// Pushes a snapshot.
///
/// # Errors
/// `DirtyPush`, `TagConflict` (exit 3), `Registry` errors, or store errors; a corrupt object
/// stops the push before the manifest is sent, so no tag ever names incomplete content.
pub fn push(
    store: &Store,
    opts: &PushOptions,
    progress: &dyn Progress,
) -> Result<PushOutcome, Error> {
    let id = rev::resolve(store, &opts.rev)?;
    if let Some(from) = &opts.mount_from
        && from.registry != opts.target.registry
    {
        return Err(Error::MountFromElsewhere {
            from: from.repository_url(),
            registry: opts.target.registry.clone(),
        });
    }

    let tags = tags_for(store, opts, id)?;
    let client = Client::new(&opts.target, opts.client.clone())?;
    client.login(true)?;
    let previous = check_tags(&client, &tags, id, opts)?;

    // Everything the manifest needs, children before parents.
    let mut seen_nodes = BTreeSet::new();
    let own = transfer::closure(store, &[id], &mut seen_nodes)?;
    // The `push.history` setting sends history for every push, as `--with-history` does.
    let ancestors =
        if opts.history || crate::config::Config::load(store.dir())?.flag("push.history") {
            stored_ancestors(store, id)
        } else {
            Vec::new()
        };
    let history = transfer::closure(store, &ancestors, &mut seen_nodes)?;
    let mut seen = BTreeSet::new();
    let blobs: Vec<(Digest, u64)> = own
        .blobs
        .iter()
        .chain(&history.blobs)
        .copied()
        .filter(|(d, _)| seen.insert(*d))
        .collect();

    // A dry run HEAD-checks every blob; a push asks by uploading (a mount of what the
    // repository already has answers at once, issue 17), so it learns what was missing then.
    let outcome = |tags: Vec<PushedTag>, client: &Client, sent: &Sent| PushOutcome {
        digest: id,
        repository: opts.target.repository_url(),
        tags,
        blobs: blobs.len() as u64,
        uploaded: sent.uploaded,
        uploaded_bytes: sent.bytes,
        resumed: sent.resumed,
        skipped: blobs.len() as u64 - sent.uploaded,
        history: history.nodes.len() as u64,
        referrers: 0,
        requests: client.requests(),
        credentials: client.credential_source().to_owned(),
        dry_run: opts.dry_run,
    };
    if opts.dry_run {
        let digests: Vec<Digest> = blobs.iter().map(|(d, _)| *d).collect();
        let present = client.blobs_exist(&digests)?;
        let missing = blobs.iter().zip(present).filter(|(_, here)| !here);
        let sent = missing.fold(Sent::default(), |s, ((_, size), _)| Sent {
            uploaded: s.uploaded + 1,
            bytes: s.bytes + size,
            resumed: 0,
        });
        // The plan: what the blob checks found missing, and how each tag would change.
        let planned = tags
            .into_iter()
            .zip(previous)
            .map(|((tag, kind), prev)| pushed_tag(tag, kind, prev, id))
            .collect();
        return Ok(outcome(planned, &client, &sent));
    }
    let from = opts.mount_from.as_ref().map(|r| r.repository.as_str());
    let sent = upload(store, &client, &blobs, from, progress)?;

    // Ancestors, each under its history tag (a snapshot manifest has no child manifests).
    for node in &history.nodes {
        client.put_manifest(
            node.bytes(),
            &node.media_type(),
            Some(&history_tag(&node.digest())),
        )?;
    }
    // Child manifests by digest, then the top one under each tag.
    let mut nodes = own.nodes;
    let (top_bytes, top_type) = nodes
        .pop()
        .map(|n| (n.bytes().to_vec(), n.media_type()))
        .unwrap_or_default();
    for node in &nodes {
        client.put_manifest(node.bytes(), &node.media_type(), None)?;
    }
    if tags.is_empty() {
        client.put_manifest(&top_bytes, &top_type, None)?;
    }
    let mut out_tags = Vec::new();
    for ((tag, kind), prev) in tags.into_iter().zip(previous) {
        client.put_manifest(&top_bytes, &top_type, Some(&tag))?;
        // Read the tag back: it must name exactly the bytes we sent.
        match client.resolve_tag(&tag)? {
            Some(d) if d == id => {}
            other => {
                return Err(crate::registry::Error::DigestMismatch {
                    registry: opts.target.registry.clone(),
                    expected: id,
                    actual: other.unwrap_or_else(|| Digest::of(b"")),
                }
                .into());
            }
        }
        out_tags.push(pushed_tag(tag, kind, prev, id));
    }
    // Its referrers after it (signatures, attached artifacts), and the fallback tags of a
    // registry without the referrers API (OCI mapping §7.4).
    // With history, the ancestors' referrers go too.
    let subjects: Vec<Digest> = std::iter::once(id)
        .chain(history.nodes.iter().map(Node::digest))
        .collect();
    let pushed = push_referrers(store, &client, &subjects, progress)?;
    let mut done = outcome(out_tags, &client, &sent);
    done.referrers = pushed.referrers;
    done.requests = client.requests();
    Ok(done)
}

/// The tags to set, each once: the one given, the commit tag (refusing a dirty snapshot
/// unless allowed), the moving tag.
fn tags_for(
    store: &Store,
    opts: &PushOptions,
    id: Digest,
) -> Result<Vec<(String, TagKind)>, Error> {
    let mut tags: Vec<(String, TagKind)> = Vec::new();
    if let Some(t) = &opts.target.tag {
        tags.push((t.clone(), TagKind::Given));
    }
    if let Ok(snap) = snapshot::Snapshot::load(store, &id)
        && let Some(git) = &snap.config.provenance.git
    {
        if git.dirty && !opts.allow_dirty {
            return Err(Error::DirtyPush {
                digest: id,
                commit: git.commit.clone(),
            });
        }
        if opts.commit_tag && !git.dirty {
            tags.push((commit_tag(&git.commit), TagKind::Commit));
        }
    }
    if let Some(m) = &opts.moving_tag {
        tags.push((m.clone(), TagKind::Moving));
    }
    let mut seen = BTreeSet::new();
    tags.retain(|(t, _)| seen.insert(t.clone()));
    Ok(tags)
}

/// What each tag names now; the immutable commit tag is checked first, so a push that would
/// move it is refused before anything is uploaded.
fn check_tags(
    client: &Client,
    tags: &[(String, TagKind)],
    id: Digest,
    opts: &PushOptions,
) -> Result<Vec<Option<Digest>>, Error> {
    let mut previous = Vec::new();
    for (tag, kind) in tags {
        let prev = client.resolve_tag(tag)?;
        if *kind == TagKind::Commit
            && let Some(p) = prev
            && p != id
            && !opts.force
        {
            return Err(Error::TagConflict {
                tag: tag.clone(),
                repository: opts.target.repository_url(),
                existing: p,
                ours: id,
            });
        }
        previous.push(prev);
    }
    Ok(previous)
}

/// What [`upload`] sent.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sent {
    /// Blobs whose bytes went up (the others were already there).
    pub uploaded: u64,
    /// The bytes sent (of a resumed blob, only those sent now).
    pub bytes: u64,
    /// Blobs continued from an interrupted push's session.
    pub resumed: u64,
}

/// Puts `blobs` into the repository, each streamed (and verified) from the store, unless the
/// registry already has it (a mount answers that in the upload's first request): in the
/// repository itself, or in `from`, another repository of the same registry. A chunked
/// upload keeps its session in the store's upload record (store format §2.1), so that a push
/// interrupted in the middle of a big blob continues it.
pub(crate) fn upload(
    store: &Store,
    client: &Client,
    blobs: &[(Digest, u64)],
    from: Option<&str>,
    progress: &dyn Progress,
) -> Result<Sent, Error> {
    let bytes: u64 = blobs.iter().map(|(_, s)| s).sum();
    progress.begin("Pushing", bytes, blobs.len() as u64);
    let uploads: Vec<Upload<'_>> = blobs
        .iter()
        .map(|(d, size)| {
            let d = *d;
            Upload {
                digest: d,
                size: *size,
                open: Box::new(move || {
                    let r = store
                        .objects
                        .open(&d)
                        .map_err(|e| std::io::Error::other(e.to_string()))?;
                    Ok(Box::new(r) as Box<dyn Read + Send>)
                }),
                journal: Some(Box::new(RecordJournal {
                    store,
                    digest: d,
                    registry: &client.remote().registry,
                    repository: &client.remote().repository,
                    claim: std::sync::Mutex::new(Claim::Untried),
                })),
            }
        })
        .collect();
    // Ctrl-C or SIGTERM stops it between two chunks (crate::interrupt).
    let listening = crate::interrupt::Listening::start();
    let result = client.upload(&uploads, from, &|n, _| progress.advance(n, 1));
    drop(listening);
    progress.end();
    let mut sent = Sent::default();
    for how in result.map_err(|e| crate::ops::interrupted("push", e.into()))? {
        if let Uploaded::Sent { bytes, resumed } = how {
            sent.uploaded += 1;
            sent.bytes += bytes;
            sent.resumed += u64::from(resumed);
        }
    }
    Ok(sent)
}

/// A blob's upload record in the store (store format §2.1) as the registry client's
/// [`Journal`], claimed at its first use: blobs that go up whole never touch it, except to
/// remove a record an earlier chunked run left.
struct RecordJournal<'a> {
    store: &'a Store,
    digest: Digest,
    registry: &'a str,
    repository: &'a str,
    claim: std::sync::Mutex<Claim>,
}

/// Where a [`RecordJournal`] stands with its record.
enum Claim {
    /// Not looked at yet.
    Untried,
    /// Claimed by this process.
    Held(UploadClaim),
    /// Held by another push of the blob to the repository (or unreadable, or forgotten):
    /// this upload neither resumes nor records.
    Off,
}

impl RecordJournal<'_> {
    /// Runs `f` on the claim, claiming the record first if it was not tried yet.
    fn with_claim<T>(&self, f: impl FnOnce(&mut Claim) -> T) -> Option<T> {
        let mut claim = self.claim.lock().ok()?;
        if matches!(*claim, Claim::Untried) {
            *claim = match UploadClaim::acquire(
                self.store.dir(),
                &self.digest,
                self.registry,
                self.repository,
            ) {
                Ok(Some(c)) => Claim::Held(c),
                // Another push holds it; or a record that cannot even be opened, which only
                // costs resuming.
                Ok(None) | Err(_) => Claim::Off,
            };
        }
        Some(f(&mut claim))
    }
}

impl Journal for RecordJournal<'_> {
    fn previous(&self) -> Option<(String, u64)> {
        self.with_claim(|c| match c {
            Claim::Held(c) => c.previous().map(|r| (r.location.clone(), r.offset)),
            _ => None,
        })
        .flatten()
    }

    fn record(&self, location: &str, offset: u64) {
        self.with_claim(|c| {
            if let Claim::Held(held) = c
                && held.save(location, offset).is_err()
            {
                // A record that cannot be written (a full disk) only costs resuming; the
                // upload goes on without one.
                *c = Claim::Off;
            }
        });
    }

    fn forget(&self) {
        self.with_claim(|c| {
            if let Claim::Held(held) = std::mem::replace(c, Claim::Off) {
                // Not removed: the gc's sweep takes it after a week.
                let _ = held.remove();
            }
        });
    }
}

/// A tag's outcome, from what it named before.
fn pushed_tag(tag: String, kind: TagKind, prev: Option<Digest>, id: Digest) -> PushedTag {
    PushedTag {
        update: match prev {
            None => TagUpdate::Inserted,
            Some(p) if p == id => TagUpdate::Unchanged,
            Some(_) => TagUpdate::Replaced,
        },
        tag,
        kind,
        previous: prev,
    }
}

/// The stored ancestors of snapshot `id` (every parent, not only the first), nearest first;
/// the walk stops where the store's history does.
fn stored_ancestors(store: &Store, id: Digest) -> Vec<Digest> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::from([id]);
    let mut queue = std::collections::VecDeque::from([id]);
    while let Some(d) = queue.pop_front() {
        let Ok(snap) = snapshot::Snapshot::load(store, &d) else {
            continue;
        };
        for p in &snap.config.parents {
            if store.objects.contains(p) && seen.insert(*p) {
                out.push(*p);
                queue.push_back(*p);
            }
        }
    }
    out
}

/// What [`push_referrers`] sent.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Pushed {
    /// Referrer manifests put.
    pub referrers: u64,
    /// Fallback tags (`sha256-<hex>`) put.
    pub fallback_tags: u64,
}

/// Sends the referrers the store holds for `subjects` (and theirs), which the repository
/// has: their blobs the repository lacks, then each manifest by digest, then — for a registry
/// without the referrers API — the fallback tag of each subject, read, merged and put (OCI
/// mapping §7.4).
pub(crate) fn push_referrers(
    store: &Store,
    client: &crate::registry::Client,
    subjects: &[Digest],
    progress: &dyn crate::ops::Progress,
) -> Result<Pushed, Error> {
    let infos = crate::ops::referrers::referrers_of(store, subjects)?;
    if infos.is_empty() {
        return Ok(Pushed::default());
    }
    let roots: Vec<Digest> = infos.iter().map(|i| i.digest).collect();
    let closure =
        crate::ops::transfer::closure(store, &roots, &mut std::collections::BTreeSet::new())?;
    upload(store, client, &closure.blobs, None, progress)?;
    let mut out = Pushed::default();
    // Subject by subject, nearest first: every referrer of one subject, then its tag.
    let mut by_subject: Vec<(Digest, Vec<crate::oci::RawManifest>)> = Vec::new();
    for info in &infos {
        let m = crate::ops::referrers::read_referrer(store, &info.digest, &info.subject)?;
        let handled = client.put_referrer(
            m.bytes(),
            m.manifest()
                .media_type
                .as_deref()
                .unwrap_or(crate::oci::MEDIA_TYPE_MANIFEST),
        )?;
        out.referrers += 1;
        if handled {
            continue;
        }
        match by_subject.iter_mut().find(|(s, _)| *s == info.subject) {
            Some((_, v)) => v.push(m),
            None => by_subject.push((info.subject, vec![m])),
        }
    }
    for (s, ms) in by_subject {
        let tag = crate::oci::referrers::fallback_tag(&s);
        let existing = match client.get_manifest(&client.remote().with_tag(&tag)) {
            Ok((bytes, _)) => Some(crate::oci::layout::RawIndex::from_bytes(bytes)?),
            Err(crate::registry::Error::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let added: Vec<crate::oci::Descriptor> =
            ms.iter().map(crate::oci::referrers::descriptor).collect();
        if let Some(index) = crate::oci::referrers::merge(
            existing.as_ref().map(crate::oci::layout::RawIndex::index),
            &added,
        ) {
            crate::oci::referrers::check_count(s, index.index().manifests.len())?;
            client.put_manifest(index.bytes(), crate::oci::MEDIA_TYPE_INDEX, Some(&tag))?;
            out.fallback_tags += 1;
        }
    }
    Ok(out)
}
