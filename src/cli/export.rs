//! `snap export --oci SNAP... -o OUT`

use std::path::PathBuf;

use snap::oci::layout::Format;
use snap::ops::{self, ExportOptions};

use crate::cli::Context;
use crate::cli::commit::human_bytes;
use crate::cli::error::ExitStatus;

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
    /// Snapshots to export; a ref's name becomes the entry's tag.
    #[arg(required = true, value_name = "SNAP")]
    revs: Vec<String>,
    /// The directory, .tar, .tar.gz or .tar.zst to write.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,
    /// The format, instead of guessing it from OUT's name.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Also export every stored ancestor, so `snap log` is the same after an import.
    #[arg(long)]
    with_history: bool,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let _ = args.oci;
    let store = ctx.open_store()?;
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
    let out = ops::export::export_with(&store, &opts, &bar)?;
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
