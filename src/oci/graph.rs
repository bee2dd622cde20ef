//! The OCI graph below some roots: manifests and indexes (the nodes, told apart by
//! [`Node::from_bytes`]), reached through index entries, each visited once, within bounds.
//! push, pull (not yet: it walks the registry with its own queue), gc and fsck walk through
//! [`walk`]; where a node's bytes come from, and what a malformed node means, is the caller's.

use std::collections::BTreeSet;

use crate::digest::Digest;
use crate::oci::{Descriptor, Node};

/// Deepest nesting of indexes a walk follows (a root is at depth 0).
pub const MAX_DEPTH: usize = 8;
/// Most manifests and indexes one walk visits.
pub const MAX_NODES: usize = 1 << 16;

/// A node the walk reached, and how deep below its root.
#[derive(Debug)]
pub struct Reached {
    /// The manifest or index.
    pub node: Node,
    /// 0 for a root, 1 for an entry of a root index, …
    pub depth: usize,
}

/// Why a walk stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Indexes nest deeper than [`MAX_DEPTH`].
    #[error("image indexes nest deeper than {limit} levels (at {digest})")]
    TooDeep {
        /// The node past the limit.
        digest: Digest,
        /// The limit.
        limit: usize,
    },
    /// More nodes than [`MAX_NODES`].
    #[error("more than {limit} manifests and indexes")]
    TooMany {
        /// The limit.
        limit: usize,
    },
    /// Bytes that are neither a manifest nor an index.
    #[error(transparent)]
    Malformed(#[from] crate::oci::Error),
}

/// Walks every node below `roots` that `seen` does not hold yet (and adds them to it),
/// depth first, and returns them **children before parents**: the order in which a sink
/// (a registry, a layout) must receive them so that nothing ever names what it lacks.
///
/// `read(digest, descriptor)` gives a node's bytes — `None` when it is absent and the caller
/// accepts that — with the descriptor that named it (`None` for a root). `malformed(digest,
/// error)` decides about bytes that are neither a manifest nor an index: return the error to
/// stop, or `Ok` to skip the node (gc), having noted it (fsck).
///
/// # Errors
/// [`Error::TooDeep`], [`Error::TooMany`] (converted into `E`), or what `read` and
/// `malformed` return.
pub fn walk<E: From<Error>>(
    roots: impl IntoIterator<Item = Digest>,
    seen: &mut BTreeSet<Digest>,
    read: &mut dyn FnMut(&Digest, Option<&Descriptor>) -> Result<Option<Vec<u8>>, E>,
    malformed: &mut dyn FnMut(&Digest, crate::oci::Error) -> Result<(), E>,
) -> Result<Vec<Reached>, E> {
    let mut w = Walker {
        seen,
        read,
        malformed,
        out: Vec::new(),
        visited: 0,
    };
    for root in roots {
        w.visit(root, None, 0)?;
    }
    Ok(w.out)
}

struct Walker<'a, E> {
    seen: &'a mut BTreeSet<Digest>,
    read: &'a mut dyn FnMut(&Digest, Option<&Descriptor>) -> Result<Option<Vec<u8>>, E>,
    malformed: &'a mut dyn FnMut(&Digest, crate::oci::Error) -> Result<(), E>,
    out: Vec<Reached>,
    /// Nodes this walk visited: the bound is per walk, not per `seen` (a caller walks many
    /// roots, every snapshot of a store, with one `seen`).
    visited: usize,
}

impl<E: From<Error>> Walker<'_, E> {
    fn visit(
        &mut self,
        digest: Digest,
        described: Option<&Descriptor>,
        depth: usize,
    ) -> Result<(), E> {
        if !self.seen.insert(digest) {
            return Ok(());
        }
        self.visited += 1;
        if self.visited > MAX_NODES {
            return Err(Error::TooMany { limit: MAX_NODES }.into());
        }
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep {
                digest,
                limit: MAX_DEPTH,
            }
            .into());
        }
        let Some(bytes) = (self.read)(&digest, described)? else {
            return Ok(());
        };
        let node = match Node::from_bytes(bytes) {
            Ok(n) => n,
            Err(e) => return (self.malformed)(&digest, e),
        };
        if let Node::Index(index) = &node {
            for entry in &index.index().manifests {
                self.visit(entry.digest, Some(entry), depth + 1)?;
            }
        }
        self.out.push(Reached { node, depth });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(layer: &[u8]) -> Vec<u8> {
        format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"a","digest":"{}","size":2}},"layers":[{{"mediaType":"b","digest":"{}","size":{}}}]}}"#,
            Digest::of(b"{}"),
            Digest::of(layer),
            layer.len()
        )
        .into_bytes()
    }

    fn index(children: &[&[u8]]) -> Vec<u8> {
        let entries: Vec<String> = children
            .iter()
            .map(|c| {
                format!(
                    r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{}}}"#,
                    Digest::of(c),
                    c.len()
                )
            })
            .collect();
        format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            entries.join(",")
        )
        .into_bytes()
    }

    fn walk_all(blobs: &[Vec<u8>], root: &[u8]) -> Result<Vec<(Digest, usize)>, Error> {
        let by_digest: std::collections::HashMap<Digest, Vec<u8>> =
            blobs.iter().map(|b| (Digest::of(b), b.clone())).collect();
        let mut seen = BTreeSet::new();
        let reached = walk::<Error>(
            [Digest::of(root)],
            &mut seen,
            &mut |d, _| Ok(by_digest.get(d).cloned()),
            &mut |_, e| Err(e.into()),
        )?;
        Ok(reached.iter().map(|r| (r.node.digest(), r.depth)).collect())
    }

    #[test]
    fn children_come_before_parents_and_shared_ones_once() -> Result<(), Error> {
        let (m1, m2) = (manifest(b"1"), manifest(b"2"));
        let inner = index(&[&m1]);
        // The root lists m1 before the index that lists it too.
        let root = index(&[&m1, &inner, &m2]);
        let order = walk_all(
            &[m1.clone(), m2.clone(), inner.clone(), root.clone()],
            &root,
        )?;
        let pos = |b: &[u8]| order.iter().position(|(d, _)| *d == Digest::of(b));
        assert_eq!(order.len(), 4);
        assert!(pos(&m1) < pos(&inner) && pos(&inner) < pos(&root) && pos(&m2) < pos(&root));
        Ok(())
    }

    #[test]
    fn nesting_past_the_bound_is_an_error_and_absent_nodes_are_skipped() {
        let mut blobs = vec![manifest(b"x")];
        for _ in 0..=MAX_DEPTH {
            let last = blobs.last().cloned().unwrap_or_default();
            blobs.push(index(&[&last]));
        }
        let root = blobs.last().cloned().unwrap_or_default();
        assert!(matches!(
            walk_all(&blobs, &root),
            Err(Error::TooDeep { .. })
        ));
        let shallow = index(&[&manifest(b"absent")]);
        assert_eq!(
            walk_all(std::slice::from_ref(&shallow), &shallow)
                .map(|v| v.len())
                .ok(),
            Some(1)
        );
    }
}
