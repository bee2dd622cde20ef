//! Eight processes committing to one ref at once lose nothing, with gc running meanwhile.

use std::collections::BTreeSet;

use snap::ops::CommitOutcome;
use snap::ops::fsck::FsckReport;

use crate::harness::{Env, Result, stderr};

#[test]
fn eight_concurrent_commits_to_one_ref_are_all_in_the_log_and_reflog() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    for i in 0..8 {
        env.write(&format!("w{i}/data.txt"), format!("worker {i}"))?;
    }
    let children: Vec<_> = (0..8)
        .map(|i| {
            env.snap_std(env.path())
                .env("SNAP_LOCK_TIMEOUT_MS", "20000")
                .args([
                    "--json",
                    "commit",
                    &format!("w{i}"),
                    "-m",
                    &format!("worker {i}"),
                ])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let mut reported = BTreeSet::new();
    for child in children {
        let out = child.wait_with_output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c: CommitOutcome = serde_json::from_slice(&out.stdout)?;
        reported.insert(c.digest);
    }
    assert_eq!(reported.len(), 8);
    // First-parent history from the ref holds every reported snapshot.
    let chain = first_parent_chain(&env)?;
    assert_eq!(chain, reported, "log accounts for every success");
    let reflog = std::fs::read_to_string(env.join(".store/logs/heads/latest"))?;
    let logged: BTreeSet<snap::Digest> = reflog
        .lines()
        .filter_map(|l| l.split(' ').nth(1)?.parse().ok())
        .collect();
    assert_eq!(logged, reported, "reflog accounts for every success");
    let r: FsckReport = env.json(&["fsck"])?;
    assert!(r.is_clean(), "{:?}", r.problems);
    Ok(())
}

/// Every snapshot on the first-parent chain from the (only) ref.
fn first_parent_chain(env: &Env) -> Result<BTreeSet<snap::Digest>> {
    let mut chain = BTreeSet::new();
    let mut cur = env
        .ok(&["refs"])?
        .split_whitespace()
        .next()
        .map(str::to_owned);
    while let Some(d) = cur {
        let digest: snap::Digest = d.parse()?;
        chain.insert(digest);
        cur = parent_of(env, &digest)?;
    }
    Ok(chain)
}

fn parent_of(env: &Env, d: &snap::Digest) -> Result<Option<String>> {
    let store = snap::store::Store::open(&env.join(".store"))?;
    let snap = snap::snapshot::Snapshot::load(&store, d)?;
    Ok(snap.parent().map(|p| p.to_string()))
}

/// Writers, commits per writer: issue 6's figures. `SNAP_RACE_COMMITS` raises the commits.
const WRITERS: usize = 8;

fn commits_per_writer() -> usize {
    std::env::var("SNAP_RACE_COMMITS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

#[test]
fn eight_writers_twenty_commits_each_and_gc_twice_meanwhile_lose_nothing() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    let n = commits_per_writer();
    for i in 0..WRITERS {
        for f in 0..200 {
            env.write(
                &format!("w{i}/f{f:03}.txt"),
                format!("file {f} worker {i}\n").repeat(f + 1),
            )?;
        }
    }
    // Each writer commits n times to `latest`, pausing between commits as CI jobs do.
    let mut writers: Vec<std::process::Child> = (0..WRITERS)
        .map(|i| {
            let script = format!(
                "for n in $(seq 1 {n}); do echo $n >> w{i}/f000.txt; \"$SNAP\" --json commit w{i} -m \"w{i} $n\" || exit 1; sleep 0.1; done"
            );
            std::process::Command::new("bash")
                .arg("-c")
                .arg(script)
                .current_dir(env.path())
                .env("SNAP", crate::support::SNAP)
                .env("SNAP_LOCK_TIMEOUT_MS", "60000")
                .env("SOURCE_DATE_EPOCH", crate::support::EPOCH)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    // gc as aggressively as it can while writers are at work (expiring every reflog entry, no
    // grace): count only the runs that finished before the last writer did.
    let mut gcs_meanwhile = 0;
    let mut busy = 0;
    while writers
        .iter_mut()
        .any(|w| w.try_wait().is_ok_and(|s| s.is_none()))
    {
        let out = env
            .snap()
            .args(["gc", "--expire", "0", "--prune-now", "--wait", "30"])
            .output()?;
        match out.status.code() {
            Some(0) => gcs_meanwhile += 1,
            Some(3) => {
                busy += 1;
                assert!(stderr(&out).contains("store-in-use"), "{}", stderr(&out));
            }
            _ => panic!("gc failed: {}", stderr(&out)),
        }
    }
    assert!(
        gcs_meanwhile >= 2,
        "gc ran {gcs_meanwhile} times while writers ran ({busy} gave up)"
    );
    let mut reported = BTreeSet::new();
    let mut attempts = 0;
    for w in writers {
        let out = w.wait_with_output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for line in String::from_utf8(out.stdout)?.lines() {
            let c: CommitOutcome = serde_json::from_str(line)?;
            attempts += c.attempts;
            reported.insert(c.digest);
        }
    }
    assert_eq!(reported.len(), WRITERS * n);
    // Every reported commit is in the first-parent history...
    let chain = first_parent_chain(&env)?;
    assert_eq!(
        chain, reported,
        "history accounts for every reported commit"
    );
    // ...and the reflog is one unbroken chain of moves, each from the previous value.
    let reflog = std::fs::read_to_string(env.join(".store/logs/heads/latest"))?;
    let mut prev = "-".to_owned();
    let mut logged = BTreeSet::new();
    for line in reflog.lines() {
        let mut f = line.split(' ');
        let (old, new) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
        assert_eq!(
            old, prev,
            "reflog line {line:?} does not follow the previous one"
        );
        prev = new.to_owned();
        logged.insert(new.parse::<snap::Digest>()?);
    }
    assert_eq!(
        logged, reported,
        "reflog accounts for every reported commit"
    );
    let r: FsckReport = env.json(&["fsck"])?;
    assert!(r.is_clean(), "{:?}", r.problems);
    eprintln!(
        "{} commits raced by {WRITERS} writers ({attempts} attempts), gc ran {gcs_meanwhile} times meanwhile ({busy} gave up): nothing lost",
        reported.len()
    );
    Ok(())
}

/// Runs `cmd` to the end, or fails if it is still running after `limit` (and kills it).
fn output_within(
    mut cmd: std::process::Command,
    limit: std::time::Duration,
) -> Result<std::process::Output> {
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let start = std::time::Instant::now();
    while child.try_wait()?.is_none() {
        if start.elapsed() > limit {
            child.kill()?;
            child.wait()?;
            return Err(format!("{cmd:?} still waited after {limit:?}").into());
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(child.wait_with_output()?)
}

/// A child process killed when dropped, stopped or not (so a failed test leaves none).
struct Reaped(std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(pid: u32, sig: &str) -> Result {
    let status = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?;
    assert!(status.success(), "kill {sig} {pid}");
    Ok(())
}

// issue 13 (item 7): a gc stopped (SIGSTOP, Ctrl-Z) while it waited for the store kept the
// turnstile closed, and every command, `snap log` included, waited for it forever.
#[test]
fn issue13_a_stopped_gc_makes_commands_fail_naming_it_instead_of_hanging() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    // This process uses the store, so gc waits for it, holding the turnstile closed.
    let held = snap::store::Store::open(&env.join(".store"))?;
    let gc = Reaped(
        env.snap_std(env.path())
            .args(["gc", "--wait", "600"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?,
    );
    let gc_pid = gc.0.id();
    let turnstile = std::fs::File::open(env.join(".store/LOCK.turnstile"))?;
    let start = std::time::Instant::now();
    loop {
        match turnstile.try_lock_shared() {
            Ok(()) => turnstile.unlock()?,
            Err(std::fs::TryLockError::WouldBlock) => break, // gc closed it
            Err(std::fs::TryLockError::Error(e)) => return Err(e.into()),
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "gc never closed the turnstile"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    signal(gc_pid, "-STOP")?;
    drop(held);

    let mut log = env.snap_std(env.path());
    log.env("SNAP_STORE_LOCK_TIMEOUT_MS", "500").arg("log");
    let out = output_within(log, std::time::Duration::from_secs(20))?;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!(
            "LOCK.turnstile is locked by pid {gc_pid} (`snap gc --wait 600`); gave up after waiting 500 ms"
        )),
        "{err}"
    );
    assert!(
        err.contains("kill -CONT") && err.contains("see: snap explain store-in-use"),
        "{err}"
    );
    drop(gc);
    env.ok(&["log"])?;
    Ok(())
}

// issue 13 (item 7): the shared wait on LOCK, and gc's wait on the turnstile, had no timeout
// either.
#[test]
fn issue13_every_store_wide_wait_gives_up_and_names_the_holder() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    let me = std::process::id();
    let open = |name: &str| {
        std::fs::File::options()
            .read(true)
            .write(true)
            .open(env.join(".store").join(name))
    };
    // Held exclusively, as a running gc holds it.
    let lock = open("LOCK")?;
    lock.try_lock()?;
    for args in [vec!["log"], vec!["commit", "d"], vec!["fsck"]] {
        let mut cmd = env.snap_std(env.path());
        cmd.env("SNAP_STORE_LOCK_TIMEOUT_MS", "300").args(&args);
        let out = output_within(cmd, std::time::Duration::from_secs(20))?;
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(3), "{args:?}: {err}");
        assert!(
            err.contains(&format!("LOCK is locked by pid {me} (`")),
            "{args:?}: {err}"
        );
        assert!(err.contains("gave up after waiting 300 ms"), "{err}");
    }
    drop(lock);
    // Closed, as a waiting gc holds it: another gc gives up too, even with a long --wait
    // budget spent elsewhere (here --wait 0 still waits a moment for the turnstile).
    let turnstile = open("LOCK.turnstile")?;
    turnstile.try_lock()?;
    let mut gc = env.snap_std(env.path());
    gc.args(["gc", "--wait", "0"]);
    let out = output_within(gc, std::time::Duration::from_secs(20))?;
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains(&format!("LOCK.turnstile is locked by pid {me}")),
        "{err}"
    );
    drop(turnstile);
    env.ok(&["log"])?;
    Ok(())
}
