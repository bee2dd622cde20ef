//! Issue 18: a registry that lies, stalls or floods costs a clear error, never memory, a hang
//! or a credential. Each case runs `snap` against `hostile_registry.py` (a real registry cannot
//! be made to misbehave on demand) with a 2-second timeout, and checks that it ends within its
//! bound, with one error line, peak RSS under 64 MiB, and the store as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{HostileRegistry, Measured, Result, sh, snap_measured, snap_ok, workdir};

/// Peak RSS any of these runs may reach (the issue's bound for the huge-manifest cases).
const MAX_RSS: u64 = 64 << 20;
/// The test's own deadline for one run: far past every documented bound, so a hang fails
/// the test instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(40);

/// A layout of `latest` to serve (from a store holding it), and a store to pull into that
/// holds a snapshot of its own.
fn setup() -> Result<(tempfile::TempDir, PathBuf, tempfile::TempDir)> {
    let (t, src) = workdir()?;
    snap_ok(&src, &["export", "--oci", "latest", "-o", "layout"], &[])?;
    let dst = tempfile::tempdir()?;
    sh(dst.path(), "mkdir own && echo mine > own/f")?;
    snap_ok(dst.path(), &["init"], &[])?;
    snap_ok(dst.path(), &["commit", "own", "-m", "own"], &[])?;
    Ok((t, src.join("layout"), dst))
}

/// Every file in the store and its content: what must not change.
fn store_state(dir: &Path) -> Result<String> {
    sh(
        dir,
        "find .store -type f -print0 | sort -z | xargs -0 sha256sum",
    )
}

/// The run failed with exit 2 and one error line (no chain of causes).
fn one_line_failure(run: &Measured, case: &str) {
    assert_eq!(run.code, Some(2), "{case}: {run:?}");
    let errors: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:") || l.contains("caused by"))
        .collect();
    assert_eq!(errors.len(), 1, "{case}: one error line: {}", run.stderr);
}

/// What each fault must cost: the words of its error, and the longest it may take (the
/// timeout is 2 s: a stall is noticed within about 2.2 s; the rest need no waiting).
const CASES: &[(&str, &[&str], u64)] = &[
    (
        "huge-manifest",
        &[
            "announced 2147483648 bytes for manifest",
            "4194304 bytes snap reads",
        ],
        5,
    ),
    (
        "huge-manifest-unsized",
        &["sent more for manifest", "4194304 bytes snap reads"],
        5,
    ),
    ("drip", &["for 2 s while fetching manifest", "bytes/s"], 8),
    ("stall-blob", &["for 2 s while downloading blob sha256:"], 8),
    (
        "endless-chunked",
        &[
            "is wrong: it sends more than the",
            "bytes of its descriptor",
        ],
        5,
    ),
    (
        "lying-length",
        &["is wrong: it sent", "bytes and stopped"],
        5,
    ),
    (
        "redirect-loop",
        &["redirected in a loop while downloading blob sha256:"],
        5,
    ),
    (
        "redirect-chain",
        &["redirected more than 10 times while downloading blob sha256:"],
        5,
    ),
    (
        "429-long",
        &["asked to be asked again in 3600 s (HTTP 429); snap waits at most 4 s"],
        5,
    ),
    (
        "huge-token",
        &["sent more for a token, more than the 262144 bytes snap reads"],
        5,
    ),
];

// Issue 18: a 2 GiB manifest drove `snap pull` to 2.1 GB of RSS, and a registry dripping a
// byte a second kept it waiting forever.
#[test]
fn issue_18_every_hostile_registry_costs_one_line_within_its_bound_and_stores_nothing() -> Result {
    let (_t, layout, dst) = setup()?;
    let before = store_state(dst.path())?;
    for (fault, says, bound) in CASES {
        let reg = HostileRegistry::start(&layout, fault)?;
        let run = snap_measured(
            dst.path(),
            &[
                "pull",
                &format!("{}/acme/x:latest", reg.addr),
                "--ref",
                "pulled",
            ],
            &[("SNAP_TIMEOUT", "2")],
            DEADLINE,
        )?;
        eprintln!(
            "{fault}: {:?}, peak RSS {} KiB: {}",
            run.elapsed,
            run.peak_rss >> 10,
            run.stderr.lines().next().unwrap_or_default()
        );
        one_line_failure(&run, fault);
        for s in *says {
            assert!(
                run.stderr.contains(s),
                "{fault}: {s:?} not in {}",
                run.stderr
            );
        }
        assert!(
            run.stderr.contains(&reg.addr),
            "{fault}: the error names the registry: {}",
            run.stderr
        );
        assert!(
            run.elapsed < Duration::from_secs(*bound),
            "{fault}: took {:?}, bound {bound} s",
            run.elapsed
        );
        assert!(
            run.peak_rss < MAX_RSS,
            "{fault}: peak RSS {} bytes",
            run.peak_rss
        );
        assert_eq!(
            store_state(dst.path())?,
            before,
            "{fault}: the store changed"
        );
    }
    snap_ok(dst.path(), &["fsck"], &[])?;
    Ok(())
}

// Issue 18: a stall is a stall however slowly it starts: with the default low-speed limit a
// drip fails after one timeout, even though bytes keep arriving.
#[test]
fn issue_18_a_stall_waits_the_timeout_from_the_flag_the_variable_or_the_setting() -> Result {
    let (_t, layout, dst) = setup()?;
    let reg = HostileRegistry::start(&layout, "stall-blob")?;
    let target = format!("{}/acme/x:latest", reg.addr);
    snap_ok(dst.path(), &["config", "http.timeout", "1"], &[])?;
    // flag > variable > setting.
    for (args, env, secs) in [
        (vec!["--timeout", "3"], vec![("SNAP_TIMEOUT", "2")], 3),
        (vec![], vec![("SNAP_TIMEOUT", "2")], 2),
        (vec![], vec![], 1),
    ] {
        let mut all = vec!["pull", target.as_str()];
        all.extend(args);
        let run = snap_measured(dst.path(), &all, &env, DEADLINE)?;
        one_line_failure(&run, "stall-blob");
        assert!(
            run.stderr
                .contains(&format!("for {secs} s while downloading blob")),
            "{secs} s: {}",
            run.stderr
        );
        assert!(
            run.elapsed >= Duration::from_secs(secs) && run.elapsed < Duration::from_secs(secs + 5),
            "{secs} s: took {:?}",
            run.elapsed
        );
        assert!(
            run.stderr.contains("snap explain registry-stalled"),
            "{}",
            run.stderr
        );
    }
    Ok(())
}

// Issue 18: 429 with Retry-After (seconds, then an HTTP-date) is waited out, and the pull
// succeeds; every retry is counted in `requests`.
#[test]
fn issue_18_too_many_requests_is_waited_out_as_retry_after_asks() -> Result {
    let (_t, layout, dst) = setup()?;
    drop(dst);
    let calm = HostileRegistry::start(&layout, "none")?;
    let first = tempfile::tempdir()?;
    snap_ok(first.path(), &["init"], &[])?;
    let baseline: serde_json::Value = snap_ok(
        first.path(),
        &["--json", "pull", &format!("{}/acme/x:latest", calm.addr)],
        &[],
    )?
    .parse()?;
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    let reg = HostileRegistry::start(&layout, "429")?;
    let run = snap_measured(
        fresh.path(),
        &["--json", "pull", &format!("{}/acme/x:latest", reg.addr)],
        &[("SNAP_TIMEOUT", "5")],
        DEADLINE,
    )?;
    assert_eq!(run.code, Some(0), "{run:?}");
    let out: serde_json::Value = run.stdout.parse()?;
    assert_eq!(out["digest"], baseline["digest"]);
    assert_eq!(
        out["requests"].as_u64(),
        baseline["requests"].as_u64().map(|n| n + 2),
        "the two refused requests are counted"
    );
    assert!(
        run.elapsed >= Duration::from_secs(1),
        "it waited as asked: {:?}",
        run.elapsed
    );
    snap_ok(fresh.path(), &["fsck"], &[])?;
    Ok(())
}

// Issue 18: a blob redirected to object storage on another host is fetched without the
// registry's credentials.
#[test]
fn issue_18_credentials_never_follow_a_redirect_to_another_host() -> Result {
    let (_t, layout, dst) = setup()?;
    let reg = HostileRegistry::start(&layout, "cross-host")?;
    let creds = [
        ("SNAP_REGISTRY_USER", "someone"),
        ("SNAP_REGISTRY_PASSWORD", "s3cret"),
    ];
    let out: serde_json::Value = snap_ok(
        dst.path(),
        &[
            "--json",
            "pull",
            &format!("{}/acme/x:latest", reg.addr),
            "--ref",
            "pulled",
        ],
        &creds,
    )?
    .parse()?;
    assert!(out["downloaded"].as_u64() > Some(0), "{out}");
    let received = reg.received()?;
    let storage: Vec<_> = received.iter().filter(|r| r.server == "storage").collect();
    assert_eq!(
        storage.len() as u64,
        out["downloaded"].as_u64().unwrap_or_default(),
        "every blob came from storage: {received:?}"
    );
    assert!(
        storage.iter().all(|r| !r.authorization),
        "no Authorization to another host: {storage:?}"
    );
    assert!(
        received
            .iter()
            .any(|r| r.server == "registry" && r.path.contains("/blobs/") && r.authorization),
        "the registry itself got the credentials: {received:?}"
    );
    snap_ok(dst.path(), &["fsck"], &[])?;
    Ok(())
}

// Issue 18: an upload the registry never answers fails after the timeout, naming the blob,
// and no tag is put.
#[test]
fn issue_18_a_push_to_a_registry_that_never_answers_fails_after_the_timeout() -> Result {
    let (_t, layout, dst) = setup()?;
    let reg = HostileRegistry::start(&layout, "stall-push")?;
    let run = snap_measured(
        dst.path(),
        &[
            "push",
            "latest",
            &format!("{}/acme/x:v1", reg.addr),
            "--timeout",
            "2",
        ],
        &[],
        DEADLINE,
    )?;
    one_line_failure(&run, "stall-push");
    assert!(
        run.stderr.contains("for 2 s while uploading blob sha256:"),
        "{}",
        run.stderr
    );
    assert!(
        run.elapsed < Duration::from_secs(8),
        "took {:?}",
        run.elapsed
    );
    assert!(
        !reg.received()?
            .iter()
            .any(|r| r.method == "PUT" && r.path.contains("/manifests/")),
        "no manifest was put"
    );
    Ok(())
}

// issue 17: a session a registry says it holds but then refuses to continue (a PATCH out of
// range) costs a new session at once, not a failed push — and not every push after it, as
// long as the upload record named the refused session.
#[test]
fn issue_17_a_continued_upload_the_registry_refuses_starts_over() -> Result {
    // The store the layout was exported from: the registry serves its snapshot back, so a
    // push of it completes (tags read back as the layout's).
    let (_t, layout, _) = setup()?;
    let src = layout.parent().ok_or("src")?;
    let reg = HostileRegistry::start(&layout, "refuse-resume")?;
    let (registry, repository) = (reg.addr.as_str(), "acme/x");
    // An upload record for every blob of the snapshot, naming the session `stale`.
    let mine = layout.clone();
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mine.join("index.json"))?)?;
    let top = index["manifests"][0]["digest"].as_str().ok_or("digest")?;
    let hex = |d: &str| d.trim_start_matches("sha256:").to_owned();
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(mine.join("blobs/sha256").join(hex(top)))?)?;
    let blobs: Vec<String> = std::iter::once(&manifest["config"])
        .chain(manifest["layers"].as_array().ok_or("layers")?)
        .filter(|d| d["size"].as_u64().is_some_and(|n| n > 10))
        .filter_map(|d| d["digest"].as_str().map(str::to_owned))
        .collect();
    assert!(!blobs.is_empty(), "{manifest}");
    let store = src.join(".store");
    std::fs::create_dir_all(store.join("partial"))?;
    for d in &blobs {
        let record = snap::store::partial::UploadRecord {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            location: format!("http://{registry}/v2/{repository}/blobs/uploads/stale?_state=s"),
            offset: 10,
        };
        let path = snap::store::partial::upload_path(&store, &d.parse()?, registry, repository);
        std::fs::write(path, record.encode())?;
    }
    let out: serde_json::Value = snap_ok(
        src,
        &[
            "--json",
            "push",
            "latest",
            &format!("{registry}/{repository}:latest"),
            "--no-moving-tag",
            "--chunked",
        ],
        &[],
    )?
    .parse()?;
    assert_eq!(out["resumed"].as_u64(), Some(0), "{out}");
    let seen = reg.received()?;
    let refused = seen
        .iter()
        .filter(|r| r.method == "PATCH" && r.path.contains("/uploads/stale"))
        .count();
    assert_eq!(
        refused,
        blobs.len(),
        "each stale session tried once: {seen:#?}"
    );
    let left = std::fs::read_dir(store.join("partial"))?.count();
    assert_eq!(left, 0, "no record left");
    Ok(())
}
