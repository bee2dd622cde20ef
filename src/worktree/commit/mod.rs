//! The commit side: a work tree into stored objects. [`scan`] walks the paths (honouring
//! `.snapignore`), [`statcache`] remembers what unchanged files hash to (with [`racy`] deciding
//! which stats can be trusted and [`fingerprint`] the exact no-op), [`build`] stores files and
//! trees — the file groups planned by [`groups`], the tree layers by [`trees`], reusing what
//! [`packcache`] and `reuse` vouch for.

pub mod build;
mod build_error;
pub mod fingerprint;
pub mod groups;
pub mod packcache;
pub mod racy;
pub(crate) mod reuse;
pub mod scan;
pub mod statcache;
pub mod trees;
