//! snap: content-addressed snapshots of build outputs, stored like git and shipped as OCI
//! artifacts.
//!
//! The library does everything the `snap` command does; the binary only parses flags and
//! prints. The store format and the OCI mapping are specified in the book
//! (`book/src/reference/`).
//!
//! ```text
//!   ops/*                         use cases: Options in → Outcome out; every write
//!     │
//!   diff · rev · worktree · provenance (gix) · snapshot (read side)
//!     │
//!   store/{objects,refs,reflog}   the only owner of `.store/`
//!     │
//!   oci · pack · object           OCI types and mapping · pack format · canonical encodings
//!     │
//!   digest · fs · lock · timestamp
//! ```
//!
//! Commit a directory, then resolve the ref it moved:
//!
//! ```
//! use snap::ops::{self, CommitOptions};
//! use snap::ops::NoProgress;
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::create_dir(dir.path().join("index"))?;
//! std::fs::write(dir.path().join("index/graph.bin"), b"nodes and edges")?;
//!
//! let (store, _created) = ops::init(None, dir.path())?;
//! let opts = CommitOptions {
//!     paths: vec!["index".into()],
//!     message: "first index".into(),
//!     cwd: dir.path().to_owned(),
//!     ..CommitOptions::default()
//! };
//! let outcome = ops::commit(&store, &opts, &NoProgress)?;
//! assert_eq!(ops::resolve(&store, "latest")?, outcome.digest);
//! assert_eq!(outcome.files, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

/// The book's "Embedding snap" page, compiled and run as a doc test so its example stays true.
#[cfg(doctest)]
#[doc = include_str!("../book/src/contributing/embedding.md")]
pub struct EmbeddingGuide;

// The API: one function per command, its Options and Outcome, and the types they are made of.
pub mod ops;

pub use ops::{Digest, Error, ErrorKind, NoProgress, Progress, Store};

// The formats the book specifies, for readers of snap's data: OCI media types, descriptors,
// manifests and layouts; the canonical tree and config encodings.
pub mod object;
pub mod oci;

// snap's internals. Public only so that its own integration tests, fuzz targets and
// benchmarks reach them; not part of the API, no stability promised, left out of the docs.
#[doc(hidden)]
pub mod lock;
#[doc(hidden)]
pub mod pack;
#[doc(hidden)]
pub mod registry;
#[doc(hidden)]
pub mod snapshot;
#[doc(hidden)]
pub mod store;
#[doc(hidden)]
pub mod worktree;

pub(crate) mod config;
pub(crate) mod diff;
pub(crate) mod digest;
pub(crate) mod error;
pub(crate) mod fs;
pub(crate) mod graph;
pub(crate) mod interrupt;
pub(crate) mod progress;
pub(crate) mod provenance;
pub(crate) mod rev;
pub(crate) mod signature;
pub(crate) mod timestamp;
