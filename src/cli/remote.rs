//! How to reach a registry (the connection flags and settings, the `remote` default), registry
//! references where a SNAP goes (`snap show`, `snap log`), `snap ls-remote`, and
//! `snap status --remote`.
//!
//! The resolution rule: a SNAP that resolves in the store is local, whatever it looks like
//! (a ref may be named `localhost:5000/ommx/lp:v1`); otherwise, when it names a registry
//! explicitly (first component with a `.` or `:`, or `localhost`), it is a registry
//! reference, read without pulling.

use snap::ops::{self, ClientOptions, Digest, Error, ErrorKind, RemoteRef, Store, Timeouts};

use crate::cli::Context;
use crate::cli::error::ExitStatus;

/// How to reach a registry (push, pull, and every command that reads one).
#[derive(clap::Args, Debug)]
pub struct ConnArgs {
    /// Plain HTTP for a registry that is not on this machine (loopback always may).
    #[arg(long)]
    insecure: bool,
    /// Transfers in flight at once.
    #[arg(long, short = 'j', default_value_t = 4, value_name = "N")]
    jobs: usize,
    /// Seconds to wait for a registry: to connect, and for a transfer that makes no progress
    /// [default: the `http.timeout` setting, else 30]
    #[arg(long, value_name = "SECS", env = "SNAP_TIMEOUT", value_parser = Timeouts::parse_timeout)]
    timeout: Option<std::time::Duration>,
    /// A transfer slower than this many bytes per second for the timeout fails (0: only one
    /// with no progress at all) [default: the `http.low-speed-limit` setting, else 1024]
    #[arg(long, value_name = "BYTES", env = "SNAP_LOW_SPEED_LIMIT", value_parser = Timeouts::parse_low_speed_limit)]
    low_speed_limit: Option<u64>,
}

impl ConnArgs {
    /// The connection settings: flags (or their variables) first, then the store's settings,
    /// then the defaults (applied by the library).
    pub fn options(&self, store: &Store, chunked: bool) -> anyhow::Result<ClientOptions> {
        self.options_for(Some(store), chunked)
    }

    /// As `options`, with only the flags and defaults when there is no store.
    pub fn options_for(
        &self,
        store: Option<&Store>,
        chunked: bool,
    ) -> anyhow::Result<ClientOptions> {
        let given = ops::Connection {
            insecure: self.insecure,
            jobs: Some(self.jobs),
            chunked,
            timeout: self.timeout,
            low_speed_limit: self.low_speed_limit,
        };
        Ok(ops::client_options(store, &given)?)
    }
}

/// The registry reference given, else the store's `remote` setting.
pub fn remote(store: &Store, given: Option<&str>) -> anyhow::Result<RemoteRef> {
    Ok(ops::connection::remote(Some(store), given)?)
}

/// Where a SNAP argument points.
pub enum Located {
    /// A snapshot (or other manifest or index) in the store.
    Local(Store, Digest),
    /// A registry reference, not in the store.
    Remote(RemoteRef),
}

/// Applies the resolution rule: local first, then a registry reference, else the local error.
pub fn locate(ctx: &Context, rev: &str) -> anyhow::Result<Located> {
    let local = ctx.open_store().and_then(|store| {
        let id = ops::resolve(&store, rev)?;
        Ok((store, id))
    });
    match local {
        Ok((store, id)) => Ok(Located::Local(store, id)),
        Err(e) => match RemoteRef::parse_explicit(rev) {
            // Only "no such thing here" (or no store at all) falls through to the registry:
            // a corrupt store is reported as such.
            Some(r) if falls_through(&e) => Ok(Located::Remote(r)),
            _ => Err(e),
        },
    }
}

fn falls_through(e: &anyhow::Error) -> bool {
    e.chain()
        .find_map(|c| c.downcast_ref::<Error>())
        .is_none_or(|o| matches!(o.kind(), ErrorKind::NotFound | ErrorKind::InvalidInput))
}

/// The connection settings for a registry reference: the store's, when there is one.
pub fn client_options(ctx: &Context, conn: &ConnArgs) -> anyhow::Result<ClientOptions> {
    let store = ctx.open_store().ok();
    conn.options_for(store.as_ref(), false)
}

#[derive(clap::Args, Debug)]
pub struct LsRemoteArgs {
    /// The repository: REGISTRY/REPO (default: the `remote` setting; a tag in it is ignored).
    #[arg(value_name = "REGISTRY/REPO")]
    repository: Option<String>,
    #[command(flatten)]
    conn: ConnArgs,
}

/// `snap ls-remote`: one line per tag.
pub fn ls_remote(ctx: &Context, args: &LsRemoteArgs) -> anyhow::Result<ExitStatus> {
    let remote = given_or_setting(ctx, args.repository.as_deref())?;
    let opts = client_options(ctx, &args.conn)?;
    let out = ops::remote::ls_remote(&remote, &opts)?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
        return Ok(ExitStatus::Success);
    }
    let width = out.tags.iter().map(|t| t.tag.len()).max().unwrap_or(0);
    for t in &out.tags {
        let what = match t.kind {
            ops::remote::RemoteKind::Snapshot => format!(
                "{}{} {}",
                t.commit
                    .as_deref()
                    .map_or_else(|| "(no git)".to_owned(), |c| c.chars().take(12).collect()),
                if t.dirty { " dirty" } else { "" },
                t.created.as_deref().unwrap_or("(no date)")
            ),
            _ => t.artifact_type.as_deref().map_or_else(
                || t.media_type.clone(),
                |a| format!("{} ({a})", t.media_type),
            ),
        };
        ctx.printer.line_with_id(
            format!("{:width$}  ", t.tag),
            &t.digest.short(),
            format!("  {what}"),
        )?;
    }
    ctx.printer.status(
        "Listed",
        format!(
            "{} tags of {} ({} requests, no layer read)",
            out.tags.len(),
            out.repository,
            out.requests
        ),
    );
    Ok(ExitStatus::Success)
}

/// The registry reference given, else the store's `remote` setting.
pub fn given_or_setting(ctx: &Context, given: Option<&str>) -> anyhow::Result<RemoteRef> {
    match given {
        Some(text) => Ok(ops::connection::remote(None, Some(text))?),
        None => remote(&ctx.open_store()?, None),
    }
}
