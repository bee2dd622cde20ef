//! `snap show SNAP`

use std::io::Write;

use snap::ops::show::{ShowForeign, Shown};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::Name;
use crate::cli::output::human_bytes;
use crate::cli::remote::Located;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The snapshot.
    #[arg(value_name = "SNAP", default_value = snap::ops::LATEST)]
    rev: String,
    /// Write the manifest's bytes exactly as stored (its sha256 is the snapshot id).
    #[arg(long)]
    manifest: bool,
    /// How to reach a registry, when SNAP is a registry reference (REGISTRY/REPO[:TAG|@DIGEST]).
    #[command(flatten)]
    conn: crate::cli::remote::ConnArgs,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    // A SNAP that resolves in the store is local; a registry reference is read from there
    // (manifest and config only): see `cli::remote`.
    match crate::cli::remote::locate(ctx, &args.rev)? {
        Located::Local(store, id) => {
            let shown = snap::ops::show::show(&store, &id.to_string())?;
            render(ctx, shown, args.manifest)
        }
        Located::Remote(remote) => {
            let opts = crate::cli::remote::client_options(ctx, &args.conn)?;
            let out = snap::ops::remote::show(&remote, &opts)?;
            ctx.printer.detail(
                "Read",
                format!(
                    "{} from the registry ({} requests, no layer blob)",
                    out.reference, out.requests
                ),
            );
            render(
                ctx,
                snap::ops::show::describe(None, out.artifact)?,
                args.manifest,
            )
        }
    }
}

/// Prints a snapshot (with the refs naming it, when it is in the store), or anything else.
fn render(ctx: &Context, shown: Shown, raw: bool) -> anyhow::Result<ExitStatus> {
    let (show, manifest) = match shown {
        Shown::Snapshot { show, manifest } => (show, manifest),
        Shown::Foreign { show, bytes } => return show_foreign(ctx, &show, &bytes, raw),
    };
    if raw {
        let mut out = ctx.printer.data().clone();
        out.write_all(&manifest)?;
        out.flush()?;
        return Ok(ExitStatus::Success);
    }
    let id = show.digest;
    if ctx.printer.json() {
        ctx.printer.json_value(&show)?;
        return Ok(ExitStatus::Success);
    }
    let p = &ctx.printer;
    p.line_with_id("", &format!("snapshot {id}"), "")?;
    if !show.refs.is_empty() {
        p.line(format!("Refs:     {}", show.refs.join(", ")))?;
    }
    p.line(format!(
        "Date:     {}",
        crate::cli::log::describe_time(
            show.created.as_deref(),
            show.provenance.git.as_ref().and_then(|g| g.time.as_deref())
        )
    ))?;
    for parent in &show.parents {
        p.line(format!("Parent:   {parent}"))?;
    }
    if let Some(g) = &show.provenance.git {
        p.line(format!(
            "Git:      {}{}{}",
            g.commit,
            g.branch
                .as_deref()
                .map(|b| format!(" ({b})"))
                .unwrap_or_default(),
            if g.dirty { " dirty" } else { "" }
        ))?;
        if let Some(r) = &g.remote {
            p.line(format!("Remote:   {r}"))?;
        }
    }
    for i in &show.provenance.inputs {
        p.line(format!(
            "Input:    {} {}{}",
            Name(&i.path),
            i.tree.as_deref().unwrap_or("(not in HEAD)"),
            if i.dirty { " dirty" } else { "" }
        ))?;
    }
    p.line(format!(
        "Contents: {} files, {} dirs, {} symlinks, {}",
        show.stats.files,
        show.stats.dirs,
        show.stats.symlinks,
        human_bytes(show.stats.bytes)
    ))?;
    let layer_bytes: u64 = show.layers.iter().map(|l| l.size).sum();
    p.line(format!(
        "Layers:   {} ({} mode), {} stored; manifest {} bytes",
        show.layers.len(),
        show.mode,
        human_bytes(layer_bytes),
        manifest.len()
    ))?;
    p.line(format!("Root:     {}", show.root))?;
    for (k, v) in &show.annotations {
        p.line(format!("Annotation: {k}={v}"))?;
    }
    for r in &show.referrers {
        let what = if r.artifact_type == snap::ops::sign::ARTIFACT_TYPE_SIGNATURE {
            format!(
                "signature by {}",
                r.annotations
                    .get(snap::ops::sign::ANNOTATION_KEY)
                    .map_or("an unnamed key", String::as_str)
            )
        } else {
            r.artifact_type.clone()
        };
        p.line(format!(
            "Referrer: {}{} {what}",
            "  ".repeat(r.depth.saturating_sub(1)),
            r.digest.short()
        ))?;
    }
    if !show.message.is_empty() {
        p.line("")?;
        for l in show.message.lines() {
            p.line(format!("    {l}"))?;
        }
    }
    Ok(ExitStatus::Success)
}

fn show_foreign(
    ctx: &Context,
    show: &ShowForeign,
    bytes: &[u8],
    raw: bool,
) -> anyhow::Result<ExitStatus> {
    let id = show.digest;
    if raw {
        let mut out = ctx.printer.data().clone();
        out.write_all(bytes)?;
        out.flush()?;
        return Ok(ExitStatus::Success);
    }
    if ctx.printer.json() {
        ctx.printer.json_value(show)?;
        return Ok(ExitStatus::Success);
    }
    let p = &ctx.printer;
    p.line_with_id("", &format!("{} {id}", show.kind), "")?;
    p.line(format!(
        "Media type:    {}",
        show.media_type.as_deref().unwrap_or("(none)")
    ))?;
    if let Some(t) = &show.artifact_type {
        p.line(format!("Artifact type: {t}"))?;
    }
    if let Some(s) = &show.subject {
        p.line(format!("Subject:       {} {}", s.digest, s.media_type))?;
    }
    if let Some(c) = &show.config {
        p.line(format!(
            "Config:        {} {} ({} bytes)",
            c.media_type,
            c.digest.short(),
            c.size
        ))?;
    }
    for (i, l) in show.layers.iter().enumerate() {
        let title = l
            .title()
            .map(|t| format!(" {}", Name(t)))
            .unwrap_or_default();
        p.line(format!(
            "Layer {i}:{:>7} {} {} {}{title}",
            "",
            l.digest.short(),
            human_bytes(l.size),
            l.media_type
        ))?;
    }
    for m in &show.manifests {
        p.line(format!(
            "Manifest:      {} {} ({} bytes)",
            m.digest, m.media_type, m.size
        ))?;
    }
    for (k, v) in &show.annotations {
        p.line(format!("Annotation: {k}={v}"))?;
    }
    Ok(ExitStatus::Success)
}
