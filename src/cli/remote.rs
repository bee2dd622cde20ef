//! How to reach a registry (the connection flags and settings, the `remote` default), registry
//! references where a SNAP goes (`snap show`, `snap log`), `snap ls-remote`, and
//! `snap status --remote`.
//!
//! The resolution rule: a SNAP that resolves in the store is local, whatever it looks like
//! (a ref may be named `localhost:5000/ommx/lp:v1`); otherwise, when it names a registry
//! explicitly (first component with a `.` or `:`, or `localhost`), it is a registry
//! reference, read without pulling.

use snap::Digest;
use snap::ops::{Error, ErrorKind};
use snap::registry::{ClientOptions, RemoteRef, Timeouts};
use snap::store::Store;

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
    /// then the defaults.
    pub fn options(
        &self,
        store: &snap::store::Store,
        chunked: bool,
    ) -> anyhow::Result<ClientOptions> {
        self.options_for(Some(store), chunked)
    }

    /// As `options`, with only the flags and defaults when there is no store.
    pub fn options_for(
        &self,
        store: Option<&snap::store::Store>,
        chunked: bool,
    ) -> anyhow::Result<ClientOptions> {
        let settings = match store {
            Some(store) => snap::config::Config::load(store.dir())?,
            None => snap::config::Config::default(),
        };
        let setting = |key: &str| settings.get(key).map(str::to_owned);
        let defaults = Timeouts::default();
        let timeout = match (self.timeout, setting("http.timeout")) {
            (Some(t), _) => t,
            (None, Some(v)) => Timeouts::parse_timeout(&v)
                .map_err(|reason| anyhow::anyhow!("the http.timeout setting `{v}`: {reason}"))?,
            (None, None) => defaults.timeout,
        };
        let low_speed_limit = match (self.low_speed_limit, setting("http.low-speed-limit")) {
            (Some(l), _) => l,
            (None, Some(v)) => Timeouts::parse_low_speed_limit(&v).map_err(|reason| {
                anyhow::anyhow!("the http.low-speed-limit setting `{v}`: {reason}")
            })?,
            (None, None) => defaults.low_speed_limit,
        };
        Ok(ClientOptions {
            insecure: self.insecure,
            jobs: self.jobs.clamp(1, 16),
            chunked,
            timeouts: Timeouts {
                timeout,
                low_speed_limit,
            },
        })
    }
}

/// The registry reference given, else the store's `remote` setting.
pub fn remote(store: &snap::store::Store, given: Option<&str>) -> anyhow::Result<RemoteRef> {
    if let Some(text) = given {
        return Ok(RemoteRef::parse(text).map_err(snap::ops::Error::from)?);
    }
    let settings = snap::config::Config::load(store.dir())?;
    let text = settings.get("remote").ok_or_else(|| {
        anyhow::anyhow!(
            "no registry given: pass REGISTRY/REPO, or set a default with `snap config remote REGISTRY/REPO`"
        )
    })?;
    Ok(RemoteRef::parse(text).map_err(snap::ops::Error::from)?)
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
        let id = snap::rev::resolve(&store, rev).map_err(Error::from)?;
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
pub fn client_options(
    ctx: &Context,
    conn: &ConnArgs,
) -> anyhow::Result<snap::registry::ClientOptions> {
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
    let out = snap::ops::remote::ls_remote(&remote, &opts)?;
    if ctx.printer.json() {
        ctx.printer.json_value(&out)?;
        return Ok(ExitStatus::Success);
    }
    let width = out.tags.iter().map(|t| t.tag.len()).max().unwrap_or(0);
    for t in &out.tags {
        let what = match t.kind {
            snap::ops::remote::RemoteKind::Snapshot => format!(
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
        Some(text) => Ok(RemoteRef::parse(text).map_err(Error::from)?),
        None => remote(&ctx.open_store()?, None),
    }
}
