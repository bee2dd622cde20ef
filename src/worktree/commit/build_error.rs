//! The error of building a snapshot's contents (`worktree::commit::build` and the planners it
//! drives, `worktree::commit::groups` and `worktree::commit::trees`): its own file so that all can name it
//! without naming each other.

use std::path::{Path, PathBuf};

use crate::store::objects;

pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Build errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading a file, or writing the store, failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done: `opening`, `writing`, `syncing`, ….
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file changed size while it was being committed.
    #[error("{} changed while it was being committed", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// The entries of a directory do not make a valid tree (two entries of one name, an
    /// unusable name): refused before anything points at it.
    #[error("cannot build the tree of `{path}`")]
    InvalidTree {
        /// The directory (empty for the root).
        path: String,
        /// Why.
        #[source]
        source: crate::object::tree::Error,
    },
    /// A tree's encoding is not the JSON snap stores inline (a bug if it happens).
    #[error("tree {digest} cannot be carried inline: {problem}")]
    InlineTree {
        /// The tree.
        digest: crate::digest::Digest,
        /// Why.
        problem: crate::object::snapshot::Error,
    },
    /// A step of the build that runs on another thread stopped (a bug if it happens); nothing
    /// was recorded.
    #[error("the commit stopped: {what}")]
    Internal {
        /// What stopped.
        what: &'static str,
    },
    /// A file the stat cache knew had other contents when read (it changed within its mtime
    /// tick, or during the commit); the build starts again reading it.
    #[error("a file changed while it was being committed")]
    Stale {
        /// Its entry.
        index: usize,
    },
    /// A recorded tree did not encode to its digest; the build starts again encoding every
    /// tree.
    #[error("a cached tree does not match its directory")]
    StaleTree,
    /// The store failed.
    #[error(transparent)]
    Objects(#[from] objects::Error),
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::Objects(o) => o.kind(),
            Error::InvalidTree { .. } => K::InvalidInput,
            _ => K::Io,
        }
    }
}
