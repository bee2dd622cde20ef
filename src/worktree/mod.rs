//! Directories ↔ stored objects: scanning paths to commit ([`scan`]), storing their files and
//! trees ([`build`]), remembering what unchanged files hash to ([`statcache`]), and materializing a tree back into a directory ([`restore`]).
//!
//! This module writes objects but never moves refs; `ops` does that.

pub mod build;
pub mod dest;
pub mod fingerprint;
pub mod groups;
pub mod packcache;
pub mod racy;
pub mod restore;
pub mod scan;
pub mod statcache;
pub mod trees;
pub mod unpack;
