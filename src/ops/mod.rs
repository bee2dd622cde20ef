//! Use cases: one function per thing a user does (`…Options` in, `…Outcome` out), and the
//! library's top-level [`Error`] with its [`ErrorKind`].
//!
//! All writes to a store or a user's directory go through here, in the order the store
//! format requires: objects, then the directories holding them are synced, then refs move by
//! compare-and-swap with a reflog line. This module never prints, parses flags or exits.

pub mod attach;
pub mod commit;
pub mod config;
pub mod connection;
pub mod diff;
pub mod export;
pub mod fsck;
pub mod gc;
pub mod import;
pub mod init;
pub mod log;
pub mod ls;
pub mod pull;
pub mod push;
pub mod referrers;
pub mod refs;
pub mod remote;
pub mod restore;
pub mod restore_remote;
pub mod show;
pub mod sign;
pub mod status;
pub mod topic;
pub(crate) mod transfer;

use std::path::PathBuf;

use crate::store;
use crate::{provenance, rev, snapshot, worktree};

pub use attach::{AttachOptions, AttachOutcome, attach};
pub use commit::{CommitOptions, CommitOutcome, Update, commit};
pub use export::{ExportOptions, ExportOutcome, export};
pub use fsck::{FsckReport, fsck};
pub use gc::{GcOptions, GcOutcome, gc};
pub use import::{ImportOptions, ImportOutcome, import};
pub use init::{init, open, open_as_is, open_exclusive, open_or_create};
pub use pull::{PullOptions, PullOutcome, pull};
pub use push::{PushOptions, PushOutcome, push};
pub use referrers::{ReferrerInfo, ReferrersReport, list_referrers};
pub use refs::{delete_ref, tag};
pub use restore::{RestoreOptions, RestoreOutcome, restore};
pub use restore_remote::{
    RemoteRestoreOptions, RemoteRestoreOutcome, RestoreSource, restore_remote,
};
pub use sign::{SignOptions, SignOutcome, VerifyOptions, VerifyReport, sign, verify};

pub use crate::progress::{NoProgress, Progress};

pub use crate::error::ErrorKind;
pub use connection::{Connection, client_options};
pub use topic::Topic;

// The vocabulary of the Options and Outcomes above: a caller (the CLI included) names these
// through `ops` and never reaches into the modules that define them.
pub use crate::digest::{Digest, Error as DigestError};
pub use crate::oci::LATEST;
pub use crate::oci::layout::Format as LayoutFormat;
pub use crate::provenance::{FreshState, Freshness};
pub use crate::registry::{ClientOptions, RemoteRef, Timeouts};
pub use crate::snapshot::LogEntry;
pub use crate::store::{RefKind, RefName, Store};

/// The snapshot (or other stored manifest or index) `rev` names: a ref, a digest or a unique
/// prefix of one, with `~N` steps to ancestors (the book's concepts/refs page).
///
/// # Errors
/// [`Error::Rev`]: an unknown or ambiguous name, a missing ancestor, a corrupt snapshot.
pub fn resolve(store: &Store, rev: &str) -> Result<Digest, Error> {
    Ok(crate::rev::resolve(store, rev)?)
}

/// Errors of snap's use cases.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Opening or finding the store.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// Reading or writing objects.
    #[error(transparent)]
    Objects(#[from] store::objects::Error),
    /// Refs.
    #[error(transparent)]
    Refs(#[from] store::refs::Error),
    /// Reading snapshots.
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
    /// Resolving a revision.
    #[error(transparent)]
    Rev(#[from] rev::Error),
    /// Scanning paths to commit.
    #[error(transparent)]
    Scan(#[from] worktree::commit::scan::Error),
    /// Storing files.
    #[error(transparent)]
    Build(#[from] worktree::commit::build::Error),
    /// Restoring.
    #[error(transparent)]
    Restore(#[from] worktree::checkout::restore::Error),
    /// Unpacking a foreign artifact or image.
    #[error(transparent)]
    Unpack(#[from] worktree::checkout::unpack::Error),
    /// Restoring an image index (which has no files of its own).
    #[error("{digest} is an image index of {} manifests; restore one of them by digest", manifests.len())]
    RestoreIndex {
        /// The index.
        digest: Digest,
        /// Its manifests.
        manifests: Vec<Digest>,
    },
    /// Reading git.
    #[error(transparent)]
    Provenance(#[from] provenance::Error),
    /// Comparing trees and directories.
    #[error(transparent)]
    Diff(#[from] crate::diff::Error),
    /// Talking to a registry.
    #[error(transparent)]
    Registry(#[from] crate::registry::Error),
    /// `push` of a snapshot taken from a dirty work tree.
    #[error(
        "snapshot {digest} was taken from a dirty work tree (at commit {commit}); its content is not that commit's"
    )]
    DirtyPush {
        /// The snapshot.
        digest: Digest,
        /// The commit it was built on.
        commit: String,
    },
    /// `push` would move an immutable commit tag.
    #[error("tag `{tag}` in {repository} already names {existing}, not {ours}")]
    TagConflict {
        /// The tag.
        tag: String,
        /// `registry/repository`.
        repository: String,
        /// What it names.
        existing: Digest,
        /// What snap would push.
        ours: Digest,
    },
    /// `pull --walk-back` or `status --remote` outside git.
    #[error("{} is not in a git repository with commits, so there is no history to walk back", path.display())]
    NoGitHistory {
        /// The directory.
        path: PathBuf,
    },
    /// `pull --walk-back` found no commit with a pushed snapshot.
    #[error("none of the last {tried} commits has a snapshot in {repository}")]
    WalkBackExhausted {
        /// `registry/repository`.
        repository: String,
        /// Commits tried.
        tried: u64,
    },
    /// `commit` without paths.
    #[error("nothing to commit: give at least one path")]
    NothingToCommit,
    /// A path `snap ls` or `snap cat` asked for that the snapshot does not hold.
    #[error("`{path}` is not in snapshot {}", snapshot.short())]
    PathNotInSnapshot {
        /// The path asked for.
        path: String,
        /// The snapshot.
        snapshot: Digest,
    },
    /// `snap cat` of a directory or symlink.
    #[error("`{path}` is a {kind}, not a file")]
    NotAFile {
        /// The path.
        path: String,
        /// What it is (`dir`, `symlink`).
        kind: &'static str,
    },
    /// `snap cat` of an image index.
    #[error("{} is an image index: it holds manifests, not files (`snap ls {rev}` lists them)", index.short())]
    IndexHoldsNoFiles {
        /// The index.
        index: Digest,
        /// How it was named.
        rev: String,
    },
    /// `snap cat` of a path that is not a blob of an image.
    #[error("`{path}` is not a blob of image {}: `snap cat` writes its config or a layer as `{}/<hex>` (`snap show` lists them); `snap restore` gives its files", image.short(), crate::worktree::checkout::unpack::UNTITLED_DIR)]
    NotABlobOfImage {
        /// The path asked for.
        path: String,
        /// The image's manifest.
        image: Digest,
    },
    /// `snap cat` of a path an artifact does not hold.
    #[error("`{path}` is not in artifact {} (`snap ls {rev}` lists its files)", artifact.short())]
    PathNotInArtifact {
        /// The path asked for.
        path: String,
        /// The artifact's manifest.
        artifact: Digest,
        /// How it was named.
        rev: String,
    },
    /// A path given to commit does not exist.
    #[error("{} does not exist", path.display())]
    PathNotFound {
        /// The path.
        path: PathBuf,
    },
    /// A path to commit that is the store, or inside it.
    #[error("refusing to record the store itself: {} is {}", path.display(), if path == store { "the store" } else { "inside the store" })]
    RecordsStore {
        /// The path given.
        path: PathBuf,
        /// The store directory.
        store: PathBuf,
    },
    /// `--annotation` without `=`, or an empty key.
    #[error("invalid annotation `{input}`: expected KEY=VALUE")]
    InvalidAnnotation {
        /// The input.
        input: String,
    },
    /// `--annotation` for a key snap sets itself.
    #[error("annotation `{key}` is set by snap and cannot be given")]
    ReservedAnnotation {
        /// The key.
        key: String,
    },
    /// Committing to a name that is a tag.
    #[error("`{name}` is a tag; tags do not move with commits")]
    CommitToTag {
        /// The tag.
        name: String,
    },
    /// A tag exists and `--force` was not given.
    #[error("tag `{name}` already exists and points at {target}")]
    TagExists {
        /// The tag.
        name: RefName,
        /// Its value.
        target: Digest,
    },
    /// A ref to delete does not exist.
    #[error("no ref named `{name}`")]
    RefNotFound {
        /// The name.
        name: String,
    },
    /// The store's settings (`.store/config`) cannot be read or changed.
    #[error(transparent)]
    Config(#[from] crate::config::Error),
    /// An OCI layout (or archive) that cannot be read.
    #[error(transparent)]
    Layout(#[from] crate::oci::layout::Error),
    /// A manifest that cannot be parsed.
    #[error(transparent)]
    Oci(#[from] crate::oci::Error),
    /// A graph of manifests and indexes past its bounds, or with a malformed node.
    #[error(transparent)]
    Graph(#[from] crate::oci::graph::Error),
    /// A layout that is inconsistent.
    #[error("invalid OCI layout: {reason}")]
    BadLayout {
        /// What is wrong.
        reason: String,
    },
    /// An index entry tagged with a name that is not a valid ref name.
    #[error("index entry {digest} is tagged with a name snap cannot use as a ref")]
    EntryRefName {
        /// The entry.
        digest: Digest,
        /// Why the name is invalid.
        #[source]
        source: Box<store::refs::Error>,
    },
    /// A snapshot's layer that is not a snap pack.
    #[error("layer {digest} is not a snap pack: {problem}")]
    NotAPack {
        /// The layer.
        digest: Digest,
        /// What is wrong.
        problem: crate::pack::Error,
    },
    /// A blob a descriptor names is not in the layout.
    #[error("blob {digest} is referenced but missing from the layout")]
    MissingBlob {
        /// The blob.
        digest: Digest,
    },
    /// A blob whose size differs from its descriptor's.
    #[error("blob {digest} is {actual} bytes, but its descriptor says {expected}")]
    BlobSize {
        /// The blob.
        digest: Digest,
        /// The descriptor's size.
        expected: u64,
        /// The blob's size.
        actual: u64,
    },
    /// A blob whose bytes do not hash to its name.
    #[error("blob {digest} does not match its digest: its bytes hash to {actual}")]
    BlobDigest {
        /// The blob.
        digest: Digest,
        /// What its bytes hash to.
        actual: Digest,
    },
    /// The withdrawn OCI artifact manifest.
    #[error(
        "{digest} is an application/vnd.oci.artifact.manifest.v1+json, which image-spec 1.1 withdrew; snap does not import it"
    )]
    LegacyArtifactManifest {
        /// The manifest.
        digest: Digest,
    },
    /// A snap snapshot whose trees or files are not all there.
    #[error("snapshot {digest} is incomplete: {reason}")]
    Incomplete {
        /// The snapshot.
        digest: Digest,
        /// What is missing.
        reason: String,
    },
    /// `export` without snapshots.
    #[error("nothing to export: name at least one snapshot")]
    NothingToExport,
    /// An export whose `index.json` would be larger than an import accepts.
    #[error(
        "the layout's index.json would be {size} bytes for {entries} snapshots, more than the {limit} bytes `snap import` accepts"
    )]
    IndexTooLarge {
        /// Bytes the index would take.
        size: u64,
        /// Entries it would list.
        entries: usize,
        /// What an import accepts.
        limit: u64,
    },
    /// An object that should be a manifest is not one.
    #[error("{digest} is not an image manifest: {reason}")]
    NotAManifest {
        /// The object.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// An output directory that already has files.
    #[error("{} is not empty", path.display())]
    OutputNotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// Reading or writing a file outside the store failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `opening`, `writing`, `syncing directory`, ….
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// `push --mount-from` a repository of another registry (a mount works within one).
    #[error("cannot mount blobs from {from} into {registry}: a mount works within one registry")]
    MountFromElsewhere {
        /// The repository given.
        from: String,
        /// The registry pushed to.
        registry: String,
    },
    /// A command that needs a registry got none, and the store sets no `remote`.
    #[error(
        "no registry given: pass REGISTRY/REPO, or set a default with `snap config remote REGISTRY/REPO`"
    )]
    NoRemote,
    /// Signing keys, signatures and allowed-signers files.
    #[error(transparent)]
    Signature(#[from] crate::signature::Error),
    /// The store's referrers index.
    #[error(transparent)]
    ReferrerIndex(#[from] store::referrers::Error),
    /// Referrers past their bounds, or listed under a subject they do not name.
    #[error(transparent)]
    Referrers(#[from] crate::oci::referrers::Error),
    /// A referrer whose subject is neither in what is taken in nor in the store.
    #[error(
        "referrer {referrer} refers to {subject}, which is neither in what is imported nor in the store"
    )]
    ReferrerSubjectAbsent {
        /// The referrer.
        referrer: Digest,
        /// Its subject.
        subject: Digest,
    },
    /// `snap sign` without `--key` or a `sign.key` setting.
    #[error("no signing key: give --key FILE or set `sign.key`")]
    NoSigningKey,
    /// `snap verify` or `pull --verify` without allowed signers.
    #[error("no allowed signers: give --allowed-signers FILE or set `verify.allowed-signers`")]
    NoAllowedSigners,
    /// No signature of the snapshot by an allowed signer.
    #[error("{subject} is not signed by an allowed signer: {reason}")]
    Unverified {
        /// The snapshot (or manifest) checked.
        subject: Digest,
        /// What the signatures were (none, unknown keys, bad).
        reason: String,
    },
    /// A stop was asked for (Ctrl-C, `SIGTERM`) and taken at a clean point: what arrived or
    /// went up is kept for the next run (store format §2.1).
    #[error("{what} stopped, as asked: run it again to continue where it stopped")]
    Interrupted {
        /// The command (`push`, `pull`).
        what: &'static str,
    },
    /// `snap attach` of a file whose name cannot be a title.
    #[error("cannot attach {}: {reason}", path.display())]
    BadAttachment {
        /// The file given.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Commits kept losing the ref race.
    #[error(
        "gave up committing to `{name}` after {attempts} attempts: other processes kept moving it"
    )]
    TooManyRetries {
        /// The ref.
        name: RefName,
        /// Attempts made.
        attempts: u32,
    },
}

/// Asks a running push or pull to stop at its next clean point: the CLI's Ctrl-C and
/// `SIGTERM` handler calls it. Returns whether one is running and listening; when none is, the
/// caller ends the process itself (every write snap makes is safe to cut off).
pub fn request_stop() -> bool {
    crate::interrupt::request()
}

/// `e`, or [`Error::Interrupted`] when a stop was asked for: whatever failed then failed
/// because it stopped.
pub(crate) fn interrupted(what: &'static str, e: Error) -> Error {
    if crate::interrupt::requested() {
        Error::Interrupted { what }
    } else {
        e
    }
}

impl Error {
    /// The lock file that blocked this operation, if a held lock is the cause.
    #[must_use]
    pub fn lock_path(&self) -> Option<&std::path::Path> {
        match self {
            Error::Refs(store::refs::Error::Lock(crate::lock::Error::Locked {
                lock_path, ..
            }))
            | Error::Store(store::Error::Lock(crate::lock::Error::Locked { lock_path, .. }))
            | Error::ReferrerIndex(store::referrers::Error::Lock(crate::lock::Error::Locked {
                lock_path,
                ..
            })) => Some(lock_path),
            _ => None,
        }
    }

    /// The broad class of this error.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Store(e) => e.kind(),
            Error::Objects(e) => e.kind(),
            Error::Snapshot(e) => e.kind(),
            Error::Refs(e) => e.kind(),
            Error::Rev(e) => e.kind(),
            Error::Scan(e) => e.kind(),
            Error::Build(e) => e.kind(),
            Error::Restore(e) => e.kind(),
            Error::Unpack(e) => e.kind(),
            Error::Provenance(e) => e.kind(),
            Error::Diff(e) => e.kind(),
            Error::Config(e) => e.kind(),
            Error::Layout(e) => e.kind(),
            Error::Registry(e) => e.kind(),
            Error::Signature(e) => e.kind(),
            Error::ReferrerIndex(e) => e.kind(),
            Error::Unverified { .. } => ErrorKind::Unverified,
            Error::Interrupted { .. } => ErrorKind::Interrupted,
            Error::Referrers(_)
            | Error::ReferrerSubjectAbsent { .. }
            | Error::NoSigningKey
            | Error::NoAllowedSigners
            | Error::BadAttachment { .. } => ErrorKind::InvalidInput,
            Error::PathNotFound { .. }
            | Error::PathNotInSnapshot { .. }
            | Error::NotABlobOfImage { .. }
            | Error::PathNotInArtifact { .. }
            | Error::RefNotFound { .. }
            | Error::WalkBackExhausted { .. } => ErrorKind::NotFound,
            Error::TagExists { .. } | Error::TooManyRetries { .. } | Error::TagConflict { .. } => {
                ErrorKind::Conflict
            }
            Error::NotAManifest { .. } => ErrorKind::Corrupt,
            Error::Io { .. } => ErrorKind::Io,
            Error::NotAFile { .. }
            | Error::IndexHoldsNoFiles { .. }
            | Error::RestoreIndex { .. }
            | Error::NothingToCommit
            | Error::NoRemote
            | Error::MountFromElsewhere { .. }
            | Error::RecordsStore { .. }
            | Error::InvalidAnnotation { .. }
            | Error::ReservedAnnotation { .. }
            | Error::CommitToTag { .. }
            | Error::NothingToExport
            | Error::OutputNotEmpty { .. }
            | Error::IndexTooLarge { .. }
            | Error::Oci(_)
            | Error::Graph(_)
            | Error::BadLayout { .. }
            | Error::NotAPack { .. }
            | Error::EntryRefName { .. }
            | Error::MissingBlob { .. }
            | Error::BlobSize { .. }
            | Error::BlobDigest { .. }
            | Error::LegacyArtifactManifest { .. }
            | Error::Incomplete { .. }
            | Error::DirtyPush { .. }
            | Error::NoGitHistory { .. } => ErrorKind::InvalidInput,
        }
    }
}
