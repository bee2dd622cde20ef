//! Interop with the tools people already trust: skopeo, umoci, oras and a real registry.
#![allow(clippy::disallowed_methods)] // tests write their fixtures directly

mod crash;
mod harness;
mod hostile;
mod ommx;
mod quickstart;
mod recipe;
mod registry;
mod remote;
mod resume;
mod sign;
#[path = "../support/mod.rs"]
mod support;
mod wire;

use harness::{
    Registry, Result, have_oras, have_registry, have_skopeo, have_umoci, sh, skopeo, snap, workdir,
};

fn digest_of(dir: &std::path::Path, rev: &str) -> Result<String> {
    Ok(
        snap(dir, &["--json", "show", rev])?.parse::<serde_json::Value>()?["digest"]
            .as_str()
            .ok_or("digest")?
            .to_owned(),
    )
}

#[test]
fn skopeo_copies_every_archive_format_into_a_registry_keeping_the_manifest_bytes() -> Result {
    if !have_skopeo() || !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start()?;
    for (rev, ext) in [
        ("latest", "tar"),
        ("latest", "tar.gz"),
        ("latest", "tar.zst"),
        ("small", "tar"),
    ] {
        let out = format!("out-{rev}.{ext}");
        snap(&dir, &["export", "--oci", rev, "-o", &out])?;
        let target = format!(
            "docker://{}/snap/{rev}-{}:{rev}",
            reg.addr,
            ext.replace('.', "-")
        );
        skopeo(
            &dir,
            &format!("copy -q --dest-tls-verify=false oci-archive:{out}:{rev} {target}"),
        )?;
        let raw = skopeo(
            &dir,
            &format!("inspect --tls-verify=false --raw {target} | sha256sum"),
        )?;
        let want = digest_of(&dir, rev)?;
        assert_eq!(
            format!("sha256:{}", raw.split_whitespace().next().ok_or("sum")?),
            want,
            "{out}"
        );
    }
    Ok(())
}

#[test]
fn a_skopeo_copy_to_an_oci_directory_imports_back_to_the_same_snapshot() -> Result {
    if !have_skopeo() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    snap(&dir, &["export", "--oci", "latest", "-o", "x.tar.zst"])?;
    skopeo(
        &dir,
        "copy -q oci-archive:x.tar.zst:latest oci:copied:latest",
    )?;
    let dst = tempfile::tempdir()?;
    let imported = snap(
        dst.path(),
        &["--json", "import", &dir.join("copied").to_string_lossy()],
    )?;
    let v: serde_json::Value = imported.parse()?;
    assert_eq!(
        v["refs"][0]["digest"].as_str(),
        Some(digest_of(&dir, "latest")?.as_str())
    );
    snap(dst.path(), &["restore", "latest", "out"])?;
    sh(
        dst.path(),
        &format!("diff -r --no-dereference {}/big out/big", dir.display()),
    )?;
    Ok(())
}

/// A two-tag image built with umoci: v2 adds a file and deletes one (a whiteout).
pub(crate) fn umoci_image(dir: &std::path::Path) -> Result {
    let rootless = if sh(dir, "id -u")?.trim() == "0" {
        ""
    } else {
        "--rootless"
    };
    sh(
        dir,
        &format!(
            "umoci init --layout L && umoci new --image L:v1 && umoci unpack {rootless} --image L:v1 b1 >/dev/null && \
             mkdir -p b1/rootfs/data/sub && echo hi > b1/rootfs/data/hello.txt && echo n > b1/rootfs/data/sub/nested.txt && \
             ln -s hello.txt b1/rootfs/data/link && chmod +x b1/rootfs/data/hello.txt && umoci repack --image L:v1 b1 && \
             umoci unpack {rootless} --image L:v1 b2 >/dev/null && echo more > b2/rootfs/data/extra.txt && rm b2/rootfs/data/sub/nested.txt && \
             umoci repack --image L:v2 b2 && umoci gc --layout L"
        ),
    )?;
    Ok(())
}

#[test]
fn a_umoci_layout_imports_with_its_digests_and_its_files_restore() -> Result {
    if !have_umoci() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    umoci_image(d)?;
    let index: serde_json::Value = std::fs::read_to_string(d.join("L/index.json"))?.parse()?;
    let out: serde_json::Value = snap(d, &["--json", "import", "L"])?.parse()?;
    for (i, tag) in ["v1", "v2"].iter().enumerate() {
        assert_eq!(out["refs"][i]["name"], *tag);
        assert_eq!(
            out["refs"][i]["digest"], index["manifests"][i]["digest"],
            "digest unchanged"
        );
    }
    snap(d, &["restore", "v1", "r1"])?;
    snap(d, &["restore", "v2", "r2"])?;
    sh(
        d,
        "diff -r --no-dereference b1/rootfs r1 && diff -r --no-dereference b2/rootfs r2",
    )?;
    assert!(
        !d.join("r2/data/sub/nested.txt").exists(),
        "the whiteout removed it"
    );
    assert_eq!(sh(d, "stat -c %A r1/data/hello.txt")?.trim(), "-rwxr-xr-x");
    let ls = snap(d, &["ls", "v2"])?;
    assert!(
        ls.contains("whiteout") && ls.contains("data/extra.txt"),
        "{ls}"
    );
    Ok(())
}

#[test]
fn a_skopeo_written_archive_of_a_umoci_image_imports_and_restores() -> Result {
    if !have_umoci() || !have_skopeo() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    umoci_image(d)?;
    skopeo(d, "copy -q oci:L:v2 oci-archive:img.tar:v2")?;
    let want: serde_json::Value = std::fs::read_to_string(d.join("L/index.json"))?.parse()?;
    let out: serde_json::Value = snap(d, &["--json", "import", "img.tar"])?.parse()?;
    assert_eq!(out["refs"][0]["digest"], want["manifests"][1]["digest"]);
    snap(d, &["restore", "v2", "r"])?;
    sh(d, "diff -r --no-dereference b2/rootfs r")?;
    Ok(())
}

#[test]
fn an_oras_pushed_artifact_restores_its_titled_files() -> Result {
    if !have_oras() || !have_skopeo() || !have_registry() {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let d = dir.path();
    let reg = Registry::start()?;
    sh(
        d,
        "mkdir -p sub/dir && echo top > top.txt && echo nested > sub/dir/file.txt",
    )?;
    let script = format!(
        "import json, oras.client\n\
         json.dump({{'sub/dir/file.txt': {{'org.opencontainers.image.title': 'sub/dir/file.txt'}}}}, open('ann.json', 'w'))\n\
         c = oras.client.OrasClient(hostname='{a}', insecure=True)\n\
         c.push(target='{a}/oras/art:v1', files=['top.txt', 'sub/dir/file.txt'], annotation_file='ann.json')\n",
        a = reg.addr
    );
    std::fs::write(d.join("push.py"), script)?;
    sh(d, "python3 push.py > /dev/null")?;
    skopeo(
        d,
        &format!(
            "copy -q --src-tls-verify=false docker://{}/oras/art:v1 oci-archive:art.tar:v1",
            reg.addr
        ),
    )?;
    snap(d, &["import", "art.tar"])?;
    snap(d, &["restore", "v1", "out"])?;
    assert_eq!(std::fs::read_to_string(d.join("out/top.txt"))?, "top\n");
    assert_eq!(
        std::fs::read_to_string(d.join("out/sub/dir/file.txt"))?,
        "nested\n"
    );
    let ls = snap(d, &["ls", "v1"])?;
    assert!(
        ls.contains("top.txt") && ls.contains("sub/dir/file.txt"),
        "{ls}"
    );
    Ok(())
}
