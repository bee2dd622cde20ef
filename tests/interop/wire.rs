//! Issue 17: what a push and a pull cost on the wire, counted from a real registry's access
//! log (requests, never time).

use serde_json::Value;

use crate::harness::{Registry, Result, have_registry, snap_fails, snap_ok, workdir};

fn json(s: &str) -> Result<Value> {
    Ok(s.parse()?)
}

/// The requests about blobs (`/blobs/…`, uploads included) in `seen`.
fn blob_requests(seen: &[String]) -> Vec<&String> {
    seen.iter().filter(|r| r.contains("/blobs/")).collect()
}

// https://github.com/snap/snap/issues/17: a push took three requests per new blob (HEAD,
// POST, PUT); a mount of the repository into itself asks and opens the upload at once.
#[test]
fn issue_17_push_takes_two_requests_per_new_blob_and_one_per_blob_already_there() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/wire:v1", reg.addr);
    let mark = reg.requests()?.len();
    let first = json(&snap_ok(&dir, &["--json", "push", "latest", &target], &[])?)?;
    let seen = reg.requests()?[mark..].to_vec();
    let blobs = first["blobs"].as_u64().ok_or("blobs")?;
    assert_eq!(first["uploaded"].as_u64(), Some(blobs), "{first}");
    let about_blobs = blob_requests(&seen);
    assert!(
        about_blobs.len() as u64 <= 2 * blobs,
        "{} requests for {blobs} new blobs: {about_blobs:#?}",
        about_blobs.len()
    );
    assert!(
        !about_blobs.iter().any(|r| r.starts_with("HEAD ")),
        "no HEAD before an upload: {about_blobs:#?}"
    );

    // Again, into the same repository: every blob is there, one request each, no bytes.
    let mark = reg.requests()?.len();
    let again = json(&snap_ok(&dir, &["--json", "push", "latest", &target], &[])?)?;
    let seen = reg.requests()?[mark..].to_vec();
    assert_eq!(
        (again["uploaded"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(blobs)),
        "{again}"
    );
    assert_eq!(
        blob_requests(&seen).len() as u64,
        blobs,
        "{:#?}",
        blob_requests(&seen)
    );
    assert!(
        !seen
            .iter()
            .any(|r| r.starts_with("PUT ") && r.contains("/blobs/")),
        "nothing uploaded twice: {seen:#?}"
    );

    // What went up is whole: a fresh store pulls it and its fsck is clean.
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    snap_ok(fresh.path(), &["pull", &target], &[])?;
    snap_ok(fresh.path(), &["fsck"], &[])?;
    Ok(())
}

// issue 17: "cross-repository mounts when the blob is in another repository of the same
// registry". `push --mount-from` names that repository: each blob it holds costs one request
// and no bytes; one of another registry is refused before anything is sent.
#[test]
fn issue_17_push_mounts_from_another_repository_of_the_registry() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start()?;
    let first = format!("{}/snap/first:v1", reg.addr);
    let pushed = json(&snap_ok(&dir, &["--json", "push", "latest", &first], &[])?)?;
    let blobs = pushed["blobs"].as_u64().ok_or("blobs")?;

    let mark = reg.requests()?.len();
    let second = format!("{}/snap/second:v1", reg.addr);
    let from = format!("{}/snap/first", reg.addr);
    let mounted = json(&snap_ok(
        &dir,
        &["--json", "push", "latest", &second, "--mount-from", &from],
        &[],
    )?)?;
    let seen = reg.requests()?[mark..].to_vec();
    assert_eq!(
        (mounted["uploaded"].as_u64(), mounted["skipped"].as_u64()),
        (Some(0), Some(blobs)),
        "{mounted}"
    );
    let about_blobs = blob_requests(&seen);
    assert_eq!(about_blobs.len() as u64, blobs, "{about_blobs:#?}");
    assert!(
        about_blobs.iter().all(
            |r| r.starts_with("POST ") && r.contains("from=snap%2Ffirst")
                || r.starts_with("POST ") && r.contains("from=snap/first")
        ),
        "every blob mounted from the first repository: {about_blobs:#?}"
    );
    // What the second repository now holds is whole.
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    snap_ok(fresh.path(), &["pull", &second], &[])?;
    snap_ok(fresh.path(), &["fsck"], &[])?;

    // A repository of another registry: refused, nothing sent.
    let mark = reg.requests()?.len();
    let err = snap_fails(
        &dir,
        &[
            "push",
            "latest",
            &format!("{}/snap/third:v1", reg.addr),
            "--mount-from",
            "ghcr.io/acme/index",
        ],
        &[],
        2,
    )?;
    assert!(err.contains("a mount works within one registry"), "{err}");
    assert!(err.contains("snap explain mount-from-elsewhere"), "{err}");
    assert_eq!(reg.requests()?.len(), mark, "nothing sent");
    Ok(())
}

/// A tree of `dirs` directories of four 256 KiB files each, incompressible and the same on
/// every run (a xorshift stream), so a snapshot of it has several group layers.
fn many_groups(dir: &std::path::Path, dirs: usize) -> Result {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for d in 0..dirs {
        let sub = dir.join("data").join(format!("d{d:02}"));
        std::fs::create_dir_all(&sub)?;
        for f in 0..4 {
            let mut bytes = Vec::with_capacity(256 << 10);
            while bytes.len() < 256 << 10 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                bytes.extend_from_slice(&x.to_le_bytes());
            }
            std::fs::write(sub.join(format!("f{f}")), bytes)?;
        }
    }
    Ok(())
}

// https://github.com/snap/snap/issues/17: getting one directory out of a snapshot in a
// registry meant pulling every layer.
#[test]
fn issue_17_a_partial_restore_from_a_registry_fetches_only_the_layers_of_its_paths() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    many_groups(&dir, 64)?;
    snap_ok(
        &dir,
        &["commit", "data", "--ref", "data", "-m", "groups"],
        &[],
    )?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/partial:v1", reg.addr);
    snap_ok(&dir, &["push", "data", &target], &[])?;

    let out = json(&snap_ok(
        &dir,
        &[
            "--json",
            "restore",
            &target,
            "out",
            "--path",
            "data/d07",
            "--path",
            "data/d20/f1",
        ],
        &[],
    )?)?;
    let layers = out["layers"].as_u64().ok_or("layers")?;
    let fetched = out["layers_fetched"].as_u64().ok_or("layers_fetched")?;
    assert!(layers >= 5, "the tree makes several groups: {out}");
    // One tree layer, and the group of each path (at most two each, if a cut falls inside).
    assert!(fetched <= 5 && fetched < layers / 2, "{out}");
    let (all, got) = (
        out["snapshot_bytes"].as_u64().ok_or("snapshot_bytes")?,
        out["fetched_bytes"].as_u64().ok_or("fetched_bytes")?,
    );
    assert!(got * 2 < all, "{got} of {all} bytes fetched: {out}");
    assert_eq!(
        out["files"].as_u64(),
        Some(5),
        "d07's four files and d20/f1: {out}"
    );
    // Exactly those paths, byte for byte, and nothing else.
    crate::harness::sh(
        &dir,
        "diff -r data/d07 out/data/d07 && cmp data/d20/f1 out/data/d20/f1 \
         && test \"$(ls out/data)\" = \"$(printf 'd07\\nd20')\" && test \"$(ls out/data/d20)\" = f1",
    )?;

    // The same paths from the store give the same files; a path it lacks is refused.
    snap_ok(
        &dir,
        &["restore", "data", "local", "--path", "data/d07"],
        &[],
    )?;
    crate::harness::sh(
        &dir,
        "diff -r out/data/d07 local/data/d07 && test \"$(ls local/data)\" = d07",
    )?;
    let err = crate::harness::snap_fails(
        &dir,
        &["restore", &target, "none", "--path", "data/nope"],
        &[],
        2,
    )?;
    assert!(err.contains("`data/nope` is not in snapshot"), "{err}");
    assert!(
        !dir.join("none").exists(),
        "nothing written for a refused path"
    );
    Ok(())
}

// Issue 17: a partial restore from a registry that cuts its blobs short fails with one clear
// error and writes nothing.
#[test]
fn issue_17_a_partial_restore_from_a_lying_registry_writes_nothing() -> Result {
    let (_t, src) = workdir()?;
    snap_ok(&src, &["export", "--oci", "latest", "-o", "layout"], &[])?;
    let reg = crate::harness::HostileRegistry::start(&src.join("layout"), "lying-length")?;
    let err = crate::harness::snap_fails(
        &src,
        &[
            "restore",
            &format!("{}/acme/x:latest", reg.addr),
            "out",
            "--path",
            "big/f7",
        ],
        &[],
        2,
    )?;
    assert!(err.contains("is wrong: it sent"), "{err}");
    assert!(!src.join("out").exists(), "nothing written: {err}");
    Ok(())
}

/// The biggest blob of the OCI layout at `layout`: its hex digest and bytes.
fn biggest_blob(layout: &std::path::Path) -> Result<(String, Vec<u8>)> {
    let mut best: Option<(String, Vec<u8>)> = None;
    for e in std::fs::read_dir(layout.join("blobs/sha256"))? {
        let e = e?;
        let bytes = std::fs::read(e.path())?;
        if best.as_ref().is_none_or(|(_, b)| bytes.len() > b.len()) {
            best = Some((e.file_name().to_string_lossy().into_owned(), bytes));
        }
    }
    Ok(best.ok_or("an empty layout")?)
}

// issue 17: a pull continues the part an interrupted one left (store format §2.1), but never
// trusts it: an honest half is continued (by range from a real registry; from one that
// ignores ranges, the bytes it already has are checked against the part's and dropped), a
// part of garbage or longer than its blob is emptied and the blob fetched whole. Each pull
// ends with the snapshot stored, fsck clean and no part left.
#[test]
fn issue_17_a_pull_continues_a_part_it_finds_but_never_trusts_it() -> Result {
    let (_t, src) = workdir()?;
    snap_ok(&src, &["export", "--oci", "latest", "-o", "layout"], &[])?;
    let (hex, blob) = biggest_blob(&src.join("layout"))?;
    let half = blob.len() / 2;
    let cases: [(&str, Vec<u8>, u64); 3] = [
        ("an honest half", blob[..half].to_vec(), 1),
        ("garbage", vec![0xAA; half], 0),
        ("longer than the blob", [&blob[..], b"tail"].concat(), 0),
    ];
    let hostile = crate::harness::HostileRegistry::start(&src.join("layout"), "none")?;
    let mut targets = vec![(
        "a registry that ignores ranges",
        format!("{}/acme/x:latest", hostile.addr),
    )];
    let real = if have_registry() {
        let reg = Registry::start()?;
        let target = format!("{}/snap/parts:latest", reg.addr);
        snap_ok(&src, &["push", "latest", &target], &[])?;
        targets.push(("the real registry", target));
        Some(reg)
    } else {
        None
    };
    for (registry, target) in &targets {
        for (what, part, resumed) in &cases {
            let fresh = tempfile::tempdir()?;
            snap_ok(fresh.path(), &["init"], &[])?;
            let parts = fresh.path().join(".store/partial");
            std::fs::create_dir_all(&parts)?;
            std::fs::write(parts.join(format!("{hex}.part")), part)?;
            let out = json(&snap_ok(fresh.path(), &["--json", "pull", target], &[])?)?;
            assert_eq!(
                out["resumed"].as_u64(),
                Some(*resumed),
                "{what} from {registry}: {out}"
            );
            snap_ok(fresh.path(), &["fsck"], &[])?;
            snap_ok(fresh.path(), &["restore", "latest", "out"], &[])?;
            assert_eq!(
                std::fs::read_dir(&parts)?.count(),
                0,
                "{what} from {registry}: a part is left"
            );
        }
    }
    drop(real);

    // A part, or `partial/` itself, that is a symlink out of the store is never followed: the
    // pull succeeds without resuming and the file outside is untouched.
    let (_, target) = &targets[0];
    let outside = tempfile::tempdir()?;
    let victim = outside.path().join("victim.txt");
    std::fs::write(&victim, b"mine")?;
    for planted in ["part", "dir", "directory part"] {
        let fresh = tempfile::tempdir()?;
        snap_ok(fresh.path(), &["init"], &[])?;
        let parts = fresh.path().join(".store/partial");
        if planted == "part" {
            std::fs::create_dir_all(&parts)?;
            std::os::unix::fs::symlink(&victim, parts.join(format!("{hex}.part")))?;
        } else if planted == "directory part" {
            std::fs::create_dir_all(parts.join(format!("{hex}.part")))?;
        } else {
            std::os::unix::fs::symlink(outside.path(), &parts)?;
        }
        let out = json(&snap_ok(fresh.path(), &["--json", "pull", target], &[])?)?;
        assert_eq!(
            out["resumed"].as_u64(),
            Some(0),
            "a symlinked {planted}: {out}"
        );
        snap_ok(fresh.path(), &["fsck"], &[])?;
        assert_eq!(std::fs::read(&victim)?, b"mine", "a symlinked {planted}");
        assert_eq!(
            std::fs::read_dir(outside.path())?.count(),
            1,
            "nothing written outside the store through a symlinked {planted}"
        );
    }
    Ok(())
}
