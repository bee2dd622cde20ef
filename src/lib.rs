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
//! assert_eq!(snap::rev::resolve(&store, "latest")?, outcome.digest);
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

pub mod config;
pub mod diff;
pub mod digest;
pub mod error;
pub mod fs;
pub mod graph;
pub mod lock;
pub mod object;
pub mod oci;
pub mod ops;
pub mod pack;
pub mod progress;
pub mod provenance;
pub mod registry;
pub mod rev;
pub mod signature;
pub mod snapshot;
pub mod store;
pub mod timestamp;
pub mod worktree;

pub use digest::Digest;
