//! Restore errors.

use std::io;
use std::path::{Path, PathBuf};

use crate::digest::Digest;
use crate::store::objects::{self};
use crate::worktree::checkout::dest::{self};

pub(super) fn io_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Restore errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The destination has entries and `force` was not given.
    #[error("{} is not empty", path.display())]
    NotEmpty {
        /// The destination.
        path: PathBuf,
    },
    /// The destination exists and is not a directory.
    #[error("{} exists and is not a directory", path.display())]
    NotADirectory {
        /// The destination.
        path: PathBuf,
    },
    /// A tree that cannot be decoded.
    #[error("tree {digest} is malformed: {reason}")]
    Tree {
        /// The tree.
        digest: Digest,
        /// Why.
        reason: String,
    },
    /// An object is missing or corrupt.
    #[error(transparent)]
    Objects(#[from] objects::Error),
    /// A path refused, or a filesystem operation that failed, in the destination.
    #[error(transparent)]
    Dest(#[from] dest::Error),
    /// An I/O error.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `opening`, `writing`, `syncing`, ….
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::NotEmpty { .. } | Error::NotADirectory { .. } => K::InvalidInput,
            Error::Tree { .. } => K::Corrupt,
            Error::Dest(d) => d.kind(),
            Error::Objects(o) => o.kind(),
            Error::Io { .. } => K::Io,
        }
    }
}
