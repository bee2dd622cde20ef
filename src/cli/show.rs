//! `snap show SNAP`

use std::collections::BTreeMap;
use std::io::Write;

use snap::Digest;
use snap::object::{Provenance, Stats};
use snap::oci::{self, Descriptor};
use snap::ops::Error;
use snap::snapshot::Artifact;

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::Name;
use crate::cli::output::human_bytes;
use crate::cli::remote::Located;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The snapshot.
    #[arg(value_name = "SNAP", default_value = snap::oci::LATEST)]
    rev: String,
    /// Write the manifest's bytes exactly as stored (its sha256 is the snapshot id).
    #[arg(long)]
    manifest: bool,
    /// How to reach a registry, when SNAP is a registry reference (REGISTRY/REPO[:TAG|@DIGEST]).
    #[command(flatten)]
    conn: crate::cli::push::ConnArgs,
}

/// `snap show --json`.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct Show {
    pub digest: Digest,
    pub refs: Vec<String>,
    pub root: Digest,
    pub parents: Vec<Digest>,
    pub message: String,
    pub created: Option<String>,
    pub provenance: Provenance,
    pub stats: Stats,
    pub mode: String,
    pub annotations: BTreeMap<String, String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    // A SNAP that resolves in the store is local; a registry reference is read from there
    // (manifest and config only): see `cli::remote`.
    match crate::cli::remote::locate(ctx, &args.rev)? {
        Located::Local(store, id) => {
            let artifact = Artifact::load(&store, &id).map_err(Error::from)?;
            render(ctx, Some(&store), artifact, args.manifest)
        }
        Located::Remote(remote) => {
            let opts = crate::cli::remote::client_options(ctx, &args.conn)?;
            let out = snap::ops::remote::show(&remote, &opts)?;
            ctx.printer.detail(
                "Read",
                format!(
                    "{} from the registry ({} requests, no layer blob)",
                    out.reference, out.requests
                ),
            );
            render(ctx, None, out.artifact, args.manifest)
        }
    }
}

/// Prints a snapshot (with the refs naming it, when it is in `store`), or anything else.
fn render(
    ctx: &Context,
    store: Option<&snap::store::Store>,
    artifact: Artifact,
    raw: bool,
) -> anyhow::Result<ExitStatus> {
    let snap = match artifact {
        Artifact::Snapshot(s) => *s,
        Artifact::Manifest(ref m) => return show_foreign(ctx, &m.digest(), &artifact, raw),
        Artifact::Index(ref i) => return show_foreign(ctx, &i.digest(), &artifact, raw),
    };
    let id = snap.id;
    if raw {
        let mut out = std::io::stdout().lock();
        out.write_all(snap.manifest.bytes())?;
        out.flush()?;
        return Ok(ExitStatus::Success);
    }
    let m = snap.manifest.manifest();
    let refs: Vec<String> = match store {
        Some(store) => store
            .refs
            .list()
            .map_err(Error::from)?
            .into_iter()
            .filter(|(_, d)| *d == id)
            .map(|(n, _)| n.to_string())
            .collect(),
        None => Vec::new(),
    };
    let direct = m.layers.iter().all(|l| {
        l.media_type != oci::MEDIA_TYPE_LAYER_TAR_ZSTD && l.media_type != oci::MEDIA_TYPE_TREES
    });
    let show = Show {
        digest: id,
        refs,
        root: snap.root(),
        parents: snap.config.parents.clone(),
        message: snap.config.message.clone(),
        created: snap.config.created.clone(),
        provenance: snap.config.provenance.clone(),
        stats: snap.config.stats,
        mode: if direct { "direct" } else { "grouped" }.to_owned(),
        annotations: m.annotations.clone(),
        config: m.config.clone(),
        layers: m.layers.clone(),
    };
    if ctx.printer.json() {
        ctx.printer.json_value(&show)?;
        return Ok(ExitStatus::Success);
    }
    let p = &ctx.printer;
    p.line_with_id("", &format!("snapshot {id}"), "")?;
    if !show.refs.is_empty() {
        p.line(format!("Refs:     {}", show.refs.join(", ")))?;
    }
    p.line(format!(
        "Date:     {}",
        crate::cli::log::describe_time(
            show.created.as_deref(),
            show.provenance.git.as_ref().and_then(|g| g.time.as_deref())
        )
    ))?;
    for parent in &show.parents {
        p.line(format!("Parent:   {parent}"))?;
    }
    if let Some(g) = &show.provenance.git {
        p.line(format!(
            "Git:      {}{}{}",
            g.commit,
            g.branch
                .as_deref()
                .map(|b| format!(" ({b})"))
                .unwrap_or_default(),
            if g.dirty { " dirty" } else { "" }
        ))?;
        if let Some(r) = &g.remote {
            p.line(format!("Remote:   {r}"))?;
        }
    }
    for i in &show.provenance.inputs {
        p.line(format!(
            "Input:    {} {}{}",
            Name(&i.path),
            i.tree.as_deref().unwrap_or("(not in HEAD)"),
            if i.dirty { " dirty" } else { "" }
        ))?;
    }
    p.line(format!(
        "Contents: {} files, {} dirs, {} symlinks, {}",
        show.stats.files,
        show.stats.dirs,
        show.stats.symlinks,
        human_bytes(show.stats.bytes)
    ))?;
    let layer_bytes: u64 = show.layers.iter().map(|l| l.size).sum();
    p.line(format!(
        "Layers:   {} ({} mode), {} stored; manifest {} bytes",
        show.layers.len(),
        show.mode,
        human_bytes(layer_bytes),
        snap.manifest.bytes().len()
    ))?;
    p.line(format!("Root:     {}", show.root))?;
    for (k, v) in &show.annotations {
        p.line(format!("Annotation: {k}={v}"))?;
    }
    if !show.message.is_empty() {
        p.line("")?;
        for l in show.message.lines() {
            p.line(format!("    {l}"))?;
        }
    }
    Ok(ExitStatus::Success)
}

/// `snap show --json` of a manifest or index that is not a snap snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
pub struct ShowForeign {
    pub digest: Digest,
    pub kind: String,
    #[serde(rename = "mediaType")]
    pub media_type: Option<String>,
    #[serde(rename = "artifactType")]
    pub artifact_type: Option<String>,
    pub config: Option<Descriptor>,
    pub layers: Vec<Descriptor>,
    pub manifests: Vec<Descriptor>,
    pub annotations: BTreeMap<String, String>,
}

fn show_foreign(ctx: &Context, id: &Digest, a: &Artifact, raw: bool) -> anyhow::Result<ExitStatus> {
    let (bytes, show) = match a {
        Artifact::Manifest(m) => {
            let v = m.manifest();
            let kind = match snap::worktree::unpack::kind(v) {
                snap::worktree::unpack::Kind::Image => "image",
                snap::worktree::unpack::Kind::Files => "artifact",
            };
            (
                m.bytes(),
                ShowForeign {
                    digest: *id,
                    kind: kind.to_owned(),
                    media_type: v.media_type.clone(),
                    artifact_type: v.artifact_type.clone(),
                    config: Some(v.config.clone()),
                    layers: v.layers.clone(),
                    manifests: Vec::new(),
                    annotations: v.annotations.clone(),
                },
            )
        }
        Artifact::Index(i) => (
            i.bytes(),
            ShowForeign {
                digest: *id,
                kind: "index".to_owned(),
                media_type: i.index().media_type.clone(),
                artifact_type: None,
                config: None,
                layers: Vec::new(),
                manifests: i.index().manifests.clone(),
                annotations: i.index().annotations.clone(),
            },
        ),
        Artifact::Snapshot(_) => unreachable!("snapshots are shown by run"),
    };
    if raw {
        let mut out = std::io::stdout().lock();
        out.write_all(bytes)?;
        out.flush()?;
        return Ok(ExitStatus::Success);
    }
    if ctx.printer.json() {
        ctx.printer.json_value(&show)?;
        return Ok(ExitStatus::Success);
    }
    let p = &ctx.printer;
    p.line_with_id("", &format!("{} {id}", show.kind), "")?;
    p.line(format!(
        "Media type:    {}",
        show.media_type.as_deref().unwrap_or("(none)")
    ))?;
    if let Some(t) = &show.artifact_type {
        p.line(format!("Artifact type: {t}"))?;
    }
    if let Some(c) = &show.config {
        p.line(format!(
            "Config:        {} {} ({} bytes)",
            c.media_type,
            c.digest.short(),
            c.size
        ))?;
    }
    for (i, l) in show.layers.iter().enumerate() {
        let title = l
            .title()
            .map(|t| format!(" {}", Name(t)))
            .unwrap_or_default();
        p.line(format!(
            "Layer {i}:{:>7} {} {} {}{title}",
            "",
            l.digest.short(),
            human_bytes(l.size),
            l.media_type
        ))?;
    }
    for m in &show.manifests {
        p.line(format!(
            "Manifest:      {} {} ({} bytes)",
            m.digest, m.media_type, m.size
        ))?;
    }
    for (k, v) in &show.annotations {
        p.line(format!("Annotation: {k}={v}"))?;
    }
    Ok(ExitStatus::Success)
}
