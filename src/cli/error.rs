//! Turning failures into exit codes, messages and hints — in one place.
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done (also when nothing changed) |
//! | 1 | the answer is "no": `diff` found differences, `fsck` found problems, no allowed signer |
//! | 2 | failed: usage, missing store, bad input, I/O, corruption |
//! | 3 | conflict: a lock is held or a ref moved; safe to retry |

use std::process::ExitCode;

use snap::ops::{self, Digest, ErrorKind, Topic};

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
    /// 130: stopped on Ctrl-C or `SIGTERM` at a clean point; running it again continues.
    Interrupted,
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> ExitCode {
        ExitCode::from(match s {
            ExitStatus::Success => 0,
            ExitStatus::Negative => 1,
            ExitStatus::Error => 2,
            ExitStatus::Conflict => 3,
            ExitStatus::Interrupted => 130,
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
        if let Some(topic) = op.topic() {
            printer.error_detail("hint", hint(&topic));
            printer.error_detail("  see", see(topic.anchor()));
        }
        match op.kind() {
            ErrorKind::Conflict => ExitStatus::Conflict,
            ErrorKind::Unverified => ExitStatus::Negative,
            ErrorKind::Interrupted => ExitStatus::Interrupted,
            _ => ExitStatus::Error,
        }
    } else {
        ExitStatus::Error
    }
}

/// The next step for the user, for each troubleshooting entry.
fn hint(topic: &Topic<'_>) -> String {
    match topic {
        Topic::StoreInUse => concat!(
            "another snap process is using this store; run this again when it has finished ",
            "(safe to retry). A stopped one must be resumed (`kill -CONT PID`) or ended; to ",
            "wait longer, set SNAP_STORE_LOCK_TIMEOUT_MS (gc: --wait)"
        )
        .into(),
        Topic::RefLocked { lock_path } => format!(
            "a running snap process holds {}; retry when it has finished, or raise SNAP_LOCK_TIMEOUT_MS",
            lock_path.display()
        ),
        Topic::NoStore => "run `snap init` here, commit with `snap commit PATH` (which creates the store), or pass --store DIR".into(),
        Topic::UnsupportedFormat => "this store was written by another version of snap; use that version".into(),
        Topic::RefMoved => "another snap process moved the ref first; run the command again".into(),
        Topic::UnknownRevision => "list refs with `snap refs` and snapshots with `snap log`".into(),
        Topic::AmbiguousPrefix { candidates } => format!(
            "give more hex digits; candidates: {}",
            candidates.iter().map(Digest::short).collect::<Vec<_>>().join(", ")
        ),
        Topic::PrefixTooShort => "give at least 7 hex digits, or a ref name".into(),
        Topic::AmbiguousRef { name } => format!("say `heads/{name}` or `tags/{name}`"),
        Topic::InvalidRefName => "ref names use ASCII letters, digits, `.`, `_`, `-` and `/`".into(),
        Topic::RefNameTooLong { max_bytes, max_component_bytes } => format!(
            "choose a shorter name: at most {max_bytes} bytes, and {max_component_bytes} per `/`-separated component"
        ),
        Topic::ReservedRefName => "`heads/NAME` and `tags/NAME` only look refs up; make a tag with `snap tag NAME REV`, or choose a head name not starting with `heads/` or `tags/`".into(),
        Topic::RefNameConflict { existing, deleted: false } => format!(
            "a ref name cannot also be a directory of ref names; choose another name, or delete `{existing}` first with `snap ref delete`"
        ),
        Topic::RefNameConflict { deleted: true, .. } => "that reflog keeps the deleted ref's history (gc keeps its snapshots while it is recent); choose another name".into(),
        Topic::DestinationNotEmpty => "restore into a new or empty directory, or pass --force to overwrite".into(),
        Topic::ReservedName => "nothing was written; restore never writes `.git` or `.store`: `snap ls` shows the snapshot's paths".into(),
        Topic::StoreInDestination => "restore into a directory that does not hold the store, or outside it".into(),
        Topic::ForceKeepsDirectories => "nothing was written; move that directory away (or delete it if its files are not needed) and run restore again".into(),
        Topic::RestoreThroughSymlink => "nothing was written into place; the image writes through a symlink, check where it came from".into(),
        Topic::RestoreUnsafe => "nothing was written; the image or artifact is unsafe to restore, check where it came from".into(),
        Topic::TagExists => "pass --force to move the tag".into(),
        Topic::CommitToTag => "commit to another head with --ref NAME, or delete the tag with `snap ref delete tags/NAME`".into(),
        Topic::CommitStore => "commit the directory that holds the store instead: the store is left out of it".into(),
        Topic::CommitReservedName => "commit the directory around it instead: `.git` and `.store` below it are skipped".into(),
        Topic::PathNotFound => "check the path; relative paths are resolved against the current directory".into(),
        Topic::PathNotInSnapshot => "`snap ls SNAP [DIR]` lists what a snapshot, image or artifact holds (`-r` for everything)".into(),
        Topic::RegistryUnauthorized { credentials_from: None } => "log in with `docker login HOST`, or set SNAP_REGISTRY_USER and SNAP_REGISTRY_PASSWORD (or SNAP_REGISTRY_TOKEN); a test registry of your own asks only if its config turns auth on".into(),
        Topic::RegistryUnauthorized { credentials_from: Some(s) } => format!("check the user name and password (or token) from {s}"),
        Topic::RegistryDenied => "these credentials lack the permission; use an account or token allowed to write this repository".into(),
        Topic::RegistryCredentials => "fix or remove that credential source; the order is in the troubleshooting page".into(),
        Topic::RegistryNotFound => "check the repository and tag; `snap ls-remote REGISTRY/REPO` lists the tags".into(),
        Topic::RegistryNotTls => "the registry speaks plain HTTP; pass --insecure if that is intended".into(),
        Topic::RegistryUnreachable => "check the registry's address and that it is running and reachable".into(),
        Topic::ManifestTooLarge => "registries take manifests up to 4 MiB; this one cannot be pushed as is".into(),
        Topic::BadReference => "write REGISTRY/REPOSITORY[:TAG], e.g. ghcr.io/acme/index:v1 or 127.0.0.1:5000/index".into(),
        Topic::RegistryMismatch => "the registry sent or stored something else than asked; nothing was stored — try again, and report the registry if it persists".into(),
        Topic::RegistryStalled => "nothing was stored; run it again, and for a slow link give it more time: --timeout SECS (SNAP_TIMEOUT, `snap config http.timeout SECS`)".into(),
        Topic::RegistryResponseTooLarge => "nothing was stored; check the reference, and the registry or proxy that answers for it".into(),
        Topic::RegistryRedirects => "the registry (or a proxy before it) is misconfigured; tell its operator".into(),
        Topic::RegistryBusy => "the registry is overloaded or rate-limiting; run this again later (a longer --timeout waits longer between tries)".into(),
        Topic::RegistryInsecureRealm => "pass --insecure if sending the password over plain HTTP is intended".into(),
        Topic::DirtyPush => "commit your git changes and run `snap commit` again, or pass --allow-dirty (no commit tag then)".into(),
        Topic::CommitTagExists => "each commit tag names one snapshot; pass --force to move it anyway".into(),
        Topic::WalkBackExhausted => "push a snapshot of a recent commit (CI does), or look further back with --max N".into(),
        Topic::NoGitHistory => "run snap pull --walk-back or snap status --remote inside the git work tree the snapshots were built from".into(),
        Topic::LegacyArtifactManifest => "have the producer push an image manifest with an artifactType (what oras 1.x writes)".into(),
        Topic::ImportExpands => "nothing was stored; if you trust the archive, let it expand further with --max-bytes BYTES".into(),
        Topic::ImportRefName => "nothing was stored; import that entry under another name with --ref NAME (a layout of one entry), or fix its org.opencontainers.image.ref.name".into(),
        Topic::ImportRefused => "nothing was stored; export or download the layout again, or check where it came from".into(),
        Topic::ExportIndexTooLarge => "export fewer snapshots, or without --with-history (every ancestor is an entry)".into(),
        Topic::OutputNotEmpty => "export into a new or empty directory, or to a .tar, .tar.gz or .tar.zst file".into(),
        Topic::CorruptObject => "run `snap fsck` to list every damaged object and the snapshots that need it".into(),
        Topic::Unverified => "nothing was stored; ask the publisher to `snap sign` and push it, or add their key to the allowed signers".into(),
        Topic::Interrupted => "run the same command again: it continues from what is already there".into(),
        Topic::NoSigningKey => "pass --key ~/.ssh/id_ed25519 or set it once: `snap config sign.key PATH`".into(),
        Topic::NoAllowedSigners => "pass --allowed-signers FILE or set it once: `snap config verify.allowed-signers PATH`".into(),
        Topic::EncryptedSigningKey => "use an unencrypted key for snap, or sign with `ssh-keygen -Y sign -n snap` and `snap attach` the signature".into(),
        Topic::SignatureFiles => "check the file: snap reads OpenSSH ed25519 private keys and ssh-keygen's allowed-signers format".into(),
        Topic::ReferrersRefused => "nothing was stored; the referrers are hostile or broken, check where they came from".into(),
        Topic::MountFromElsewhere => "name a repository of the registry you push to (REGISTRY/REPO with the same REGISTRY), or leave --mount-from out".into(),
        Topic::AttachRefused => "attach regular files with UTF-8 names, each name once, and a type like application/vnd.example.sbom.v1+json".into(),
        // A topic this CLI does not know yet (the enum grows): its entry still explains it.
        _ => "the troubleshooting entry below explains what to do".into(),
    }
}
