//! `snap push SNAP REGISTRY/REPO[:TAG]` and `snap pull REGISTRY/REPO[:TAG|@DIGEST]`

use snap::ops::pull::{DEFAULT_WALK_BACK, PullOptions};
use snap::ops::push::{PushOptions, TagKind, TagUpdate};
use std::path::PathBuf;

use crate::cli::Context;
use crate::cli::error::ExitStatus;
use crate::cli::output::human_bytes;
use crate::cli::progress::Bar;
use crate::cli::remote::{ConnArgs, remote};

#[derive(clap::Args, Debug)]
#[allow(clippy::struct_excessive_bools)] // one bool per flag
pub struct PushArgs {
    /// The snapshot to push.
    #[arg(value_name = "SNAP")]
    rev: String,
    /// Where: REGISTRY/REPOSITORY, with an optional :TAG (default: the `remote` setting).
    #[arg(value_name = "REGISTRY/REPO[:TAG]")]
    target: Option<String>,
    /// The moving tag to set as well.
    #[arg(
        long,
        default_value = snap::ops::LATEST,
        value_name = "TAG",
        conflicts_with = "no_moving_tag"
    )]
    moving_tag: String,
    /// Set no moving tag.
    #[arg(long)]
    no_moving_tag: bool,
    /// Do not tag the snapshot with its git commit.
    #[arg(long)]
    no_commit_tag: bool,
    /// Move the commit tag even if it names another snapshot.
    #[arg(long)]
    force: bool,
    /// Push a snapshot taken from a dirty work tree (it gets no commit tag).
    #[arg(long)]
    allow_dirty: bool,
    /// Upload every blob in chunks (for registries or proxies that limit request size).
    #[arg(long)]
    chunked: bool,
    /// Also send every stored ancestor (each tagged sha256-<hex>.snap, so a registry's garbage
    /// collector keeps it), so `snap log` after a pull matches this store's [default: the
    /// `push.history` setting]
    #[arg(long)]
    with_history: bool,
    /// Say what would be uploaded and which tags would move, sending nothing (blob HEADs only).
    #[arg(long)]
    dry_run: bool,
    /// Mount the blobs another repository of the same registry holds instead of sending them
    /// (one request each, no bytes): REGISTRY/REPO, e.g. the repository of an earlier push.
    #[arg(long, value_name = "REGISTRY/REPO")]
    mount_from: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

pub fn push(ctx: &Context, args: &PushArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let target = remote(&store, args.target.as_deref())?;
    let opts = PushOptions {
        rev: args.rev.clone(),
        target,
        moving_tag: (!args.no_moving_tag).then(|| args.moving_tag.clone()),
        commit_tag: !args.no_commit_tag,
        force: args.force,
        allow_dirty: args.allow_dirty,
        // The `push.history` setting is applied by the library.
        history: args.with_history,
        dry_run: args.dry_run,
        mount_from: args
            .mount_from
            .as_deref()
            .map(|r| snap::ops::connection::remote(None, Some(r)))
            .transpose()?,
        client: args.conn.options(&store, args.chunked)?,
    };
    let bar = Bar::new(&ctx.printer);
    let out = snap::ops::push(&store, &opts, &bar)?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
        return Ok(ExitStatus::Success);
    }
    if out.dry_run {
        return dry_run(ctx, &out);
    }
    ctx.printer.status(
        "Pushed",
        format!(
            "{} to {}: {} of {} blobs uploaded ({}{}), {} already there, {} requests",
            out.digest.short(),
            out.repository,
            out.uploaded,
            out.blobs,
            human_bytes(out.uploaded_bytes),
            if out.resumed > 0 {
                format!(", {} continued from an interrupted push", out.resumed)
            } else {
                String::new()
            },
            out.skipped,
            out.requests
        ),
    );
    for t in &out.tags {
        let verb = match t.update {
            TagUpdate::Inserted => "Tagged",
            TagUpdate::Unchanged => "Unchanged",
            TagUpdate::Replaced => "Moved",
        };
        let kind = match t.kind {
            TagKind::Given => "",
            TagKind::Commit => " (git commit)",
            TagKind::Moving => " (moving)",
        };
        ctx.printer
            .status(verb, format!("{}:{}{kind}", out.repository, t.tag));
    }
    if out.referrers > 0 {
        ctx.printer.status(
            "Sent",
            format!(
                "{} referrer{} (signatures, attached artifacts)",
                out.referrers,
                if out.referrers == 1 { "" } else { "s" }
            ),
        );
    }
    ctx.printer.line(out.digest)?;
    Ok(ExitStatus::Success)
}

/// `snap push --dry-run`: the plan, as data on stdout.
fn dry_run(ctx: &Context, out: &snap::ops::PushOutcome) -> anyhow::Result<ExitStatus> {
    ctx.printer.line(format!(
        "would push {} to {}: {} of {} blobs to upload ({}), {} already there",
        out.digest,
        out.repository,
        out.uploaded,
        out.blobs,
        human_bytes(out.uploaded_bytes),
        out.skipped
    ))?;
    for t in &out.tags {
        let kind = match t.kind {
            TagKind::Given => "",
            TagKind::Commit => " (git commit)",
            TagKind::Moving => " (moving)",
        };
        let what = match (t.update, t.previous) {
            (TagUpdate::Inserted, _) => "would be created".to_owned(),
            (TagUpdate::Unchanged, _) => "already names it".to_owned(),
            (TagUpdate::Replaced, Some(p)) => format!("would move from {}", p.short()),
            (TagUpdate::Replaced, None) => "would move".to_owned(),
        };
        ctx.printer
            .line(format!("tag {}:{}{kind} {what}", out.repository, t.tag))?;
    }
    ctx.printer.status(
        "Checked",
        format!("{} requests, nothing sent (dry run)", out.requests),
    );
    Ok(ExitStatus::Success)
}

#[derive(clap::Args, Debug)]
#[allow(clippy::struct_excessive_bools)] // one bool per independent flag of `snap pull`
pub struct PullArgs {
    /// What: REGISTRY/REPOSITORY[:TAG|@DIGEST] (no tag means `latest`; default: the `remote`
    /// setting).
    #[arg(value_name = "REGISTRY/REPO[:TAG|@DIGEST]")]
    source: Option<String>,
    /// The head to point at the result (default: the tag; `latest` with --walk-back).
    #[arg(long = "ref", value_name = "NAME")]
    ref_name: Option<String>,
    /// Move the head even if it is not an ancestor of what was pulled.
    #[arg(long)]
    force: bool,
    /// Take the snapshot of the nearest commit that has one: HEAD, then its first parents.
    #[arg(long)]
    walk_back: bool,
    /// How many commits --walk-back tries.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_WALK_BACK, requires = "walk_back")]
    max: usize,
    /// Fetch at most N generations of ancestors the registry holds (pushed with
    /// --with-history); 0: none [default: all it holds]
    #[arg(long, value_name = "N")]
    depth: Option<u64>,
    /// Refuse it, storing nothing, unless an allowed signer signed it (exit 1) [setting:
    /// pull.verify]
    #[arg(long, conflicts_with = "no_referrers")]
    verify: bool,
    /// Who may sign, for --verify (ssh-keygen's allowed-signers format) [setting:
    /// verify.allowed-signers]
    #[arg(long, value_name = "FILE")]
    allowed_signers: Option<PathBuf>,
    /// Take the snapshot without its referrers (signatures, attached artifacts).
    #[arg(long)]
    no_referrers: bool,
    #[command(flatten)]
    conn: ConnArgs,
}

pub fn pull(ctx: &Context, args: &PullArgs) -> anyhow::Result<ExitStatus> {
    // Check a given reference before creating anything.
    if let Some(given) = &args.source {
        snap::ops::connection::remote(None, Some(given))?;
    }
    // Like `git clone`: pulling into a directory without a store creates one.
    let store = ctx.open_or_create_store()?;
    let mut source = remote(&store, args.source.as_deref())?;
    if args.walk_back && args.source.is_none() {
        // The setting may carry a tag for push; walk-back picks the tag itself.
        source.tag = None;
    }
    if args.walk_back && (source.tag.is_some() || source.digest.is_some()) {
        anyhow::bail!(
            "--walk-back picks the tag itself; give REGISTRY/REPO without :TAG or @DIGEST"
        );
    }
    let opts = PullOptions {
        source,
        ref_name: args
            .ref_name
            .as_deref()
            .map(snap::ops::refs::head)
            .transpose()?,
        force: args.force,
        walk_back: args.walk_back.then_some(args.max),
        depth: args.depth,
        worktree: ctx.cwd.clone(),
        client: args.conn.options(&store, false)?,
        referrers: !args.no_referrers,
        verify: args.verify,
        allowed_signers: args.allowed_signers.clone(),
    };
    let bar = Bar::new(&ctx.printer);
    let out = snap::ops::pull(&store, &opts, &bar)?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
    } else {
        if let Some(w) = &out.walk_back {
            ctx.printer.status(
                "Found",
                format!(
                    "snapshot of commit {} ({} commit{} behind HEAD)",
                    &w.commit[..w.commit.len().min(12)],
                    w.commits_behind,
                    if w.commits_behind == 1 { "" } else { "s" }
                ),
            );
        }
        ctx.printer.status(
            "Pulled",
            format!(
                "{} from {}: {} of {} blobs downloaded ({}{}), {} already here, {} requests",
                out.digest.short(),
                out.reference,
                out.downloaded,
                out.blobs,
                human_bytes(out.downloaded_bytes),
                match out.resumed {
                    0 => String::new(),
                    n => format!(", {n} continued where an interrupted pull stopped"),
                },
                out.present,
                out.requests
            ),
        );
        if let Some(v) = &out.verification {
            for s in &v.signatures {
                if let snap::ops::sign::SignatureCheckResult::Good { principal } = &s.check {
                    ctx.printer.status(
                        "Verified",
                        format!("signed by {principal} ({})", s.key.as_deref().unwrap_or("")),
                    );
                }
            }
        }
        if out.referrers > 0 {
            ctx.printer.status(
                "Took",
                format!(
                    "{} referrer{} (signatures, attached artifacts)",
                    out.referrers,
                    if out.referrers == 1 { "" } else { "s" }
                ),
            );
        }
        crate::cli::import::report_refs(ctx, &out.refs);
        if let Some(f) = &out.freshness {
            ctx.printer
                .status("Freshness", crate::cli::status::describe(f));
        }
    }
    if crate::cli::import::report_conflicts(
        ctx,
        &out.refs,
        "which is not an ancestor of",
        "pass --force to move the ref, or --ref NAME to pull under another name",
        "pull-conflict",
    ) {
        return Ok(ExitStatus::Conflict);
    }
    if !ctx.printer.json() {
        ctx.printer.line(out.digest)?;
    }
    Ok(ExitStatus::Success)
}
