//! What a commit reuses from the store: the counts it reports ([`Reuse`]), and the checks
//! that let a group or a tree layer be taken as it is — a pack holding exactly the members
//! planned, a frame that is exactly one block. Shared by the file-group planner
//! (`worktree::commit::groups`) and the tree layers (`worktree::commit::trees`), which do not name each other.

use std::sync::Arc;

use crate::digest::Digest;
use crate::pack;
use crate::store::Objects;
use crate::worktree::commit::packcache::Place;

/// How much was reused and how much written.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
pub struct Reuse {
    /// File packs (layers) reused as they were.
    pub packs_reused: u64,
    /// File packs written.
    pub packs_written: u64,
    /// Blocks copied from packs into the file packs written.
    pub blocks_copied: u64,
    /// Blocks compressed.
    pub blocks_compressed: u64,
    /// Tree packs (layers) reused as they were.
    #[serde(default)]
    pub tree_packs_reused: u64,
    /// Tree packs written.
    #[serde(default)]
    pub tree_packs_written: u64,
    /// Blocks of trees copied into the tree packs written.
    #[serde(default)]
    pub tree_blocks_copied: u64,
}

/// Whether the pack at `place` has the recorded length and its index lists exactly `want`
/// (the non-empty contents, by digest and size) — what a pack of those members holds.
pub(crate) fn holds_exactly(
    objects: &Objects,
    place: Place,
    want: impl Iterator<Item = (Digest, u64)>,
) -> bool {
    objects
        .pack_index(&place.pack)
        .ok()
        .is_some_and(|(index, len)| index_holds_exactly(&index, len, place, want))
}

/// [`holds_exactly`] with the index at hand.
pub(crate) fn index_holds_exactly(
    index: &pack::PackIndex,
    len: u64,
    place: Place,
    want: impl Iterator<Item = (Digest, u64)>,
) -> bool {
    let mut want: Vec<(Digest, u64)> = want.filter(|(_, s)| *s > 0).collect();
    want.sort_unstable();
    want.dedup_by(|a, b| a.0 == b.0);
    len == place.a
        && index.entries().len() == want.len()
        && index
            .entries()
            .iter()
            .zip(&want)
            .all(|(e, (d, s))| e.digest == *d && e.size == *s)
}

/// Shared so the planner need not read an index twice.
pub(crate) type SharedIndex = Arc<(pack::PackIndex, u64)>;

/// Whether `bytes` is exactly one zstd frame that decompresses to `len` bytes.
pub(crate) fn is_one_frame_of(bytes: &[u8], len: usize) -> bool {
    zstd::zstd_safe::find_frame_compressed_size(bytes).ok() == Some(bytes.len())
        && zstd::zstd_safe::get_frame_content_size(bytes)
            .ok()
            .flatten()
            .and_then(|n| usize::try_from(n).ok())
            == Some(len)
}
