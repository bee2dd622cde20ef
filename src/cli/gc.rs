//! `snap gc [--dry-run] [--expire DAYS] [--prune-now]`

use std::time::Duration;

use snap::ops::{self, GcOptions};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::human_bytes;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Say what would be removed, and remove nothing.
    #[arg(long, short = 'n')]
    dry_run: bool,
    /// Reflog entries younger than this many days keep what they name.
    #[arg(long, value_name = "DAYS", default_value_t = 90)]
    expire: u64,
    /// Also remove unreachable objects younger than the one-hour grace period.
    #[arg(long)]
    prune_now: bool,
    /// How long to wait for other snap processes to leave the store before giving up.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    wait: u64,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ops::open_exclusive(ctx.store_arg(), &ctx.cwd, Duration::from_secs(args.wait))?;
    let opts = GcOptions {
        dry_run: args.dry_run,
        expire: Duration::from_secs(args.expire.saturating_mul(24 * 3600)),
        grace: if args.prune_now {
            Duration::ZERO
        } else {
            ops::gc::DEFAULT_GRACE
        },
    };
    let out = ops::gc(&store, &opts)?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
        return Ok(ExitStatus::Success);
    }
    let verb = if out.dry_run {
        "Would remove"
    } else {
        "Removed"
    };
    ctx.printer.status(
        verb,
        format!(
            "{} loose objects, {} packs, {} temp files: {}",
            out.loose_removed,
            out.packs_removed,
            out.temp_removed,
            human_bytes(out.bytes_removed)
        ),
    );
    ctx.printer.status(
        "Kept",
        format!(
            "{} objects reachable from {} root{} (refs and recent reflog entries){}",
            out.reachable,
            out.roots,
            if out.roots == 1 { "" } else { "s" },
            if out.kept_young > 0 {
                format!(", {} unreachable but younger than an hour", out.kept_young)
            } else {
                String::new()
            }
        ),
    );
    Ok(ExitStatus::Success)
}
