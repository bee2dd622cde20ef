//! `snap export --oci SNAP... -o OUT`

use std::path::PathBuf;

use snap::ops::LayoutFormat as Format;
use snap::ops::{self, ExportOptions};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::human_bytes;
use crate::cli::remote::Located;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum FormatArg {
    Dir,
    Tar,
    #[value(name = "tar.gz")]
    TarGz,
    #[value(name = "tar.zst")]
    TarZst,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write an OCI image layout (the only export format).
    #[arg(long, required = true)]
    oci: bool,
    /// Snapshots to export; a ref's name becomes the entry's tag. One registry reference
    /// (REGISTRY/REPO[:TAG|@DIGEST]) that is not in the store is copied straight from the
    /// registry into the layout.
    #[arg(required = true, value_name = "SNAP")]
    revs: Vec<String>,
    /// The directory, .tar, .tar.gz or .tar.zst to write.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// The format, instead of guessing it from OUT's name.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Also export every stored ancestor (for a registry reference: every ancestor the
    /// registry holds), so `snap log` is the same after an import.
    #[arg(long)]
    with_history: bool,
    #[command(flatten)]
    conn: crate::cli::remote::ConnArgs,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let _ = args.oci;
    let opts = ExportOptions {
        revs: args.revs.clone(),
        out: ctx.cwd.join(&args.output),
        format: args.format.map(|f| match f {
            FormatArg::Dir => Format::Dir,
            FormatArg::Tar => Format::Tar,
            FormatArg::TarGz => Format::TarGz,
            FormatArg::TarZst => Format::TarZst,
        }),
        with_history: args.with_history,
    };
    let bar = crate::cli::progress::Bar::new(&ctx.printer);
    // One SNAP may be a registry reference (the rule of `snap show`): copied from there.
    let remote = match args.revs.as_slice() {
        [one] => match crate::cli::remote::locate(ctx, one)? {
            Located::Local(..) => None,
            Located::Remote(r) => Some(r),
        },
        _ => None,
    };
    let out = match remote {
        Some(r) => {
            let client = crate::cli::remote::client_options(ctx, &args.conn)?;
            ops::export::export_remote(&r, &opts, &client, &bar)?
        }
        None => ops::export::export_with(&ctx.open_store()?, &opts, &bar)?,
    };
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
    } else {
        let tags: Vec<&str> = out
            .manifests
            .iter()
            .filter_map(|m| m.tag.as_deref())
            .collect();
        ctx.printer.status(
            "Exported",
            format!(
                "{} snapshot{} ({}), {} blobs, {} to {}",
                out.manifests.len(),
                if out.manifests.len() == 1 { "" } else { "s" },
                if tags.is_empty() {
                    "untagged".to_owned()
                } else {
                    tags.join(", ")
                },
                out.blobs,
                human_bytes(out.bytes),
                args.output.display()
            ),
        );
    }
    Ok(ExitStatus::Success)
}
