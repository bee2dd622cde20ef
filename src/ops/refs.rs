//! `snap tag` and `snap ref delete`: ref changes that are not commits.

use crate::digest::Digest;
use crate::ops::Error;
use crate::rev;
use crate::store::{Expected, RefEdit, RefName, Store, refs};

/// What `snap tag` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagOutcome {
    /// The tag.
    pub name: RefName,
    /// The snapshot it names now.
    pub target: Digest,
    /// What it named before (equal to `target` when nothing moved).
    pub previous: Option<Digest>,
}

/// What `snap ref delete` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The ref deleted.
    pub name: RefName,
    /// What it named.
    pub was: Digest,
}

/// A head name given by a user (`--ref NAME`), parsed once: the name a commit moves.
///
/// # Errors
/// [`Error::Refs`]: not a valid ref name, too long, or starting with `heads/` or `tags/`.
pub fn head(name: &str) -> Result<RefName, Error> {
    Ok(RefName::head(name)?)
}

/// Points tag `name` at `rev`. An existing tag moves only with `force`.
///
/// # Errors
/// `Conflict` ([`Error::TagExists`]) if the tag exists and `force` is off; `NotFound` for an
/// unknown revision; `InvalidInput` for a bad name.
pub fn tag(store: &Store, name: &str, rev: &str, force: bool) -> Result<TagOutcome, Error> {
    let name = RefName::tag(name)?;
    let target = rev::resolve(store, rev)?;
    let current = store.refs.get(&name)?;
    let done = |name| TagOutcome {
        name,
        target,
        previous: current,
    };
    if current == Some(target) {
        return Ok(done(name));
    }
    if let (Some(existing), false) = (current, force) {
        return Err(Error::TagExists {
            name,
            target: existing,
        });
    }
    let edit = RefEdit {
        name: name.clone(),
        expected: current.map_or(Expected::Absent, Expected::Is),
        new: Some(target),
        message: format!("tag: {rev}"),
    };
    match store.update_ref(&edit) {
        Ok(()) => Ok(done(name)),
        Err(refs::Error::OutOfDate {
            actual: Some(existing),
            ..
        }) if !force => Err(Error::TagExists {
            name,
            target: existing,
        }),
        Err(e) => Err(e.into()),
    }
}

/// Deletes ref `name` (`heads/x`, `tags/x`, or a bare name), logging the deletion.
///
/// # Errors
/// `NotFound` if no such ref; `InvalidInput` if ambiguous; `Conflict` if it moved meanwhile.
pub fn delete_ref(store: &Store, name: &str) -> Result<DeleteOutcome, Error> {
    let (name, current) = store.refs.find(name)?.ok_or_else(|| Error::RefNotFound {
        name: name.to_owned(),
    })?;
    let edit = RefEdit {
        name: name.clone(),
        expected: Expected::Is(current),
        new: None,
        message: "delete".into(),
    };
    store.update_ref(&edit)?;
    Ok(DeleteOutcome { name, was: current })
}

/// What happened to one ref.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum RefUpdate {
    /// Created.
    Inserted,
    /// Already pointed there.
    Unchanged,
    /// Moved (with `--force`).
    Replaced,
    /// Moved forward: the old value is an ancestor of the new one (`snap pull`).
    #[serde(rename = "fast_forward")]
    FastForward,
    /// Points elsewhere; left alone (give `--force` to move it).
    Conflicted,
}

/// One ref's outcome.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct ImportedRef {
    /// The head's name.
    pub name: String,
    /// The imported manifest or index.
    pub digest: Digest,
    /// What the ref held before.
    pub previous: Option<Digest>,
    /// What happened.
    pub update: RefUpdate,
}
