//! `snap pull`: a manifest or index and everything it needs, from a registry into the store.
//!
//! Manifests are fetched with explicit OCI (and docker) Accept headers and checked against
//! their digests; the graph is walked by [`graph::walk`], one walk per generation of
//! ancestors; blobs the store lacks are streamed into a temp directory inside the store, each
//! checked for size and digest as it arrives (a few at a time). Then the transfer layer takes
//! them in (`transfer::receive`, as an import does): nothing is stored until every blob is
//! there and every snap snapshot is whole, packs are moved into place rather than copied, and
//! the ref moves last — forward when the old value is an ancestor, otherwise only with `force`
//! (a conflict, exit 3).
//!
//! `walk_back` looks for the snapshot of the nearest commit instead: first-parent history
//! from HEAD, each commit's [`commit_tag`]; "manifest unknown" moves on to the next older
//! commit, any other failure stops.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::oci::{Descriptor, LATEST, Node, graph};
use crate::ops::push::commit_tag;
use crate::ops::refs::ImportedRef;
use crate::ops::transfer::{self, MAX_DESCRIPTORS, Source};
use crate::ops::{Error, Progress};
use crate::provenance::{self, Freshness};
use crate::registry::{Client, ClientOptions, RemoteRef};
use crate::store::{RefName, Store};

mod download;
mod referrers;

use download::{download_all, keeps_parts};
pub(crate) use download::{download_one, remove_parts};
pub(crate) use referrers::{FetchedReferrer, fetch_referrers};

/// How many commits `--walk-back` tries by default.
pub const DEFAULT_WALK_BACK: usize = 50;

/// What to pull.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// The repository and tag or digest (no tag means `latest`, unless walking back).
    pub source: RemoteRef,
    /// The head to point at the result (default: the tag; `latest` when walking back).
    pub ref_name: Option<RefName>,
    /// Move the head even when it is not an ancestor of the result.
    pub force: bool,
    /// Walk back through at most this many first-parent commits of the work tree's HEAD.
    pub walk_back: Option<usize>,
    /// Generations of ancestor snapshots to fetch where the registry holds them (a push with
    /// history); `None`: all it holds, `Some(0)`: none.
    pub depth: Option<u64>,
    /// The directory whose git repository gives HEAD (walk-back, freshness).
    pub worktree: PathBuf,
    /// Connection settings.
    pub client: ClientOptions,
    /// Take the manifest's referrers (signatures, attached artifacts) too.
    pub referrers: bool,
    /// Refuse it, storing nothing, unless an allowed signer signed it (also the `pull.verify`
    /// setting).
    pub verify: bool,
    /// The allowed signers for `verify` (default: the `verify.allowed-signers` setting).
    pub allowed_signers: Option<PathBuf>,
}

/// Where walking back ended.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct WalkBack {
    /// The commit whose snapshot was found.
    pub commit: String,
    /// How many commits HEAD is ahead of it (0: HEAD itself).
    pub commits_behind: u64,
    /// Tags tried.
    pub tried: u64,
}

/// What a pull did.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct PullOutcome {
    /// The manifest (or index) pulled.
    pub digest: Digest,
    /// What was pulled (`registry/repository:tag` or `@digest`).
    pub reference: String,
    /// Where walking back ended, when asked to.
    pub walk_back: Option<WalkBack>,
    /// Manifests and indexes fetched.
    pub manifests: u64,
    /// Ancestor snapshots fetched with it (the registry had them: a push with history).
    #[serde(default)]
    pub history: u64,
    /// Blobs the content needs.
    pub blobs: u64,
    /// Blobs downloaded.
    pub downloaded: u64,
    /// Bytes downloaded (that crossed the wire in this run).
    pub downloaded_bytes: u64,
    /// Blobs continued from where an interrupted pull left them (store format §2.1).
    #[serde(default)]
    pub resumed: u64,
    /// Blobs the store already had.
    pub present: u64,
    /// HTTP requests made.
    pub requests: u64,
    /// The ref's outcome (none for a digest pulled without `--ref`).
    pub refs: Vec<ImportedRef>,
    /// Referrers taken with it (signatures, attached artifacts).
    #[serde(default)]
    pub referrers: u64,
    /// The signatures checked, with `--verify` (always verified: a pull that is not fails).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<crate::ops::sign::VerifyReport>,
    /// How the snapshot's git provenance compares with the work tree now.
    pub freshness: Option<Freshness>,
    /// Where the credentials came from.
    pub credentials: String,
}

/// Pulls.
///
/// # Errors
/// `Registry` errors (including not found), `WalkBackExhausted`, import errors for content
/// that is malformed or incomplete (nothing is stored then), store errors.
pub fn pull(
    store: &Store,
    opts: &PullOptions,
    progress: &dyn Progress,
) -> Result<PullOutcome, Error> {
    // Who may sign, read before anything is fetched (issue 16).
    let verify = opts.verify || crate::config::Config::load(store.dir())?.flag("pull.verify");
    let allowed = if verify {
        Some(crate::ops::sign::allowed_signers(
            store,
            opts.allowed_signers.as_deref(),
        )?)
    } else {
        None
    };
    let client = Client::new(&opts.source, opts.client.clone())?;
    client.login(false)?;

    // What to fetch.
    let (at, walk_back) = target(&client, opts)?;
    // The head to move, parsed before anything is fetched.
    let ref_name = match (&opts.ref_name, &walk_back, &at.tag) {
        (Some(r), _, _) => Some(r.clone()),
        (None, Some(_), _) => Some(RefName::head(LATEST)?),
        (None, None, Some(t)) if opts.source.digest.is_none() => Some(RefName::head(t)?),
        _ => None,
    };

    let fetch_at = match at.digest {
        Some(d) => at.with_digest(d),
        None => at.clone(),
    };
    let mut fetched = fetch(
        &client,
        &fetch_at,
        opts.depth,
        store.temp_dir()?,
        Some(store),
        opts.client.jobs,
        progress,
    )?;
    let parts = std::mem::take(&mut fetched.parts);
    let result = take_in(
        store,
        opts,
        &client,
        (at, walk_back, ref_name),
        allowed.as_ref(),
        fetched,
    );
    // The parts are second names of blobs now stored (or refused): of no more use, unless a
    // rerun may still need them (store format §2.1) — and never once their blob is stored.
    let keep = result.as_ref().err().is_some_and(keeps_parts);
    remove_parts(
        parts
            .iter()
            .filter(|(d, _)| !keep || store.objects.contains(d)),
    );
    result
}

/// The pull after the download: the referrers, the verification, the transfer into the
/// store and the ref's move.
fn take_in(
    store: &Store,
    opts: &PullOptions,
    client: &Client,
    (at, walk_back, ref_name): (RemoteRef, Option<WalkBack>, Option<RefName>),
    allowed: Option<&crate::signature::AllowedSigners>,
    mut fetched: Fetched,
) -> Result<PullOutcome, Error> {
    let top = fetched.top.digest;

    // Its referrers, staged with the rest (verifying needs the signatures among them).
    let mut referrers = if opts.referrers || allowed.is_some() {
        fetch_referrers(client, top, &mut fetched.source, Some(store))?
    } else {
        Vec::new()
    };
    // And the ancestors' fetched with it (a push with history sends theirs too).
    if opts.referrers {
        for a in &fetched.ancestors {
            referrers.extend(fetch_referrers(
                client,
                a.digest,
                &mut fetched.source,
                Some(store),
            )?);
        }
    }
    // Verified before anything is stored or any ref moves: refused, the staged blobs go with
    // the temp directory.
    let verification = match allowed {
        Some(allowed) => {
            let report = verify_staged(store, &fetched.source, top, &referrers, allowed);
            if !report.verified {
                return Err(Error::Unverified {
                    subject: top,
                    reason: report.reason(),
                });
            }
            Some(report)
        }
        None => None,
    };

    // Take it in: the top entry (named for the ref), the ancestors and the referrers
    // (untagged).
    let entries: Vec<Descriptor> = std::iter::once(fetched.top.clone())
        .chain(fetched.ancestors.iter().cloned())
        .chain(referrers.iter().map(|r| r.entry.clone()))
        .collect();
    let refs: Vec<(RefName, Digest)> = ref_name.into_iter().map(|r| (r, top)).collect();
    let message = format!(
        "pull: {}",
        RemoteRef {
            digest: Some(top),
            ..at.clone()
        }
    );
    let received = transfer::receive(
        store,
        &transfer::Receive {
            source: &fetched.source,
            store_fallback: true,
            entries: &entries,
            refs: &refs,
            force: opts.force,
            fast_forward: true,
            message: &message,
        },
        &crate::ops::NoProgress,
    )?;

    let freshness = match crate::snapshot::Snapshot::load(store, &top) {
        Ok(s) if s.config.provenance.git.is_some() => {
            provenance::freshness(&opts.worktree, &s.config.provenance).ok()
        }
        _ => None,
    };
    Ok(PullOutcome {
        digest: top,
        reference: match (&at.tag, walk_back.is_some()) {
            (Some(t), false) => format!("{}:{t}", at.repository_url()),
            _ => format!("{}@{top}", at.repository_url()),
        },
        walk_back,
        manifests: fetched.manifests,
        history: fetched.ancestors.len() as u64,
        blobs: fetched.blobs,
        downloaded: fetched.downloaded,
        downloaded_bytes: fetched.downloaded_bytes,
        resumed: fetched.resumed,
        present: fetched.blobs - fetched.downloaded,
        requests: client.requests(),
        refs: received.refs,
        referrers: referrers.len() as u64,
        verification,
        freshness,
        credentials: client.credential_source().to_owned(),
    })
}

/// Where to pull from: the reference given, or with `--walk-back` the tag of the nearest
/// first-parent commit of the work tree that has a pushed snapshot.
fn target(client: &Client, opts: &PullOptions) -> Result<(RemoteRef, Option<WalkBack>), Error> {
    Ok(match opts.walk_back {
        Some(max) => {
            let commits = provenance::first_parent_history(&opts.worktree, max)?;
            if commits.is_empty() {
                return Err(Error::NoGitHistory {
                    path: opts.worktree.clone(),
                });
            }
            let mut found = None;
            for (n, commit) in commits.iter().enumerate() {
                if let Some(d) = client.resolve_tag(&commit_tag(commit))? {
                    found = Some((n, commit, d));
                    break;
                }
            }
            let Some((n, commit, d)) = found else {
                return Err(Error::WalkBackExhausted {
                    repository: opts.source.repository_url(),
                    tried: commits.len() as u64,
                });
            };
            let mut at = opts.source.with_digest(d);
            at.tag = Some(commit_tag(commit));
            (
                at,
                Some(WalkBack {
                    commit: commit.clone(),
                    commits_behind: n as u64,
                    tried: n as u64 + 1,
                }),
            )
        }
        None => (opts.source.or_latest(), None),
    })
}

/// Checks the signatures among staged `referrers` of `top` (issue 16).
fn verify_staged(
    store: &Store,
    source: &Source,
    top: Digest,
    referrers: &[FetchedReferrer],
    allowed: &crate::signature::AllowedSigners,
) -> crate::ops::sign::VerifyReport {
    let sigs: Vec<(Digest, Vec<u8>)> = referrers
        .iter()
        .filter(|r| {
            r.manifest
                .manifest()
                .subject
                .as_ref()
                .is_some_and(|s| s.digest == top)
        })
        .filter_map(|r| {
            crate::ops::sign::signature_text(&r.manifest, |d, size| {
                source
                    .open(d)
                    .ok()
                    .and_then(|f| {
                        let mut b = Vec::new();
                        std::io::Read::read_to_end(&mut std::io::Read::take(f, size), &mut b)
                            .ok()
                            .map(|_| b)
                    })
                    .or_else(|| store.objects.read(d, size).ok())
                    .filter(|b| Digest::of(b) == *d)
            })
            .map(|text| (r.entry.digest, text))
        })
        .collect();
    crate::ops::sign::check_signatures(top, &sigs, allowed)
}

/// A registry's graph below one manifest or index, staged: every node and every blob the
/// destination lacks, each checked as it arrived.
pub(crate) struct Fetched {
    /// The staged blobs (nodes included).
    pub source: Source,
    /// What was asked for.
    pub top: Descriptor,
    /// Ancestor snapshots the registry holds (a push with history), nearest first.
    pub ancestors: Vec<Descriptor>,
    /// Manifests and indexes fetched.
    pub manifests: u64,
    /// Configs and layers the graph names.
    pub blobs: u64,
    /// Of those, downloaded (the rest were in the store).
    pub downloaded: u64,
    /// Bytes downloaded (that crossed the wire in this run).
    pub downloaded_bytes: u64,
    /// Blobs continued from partial downloads an interrupted run left.
    pub resumed: u64,
    /// The partial downloads holding whole blobs: to remove once they are stored (or of no
    /// more use), with [`remove_parts`].
    pub parts: Vec<(Digest, PathBuf)>,
}

/// Fetches what `at` names into `staging` — one file per blob, named by its hex digest —
/// walking the registry's graph with [`graph::walk`], one walk per generation of ancestors
/// (`depth`: how many; `None`: all the registry holds). Blobs `store` already holds are not
/// downloaded; without a store, everything is.
///
/// # Errors
/// `Registry` errors; a node that is neither a manifest nor an index; the transfer's bounds.
pub(crate) fn fetch(
    client: &Client,
    at: &RemoteRef,
    depth: Option<u64>,
    staging: tempfile::TempDir,
    store: Option<&Store>,
    jobs: usize,
    progress: &dyn Progress,
) -> Result<Fetched, Error> {
    let in_store = |d: &Digest| store.is_some_and(|s| s.objects.contains(d));
    let blob_dir = staging.path().to_owned();
    // Everything staged, with its size.
    let mut sizes: HashMap<Digest, u64> = HashMap::new();
    let (top_bytes, top) = client.get_manifest(at)?;
    let top_desc = Descriptor::new(&media_type_of(&top_bytes)?, top, top_bytes.len() as u64);
    let mut manifests = 0u64;
    let mut needed: Vec<(Digest, u64)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut ancestors: Vec<Descriptor> = Vec::new();
    // The layers of snap snapshots that hold packs: indexed as they download.
    let mut packs: BTreeSet<Digest> = BTreeSet::new();
    // Blobs already downloaded (configs read to find parents), with their sizes.
    let mut staged: BTreeMap<Digest, u64> = BTreeMap::new();
    // Manifests fetched ahead of their walk: the top one, and ancestors found by digest.
    let mut fetched: HashMap<Digest, Vec<u8>> = HashMap::from([(top, top_bytes)]);
    // One walk per generation: 0 for what was asked, n for its n-th ancestors.
    let mut roots = vec![top];
    let mut generation = 0u64;
    while !roots.is_empty() {
        let reached = graph::walk::<Error>(
            std::mem::take(&mut roots),
            &mut seen,
            &mut |d, described| {
                let bytes = if let Some(b) = fetched.remove(d) {
                    b
                } else {
                    let (b, got) = client.get_manifest(&at.with_digest(*d))?;
                    if let Some(desc) = described
                        && b.len() as u64 != desc.size
                    {
                        return Err(Error::BlobSize {
                            digest: got,
                            expected: desc.size,
                            actual: b.len() as u64,
                        });
                    }
                    b
                };
                write_blob(&blob_dir, d, &bytes)?;
                sizes.insert(*d, bytes.len() as u64);
                Ok(Some(bytes))
            },
            &mut |_, e| Err(e.into()),
        )?;
        manifests += reached.len() as u64;
        for graph::Reached { node, .. } in reached {
            let Node::Manifest(m) = node else { continue };
            let v = m.manifest();
            for d in std::iter::once(&v.config).chain(&v.layers) {
                needed.push((d.digest, d.size));
            }
            if v.is_snapshot() {
                packs.extend(v.layers.iter().filter(|l| is_pack(l)).map(|l| l.digest));
            }
            if !(v.is_snapshot() && depth.is_none_or(|n| generation < n)) {
                continue;
            }
            for p in parents(store, client, &blob_dir, &v.config, &mut staged)? {
                if seen.contains(&p) || fetched.contains_key(&p) || in_store(&p) {
                    continue;
                }
                match client.get_manifest(&at.with_digest(p)) {
                    Ok((b, d)) => {
                        ancestors.push(Descriptor::new(&media_type_of(&b)?, d, b.len() as u64));
                        fetched.insert(d, b);
                        roots.push(d);
                    }
                    // History stops where the registry's does.
                    Err(crate::registry::Error::NotFound { .. }) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        // The transfer's bound, checked before fetching blobs.
        if needed.len() > MAX_DESCRIPTORS {
            return Err(Error::BadLayout {
                reason: format!(
                    "{} has more than {MAX_DESCRIPTORS} descriptors",
                    at.repository_url(),
                ),
            });
        }
        generation += 1;
    }
    needed.sort();
    needed.dedup();
    let missing: Vec<(Digest, u64)> = needed
        .iter()
        .filter(|(d, _)| !staged.contains_key(d) && !in_store(d))
        .copied()
        .collect();
    let missing_bytes: u64 = missing.iter().map(|(_, s)| s).sum();
    progress.begin("Pulling", missing_bytes, missing.len() as u64);
    // Ctrl-C or SIGTERM stops it once the bytes in flight are in their parts.
    let listening = crate::interrupt::Listening::start();
    let (downloads, failure) =
        download_all(client, &blob_dir, store, &missing, &packs, jobs, progress);
    drop(listening);
    progress.end();
    if let Some(e) = failure.map(|e| crate::ops::interrupted("pull", e)) {
        if !keeps_parts(&e) {
            remove_parts(&downloads.parts);
        }
        return Err(e);
    }
    let staged_bytes: u64 = staged.values().sum();
    sizes.extend(staged.iter().map(|(d, s)| (*d, *s)));
    sizes.extend(missing.iter().copied());
    Ok(Fetched {
        source: Source::Staged {
            dir: staging,
            sizes,
            indexes: downloads.indexes,
        },
        top: top_desc,
        ancestors,
        manifests,
        blobs: needed.len() as u64,
        downloaded: (missing.len() + staged.len()) as u64,
        downloaded_bytes: downloads.wire_bytes + staged_bytes,
        resumed: downloads.resumed,
        parts: downloads.parts,
    })
}

/// The parents a snapshot's config names: read from the store, or downloaded (bounded, checked)
/// into the staging directory, where the transfer finds it; a config that does not decode names
/// none (the import refuses it with the reason).
fn parents(
    store: Option<&Store>,
    client: &Client,
    blob_dir: &Path,
    config: &Descriptor,
    staged: &mut BTreeMap<Digest, u64>,
) -> Result<Vec<Digest>, Error> {
    if config.size > crate::snapshot::MAX_METADATA_BYTES {
        return Ok(Vec::new());
    }
    let bytes = if let Some(Ok(b)) = store.map(|s| s.objects.read(&config.digest, config.size)) {
        b
    } else {
        let mut b = Vec::new();
        client.download(&config.digest, config.size, &mut b)?;
        write_blob(blob_dir, &config.digest, &b)?;
        staged.insert(config.digest, config.size);
        b
    };
    Ok(crate::object::SnapshotConfig::decode(&bytes)
        .map(|c| c.parents.clone())
        .unwrap_or_default())
}

/// The media type a manifest or index declares, or the one its kind implies.
pub(crate) fn media_type_of(bytes: &[u8]) -> Result<String, Error> {
    Ok(Node::from_bytes(bytes.to_vec())?.media_type())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        op: "writing",
        path: path.to_owned(),
        source,
    };
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)
}

pub(crate) fn write_blob(dir: &Path, d: &Digest, bytes: &[u8]) -> Result<(), Error> {
    let path = dir.join(d.hex());
    if path.exists() {
        return Ok(());
    }
    write_file(&path, bytes)
}

/// Whether a snapshot's layer is one of snap's packs (by its media type; the transfer's
/// check decides for good).
fn is_pack(layer: &Descriptor) -> bool {
    layer.media_type == crate::oci::MEDIA_TYPE_LAYER_TAR_ZSTD
        || layer.media_type == crate::oci::MEDIA_TYPE_TREES
}
