//! issue 16: signed snapshots and their referrers through a real registry (CNCF distribution
//! 2.8: no referrers API, so the fallback tag `sha256-<hex>`), seen by oras-py and skopeo, and
//! `pull --verify` refusing what no allowed signer signed — storing nothing.

use std::path::Path;

use snap::Digest;

use crate::harness::{
    HostileRegistry, Registry, Result, have_oras, have_registry, have_skopeo, sh, skopeo,
    snap_fails, snap_ok,
};

/// A key `name` (and `name.pub`) in `dir`, and its allowed-signers line.
fn keygen(dir: &Path, name: &str) -> Result<String> {
    sh(
        dir,
        &format!("ssh-keygen -q -t ed25519 -N '' -C {name} -f {name}"),
    )?;
    Ok(format!(
        "{name} {}",
        std::fs::read_to_string(dir.join(format!("{name}.pub")))?
    ))
}

/// Commits `content` in `dir` under ref `name`; returns the snapshot digest.
fn commit(dir: &Path, name: &str, content: &str) -> Result<Digest> {
    sh(
        dir,
        &format!("mkdir -p {name} && printf '{content}' > {name}/file.txt"),
    )?;
    let out = snap_ok(dir, &["--json", "commit", name, "--ref", name], &[])?;
    let v: serde_json::Value = out.parse()?;
    Ok(v["digest"].as_str().ok_or("digest")?.parse()?)
}

/// Every file of a store but its lock files: what "nothing stored" compares.
fn store_listing(dir: &Path) -> Result<String> {
    sh(
        dir,
        "find .store -type f -not -name LOCK -not -name 'LOCK.*' | sort",
    )
}

fn fresh_store() -> Result<tempfile::TempDir> {
    let t = tempfile::tempdir()?;
    snap_ok(t.path(), &["init"], &[])?;
    Ok(t)
}

#[test]
fn a_signed_push_pulls_with_verify_into_a_fresh_store_and_oras_and_skopeo_see_the_fallback_tag()
-> Result {
    if !have_registry() || !have_oras() || !have_skopeo() {
        return Ok(());
    }
    let reg = Registry::start()?;
    let t = tempfile::tempdir()?;
    let d = t.path();
    let snap = commit(d, "app", "v1")?;
    let alice = keygen(d, "alice")?;
    std::fs::write(d.join("allowed"), &alice)?;
    let sig: serde_json::Value =
        snap_ok(d, &["--json", "sign", "app", "--key", "alice"], &[])?.parse()?;
    std::fs::write(d.join("sbom.json"), "{}")?;
    snap_ok(
        d,
        &[
            "attach",
            "app",
            "sbom.json",
            "--artifact-type",
            "application/x.sbom",
        ],
        &[],
    )?;
    let target = format!("{}/snap/signed:v1", reg.addr);
    let pushed: serde_json::Value =
        snap_ok(d, &["--json", "push", "app", &target], &[])?.parse()?;
    assert_eq!(pushed["referrers"], 2, "{pushed}");

    // The registry has no referrers API: the fallback tag holds an index of both referrers.
    let tag = format!("sha256-{}", snap.hex());
    let script = format!(
        "import json, oras.client\n\
         c = oras.client.OrasClient(hostname='{a}', insecure=True)\n\
         print(json.dumps({{'tags': c.get_tags('{a}/snap/signed'), \
         'index': c.get_manifest('{a}/snap/signed:{tag}')}}))\n",
        a = reg.addr
    );
    std::fs::write(d.join("look.py"), script)?;
    let seen: serde_json::Value = sh(d, "python3 look.py")?.parse()?;
    assert!(
        seen["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|x| x == tag.as_str())),
        "{seen}"
    );
    let listed = seen["index"]["manifests"].as_array().ok_or("manifests")?;
    assert_eq!(listed.len(), 2, "{seen}");
    assert!(
        listed.iter().any(|m| m["digest"] == sig["signature"]
            && m["artifactType"] == "application/vnd.snaptool.signature.v1"),
        "{seen}"
    );
    let raw = skopeo(
        d,
        &format!(
            "inspect --tls-verify=false --raw docker://{}/snap/signed@{}",
            reg.addr,
            sig["signature"].as_str().ok_or("signature")?
        ),
    )?;
    assert!(raw.contains(&format!("\"subject\":{{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"{snap}\"")), "{raw}");

    // A fresh store pulls it with --verify, and has the signatures and the SBOM.
    let f = fresh_store()?;
    std::fs::copy(d.join("allowed"), f.path().join("allowed"))?;
    let out = snap_ok(
        f.path(),
        &["pull", "--verify", "--allowed-signers", "allowed", &target],
        &[],
    )?;
    assert_eq!(out.trim(), snap.to_string());
    snap_ok(
        f.path(),
        &["verify", "v1", "--allowed-signers", "allowed"],
        &[],
    )?;
    let r: serde_json::Value = snap_ok(f.path(), &["--json", "referrers", "v1"], &[])?.parse()?;
    assert_eq!(r["referrers"].as_array().map(Vec::len), Some(2), "{r}");
    snap_ok(f.path(), &["fsck"], &[])?;

    // Pushing again puts no new fallback index; another signature is merged in, keeping
    // what the tag listed.
    let before = reg.requests()?.len();
    snap_ok(d, &["push", "app", &target], &[])?;
    let puts_of_tag = reg.requests()?[before..]
        .iter()
        .filter(|l| l.contains("PUT") && l.contains(&tag))
        .count();
    assert_eq!(puts_of_tag, 0, "nothing new, no put");
    keygen(d, "bob")?;
    snap_ok(d, &["sign", "app", "--key", "bob"], &[])?;
    snap_ok(d, &["push", "app", &target], &[])?;
    let seen: serde_json::Value = sh(d, "python3 look.py")?.parse()?;
    assert_eq!(
        seen["index"]["manifests"].as_array().map(Vec::len),
        Some(3),
        "{seen}"
    );
    Ok(())
}

#[test]
fn pull_verify_refuses_unsigned_unknown_keys_other_digests_and_moved_tags_storing_nothing() -> Result
{
    if !have_registry() {
        return Ok(());
    }
    let reg = Registry::start()?;
    let t = tempfile::tempdir()?;
    let d = t.path();
    let alice = keygen(d, "alice")?;
    keygen(d, "mallory")?;
    std::fs::write(d.join("allowed"), &alice)?;
    let repo = format!("{}/snap/verify", reg.addr);

    // Unsigned.
    commit(d, "unsigned", "u")?;
    snap_ok(d, &["push", "unsigned", &format!("{repo}:unsigned")], &[])?;
    // Signed by a key the allowed signers do not hold.
    commit(d, "mallory-signed", "m")?;
    snap_ok(d, &["sign", "mallory-signed", "--key", "mallory"], &[])?;
    snap_ok(
        d,
        &["push", "mallory-signed", &format!("{repo}:mallory")],
        &[],
    )?;
    // A good signature by alice, but over another digest.
    let other = commit(d, "other-digest", "o")?;
    let elsewhere = Digest::of(b"some other manifest");
    sh(
        d,
        &format!("printf %s {elsewhere} > msg && ssh-keygen -q -Y sign -n snap -f alice msg"),
    )?;
    snap_ok(
        d,
        &[
            "attach",
            "other-digest",
            "msg.sig",
            "--artifact-type",
            "application/vnd.snaptool.signature.v1",
        ],
        &[],
    )?;
    snap_ok(d, &["push", "other-digest", &format!("{repo}:other")], &[])?;
    // A tag moved: alice signed what `moved` named, then it was moved to another snapshot.
    commit(d, "signed", "s")?;
    snap_ok(d, &["sign", "signed", "--key", "alice"], &[])?;
    snap_ok(d, &["push", "signed", &format!("{repo}:moved")], &[])?;
    let f = fresh_store()?;
    std::fs::copy(d.join("allowed"), f.path().join("allowed"))?;
    snap_ok(
        f.path(),
        &[
            "pull",
            "--verify",
            "--allowed-signers",
            "allowed",
            &format!("{repo}:moved"),
        ],
        &[],
    )?;
    let g = fresh_store()?;
    std::fs::copy(d.join("allowed"), g.path().join("allowed"))?;
    let moved_to = commit(d, "moved-to", "mt")?;
    snap_ok(d, &["push", "moved-to", &format!("{repo}:moved")], &[])?;

    for (tag, subject, why) in [
        ("unsigned", None, "it has no signature"),
        (
            "mallory",
            None,
            "1 signature(s) by keys not in the allowed signers",
        ),
        ("other", Some(other), "1 that do not verify"),
        ("moved", Some(moved_to), "it has no signature"),
    ] {
        let before = store_listing(g.path())?;
        let err = snap_fails(
            g.path(),
            &[
                "pull",
                "--verify",
                "--allowed-signers",
                "allowed",
                &format!("{repo}:{tag}"),
            ],
            &[],
            1,
        )?;
        assert!(
            err.contains("is not signed by an allowed signer") && err.contains(why),
            "{tag}: {err}"
        );
        if let Some(s) = subject {
            assert!(err.contains(&s.to_string()), "names the snapshot: {err}");
        }
        assert!(err.contains("hint: nothing was stored"), "{err}");
        assert_eq!(store_listing(g.path())?, before, "{tag}: nothing stored");
        assert_eq!(
            snap_ok(g.path(), &["refs"], &[])?,
            "",
            "{tag}: no ref moved"
        );
    }

    // The setting does what the flag does; --no-referrers still pulls.
    snap_ok(g.path(), &["config", "pull.verify", "true"], &[])?;
    snap_ok(
        g.path(),
        &["config", "verify.allowed-signers", "allowed"],
        &[],
    )?;
    snap_fails(g.path(), &["pull", &format!("{repo}:unsigned")], &[], 1)?;
    snap_ok(
        f.path(),
        &["pull", "--no-referrers", &format!("{repo}:unsigned")],
        &[],
    )?;
    Ok(())
}

/// A layout `snap export` wrote for snapshot `rev` of `dir`, with extra manifests (each
/// stored as a blob) and extra tags naming them, for the hostile registry to serve.
fn hostile_layout(dir: &Path, rev: &str, extra: &[(&str, Vec<u8>)]) -> Result<std::path::PathBuf> {
    let out = dir.join(format!("layout-{}", extra.len()));
    let _ = std::fs::remove_dir_all(&out);
    snap_ok(
        dir,
        &["export", "--oci", rev, "-o", &out.to_string_lossy()],
        &[],
    )?;
    let mut index: serde_json::Value = std::fs::read_to_string(out.join("index.json"))?.parse()?;
    // The empty blob, which the referrers below use as config and layer.
    std::fs::write(out.join("blobs/sha256").join(Digest::of(b"{}").hex()), "{}")?;
    for (tag, bytes) in extra {
        let d = Digest::of(bytes);
        std::fs::write(out.join("blobs/sha256").join(d.hex()), bytes)?;
        let media = if String::from_utf8_lossy(bytes).contains("\"manifests\"") {
            "application/vnd.oci.image.index.v1+json"
        } else {
            "application/vnd.oci.image.manifest.v1+json"
        };
        let mut entry =
            serde_json::json!({"mediaType": media, "digest": d.to_string(), "size": bytes.len()});
        if !tag.is_empty() {
            entry["annotations"] = serde_json::json!({"org.opencontainers.image.ref.name": tag});
        }
        index["manifests"]
            .as_array_mut()
            .ok_or("manifests")?
            .push(entry);
    }
    std::fs::write(out.join("index.json"), serde_json::to_vec(&index)?)?;
    Ok(out)
}

// issue 16: hostile referrers in a registry — thousands of them, a cycle through `subject`
// (a fallback index listing the subject itself, or a referrer of something else), a chain
// nested past the bound — are refused cleanly and store nothing.
#[test]
fn hostile_referrer_lists_are_refused_and_store_nothing() -> Result {
    let t = tempfile::tempdir()?;
    let d = t.path();
    let snap = commit(d, "app", "v1")?;
    let plain = hostile_layout(d, "app", &[])?;
    let manifest_size =
        usize::try_from(std::fs::metadata(plain.join("blobs/sha256").join(snap.hex()))?.len())?;
    let tag = format!("sha256-{}", snap.hex());
    let other = crate::support::referrer_manifest(Digest::of(b"another subject"), 10, 0);
    let mut chain = vec![crate::support::referrer_manifest(snap, manifest_size, 0)];
    for i in 1..6 {
        let prev = chain[i - 1].clone();
        chain.push(crate::support::referrer_manifest(
            Digest::of(&prev),
            prev.len(),
            i,
        ));
    }
    let thousands: Vec<(Digest, usize)> = (0..1025)
        .map(|i| (Digest::of(format!("r{i}").as_bytes()), 100))
        .collect();
    let cases: Vec<(&str, Vec<(String, Vec<u8>)>, &str)> = vec![
        (
            "thousands",
            vec![(tag.clone(), crate::support::referrers_index(&thousands))],
            "more than the 1024",
        ),
        (
            "itself",
            vec![(
                tag.clone(),
                crate::support::referrers_index(&[(snap, manifest_size)]),
            )],
            "a cycle through subject",
        ),
        (
            "another subject",
            vec![
                (String::new(), other.clone()),
                (
                    tag.clone(),
                    crate::support::referrers_index(&[(Digest::of(&other), other.len())]),
                ),
            ],
            "its subject is",
        ),
        (
            "deep chain",
            {
                let mut v: Vec<(String, Vec<u8>)> = Vec::new();
                let mut subject = snap;
                for r in &chain {
                    v.push((String::new(), r.clone()));
                    v.push((
                        format!("sha256-{}", subject.hex()),
                        crate::support::referrers_index(&[(Digest::of(r), r.len())]),
                    ));
                    subject = Digest::of(r);
                }
                v
            },
            "nest deeper than 4",
        ),
    ];
    for (name, extra, want) in cases {
        let borrowed: Vec<(&str, Vec<u8>)> =
            extra.iter().map(|(t, b)| (t.as_str(), b.clone())).collect();
        let layout = hostile_layout(d, "app", &borrowed)?;
        // The layout's snapshot is tagged `app`.
        let server = HostileRegistry::start(&layout, "none")?;
        let f = fresh_store()?;
        let before = store_listing(f.path())?;
        let err = snap_fails(
            f.path(),
            &["pull", &format!("{}/x/y:app", server.addr)],
            &[],
            2,
        )?;
        assert!(
            err.contains(want),
            "{name}: {err}\n{}",
            sh(&layout, "ls blobs/sha256; cat index.json")?
        );
        assert!(err.contains("hint: nothing was stored"), "{name}: {err}");
        assert_eq!(store_listing(f.path())?, before, "{name}: nothing stored");
        // Without referrers the snapshot itself still comes.
        snap_ok(
            f.path(),
            &[
                "pull",
                "--no-referrers",
                &format!("{}/x/y:app", server.addr),
            ],
            &[],
        )?;
    }
    Ok(())
}

// issue 16: a registry with the referrers API (the hostile registry's `referrers-api` mode
// plays one: distribution 2.8 has none) is asked through it — no fallback tag is read on pull
// or written on push.
#[test]
fn pull_and_push_use_the_referrers_api_where_the_registry_has_one() -> Result {
    let t = tempfile::tempdir()?;
    let d = t.path();
    let snap = commit(d, "app", "v1")?;
    let alice = keygen(d, "alice")?;
    std::fs::write(d.join("allowed"), &alice)?;
    snap_ok(d, &["sign", "app", "--key", "alice"], &[])?;
    let r: serde_json::Value = snap_ok(d, &["--json", "referrers", "app"], &[])?.parse()?;
    let sig: Digest = r["referrers"][0]["digest"]
        .as_str()
        .ok_or("digest")?
        .parse()?;
    let size = usize::try_from(r["referrers"][0]["size"].as_u64().ok_or("size")?)?;
    let tag = format!("sha256-{}", snap.hex());
    let layout = hostile_layout(
        d,
        "app",
        &[(
            tag.as_str(),
            crate::support::referrers_index(&[(sig, size)]),
        )],
    )?;
    let server = HostileRegistry::start(&layout, "referrers-api")?;

    let f = fresh_store()?;
    std::fs::copy(d.join("allowed"), f.path().join("allowed"))?;
    snap_ok(
        f.path(),
        &[
            "pull",
            "--verify",
            "--allowed-signers",
            "allowed",
            &format!("{}/x/y:app", server.addr),
        ],
        &[],
    )?;
    let asked: Vec<String> = server
        .received()?
        .into_iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        asked
            .iter()
            .any(|a| a == &format!("GET /v2/x/y/referrers/{snap}")),
        "{asked:?}"
    );
    assert!(
        !asked.iter().any(|a| a.contains(&tag)),
        "no fallback tag: {asked:?}"
    );

    let before = server.received()?.len();
    let pushed: serde_json::Value = snap_ok(
        d,
        &[
            "--json",
            "push",
            "app",
            &format!("{}/x/y:app", server.addr),
            "--no-moving-tag",
        ],
        &[],
    )?
    .parse()?;
    assert_eq!(pushed["referrers"], 1, "{pushed}");
    let sent: Vec<String> = server.received()?[before..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert!(
        sent.iter()
            .any(|a| a == &format!("PUT /v2/x/y/manifests/{sig}")),
        "{sent:?}"
    );
    assert!(
        !sent.iter().any(|a| a.contains(&tag)),
        "no fallback tag: {sent:?}"
    );
    Ok(())
}

// issue 16: `push --with-history` sends the ancestors' signatures too, each under its own
// fallback tag.
#[test]
fn a_push_with_history_sends_the_signatures_of_ancestors() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let reg = Registry::start()?;
    let t = tempfile::tempdir()?;
    let d = t.path();
    let v1 = commit(d, "app", "one")?;
    keygen(d, "alice")?;
    snap_ok(d, &["sign", "app", "--key", "alice"], &[])?;
    let v2 = commit(d, "app", "two")?;
    assert_ne!(v1, v2);
    let target = format!("{}/snap/history:v2", reg.addr);
    let pushed: serde_json::Value = snap_ok(
        d,
        &["--json", "push", "app", &target, "--with-history"],
        &[],
    )?
    .parse()?;
    assert_eq!(pushed["referrers"], 1, "{pushed}");
    let tags = sh(
        d,
        &format!(
            "python3 -c \"import urllib.request; print(urllib.request.urlopen('http://{}/v2/snap/history/tags/list').read().decode())\"",
            reg.addr
        ),
    )?;
    assert!(tags.contains(&format!("sha256-{}\"", v1.hex())), "{tags}");

    // A pull takes the history with its signatures (it used to take only the top's).
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    let pulled: serde_json::Value =
        snap_ok(fresh.path(), &["--json", "pull", &target], &[])?.parse()?;
    assert_eq!(
        (pulled["history"].as_u64(), pulled["referrers"].as_u64()),
        (Some(1), Some(1)),
        "{pulled}"
    );
    let listed = snap_ok(fresh.path(), &["referrers", &v1.to_string()], &[])?;
    assert!(
        listed.contains("application/vnd.snaptool.signature.v1"),
        "v1's signature came with it: {listed}"
    );
    snap_ok(fresh.path(), &["fsck"], &[])?;

    // So does a registry→layout export (it used to leave every referrer behind), and the
    // layout imports with them.
    let out = tempfile::tempdir()?;
    let layout = out.path().join("lay");
    snap_ok(
        out.path(),
        &[
            "export",
            "--oci",
            &target,
            "--with-history",
            "-o",
            &layout.to_string_lossy(),
        ],
        &[],
    )?;
    let index = std::fs::read_to_string(layout.join("index.json"))?;
    assert!(
        index.contains("application/vnd.snaptool.signature.v1"),
        "the signature is an entry: {index}"
    );
    let imported = tempfile::tempdir()?;
    snap_ok(imported.path(), &["init"], &[])?;
    snap_ok(imported.path(), &["import", &layout.to_string_lossy()], &[])?;
    let listed = snap_ok(imported.path(), &["referrers", &v1.to_string()], &[])?;
    assert!(
        listed.contains("application/vnd.snaptool.signature.v1"),
        "{listed}"
    );
    Ok(())
}
