//! Which entry of the book's troubleshooting page an error belongs to: the library decides
//! what went wrong (it knows its inner errors), a front end decides how to say what to do
//! next. The CLI turns a [`Topic`] into its one-line hint and `snap explain ANCHOR`.

use std::path::Path;

use super::Error;
use crate::digest::Digest;
use crate::store::{self, RefName, refs};
use crate::worktree::checkout::{dest, restore, unpack};
use crate::{registry, rev, worktree};

/// What went wrong, as one entry of the troubleshooting page ([`Topic::anchor`]), with what a
/// hint about it needs to say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Topic<'a> {
    /// The store-wide lock is held by another process.
    StoreInUse,
    /// A ref's lock file is held.
    RefLocked {
        /// The lock file.
        lock_path: &'a Path,
    },
    /// No store here.
    NoStore,
    /// A store of another format version.
    UnsupportedFormat,
    /// Another process moved the ref first.
    RefMoved,
    /// A name that resolves to nothing.
    UnknownRevision,
    /// A digest prefix that names more than one snapshot.
    AmbiguousPrefix {
        /// What it names.
        candidates: &'a [Digest],
    },
    /// A digest prefix too short to look up.
    PrefixTooShort,
    /// A short ref name that is both a head and a tag.
    AmbiguousRef {
        /// The name.
        name: &'a str,
    },
    /// A ref name with characters refs do not take.
    InvalidRefName,
    /// A ref name over its limits.
    RefNameTooLong {
        /// Bytes a name may have.
        max_bytes: usize,
        /// Bytes a `/`-separated component may have.
        max_component_bytes: usize,
    },
    /// A head name starting with `heads/` or `tags/`.
    ReservedRefName,
    /// A ref name that is a directory of other names, or under one.
    RefNameConflict {
        /// The ref in the way.
        existing: &'a RefName,
        /// Whether that ref is deleted and only its reflog is in the way.
        deleted: bool,
    },
    /// A restore into a directory with files.
    DestinationNotEmpty,
    /// A restore of a path named `.git` or `.store`.
    ReservedName,
    /// A restore whose destination holds the store, or is in it.
    StoreInDestination,
    /// `--force` would delete a directory of the user's.
    ForceKeepsDirectories,
    /// A restore that would write through a symlink.
    RestoreThroughSymlink,
    /// An image or artifact whose paths are unsafe to restore.
    RestoreUnsafe,
    /// A tag that exists, without `--force`.
    TagExists,
    /// A commit to a tag's name.
    CommitToTag,
    /// A commit of the store itself.
    CommitStore,
    /// A commit of a path named `.git` or `.store`.
    CommitReservedName,
    /// A path to commit that does not exist.
    PathNotFound,
    /// A path a snapshot, image or artifact does not hold.
    PathNotInSnapshot,
    /// The registry refused the credentials, or asked for some.
    RegistryUnauthorized {
        /// Where the credentials came from; `None` when none were sent.
        credentials_from: Option<&'a str>,
    },
    /// The credentials lack a permission.
    RegistryDenied,
    /// A credential source that cannot be used.
    RegistryCredentials,
    /// The registry has no such repository, tag or manifest.
    RegistryNotFound,
    /// A registry that speaks plain HTTP, without `--insecure`.
    RegistryNotTls,
    /// A registry that cannot be reached.
    RegistryUnreachable,
    /// A manifest over the registries' 4 MiB limit.
    ManifestTooLarge,
    /// A registry reference that does not parse.
    BadReference,
    /// The registry sent or stored other bytes than asked.
    RegistryMismatch,
    /// A transfer that stopped making progress.
    RegistryStalled,
    /// A registry response over its bound.
    RegistryResponseTooLarge,
    /// Too many redirects.
    RegistryRedirects,
    /// The registry kept answering "busy".
    RegistryBusy,
    /// A token realm over plain HTTP, without `--insecure`.
    RegistryInsecureRealm,
    /// A push of a snapshot of a dirty work tree.
    DirtyPush,
    /// A commit tag that names another snapshot.
    CommitTagExists,
    /// No commit in reach has a pushed snapshot.
    WalkBackExhausted,
    /// Walking back outside a git work tree.
    NoGitHistory,
    /// The withdrawn artifact manifest.
    LegacyArtifactManifest,
    /// An archive that expands past its bound.
    ImportExpands,
    /// A layout entry whose name is not a ref name.
    ImportRefName,
    /// A layout that is not whole or not consistent.
    ImportRefused,
    /// An export whose index would be too large to import.
    ExportIndexTooLarge,
    /// An export into a directory with files.
    OutputNotEmpty,
    /// Stored data that does not match its digest.
    CorruptObject,
    /// No signature by an allowed signer.
    Unverified,
    /// A push or pull stopped on Ctrl-C or `SIGTERM`.
    Interrupted,
    /// `snap sign` without a key.
    NoSigningKey,
    /// Verifying without allowed signers.
    NoAllowedSigners,
    /// A passphrase-protected signing key.
    EncryptedSigningKey,
    /// A key, signature or allowed-signers file snap cannot use.
    SignatureFiles,
    /// Referrers past their bounds or inconsistent.
    ReferrersRefused,
    /// Files `snap attach` cannot attach.
    AttachRefused,
    /// `push --mount-from` a repository of another registry.
    MountFromElsewhere,
}

impl Topic<'_> {
    /// The entry's anchor on the troubleshooting page (`snap explain ANCHOR`).
    #[must_use]
    pub fn anchor(&self) -> &'static str {
        match self {
            Topic::StoreInUse => "store-in-use",
            Topic::RefLocked { .. } => "ref-locked",
            Topic::NoStore => "no-store",
            Topic::UnsupportedFormat => "unsupported-format",
            Topic::RefMoved => "ref-moved",
            Topic::UnknownRevision => "unknown-revision",
            Topic::AmbiguousPrefix { .. } | Topic::PrefixTooShort => "ambiguous-prefix",
            Topic::AmbiguousRef { .. } => "ambiguous-ref",
            Topic::InvalidRefName => "invalid-ref-name",
            Topic::RefNameTooLong { .. } => "ref-name-too-long",
            Topic::ReservedRefName => "reserved-ref-name",
            Topic::RefNameConflict { .. } => "ref-name-conflict",
            Topic::DestinationNotEmpty => "destination-not-empty",
            Topic::ReservedName => "reserved-name",
            Topic::StoreInDestination => "store-in-destination",
            Topic::ForceKeepsDirectories => "force-keeps-directories",
            Topic::RestoreThroughSymlink | Topic::RestoreUnsafe => "restore-refused",
            Topic::TagExists => "tag-exists",
            Topic::CommitToTag => "commit-to-tag",
            Topic::CommitStore => "commit-store",
            Topic::CommitReservedName => "commit-reserved-name",
            Topic::PathNotFound => "path-not-found",
            Topic::PathNotInSnapshot => "path-not-in-snapshot",
            Topic::RegistryUnauthorized { .. } | Topic::RegistryCredentials => {
                "registry-unauthorized"
            }
            Topic::RegistryDenied => "registry-denied",
            Topic::RegistryNotFound => "registry-not-found",
            Topic::RegistryNotTls | Topic::RegistryUnreachable => "registry-unreachable",
            Topic::ManifestTooLarge => "manifest-too-large",
            Topic::BadReference => "bad-reference",
            Topic::RegistryMismatch => "registry-mismatch",
            Topic::RegistryStalled => "registry-stalled",
            Topic::RegistryResponseTooLarge => "registry-response-too-large",
            Topic::RegistryRedirects => "registry-redirects",
            Topic::RegistryBusy => "registry-busy",
            Topic::RegistryInsecureRealm => "registry-insecure-realm",
            Topic::DirtyPush => "dirty-push",
            Topic::CommitTagExists => "commit-tag-exists",
            Topic::WalkBackExhausted | Topic::NoGitHistory => "walk-back-exhausted",
            Topic::LegacyArtifactManifest => "legacy-artifact-manifest",
            Topic::ImportExpands => "import-expands",
            Topic::ImportRefName => "import-ref-name",
            Topic::ImportRefused => "import-refused",
            Topic::ExportIndexTooLarge => "export-index-too-large",
            Topic::OutputNotEmpty => "output-not-empty",
            Topic::CorruptObject => "corrupt-object",
            Topic::Unverified => "unverified",
            Topic::Interrupted => "interrupted",
            Topic::NoSigningKey => "no-signing-key",
            Topic::NoAllowedSigners => "no-allowed-signers",
            Topic::EncryptedSigningKey => "encrypted-signing-key",
            Topic::SignatureFiles => "signature-files",
            Topic::ReferrersRefused => "referrers-refused",
            Topic::AttachRefused => "attach-refused",
            Topic::MountFromElsewhere => "mount-from-elsewhere",
        }
    }
}

impl Error {
    /// The troubleshooting entry this error belongs to, if it has one.
    #[must_use]
    pub fn topic(&self) -> Option<Topic<'_>> {
        if let Some(lock_path) = self.lock_path() {
            // The store-wide flock is released by the kernel when its holder exits; a ref's
            // lock file is not.
            let store_wide = lock_path
                .file_name()
                .is_some_and(|n| n == store::LOCK || n == store::TURNSTILE);
            return Some(if store_wide {
                Topic::StoreInUse
            } else {
                Topic::RefLocked { lock_path }
            });
        }
        Some(match self {
            Error::Store(store::Error::NotFound { .. }) => Topic::NoStore,
            Error::Store(store::Error::UnsupportedFormat { .. }) => Topic::UnsupportedFormat,
            Error::Refs(refs::Error::OutOfDate { .. }) | Error::TooManyRetries { .. } => {
                Topic::RefMoved
            }
            Error::Rev(rev::Error::Unknown { .. }) => Topic::UnknownRevision,
            Error::Rev(rev::Error::Ambiguous { candidates, .. }) => {
                Topic::AmbiguousPrefix { candidates }
            }
            Error::Rev(rev::Error::TooShort { .. }) => Topic::PrefixTooShort,
            Error::Refs(refs::Error::Ambiguous { name }) => Topic::AmbiguousRef { name },
            Error::Refs(refs::Error::InvalidName { .. }) => Topic::InvalidRefName,
            Error::Refs(refs::Error::NameTooLong { .. }) => Topic::RefNameTooLong {
                max_bytes: refs::MAX_NAME_BYTES,
                max_component_bytes: refs::MAX_COMPONENT_BYTES,
            },
            Error::Refs(refs::Error::ReservedPrefix { .. }) => Topic::ReservedRefName,
            Error::Refs(refs::Error::NameConflict {
                existing, deleted, ..
            }) => Topic::RefNameConflict {
                existing,
                deleted: *deleted,
            },
            Error::Restore(restore::Error::NotEmpty { .. }) => Topic::DestinationNotEmpty,
            Error::Restore(restore::Error::Dest(d)) | Error::Unpack(unpack::Error::Dest(d)) => {
                dest_topic(d)?
            }
            Error::Unpack(unpack::Error::UnsafePath { .. } | unpack::Error::TitleClash { .. }) => {
                Topic::RestoreUnsafe
            }
            Error::TagExists { .. } => Topic::TagExists,
            Error::CommitToTag { .. } => Topic::CommitToTag,
            Error::RecordsStore { .. } => Topic::CommitStore,
            Error::Scan(worktree::commit::scan::Error::Reserved { .. }) => {
                Topic::CommitReservedName
            }
            Error::PathNotFound { .. }
            | Error::Scan(worktree::commit::scan::Error::Missing { .. }) => Topic::PathNotFound,
            Error::PathNotInSnapshot { .. }
            | Error::NotAFile { .. }
            | Error::IndexHoldsNoFiles { .. }
            | Error::NotABlobOfImage { .. }
            | Error::PathNotInArtifact { .. } => Topic::PathNotInSnapshot,
            Error::Registry(r) => registry_topic(r)?,
            Error::DirtyPush { .. } => Topic::DirtyPush,
            Error::TagConflict { .. } => Topic::CommitTagExists,
            Error::WalkBackExhausted { .. } => Topic::WalkBackExhausted,
            Error::NoGitHistory { .. } => Topic::NoGitHistory,
            Error::LegacyArtifactManifest { .. } => Topic::LegacyArtifactManifest,
            Error::Layout(crate::oci::layout::Error::Expands { .. }) => Topic::ImportExpands,
            Error::EntryRefName { .. } => Topic::ImportRefName,
            Error::Layout(_)
            | Error::Oci(_)
            | Error::BadLayout { .. }
            | Error::NotAPack { .. }
            | Error::MissingBlob { .. }
            | Error::BlobSize { .. }
            | Error::BlobDigest { .. }
            | Error::Incomplete { .. } => Topic::ImportRefused,
            Error::IndexTooLarge { .. } => Topic::ExportIndexTooLarge,
            Error::OutputNotEmpty { .. } => Topic::OutputNotEmpty,
            Error::Unverified { .. } => Topic::Unverified,
            e if e.kind() == super::ErrorKind::Interrupted => Topic::Interrupted,
            Error::NoSigningKey => Topic::NoSigningKey,
            Error::NoAllowedSigners => Topic::NoAllowedSigners,
            Error::Signature(crate::signature::Error::EncryptedKey { .. }) => {
                Topic::EncryptedSigningKey
            }
            Error::Signature(_) => Topic::SignatureFiles,
            Error::Referrers(_)
            | Error::ReferrerSubjectAbsent { .. }
            | Error::ReferrerIndex(store::referrers::Error::TooMany { .. }) => {
                Topic::ReferrersRefused
            }
            Error::BadAttachment { .. } => Topic::AttachRefused,
            Error::MountFromElsewhere { .. } => Topic::MountFromElsewhere,
            e if e.kind() == super::ErrorKind::Corrupt => Topic::CorruptObject,
            _ => return None,
        })
    }
}

/// Paths a restore refuses (issue 13).
fn dest_topic(e: &dest::Error) -> Option<Topic<'static>> {
    Some(match e {
        dest::Error::Reserved { .. } => Topic::ReservedName,
        dest::Error::Protected { .. } | dest::Error::InStore { .. } => Topic::StoreInDestination,
        dest::Error::WouldDelete { .. } => Topic::ForceKeepsDirectories,
        dest::Error::ThroughSymlink { .. } => Topic::RestoreThroughSymlink,
        _ => return None,
    })
}

fn registry_topic(e: &registry::Error) -> Option<Topic<'_>> {
    use registry::Error as R;
    Some(match e {
        R::Unauthorized {
            source_of_credentials,
            ..
        } => Topic::RegistryUnauthorized {
            credentials_from: *source_of_credentials,
        },
        R::Denied { .. } => Topic::RegistryDenied,
        R::Credentials { .. } => Topic::RegistryCredentials,
        R::NotFound { .. } => Topic::RegistryNotFound,
        R::NotTls { .. } => Topic::RegistryNotTls,
        R::UnknownHost { .. } | R::ConnectionRefused { .. } | R::Network { .. } => {
            Topic::RegistryUnreachable
        }
        R::ManifestTooLarge { .. } => Topic::ManifestTooLarge,
        R::BadReference { .. } => Topic::BadReference,
        R::BlobMismatch { .. } | R::DigestMismatch { .. } | R::Protocol { .. } => {
            Topic::RegistryMismatch
        }
        R::Source { .. } => Topic::CorruptObject,
        R::Stalled { .. } => Topic::RegistryStalled,
        R::ResponseTooLarge { .. } => Topic::RegistryResponseTooLarge,
        R::Redirects { .. } => Topic::RegistryRedirects,
        R::GaveUp { .. } | R::RetryTooLate { .. } => Topic::RegistryBusy,
        R::InsecureRealm { .. } => Topic::RegistryInsecureRealm,
        _ => return None,
    })
}
