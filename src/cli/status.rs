//! `snap status`

use std::path::PathBuf;

use snap::Digest;
use snap::ops::Error;
use snap::provenance::{self, FreshState, Freshness};
use snap::snapshot::Snapshot;
use snap::store::RefKind;

use crate::cli::Context;
use crate::cli::error::ExitStatus;

#[derive(clap::Args, Debug)]
pub struct Args {}

/// `snap status --json`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Status {
    pub store: PathBuf,
    pub refs: Vec<RefStatus>,
}

/// One ref's freshness.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct RefStatus {
    pub name: String,
    pub kind: RefKind,
    pub digest: Digest,
    pub freshness: Freshness,
}

pub fn run(ctx: &Context, _args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let mut refs = Vec::new();
    for (name, digest) in store.refs.list().map_err(Error::from)? {
        let snap = Snapshot::load(&store, &digest).map_err(Error::from)?;
        let freshness =
            provenance::freshness(store.root(), &snap.config.provenance).map_err(Error::from)?;
        refs.push(RefStatus {
            name: name.to_string(),
            kind: name.kind(),
            digest,
            freshness,
        });
    }
    if ctx.printer.json() {
        ctx.printer.json_value(&Status {
            store: store.dir().to_owned(),
            refs,
        })?;
        return Ok(ExitStatus::Success);
    }
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
