//! `snap init [DIR]`

use std::path::PathBuf;

use crate::cli::Context;
use crate::cli::error::ExitStatus;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The directory to hold `.store/` (default: the current directory).
    dir: Option<PathBuf>,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let dir = ctx
        .cwd
        .join(args.dir.as_deref().unwrap_or(std::path::Path::new(".")));
    let (store, created) = snap::ops::init(ctx.store_arg(), &dir)?;
    let verb = if created {
        "Initialized"
    } else {
        "Reinitialized"
    };
    if ctx.printer.json() {
        ctx.printer
            .json_value(&serde_json::json!({ "store": store.dir(), "created": created }))?;
    } else {
        ctx.printer
            .status(verb, format!("snap store in {}", store.dir().display()));
    }
    Ok(ExitStatus::Success)
}
