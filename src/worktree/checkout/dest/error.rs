//! Errors of writing into a destination.

use std::io;
use std::path::{Path, PathBuf};

pub(super) fn io_err(op: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

/// Errors of writing into a destination.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path that would be created, removed or written through a symlink.
    #[error("refusing to write `{path}` through a symlink")]
    ThroughSymlink {
        /// The path, relative to the destination.
        path: String,
    },
    /// A path with a reserved name (`.git`, `.store`, or a spelling of them).
    #[error("refusing to restore `{path}`: `{name}` is a reserved name restore never writes")]
    Reserved {
        /// The path, relative to the destination.
        path: String,
        /// The reserved component.
        name: String,
    },
    /// A path into the store (or a staging directory) that lies inside the destination.
    #[error("refusing to restore `{path}`: it would write into {}", what.display())]
    Protected {
        /// The path, relative to the destination.
        path: String,
        /// What lives there.
        what: PathBuf,
    },
    /// A destination that is the store or lies inside it.
    #[error("{} is inside the store {}", dest.display(), store.display())]
    InStore {
        /// The destination.
        dest: PathBuf,
        /// The store.
        store: PathBuf,
    },
    /// Replacing a directory that holds entries the restore does not write.
    #[error(
        "refusing to replace the directory {}: it holds files the snapshot does not record",
        path.display()
    )]
    WouldDelete {
        /// The directory.
        path: PathBuf,
    },
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
            Error::Io { .. } => K::Io,
            _ => K::InvalidInput,
        }
    }
}
