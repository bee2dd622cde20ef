//! The snapshot ↔ OCI artifact mapping rules (OCI mapping §3): direct or grouped mode, the
//! group targets, the content-defined cut rule, and the manifest a snapshot becomes.
//!
//! Everything here is pure: no I/O, no store. The worktree builder applies these rules while
//! it writes packs; import and pull use the same constants to read them back.

use std::collections::BTreeMap;

use crate::digest::Digest;
use crate::oci::{
    ARTIFACT_TYPE_SNAPSHOT, Descriptor, ImageManifest, MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST,
    RawManifest,
};

/// Snapshots with at most this many entries (files, directories, symlinks) use direct mode.
pub const DIRECT_MAX_ENTRIES: usize = 64;
/// Weight a tar header adds to every member.
pub const HEADER_WEIGHT: u64 = crate::pack::HEADER_WEIGHT;
/// Smallest group target for file groups.
pub const MIN_GROUP_TARGET: u64 = 8 << 20;
/// Smallest group target for tree groups.
pub const MIN_TREE_TARGET: u64 = 1 << 20;
/// A group ends at the latest when its weight reaches this multiple of the target.
pub const MAX_GROUP_FACTOR: u64 = 4;

/// The weight of a member with `size` content bytes.
#[must_use]
pub fn weight(size: u64) -> u64 {
    crate::pack::weight(size)
}

/// `T = max(8 MiB, 2^⌈log2(W/128)⌉)` for a snapshot of total weight `W`.
#[must_use]
pub fn group_target(total_weight: u64) -> u64 {
    (total_weight / 128)
        .max(1)
        .checked_next_power_of_two()
        .unwrap_or(1 << 63)
        .max(MIN_GROUP_TARGET)
}

/// `T_tree = max(1 MiB, 2^⌈log2(W_tree/32)⌉)`.
#[must_use]
pub fn tree_target(total_weight: u64) -> u64 {
    (total_weight / 32)
        .max(1)
        .checked_next_power_of_two()
        .unwrap_or(1 << 63)
        .max(MIN_TREE_TARGET)
}

/// Files of at least this size get a pack of their own: `T/2`.
#[must_use]
pub fn large_file_threshold(target: u64) -> u64 {
    target / 2
}

/// The content-defined cut rule: does a member end its group? (Its [`crate::pack::cut_value`]
/// is below `weight × ⌊2^64 / target⌋`.)
#[must_use]
pub fn is_cut(header: &[u8], content: Option<&Digest>, member_weight: u64, target: u64) -> bool {
    crate::pack::cuts(
        crate::pack::cut_value(header, content),
        member_weight,
        target,
    )
}

/// Tracks the current group's weight and decides where groups end.
#[derive(Clone, Debug)]
pub struct Grouper {
    target: u64,
    current: u64,
}

impl Grouper {
    /// A grouper for `target`.
    #[must_use]
    pub fn new(target: u64) -> Self {
        Grouper { target, current: 0 }
    }

    /// The target.
    #[must_use]
    pub fn target(&self) -> u64 {
        self.target
    }

    /// Adds a member; returns whether the group ends after it.
    pub fn push(&mut self, header: &[u8], content: Option<&Digest>, member_weight: u64) -> bool {
        self.push_value(crate::pack::cut_value(header, content), member_weight)
    }

    /// Adds a member whose [`crate::pack::cut_value`] is known; returns whether the group ends
    /// after it.
    pub fn push_value(&mut self, cut_value: u64, member_weight: u64) -> bool {
        self.current = self.current.saturating_add(member_weight);
        let cut = crate::pack::cuts(cut_value, member_weight, self.target)
            || self.current >= self.target.saturating_mul(MAX_GROUP_FACTOR);
        if cut {
            self.current = 0;
        }
        cut
    }

    /// Starts a new group (after a forced cut, e.g. around a large file).
    pub fn reset(&mut self) {
        self.current = 0;
    }
}

/// The manifest of a snapshot.
#[must_use]
pub fn snapshot_manifest(
    config: Descriptor,
    layers: Vec<Descriptor>,
    annotations: BTreeMap<String, String>,
) -> RawManifest {
    debug_assert_eq!(config.media_type, MEDIA_TYPE_CONFIG);
    RawManifest::encode(ImageManifest {
        schema_version: 2,
        media_type: Some(MEDIA_TYPE_MANIFEST.to_owned()),
        artifact_type: Some(ARTIFACT_TYPE_SNAPSHOT.to_owned()),
        config,
        layers,
        subject: None,
        annotations,
    })
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn targets_scale_in_powers_of_two_with_a_floor() {
        assert_eq!(group_target(0), 8 << 20);
        assert_eq!(
            group_target(667_000_000),
            8 << 20,
            "docs corpus: 5.2 MB/128 rounds up to 8 MiB"
        );
        assert_eq!(group_target(2 << 30), 16 << 20);
        assert_eq!(group_target(100 << 30), 1 << 30);
        assert_eq!(tree_target(6_000_000), 1 << 20);
        assert_eq!(large_file_threshold(8 << 20), 4 << 20);
    }

    #[test]
    fn cut_probability_follows_weight_over_target() {
        let target = 1 << 20;
        let n = 20_000u32;
        let cuts = (0..n)
            .filter(|i| is_cut(&i.to_le_bytes(), None, 16 << 10, target))
            .count();
        // Expected n * 16 KiB / 1 MiB = 312.5.
        assert!((250..380).contains(&cuts), "{cuts} cuts");
        assert!(
            is_cut(b"x", None, target, target),
            "a member as heavy as the target always cuts"
        );
    }

    #[test]
    fn grouper_forces_a_cut_at_four_targets() {
        let mut g = Grouper::new(1 << 30);
        let mut forced = false;
        for i in 0..5u32 {
            forced |= g.push(&i.to_le_bytes(), None, 1 << 30);
        }
        assert!(forced);
    }

    #[test]
    fn a_million_files_make_a_few_hundred_layers_at_most() {
        // Simulate the grouping of 1,000,000 members shaped like the docs corpus (most under
        // 16 KiB, one in a thousand of several MiB) without touching the disk.
        let sizes: Vec<u64> = (0..1_000_000u64)
            .map(|i| match i % 1000 {
                0 => 3 << 20,
                n => (n * 37 + i % 7919) % (16 << 10),
            })
            .collect();
        let total: u64 = sizes.iter().map(|s| weight(*s)).sum();
        let target = group_target(total);
        let large = large_file_threshold(target);
        let mut g = Grouper::new(target);
        let mut layers = 0u64;
        let mut open = false;
        for (i, size) in sizes.iter().enumerate() {
            if *size >= large {
                layers += u64::from(open) + 1;
                open = false;
                g.reset();
                continue;
            }
            open = true;
            let header = (i as u64).to_le_bytes();
            if g.push(&header, None, weight(*size)) {
                layers += 1;
                open = false;
            }
        }
        layers += u64::from(open);
        // A descriptor is under 200 bytes: far below the 4 MiB registries accept.
        assert!(
            layers <= 400,
            "{layers} layers for {total} bytes with T = {target}"
        );
        assert!(layers >= 50, "groups are not degenerate: {layers}");
    }

    #[test]
    fn a_change_moves_only_local_cuts() {
        // Cuts depend only on each member: changing member 500 leaves all other decisions alone.
        let target = 64 << 10;
        let decide = |i: u32, salt: u8| {
            is_cut(
                &[&i.to_le_bytes()[..], &[salt]].concat(),
                None,
                4096,
                target,
            )
        };
        let before: Vec<bool> = (0..1000).map(|i| decide(i, 0)).collect();
        let after: Vec<bool> = (0..1000).map(|i| decide(i, u8::from(i == 500))).collect();
        let differing = before.iter().zip(&after).filter(|(a, b)| a != b).count();
        assert!(differing <= 1);
    }
}
