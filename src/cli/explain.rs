//! `snap explain TOPIC`: the troubleshooting entry a hint names, compiled into the binary
//! from the book (`book/src/troubleshooting.md`), so the advice travels with snap wherever it
//! is installed (as `rustc --explain` does for error codes). Every `hint:` ends with
//! `see: snap explain TOPIC`, and a test checks that each topic a hint can name is here.

use crate::cli::Context;
use crate::cli::error::ExitStatus;

/// The book's troubleshooting page, as it was when snap was built.
const PAGE: &str = include_str!("../../book/src/troubleshooting.md");

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The topic a hint named (`snap explain ref-locked`); without it, every topic.
    #[arg(value_name = "TOPIC")]
    topic: Option<String>,
}

/// Every `## topic` of the page with its text, in page order.
pub fn topics() -> impl Iterator<Item = (&'static str, &'static str)> {
    PAGE.split("\n## ").skip(1).map(|section| {
        let (name, body) = section.split_once('\n').unwrap_or((section, ""));
        (name.trim(), body.trim())
    })
}

/// The text of `topic`, if the page has it.
pub fn topic(name: &str) -> Option<&'static str> {
    topics().find(|(n, _)| *n == name).map(|(_, body)| body)
}

/// Markdown links read as their text in a terminal: `[text](target)` becomes `text`.
fn plain(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('[') {
        let after = &rest[open + 1..];
        match after.find("](").and_then(|close| {
            after[close + 2..]
                .find(')')
                .map(|end| (close, close + 2 + end))
        }) {
            Some((close, end)) if !after[..close].contains(['[', ']']) => {
                out.push_str(&rest[..open]);
                out.push_str(&after[..close]);
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(&rest[..=open]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let Some(name) = &args.topic else {
        for (name, body) in topics() {
            let first = plain(
                body.lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default(),
            );
            let first = match first.char_indices().nth(68) {
                Some((cut, _)) => format!("{}…", &first[..cut]),
                None => first,
            };
            ctx.printer.line(format!("{name:<28} {first}"))?;
        }
        return Ok(ExitStatus::Success);
    };
    let Some(body) = topic(name) else {
        let near: Vec<&str> = topics()
            .map(|(n, _)| n)
            .filter(|n| {
                n.split('-')
                    .any(|w| w.len() >= 4 && name.split('-').any(|q| q == w))
            })
            .collect();
        let also = if near.is_empty() {
            String::new()
        } else {
            format!(" (close: {})", near.join(", "))
        };
        anyhow::bail!("no topic `{name}`{also}; `snap explain` lists every topic");
    };
    ctx.printer.line(name)?;
    ctx.printer.line("")?;
    for line in plain(body).lines() {
        ctx.printer.line(line)?;
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_topics_and_links_read_as_text() {
        assert!(topic("no-store").is_some_and(|t| t.contains("snap init")));
        assert!(topic("nothing-like-this").is_none());
        assert_eq!(
            plain("see [`snap fsck`](commands/fsck.md) and [x](y) [not a link"),
            "see `snap fsck` and x [not a link"
        );
    }
}
