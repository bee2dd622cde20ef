//! `snap diff SNAP [SNAP|DIR]`

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::Name;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The old side.
    #[arg(value_name = "SNAP")]
    old: String,
    /// The new side: a snapshot, or a directory taken as the snapshot's root (default: the
    /// work tree, limited to the paths the snapshot records). A revision wins over a
    /// directory of the same name; write `./NAME` for the directory.
    #[arg(value_name = "SNAP|DIR")]
    new: Option<String>,
    /// Leave out of a directory side what matches PATTERN, as `snap commit --exclude` does
    /// (anchored at the store's directory, or at DIR; repeatable). `.snapignore` files are
    /// always honoured, so the changes are what a commit would record.
    #[arg(long = "exclude", value_name = "PATTERN")]
    excludes: Vec<String>,
    /// Also honour `.gitignore` files on a directory side, as `snap commit --gitignore`
    /// (also on with the `commit.gitignore` setting).
    #[arg(long)]
    gitignore: bool,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let changes = snap::ops::diff::diff(
        &store,
        &snap::ops::diff::DiffOptions {
            old: args.old.clone(),
            new: args.new.clone(),
            cwd: ctx.cwd.clone(),
            excludes: args.excludes.clone(),
            gitignore: args.gitignore,
        },
    )?;
    for c in &changes {
        if ctx.printer.json() {
            ctx.printer.json_record("change", c)?;
        } else {
            ctx.printer
                .line(format!("{}\t{}", c.kind.letter(), Name(&c.path)))?;
        }
    }
    Ok(if changes.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Negative
    })
}
