//! `snap log [SNAP]`

use snap::snapshot::{LogEntry, Snapshot};

use crate::cli::Context;
use crate::cli::commit::human_bytes;
use crate::cli::error::ExitStatus;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where to start (default: latest).
    #[arg(value_name = "SNAP", default_value = "latest")]
    rev: String,
    /// Show at most N snapshots.
    #[arg(short = 'n', long = "max-count", value_name = "N")]
    max: Option<usize>,
    /// One line per snapshot.
    #[arg(long)]
    oneline: bool,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let mut next = Some(snap::rev::resolve(&store, &args.rev).map_err(snap::ops::Error::from)?);
    let mut shown = 0;
    while let Some(id) = next {
        if args.max.is_some_and(|m| shown >= m) {
            break;
        }
        if !store.objects.contains(&id) {
            ctx.printer.status(
                "Note",
                format!("history continues with {id}, which is not in this store"),
            );
            break;
        }
        let snap = Snapshot::load(&store, &id).map_err(snap::ops::Error::from)?;
        let entry = LogEntry::from(&snap);
        if ctx.printer.json() {
            ctx.printer.json_record("snapshot", &entry)?;
        } else if args.oneline {
            ctx.printer.line(format!(
                "{} {} {}",
                ctx.printer.paint_id(&id.short()),
                date(&entry),
                entry.message.lines().next().unwrap_or("")
            ))?;
        } else {
            print_long(ctx, &entry)?;
        }
        shown += 1;
        next = snap.parent();
    }
    Ok(ExitStatus::Success)
}

fn date(e: &LogEntry) -> &str {
    e.created.as_deref().unwrap_or("unknown date")
}

fn print_long(ctx: &Context, e: &LogEntry) -> std::io::Result<()> {
    let p = &ctx.printer;
    p.line(p.paint_id(&format!("snapshot {}", e.digest)))?;
    p.line(format!("Date:   {}", date(e)))?;
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
