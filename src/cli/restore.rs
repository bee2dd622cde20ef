//! `snap restore SNAP DEST`

use std::path::PathBuf;

use snap::ops::{self, RestoreOptions};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::human_bytes;

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
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let opts = RestoreOptions {
        rev: args.rev.clone(),
        dest: ctx.cwd.join(&args.dest),
        force: args.force,
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
