//! `snap ls SNAP [PATH]` and `snap cat SNAP PATH`

use std::io::Write;

use snap::Digest;
use snap::object::{EntryKind, Tree};
use snap::ops::Error;
use snap::snapshot::{self, Artifact, Snapshot};
use snap::store::Store;
use snap::worktree::unpack::{self, Kind, LayerEntry};

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

/// One `snap ls --json` record.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Eq)]
pub struct LsEntry {
    pub path: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    #[serde(skip_serializing_if = "std::ops::Not::not", default)]
    pub executable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// The layer's media type, for a file of an image or artifact.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub media_type: Option<String>,
}

fn entry(path: String, kind: &EntryKind) -> LsEntry {
    let mut e = LsEntry {
        path,
        kind: kind.type_name().to_owned(),
        size: None,
        digest: None,
        executable: false,
        target: None,
        media_type: None,
    };
    match kind {
        EntryKind::File {
            size,
            digest,
            executable,
        } => {
            e.size = Some(*size);
            e.digest = Some(*digest);
            e.executable = *executable;
        }
        EntryKind::Dir { digest } => e.digest = Some(*digest),
        EntryKind::Symlink { target } => e.target = Some(target.clone()),
    }
    e
}

fn resolve(store: &Store, rev: &str, path: &str) -> anyhow::Result<(Snapshot, EntryKind)> {
    let id = snap::rev::resolve(store, rev).map_err(Error::from)?;
    let snap = Snapshot::load(store, &id).map_err(Error::from)?;
    let found = snapshot::lookup(store, &snap.root(), path).map_err(Error::from)?;
    let kind =
        found.ok_or_else(|| anyhow::anyhow!("`{path}` is not in snapshot {}", id.short()))?;
    Ok((snap, kind))
}

pub fn run(ctx: &Context, args: &Args) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let id = snap::rev::resolve(&store, &args.rev).map_err(Error::from)?;
    match Artifact::load(&store, &id).map_err(Error::from)? {
        Artifact::Snapshot(_) => {}
        Artifact::Manifest(m) => return ls_foreign(ctx, &store, m.manifest(), &args.path),
        Artifact::Index(i) => {
            for d in &i.index().manifests {
                ctx.printer
                    .line(format!("manifest {} {} {}", d.digest, d.media_type, d.size))?;
            }
            return Ok(ExitStatus::Success);
        }
    }
    let (_, kind) = resolve(&store, &args.rev, &args.path)?;
    let base = args.path.trim_matches('/').to_owned();
    match &kind {
        EntryKind::Dir { digest } => list(ctx, &store, digest, &base, args.recursive)?,
        other => show(ctx, &entry(base, other))?,
    }
    Ok(ExitStatus::Success)
}

fn list(
    ctx: &Context,
    store: &Store,
    tree: &Digest,
    prefix: &str,
    recursive: bool,
) -> anyhow::Result<()> {
    let tree: Tree = snapshot::read_tree(store, tree).map_err(Error::from)?;
    for e in tree.entries() {
        let path = if prefix.is_empty() {
            e.name.to_string()
        } else {
            format!("{prefix}/{}", e.name)
        };
        let shown = if recursive {
            path.clone()
        } else {
            e.name.to_string()
        };
        show(
            ctx,
            &entry(
                if ctx.printer.json() {
                    path.clone()
                } else {
                    shown
                },
                &e.kind,
            ),
        )?;
        if recursive && let EntryKind::Dir { digest } = &e.kind {
            list(ctx, store, digest, &path, true)?;
        }
    }
    Ok(())
}

fn show(ctx: &Context, e: &LsEntry) -> std::io::Result<()> {
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
        (Some(t), _) => format!("{} -> {}", Name(&e.path), Name(t)),
        (None, _) if e.kind == "dir" => format!("{}/", Name(&e.path)),
        // An untitled layer of an artifact: say what it is.
        (None, Some(m)) if e.path.starts_with(unpack::UNTITLED_DIR) => {
            format!("{} ({})", Name(&e.path), Name(m))
        }
        (None, _) => Name(&e.path).to_string(),
    };
    ctx.printer
        .line(format!("{mode} {size:>12} {digest} {name}"))
}

pub fn cat(ctx: &Context, args: &CatArgs) -> anyhow::Result<ExitStatus> {
    let store = ctx.open_store()?;
    let id = snap::rev::resolve(&store, &args.rev).map_err(Error::from)?;
    let (digest, size) = match Artifact::load(&store, &id).map_err(Error::from)? {
        Artifact::Snapshot(_) => {
            let (_, kind) = resolve(&store, &args.rev, &args.path)?;
            let EntryKind::File { digest, size, .. } = kind else {
                anyhow::bail!("`{}` is a {}, not a file", args.path, kind.type_name());
            };
            (digest, size)
        }
        Artifact::Manifest(m) => foreign_blob(m.manifest(), &args.path, &id, &args.rev)?,
        Artifact::Index(_) => anyhow::bail!(
            "{} is an image index: it holds manifests, not files (`snap ls {}` lists them)",
            id.short(),
            args.rev
        ),
    };
    let mut out = std::io::stdout().lock();
    // Small files are verified before a byte is written; large ones stream and fail at the
    // end if the digest does not match.
    if size <= VERIFY_FIRST_LIMIT {
        let bytes = store.objects.read(&digest, size).map_err(Error::from)?;
        out.write_all(&bytes)?;
        out.flush()?;
        return Ok(ExitStatus::Success);
    }
    let mut reader = store.objects.open(&digest).map_err(Error::from)?;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n =
            std::io::Read::read(&mut reader, &mut buf).map_err(|e| Error::from(reader.error(e)))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])?;
    }
    out.flush()?;
    reader.finish().map_err(Error::from)?;
    Ok(ExitStatus::Success)
}

/// The blob `path` names in a foreign manifest `id`: a file of an artifact (a title, or
/// `blobs/sha256/<hex>` for an untitled layer); in an image, `blobs/sha256/<hex>` of its config
/// or a layer, as stored.
fn foreign_blob(
    m: &snap::oci::ImageManifest,
    path: &str,
    id: &Digest,
    rev: &str,
) -> anyhow::Result<(Digest, u64)> {
    let wanted = path.trim_matches('/');
    if unpack::kind(m) == Kind::Files {
        for (p, l) in unpack::artifact_files(m).map_err(Error::from)? {
            if p.to_string() == wanted {
                return Ok((l.digest, l.size));
            }
        }
    }
    let blob = std::iter::once(&m.config).chain(&m.layers).find(|d| {
        wanted
            .strip_prefix(unpack::UNTITLED_DIR)
            .and_then(|r| r.strip_prefix('/'))
            == Some(d.digest.hex().as_str())
    });
    match blob {
        Some(d) => Ok((d.digest, d.size)),
        None if unpack::kind(m) == Kind::Image => anyhow::bail!(
            "`{path}` is not a blob of image {}: `snap cat` writes its config or a layer as \
             `{}/<hex>` (`snap show` lists them); `snap restore` gives its files",
            id.short(),
            unpack::UNTITLED_DIR
        ),
        None => anyhow::bail!(
            "`{path}` is not in artifact {} (`snap ls {rev}` lists its files)",
            id.short()
        ),
    }
}

/// Files up to this size are read and verified whole before `cat` writes them.
const VERIFY_FIRST_LIMIT: u64 = 64 << 20;

/// Lists a foreign manifest: an artifact's titled files, or every entry of an image's layers
/// (with the layer it comes from), below `path`.
fn ls_foreign(
    ctx: &Context,
    store: &Store,
    m: &snap::oci::ImageManifest,
    path: &str,
) -> anyhow::Result<ExitStatus> {
    let prefix = path.trim_matches('/');
    let under = |p: &str| prefix.is_empty() || p == prefix || p.starts_with(&format!("{prefix}/"));
    match unpack::kind(m) {
        Kind::Files => {
            for (path, l) in unpack::artifact_files(m).map_err(Error::from)? {
                let path = path.to_string();
                if !under(&path) {
                    continue;
                }
                let e = LsEntry {
                    path,
                    kind: "file".into(),
                    size: Some(l.size),
                    digest: Some(l.digest),
                    executable: false,
                    target: None,
                    media_type: Some(l.media_type.clone()),
                };
                show(ctx, &e)?;
            }
        }
        Kind::Image => {
            unpack::list_layers(&store.objects, m, |e: &LayerEntry| {
                if !under(&e.path) {
                    return Ok(());
                }
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
            })
            .map_err(Error::from)?;
        }
    }
    Ok(ExitStatus::Success)
}
