//! `snap ls SNAP [PATH]` and `snap cat SNAP PATH`

use snap::ops;
use snap::ops::ls::{Listed, LsEntry, LsOptions};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::Name;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The snapshot.
    #[arg(value_name = "SNAP")]
    rev: String,
    /// A directory or file inside the snapshot (default: the root).
    #[arg(value_name = "PATH", default_value = "")]
    path: String,
    /// List everything below PATH.
    #[arg(short, long)]
    recursive: bool,
}

#[derive(clap::Args, Debug)]
pub struct CatArgs {
    /// The snapshot.
    #[arg(value_name = "SNAP")]
    rev: String,
    /// The file inside the snapshot.
    #[arg(value_name = "PATH")]
    path: String,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let opts = LsOptions {
        rev: args.rev.clone(),
        path: args.path.clone(),
        recursive: args.recursive,
    };
    ops::ls::ls(&store, &opts, &mut |item| match item {
        Listed::Entry { entry, name } => show(ctx, &entry, &name),
        Listed::Layer(e) => layer(ctx, e),
        Listed::Manifest(d) => ctx
            .printer
            .line(format!("manifest {} {} {}", d.digest, d.media_type, d.size)),
    })?;
    Ok(ExitStatus::Success)
}

fn show(ctx: &Context, e: &LsEntry, name: &str) -> std::io::Result<()> {
    if ctx.printer.json() {
        return ctx.printer.json_record("entry", e);
    }
    let mode = match (e.kind.as_str(), e.executable) {
        ("dir", _) => "drwxr-xr-x",
        ("symlink", _) => "lrwxrwxrwx",
        (_, true) => "-rwxr-xr-x",
        _ => "-rw-r--r--",
    };
    let size = e.size.map_or_else(|| "-".to_owned(), |s| s.to_string());
    let digest = e.digest.map_or_else(|| "-".repeat(12), |d| d.short());
    let name = match (&e.target, &e.media_type) {
        (Some(t), _) => format!("{} -> {}", Name(name), Name(t)),
        (None, _) if e.kind == "dir" => format!("{}/", Name(name)),
        // An untitled layer of an artifact: say what it is.
        (None, Some(m)) if name.starts_with(ops::ls::UNTITLED_DIR) => {
            format!("{} ({})", Name(name), Name(m))
        }
        (None, _) => Name(name).to_string(),
    };
    ctx.printer
        .line(format!("{mode} {size:>12} {digest} {name}"))
}

/// An entry of an image's layers, with the layer it comes from.
fn layer(ctx: &Context, e: &ops::ls::LayerEntry) -> std::io::Result<()> {
    if ctx.printer.json() {
        return ctx.printer.json_record("layer_entry", e);
    }
    let target = e
        .target
        .as_deref()
        .map(|t| format!(" -> {}", Name(t)))
        .unwrap_or_default();
    ctx.printer.line(format!(
        "layer {} {:<8} {:o} {:>12} {}{target}",
        e.layer,
        e.kind,
        e.mode,
        e.size,
        Name(&e.path)
    ))
}

pub fn cat(ctx: &Context, args: &CatArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let mut out = std::io::stdout().lock();
    ops::ls::cat(&store, &args.rev, &args.path, &mut out)?;
    Ok(ExitStatus::Success)
}
