//! What fsck reports: each problem with its kind, where it is and the snapshots it breaks.

use std::path::PathBuf;

use crate::digest::Digest;

/// What kind of problem fsck found.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// An object's bytes do not match its digest.
    CorruptObject,
    /// A pack's bytes do not match its name.
    CorruptPack,
    /// A pack index is unreadable.
    CorruptIndex,
    /// A pack has no index.
    MissingIndex,
    /// An object a snapshot needs is not stored.
    MissingObject,
    /// A snapshot's manifest, config or tree cannot be read.
    BrokenSnapshot,
    /// A stored object's size differs from the size a manifest or index describes.
    SizeMismatch,
    /// A ref file is not a digest.
    CorruptRef,
    /// A ref points at a snapshot that is not stored.
    DanglingRef,
    /// A reflog line cannot be parsed.
    CorruptReflog,
    /// A ref `.lock` file whose holder died (a leftover, not damage).
    StaleLock,
    /// A `.tmp-*` file or directory left behind (a leftover, not damage).
    LeftoverTemp,
    /// A pack index whose pack is not there (a leftover, not damage).
    OrphanIndex,
    /// A file that does not belong in the store.
    StrayFile,
    /// The referrers index disagrees with the referrers' own `subject` (issue 16).
    ReferrersIndex,
}

/// One problem.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Problem {
    /// What kind.
    pub kind: ProblemKind,
    /// The file concerned.
    pub path: Option<PathBuf>,
    /// The object concerned.
    pub object: Option<Digest>,
    /// What is wrong, in a sentence.
    pub message: String,
    /// Snapshots that depend on the damaged object.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshots: Vec<Digest>,
}

/// The fsck report.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct FsckReport {
    /// Loose objects verified.
    pub loose_objects: u64,
    /// Packs verified.
    pub packs: u64,
    /// Objects inside packs verified.
    pub packed_objects: u64,
    /// Refs checked.
    pub refs: u64,
    /// Snapshots walked.
    pub snapshots: u64,
    /// Foreign manifests and indexes walked (container images, ORAS and OMMX artifacts).
    #[serde(default)]
    pub foreign: u64,
    /// Problems found (empty when the store is healthy).
    pub problems: Vec<Problem>,
    /// Leftovers of interrupted runs (stale locks, temp files): harmless, never referenced,
    /// and removed by the next snap command that finds the store unused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leftovers: Vec<Problem>,
}

impl FsckReport {
    /// Whether no problem was found.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

pub(super) fn problem(
    kind: ProblemKind,
    path: Option<PathBuf>,
    object: Option<Digest>,
    message: String,
) -> Problem {
    Problem {
        kind,
        path,
        object,
        message,
        snapshots: Vec::new(),
    }
}
