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

/// `lp.ommx` in `env`: the OMMX artifact as OMMX archives it (no `oci-layout`), with its
/// manifest, blobs and the archive's members.
fn ommx_archive(env: &Env) -> Result<(PathBuf, Vec<u8>, Vec<Vec<u8>>, Vec<(String, Vec<u8>)>)> {
    let (manifest, blobs) = ommx_artifact();
    let mut files = vec![("index.json".to_owned(), index_naming(&manifest, OMMX_NAME))];
    files.extend(blob_files(&blobs));
    let archive = tar_of(env, "lp.ommx", &files)?;
    Ok((archive, manifest, blobs, files))
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
    let (archive, manifest, _, files) = ommx_archive(&env)?;
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

fn fsck(env: &Env, code: i32) -> Result<Value> {
    let out = env.run(&["--json", "fsck"], code)?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn loose(env: &Env, blob: &[u8]) -> PathBuf {
    let hex = Digest::of(blob).hex();
    env.join(&format!(
        ".store/objects/sha256/{}/{}",
        &hex[..2],
        &hex[2..]
    ))
}

// issue 14: fsck called every imported image and OMMX/ORAS artifact a broken snapshot and
// exited 1; it now walks them down to every blob, and still reports real damage to them.
#[test]
fn fsck_checks_images_and_artifacts_and_reports_only_real_damage() -> Result {
    use crate::layout::{self, Member};
    let env = Env::new()?;
    let image = layout::image(&[layout::tar_layer(&[Member::file("etc/os", b"x")])?]);
    layout::write(&env.join("img"), &image, Some("img"))?;
    let oras = layout::oras(&[("a.txt", b"A")]);
    layout::write(&env.join("oras"), &oras, Some("oras"))?;
    let (archive, manifest, blobs, _) = ommx_archive(&env)?;
    for path in ["img", "oras", &archive.to_string_lossy()] {
        env.ok(&["import", path])?;
    }
    env.ok(&["commit", "img"])?;
    let report = fsck(&env, 0)?;
    assert_eq!(report["problems"], json!([]), "{report}");
    assert_eq!(report["foreign"], json!(3));
    assert_eq!(report["snapshots"], json!(1));

    // A flipped byte in the OMMX layer: named, with the artifact that needs it.
    let layer = loose(&env, &blobs[2]);
    let mut bytes = std::fs::read(&layer)?;
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::set_permissions(&layer, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    std::fs::write(&layer, &bytes)?;
    let report = fsck(&env, 1)?;
    let problems = report["problems"].as_array().cloned().unwrap_or_default();
    assert_eq!(problems.len(), 1, "{report}");
    assert_eq!(problems[0]["kind"], json!("corrupt-object"));
    assert_eq!(
        problems[0]["snapshots"],
        json!([Digest::of(&manifest).to_string()])
    );

    // The image's config gone: a missing object, needed by the image.
    std::fs::remove_file(&layer)?;
    std::fs::remove_file(loose(&env, &image.blobs[1]))?;
    let report = fsck(&env, 1)?;
    let kinds: Vec<&str> = report["problems"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["kind"].as_str())
        .collect();
    assert_eq!(kinds, ["missing-object", "missing-object"], "{report}");
    assert!(
        report["problems"]
            .to_string()
            .contains(&Digest::of(&image.manifest).to_string())
    );
    Ok(())
}

// issue 14: `ls`/`restore` refused artifacts with untitled layers ("neither a titled file nor
// part of an all-tar image") and `cat` failed on every artifact, even fully titled ones.
#[test]
fn ls_cat_and_restore_work_on_artifacts_and_images() -> Result {
    use crate::layout::{self, Member};
    let env = Env::new()?;
    let (archive, _, blobs, _) = ommx_archive(&env)?;
    env.ok(&["import", &archive.to_string_lossy()])?;
    let blob = format!("blobs/sha256/{}", Digest::of(&blobs[2]).hex());

    // The untitled layer is a file at its blob path, listed with its media type.
    let ls = env.ok(&["ls", OMMX_NAME])?;
    assert!(
        ls.contains(&format!("{blob} (application/org.ommx.v1.custom)")),
        "{ls}"
    );
    let json = env.ok(&["--json", "ls", OMMX_NAME])?;
    assert!(
        json.contains("\"media_type\":\"application/org.ommx.v1.custom\""),
        "{json}"
    );
    assert_eq!(env.ok(&["cat", OMMX_NAME, &blob])?, "hello world");
    let out = env.run(&["cat", OMMX_NAME, "nope"], 2)?;
    assert!(
        stderr(&out).contains(&format!("snap ls {OMMX_NAME}")),
        "{}",
        stderr(&out)
    );
    env.ok(&["restore", OMMX_NAME, "out"])?;
    assert_eq!(std::fs::read(env.join("out").join(&blob))?, b"hello world");

    // A fully titled ORAS artifact: cat gives a titled file.
    let oras = layout::oras(&[("dir/a.txt", b"A"), ("b.bin", b"BB")]);
    layout::write(&env.join("oras"), &oras, Some("oras"))?;
    env.ok(&["import", "oras"])?;
    assert_eq!(env.ok(&["cat", "oras", "dir/a.txt"])?, "A");
    assert_eq!(env.ok(&["cat", "oras", "/b.bin"])?, "BB");

    // An image: cat writes its config or a layer by blob path, as stored.
    let layer = layout::tar_layer(&[Member::file("etc/os", b"x")])?;
    let image = layout::image(std::slice::from_ref(&layer));
    layout::write(&env.join("img"), &image, Some("img"))?;
    env.ok(&["import", "img"])?;
    let config = format!("blobs/sha256/{}", Digest::of(&image.blobs[1]).hex());
    assert_eq!(
        env.ok(&["cat", "img", &config])?.as_bytes(),
        &image.blobs[1][..]
    );
    let out = env
        .snap()
        .args([
            "cat",
            "img",
            &format!("blobs/sha256/{}", Digest::of(&layer).hex()),
        ])
        .output()?;
    assert_eq!(out.stdout, layer);
    let out = env.run(&["cat", "img", "etc/os"], 2)?;
    assert!(stderr(&out).contains("snap restore"), "{}", stderr(&out));
    Ok(())
}
