//! `snap ls SNAP [PATH]` and `snap cat SNAP PATH`

use snap::ops;
use snap::ops::ls::{Listed, LsEntry, LsOptions};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::{Name, Printer};

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
        Listed::Entry { entry, name } => show(&ctx.printer, &entry, &name),
        Listed::Layer(e) => layer(&ctx.printer, e),
        Listed::Manifest(d) => ctx
            .printer
            .line(format!("manifest {} {} {}", d.digest, d.media_type, d.size)),
    })?;
    Ok(ExitStatus::Success)
}

fn show(p: &Printer, e: &LsEntry, name: &str) -> std::io::Result<()> {
    if p.json() {
        return p.json_record("entry", e);
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
    p.line(format!("{mode} {size:>12} {digest} {name}"))
}

/// An entry of an image's layers, with the layer it comes from.
fn layer(p: &Printer, e: &ops::ls::LayerEntry) -> std::io::Result<()> {
    if p.json() {
        return p.json_record("layer_entry", e);
    }
    let target = e
        .target
        .as_deref()
        .map(|t| format!(" -> {}", Name(t)))
        .unwrap_or_default();
    p.line(format!(
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
    let mut out = ctx.printer.data().clone();
    ops::ls::cat(&store, &args.rev, &args.path, &mut out)?;
    Ok(ExitStatus::Success)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, executable: bool) -> LsEntry {
        LsEntry {
            path: path.into(),
            kind: "file".into(),
            size: Some(42),
            digest: Some(snap::ops::Digest::of(b"42")),
            executable,
            target: None,
            media_type: None,
        }
    }

    #[test]
    fn entries_read_like_ls_l_and_hostile_names_cannot_forge_a_line() -> std::io::Result<()> {
        let (p, captured) = Printer::capture(false, 0);
        let short = snap::ops::Digest::of(b"42").short();
        show(&p, &file("dir/run.sh", true), "run.sh")?;
        show(
            &p,
            &file("x\n-rw-r--r-- 1 forged", false),
            "x\n-rw-r--r-- 1 forged",
        )?;
        let link = LsEntry {
            kind: "symlink".into(),
            size: None,
            digest: None,
            target: Some("../elsewhere".into()),
            ..file("link", false)
        };
        show(&p, &link, "link")?;
        let out = captured.out();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 3, "{out}");
        assert_eq!(lines[0], format!("-rwxr-xr-x           42 {short} run.sh"));
        assert_eq!(
            lines[1],
            format!("-rw-r--r--           42 {short} \"x\\n-rw-r--r-- 1 forged\"")
        );
        assert_eq!(
            lines[2],
            "lrwxrwxrwx            - ------------ link -> ../elsewhere"
        );
        Ok(())
    }
}
