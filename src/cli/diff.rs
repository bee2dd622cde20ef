//! `snap diff SNAP [SNAP|DIR]`

use std::path::{Path, PathBuf};

use snap::diff::{self, Change};
use snap::ops::Error;
use snap::snapshot::Snapshot;

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
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let old_id = snap::rev::resolve(&store, &args.old).map_err(Error::from)?;
    let old = Snapshot::load(&store, &old_id).map_err(Error::from)?;
    let skip = [store.dir().to_owned()];
    let changes: Vec<Change> = match &args.new {
        None => {
            // The work tree, limited to what the snapshot records at its top level.
            let names: Vec<String> = snap::snapshot::read_tree(&store, &old.root())
                .map_err(Error::from)?
                .entries()
                .iter()
                .map(|e| e.name.to_string())
                .collect();
            diff::tree_to_dir(&store, &old.root(), store.root(), &skip, Some(&names))
                .map_err(Error::from)?
        }
        Some(new) => {
            let forced_dir = new == "."
                || new == ".."
                || new.starts_with("./")
                || new.starts_with("../")
                || new.starts_with('/');
            let as_rev = if forced_dir {
                None
            } else {
                snap::rev::resolve(&store, new).ok()
            };
            if let Some(new_id) = as_rev {
                let new = Snapshot::load(&store, &new_id).map_err(Error::from)?;
                diff::trees(&store, &old.root(), &new.root()).map_err(Error::from)?
            } else {
                let dir: PathBuf = ctx.cwd.join(new);
                if !Path::new(&dir).is_dir() {
                    // Neither: report it as the revision it most likely was meant to be.
                    snap::rev::resolve(&store, new).map_err(Error::from)?;
                }
                diff::tree_to_dir(&store, &old.root(), &dir, &skip, None).map_err(Error::from)?
            }
        }
    };
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
