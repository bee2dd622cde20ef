//! Crash safety: `commit`, `import`, `pull`, `push` and `gc` killed with SIGKILL at random
//! moments.
//!
//! Half the runs get SIGKILL at a random moment; the other half abort at a random crash point
//! (`SNAP_CRASH_AT`, see `snap::fs::crash_point`): the n-th rename of a final path, just after
//! it, with a ref locked, or with its reflog line written — the narrow windows a random
//! moment rarely hits.
//!
//! After every crash: `snap fsck` finds no damage, every ref holds its old value or the value
//! the killed command was writing, and every snapshot a command reported committed is still
//! there. Then the same command runs again to the end, and must leave no leftovers (temp files,
//! stale lock files, orphan pack indexes).
//!
//! `SNAP_CRASH_KILLS` sets the kills per command (6 by default, so about 24 in CI);
//! `bench/crash.sh` runs hundreds. `SNAP_CRASH_SEED` replays a run (the seed is printed).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use snap::ops::FsckReport;

use crate::harness::{Registry, Result, have_registry, sh};
use crate::support::Rng;

fn kills() -> usize {
    std::env::var("SNAP_CRASH_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6)
}

fn snap_cmd(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = crate::support::snap_command(dir, dir);
    cmd.args(args)
        .env("SNAP_LOCK_TIMEOUT_MS", "5000")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs snap to the end; returns stdout and how long it took.
fn run(dir: &Path, args: &[&str]) -> Result<(String, Duration)> {
    let start = Instant::now();
    let out = snap_cmd(dir, args).output()?;
    if !out.status.success() {
        return Err(format!(
            "snap {args:?} failed after a crash:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok((String::from_utf8(out.stdout)?, start.elapsed()))
}

/// How a run is cut short.
#[derive(Debug)]
enum Crash {
    /// SIGKILL after this long.
    Kill(Duration),
    /// Abort on the spot the n-th time the process reaches a crash point (`SNAP_CRASH_AT`).
    At(&'static str, u64),
}

impl Crash {
    /// Alternates between a kill at a random moment within `took` and a random crash point.
    fn pick(rng: &mut Rng, i: usize, took: Duration, points: &[(&'static str, u64)]) -> Crash {
        if i.is_multiple_of(2) || points.is_empty() {
            return Crash::Kill(rng.upto(took));
        }
        let (point, most) = points[usize::try_from(rng.next() % points.len() as u64).unwrap_or(0)];
        // Small counts are likelier (a delta commit renames only a handful of files), but every
        // count up to `most` can come up.
        let span = (1u64 << (rng.next() % 6)).min(most);
        Crash::At(point, rng.next() % span + 1)
    }
}

/// Runs snap and crashes it. Returns its stdout if it finished first.
fn run_crashed(dir: &Path, args: &[&str], crash: &Crash) -> Result<Option<String>> {
    let mut cmd = snap_cmd(dir, args);
    if let Crash::At(point, n) = crash {
        cmd.env("SNAP_CRASH_AT", format!("{point}:{n}"));
    }
    let mut child = cmd.spawn()?;
    if let Crash::Kill(delay) = crash {
        std::thread::sleep(*delay);
        if child.try_wait()?.is_none() {
            child.kill()?; // SIGKILL
            child.wait()?;
            return Ok(None);
        }
    }
    let out = child.wait_with_output()?;
    if matches!(crash, Crash::At(..)) && out.status.code().is_none() {
        return Ok(None); // aborted at the crash point
    }
    if !out.status.success() {
        return Err(format!(
            "snap {args:?} failed without being killed ({crash:?}):\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(Some(String::from_utf8(out.stdout)?))
}

/// Crash points of a command that writes objects and moves a ref, with how often each can
/// be reached in one run of these tests (a larger draw just lets the run finish).
const WRITER_POINTS: &[(&str, u64)] = &[
    ("rename", 32),
    ("renamed", 32),
    ("ref-locked", 1),
    ("ref-logged", 1),
];

/// `snap fsck`: no damage. Returns how many leftovers it listed.
fn fsck_clean(dir: &Path, after: &str) -> Result<usize> {
    let out = snap_cmd(dir, &["--json", "fsck"]).output()?;
    let report: FsckReport = serde_json::from_slice(&out.stdout).map_err(|e| {
        format!(
            "fsck after {after}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    assert!(
        report.is_clean() && out.status.success(),
        "fsck after {after}: {:#?}",
        report.problems
    );
    Ok(report.leftovers.len())
}

/// Every ref, by name.
fn refs(dir: &Path) -> Result<BTreeMap<String, String>> {
    let (out, _) = run(dir, &["--json", "refs"])?;
    let mut map = BTreeMap::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        let v = &v["data"];
        map.insert(
            v["name"].as_str().ok_or("name")?.to_owned(),
            v["digest"].as_str().ok_or("digest")?.to_owned(),
        );
    }
    Ok(map)
}

fn json_field(out: &str, field: &str) -> Result<String> {
    let v: serde_json::Value = serde_json::from_str(out)?;
    Ok(v[field].as_str().ok_or(field.to_owned())?.to_owned())
}

/// The first-parent chain from `rev`, newest first.
fn chain(dir: &Path, rev: &str) -> Result<Vec<String>> {
    let (out, _) = run(dir, &["--json", "log", rev])?;
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(v["data"]["digest"].as_str().ok_or("digest")?.to_owned())
        })
        .collect()
}

fn parents(dir: &Path, digest: &str) -> Result<Vec<String>> {
    let (out, _) = run(dir, &["--json", "show", digest])?;
    let v: serde_json::Value = serde_json::from_str(&out)?;
    Ok(v["parents"]
        .as_array()
        .ok_or("parents")?
        .iter()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .collect())
}

/// Every reported snapshot is in `latest`'s history, and `latest` restores to the tree.
fn nothing_lost(dir: &Path, reported: &[String]) -> Result {
    let history = chain(dir, "latest")?;
    for d in reported {
        assert!(history.contains(d), "reported snapshot {d} was lost");
    }
    run(dir, &["restore", "latest", "out"])?;
    sh(dir, "diff -r data out/data")?;
    Ok(())
}

/// Tallies kills that landed while the command still ran and runs it finished first.
#[derive(Default)]
struct Tally {
    killed: usize,
    finished: usize,
    leftovers: usize,
}

impl Tally {
    fn report(&self, what: &str) {
        eprintln!(
            "{what}: {} crashed mid-run, {} finished before the crash, {} leftovers swept",
            self.killed, self.finished, self.leftovers
        );
    }
}

/// A tree with many small files and a few large ones, changed a little at every `mutate`.
fn make_tree(dir: &Path) -> Result {
    sh(
        dir,
        "mkdir -p data && cd data && for d in $(seq 1 20); do mkdir -p d$d; \
         for f in $(seq 1 100); do echo \"$d $f\" > d$d/f$f; done; done && \
         for b in 1 2 3; do head -c 3000000 /dev/urandom > big$b; done",
    )?;
    Ok(())
}

fn mutate(dir: &Path, rng: &mut Rng, i: usize) -> Result {
    let d = rng.next() % 20 + 1;
    let b = rng.next() % 3 + 1;
    sh(
        dir,
        &format!(
            "cd data && for f in $(seq 1 100); do echo \"round {i} $f\" > d{d}/f$f; done && \
             head -c 3000000 /dev/urandom > big{b} && echo {i} > new{i}"
        ),
    )?;
    Ok(())
}

#[test]
fn commit_survives_sigkill_at_any_point() -> Result {
    let mut rng = Rng::from_env("SNAP_CRASH_SEED");
    let t = tempfile::tempdir()?;
    let dir = t.path();
    make_tree(dir)?;
    let (out, mut took) = run(dir, &["--json", "commit", "data", "-m", "first"])?;
    let mut reported = vec![json_field(&out, "digest")?];
    let mut tally = Tally::default();
    for i in 0..kills() {
        mutate(dir, &mut rng, i)?;
        let old = refs(dir)?["latest"].clone();
        let crash = Crash::pick(&mut rng, i, took, WRITER_POINTS);
        let args = ["--json", "commit", "data", "-m", "crash"];
        let finished = run_crashed(dir, &args, &crash)?;
        let what = format!("commit crashed by {crash:?}");
        // fsck first: any other command would sweep the leftovers it should see.
        tally.leftovers += fsck_clean(dir, &what)?;
        let now = refs(dir)?["latest"].clone();
        if let Some(out) = finished {
            tally.finished += 1;
            let d = json_field(&out, "digest")?;
            assert_eq!(d, now, "{what}: the reported snapshot is the ref's value");
            reported.push(d);
        } else {
            tally.killed += 1;
        }
        // Old value, or a new snapshot on top of it (written completely before the ref moved).
        assert!(
            now == old || parents(dir, &now)? == [old.clone()],
            "{what}: ref moved to {now}, which is not a child of {old}"
        );
        let (out, t) = run(dir, &["--json", "commit", "data", "-m", "again"])?;
        took = t;
        reported.push(json_field(&out, "digest")?);
        assert_eq!(fsck_clean(dir, "the next commit")?, 0, "leftovers remain");
    }
    nothing_lost(dir, &reported)?;
    tally.report("commit");
    Ok(())
}

#[test]
fn import_survives_sigkill_at_any_point() -> Result {
    let t = tempfile::tempdir()?;
    let src = t.path().join("src");
    std::fs::create_dir_all(&src)?;
    make_tree(&src)?;
    let (out, _) = run(&src, &["--json", "commit", "data"])?;
    let digest = json_field(&out, "digest")?;
    run(&src, &["export", "--oci", "latest", "-o", "../snap.tar"])?;
    let archive = t.path().join("snap.tar");
    let archive = archive.to_str().ok_or("path")?;
    let args = ["--json", "import", archive, "--ref", "imported"];
    crash_into_fresh_stores("import", t.path(), &args, "imported", &digest)
}

#[test]
fn gc_survives_sigkill_at_any_point() -> Result {
    let mut rng = Rng::from_env("SNAP_CRASH_SEED");
    let t = tempfile::tempdir()?;
    let dir = t.path();
    make_tree(dir)?;
    let (out, _) = run(dir, &["--json", "commit", "data"])?;
    let mut reported = vec![json_field(&out, "digest")?];
    let mut took = Duration::from_millis(300);
    let mut tally = Tally::default();
    for i in 0..kills() {
        // Garbage: two snapshots on a scratch ref that is then deleted; and one more keeper.
        for _ in 0..2 {
            mutate(dir, &mut rng, i)?;
            run(dir, &["commit", "data", "--ref", "scratch"])?;
        }
        run(dir, &["ref", "delete", "scratch"])?;
        mutate(dir, &mut rng, i)?;
        let (out, _) = run(dir, &["--json", "commit", "data"])?;
        reported.push(json_field(&out, "digest")?);
        let before = refs(dir)?;
        let crash = Crash::pick(&mut rng, i, took, &[("gc-removed", 30)]);
        let args = ["--json", "gc", "--prune-now", "--expire", "0"];
        match run_crashed(dir, &args, &crash)? {
            Some(_) => tally.finished += 1,
            None => tally.killed += 1,
        }
        let what = format!("gc crashed by {crash:?}");
        tally.leftovers += fsck_clean(dir, &what)?;
        assert_eq!(refs(dir)?, before, "{what}: gc moved a ref");
        let (_, t) = run(dir, &args)?;
        took = t;
        assert_eq!(fsck_clean(dir, "the next gc")?, 0, "leftovers remain");
    }
    nothing_lost(dir, &reported)?;
    tally.report("gc");
    Ok(())
}

#[test]
fn pull_survives_sigkill_at_any_point() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let reg = Registry::start()?;
    let t = tempfile::tempdir()?;
    let src = t.path().join("src");
    std::fs::create_dir_all(&src)?;
    make_tree(&src)?;
    let (out, _) = run(&src, &["--json", "commit", "data"])?;
    let digest = json_field(&out, "digest")?;
    let target = format!("{}/crash/pull:v1", reg.addr);
    run(&src, &["push", "latest", &target])?;
    let args = ["--json", "pull", &target];
    crash_into_fresh_stores("pull", t.path(), &args, "v1", &digest)
}

/// Crashes `args` (an import or a pull of the snapshot `digest` onto `ref_name`) once per
/// kill, each time into a fresh store under `base`, and checks the store after each crash and
/// after the run that follows it.
fn crash_into_fresh_stores(
    what: &str,
    base: &Path,
    args: &[&str],
    ref_name: &str,
    digest: &str,
) -> Result {
    let mut rng = Rng::from_env("SNAP_CRASH_SEED");
    eprintln!("({what})");
    let mut took = Duration::from_millis(500);
    let mut tally = Tally::default();
    for i in 0..kills() {
        let dir = base.join(format!("dst{i}"));
        std::fs::create_dir_all(&dir)?;
        run(&dir, &["init"])?;
        let crash = Crash::pick(&mut rng, i, took, WRITER_POINTS);
        match run_crashed(&dir, args, &crash)? {
            Some(_) => tally.finished += 1,
            None => tally.killed += 1,
        }
        let after = format!("{what} crashed by {crash:?}");
        tally.leftovers += fsck_clean(&dir, &after)?;
        let now = refs(&dir)?;
        assert!(
            now.get(ref_name).is_none_or(|d| d == digest),
            "{after}: {now:?}"
        );
        let start = Instant::now();
        run(&dir, args)?;
        took = start.elapsed();
        assert_eq!(refs(&dir)?.get(ref_name).map(String::as_str), Some(digest));
        assert_eq!(
            fsck_clean(&dir, &format!("the next {what}"))?,
            0,
            "leftovers remain"
        );
        std::fs::remove_dir_all(&dir)?;
    }
    tally.report(what);
    Ok(())
}

/// Bytes of blob bodies the registry sent in `responses` (`GET …/blobs/…`).
fn blob_bytes_sent(responses: &[(String, u16, u64)]) -> u64 {
    responses
        .iter()
        .filter(|(r, _, _)| r.starts_with("GET ") && r.contains("/blobs/"))
        .map(|(_, _, b)| b)
        .sum()
}

/// What the partial downloads in the store of `dir` hold, in bytes.
fn parts_bytes(dir: &Path) -> Result<u64> {
    let Ok(rd) = std::fs::read_dir(dir.join(".store/partial")) else {
        return Ok(0);
    };
    let mut total = 0;
    for e in rd {
        total += e?.metadata()?.len();
    }
    Ok(total)
}

// issue 17: "pull or push killed at 50 % and run again — transfers at most 1.1× the bytes
// that were missing"; "the crash harness gains a 'kill pull mid-blob, rerun, nothing lost,
// nothing fetched twice beyond the bound' case". A pull killed in the middle of a blob (the
// `download-mib` crash point: after n MiB downloaded in all, up to a MiB of them unwritten)
// used to start over: every byte was fetched again.
#[test]
fn a_pull_killed_mid_blob_continues_where_it_stopped() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let reg = Registry::start()?;
    let t = tempfile::tempdir()?;
    let src = t.path().join("src");
    std::fs::create_dir_all(src.join("data/small"))?;
    // One big blob (incompressible: the pack stays ~32 MiB) and a few small ones.
    let mut rng = Rng::from_env("SNAP_CRASH_SEED");
    let big: Vec<u8> = (0..(32 << 20) / 8)
        .flat_map(|_| rng.next().to_le_bytes())
        .collect();
    std::fs::write(src.join("data/model.bin"), &big)?;
    for i in 0..20 {
        std::fs::write(
            src.join(format!("data/small/{i}.txt")),
            format!("{i}\n").repeat(500),
        )?;
    }
    let (out, _) = run(&src, &["--json", "commit", "data"])?;
    let digest = json_field(&out, "digest")?;
    let target = format!("{}/crash/resume:v1", reg.addr);
    run(&src, &["push", "latest", &target])?;

    // What a whole pull fetches, for scale.
    let whole_dir = t.path().join("whole");
    std::fs::create_dir_all(&whole_dir)?;
    run(&whole_dir, &["init"])?;
    let mark = reg.responses()?.len();
    run(&whole_dir, &["pull", &target])?;
    let whole = blob_bytes_sent(&reg.responses()?[mark..]);
    assert!(whole > 32 << 20, "{whole}");

    let dir = t.path().join("dst");
    std::fs::create_dir_all(&dir)?;
    run(&dir, &["init"])?;
    let args = ["--json", "pull", &target];
    let finished = run_crashed(&dir, &args, &Crash::At("download-mib", 16))?;
    assert!(finished.is_none(), "the pull was not cut short");
    fsck_clean(&dir, "a pull killed mid-blob")?;
    assert!(refs(&dir)?.is_empty(), "no ref moved");
    let kept = parts_bytes(&dir)?;
    assert!(
        kept >= 8 << 20,
        "about half the big blob is kept for the next run: {kept}"
    );

    let mark = reg.responses()?.len();
    let (out, _) = run(&dir, &args)?;
    let seen = reg.responses()?[mark..].to_vec();
    let again = blob_bytes_sent(&seen);
    let missing = whole - kept;
    eprintln!(
        "killed mid-blob: {whole} bytes in all, {kept} kept, {missing} missing, {again} fetched again"
    );
    assert!(
        again as f64 <= 1.1 * missing as f64,
        "the rerun fetched {again} bytes for {missing} missing ({whole} in all, {kept} kept)"
    );
    assert!(
        seen.iter()
            .any(|(r, status, _)| r.starts_with("GET ") && *status == 206),
        "the rest asked for by range: {seen:#?}"
    );
    let report: serde_json::Value = serde_json::from_str(&out)?;
    assert!(report["resumed"].as_u64() >= Some(1), "{report}");
    assert_eq!(report["downloaded_bytes"].as_u64(), Some(again), "{report}");
    assert_eq!(refs(&dir)?.get("v1"), Some(&digest));
    assert_eq!(
        fsck_clean(&dir, "the pull run again")?,
        0,
        "leftovers remain"
    );
    assert_eq!(parts_bytes(&dir)?, 0, "no partial download is left");
    run(&dir, &["restore", "v1", "out"])?;
    assert_eq!(std::fs::read(dir.join("out/data/model.bin"))?, big);
    Ok(())
}

/// A push's blob that goes up in chunks: six of `CHUNK_BYTES`.
const PUSH_BLOB: u64 = 96 << 20;
const PUSH_CHUNK: u64 = 16 << 20;

// issue 17: "kill push mid-blob, rerun, nothing lost, nothing sent twice beyond the bound".
// Each round pushes a snapshot holding one 96 MiB blob (six chunks) to a new repository and
// crashes it: a SIGKILL at a random moment, or an abort right after the upload record's n-th
// rename (just after the registry acknowledged chunk n). The rerun must complete; after an
// abort between chunks it sends at most 1.1× what was missing; after any crash it never sends
// more than the whole blob again; and it leaves no upload record. The last repository then
// pulls whole into a fresh store.
#[test]
fn push_survives_sigkill_mid_blob() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let mut rng = Rng::from_env("SNAP_CRASH_SEED");
    let reg = Registry::start()?;
    let t = tempfile::tempdir()?;
    let dir = t.path();
    sh(
        dir,
        &format!("mkdir data && head -c {PUSH_BLOB} /dev/urandom > data/model.bin"),
    )?;
    run(dir, &["init"])?;
    run(dir, &["commit", "data", "-m", "model"])?;
    let mut took = Duration::from_secs(1);
    let mut tally = Tally::default();
    let mut target = String::new();
    for i in 0..kills() {
        target = format!("{}/crash/push{i}:v1", reg.addr);
        let args = ["--json", "push", "latest", &target];
        let crash = Crash::pick(&mut rng, i, took, &[("renamed", 5)]);
        match run_crashed(dir, &args, &crash)? {
            Some(_) => tally.finished += 1,
            None => tally.killed += 1,
        }
        let what = format!("push crashed by {crash:?}");
        tally.leftovers += fsck_clean(dir, &what)?;
        let start = Instant::now();
        let (out, _) = run(dir, &args)?;
        took = start.elapsed();
        let v: serde_json::Value = serde_json::from_str(&out)?;
        let sent = v["uploaded_bytes"].as_u64().ok_or("uploaded_bytes")?;
        eprintln!("{what}: the rerun resumed {} and sent {sent}", v["resumed"]);
        // The config blob, a few hundred bytes, may have been cut off too.
        let slack = 64 << 10;
        assert!(sent <= PUSH_BLOB + slack, "{what}: sent {sent} again: {v}");
        if let Crash::At(_, n) = crash {
            let missing = PUSH_BLOB - n * PUSH_CHUNK;
            assert_eq!(v["resumed"].as_u64(), Some(1), "{what}: {v}");
            assert!(
                sent as f64 <= 1.1 * missing as f64 + slack as f64,
                "{what}: sent {sent} for {missing} missing: {v}"
            );
        }
        let partial = dir.join(".store/partial");
        let left: Vec<_> = std::fs::read_dir(&partial)
            .map(|rd| {
                rd.filter_map(std::result::Result::ok)
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.iter()
                .all(|p| p.extension().is_none_or(|x| x != "upload")),
            "{what}: upload records left: {left:?}"
        );
        assert_eq!(fsck_clean(dir, "the next push")?, 0, "leftovers remain");
    }
    let fresh = t.path().join("fresh");
    std::fs::create_dir_all(&fresh)?;
    run(&fresh, &["init"])?;
    run(&fresh, &["pull", &target])?;
    fsck_clean(&fresh, "pulling what was pushed")?;
    tally.report("push");
    Ok(())
}
