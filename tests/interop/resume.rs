//! Issue 17: "pull or push killed at 50 % and run again transfers at most 1.1× the bytes that
//! were missing" — the push half, against the real registry (distribution 2.8).
//!
//! A snapshot of one incompressible 96 MiB file goes up in 16 MiB chunks. A push stopped once
//! half its chunks are acknowledged leaves its session in the store's upload record (store
//! format §2.1); the rerun continues it. Distribution refuses (and cancels) a session whose
//! stored bytes differ from its `Location`'s signed offset, which is what a chunk cut off
//! mid-way leaves; so the bound is checked for a push stopped between chunks (the crash point
//! after the record's rename, as a `SIGKILL` landing there would), and a `SIGKILL` at a random
//! moment must leave a push that completes either way.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Registry, Result, have_registry, sh, snap_ok};

/// The big file: six chunks.
const SIZE: u64 = 96 << 20;
/// `CHUNK_BYTES`.
const CHUNK: u64 = 16 << 20;

/// A store holding one snapshot (`latest`) of one incompressible [`SIZE`]-byte file.
fn big_store() -> Result<(tempfile::TempDir, PathBuf)> {
    let t = tempfile::tempdir()?;
    let dir = t.path().to_owned();
    sh(
        &dir,
        &format!("mkdir data && head -c {SIZE} /dev/urandom > data/model.bin"),
    )?;
    snap_ok(&dir, &["init"], &[])?;
    snap_ok(&dir, &["commit", "data", "-m", "model"], &[])?;
    Ok((t, dir))
}

fn push_cmd(dir: &Path, target: &str) -> Command {
    let mut cmd = crate::support::snap_command(dir, dir);
    cmd.args(["--json", "push", "latest", target])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Pushes, aborting on the spot right after the `n`-th rename of a final path — in a push,
/// the `n`-th write of the upload record, just after the registry acknowledged chunk `n`.
fn push_stopped_after_chunk(dir: &Path, target: &str, n: u64) -> Result {
    let out = push_cmd(dir, target)
        .env("SNAP_CRASH_AT", format!("renamed:{n}"))
        .output()?;
    assert!(
        out.status.code().is_none(),
        "the push was to stop after chunk {n}, it exited {:?}:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn push(dir: &Path, target: &str) -> Result<Value> {
    Ok(snap_ok(dir, &["--json", "push", "latest", target], &[])?.parse()?)
}

/// The upload records in the store.
fn records(dir: &Path) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir.join(".store/partial")) else {
        return Vec::new();
    };
    rd.filter_map(std::result::Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "upload"))
        .collect()
}

/// The only upload record's JSON.
fn record(dir: &Path) -> Result<Value> {
    let found = records(dir);
    let [one] = found.as_slice() else {
        return Err(format!("one upload record, not {found:?}").into());
    };
    Ok(serde_json::from_slice(&std::fs::read(one)?)?)
}

fn u64_of(v: &Value, field: &str) -> Result<u64> {
    Ok(v[field].as_u64().ok_or_else(|| format!("{field} in {v}"))?)
}

/// The repository pulls whole into a fresh store, whose fsck is clean.
fn pulls_whole(target: &str) -> Result {
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    snap_ok(fresh.path(), &["pull", target], &[])?;
    snap_ok(fresh.path(), &["fsck"], &[])?;
    Ok(())
}

/// The `PATCH`es among `seen`.
fn patches(seen: &[String]) -> usize {
    seen.iter().filter(|r| r.starts_with("PATCH ")).count()
}

// https://github.com/snap/snap/issues/17: a push stopped in the middle of a big blob started
// it over; the rerun now continues the registry's session, sending only what was missing.
#[test]
fn issue_17_a_push_stopped_at_half_a_big_blob_sends_only_the_rest() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = big_store()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/model:v1", reg.addr);
    push_stopped_after_chunk(&dir, &target, 3)?;
    let r = record(&dir)?;
    let acknowledged = u64_of(&r, "offset")?;
    assert_eq!(
        acknowledged,
        3 * CHUNK,
        "the record holds chunk 3's end: {r}"
    );
    let missing = SIZE - acknowledged;

    let mark = reg.requests()?.len();
    let again = push(&dir, &target)?;
    let seen = reg.requests()?[mark..].to_vec();
    let sent = u64_of(&again, "uploaded_bytes")?;
    eprintln!(
        "stopped at {acknowledged} of {SIZE} bytes; the rerun sent {sent} ({:.3}× the {missing} missing) in {} PATCHes",
        sent as f64 / missing as f64,
        patches(&seen)
    );
    assert_eq!(u64_of(&again, "resumed")?, 1, "{again}");
    assert!(
        sent as f64 <= 1.1 * missing as f64,
        "sent {sent} bytes for {missing} missing: {again}"
    );
    assert!(
        patches(&seen) as u64 <= missing.div_ceil(CHUNK),
        "chunks sent again: {seen:#?}"
    );
    assert!(records(&dir).is_empty(), "the record goes with the upload");
    pulls_whole(&target)
}

// issue 17: a push killed (SIGKILL) at a random moment once half the blob is acknowledged
// completes on the rerun, whether distribution still takes the session (the kill fell
// between chunks: only the rest is sent) or refuses it (a chunk was cut off: start over).
#[test]
fn issue_17_a_push_killed_at_half_a_big_blob_completes_on_the_rerun() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = big_store()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/model:v1", reg.addr);
    let mut child = push_cmd(&dir, &target).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let acknowledged = loop {
        let offset = record(&dir)
            .ok()
            .and_then(|r| r["offset"].as_u64())
            .unwrap_or(0);
        if offset >= SIZE / 2 {
            child.kill()?;
            child.wait()?;
            break offset;
        }
        if child.try_wait()?.is_some() || Instant::now() > deadline {
            let _ = child.kill();
            return Err("the push ended without an upload record at half its bytes".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let missing = SIZE - acknowledged;
    let mark = reg.requests()?.len();
    let again = push(&dir, &target)?;
    let seen = reg.requests()?[mark..].to_vec();
    let sent = u64_of(&again, "uploaded_bytes")?;
    let asked: Vec<&String> = seen
        .iter()
        .filter(|r| r.starts_with("GET ") && r.contains("/blobs/uploads/"))
        .collect();
    assert_eq!(asked.len(), 1, "the session is asked about once: {seen:#?}");
    let resumed = u64_of(&again, "resumed")?;
    eprintln!(
        "killed at {acknowledged} acknowledged bytes; the rerun {} and sent {sent} ({:.3}× the {missing} missing)",
        if resumed == 1 {
            "continued the session"
        } else {
            "found it refused and started over"
        },
        sent as f64 / missing as f64
    );
    if resumed == 1 {
        assert!(sent as f64 <= 1.1 * missing as f64, "{again}");
    } else {
        assert_eq!(sent, SIZE, "started over: every byte once: {again}");
    }
    assert!(records(&dir).is_empty(), "no record left");
    pulls_whole(&target)
}

// issue 17: a session the registry no longer knows (purged, or a registry wiped and
// restarted), or a record that is not one (garbage, a URL of another host), is not
// resumed: the push starts over and succeeds.
#[test]
fn issue_17_an_unknown_session_or_a_garbage_record_starts_the_upload_over() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = big_store()?;
    let reg = Registry::start()?;
    for (i, spoil) in ["purged", "garbage", "elsewhere"].into_iter().enumerate() {
        let target = format!("{}/snap/model{i}:v1", reg.addr);
        push_stopped_after_chunk(&dir, &target, 2)?;
        let path = records(&dir).pop().ok_or("a record")?;
        match spoil {
            "purged" => std::fs::remove_dir_all(reg.data_dir().join(format!(
                "docker/registry/v2/repositories/snap/model{i}/_uploads"
            )))?,
            "garbage" => std::fs::write(&path, b"{\"registry\":")?,
            _ => {
                let mut r = record(&dir)?;
                r["location"] = "http://192.0.2.1:9/v2/snap/x/blobs/uploads/u".into();
                std::fs::write(&path, serde_json::to_vec(&r)?)?;
            }
        }
        let again = push(&dir, &target)?;
        assert_eq!(
            (
                u64_of(&again, "resumed")?,
                u64_of(&again, "uploaded_bytes")? >= SIZE
            ),
            (0, true),
            "{spoil}: started over: {again}"
        );
        assert!(records(&dir).is_empty(), "{spoil}: no record left");
        pulls_whole(&target)?;
    }
    Ok(())
}

// issue 17: an upload record belongs to one repository: a push of the same blob to another
// repository neither uses nor disturbs it, and the first repository's push then continues.
#[test]
fn issue_17_an_upload_record_of_one_repository_does_not_apply_to_another() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = big_store()?;
    let reg = Registry::start()?;
    let a = format!("{}/snap/a:v1", reg.addr);
    let b = format!("{}/snap/b:v1", reg.addr);
    push_stopped_after_chunk(&dir, &a, 3)?;
    let kept = record(&dir)?;
    let to_b = push(&dir, &b)?;
    assert_eq!(
        (
            u64_of(&to_b, "resumed")?,
            u64_of(&to_b, "uploaded_bytes")? >= SIZE
        ),
        (0, true),
        "{to_b}"
    );
    assert_eq!(record(&dir)?, kept, "a's record untouched");
    pulls_whole(&b)?;
    let to_a = push(&dir, &a)?;
    assert_eq!(u64_of(&to_a, "resumed")?, 1, "{to_a}");
    assert!(records(&dir).is_empty(), "no record left");
    pulls_whole(&a)
}

// issue 17: the record is locked while its push runs: a second push of the same blob to the
// same repository (here: a record this test holds locked) uploads without resuming and
// leaves the record alone; the next push, with the lock gone, finds the blob there and
// removes the record.
#[test]
fn issue_17_a_locked_upload_record_is_neither_resumed_nor_touched() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = big_store()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/model:v1", reg.addr);
    push_stopped_after_chunk(&dir, &target, 2)?;
    let path = records(&dir).pop().ok_or("a record")?;
    let before = std::fs::read(&path)?;
    let held = std::fs::File::open(&path)?;
    held.try_lock()?;
    let second = push(&dir, &target)?;
    assert_eq!(
        (
            u64_of(&second, "resumed")?,
            u64_of(&second, "uploaded_bytes")? >= SIZE
        ),
        (0, true),
        "{second}"
    );
    assert_eq!(
        std::fs::read(&path)?,
        before,
        "the held record is untouched"
    );
    drop(held);
    let third = push(&dir, &target)?;
    assert_eq!(u64_of(&third, "uploaded")?, 0, "all there: {third}");
    assert!(records(&dir).is_empty(), "the record goes with the mount");
    Ok(())
}

/// Sends `signal` (`TERM`, `INT`) to the process `pid` (through the shell's builtin `kill`:
/// no procps needed).
fn signal(pid: u32, signal: &str) -> Result {
    let status = Command::new("sh")
        .args(["-c", &format!("kill -{signal} {pid}")])
        .status()?;
    if !status.success() {
        return Err(format!("kill -{signal} {pid} failed").into());
    }
    Ok(())
}

// issue 17: a SIGKILL that cuts a chunk off leaves a session distribution refuses, so the
// rerun sent the whole blob again. `SIGTERM` (a CI job cancelled) and Ctrl-C now stop a push
// between two chunks: it exits 130 naming what happened, the session stays one the registry
// continues, and the rerun sends only the rest.
#[test]
fn issue_17_a_push_stopped_by_sigterm_continues_on_the_rerun() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = big_store()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/model:v1", reg.addr);
    let child = push_cmd(&dir, &target).spawn()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let offset = record(&dir)
            .ok()
            .and_then(|r| r["offset"].as_u64())
            .unwrap_or(0);
        if offset >= CHUNK {
            signal(child.id(), "TERM")?;
            break;
        }
        if Instant::now() > deadline {
            return Err("no chunk was acknowledged".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("push stopped, as asked") && stderr.contains("snap explain interrupted"),
        "{stderr}"
    );
    let acknowledged = u64_of(&record(&dir)?, "offset")?;
    assert!(
        (CHUNK..SIZE).contains(&acknowledged),
        "stopped between chunks: {acknowledged}"
    );
    let missing = SIZE - acknowledged;
    let again = push(&dir, &target)?;
    let sent = u64_of(&again, "uploaded_bytes")?;
    eprintln!(
        "SIGTERM at {acknowledged} acknowledged bytes; the rerun sent {sent} ({:.3}× the {missing} missing)",
        sent as f64 / missing as f64
    );
    assert_eq!(
        u64_of(&again, "resumed")?,
        1,
        "the session goes on: {again}"
    );
    assert!(sent as f64 <= 1.1 * missing as f64, "{again}");
    assert!(records(&dir).is_empty(), "no record left");
    pulls_whole(&target)
}

// issue 17: Ctrl-C stops a pull once the bytes in flight are in their parts: exit 130,
// nothing stored, no ref moved, and the rerun fetches only what is missing.
#[test]
fn issue_17_a_pull_stopped_by_ctrl_c_continues_on_the_rerun() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = big_store()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/model:v1", reg.addr);
    push(&dir, &target)?;
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    let mut cmd = crate::support::snap_command(fresh.path(), fresh.path());
    let child = cmd
        .args(["pull", &target])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let parts = fresh.path().join(".store/partial");
    let held = || -> u64 {
        std::fs::read_dir(&parts).map_or(0, |rd| {
            rd.filter_map(std::result::Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    while held() < 8 << 20 {
        if Instant::now() > deadline {
            return Err("the pull never got 8 MiB into its parts".into());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    signal(child.id(), "INT")?;
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(130),
        "stopped before the end (96 MiB in 1 MiB writes): {stderr}"
    );
    assert!(stderr.contains("pull stopped, as asked"), "{stderr}");
    let kept = held();
    assert!(
        !fresh.path().join(".store/refs/heads/v1").exists(),
        "no ref moved"
    );
    let again: Value = snap_ok(fresh.path(), &["--json", "pull", &target], &[])?.parse()?;
    let fetched = u64_of(&again, "downloaded_bytes")?;
    let whole = SIZE + 4096; // the blob and, at most, the config
    eprintln!("Ctrl-C with {kept} bytes kept; the rerun fetched {fetched}");
    assert!(
        fetched + kept <= whole + (1 << 20) && fetched < SIZE,
        "{fetched} fetched again with {kept} kept: {again}"
    );
    assert_eq!(u64_of(&again, "resumed")?, 1, "{again}");
    snap_ok(fresh.path(), &["fsck"], &[])?;
    Ok(())
}
