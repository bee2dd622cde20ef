//! `snap refs`, `snap tag`, `snap ref delete`

use crate::cli::Context;
use crate::cli::error::ExitStatus;

#[derive(clap::Args, Debug)]
pub struct ListArgs {}

#[derive(clap::Args, Debug)]
pub struct TagArgs {
    /// The tag's name.
    name: String,
    /// The snapshot it points at.
    #[arg(value_name = "SNAP")]
    rev: String,
    /// Move the tag if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(clap::Args, Debug)]
pub struct RefArgs {
    #[command(subcommand)]
    command: RefCommand,
}

#[derive(clap::Subcommand, Debug)]
enum RefCommand {
    /// Delete a ref (the reflog keeps a record of it).
    Delete {
        /// The ref: a name, `heads/NAME` or `tags/NAME`.
        name: String,
    },
}

#[derive(serde::Serialize)]
struct RefRow {
    name: String,
    kind: snap::ops::RefKind,
    digest: snap::ops::Digest,
}

pub fn list(ctx: &Context, _args: &ListArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    for (name, digest) in store.refs.list()? {
        if ctx.printer.json() {
            let row = RefRow {
                name: name.short().to_owned(),
                kind: name.kind(),
                digest,
            };
            ctx.printer.json_record("ref", &row)?;
        } else {
            ctx.printer
                .line_with_id("", &digest.to_string(), format!(" {name}"))?;
        }
    }
    Ok(ExitStatus::Success)
}

pub fn tag(ctx: &Context, args: &TagArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let snap::ops::refs::TagOutcome {
        name,
        target,
        previous,
    } = snap::ops::tag(&store, &args.name, &args.rev, args.force)?;
    if ctx.printer.json() {
        ctx.printer.json_value(&serde_json::json!({
            "name": name.short(), "digest": target, "previous": previous,
        }))?;
    } else if previous == Some(target) {
        ctx.printer
            .status("Unchanged", format!("{name} at {}", target.short()));
    } else {
        ctx.printer
            .status("Tagged", format!("{} as {name}", target.short()));
    }
    Ok(ExitStatus::Success)
}

pub fn manage(ctx: &Context, args: &RefArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    match &args.command {
        RefCommand::Delete { name } => {
            let snap::ops::refs::DeleteOutcome { name, was } = snap::ops::delete_ref(&store, name)?;
            if ctx.printer.json() {
                ctx.printer
                    .json_value(&serde_json::json!({ "name": name.to_string(), "was": was }))?;
            } else {
                ctx.printer
                    .status("Deleted", format!("ref {name} (was {})", was.short()));
            }
        }
    }
    Ok(ExitStatus::Success)
}
