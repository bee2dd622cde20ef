//! Layouts written by tools other than snap (issue 14, item 2): OMMX archives (no
//! `oci-layout`, full image references as ref names) and containerd/docker archives (a
//! docker-compatible `manifest.json` and `repositories` beside the layout).
#![allow(clippy::disallowed_methods)] // writes test fixtures directly

use std::path::PathBuf;

use serde_json::{Value, json};
use snap::Digest;

use crate::harness::{Env, Result, stderr};

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const OMMX_NAME: &str = "localhost:5000/ommx/lp:v1";

fn js(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

/// An OMMX-style artifact as `ommx.artifact.ArtifactBuilder` writes it: an empty config, one
/// untitled layer of its own media type, annotations. Returns (manifest, blobs).
fn ommx_artifact() -> (Vec<u8>, Vec<Vec<u8>>) {
    let config = b"{}".to_vec();
    let layer = b"hello world".to_vec();
    let m = js(&json!({
        "schemaVersion": 2,
        "artifactType": "application/org.ommx.v1.artifact",
        "config": {
            "mediaType": "application/vnd.oci.empty.v1+json",
            "digest": Digest::of(&config).to_string(),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/org.ommx.v1.custom",
            "digest": Digest::of(&layer).to_string(),
            "size": layer.len(),
            "annotations": {"org.ommx.user.k": "v"},
        }],
        "annotations": {"org.ommx.user.x": "y"},
    }));
    (m.clone(), vec![m, config, layer])
}

fn index_naming(manifest: &[u8], name: &str) -> Vec<u8> {
    js(&json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": Digest::of(manifest).to_string(),
            "size": manifest.len(),
            "annotations": {REF_NAME: name},
        }],
    }))
}

/// A plain tar holding `files` as given, in order (no `oci-layout` unless listed).
fn tar_of(env: &Env, name: &str, files: &[(String, Vec<u8>)]) -> Result<PathBuf> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, &data[..])?;
    }
    env.write(name, b.into_inner()?)?;
    Ok(env.join(name))
}

fn blob_files(blobs: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    blobs
        .iter()
        .map(|b| (format!("blobs/sha256/{}", Digest::of(b).hex()), b.clone()))
        .collect()
}

fn index_in(export: &str, env: &Env) -> Result<Value> {
    let out = env.sh(&format!("tar -xOf {export} index.json"))?;
    Ok(serde_json::from_str(&out)?)
}

// issue 14: `snap import` refused OMMX archives (no `oci-layout`), and re-export wrote the
// ref name `v1` where the archive said `localhost:5000/ommx/lp:v1`.
#[test]
fn an_ommx_archive_imports_and_exports_with_the_name_it_came_with() -> Result {
    let env = Env::new()?;
    let (manifest, blobs) = ommx_artifact();
    let mut files = vec![("index.json".to_owned(), index_naming(&manifest, OMMX_NAME))];
    files.extend(blob_files(&blobs));
    let archive = tar_of(&env, "lp.ommx", &files)?;
    let out = env.run(&["import", &archive.to_string_lossy()], 0)?;
    assert!(
        stderr(&out).contains("has no oci-layout file"),
        "a note says what was assumed: {}",
        stderr(&out)
    );
    let digest = Digest::of(&manifest).to_string();
    assert_eq!(env.ok(&["refs"])?, format!("{digest} {OMMX_NAME}\n"));
    assert!(
        env.ok(&["show", OMMX_NAME])?
            .contains("application/org.ommx.v1.artifact")
    );

    // `.ommx` is a plain layout tar, and the entry carries the name the archive had.
    env.ok(&["export", "--oci", OMMX_NAME, "-o", "again.ommx"])?;
    let index = index_in("again.ommx", &env)?;
    assert_eq!(index["manifests"][0]["digest"], json!(digest));
    assert_eq!(
        index["manifests"][0]["annotations"][REF_NAME],
        json!(OMMX_NAME)
    );
    // `--ref` still renames.
    env.ok(&["import", "--ref", "lp", &archive.to_string_lossy()])?;
    assert!(env.ok(&["refs"])?.contains(&format!("{digest} lp\n")));

    // The same layout as a directory without `oci-layout` imports too.
    std::fs::create_dir_all(env.join("dir/blobs/sha256"))?;
    for (path, data) in &files {
        std::fs::write(env.join("dir").join(path), data)?;
    }
    let other = Env::new()?;
    let out = other.run(&["import", &env.join("dir").to_string_lossy()], 0)?;
    assert!(stderr(&out).contains("has no oci-layout file"));
    assert_eq!(other.ok(&["refs"])?, format!("{digest} {OMMX_NAME}\n"));
    Ok(())
}

// issue 14: `ctr images export` (and `docker save` since 25) add a docker-compatible
// `manifest.json` and `repositories` at the top; snap refused the archive.
#[test]
fn a_containerd_archive_with_docker_metadata_imports() -> Result {
    let env = Env::new()?;
    let (manifest, blobs) = ommx_artifact();
    let digest = Digest::of(&manifest);
    let docker_manifest = js(&json!([{
        "Config": format!("blobs/sha256/{}", Digest::of(&blobs[1]).hex()),
        "RepoTags": ["docker.io/library/x:latest"],
        "Layers": [format!("blobs/sha256/{}", Digest::of(&blobs[2]).hex())],
    }]));
    let mut files = vec![
        (
            "oci-layout".to_owned(),
            br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
        ),
        (
            "index.json".to_owned(),
            index_naming(&manifest, "docker.io/library/x:latest"),
        ),
        ("manifest.json".to_owned(), docker_manifest),
        (
            "repositories".to_owned(),
            br#"{"x":{"latest":"0000"}}"#.to_vec(),
        ),
    ];
    files.extend(blob_files(&blobs));
    let archive = tar_of(&env, "ctr.tar", &files)?;
    let out = env.run(&["import", &archive.to_string_lossy()], 0)?;
    assert!(!stderr(&out).contains("oci-layout"), "{}", stderr(&out));
    assert_eq!(
        env.ok(&["refs"])?,
        format!("{digest} docker.io/library/x:latest\n")
    );

    // Only at the top: anywhere else such a name is still an unexpected entry.
    let mut misplaced = files.clone();
    misplaced[2].0 = "blobs/manifest.json".to_owned();
    let archive = tar_of(&env, "bad.tar", &misplaced)?;
    let out = env.run(&["import", &archive.to_string_lossy()], 2)?;
    assert!(
        stderr(&out).contains("blobs/manifest.json"),
        "{}",
        stderr(&out)
    );
    Ok(())
}
