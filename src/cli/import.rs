//! `snap import PATH`

use std::path::PathBuf;

use snap::ops::import::{ImportedRef, RefUpdate};
use snap::ops::{self, ImportOptions};

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::human_bytes;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An OCI image layout: a directory, or a tar archive (plain, gzip or zstd).
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Point this head at the layout's single entry, instead of using its ref.name.
    #[arg(long = "ref", value_name = "NAME")]
    ref_name: Option<String>,
    /// Move refs that already point elsewhere.
    #[arg(long)]
    force: bool,
    /// Let an archive expand to at most this many bytes, all staged as they come, instead of the
    /// default limits (100 times the archive's size plus 64 MiB on trust, and 1 TiB in all for
    /// blobs the layout names). Raises or lowers the limit.
    #[arg(long, value_name = "BYTES", env = "SNAP_IMPORT_MAX_BYTES")]
    max_bytes: Option<u64>,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_or_create_store()?;
    let opts = ImportOptions {
        path: ctx.cwd.join(&args.path),
        ref_name: args.ref_name.as_deref().map(ops::refs::head).transpose()?,
        force: args.force,
        max_bytes: args.max_bytes,
        origin: None,
    };
    let bar = crate::cli::progress::Bar::new(&ctx.printer);
    let out = ops::import::import_reporting(&store, &opts, &bar)?;
    if out.missing_oci_layout {
        ctx.printer.status(
            "Note",
            format!(
                "{} has no oci-layout file (OMMX writes such archives): read as image layout 1.0.0",
                args.path.display()
            ),
        );
    }
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
    } else {
        ctx.printer.status(
            "Imported",
            format!(
                "{} manifest{}, {} blobs, {} from {}",
                out.manifests,
                if out.manifests == 1 { "" } else { "s" },
                out.blobs,
                human_bytes(out.bytes),
                args.path.display()
            ),
        );
        crate::cli::import::report_refs(ctx, &out.refs);
        if out.refs.is_empty() {
            for d in &out.entries {
                ctx.printer.status(
                    "Untagged",
                    format!("{d} (name it with --ref, or use the digest)"),
                );
            }
        }
    }
    if report_conflicts(
        ctx,
        &out.refs,
        "the layout has",
        "pass --force to move the refs, or --ref NAME to import under another name",
        "import-conflict",
    ) {
        return Ok(ExitStatus::Conflict);
    }
    Ok(ExitStatus::Success)
}

/// One status line per ref an import or pull moved (or found as it was); conflicts are
/// reported by [`report_conflicts`].
pub fn report_refs(ctx: &Context, refs: &[ImportedRef]) {
    for r in refs {
        let verb = match r.update {
            RefUpdate::Inserted => "Inserted",
            RefUpdate::Unchanged => "Unchanged",
            RefUpdate::Replaced => "Replaced",
            RefUpdate::FastForward => "Updated",
            RefUpdate::Conflicted => continue,
        };
        ctx.printer
            .status(verb, format!("{} {}", r.name, r.digest.short()));
    }
}

/// Prints an error for each conflicted ref of an import or pull, with the hint; returns
/// whether there was any (the command then exits 3).
pub fn report_conflicts(
    ctx: &Context,
    refs: &[ImportedRef],
    theirs: &str,
    hint: &str,
    anchor: &str,
) -> bool {
    let conflicts: Vec<_> = refs
        .iter()
        .filter(|r| r.update == RefUpdate::Conflicted)
        .collect();
    for r in &conflicts {
        ctx.printer.error(format!(
            "ref `{}` points at {}, {theirs} {}; left unchanged",
            r.name,
            r.previous
                .map_or_else(|| "nothing".into(), |p| p.to_string()),
            r.digest
        ));
    }
    if conflicts.is_empty() {
        return false;
    }
    ctx.printer.error_detail("hint", hint);
    ctx.printer
        .error_detail("  see", crate::cli::error::see(anchor));
    true
}
