//! What the CLI shows, and where: data on stdout, everything else on stderr.
//!
//! The [`Printer`] is decided once from the global flags: `-q` silences status lines, `-qq`
//! everything but errors, `-v` adds detail lines, `--json` makes stdout machine-readable, colour follows `--color`,
//! `NO_COLOR` and whether stderr is a terminal. Status lines look like cargo's: a
//! right-aligned verb, then the object.
//!
//! Names and texts that arrive from archives, registries and file systems are hostile until
//! shown safely: a file name may hold a newline (and forge a line of `ls` or `diff`), an
//! annotation may hold a terminal escape sequence. So every human line goes through
//! [`visible`], which makes control characters (C0 but tab, DEL, C1) and the Unicode bidi
//! overrides visible as escapes; and names (paths, link targets) are shown as [`Name`]s, quoted
//! the way git quotes paths when they need it, so that a shown name is never ambiguous. The
//! printer's own colours are the only escape sequences that reach the terminal. `--json`
//! output carries the exact strings (JSON escapes control characters itself).

use std::borrow::Cow;
use std::fmt;
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
        let message = visible(&message.to_string()).into_owned();
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
        let message = visible(&message.to_string()).into_owned();
        let _ = writeln!(io::stderr().lock(), "{label}: {message}");
    }

    /// A continuation line of an error (`  caused by: …`, `hint: …`).
    pub fn error_detail(&self, label: &str, message: impl std::fmt::Display) {
        let message = visible(&message.to_string()).into_owned();
        let _ = writeln!(io::stderr().lock(), "{label}: {message}");
    }

    /// A line of data on stdout, control characters made visible.
    pub fn line(&self, text: impl std::fmt::Display) -> io::Result<()> {
        let text = text.to_string();
        writeln!(io::stdout().lock(), "{}", visible(&text))
    }

    /// A line of data on stdout: `before`, an id (a digest), coloured when colour is on, and
    /// `after`, all with control characters made visible.
    pub fn line_with_id(
        &self,
        before: impl std::fmt::Display,
        id: &str,
        after: impl std::fmt::Display,
    ) -> io::Result<()> {
        let (before, after) = (before.to_string(), after.to_string());
        let (before, id, after) = (visible(&before), visible(id), visible(&after));
        if self.color {
            writeln!(io::stdout().lock(), "{before}\x1b[33m{id}\x1b[0m{after}")
        } else {
            writeln!(io::stdout().lock(), "{before}{id}{after}")
        }
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
}

/// Whether the terminal must not see `c` as it is: C0 controls but tab, DEL, C1 controls, and
/// the bidi embeddings, overrides and isolates that can make a line read as another.
fn is_hidden(c: char) -> bool {
    (c.is_control() && c != '\t')
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// `text` with every control character (but tab) and bidi control written as an escape
/// (`\n`, `\r`, `\x1b`, `\u{202e}`); borrowed when there is none.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_hidden) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if is_hidden(c) {
            push_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

fn push_escape(out: &mut String, c: char) {
    use fmt::Write as _;
    let _ = match c {
        '\n' => write!(out, "\\n"),
        '\r' => write!(out, "\\r"),
        '\t' => write!(out, "\\t"),
        c if u32::from(c) < 0x100 => write!(out, "\\x{:02x}", u32::from(c)),
        c => write!(out, "\\u{{{:x}}}", u32::from(c)),
    };
}

/// A name (a path, a link target, a title) as a human line shows it: as it is, or — when it
/// holds a control character, a bidi control, a tab, `"` or `\\` — in double quotes with those
/// escaped C-style, as git quotes paths (`"a\nb"`). So a name cannot forge a line, and a quoted
/// name is never mistaken for another.
pub struct Name<'a>(pub &'a str);

impl fmt::Display for Name<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let needs_quotes = self
            .0
            .chars()
            .any(|c| is_hidden(c) || matches!(c, '\t' | '"' | '\\'));
        if !needs_quotes {
            return f.write_str(self.0);
        }
        let mut out = String::with_capacity(self.0.len() + 8);
        out.push('"');
        for c in self.0.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                c if is_hidden(c) || c == '\t' => push_escape(&mut out, c),
                c => out.push(c),
            }
        }
        out.push('"');
        f.write_str(&out)
    }
}

/// `1.5 MiB` style sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_and_bidi_overrides_are_made_visible() {
        assert_eq!(visible("plain name ü"), "plain name ü");
        assert_eq!(visible("a\tb"), "a\tb", "tabs separate columns");
        assert_eq!(
            visible("x\nFAKE\rline \x1b[2J\u{9b}\u{7f} \u{202e}txt.exe"),
            "x\\nFAKE\\rline \\x1b[2J\\x9b\\x7f \\u{202e}txt.exe"
        );
    }

    #[test]
    fn names_are_quoted_like_git_only_when_they_need_it() {
        assert_eq!(Name("dir/file.txt").to_string(), "dir/file.txt");
        assert_eq!(Name("ü ok").to_string(), "ü ok");
        assert_eq!(Name("a\nb").to_string(), "\"a\\nb\"");
        assert_eq!(Name("tab\there").to_string(), "\"tab\\there\"");
        assert_eq!(Name("say \"hi\"").to_string(), "\"say \\\"hi\\\"\"");
        assert_eq!(Name("back\\slash").to_string(), "\"back\\\\slash\"");
        assert_eq!(
            Name("\x1b]0;pwned\x07").to_string(),
            "\"\\x1b]0;pwned\\x07\""
        );
    }
}
