//! `snap restore SNAP DEST [--path PATH]…`: from the store, or from a registry reference.

use std::path::PathBuf;

use snap::ops::{self, RemoteRestoreOptions, RestoreOptions, RestoreSource};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::human_bytes;
use crate::cli::remote::Located;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The snapshot to restore.
    #[arg(value_name = "SNAP")]
    rev: String,
    /// Where to write it (created if missing; must be empty unless --force).
    #[arg(value_name = "DEST")]
    dest: PathBuf,
    /// Write into a non-empty directory, replacing files in the way.
    #[arg(long)]
    force: bool,
    /// Restore only this path of the snapshot (a directory with everything under it, or a
    /// file), at its place under DEST; repeatable. From a registry, only the layers holding
    /// these paths are downloaded.
    #[arg(long = "path", value_name = "PATH")]
    paths: Vec<String>,
    #[command(flatten)]
    conn: crate::cli::remote::ConnArgs,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    if let Some(layout) = RestoreSource::layout(&args.rev, &ctx.cwd) {
        return run_remote(ctx, args, layout);
    }
    let store = match crate::cli::remote::locate(ctx, &args.rev)? {
        Located::Local(store, _) => store,
        Located::Remote(source) => return run_remote(ctx, args, RestoreSource::Registry(source)),
    };
    let opts = RestoreOptions {
        rev: args.rev.clone(),
        dest: ctx.cwd.join(&args.dest),
        force: args.force,
        paths: args.paths.clone(),
    };
    let bar = crate::cli::progress::Bar::new(&ctx.printer).counting("files");
    let out = ops::restore(&store, &opts, &bar);
    snap::ops::Progress::end(&bar);
    let out = out?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
    } else {
        ctx.printer.status(
            "Restored",
            format!(
                "{} files, {} into {}",
                out.stats.files,
                human_bytes(out.stats.bytes),
                args.dest.display()
            ),
        );
        if out.stats.skipped > 0 {
            ctx.printer.status(
                "Skipped",
                format!(
                    "{} image entries: special files, names that are not UTF-8, or reserved \
                     (`.git`, `.store`); `snap ls {}` lists them",
                    out.stats.skipped, args.rev
                ),
            );
        }
    }
    Ok(ExitStatus::Success)
}

/// `snap restore REGISTRY/REPO[:TAG|@DIGEST] DEST` or `snap restore oci:DIR DEST`: no store
/// needed.
fn run_remote(ctx: &Context, args: &Args, source: RestoreSource) -> anyhow::Result<ExitStatus> {
    let verb = match source {
        RestoreSource::Registry(_) => "fetched",
        RestoreSource::Layout { .. } => "read",
    };
    let opts = RemoteRestoreOptions {
        source,
        dest: ctx.cwd.join(&args.dest),
        paths: args.paths.clone(),
        force: args.force,
        client: crate::cli::remote::client_options(ctx, &args.conn)?,
    };
    let bar = crate::cli::progress::Bar::new(&ctx.printer);
    let out = ops::restore_remote(&opts, &bar);
    snap::ops::Progress::end(&bar);
    let out = out?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
    } else {
        ctx.printer.status(
            "Restored",
            format!(
                "{} files, {} into {} ({} of {} layers {verb}, {} of {})",
                out.stats.files,
                human_bytes(out.stats.bytes),
                args.dest.display(),
                out.layers_fetched,
                out.layers,
                human_bytes(out.fetched_bytes),
                human_bytes(out.snapshot_bytes),
            ),
        );
    }
    Ok(ExitStatus::Success)
}
