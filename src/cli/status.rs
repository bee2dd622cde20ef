//! `snap status`

use snap::ops::{FreshState, Freshness};

use crate::cli::Context;
use crate::cli::error::ExitStatus;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ask a registry instead: does it have a snapshot of HEAD, or how many commits behind is
    /// the nearest one? (REGISTRY/REPO; default: the `remote` setting.) Exit 1 when HEAD has
    /// none.
    #[arg(long, value_name = "REGISTRY/REPO", num_args = 0..=1, default_missing_value = "")]
    remote: Option<String>,
    /// How many first-parent commits --remote looks back through.
    #[arg(long, value_name = "N", default_value_t = snap::ops::pull::DEFAULT_WALK_BACK, requires = "remote")]
    max: usize,
    #[command(flatten)]
    conn: crate::cli::remote::ConnArgs,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    if let Some(given) = &args.remote {
        return remote(ctx, args, Some(given.as_str()).filter(|g| !g.is_empty()));
    }
    let store = ctx.open_store()?;
    let status = snap::ops::status::status(&store)?;
    if ctx.printer.json() {
        ctx.printer.json_value(&status)?;
        return Ok(ExitStatus::Success);
    }
    let refs = status.refs;
    ctx.printer
        .line(format!("store {}", store.dir().display()))?;
    let width = refs.iter().map(|r| r.name.len()).max().unwrap_or(0);
    for r in &refs {
        ctx.printer.line_with_id(
            format!("{:width$}  ", r.name),
            &r.digest.short(),
            format!("  {}", describe(&r.freshness)),
        )?;
    }
    Ok(ExitStatus::Success)
}

/// `snap status --remote`: the nearest snapshot of HEAD's first-parent history in a registry,
/// found by its commit tag (HEAD requests only).
fn remote(ctx: &Context, args: &Args, given: Option<&str>) -> anyhow::Result<ExitStatus> {
    let mut remote = crate::cli::remote::given_or_setting(ctx, given)?;
    // The commit tags are looked up; a tag in the reference (or setting) plays no part.
    remote.tag = None;
    remote.digest = None;
    let opts = crate::cli::remote::client_options(ctx, &args.conn)?;
    let out = snap::ops::remote::status(&remote, &ctx.cwd, args.max, &opts)?;
    let fresh = out.nearest.as_ref().is_some_and(|n| n.commits_behind == 0);
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
    } else {
        let line = match &out.nearest {
            Some(n) if n.commits_behind == 0 => {
                format!(
                    "fresh: {} has a snapshot of HEAD {}",
                    out.repository,
                    short(&out.head)
                )
            }
            Some(n) => format!(
                "stale: the nearest snapshot in {} is of {}, {} commit{} behind HEAD {}",
                out.repository,
                short(&n.commit),
                n.commits_behind,
                if n.commits_behind == 1 { "" } else { "s" },
                short(&out.head)
            ),
            None => format!(
                "missing: {} has no snapshot of HEAD {} or of its {} first parents before it",
                out.repository,
                short(&out.head),
                out.tried.saturating_sub(1)
            ),
        };
        match &out.nearest {
            Some(n) => ctx.printer.line_with_id(
                format!("{}  ", n.tag),
                &n.digest.short(),
                format!("  {line}"),
            )?,
            None => ctx.printer.line(line)?,
        }
        ctx.printer.detail(
            "Asked",
            format!(
                "for {} commit tags ({} requests, no layer blob)",
                out.tried, out.requests
            ),
        );
    }
    Ok(if fresh {
        ExitStatus::Success
    } else {
        ExitStatus::Negative
    })
}

fn short(id: &str) -> &str {
    id.get(..7).unwrap_or(id)
}

/// "stale: built from abc1234, HEAD is def5678 (3 commits ahead); inputs changed: src/".
pub fn describe(f: &Freshness) -> String {
    let built = f.built_from.as_deref().map(short);
    let head = f.head.as_deref().map(short);
    let ahead = match f.commits_ahead {
        Some(1) => " (1 commit ahead)".to_owned(),
        Some(n) if n > 0 => format!(" ({n} commits ahead)"),
        _ => String::new(),
    };
    let inputs = if f.inputs_changed.is_empty() {
        String::new()
    } else {
        format!(
            "; inputs changed: {}",
            f.inputs_changed
                .iter()
                .map(|i| format!("{i}/"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    match (f.state, built, head) {
        (FreshState::Unknown, None, _) => "unknown: no git provenance recorded".into(),
        (FreshState::Unknown, Some(b), _) => {
            format!("unknown: built from {b}, not in a git repository now")
        }
        (FreshState::Fresh, Some(b), Some(h)) if b == h => format!("fresh: built from HEAD {b}"),
        (FreshState::Fresh, Some(b), Some(h)) => {
            format!("fresh: built from {b}, HEAD is {h}{ahead}; inputs unchanged")
        }
        (FreshState::Dirty, Some(b), _) => {
            format!("dirty: built from {b} with uncommitted changes{inputs}")
        }
        (_, Some(b), Some(h)) => format!("stale: built from {b}, HEAD is {h}{ahead}{inputs}"),
        _ => format!("{:?}", f.state).to_lowercase(),
    }
}
