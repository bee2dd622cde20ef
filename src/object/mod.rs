//! Objects and their canonical encodings: trees and snapshot configs.
//!
//! The contract: every object has canonical bytes, its digest is the SHA-256 of exactly those
//! bytes, and the bytes — not a re-encoding — are what is stored and sent. Types here only
//! encode and decode; they never touch the filesystem.

pub mod path;
pub mod snapshot;
pub mod spelling;
pub mod tree;

pub use path::EntryPath;
pub use snapshot::{GitProvenance, InputState, Provenance, SnapshotConfig, Stats};
pub use tree::{EntryKind, EntryName, Tree, TreeEntry};
