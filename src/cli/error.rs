//! Turning failures into exit codes, messages and hints — in one place.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (also when nothing changed) |
//! | 1 | the answer is "no": `diff` found differences, `fsck` found problems, no allowed signer |
//! | 2 | failed: usage, missing store, bad input, I/O, corruption |
//! | 3 | conflict: a lock is held or a ref moved; safe to retry |

use std::process::ExitCode;

use snap::ops::{self, ErrorKind};

use crate::cli::output::Printer;

/// How a hint points at its troubleshooting entry: `snap explain TOPIC` prints it (the book's
/// troubleshooting page, compiled in).
pub fn see(topic: &str) -> String {
    format!("snap explain {topic}")
}

/// The next step when a filesystem is full.
const DISK_FULL_HINT: &str = "free space on that filesystem (`snap gc` removes what no \
    snapshot needs) and run this again; what this command wrote has been taken back where it \
    could be";

/// The process exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0.
    Success,
    /// 1: ran fine, the answer is "no".
    Negative,
    /// 2: failed.
    Error,
    /// 3: lost a race; safe to retry.
    Conflict,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> ExitCode {
        ExitCode::from(match s {
            ExitStatus::Success => 0,
            ExitStatus::Negative => 1,
            ExitStatus::Error => 2,
            ExitStatus::Conflict => 3,
        })
    }
}

/// Renders `err` on stderr and returns the exit status it deserves.
pub fn report(printer: &Printer, err: &anyhow::Error) -> ExitStatus {
    // A closed stdout (`snap log | head`) is not an error.
    if err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    }) {
        return ExitStatus::Success;
    }
    if err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
            )
        })
    }) {
        printer.error(format!("no space left on device, writing {err}"));
        printer.error_detail("hint", DISK_FULL_HINT);
        printer.error_detail("  see", see("disk-full"));
        return ExitStatus::Error;
    }
    let op = err.chain().find_map(|e| e.downcast_ref::<ops::Error>());
    printer.error(err);
    // Print each cause once: thiserror's transparent wrappers repeat their inner text.
    let mut last = err.to_string();
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if text != last && !last.ends_with(&text) {
            printer.error_detail("  caused by", &text);
        }
        last = text;
    }
    if let Some(op) = op {
        if let Some((hint, anchor)) = hint_for(op) {
            printer.error_detail("hint", hint);
            printer.error_detail("  see", see(anchor));
        }
        match op.kind() {
            ErrorKind::Conflict => ExitStatus::Conflict,
            ErrorKind::Unverified => ExitStatus::Negative,
            _ => ExitStatus::Error,
        }
    } else if err.chain().any(|e| {
        matches!(
            e.downcast_ref::<snap::config::Error>(),
            Some(snap::config::Error::Locked { .. })
        )
    }) {
        // Like a held ref lock: another process is at it, safe to retry.
        ExitStatus::Conflict
    } else {
        ExitStatus::Error
    }
}

/// Hints for paths a restore refuses (issue 13).
fn dest_hint(e: &snap::worktree::checkout::dest::Error) -> Option<(String, &'static str)> {
    use snap::worktree::checkout::dest::Error as D;
    Some(match e {
        D::Reserved { .. } => (
            "nothing was written; restore never writes `.git` or `.store`: `snap ls` shows the snapshot's paths".into(),
            "reserved-name",
        ),
        D::Protected { .. } | D::InStore { .. } => (
            "restore into a directory that does not hold the store, or outside it".into(),
            "store-in-destination",
        ),
        D::WouldDelete { .. } => (
            "nothing was written; move that directory away (or delete it if its files are not needed) and run restore again".into(),
            "force-keeps-directories",
        ),
        D::ThroughSymlink { .. } => (
            "nothing was written into place; the image writes through a symlink, check where it came from".into(),
            "restore-refused",
        ),
        _ => return None,
    })
}

/// Hints for registry errors.
fn registry_hint(e: &snap::registry::Error) -> Option<(String, &'static str)> {
    use snap::registry::Error as R;
    Some(match e {
        R::Unauthorized {
            source_of_credentials: None,
            ..
        } => (
            "log in with `docker login HOST`, or set SNAP_REGISTRY_USER and SNAP_REGISTRY_PASSWORD (or SNAP_REGISTRY_TOKEN); a test registry of your own asks only if its config turns auth on".into(),
            "registry-unauthorized",
        ),
        R::Unauthorized {
            source_of_credentials: Some(s),
            ..
        } => (
            format!("check the user name and password (or token) from {s}"),
            "registry-unauthorized",
        ),
        R::Denied { .. } => (
            "these credentials lack the permission; use an account or token allowed to write this repository".into(),
            "registry-denied",
        ),
        R::Credentials { .. } => (
            "fix or remove that credential source; the order is in the troubleshooting page".into(),
            "registry-unauthorized",
        ),
        R::NotFound { .. } => (
            "check the repository and tag; `snap ls-remote REGISTRY/REPO` lists the tags".into(),
            "registry-not-found",
        ),
        R::NotTls { .. } => (
            "the registry speaks plain HTTP; pass --insecure if that is intended".into(),
            "registry-unreachable",
        ),
        R::UnknownHost { .. } | R::ConnectionRefused { .. } | R::Network { .. } => (
            "check the registry's address and that it is running and reachable".into(),
            "registry-unreachable",
        ),
        R::ManifestTooLarge { .. } => (
            "registries take manifests up to 4 MiB; this one cannot be pushed as is".into(),
            "manifest-too-large",
        ),
        R::BadReference { .. } => (
            "write REGISTRY/REPOSITORY[:TAG], e.g. ghcr.io/acme/index:v1 or 127.0.0.1:5000/index".into(),
            "bad-reference",
        ),
        R::BlobMismatch { .. } | R::DigestMismatch { .. } | R::Protocol { .. } => (
            "the registry sent or stored something else than asked; nothing was stored — try again, and report the registry if it persists".into(),
            "registry-mismatch",
        ),
        R::Source { .. } => (
            "run `snap fsck` to list every damaged object and the snapshots that need it".into(),
            "corrupt-object",
        ),
        R::Stalled { .. } => (
            "nothing was stored; run it again, and for a slow link give it more time: --timeout SECS (SNAP_TIMEOUT, `snap config http.timeout SECS`)".into(),
            "registry-stalled",
        ),
        R::ResponseTooLarge { .. } => (
            "nothing was stored; check the reference, and the registry or proxy that answers for it".into(),
            "registry-response-too-large",
        ),
        R::Redirects { .. } => (
            "the registry (or a proxy before it) is misconfigured; tell its operator".into(),
            "registry-redirects",
        ),
        R::GaveUp { .. } | R::RetryTooLate { .. } => (
            "the registry is overloaded or rate-limiting; run this again later (a longer --timeout waits longer between tries)".into(),
            "registry-busy",
        ),
        R::InsecureRealm { .. } => (
            "pass --insecure if sending the password over plain HTTP is intended".into(),
            "registry-insecure-realm",
        ),
        _ => return None,
    })
}

/// A next step for the user, and the troubleshooting anchor that explains it.
fn hint_for(err: &ops::Error) -> Option<(String, &'static str)> {
    use snap::rev;
    use snap::store;
    use snap::store::refs;
    if let Some(lock_path) = err.lock_path()
        && lock_path
            .file_name()
            .is_some_and(|n| n == "LOCK" || n == "LOCK.turnstile")
    {
        // The store-wide flock: released by the kernel when its holder exits.
        return Some((
            concat!(
                "another snap process is using this store; run this again when it has finished ",
                "(safe to retry). A stopped one must be resumed (`kill -CONT PID`) or ended; to ",
                "wait longer, set SNAP_STORE_LOCK_TIMEOUT_MS (gc: --wait)"
            )
            .into(),
            "store-in-use",
        ));
    }
    if let Some(lock_path) = err.lock_path() {
        return Some((
            format!(
                "a running snap process holds {}; retry when it has finished, or raise SNAP_LOCK_TIMEOUT_MS",
                lock_path.display()
            ),
            "ref-locked",
        ));
    }
    match err {
        ops::Error::Store(store::Error::NotFound { .. }) => Some((
            "run `snap init` here, commit with `snap commit PATH` (which creates the store), or pass --store DIR".into(),
            "no-store",
        )),
        ops::Error::Store(store::Error::UnsupportedFormat { .. }) => Some((
            "this store was written by another version of snap; use that version".into(),
            "unsupported-format",
        )),
        ops::Error::Refs(refs::Error::OutOfDate { .. }) | ops::Error::TooManyRetries { .. } => Some((
            "another snap process moved the ref first; run the command again".into(),
            "ref-moved",
        )),
        ops::Error::Rev(rev::Error::Unknown { .. }) => Some((
            "list refs with `snap refs` and snapshots with `snap log`".into(),
            "unknown-revision",
        )),
        ops::Error::Rev(rev::Error::Ambiguous { candidates, .. }) => Some((
            format!(
                "give more hex digits; candidates: {}",
                candidates.iter().map(snap::Digest::short).collect::<Vec<_>>().join(", ")
            ),
            "ambiguous-prefix",
        )),
        ops::Error::Rev(rev::Error::TooShort { .. }) => Some((
            "give at least 7 hex digits, or a ref name".into(),
            "ambiguous-prefix",
        )),
        ops::Error::Refs(refs::Error::Ambiguous { name }) => Some((
            format!("say `heads/{name}` or `tags/{name}`"),
            "ambiguous-ref",
        )),
        ops::Error::Refs(refs::Error::InvalidName { .. }) => Some((
            "ref names use ASCII letters, digits, `.`, `_`, `-` and `/`".into(),
            "invalid-ref-name",
        )),
        ops::Error::Refs(refs::Error::NameTooLong { .. }) => Some((
            format!(
                "choose a shorter name: at most {} bytes, and {} per `/`-separated component",
                refs::MAX_NAME_BYTES,
                refs::MAX_COMPONENT_BYTES
            ),
            "ref-name-too-long",
        )),
        ops::Error::Refs(refs::Error::ReservedPrefix { .. }) => Some((
            "`heads/NAME` and `tags/NAME` only look refs up; make a tag with `snap tag NAME REV`, or choose a head name not starting with `heads/` or `tags/`".into(),
            "reserved-ref-name",
        )),
        ops::Error::Refs(refs::Error::NameConflict { existing, deleted: false, .. }) => Some((
            format!("a ref name cannot also be a directory of ref names; choose another name, or delete `{existing}` first with `snap ref delete`"),
            "ref-name-conflict",
        )),
        ops::Error::Refs(refs::Error::NameConflict { deleted: true, .. }) => Some((
            "that reflog keeps the deleted ref's history (gc keeps its snapshots while it is recent); choose another name".into(),
            "ref-name-conflict",
        )),
        ops::Error::Restore(snap::worktree::checkout::restore::Error::NotEmpty { .. }) => Some((
            "restore into a new or empty directory, or pass --force to overwrite".into(),
            "destination-not-empty",
        )),
        ops::Error::Restore(snap::worktree::checkout::restore::Error::Dest(d))
        | ops::Error::Unpack(snap::worktree::checkout::unpack::Error::Dest(d)) => dest_hint(d),
        ops::Error::Unpack(
            snap::worktree::checkout::unpack::Error::UnsafePath { .. }
            | snap::worktree::checkout::unpack::Error::TitleClash { .. },
        ) => Some((
            "nothing was written; the image or artifact is unsafe to restore, check where it came from".into(),
            "restore-refused",
        )),
        ops::Error::TagExists { .. } => Some(("pass --force to move the tag".into(), "tag-exists")),
        ops::Error::CommitToTag { .. } => Some((
            "commit to another head with --ref NAME, or delete the tag with `snap ref delete tags/NAME`".into(),
            "commit-to-tag",
        )),
        ops::Error::RecordsStore { .. } => Some((
            "commit the directory that holds the store instead: the store is left out of it".into(),
            "commit-store",
        )),
        ops::Error::Scan(snap::worktree::commit::scan::Error::Reserved { .. }) => Some((
            "commit the directory around it instead: `.git` and `.store` below it are skipped".into(),
            "commit-reserved-name",
        )),
        ops::Error::PathNotFound { .. } | ops::Error::Scan(snap::worktree::commit::scan::Error::Missing { .. }) => Some((
            "check the path; relative paths are resolved against the current directory".into(),
            "path-not-found",
        )),
        ops::Error::PathNotInSnapshot { .. }
        | ops::Error::NotAFile { .. }
        | ops::Error::IndexHoldsNoFiles { .. }
        | ops::Error::NotABlobOfImage { .. }
        | ops::Error::PathNotInArtifact { .. } => Some((
            "`snap ls SNAP [DIR]` lists what a snapshot, image or artifact holds (`-r` for everything)".into(),
            "path-not-in-snapshot",
        )),
        ops::Error::Registry(r) => registry_hint(r),
        ops::Error::DirtyPush { .. } => Some((
            "commit your git changes and run `snap commit` again, or pass --allow-dirty (no commit tag then)".into(),
            "dirty-push",
        )),
        ops::Error::TagConflict { .. } => Some((
            "each commit tag names one snapshot; pass --force to move it anyway".into(),
            "commit-tag-exists",
        )),
        ops::Error::WalkBackExhausted { .. } => Some((
            "push a snapshot of a recent commit (CI does), or look further back with --max N".into(),
            "walk-back-exhausted",
        )),
        ops::Error::NoGitHistory { .. } => Some((
            "run snap pull --walk-back or snap status --remote inside the git work tree the snapshots were built from".into(),
            "walk-back-exhausted",
        )),
        ops::Error::LegacyArtifactManifest { .. } => Some((
            "have the producer push an image manifest with an artifactType (what oras 1.x writes)".into(),
            "legacy-artifact-manifest",
        )),
        ops::Error::Layout(snap::oci::layout::Error::Expands { .. }) => Some((
            "nothing was stored; if you trust the archive, let it expand further with --max-bytes BYTES".into(),
            "import-expands",
        )),
        ops::Error::EntryRefName { .. } => Some((
            "nothing was stored; import that entry under another name with --ref NAME (a layout of one entry), or fix its org.opencontainers.image.ref.name".into(),
            "import-ref-name",
        )),
        ops::Error::Layout(_)
        | ops::Error::Oci(_)
        | ops::Error::BadLayout { .. }
        | ops::Error::MissingBlob { .. }
        | ops::Error::BlobSize { .. }
        | ops::Error::BlobDigest { .. }
        | ops::Error::Incomplete { .. } => Some((
            "nothing was stored; export or download the layout again, or check where it came from".into(),
            "import-refused",
        )),
        ops::Error::IndexTooLarge { .. } => Some((
            "export fewer snapshots, or without --with-history (every ancestor is an entry)".into(),
            "export-index-too-large",
        )),
        ops::Error::OutputNotEmpty { .. } => Some((
            "export into a new or empty directory, or to a .tar, .tar.gz or .tar.zst file".into(),
            "output-not-empty",
        )),
        ops::Error::Unverified { .. } => Some((
            "nothing was stored; ask the publisher to `snap sign` and push it, or add their key to the allowed signers".into(),
            "unverified",
        )),
        ops::Error::NoSigningKey => Some((
            "pass --key ~/.ssh/id_ed25519 or set it once: `snap config sign.key PATH`".into(),
            "no-signing-key",
        )),
        ops::Error::NoAllowedSigners => Some((
            "pass --allowed-signers FILE or set it once: `snap config verify.allowed-signers PATH`".into(),
            "no-allowed-signers",
        )),
        ops::Error::Signature(snap::signature::Error::EncryptedKey { .. }) => Some((
            "use an unencrypted key for snap, or sign with `ssh-keygen -Y sign -n snap` and `snap attach` the signature".into(),
            "encrypted-signing-key",
        )),
        ops::Error::Signature(_) => Some((
            "check the file: snap reads OpenSSH ed25519 private keys and ssh-keygen's allowed-signers format".into(),
            "signature-files",
        )),
        ops::Error::Referrers(_)
        | ops::Error::ReferrerSubjectAbsent { .. }
        | ops::Error::ReferrerIndex(snap::store::referrers::Error::TooMany { .. }) => Some((
            "nothing was stored; the referrers are hostile or broken, check where they came from".into(),
            "referrers-refused",
        )),
        ops::Error::BadAttachment { .. } => Some((
            "attach regular files with UTF-8 names, each name once, and a type like application/vnd.example.sbom.v1+json".into(),
            "attach-refused",
        )),
        e if e.kind() == ErrorKind::Corrupt => Some((
            "run `snap fsck` to list every damaged object and the snapshots that need it".into(),
            "corrupt-object",
        )),
        _ => None,
    }
}
