//! `snap log [SNAP]`

use snap::ops::LogEntry;

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::{Printer, human_bytes};
use crate::cli::remote::Located;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to start (default: latest; with --graph, every ref).
    #[arg(value_name = "SNAP")]
    rev: Option<String>,
    /// Draw the lineage of every ref (or of SNAP) as a graph, all parents followed, like
    /// `git log --graph --all --oneline`.
    #[arg(long)]
    graph: bool,
    /// Show at most N snapshots.
    #[arg(short = 'n', long = "max-count", value_name = "N")]
    max: Option<usize>,
    /// One line per snapshot.
    #[arg(long)]
    oneline: bool,
    /// How to reach a registry, when SNAP is a registry reference (REGISTRY/REPO[:TAG|@DIGEST]).
    #[command(flatten)]
    conn: crate::cli::remote::ConnArgs,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    if !args.graph
        && let Some(rev) = &args.rev
        && let Located::Remote(remote) = crate::cli::remote::locate(ctx, rev)?
    {
        return remote_log(ctx, args, &remote);
    }
    let store = ctx.open_store()?;
    if args.graph {
        return graph(ctx, &store, args);
    }
    let rev = args.rev.as_deref().unwrap_or(snap::ops::LATEST);
    let history = snap::ops::log::history(&store, rev, args.max)?;
    for entry in &history.entries {
        print_entry(&ctx.printer, args.oneline, entry)?;
    }
    if let Some(id) = history.continues_with {
        ctx.printer.status(
            "Note",
            format!("history continues with {id}, which is not in this store"),
        );
    }
    Ok(ExitStatus::Success)
}

/// `snap log REGISTRY/REPO[:TAG]`: the history as far as the registry holds it, read from
/// manifests and configs only.
fn remote_log(
    ctx: &Context,
    args: &Args,
    remote: &snap::ops::RemoteRef,
) -> anyhow::Result<ExitStatus> {
    let opts = crate::cli::remote::client_options(ctx, &args.conn)?;
    let out = snap::ops::remote::log(remote, args.max, &opts)?;
    for entry in &out.entries {
        print_entry(&ctx.printer, args.oneline, entry)?;
    }
    if let Some(id) = out.continues_with {
        ctx.printer.status(
            "Note",
            format!("history continues with {id}, which is not in the registry"),
        );
    }
    ctx.printer.detail(
        "Read",
        format!(
            "{} snapshots from the registry ({} requests, no layer blob)",
            out.entries.len(),
            out.requests
        ),
    );
    Ok(ExitStatus::Success)
}

fn print_entry(p: &Printer, oneline: bool, entry: &LogEntry) -> std::io::Result<()> {
    if p.json() {
        p.json_record("snapshot", entry)
    } else if oneline {
        p.line_with_id(
            "",
            &entry.digest.short(),
            format!(
                " {} {}",
                date(entry),
                entry.message.lines().next().unwrap_or("")
            ),
        )
    } else {
        print_long(p, entry)
    }
}

fn date(e: &LogEntry) -> &str {
    e.created.as_deref().unwrap_or("unknown date")
}

/// What a snapshot's time is, in words: snap records no clock time, so it is the git commit's
/// time or `SOURCE_DATE_EPOCH` (store format §9, OCI mapping `created`).
pub fn describe_time(created: Option<&str>, commit_time: Option<&str>) -> String {
    match (created, commit_time) {
        (Some(c), Some(t)) if c == t => {
            format!("{c} (the time of the git commit it was built from)")
        }
        (Some(c), _) => format!("{c} (SOURCE_DATE_EPOCH when it was committed)"),
        (None, _) => {
            "unknown (snap records no clock time; outside git, set SOURCE_DATE_EPOCH)".into()
        }
    }
}

fn print_long(p: &Printer, e: &LogEntry) -> std::io::Result<()> {
    p.line_with_id("", &format!("snapshot {}", e.digest), "")?;
    p.line(format!(
        "Date:   {}",
        describe_time(e.created.as_deref(), e.commit_time.as_deref())
    ))?;
    if let Some(c) = &e.commit {
        let short = c.get(..12).unwrap_or(c);
        let branch = e
            .branch
            .as_deref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default();
        let dirty = if e.dirty { " dirty" } else { "" };
        p.line(format!("Git:    {short}{branch}{dirty}"))?;
    }
    p.line(format!("Files:  {} ({})", e.files, human_bytes(e.bytes)))?;
    p.line("")?;
    for l in e.message.lines() {
        p.line(format!("    {l}"))?;
    }
    if !e.message.is_empty() {
        p.line("")?;
    }
    Ok(())
}

/// `snap log --graph`: every snapshot reachable from the starting points, all parents
/// followed, children before parents, newest first; each line decorated with its refs.
fn graph(ctx: &Context, store: &snap::ops::Store, args: &Args) -> anyhow::Result<ExitStatus> {
    for row in snap::ops::log::graph(store, args.rev.as_deref(), args.max)? {
        let Some((e, labels)) = &row.snapshot else {
            if !ctx.printer.json() {
                ctx.printer.line(&row.graph)?;
            }
            continue;
        };
        if ctx.printer.json() {
            ctx.printer.json_record("snapshot", e)?;
            continue;
        }
        let deco = if labels.is_empty() {
            String::new()
        } else {
            format!(" ({})", labels.join(", "))
        };
        ctx.printer.line_with_id(
            format!("{}  ", row.graph),
            &e.digest.short(),
            format!(
                "{deco} {} {}",
                date(e),
                e.message.lines().next().unwrap_or("")
            ),
        )?;
    }
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(message: &str) -> LogEntry {
        LogEntry {
            digest: snap::ops::Digest::of(b"snapshot"),
            parents: Vec::new(),
            created: Some("2026-01-01T00:00:00Z".into()),
            commit_time: Some("2026-01-01T00:00:00Z".into()),
            message: message.into(),
            commit: Some("0123456789abcdef0123".into()),
            branch: Some("main".into()),
            dirty: true,
            files: 3,
            bytes: 2048,
        }
    }

    #[test]
    fn a_long_entry_reads_like_git_log() -> std::io::Result<()> {
        let (p, captured) = Printer::capture(false, 0);
        print_entry(&p, false, &entry("index v2\n\nmore"))?;
        let expected = format!(
            "snapshot {}\nDate:   2026-01-01T00:00:00Z (the time of the git commit it was built from)\n\
             Git:    0123456789ab (main) dirty\nFiles:  3 (2.0 KiB)\n\n    index v2\n    \n    more\n\n",
            snap::ops::Digest::of(b"snapshot")
        );
        assert_eq!(captured.out(), expected);
        assert_eq!(captured.err(), "");
        Ok(())
    }

    #[test]
    fn a_oneline_entry_shows_a_hostile_message_on_one_visible_line() -> std::io::Result<()> {
        let (p, captured) = Printer::capture(false, 0);
        print_entry(&p, true, &entry("fix\x1b[2J\rFAKE"))?;
        assert_eq!(
            captured.out(),
            format!(
                "{} 2026-01-01T00:00:00Z fix\\x1b[2J\\rFAKE\n",
                snap::ops::Digest::of(b"snapshot").short()
            )
        );
        Ok(())
    }

    #[test]
    fn json_entries_are_records() -> std::io::Result<()> {
        let (p, captured) = Printer::capture(true, 0);
        print_entry(&p, false, &entry("m"))?;
        let v: serde_json::Value = serde_json::from_str(captured.out().trim())?;
        assert_eq!(v["type"], "snapshot");
        assert_eq!(v["data"]["files"], 3);
        Ok(())
    }
}
