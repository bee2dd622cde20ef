//! `snap commit PATH...`

use std::path::PathBuf;

use snap::ops::{self, CommitOptions, Update};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::human_bytes;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files and directories to record (relative to the store's directory, or to -C DIR).
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// The snapshot's message.
    #[arg(short, long, default_value = "", value_name = "MSG")]
    message: String,
    /// The head to move (default: the `commit.ref` setting, else latest).
    #[arg(long = "ref", value_name = "NAME", env = "SNAP_REF")]
    ref_name: Option<String>,
    /// Add a manifest annotation (repeatable).
    #[arg(long = "annotation", value_name = "KEY=VALUE")]
    annotations: Vec<String>,
    /// Record the git state of these input paths, to judge freshness by them (repeatable).
    #[arg(long, value_name = "PATH", num_args = 1..)]
    inputs: Vec<PathBuf>,
    /// Record paths relative to DIR instead of the store's directory.
    #[arg(short = 'C', value_name = "DIR")]
    base: Option<PathBuf>,
    /// Leave out what matches PATTERN (gitignore syntax, anchored at the store's directory or
    /// -C DIR; repeatable). `.snapignore` files are always honoured.
    #[arg(long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Also honour `.gitignore` files (`.snapignore` has the last word); the
    /// `commit.gitignore` setting turns this on for every commit.
    #[arg(long)]
    gitignore: bool,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_or_create_store()?;
    // The store's settings (`commit.ref`, `commit.gitignore`) are applied by the library.
    let opts = CommitOptions {
        paths: args.paths.clone(),
        message: args.message.clone(),
        ref_name: args.ref_name.as_deref().map(ops::refs::head).transpose()?,
        annotations: args.annotations.clone(),
        inputs: args.inputs.clone(),
        base: args.base.clone(),
        cwd: ctx.cwd.clone(),
        excludes: args.excludes.clone(),
        gitignore: args.gitignore,
    };
    let bar = crate::cli::progress::Bar::new(&ctx.printer).counting("files");
    let out = ops::commit(&store, &opts, &bar);
    snap::ops::Progress::end(&bar);
    let out = out?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
        return Ok(ExitStatus::Success);
    }
    let summary = format!(
        "{} files, {} ({})",
        out.files,
        human_bytes(out.bytes),
        out.ref_name
    );
    ctx.printer.detail(
        "Read",
        format!(
            "{} of {} files (the others unchanged since the stat cache saw them)",
            out.files_read, out.files
        ),
    );
    ctx.printer.detail(
        "Stored",
        format!(
            "{} layers, manifest {} bytes, {} dirs, {} symlinks",
            out.layers, out.manifest_bytes, out.dirs, out.symlinks
        ),
    );
    if out.attempts > 1 {
        ctx.printer.detail(
            "Reparented",
            format!(
                "{} times on snapshots other commits wrote meanwhile",
                out.attempts - 1
            ),
        );
    }
    match out.update {
        Update::Unchanged => ctx
            .printer
            .status("Unchanged", format!("{} {summary}", out.digest.short())),
        _ => ctx
            .printer
            .status("Committed", format!("{} {summary}", out.digest.short())),
    }
    ctx.printer.line(out.digest)?;
    Ok(ExitStatus::Success)
}
