//! What the CLI shows, and where: data on stdout, everything else on stderr.
//!
//! The [`Printer`] is decided once from the global flags: `-q` silences status lines, `-qq`
//! everything but errors, `-v` adds detail lines, `--json` makes stdout machine-readable, colour follows `--color`,
//! `NO_COLOR` and whether stderr is a terminal. Status lines look like cargo's: a
//! right-aligned verb, then the object.

use std::io::{self, IsTerminal, Write};

/// When to colour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Decides what is shown.
#[derive(Clone, Debug)]
pub struct Printer {
    quiet: u8,
    verbose: u8,
    json: bool,
    color: bool,
    stderr_tty: bool,
}

// Output methods take `&self` even where today's settings do not affect them, so every
// write goes through the one place that decides.
#[allow(clippy::unused_self)]
impl Printer {
    pub fn new(quiet: u8, verbose: u8, json: bool, color: ColorChoice) -> Self {
        let stderr_tty = io::stderr().is_terminal();
        let color = match color {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => {
                stderr_tty && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            }
        };
        Printer {
            quiet,
            verbose,
            json,
            color,
            stderr_tty,
        }
    }

    /// Whether to draw progress bars: on a terminal, without `--json` or `-q`.
    pub fn progress(&self) -> bool {
        self.stderr_tty && !self.json && self.quiet == 0
    }

    /// Whether `--json` was given.
    pub fn json(&self) -> bool {
        self.json
    }

    /// A cargo-style status line on stderr: `   Committed sha256:… (latest)`.
    pub fn status(&self, verb: &str, message: impl std::fmt::Display) {
        if self.quiet > 0 {
            return;
        }
        let verb = if self.color {
            format!("\x1b[1;32m{verb:>12}\x1b[0m")
        } else {
            format!("{verb:>12}")
        };
        let _ = writeln!(io::stderr().lock(), "{verb} {message}");
    }

    /// A status line shown only with `-v`: what a command did in detail.
    pub fn detail(&self, verb: &str, message: impl std::fmt::Display) {
        if self.verbose > 0 && self.quiet == 0 {
            self.status(verb, message);
        }
    }

    /// An error on stderr (always shown).
    pub fn error(&self, message: impl std::fmt::Display) {
        let label = if self.color {
            "\x1b[1;31merror\x1b[0m"
        } else {
            "error"
        };
        let _ = writeln!(io::stderr().lock(), "{label}: {message}");
    }

    /// A continuation line of an error (`  caused by: …`, `hint: …`).
    pub fn error_detail(&self, label: &str, message: impl std::fmt::Display) {
        let _ = writeln!(io::stderr().lock(), "{label}: {message}");
    }

    /// A line of data on stdout.
    pub fn line(&self, text: impl std::fmt::Display) -> io::Result<()> {
        writeln!(io::stdout().lock(), "{text}")
    }

    /// One JSON document (or one JSON Lines record) on stdout.
    pub fn json_value<T: serde::Serialize>(&self, value: &T) -> io::Result<()> {
        let mut out = io::stdout().lock();
        serde_json::to_writer(&mut out, value).map_err(io::Error::other)?;
        out.write_all(b"\n")
    }

    /// One JSON Lines record `{"type": ..., "data": ...}` on stdout.
    pub fn json_record<T: serde::Serialize>(&self, kind: &str, data: &T) -> io::Result<()> {
        self.json_value(&serde_json::json!({ "type": kind, "data": data }))
    }

    /// Colours text bold-yellow (for digests), when colour is on.
    pub fn paint_id(&self, text: &str) -> String {
        if self.color {
            format!("\x1b[33m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}
