//! snap: content-addressed snapshots of build outputs, stored like git and shipped as OCI
//! artifacts.
#![deny(clippy::print_stdout, clippy::print_stderr)]
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod diff;
pub mod digest;
pub mod fs;
pub mod lock;
pub mod object;
pub mod oci;
pub mod ops;
pub mod pack;
pub mod provenance;
pub mod rev;
pub mod snapshot;
pub mod store;
pub mod timestamp;
pub mod worktree;

pub use digest::Digest;
