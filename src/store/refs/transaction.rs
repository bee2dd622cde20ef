//! Ref edits and transactions (store format §6.2): every ref of one operation locked in name
//! order, each outcome decided from the value read under its lock, reflog lines appended,
//! then every ref moved — or none.

use super::{Error, RefName, Refs};
use crate::digest::Digest;
use crate::fs;
use crate::lock::LockFile;
use crate::store::reflog::ReflogEntry;
use crate::timestamp::Timestamp;

/// The compare-and-swap precondition of an update.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Whatever the ref holds.
    Any,
    /// The ref must not exist.
    Absent,
    /// The ref must hold this value.
    Is(Digest),
}

impl Expected {
    pub(super) fn matches(self, actual: Option<Digest>) -> bool {
        match self {
            Expected::Any => true,
            Expected::Absent => actual.is_none(),
            Expected::Is(d) => actual == Some(d),
        }
    }
}

/// A ref change.
#[derive(Clone, Debug)]
pub struct RefEdit {
    /// The ref.
    pub name: RefName,
    /// What it must hold now.
    pub expected: Expected,
    /// What it will hold; `None` deletes it.
    pub new: Option<Digest>,
    /// The reflog message.
    pub message: String,
}

/// Refs locked together by [`Refs::transaction`].
pub struct Transaction<'a> {
    pub(super) refs: &'a Refs,
    /// Sorted by name.
    pub(super) entries: Vec<Locked>,
}

pub(super) struct Locked {
    pub(super) name: RefName,
    pub(super) lock: LockFile,
    /// The value read under the lock.
    pub(super) actual: Option<Digest>,
    /// The value to write (`Some(None)`: delete) and the reflog message.
    pub(super) staged: Option<(Option<Digest>, String)>,
}

impl Transaction<'_> {
    pub(super) fn entry(&mut self, name: &RefName) -> Result<&mut Locked, Error> {
        self.entries
            .iter_mut()
            .find(|e| e.name == *name)
            .ok_or_else(|| Error::NotInTransaction { name: name.clone() })
    }

    /// What `name` holds, read under its lock; `None` for a ref not in the transaction or
    /// absent.
    #[must_use]
    pub fn actual(&self, name: &RefName) -> Option<Digest> {
        self.entries
            .iter()
            .find(|e| e.name == *name)
            .and_then(|e| e.actual)
    }

    /// Stages `new` (`None`: delete) for `name`, with its reflog message; nothing is written
    /// before [`Transaction::commit`]. A ref that is set must have a name refs can be created
    /// with and no ref in its way (store format §6.1).
    ///
    /// # Errors
    /// [`Error::NotInTransaction`], name errors, [`Error::InvalidMessage`].
    pub fn stage(
        &mut self,
        name: &RefName,
        new: Option<Digest>,
        message: &str,
    ) -> Result<(), Error> {
        check_message(message)?;
        if new.is_some() {
            RefName::new(name.kind, &name.name)?;
            self.refs.check_available(name)?;
        }
        self.entry(name)?.staged = Some((new, message.to_owned()));
        Ok(())
    }

    /// Writes every staged value: first checks that every new value's object is stored
    /// (objects before refs), then appends each reflog line, then moves each ref (reflog
    /// before ref: a log line without a ref move is recoverable, the reverse is not). Refs
    /// without a staged value are only unlocked.
    ///
    /// # Errors
    /// [`Error::MissingTarget`] (nothing written), [`Error::Io`], [`Error::Lock`].
    pub fn commit(self, target_exists: impl Fn(&Digest) -> bool) -> Result<(), Error> {
        for e in &self.entries {
            if let Some((Some(new), _)) = &e.staged
                && !target_exists(new)
            {
                return Err(Error::MissingTarget {
                    name: e.name.clone(),
                    target: *new,
                });
            }
        }
        let now = Timestamp::now().0;
        let mut staged = Vec::new();
        for mut e in self.entries {
            let Some((new, message)) = e.staged.take() else {
                continue; // unlocked when dropped
            };
            if let Some(new) = new {
                e.lock.write_content(format!("{new}\n").as_bytes())?;
            }
            let line = ReflogEntry {
                old: e.actual,
                new,
                time: now,
                message,
            }
            .encode()
            .map_err(|reason| Error::InvalidMessage { reason })?;
            let log_path = self.refs.log_path(&e.name);
            fs::append_line(&log_path, line.as_bytes()).map_err(|source| {
                self.refs
                    .io_or_conflict("appending to", &e.name, &log_path, source)
            })?;
            staged.push((e.lock, new));
        }
        fs::crash_point("ref-logged");
        for (lock, new) in staged {
            match new {
                Some(_) => lock.commit()?,
                None => lock.commit_delete()?,
            }
        }
        Ok(())
    }
}

/// Refuses a reflog message that cannot be written on one line.
pub(super) fn check_message(message: &str) -> Result<(), Error> {
    ReflogEntry {
        old: None,
        new: None,
        time: 0,
        message: message.to_owned(),
    }
    .encode()
    .map(|_| ())
    .map_err(|reason| Error::InvalidMessage { reason })
}
