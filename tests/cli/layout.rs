//! Builds OCI image layouts in tests: container images (tar layers whose entries are written
//! byte for byte, hostile names included) and ORAS-style artifacts (one titled blob per file).
#![allow(clippy::disallowed_methods)] // writes test fixtures directly

use std::path::Path;

use serde_json::json;
use snap::Digest;

use crate::harness::Result;

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
const TITLE: &str = "org.opencontainers.image.title";

/// One tar entry, its names written as given (no normalisation, no checks).
#[derive(Clone, Debug)]
pub enum Member {
    /// A regular file.
    File(String, Vec<u8>),
    /// A directory.
    Dir(String),
    /// A symlink and its target.
    Symlink(String, String),
    /// A hard link and its target.
    Hardlink(String, String),
    /// A FIFO (a special file restore skips).
    Fifo(String),
}

impl Member {
    pub fn file(path: &str, data: &[u8]) -> Member {
        Member::File(path.to_owned(), data.to_vec())
    }

    /// An empty regular file: a whiteout when its name starts with `.wh.`.
    pub fn empty(path: &str) -> Member {
        Member::File(path.to_owned(), Vec::new())
    }
}

/// A tar layer holding `members` in order.
pub fn tar_layer(members: &[Member]) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    for m in members {
        let mut h = tar::Header::new_old();
        let (name, link, kind, data): (&str, &str, _, &[u8]) = match m {
            Member::File(p, d) => (p, "", tar::EntryType::Regular, d),
            Member::Dir(p) => (p, "", tar::EntryType::Directory, &[]),
            Member::Symlink(p, t) => (p, t, tar::EntryType::Symlink, &[]),
            Member::Hardlink(p, t) => (p, t, tar::EntryType::Link, &[]),
            Member::Fifo(p) => (p, "", tar::EntryType::Fifo, &[]),
        };
        if name.len() > 100 || link.len() > 100 {
            return Err(format!("test names are short: {name:?} {link:?}").into());
        }
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_size(data.len() as u64);
        h.set_mtime(0);
        h.set_cksum();
        b.append(&h, data)?;
    }
    Ok(b.into_inner()?)
}

/// A manifest and every blob it needs (manifest first).
pub struct Artifact {
    pub manifest: Vec<u8>,
    pub blobs: Vec<Vec<u8>>,
}

/// A container image of these tar layers.
pub fn image(layers: &[Vec<u8>]) -> Artifact {
    let config = json!({"architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| Digest::of(l).to_string()).collect::<Vec<_>>()}})
    .to_string()
    .into_bytes();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": descriptor("application/vnd.oci.image.config.v1+json", &config, None),
        "layers": layers.iter().map(|l| descriptor(LAYER, l, None)).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let mut blobs = vec![manifest.clone(), config];
    blobs.extend(layers.iter().cloned());
    Artifact { manifest, blobs }
}

/// An ORAS-style artifact: each file a blob titled with its path.
pub fn oras(files: &[(&str, &[u8])]) -> Artifact {
    let config = b"{}".to_vec();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "artifactType": "application/vnd.example.test.v1",
        "config": descriptor("application/vnd.oci.empty.v1+json", &config, None),
        "layers": files.iter().map(|(t, b)| descriptor("application/vnd.example.file.v1", b, Some(t))).collect::<Vec<_>>(),
    })
    .to_string()
    .into_bytes();
    let mut blobs = vec![manifest.clone(), config];
    blobs.extend(files.iter().map(|(_, b)| b.to_vec()));
    Artifact { manifest, blobs }
}

fn descriptor(media_type: &str, blob: &[u8], title: Option<&str>) -> serde_json::Value {
    let mut d = json!({"mediaType": media_type, "digest": Digest::of(blob).to_string(), "size": blob.len()});
    if let Some(t) = title {
        d["annotations"] = json!({ TITLE: t });
    }
    d
}

/// Writes `a` as an OCI image layout directory at `dir`, tagged `tag` (untagged with `None`:
/// imported without a ref, it is reached by digest).
pub fn write(dir: &Path, a: &Artifact, tag: Option<&str>) -> Result {
    let blobs = dir.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)?;
    for b in &a.blobs {
        std::fs::write(blobs.join(Digest::of(b).hex()), b)?;
    }
    std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut d = descriptor(MANIFEST, &a.manifest, None);
    if let Some(tag) = tag {
        d["annotations"] = json!({"org.opencontainers.image.ref.name": tag});
    }
    std::fs::write(
        dir.join("index.json"),
        json!({"schemaVersion": 2, "manifests": [d]}).to_string(),
    )?;
    Ok(())
}
