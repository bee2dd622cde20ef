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

/// Where a printer writes: the process's stdout or stderr, or (in tests) a shared buffer, so
/// each command's human output can be checked in memory.
#[derive(Clone, Debug)]
pub enum Sink {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
    /// A buffer (tests).
    #[cfg(test)]
    Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>),
}

impl Sink {
    /// Writes `args` and a newline, in one piece.
    fn writeln(&self, args: fmt::Arguments<'_>) -> io::Result<()> {
        match self {
            Sink::Stdout => writeln!(io::stdout().lock(), "{args}"),
            Sink::Stderr => writeln!(io::stderr().lock(), "{args}"),
            #[cfg(test)]
            Sink::Buffer(b) => {
                let mut b = b.lock().map_err(|_| io::Error::other("poisoned buffer"))?;
                writeln!(b, "{args}")
            }
        }
    }

    /// Writes raw bytes (a manifest, a file, JSON).
    fn put(&self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().lock().write_all(bytes),
            Sink::Stderr => io::stderr().lock().write_all(bytes),
            #[cfg(test)]
            Sink::Buffer(b) => b
                .lock()
                .map_err(|_| io::Error::other("poisoned buffer"))?
                .write_all(bytes),
        }
    }
}

/// Bytes written as they are (`snap cat`, `show --manifest`).
impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.put(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout => io::stdout().lock().flush(),
            Sink::Stderr => io::stderr().lock().flush(),
            #[cfg(test)]
            Sink::Buffer(_) => Ok(()),
        }
    }
}

/// Decides what is shown, and writes it to its two sinks (data, and everything else).
#[derive(Clone, Debug)]
pub struct Printer {
    quiet: u8,
    verbose: u8,
    json: bool,
    color: bool,
    stderr_tty: bool,
    out: Sink,
    err: Sink,
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
            out: Sink::Stdout,
            err: Sink::Stderr,
        }
    }

    /// A printer writing into two buffers (data, messages), without colour or progress: what
    /// a test reads back with [`Captured::out`] and [`Captured::err`].
    #[cfg(test)]
    pub fn capture(json: bool, verbose: u8) -> (Printer, Captured) {
        let captured = Captured::default();
        let printer = Printer {
            quiet: 0,
            verbose,
            json,
            color: false,
            stderr_tty: false,
            out: Sink::Buffer(captured.out.clone()),
            err: Sink::Buffer(captured.err.clone()),
        };
        (printer, captured)
    }

    /// Where data goes (for bytes written as they are: `cat`, `show --manifest`).
    pub fn data(&self) -> &Sink {
        &self.out
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
        let _ = self.err.writeln(format_args!("{verb} {message}"));
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
        let _ = self.err.writeln(format_args!("{label}: {message}"));
    }

    /// A continuation line of an error (`  caused by: …`, `hint: …`).
    pub fn error_detail(&self, label: &str, message: impl std::fmt::Display) {
        let message = visible(&message.to_string()).into_owned();
        let _ = self.err.writeln(format_args!("{label}: {message}"));
    }

    /// A line of data on stdout, control characters made visible.
    pub fn line(&self, text: impl std::fmt::Display) -> io::Result<()> {
        let text = text.to_string();
        self.out.writeln(format_args!("{}", visible(&text)))
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
            self.out
                .writeln(format_args!("{before}\x1b[33m{id}\x1b[0m{after}"))
        } else {
            self.out.writeln(format_args!("{before}{id}{after}"))
        }
    }

    /// One JSON document (or one JSON Lines record) on stdout.
    pub fn json_value<T: serde::Serialize>(&self, value: &T) -> io::Result<()> {
        let mut line = serde_json::to_vec(value).map_err(io::Error::other)?;
        line.push(b'\n');
        self.out.put(&line)
    }

    /// One JSON Lines record `{"type": ..., "data": ...}` on stdout.
    pub fn json_record<T: serde::Serialize>(&self, kind: &str, data: &T) -> io::Result<()> {
        self.json_value(&serde_json::json!({ "type": kind, "data": data }))
    }
}

/// What a [`Printer::capture`] printer wrote.
#[cfg(test)]
#[derive(Clone, Debug, Default)]
pub struct Captured {
    out: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    err: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

#[cfg(test)]
impl Captured {
    /// The data written so far.
    pub fn out(&self) -> String {
        self.out
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The messages written so far.
    pub fn err(&self) -> String {
        self.err
            .lock()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
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
    fn status_lines_go_to_messages_and_data_to_data() -> io::Result<()> {
        let (p, captured) = Printer::capture(false, 0);
        p.status("Committed", "sha256:abc (latest)");
        p.detail("Read", "shown only with -v");
        p.error("bad\ninput");
        p.error_detail("hint", "do this");
        p.line("data")?;
        assert_eq!(captured.out(), "data\n");
        assert_eq!(
            captured.err(),
            "   Committed sha256:abc (latest)\nerror: bad\\ninput\nhint: do this\n"
        );
        let (p, captured) = Printer::capture(false, 1);
        p.detail("Read", "3 requests");
        assert_eq!(captured.err(), "        Read 3 requests\n");
        Ok(())
    }

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
