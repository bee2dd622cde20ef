//! Reflog lines (store format §6.3): `<old|-> <new|-> <unix-seconds> +0000\t<message>\n`.
//!
//! Lines are appended with one `write` each, under the ref's lock, before the ref moves.
//! This module only encodes, decodes and appends; ordering is the caller's (refs.rs).

use std::path::Path;

use crate::digest::Digest;
use crate::timestamp::Timestamp;

/// What is wrong with a reflog line, or with a message that cannot be one.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LineError {
    /// A message with a line break would forge a line of its own.
    #[error("reflog messages cannot contain newlines")]
    NewlineInMessage,
    /// No tab separates the values from the message.
    #[error("missing tab before the message")]
    MissingTab,
    /// A field is missing.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A value is not a digest (nor `-`).
    #[error("{what}: {reason}")]
    BadDigest {
        /// Which value.
        what: &'static str,
        /// Why (shown in the line, not chained: the line is the error).
        reason: crate::digest::Error,
    },
    /// The time is not a number of seconds.
    #[error("missing or invalid time")]
    BadTime,
    /// The time zone is not `+hhmm` or `-hhmm`, or something follows it.
    #[error("invalid time zone `{0}`")]
    BadZone(String),
    /// The file does not end with a newline: its last write was cut.
    #[error("last line is incomplete (no newline)")]
    Incomplete,
}

/// One ref change.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReflogEntry {
    /// The value before (`None`: the ref did not exist).
    pub old: Option<Digest>,
    /// The value after (`None`: the ref was deleted).
    pub new: Option<Digest>,
    /// When, in seconds since the epoch (wall clock; the reflog is local history).
    pub time: i64,
    /// What happened, e.g. `commit: nightly`.
    pub message: String,
}

impl ReflogEntry {
    /// The line, with its newline.
    ///
    /// # Errors
    /// [`LineError::NewlineInMessage`].
    pub fn encode(&self) -> Result<String, LineError> {
        if self.message.contains(['\n', '\r']) {
            return Err(LineError::NewlineInMessage);
        }
        let d = |d: &Option<Digest>| d.map_or_else(|| "-".to_owned(), |d| d.to_string());
        Ok(format!(
            "{} {} {} +0000\t{}\n",
            d(&self.old),
            d(&self.new),
            self.time,
            self.message
        ))
    }

    /// Parses one line (without its newline).
    ///
    /// # Errors
    /// A [`LineError`] naming what is malformed.
    pub fn parse(line: &str) -> Result<Self, LineError> {
        let (head, message) = line.split_once('\t').ok_or(LineError::MissingTab)?;
        let mut parts = head.split(' ');
        let mut digest = |what: &'static str| -> Result<Option<Digest>, LineError> {
            match parts.next() {
                Some("-") => Ok(None),
                Some(s) => s
                    .parse()
                    .map(Some)
                    .map_err(|reason| LineError::BadDigest { what, reason }),
                None => Err(LineError::Missing(what)),
            }
        };
        let old = digest("old value")?;
        let new = digest("new value")?;
        let time = parts
            .next()
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or(LineError::BadTime)?;
        let tz = parts.next().ok_or(LineError::Missing("time zone"))?;
        if tz.len() != 5 || !(tz.starts_with('+') || tz.starts_with('-')) || parts.next().is_some()
        {
            return Err(LineError::BadZone(tz.to_owned()));
        }
        Ok(ReflogEntry {
            old,
            new,
            time,
            message: message.to_owned(),
        })
    }

    /// The time as a [`Timestamp`].
    #[must_use]
    pub fn timestamp(&self) -> Timestamp {
        Timestamp(self.time)
    }
}

/// Reads a reflog, oldest line first. A missing file is an empty log. Malformed lines are
/// returned as errors with their 1-based line numbers, after the good ones.
///
/// # Errors
/// An I/O error reading the file.
pub fn read(path: &Path) -> std::io::Result<(Vec<ReflogEntry>, Vec<(usize, LineError)>)> {
    let text = match std::fs::read(path) {
        Ok(b) => b,
        // No log by that name: a directory there holds logs of longer names (`a/b` for `a`),
        // a file above it is the log of a shorter one (`a` for `a/b`).
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound
                    | std::io::ErrorKind::NotADirectory
                    | std::io::ErrorKind::IsADirectory
            ) =>
        {
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let text = String::from_utf8_lossy(&text);
    let mut entries = Vec::new();
    let mut bad = Vec::new();
    let mut lines = text.split('\n').peekable();
    let mut n = 0;
    while let Some(line) = lines.next() {
        n += 1;
        if line.is_empty() && lines.peek().is_none() {
            break;
        }
        match ReflogEntry::parse(line) {
            Ok(e) => entries.push(e),
            Err(reason) => bad.push((n, reason)),
        }
    }
    if !text.is_empty() && !text.ends_with('\n') {
        bad.push((n, LineError::Incomplete));
    }
    Ok((entries, bad))
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn encode_then_parse_round_trips() -> Result<(), LineError> {
        let e = ReflogEntry {
            old: None,
            new: Some(Digest::of(b"x")),
            time: 1_700_000_000,
            message: "commit: first\tof many".into(),
        };
        let line = e.encode()?;
        assert!(line.starts_with("- sha256:"));
        assert_eq!(ReflogEntry::parse(line.trim_end_matches('\n'))?, e);
        Ok(())
    }

    #[test]
    fn newlines_in_messages_are_refused() {
        let e = ReflogEntry {
            old: None,
            new: None,
            time: 0,
            message: "a\nb".into(),
        };
        assert!(e.encode().is_err());
    }

    #[test]
    fn malformed_lines_are_reported_with_numbers() -> std::io::Result<()> {
        let dir = tempfile::tempdir()?;
        let p = dir.path().join("log");
        let good = ReflogEntry {
            old: None,
            new: Some(Digest::of(b"x")),
            time: 5,
            message: "m".into(),
        }
        .encode()
        .map_err(std::io::Error::other)?;
        std::fs::write(&p, format!("{good}garbage\n{good}half"))?;
        let (entries, bad) = read(&p)?;
        assert_eq!(entries.len(), 2);
        assert_eq!(bad.iter().map(|b| b.0).collect::<Vec<_>>(), [2, 4, 4]);
        Ok(())
    }
}
