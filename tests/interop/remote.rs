//! Asking a registry without pulling (issue 14, item 4): `snap ls-remote`, `snap show` and
//! `snap log` of a registry reference, `snap status --remote` — against a real registry whose
//! access log shows every request, so that a layer blob fetched would be seen.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;
use snap::ops::remote::{LsRemoteOutcome, RemoteKind, RemoteStatus};
use snap::snapshot::LogEntry;

use crate::harness::{
    Registry, Result, git_commit, git_repo, have_registry, sh, snap_env, snap_fails, snap_ok,
};

fn json(s: &str) -> Result<Value> {
    Ok(s.parse()?)
}

/// The layer digests of snapshot `rev` in the store at `dir`.
fn layers(dir: &Path, rev: &str) -> Result<BTreeSet<String>> {
    let m = json(&snap_ok(dir, &["show", "--manifest", rev], &[])?)?;
    Ok(m["layers"]
        .as_array()
        .ok_or("layers")?
        .iter()
        .filter_map(|l| l["digest"].as_str().map(str::to_owned))
        .collect())
}

/// `requests` minus the first `from`, failing if any of them touches one of `layers`.
fn no_layer_in(requests: &[String], from: usize, layers: &BTreeSet<String>) -> Vec<String> {
    let ours = requests[from..].to_vec();
    for r in &ours {
        assert!(
            !layers.iter().any(|l| r.contains(l.as_str())),
            "a layer blob was requested: {r}\nall: {ours:#?}"
        );
    }
    ours
}

/// A git repository with snapshots of two commits pushed to `repo` (commit tags and
/// `latest`); returns the two commits.
fn two_pushed_commits(dir: &Path, repo: &str) -> Result<(String, String)> {
    git_repo(dir)?;
    sh(dir, "mkdir -p build && seq 1 5000 > build/index.txt")?;
    snap_ok(dir, &["commit", "build", "-m", "c1"], &[])?;
    let c1 = sh(dir, "git rev-parse HEAD")?.trim().to_owned();
    snap_ok(dir, &["push", "latest", repo], &[])?;
    let c2 = git_commit(dir, "c2")?;
    sh(
        dir,
        "seq 1 6000 > build/index.txt && echo x > build/more.txt",
    )?;
    snap_ok(dir, &["commit", "build", "-m", "c2"], &[])?;
    snap_ok(dir, &["push", "latest", repo], &[])?;
    Ok((c1, c2))
}

#[test]
fn ls_remote_show_log_and_status_remote_read_no_layer_blob() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let t = tempfile::tempdir()?;
    let dir = t.path();
    let reg = Registry::start()?;
    let repo = format!("{}/snap/asked", reg.addr);
    let (c1, c2) = two_pushed_commits(dir, &repo)?;
    let all_layers: BTreeSet<String> = layers(dir, "latest")?
        .into_iter()
        .chain(layers(dir, "latest~1")?)
        .collect();
    let latest = json(&snap_ok(dir, &["--json", "show", "latest"], &[])?)?;
    let first = json(&snap_ok(dir, &["--json", "show", "latest~1"], &[])?)?;
    let digest = |v: &Value| v["digest"].as_str().unwrap_or_default().to_owned();
    let configs: BTreeSet<String> = [&latest, &first]
        .iter()
        .filter_map(|v| v["config"]["digest"].as_str().map(str::to_owned))
        .collect();

    // ls-remote: three tags, their snapshots, commits and dates; configs read once each.
    let mark = reg.requests()?.len();
    let out: LsRemoteOutcome =
        serde_json::from_str(&snap_ok(dir, &["--json", "ls-remote", &repo], &[])?)?;
    let rows: Vec<(&str, String, RemoteKind, Option<&str>)> = out
        .tags
        .iter()
        .map(|t| {
            (
                t.tag.as_str(),
                t.digest.to_string(),
                t.kind,
                t.commit.as_deref(),
            )
        })
        .collect();
    let mut want = vec![
        (
            &c1[..12],
            digest(&first),
            RemoteKind::Snapshot,
            Some(c1.as_str()),
        ),
        (
            &c2[..12],
            digest(&latest),
            RemoteKind::Snapshot,
            Some(c2.as_str()),
        ),
        (
            "latest",
            digest(&latest),
            RemoteKind::Snapshot,
            Some(c2.as_str()),
        ),
    ];
    want.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(rows, want);
    assert!(
        out.tags.iter().all(|t| t.created.is_some()),
        "{:?}",
        out.tags
    );
    let seen = no_layer_in(&reg.requests()?, mark, &all_layers);
    assert_eq!(
        seen.len() as u64,
        out.requests,
        "snap counts what the registry saw: {seen:#?}"
    );
    let blobs: BTreeSet<String> = seen
        .iter()
        .filter(|r| r.contains("/blobs/"))
        .filter_map(|r| r.rsplit('/').next().map(str::to_owned))
        .collect();
    assert_eq!(blobs, configs, "only the two configs, once each: {seen:#?}");
    assert_eq!(
        seen.iter().filter(|r| r.contains("/blobs/")).count(),
        2,
        "{seen:#?}"
    );

    // show: what the local show says (but the refs), from a directory without a store.
    let nowhere = tempfile::tempdir()?;
    let n = nowhere.path();
    let mark = reg.requests()?.len();
    for (reference, local) in [
        (format!("{repo}:{}", &c1[..12]), &first),
        (repo.clone(), &latest),
        (format!("{repo}@{}", digest(&latest)), &latest),
    ] {
        let mut remote = json(&snap_ok(n, &["--json", "show", &reference], &[])?)?;
        let mut local = local.clone();
        remote["refs"] = Value::Null;
        local["refs"] = Value::Null;
        assert_eq!(remote, local, "{reference}");
    }
    let raw = snap_env(n, &["show", "--manifest", &repo], &[])?;
    let local_raw = snap_env(dir, &["show", "--manifest", "latest"], &[])?;
    assert_eq!(raw.stdout, local_raw.stdout, "the manifest's exact bytes");
    let human = snap_ok(n, &["show", &repo], &[])?;
    assert!(
        human.starts_with(&format!("snapshot {}", digest(&latest))),
        "{human}"
    );

    // log: the local log, followed by digest through the registry.
    let remote_log = snap_ok(n, &["--json", "log", &repo], &[])?;
    let local_log = snap_ok(dir, &["--json", "log", "latest"], &[])?;
    let entries = |s: &str| -> Result<Vec<LogEntry>> {
        s.lines()
            .map(|l| Ok(serde_json::from_value(json(l)?["data"].clone())?))
            .collect()
    };
    assert_eq!(entries(&remote_log)?, entries(&local_log)?);
    assert_eq!(entries(&remote_log)?.len(), 2);
    let one = snap_ok(n, &["--json", "log", "-n", "1", &repo], &[])?;
    assert_eq!(entries(&one)?.len(), 1);
    no_layer_in(&reg.requests()?, mark, &all_layers);

    // status --remote: HEAD has a snapshot (exit 0); two commits later it is 2 behind (exit 1).
    let mark = reg.requests()?.len();
    let fresh: RemoteStatus = serde_json::from_str(&snap_ok(
        dir,
        &["--json", "status", "--remote", &repo],
        &[],
    )?)?;
    assert_eq!(fresh.head, c2);
    let nearest = fresh.nearest.as_ref().ok_or("nearest")?;
    assert_eq!(
        (nearest.commit.as_str(), nearest.commits_behind),
        (c2.as_str(), 0)
    );
    assert_eq!(nearest.digest.to_string(), digest(&latest));
    git_commit(dir, "c3")?;
    let c4 = git_commit(dir, "c4")?;
    let out = snap_env(dir, &["--json", "status", "--remote", &repo], &[])?;
    assert_eq!(
        out.status.code(),
        Some(1),
        "HEAD has no snapshot: the answer is no"
    );
    let stale: RemoteStatus = serde_json::from_slice(&out.stdout)?;
    assert_eq!(stale.head, c4);
    let nearest = stale.nearest.as_ref().ok_or("nearest")?;
    assert_eq!(
        (nearest.commit.as_str(), nearest.commits_behind),
        (c2.as_str(), 2)
    );
    assert_eq!(stale.tried, 3);
    let human = snap_env(dir, &["status", "--remote", &repo], &[])?;
    let line = String::from_utf8_lossy(&human.stdout);
    assert!(
        line.contains("stale:") && line.contains("2 commits behind HEAD"),
        "{line}"
    );
    // The `remote` setting is the default.
    snap_ok(dir, &["config", "remote", &format!("{repo}:latest")], &[])?;
    snap_fails(dir, &["status", "--remote"], &[], 1)?;
    // Only HEAD requests for the commit tags (and the login probe): no manifest body at all.
    let seen = no_layer_in(&reg.requests()?, mark, &all_layers);
    assert!(
        seen.iter()
            .all(|r| r == "GET /v2/" || (r.starts_with("HEAD ") && r.contains("/manifests/"))),
        "{seen:#?}"
    );
    Ok(())
}

#[test]
fn a_remote_log_stops_where_the_registry_lacks_a_parent() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let t = tempfile::tempdir()?;
    let dir = t.path();
    let reg = Registry::start()?;
    let (_, _) = two_pushed_commits(dir, &format!("{}/snap/full", reg.addr))?;
    // Only the newest snapshot goes to this repository: its parent is not there.
    let only = format!("{}/snap/newest:v2", reg.addr);
    snap_ok(dir, &["push", "--no-commit-tag", "latest", &only], &[])?;
    let parent = json(&snap_ok(dir, &["--json", "show", "latest~1"], &[])?)?;
    let out = snap_env(dir, &["log", "--oneline", &only], &[])?;
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "history continues with {}, which is not in the registry",
            parent["digest"].as_str().ok_or("digest")?
        )),
        "{err}"
    );
    // A repository the registry does not know is an error that names it (exit 2).
    let err = snap_fails(
        dir,
        &["ls-remote", &format!("{}/snap/none", reg.addr)],
        &[],
        2,
    )?;
    assert!(err.contains("not found in"), "{err}");
    Ok(())
}

#[test]
fn push_dry_run_says_what_would_be_uploaded_and_which_tags_move_and_sends_nothing() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let t = tempfile::tempdir()?;
    let dir = t.path();
    let reg = Registry::start()?;
    let repo = format!("{}/snap/planned", reg.addr);
    let (_, c2) = two_pushed_commits(dir, &repo)?;
    let c3 = git_commit(dir, "c3")?;
    sh(dir, "echo changed > build/more.txt")?;
    snap_ok(dir, &["commit", "build", "-m", "c3"], &[])?;
    let before = snap_ok(dir, &["--json", "ls-remote", &repo], &[])?;

    let mark = reg.requests()?.len();
    let plan = json(&snap_ok(
        dir,
        &["--json", "push", "--dry-run", "latest", &repo],
        &[],
    )?)?;
    let seen = reg.requests()?[mark..].to_vec();
    assert_eq!(plan["dry_run"], true);
    assert!(
        seen.iter()
            .all(|r| r == "GET /v2/" || r.starts_with("HEAD ")),
        "a dry run only asks: {seen:#?}"
    );
    let tags: Vec<(&str, &str)> = plan["tags"]
        .as_array()
        .ok_or("tags")?
        .iter()
        .filter_map(|t| Some((t["tag"].as_str()?, t["update"].as_str()?)))
        .collect();
    assert_eq!(tags, [(&c3[..12], "inserted"), ("latest", "replaced")]);
    let latest = plan["tags"][1]["previous"].as_str().ok_or("previous")?;
    let before_v = json(&before)?;
    let was = before_v["tags"]
        .as_array()
        .ok_or("tags")?
        .iter()
        .find(|t| t["tag"] == c2[..12])
        .ok_or("c2's tag")?;
    assert_eq!(
        Some(latest),
        was["digest"].as_str(),
        "latest moves from c2's snapshot"
    );
    // Nothing changed in the registry…
    let after = snap_ok(dir, &["--json", "ls-remote", &repo], &[])?;
    let strip = |s: &str| -> Result<Value> {
        let mut v = json(s)?;
        v["requests"] = Value::Null;
        Ok(v)
    };
    assert_eq!(strip(&after)?, strip(&before)?);
    // …and the real push uploads exactly what the plan said.
    let done = json(&snap_ok(dir, &["--json", "push", "latest", &repo], &[])?)?;
    for k in ["uploaded", "uploaded_bytes", "skipped", "blobs", "digest"] {
        assert_eq!(done[k], plan[k], "{k}");
    }
    let human = snap_ok(dir, &["push", "--dry-run", "latest", &repo], &[])?;
    assert!(human.contains("0 of "), "all there now: {human}");
    assert!(
        human.contains(":latest (moving) already names it"),
        "{human}"
    );
    Ok(())
}

// Issue 14: the tag list is read page by page through `Link: <…>; rel="next"`, each page and
// the number of pages bounded, and credentials never follow a link to another server.
#[test]
fn ls_remote_follows_tag_pages_within_bounds_and_only_on_the_registry() -> Result {
    let (_t, src) = crate::harness::workdir()?;
    snap_ok(
        &src,
        &["export", "--oci", "latest", "small", "-o", "layout"],
        &[],
    )?;
    let layout = src.join("layout");
    let reg = crate::harness::HostileRegistry::start(&layout, "none")?;
    let out: LsRemoteOutcome = serde_json::from_str(&snap_ok(
        &src,
        &["--json", "ls-remote", &format!("{}/acme/x", reg.addr)],
        &[],
    )?)?;
    let tags: Vec<&str> = out.tags.iter().map(|t| t.tag.as_str()).collect();
    assert_eq!(tags, ["latest", "small"], "two pages of one tag each");
    let pages: Vec<String> = reg
        .received()?
        .into_iter()
        .filter(|r| r.path.contains("/tags/list"))
        .map(|r| r.path)
        .collect();
    assert_eq!(
        pages,
        [
            "/v2/acme/x/tags/list?n=1000",
            "/v2/acme/x/tags/list?n=1000&last=latest"
        ]
    );

    for (fault, says) in [
        (
            "tags-endless",
            "for the tags of acme/x (more than 64 pages)",
        ),
        ("tags-huge", "announced 2147483648 bytes"),
        (
            "tags-elsewhere",
            "its next page of tags is on another server",
        ),
    ] {
        let reg = crate::harness::HostileRegistry::start(&layout, fault)?;
        let err = snap_fails(
            &src,
            &["ls-remote", &format!("{}/acme/x", reg.addr)],
            &[],
            2,
        )?;
        assert!(err.contains(says), "{fault}: {err}");
        let asked = reg.received()?;
        assert!(
            asked.iter().all(|r| r.server == "registry"),
            "{fault}: nothing went elsewhere: {asked:?}"
        );
        assert!(
            asked.len() <= 1 + snap::registry::tags::MAX_TAG_PAGES,
            "{fault}: {} requests",
            asked.len()
        );
    }
    Ok(())
}

// Issue 14: foreign content (an ORAS artifact, a container image) is listed by media type and
// shown as `snap show` shows it after a pull — from its manifest alone, no blob at all.
#[test]
fn foreign_manifests_are_listed_and_shown_from_the_manifest_alone() -> Result {
    use crate::harness::{have_oras, have_skopeo, have_umoci, skopeo};
    if !have_registry() || !have_oras() || !have_skopeo() || !have_umoci() {
        return Ok(());
    }
    let t = tempfile::tempdir()?;
    let d = t.path();
    let reg = Registry::start()?;
    let repo = format!("{}/mixed/things", reg.addr);
    sh(d, "echo top > top.txt")?;
    std::fs::write(
        d.join("push.py"),
        format!(
            "import oras.client\n\
             c = oras.client.OrasClient(hostname='{a}', insecure=True)\n\
             c.push(target='{repo}:art', files=['top.txt'])\n",
            a = reg.addr
        ),
    )?;
    sh(d, "python3 push.py > /dev/null")?;
    crate::umoci_image(d)?;
    skopeo(
        d,
        &format!("copy -q --dest-tls-verify=false oci:L:v2 docker://{repo}:img"),
    )?;
    sh(d, "mkdir -p build && echo snap > build/f")?;
    snap_ok(d, &["commit", "build", "-m", "ours"], &[])?;
    snap_ok(d, &["push", "latest", &format!("{repo}:ours")], &[])?;

    let mark = reg.requests()?.len();
    let out: LsRemoteOutcome =
        serde_json::from_str(&snap_ok(d, &["--json", "ls-remote", &repo], &[])?)?;
    let kinds: Vec<(&str, RemoteKind)> =
        out.tags.iter().map(|t| (t.tag.as_str(), t.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("art", RemoteKind::Manifest),
            ("img", RemoteKind::Manifest),
            ("latest", RemoteKind::Snapshot),
            ("ours", RemoteKind::Snapshot)
        ]
    );
    assert!(
        out.tags[..2]
            .iter()
            .all(|t| t.commit.is_none() && t.created.is_none())
    );
    let human = snap_ok(d, &["ls-remote", &repo], &[])?;
    assert!(
        human.contains("application/vnd.oci.image.manifest.v1+json"),
        "{human}"
    );

    let nowhere = tempfile::tempdir()?;
    let remote_art = json(&snap_ok(
        nowhere.path(),
        &["--json", "show", &format!("{repo}:art")],
        &[],
    )?)?;
    let remote_img = json(&snap_ok(
        nowhere.path(),
        &["--json", "show", &format!("{repo}:img")],
        &[],
    )?)?;
    let seen = reg.requests()?[mark..].to_vec();
    let blobs: Vec<&String> = seen.iter().filter(|r| r.contains("/blobs/")).collect();
    assert_eq!(
        blobs.len(),
        2,
        "the snapshot's config, once per ls-remote: {seen:#?}"
    );

    snap_ok(d, &["pull", &format!("{repo}:art")], &[])?;
    snap_ok(d, &["pull", &format!("{repo}:img")], &[])?;
    assert_eq!(
        remote_art,
        json(&snap_ok(d, &["--json", "show", "art"], &[])?)?
    );
    assert_eq!(
        remote_img,
        json(&snap_ok(d, &["--json", "show", "img"], &[])?)?
    );
    assert_eq!(remote_img["kind"], "image");
    Ok(())
}

// issue 14, item 1: a registry→layout copy through the transfer layer — `snap export --oci
// REGISTRY/REPO:TAG` walks the registry's graph and writes the layout without a store: a
// snapshot with its history (re-imported elsewhere, `snap log` is the pusher's) and a
// container image pushed by skopeo, which skopeo then reads back from the archive with the
// registry's digest.
#[test]
fn a_registry_reference_exports_straight_into_a_layout() -> Result {
    use crate::harness::{have_skopeo, have_umoci, skopeo};
    if !have_registry() || !have_skopeo() || !have_umoci() {
        return Ok(());
    }
    let t = tempfile::tempdir()?;
    let d = t.path();
    let reg = Registry::start()?;
    let repo = format!("{}/copy/things", reg.addr);
    sh(
        d,
        "mkdir -p build && seq 1 3000 > build/a.txt && echo x > build/b",
    )?;
    snap_ok(d, &["commit", "build", "-m", "one"], &[])?;
    sh(d, "seq 1 4000 > build/a.txt")?;
    snap_ok(d, &["commit", "build", "-m", "two"], &[])?;
    snap_ok(
        d,
        &["push", "--with-history", "latest", &format!("{repo}:v1")],
        &[],
    )?;
    let pusher_log = snap_ok(d, &["--json", "log", "latest"], &[])?;
    let id = json(&snap_ok(d, &["--json", "show", "latest"], &[])?)?["digest"]
        .as_str()
        .ok_or("id")?
        .to_owned();
    crate::umoci_image(d)?;
    skopeo(
        d,
        &format!("copy -q --dest-tls-verify=false oci:L:v2 docker://{repo}:img"),
    )?;
    let img_digest = skopeo(
        d,
        &format!("inspect --tls-verify=false --format '{{{{.Digest}}}}' docker://{repo}:img"),
    )?
    .trim()
    .to_owned();

    // No store here, and none is made.
    let nowhere = tempfile::tempdir()?;
    let n = nowhere.path();
    snap_ok(
        n,
        &["export", "--oci", &format!("{repo}:v1"), "-o", "snap.tar"],
        &[],
    )?;
    snap_ok(
        n,
        &["export", "--oci", &format!("{repo}:img"), "-o", "img.tar"],
        &[],
    )?;
    snap_ok(
        n,
        &[
            "export",
            "--oci",
            "--with-history",
            &format!("{repo}:v1"),
            "-o",
            "hist",
        ],
        &[],
    )?;
    assert!(!n.join(".store").exists(), "a registry export made a store");
    // `inspect --raw` prints the exact manifest bytes (an artifact has no image digest view).
    let got = skopeo(n, "inspect --raw oci-archive:snap.tar:v1 | sha256sum")?;
    assert_eq!(
        format!(
            "sha256:{}",
            got.split_whitespace().next().unwrap_or_default()
        ),
        id,
        "skopeo reads the snapshot under its tag"
    );
    let got = skopeo(n, "inspect --format '{{.Digest}}' oci-archive:img.tar:img")?;
    assert_eq!(
        got.trim(),
        img_digest,
        "the image keeps the registry's digest"
    );
    let index = json(&std::fs::read_to_string(n.join("hist/index.json"))?)?;
    assert_eq!(
        index["manifests"].as_array().map(Vec::len),
        Some(2),
        "the snapshot and its ancestor: {index}"
    );

    // Imported elsewhere, the history is the pusher's and everything restores.
    let other = tempfile::tempdir()?;
    let o = other.path();
    snap_ok(o, &["import", &n.join("hist").to_string_lossy()], &[])?;
    assert_eq!(snap_ok(o, &["--json", "log", "v1"], &[])?, pusher_log);
    snap_ok(o, &["restore", "v1", "out"], &[])?;
    assert_eq!(
        sh(o, "seq 1 4000 | cmp - out/build/a.txt && cat out/build/b")?,
        "x\n"
    );
    snap_ok(o, &["import", &n.join("img.tar").to_string_lossy()], &[])?;
    snap_ok(o, &["fsck"], &[])?;

    // A reference the registry does not have: a clear error, and nothing written.
    let err = snap_fails(
        n,
        &["export", "--oci", &format!("{repo}:absent"), "-o", "no.tar"],
        &[],
        2,
    )?;
    assert!(err.contains("absent") || err.contains("not found"), "{err}");
    assert!(!n.join("no.tar").exists());
    assert_eq!(
        sh(n, "ls -A | grep -v policy.json")?,
        "hist\nimg.tar\nsnap.tar\n",
        "no temp dir left"
    );
    Ok(())
}
