//! `snap push` and `snap pull` against real registries (Debian's docker-registry): anonymous,
//! htpasswd basic auth, and bearer tokens from `token_server.py`.

use std::collections::BTreeSet;
use std::path::Path;

use serde_json::Value;

use crate::harness::{
    Auth, FaultServer, Registry, Result, git_commit, git_repo, have_auth_tools, have_oras,
    have_registry, have_skopeo, have_umoci, sh, skopeo, snap_env, snap_fails, snap_ok, workdir,
};

fn json(s: &str) -> Result<Value> {
    Ok(s.parse()?)
}

fn layers(dir: &Path, rev: &str) -> Result<BTreeSet<String>> {
    let m = json(&snap_ok(dir, &["show", "--manifest", rev], &[])?)?;
    Ok(m["layers"]
        .as_array()
        .ok_or("layers")?
        .iter()
        .filter_map(|l| l["digest"].as_str().map(str::to_owned))
        .collect())
}

#[test]
fn push_then_pull_into_a_fresh_store_gives_the_same_snapshot_and_restore() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start()?;
    for (rev, repo) in [("latest", "grouped"), ("small", "direct")] {
        let target = format!("{}/snap/{repo}:v1", reg.addr);
        let pushed = json(&snap_ok(&dir, &["--json", "push", rev, &target], &[])?)?;
        let digest = pushed["digest"].as_str().ok_or("digest")?.to_owned();
        assert_eq!(pushed["uploaded"], pushed["blobs"], "{pushed}");
        let tags: Vec<&str> = pushed["tags"]
            .as_array()
            .ok_or("tags")?
            .iter()
            .filter_map(|t| t["tag"].as_str())
            .collect();
        assert_eq!(tags, ["v1", "latest"], "no git here: no commit tag");

        let fresh = tempfile::tempdir()?;
        let f = fresh.path();
        snap_ok(f, &["init"], &[])?;
        let pulled = json(&snap_ok(f, &["--json", "pull", &target], &[])?)?;
        assert_eq!(pulled["digest"].as_str(), Some(digest.as_str()));
        assert_eq!(pulled["refs"][0]["name"], "v1");
        assert_eq!(pulled["refs"][0]["update"], "inserted");
        snap_ok(f, &["restore", "v1", "out"], &[])?;
        let src = if repo == "grouped" { "big" } else { "demo" };
        sh(
            f,
            &format!("diff -r --no-dereference {}/{src} out/{src}", dir.display()),
        )?;
        assert!(snap_ok(f, &["fsck"], &[]).is_ok());
        // issue 14: the reflog said `import: …/.store/.tmp-…`; it names the reference.
        let reflog = std::fs::read_to_string(f.join(".store/logs/heads/v1"))?;
        assert!(
            reflog
                .trim_end()
                .ends_with(&format!("\tpull: {target}@{digest}")),
            "{reflog}"
        );

        // Pulling again downloads nothing and changes nothing.
        let again = json(&snap_ok(f, &["--json", "pull", &target], &[])?)?;
        assert_eq!(again["downloaded"], 0);
        assert_eq!(again["refs"][0]["update"], "unchanged");
    }
    Ok(())
}

// issue 13: two concurrent pulls of the same tag made the loser report a false conflict (exit 3):
// the ref was read without its lock, then the compare-and-swap from "absent" failed because the
// winner had inserted the very digest being pulled.
#[test]
fn concurrent_pulls_of_the_same_tag_all_succeed() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/race:v1", reg.addr);
    let pushed = json(&snap_ok(&dir, &["--json", "push", "latest", &target], &[])?)?;
    // Rounds of processes started together, each pulling the same tag into the same new store.
    const PULLS: usize = 12;
    for _round in 0..3 {
        let fresh = tempfile::tempdir()?;
        let f = fresh.path();
        snap_ok(f, &["init"], &[])?;
        let children: Vec<_> = (0..PULLS)
            .map(|_| {
                crate::support::snap_command(f, f)
                    .args(["--json", "pull", &target])
                    .env("SNAP_LOCK_TIMEOUT_MS", "20000")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
            })
            .collect::<std::io::Result<_>>()?;
        let mut inserted = 0;
        for child in children {
            let out = child.wait_with_output()?;
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let pulled = json(&String::from_utf8(out.stdout)?)?;
            assert_eq!(pulled["digest"], pushed["digest"]);
            match pulled["refs"][0]["update"].as_str() {
                Some("inserted") => inserted += 1,
                Some("unchanged") => {}
                other => return Err(format!("unexpected update {other:?}").into()),
            }
        }
        assert_eq!(
            inserted, 1,
            "one pull inserts the ref, the others find it there"
        );
        assert!(snap_ok(f, &["fsck"], &[]).is_ok());
    }
    Ok(())
}

#[test]
fn a_second_push_uploads_only_the_changed_groups() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/inc", reg.addr);
    let first = json(&snap_ok(&dir, &["--json", "push", "latest", &target], &[])?)?;
    let before = layers(&dir, "latest")?;
    sh(&dir, "echo changed >> big/f77")?;
    snap_ok(&dir, &["commit", "big", "-m", "one file changed"], &[])?;
    let after = layers(&dir, "latest")?;
    let new_layers = after.difference(&before).count() as u64;
    let second = json(&snap_ok(&dir, &["--json", "push", "latest", &target], &[])?)?;
    // The new groups (the changed file's, the tree layer) and the new config, nothing else.
    assert_eq!(
        second["uploaded"].as_u64(),
        Some(new_layers + 1),
        "{second}"
    );
    assert!(new_layers < after.len() as u64, "only some groups changed");
    assert!(
        second["uploaded_bytes"].as_u64() < first["uploaded_bytes"].as_u64(),
        "{first} {second}"
    );
    assert_eq!(second["tags"][0]["update"], "replaced", "latest moved");

    // A pull on top of the first snapshot downloads just as little and fast-forwards.
    let fresh = tempfile::tempdir()?;
    let f = fresh.path();
    snap_ok(f, &["init"], &[])?;
    let d1 = first["digest"].as_str().ok_or("digest")?;
    snap_ok(
        f,
        &["pull", &format!("{target}@{d1}"), "--ref", "latest"],
        &[],
    )?;
    let pulled = json(&snap_ok(f, &["--json", "pull", &target], &[])?)?;
    assert_eq!(
        pulled["downloaded"].as_u64(),
        Some(new_layers + 1),
        "{pulled}"
    );
    assert_eq!(pulled["refs"][0]["update"], "fast_forward");
    Ok(())
}

#[test]
fn basic_auth_credentials_come_from_the_environment_or_docker_config() -> Result {
    if !have_registry() || !have_auth_tools() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start_with(&Auth::Basic {
        user: "ci",
        password: "s3cret",
    })?;
    let target = format!("{}/snap/basic:v1", reg.addr);

    let err = snap_fails(&dir, &["push", "small", &target], &[], 2)?;
    assert!(
        err.contains(&format!(
            "{} refused push access to snap/basic without credentials (401)",
            reg.addr
        )),
        "{err}"
    );

    // docker's config.json, as `docker login` writes it.
    let cfg = dir.join("docker-cfg");
    std::fs::create_dir_all(&cfg)?;
    let write_cfg = |password: &str| -> Result {
        let auth = sh(&dir, &format!("printf 'ci:{password}' | base64 -w0"))?;
        std::fs::write(
            cfg.join("config.json"),
            format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.addr),
        )?;
        Ok(())
    };
    let cfg_env = [("DOCKER_CONFIG", cfg.to_str().ok_or("utf8")?)];
    write_cfg("wrong")?;
    let err = snap_fails(&dir, &["push", "small", &target], &cfg_env, 2)?;
    assert!(
        err.contains("with the credentials from docker config.json (401)"),
        "{err}"
    );
    write_cfg("s3cret")?;
    let out = json(&snap_ok(
        &dir,
        &["--json", "push", "small", &target],
        &cfg_env,
    )?)?;
    assert_eq!(out["credentials"], "docker config.json");

    // The environment comes first.
    let env = [
        ("SNAP_REGISTRY_USER", "ci"),
        ("SNAP_REGISTRY_PASSWORD", "s3cret"),
    ];
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    let out = json(&snap_ok(fresh.path(), &["--json", "pull", &target], &env)?)?;
    assert_eq!(out["credentials"], "SNAP_REGISTRY_USER");
    let err = snap_fails(
        fresh.path(),
        &["pull", &target],
        &[("SNAP_REGISTRY_USER", "ci")],
        2,
    )?;
    assert!(
        err.contains("set both SNAP_REGISTRY_USER and SNAP_REGISTRY_PASSWORD"),
        "{err}"
    );
    Ok(())
}

#[test]
fn bearer_tokens_pull_anonymously_push_with_credentials_and_renew_on_401() -> Result {
    if !have_registry() || !have_auth_tools() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start_with(&Auth::Token {
        user: "ci",
        password: "s3cret",
        expire_first: true,
    })?;
    let target = format!("{}/snap/token:v1", reg.addr);
    let env = [
        ("SNAP_REGISTRY_USER", "ci"),
        ("SNAP_REGISTRY_PASSWORD", "s3cret"),
    ];
    // The first token the server issues has already expired: the push must log in again.
    let out = json(&snap_ok(
        &dir,
        &["--json", "push", "latest", &target],
        &env,
    )?)?;
    assert!(reg.tokens_issued()? >= 2, "re-authenticated after the 401");
    let digest = out["digest"].as_str().ok_or("digest")?.to_owned();

    let wrong = [
        ("SNAP_REGISTRY_USER", "ci"),
        ("SNAP_REGISTRY_PASSWORD", "nope"),
    ];
    let err = snap_fails(&dir, &["push", "latest", &target], &wrong, 2)?;
    assert!(
        err.contains("with the credentials from SNAP_REGISTRY_USER (401)"),
        "{err}"
    );
    let err = snap_fails(
        &dir,
        &["push", "latest", &format!("{}/snap/other", reg.addr)],
        &[],
        2,
    )?;
    assert!(
        err.contains("refused push access to snap/other without credentials"),
        "{err}"
    );

    // Anonymous pulls are allowed by this token server.
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    let pulled = json(&snap_ok(fresh.path(), &["--json", "pull", &target], &[])?)?;
    assert_eq!(pulled["digest"].as_str(), Some(digest.as_str()));
    assert_eq!(pulled["credentials"], "anonymous");
    Ok(())
}

#[test]
fn errors_name_the_problem() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start()?;
    let err = snap_fails(
        &dir,
        &["pull", &format!("{}/snap/none:v9", reg.addr)],
        &[],
        2,
    )?;
    assert!(err.contains("not found in"), "{err}");
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let err = snap_fails(&dir, &["pull", &format!("127.0.0.1:{port}/a/b:v1")], &[], 2)?;
    assert!(err.contains("refused the connection"), "{err}");
    let err = snap_fails(
        &dir,
        &["push", "latest", "no-such-host.invalid/a/b:v1"],
        &[],
        2,
    )?;
    assert!(err.contains("cannot resolve the registry host"), "{err}");
    let err = snap_fails(&dir, &["push", "latest", "127.0.0.1:1/Upper/Case"], &[], 2)?;
    assert!(err.contains("is not a registry reference"), "{err}");
    Ok(())
}

#[test]
fn git_tags_are_immutable_dirty_trees_are_refused_and_walk_back_finds_the_nearest() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let t = tempfile::tempdir()?;
    let dir = t.path();
    git_repo(dir)?;
    let reg = Registry::start()?;
    let repo = format!("{}/snap/ci", reg.addr);

    // Snapshots of commits c1 and c2 are pushed; HEAD then moves on two commits.
    sh(dir, "mkdir -p build && echo one > build/index.txt")?;
    snap_ok(dir, &["commit", "build", "-m", "c1"], &[])?;
    let c1 = sh(dir, "git rev-parse HEAD")?.trim().to_owned();
    let p1 = json(&snap_ok(dir, &["--json", "push", "latest", &repo], &[])?)?;
    let tags: Vec<&str> = p1["tags"]
        .as_array()
        .ok_or("tags")?
        .iter()
        .filter_map(|t| t["tag"].as_str())
        .collect();
    assert_eq!(tags, [&c1[..12], "latest"]);

    // Another snapshot of the same commit may not take its tag.
    sh(dir, "echo other > build/index.txt")?;
    snap_ok(dir, &["commit", "build", "-m", "c1 again"], &[])?;
    let err = snap_fails(dir, &["push", "latest", &repo], &[], 3)?;
    assert!(
        err.contains(&format!("tag `{}`", &c1[..12])) && err.contains("already names"),
        "{err}"
    );
    snap_ok(dir, &["push", "--force", "latest", &repo], &[])?;

    // A dirty work tree is refused; --allow-dirty pushes it without a commit tag.
    sh(dir, "echo dirty >> src/main.rs")?;
    snap_ok(
        dir,
        &["commit", "build", "--ref", "dirty", "-m", "dirty"],
        &[],
    )?;
    let err = snap_fails(dir, &["push", "dirty", &format!("{repo}:wip")], &[], 2)?;
    assert!(err.contains("dirty work tree"), "{err}");
    let out = json(&snap_ok(
        dir,
        &[
            "--json",
            "push",
            "--allow-dirty",
            "--no-moving-tag",
            "dirty",
            &format!("{repo}:wip"),
        ],
        &[],
    )?)?;
    assert_eq!(out["tags"].as_array().map(Vec::len), Some(1), "{out}");
    sh(dir, "git checkout -q src/main.rs")?;

    let c2 = git_commit(dir, "c2")?;
    sh(dir, "echo two > build/index.txt")?;
    snap_ok(dir, &["commit", "build", "-m", "c2"], &[])?;
    let p2 = json(&snap_ok(dir, &["--json", "push", "latest", &repo], &[])?)?;
    git_commit(dir, "c3")?;
    git_commit(dir, "c4")?;

    let elsewhere = tempfile::tempdir()?;
    let e = elsewhere.path();
    git_repo(e)?;
    // The same history: fetch it from the first repository.
    sh(
        e,
        &format!(
            "git fetch -q {} main && git reset -q --hard FETCH_HEAD",
            dir.display()
        ),
    )?;
    snap_ok(e, &["init"], &[])?;
    let pulled = json(&snap_ok(e, &["--json", "pull", "--walk-back", &repo], &[])?)?;
    assert_eq!(pulled["digest"], p2["digest"]);
    assert_eq!(pulled["walk_back"]["commit"].as_str(), Some(c2.as_str()));
    assert_eq!(pulled["walk_back"]["commits_behind"], 2);
    assert_eq!(pulled["refs"][0]["name"], "latest");
    assert_eq!(pulled["freshness"]["commits_ahead"], 2);
    let out = snap_env(e, &["pull", "--walk-back", &repo], &[])?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 commits behind HEAD"), "{err}");
    assert!(err.contains("(2 commits ahead)"), "{err}");

    // Only "manifest unknown" moves on: a repository without any of the tags is exhausted…
    let err = snap_fails(e, &["pull", "--walk-back", "--max", "2", &repo], &[], 2)?;
    assert!(
        err.contains("none of the last 2 commits has a snapshot"),
        "{err}"
    );
    // …while a registry that is down stops the walk at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let err = snap_fails(
        e,
        &["pull", "--walk-back", &format!("127.0.0.1:{port}/snap/ci")],
        &[],
        2,
    )?;
    assert!(err.contains("refused the connection"), "{err}");
    Ok(())
}

#[test]
fn oras_pulls_what_snap_pushed_into_the_right_paths() -> Result {
    if !have_registry() || !have_oras() {
        return Ok(());
    }
    let t = tempfile::tempdir()?;
    let d = t.path();
    let reg = Registry::start()?;
    sh(
        d,
        "mkdir -p one multi/sub && echo single > one/model.bin && echo a > multi/a.txt && echo b > multi/sub/b.txt",
    )?;
    snap_ok(d, &["commit", "-C", "one", ".", "--ref", "one"], &[])?;
    snap_ok(d, &["commit", "multi", "--ref", "multi"], &[])?;
    snap_ok(
        d,
        &["push", "one", &format!("{}/snap/one:v1", reg.addr)],
        &[],
    )?;
    snap_ok(
        d,
        &["push", "multi", &format!("{}/snap/multi:v1", reg.addr)],
        &[],
    )?;
    let script = format!(
        "import oras.client\n\
         c = oras.client.OrasClient(hostname='{a}', insecure=True)\n\
         c.pull(target='{a}/snap/one:v1', outdir='o1')\n\
         c.pull(target='{a}/snap/multi:v1', outdir='o2')\n",
        a = reg.addr
    );
    std::fs::write(d.join("pull.py"), script)?;
    sh(d, "python3 pull.py > /dev/null")?;
    assert_eq!(std::fs::read_to_string(d.join("o1/model.bin"))?, "single\n");
    assert_eq!(std::fs::read_to_string(d.join("o2/multi/a.txt"))?, "a\n");
    assert_eq!(
        std::fs::read_to_string(d.join("o2/multi/sub/b.txt"))?,
        "b\n"
    );
    Ok(())
}

#[test]
fn snap_pulls_an_oras_artifact_and_a_skopeo_pushed_image() -> Result {
    if !have_registry() || !have_oras() || !have_skopeo() || !have_umoci() {
        return Ok(());
    }
    let t = tempfile::tempdir()?;
    let d = t.path();
    let reg = Registry::start()?;
    sh(d, "echo top > top.txt")?;
    let script = format!(
        "import oras.client\n\
         c = oras.client.OrasClient(hostname='{a}', insecure=True)\n\
         c.push(target='{a}/oras/art:v1', files=['top.txt'])\n",
        a = reg.addr
    );
    std::fs::write(d.join("push.py"), script)?;
    sh(d, "python3 push.py > /dev/null")?;
    snap_ok(d, &["init"], &[])?;
    snap_ok(d, &["pull", &format!("{}/oras/art:v1", reg.addr)], &[])?;
    snap_ok(d, &["restore", "v1", "art"], &[])?;
    assert_eq!(std::fs::read_to_string(d.join("art/top.txt"))?, "top\n");

    crate::umoci_image(d)?;
    skopeo(
        d,
        &format!(
            "copy -q --dest-tls-verify=false oci:L:v2 docker://{}/img/app:v2",
            reg.addr
        ),
    )?;
    let raw = skopeo(
        d,
        &format!(
            "inspect --tls-verify=false --raw docker://{}/img/app:v2 | sha256sum",
            reg.addr
        ),
    )?;
    let out = json(&snap_ok(
        d,
        &[
            "--json",
            "pull",
            &format!("{}/img/app:v2", reg.addr),
            "--ref",
            "img",
        ],
        &[],
    )?)?;
    let expected = format!("sha256:{}", raw.split_whitespace().next().ok_or("sum")?);
    assert_eq!(out["digest"].as_str(), Some(expected.as_str()));
    snap_ok(d, &["restore", "img", "rootfs"], &[])?;
    sh(d, "diff -r --no-dereference b2/rootfs rootfs")?;
    Ok(())
}

#[test]
fn faults_a_real_registry_will_not_produce_on_demand_get_clear_errors() -> Result {
    let (_t, dir) = workdir()?;
    let denied = FaultServer::start(
        403,
        Some(("DENIED", "requested access to the resource is denied")),
    )?;
    let err = snap_fails(
        &dir,
        &["push", "small", &format!("{}/acme/x:v1", denied.addr)],
        &[],
        2,
    )?;
    assert!(err.contains("denied push access to acme/x (403)"), "{err}");
    assert!(err.contains("registry-denied"), "{err}");

    // A 5xx stops a walk-back (after its retries, at most twice the 2 s timeout): it must not
    // fall back to an older snapshot.
    let broken = FaultServer::start(503, None)?;
    let t = tempfile::tempdir()?;
    git_repo(t.path())?;
    snap_ok(t.path(), &["init"], &[])?;
    let err = snap_fails(
        t.path(),
        &["pull", "--walk-back", &format!("{}/acme/x", broken.addr)],
        &[("SNAP_TIMEOUT", "2")],
        2,
    )?;
    assert!(err.contains("(HTTP 503)"), "{err}");
    assert!(err.contains("gave up on"), "{err}");

    // A registry error envelope becomes a sentence, after the retries a 429 is worth.
    let quota = FaultServer::start(
        429,
        Some(("TOOMANYREQUESTS", "rate limit exceeded for this account")),
    )?;
    let err = snap_fails(
        &dir,
        &["pull", &format!("{}/acme/x:v1", quota.addr)],
        &[("SNAP_TIMEOUT", "2")],
        2,
    )?;
    assert!(
        err.contains("said: rate limit exceeded for this account"),
        "{err}"
    );
    assert!(err.contains("snap explain registry-busy"), "{err}");
    Ok(())
}

#[test]
fn chunked_uploads_push_the_same_snapshot() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/chunked:v1", reg.addr);
    let pushed = json(&snap_ok(
        &dir,
        &["--json", "push", "--chunked", "-j", "2", "latest", &target],
        &[],
    )?)?;
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    let pulled = json(&snap_ok(fresh.path(), &["--json", "pull", &target], &[])?)?;
    assert_eq!(pulled["digest"], pushed["digest"]);
    snap_ok(fresh.path(), &["restore", "v1", "out"], &[])?;
    sh(
        fresh.path(),
        &format!("diff -r --no-dereference {}/big out/big", dir.display()),
    )?;
    Ok(())
}

#[test]
fn push_refuses_a_snapshot_with_a_corrupt_pack_or_object_and_the_tag_never_appears() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let reg = Registry::start()?;
    for (rev, what) in [("latest", "pack"), ("small", "loose")] {
        let (_t, dir) = workdir()?;
        // Damage a byte inside a content frame: the largest pack of the grouped snapshot, or
        // the largest loose object (a file) of the direct one.
        let victim = if what == "pack" {
            sh(&dir, "ls -S .store/packs/*.pack | head -1")?
        } else {
            sh(
                &dir,
                "ls -S $(find .store/objects -type f ! -name '.*') | head -1",
            )?
        };
        sh(
            &dir,
            &format!(
                "chmod u+w {0} && size=$(stat -c %s {0}) && printf 'X' | dd of={0} bs=1 seek=$((size / 2)) conv=notrunc status=none",
                victim.trim()
            ),
        )?;
        let target = format!("{}/snap/corrupt-{what}:v1", reg.addr);
        let err = snap_fails(&dir, &["push", rev, &target], &[], 2)?;
        assert!(err.contains("corrupt"), "{what}: {err}");
        assert!(err.contains("snap fsck"), "{what}: the hint: {err}");
        let fresh = tempfile::tempdir()?;
        snap_ok(fresh.path(), &["init"], &[])?;
        let err = snap_fails(fresh.path(), &["pull", &target], &[], 2)?;
        assert!(
            err.contains("not found"),
            "{what}: no manifest was pushed: {err}"
        );
    }
    Ok(())
}

// issue 14: history stopped at the registry: after `snap pull`, `snap log` said the history
// continued with a digest that was not in the store.
#[test]
fn history_pushed_survives_the_registrys_gc_and_pulls_into_the_same_log() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    // Two more snapshots of `big` on top of the grouped one: a lineage of three.
    for i in 1..=2 {
        sh(&dir, &format!("seq 1 {i}000 > big/f1"))?;
        snap_ok(&dir, &["commit", "big", "-m", &format!("change {i}")], &[])?;
    }
    let log = |d: &Path, rev: &str| -> Result<Vec<String>> {
        Ok(snap_ok(d, &["--json", "log", rev], &[])?
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|v| v["data"]["digest"].as_str().map(str::to_owned))
            .collect())
    };
    let ours = log(&dir, "latest")?;
    assert_eq!(ours.len(), 3, "{ours:?}");

    let reg = Registry::start()?;
    let target = format!("{}/snap/history:v3", reg.addr);
    // A plain push first: only the tip; history is what --with-history adds.
    let plain = json(&snap_ok(&dir, &["--json", "push", "latest", &target], &[])?)?;
    assert_eq!(plain["history"], 0);
    let pushed = json(&snap_ok(
        &dir,
        &["--json", "push", "--with-history", "latest", &target],
        &[],
    )?)?;
    assert_eq!(pushed["history"], 2, "{pushed}");
    reg.garbage_collect()?;

    // A fresh store gets the whole lineage; --depth limits it.
    for (depth, expected) in [(None, 3), (Some("1"), 2), (Some("0"), 1)] {
        let fresh = tempfile::tempdir()?;
        let f = fresh.path();
        snap_ok(f, &["init"], &[])?;
        let mut args = vec!["--json", "pull", &target];
        if let Some(n) = depth {
            args.extend(["--depth", n]);
        }
        let pulled = json(&snap_ok(f, &args, &[])?)?;
        assert_eq!(pulled["history"], expected - 1, "{pulled}");
        assert_eq!(log(f, "v3")?, ours[..expected].to_vec(), "depth {depth:?}");
        for d in &ours[..expected] {
            snap_ok(f, &["restore", d, &format!("out-{}", &d[7..19])], &[])?;
        }
        snap_ok(f, &["fsck"], &[])?;
    }
    Ok(())
}
