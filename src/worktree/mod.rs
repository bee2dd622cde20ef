//! Directories ↔ stored objects: scanning paths to commit ([`scan`]), storing their files and
//! trees ([`build`]), remembering what unchanged files hash to ([`statcache`]), and materializing a tree back into a directory ([`restore`]).
//!
//! This module writes objects but never moves refs; `ops` does that.

pub mod build;
mod build_error;
pub mod dest;
pub mod fingerprint;
pub mod groups;
pub mod packcache;
pub mod racy;
pub mod restore;
pub(crate) mod reuse;
pub mod scan;
pub mod statcache;
pub mod trees;
pub mod unpack;
