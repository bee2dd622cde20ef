//! Revisions: how a user names a snapshot (`SNAP`).
//!
//! Grammar: `BASE` followed by any number of `~N` or `^` (first parent, N times), where
//! `BASE` is a ref name (`latest`, `heads/x`, `tags/v1`), a full digest (`sha256:<hex>` or
//! 64 hex digits), or a unique prefix of at least 7 hex digits of a snapshot's digest
//! (optionally after `sha256:`). Ref names win over digest prefixes, as in git.
//!
//! Read-only: resolution never writes.

use crate::digest::Digest;
use crate::snapshot::{self, Snapshot};
use crate::store::{Store, refs};

/// Shortest digest prefix accepted.
pub const MIN_PREFIX: usize = 7;

/// Resolves `spec` to a snapshot id.
///
/// # Errors
/// [`Error::Unknown`], [`Error::Ambiguous`], [`Error::NoParent`], or a store error.
pub fn resolve(store: &Store, spec: &str) -> Result<Digest, Error> {
    let (base, steps) = split_steps(spec)?;
    let mut id = resolve_base(store, base, spec)?;
    for n in 0..steps {
        let snap = Snapshot::load(store, &id)?;
        id = snap.parent().ok_or_else(|| Error::NoParent {
            spec: spec.to_owned(),
            at: id,
            steps: n,
        })?;
    }
    Ok(id)
}

/// Splits `base~2^~3` into `base` and the total number of first-parent steps.
fn split_steps(spec: &str) -> Result<(&str, u64), Error> {
    let cut = spec.find(['~', '^']).unwrap_or(spec.len());
    let (base, mut rest) = spec.split_at(cut);
    let mut steps = 0u64;
    while !rest.is_empty() {
        let (op, tail) = rest.split_at(1);
        let digits = tail.bytes().take_while(u8::is_ascii_digit).count();
        let n = match (op, digits) {
            ("^" | "~", 0) => 1,
            ("~", _) => tail[..digits].parse::<u64>().map_err(|_| Error::Syntax {
                spec: spec.to_owned(),
            })?,
            _ => {
                return Err(Error::Syntax {
                    spec: spec.to_owned(),
                });
            }
        };
        steps = steps.saturating_add(n);
        rest = &tail[digits..];
        if !rest.is_empty() && !rest.starts_with(['~', '^']) {
            return Err(Error::Syntax {
                spec: spec.to_owned(),
            });
        }
    }
    if base.is_empty() {
        return Err(Error::Syntax {
            spec: spec.to_owned(),
        });
    }
    Ok((base, steps))
}

fn resolve_base(store: &Store, base: &str, spec: &str) -> Result<Digest, Error> {
    // Refs first (a name that is not a valid ref name simply is not a ref).
    match store.refs.find(base) {
        Ok(Some((_, d))) => return Ok(d),
        Ok(None) | Err(refs::Error::InvalidName { .. }) => {}
        Err(e) => return Err(e.into()),
    }
    if let Ok(d) = base.parse::<Digest>() {
        return if store.objects.contains(&d) {
            Ok(d)
        } else {
            Err(Error::Unknown {
                spec: spec.to_owned(),
            })
        };
    }
    let hex = base.strip_prefix("sha256:").unwrap_or(base);
    if hex.len() == 64
        && let Ok(d) = Digest::from_hex(hex)
    {
        return if store.objects.contains(&d) {
            Ok(d)
        } else {
            Err(Error::Unknown {
                spec: spec.to_owned(),
            })
        };
    }
    let is_hex = !hex.is_empty()
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if is_hex && hex.len() < MIN_PREFIX {
        return Err(Error::TooShort {
            spec: spec.to_owned(),
        });
    }
    if is_hex {
        let mut snapshots = Vec::new();
        for d in store
            .objects
            .loose_with_prefix(hex)
            .map_err(snapshot::Error::from)?
        {
            if Snapshot::load(store, &d).is_ok() {
                snapshots.push(d);
            }
        }
        return match snapshots.len() {
            0 => Err(Error::Unknown {
                spec: spec.to_owned(),
            }),
            1 => Ok(snapshots[0]),
            _ => Err(Error::Ambiguous {
                prefix: hex.to_owned(),
                candidates: snapshots,
            }),
        };
    }
    Err(Error::Unknown {
        spec: spec.to_owned(),
    })
}

/// Revision errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a revision.
    #[error(
        "invalid revision `{spec}`: expected a ref, a digest or prefix, optionally followed by ~N or ^"
    )]
    Syntax {
        /// The input.
        spec: String,
    },
    /// Names nothing in the store.
    #[error("unknown revision `{spec}`: no ref or snapshot by that name")]
    Unknown {
        /// The input.
        spec: String,
    },
    /// A digest prefix shorter than 7 hex digits.
    #[error("revision `{spec}` is too short: give at least {MIN_PREFIX} hex digits of a digest")]
    TooShort {
        /// The input.
        spec: String,
    },
    /// A prefix matching several snapshots.
    #[error("digest prefix `{prefix}` is ambiguous: it matches {} snapshots", candidates.len())]
    Ambiguous {
        /// The prefix.
        prefix: String,
        /// The matching snapshots.
        candidates: Vec<Digest>,
    },
    /// `~N` went past the first snapshot.
    #[error(
        "revision `{spec}` goes past the first snapshot: {at} has no parent (after {steps} steps)"
    )]
    NoParent {
        /// The input.
        spec: String,
        /// The snapshot without parent.
        at: Digest,
        /// Steps taken.
        steps: u64,
    },
    /// Reading refs failed.
    #[error(transparent)]
    Refs(#[from] refs::Error),
    /// Reading a snapshot failed.
    #[error(transparent)]
    Snapshot(#[from] snapshot::Error),
}

impl Error {
    /// The broad class of this error (exit codes, hints, retries).
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::Unknown { .. } => K::NotFound,
            Error::Snapshot(s) => s.kind(),
            Error::Refs(crate::store::refs::Error::Corrupt { .. }) => K::Corrupt,
            _ => K::InvalidInput,
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn steps_are_counted() -> Result<(), Error> {
        assert_eq!(split_steps("latest")?, ("latest", 0));
        assert_eq!(split_steps("latest~")?, ("latest", 1));
        assert_eq!(split_steps("latest~3^^")?, ("latest", 5));
        assert_eq!(split_steps("abc1234~10")?, ("abc1234", 10));
        for bad in ["~1", "x~a", "x^2", "x~1y"] {
            assert!(split_steps(bad).is_err(), "{bad}");
        }
        Ok(())
    }
}
