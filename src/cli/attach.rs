//! `snap attach SNAP FILE... --artifact-type TYPE` and `snap referrers SNAP`.

use std::path::PathBuf;

use snap::ops::{self, AttachOptions};

use crate::cli::Context;
use crate::cli::error::ExitStatus;

#[derive(clap::Args, Debug)]
pub struct AttachArgs {
    /// The snapshot the artifact refers to.
    #[arg(value_name = "SNAP")]
    rev: String,
    /// The files, each one layer titled with its base name.
    #[arg(value_name = "FILE", required = true)]
    files: Vec<PathBuf>,
    /// The artifact's type (a media type, e.g. application/vnd.example.sbom.v1+json).
    #[arg(long, value_name = "TYPE")]
    artifact_type: String,
    /// A manifest annotation (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct ReferrersArgs {
    /// The snapshot.
    #[arg(value_name = "SNAP", default_value = "latest")]
    rev: String,
}

pub fn attach(ctx: &Context, args: &AttachArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let out = ops::attach(
        &store,
        &AttachOptions {
            rev: args.rev.clone(),
            files: args.files.clone(),
            artifact_type: args.artifact_type.clone(),
            annotations: args.annotations.clone(),
        },
    )?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
    } else {
        ctx.printer.status(
            "Attached",
            format!(
                "{} file{} to {} as {}",
                out.files.len(),
                if out.files.len() == 1 { "" } else { "s" },
                out.subject.short(),
                out.artifact_type
            ),
        );
        ctx.printer.line(out.digest)?;
    }
    Ok(ExitStatus::Success)
}

pub fn referrers(ctx: &Context, args: &ReferrersArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let report = ops::list_referrers(&store, &args.rev)?;
    if ctx.printer.json() {
        ctx.printer.json_value(&report)?;
        return Ok(ExitStatus::Success);
    }
    for r in &report.referrers {
        let indent = "  ".repeat(r.depth.saturating_sub(1));
        let files = if r.files.is_empty() {
            String::new()
        } else {
            format!("  {}", r.files.join(", "))
        };
        ctx.printer
            .line(format!("{indent}{} {}{files}", r.digest, r.artifact_type))?;
    }
    Ok(ExitStatus::Success)
}
