//! `snap log [SNAP]`

use snap::snapshot::{LogEntry, Snapshot};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::human_bytes;
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
    conn: crate::cli::push::ConnArgs,
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
    let rev = args.rev.as_deref().unwrap_or(snap::oci::LATEST);
    let mut next = Some(snap::rev::resolve(&store, rev).map_err(snap::ops::Error::from)?);
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
        print_entry(ctx, args, &LogEntry::from(&snap))?;
        shown += 1;
        next = snap.parent();
    }
    Ok(ExitStatus::Success)
}

/// `snap log REGISTRY/REPO[:TAG]`: the history as far as the registry holds it, read from
/// manifests and configs only.
fn remote_log(
    ctx: &Context,
    args: &Args,
    remote: &snap::registry::RemoteRef,
) -> anyhow::Result<ExitStatus> {
    let opts = crate::cli::remote::client_options(ctx, &args.conn)?;
    let out = snap::ops::remote::log(remote, args.max, &opts)?;
    for entry in &out.entries {
        print_entry(ctx, args, entry)?;
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

fn print_entry(ctx: &Context, args: &Args, entry: &LogEntry) -> std::io::Result<()> {
    if ctx.printer.json() {
        ctx.printer.json_record("snapshot", entry)
    } else if args.oneline {
        ctx.printer.line_with_id(
            "",
            &entry.digest.short(),
            format!(
                " {} {}",
                date(entry),
                entry.message.lines().next().unwrap_or("")
            ),
        )
    } else {
        print_long(ctx, entry)
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

fn print_long(ctx: &Context, e: &LogEntry) -> std::io::Result<()> {
    let p = &ctx.printer;
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
fn graph(ctx: &Context, store: &snap::store::Store, args: &Args) -> anyhow::Result<ExitStatus> {
    use std::collections::{BTreeMap, BTreeSet};
    let refs = store.refs.list().map_err(snap::ops::Error::from)?;
    let mut labels: BTreeMap<snap::Digest, Vec<String>> = BTreeMap::new();
    for (name, d) in &refs {
        labels.entry(*d).or_default().push(name.to_string());
    }
    let starts: Vec<snap::Digest> = match &args.rev {
        Some(rev) => vec![snap::rev::resolve(store, rev).map_err(snap::ops::Error::from)?],
        None => refs.iter().map(|(_, d)| *d).collect(),
    };
    let mut entries: BTreeMap<snap::Digest, LogEntry> = BTreeMap::new();
    let mut queue: Vec<snap::Digest> = starts;
    let mut seen = BTreeSet::new();
    while let Some(id) = queue.pop() {
        if !seen.insert(id) || !store.objects.contains(&id) {
            continue;
        }
        let snap = Snapshot::load(store, &id).map_err(snap::ops::Error::from)?;
        let entry = LogEntry::from(&snap);
        queue.extend(entry.parents.iter().copied());
        entries.insert(id, entry);
    }
    let nodes: BTreeMap<snap::Digest, (Vec<snap::Digest>, (String, snap::Digest))> = entries
        .iter()
        .map(|(id, e)| {
            let parents = e
                .parents
                .iter()
                .filter(|p| entries.contains_key(p))
                .copied();
            (
                *id,
                (
                    parents.collect(),
                    (e.created.clone().unwrap_or_default(), *id),
                ),
            )
        })
        .collect();
    let mut order = snap::graph::topo_order(&nodes);
    if let Some(max) = args.max {
        order.truncate(max);
    }
    let shown: BTreeSet<snap::Digest> = order.iter().copied().collect();
    let rows = snap::graph::layout(&order, |id| {
        nodes[id]
            .0
            .iter()
            .filter(|p| shown.contains(p))
            .copied()
            .collect()
    });
    for row in rows {
        let Some(id) = row.node else {
            if !ctx.printer.json() {
                ctx.printer.line(&row.graph)?;
            }
            continue;
        };
        let e = &entries[&id];
        if ctx.printer.json() {
            ctx.printer.json_record("snapshot", e)?;
            continue;
        }
        let deco = labels
            .get(&id)
            .map(|l| format!(" ({})", l.join(", ")))
            .unwrap_or_default();
        ctx.printer.line_with_id(
            format!("{}  ", row.graph),
            &id.short(),
            format!(
                "{deco} {} {}",
                date(e),
                e.message.lines().next().unwrap_or("")
            ),
        )?;
    }
    Ok(ExitStatus::Success)
}
