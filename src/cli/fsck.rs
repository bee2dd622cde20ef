//! `snap fsck`

use crate::cli::Context;
use crate::cli::error::ExitStatus;

#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(ctx: &Context, _args: &Args) -> anyhow::Result<ExitStatus> {
    let store = snap::ops::open_as_is(ctx.store_arg(), &ctx.cwd)?;
    let report = snap::ops::fsck(&store)?;
    if ctx.printer.json() {
        ctx.printer.json_value(&report)?;
    } else {
        for p in &report.problems {
            let kind = serde_json::to_value(p.kind)?;
            let kind = kind.as_str().unwrap_or("problem");
            match p.object {
                Some(d) => ctx.printer.line(format!("{kind} {d}: {}", p.message))?,
                None => ctx.printer.line(format!("{kind}: {}", p.message))?,
            }
            for s in &p.snapshots {
                ctx.printer.line(format!("  needed by {s}"))?;
            }
        }
        for l in &report.leftovers {
            ctx.printer.status("Note", &l.message);
        }
        let foreign = if report.foreign > 0 {
            format!(
                ", {} image or artifact manifests and indexes",
                report.foreign
            )
        } else {
            String::new()
        };
        let summary = format!(
            "{} loose objects, {} packs ({} objects), {} refs, {} snapshots{foreign}",
            report.loose_objects,
            report.packs,
            report.packed_objects,
            report.refs,
            report.snapshots
        );
        if report.is_clean() {
            ctx.printer
                .status("Checked", format!("{summary}: no problems"));
        } else {
            ctx.printer.status(
                "Checked",
                format!("{summary}: {} problems", report.problems.len()),
            );
        }
    }
    Ok(if report.is_clean() {
        ExitStatus::Success
    } else {
        ExitStatus::Negative
    })
}
