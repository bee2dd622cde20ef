//! `snap status`: each ref's snapshot against the work tree's git HEAD — fresh, stale (how
//! many commits behind), dirty, or not from git. The registry's side is
//! [`crate::ops::remote::status`].

use std::path::PathBuf;

use crate::digest::Digest;
use crate::ops::Error;
use crate::provenance::{self, Freshness};
use crate::snapshot::Snapshot;
use crate::store::{RefKind, Store};

/// What `snap status` says (`--json`).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Status {
    /// The store directory.
    pub store: PathBuf,
    /// Every ref, in name order.
    pub refs: Vec<RefStatus>,
}

/// One ref's freshness.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct RefStatus {
    /// The ref's name (`heads/latest`, `tags/v1`).
    pub name: String,
    /// Head or tag.
    pub kind: RefKind,
    /// The snapshot it names.
    pub digest: Digest,
    /// How its git provenance compares with the work tree now.
    pub freshness: Freshness,
}

/// Every ref's snapshot compared with the work tree the store sits in.
///
/// # Errors
/// Refs or snapshots that cannot be read; a git repository that cannot be.
pub fn status(store: &Store) -> Result<Status, Error> {
    let mut refs = Vec::new();
    for (name, digest) in store.refs.list()? {
        let snap = Snapshot::load(store, &digest)?;
        let freshness = provenance::freshness(store.root(), &snap.config.provenance)?;
        refs.push(RefStatus {
            name: name.to_string(),
            kind: name.kind(),
            digest,
            freshness,
        });
    }
    Ok(Status {
        store: store.dir().to_owned(),
        refs,
    })
}
