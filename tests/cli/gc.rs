//! `snap gc` removes only what nothing reaches, and never races a writer.

use snap::ops::fsck::FsckReport;
use snap::ops::{CommitOutcome, GcOutcome};

use crate::harness::{Env, Result, stderr};

fn grouped_tree(env: &Env, dir: &str, extra: &str) -> Result {
    for i in 0..200 {
        env.write(
            &format!("{dir}/f{i:03}.txt"),
            format!("file {i} {extra}\n").repeat(i + 1),
        )?;
    }
    Ok(())
}

#[test]
fn gc_removes_only_what_no_ref_or_recent_reflog_reaches() -> Result {
    let env = Env::new()?;
    grouped_tree(&env, "idx", "v1")?;
    let one: CommitOutcome = env.json(&["commit", "idx", "-m", "one"])?;
    env.write("idx/f007.txt", "changed\n")?;
    let two: CommitOutcome = env.json(&["commit", "idx", "-m", "two"])?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo", "--ref", "scratch"])?;
    grouped_tree(&env, "other", "throwaway")?;
    env.ok(&["commit", "other", "--ref", "throwaway"])?;

    // Everything is reachable: nothing to do.
    let g: GcOutcome = env.json(&["gc", "--prune-now"])?;
    assert_eq!((g.loose_removed, g.packs_removed), (0, 0), "{g:?}");

    // A deleted ref's snapshot stays while its reflog entry is recent…
    env.ok(&["ref", "delete", "throwaway"])?;
    let g: GcOutcome = env.json(&["gc", "--prune-now"])?;
    assert_eq!(g.packs_removed, 0, "{g:?}");
    // …and within the grace period even once the reflog no longer counts.
    let g: GcOutcome = env.json(&["gc", "--expire", "0"])?;
    assert_eq!(g.packs_removed, 0, "{g:?}");
    assert!(g.kept_young > 0, "{g:?}");

    // A dry run reports what a real run then does, and changes nothing.
    let before = env.sh("find .store -type f | sort")?;
    let dry: GcOutcome = env.json(&["gc", "--dry-run", "--expire", "0", "--prune-now"])?;
    assert!(dry.packs_removed > 0 && dry.bytes_removed > 0, "{dry:?}");
    assert_eq!(env.sh("find .store -type f | sort")?, before);
    let real: GcOutcome = env.json(&["gc", "--expire", "0", "--prune-now"])?;
    assert_eq!(
        (real.loose_removed, real.packs_removed, real.bytes_removed),
        (dry.loose_removed, dry.packs_removed, dry.bytes_removed)
    );

    // What the refs reach is intact: lineage, contents, fsck.
    let log = env.ok(&["log", "--oneline"])?;
    assert!(
        log.contains(&two.digest.short()) && log.contains(&one.digest.short()),
        "{log}"
    );
    env.ok(&["restore", "latest", "out"])?;
    env.sh("diff -r idx out/idx")?;
    env.ok(&["restore", "scratch", "out2"])?;
    env.sh("diff -r demo out2/demo")?;
    let r: FsckReport = env.json(&["fsck"])?;
    assert!(r.is_clean(), "{:?}", r.problems);
    let again: GcOutcome = env.json(&["gc", "--expire", "0", "--prune-now"])?;
    assert_eq!((again.loose_removed, again.packs_removed), (0, 0));
    Ok(())
}

#[test]
fn gc_refuses_to_guess_when_a_ref_points_at_a_missing_snapshot() -> Result {
    let env = Env::new()?;
    grouped_tree(&env, "idx", "v1")?;
    let c: CommitOutcome = env.json(&["commit", "idx"])?;
    let hex = c.digest.hex();
    env.sh(&format!(
        "rm -f .store/objects/sha256/{}/{}",
        &hex[..2],
        &hex[2..]
    ))?;
    let before = env.sh("find .store -type f | sort")?;
    let out = env.run(&["gc", "--expire", "0", "--prune-now"], 2)?;
    assert!(stderr(&out).contains(&hex[..12]), "{}", stderr(&out));
    assert_eq!(
        env.sh("find .store -type f | sort")?,
        before,
        "nothing removed"
    );
    Ok(())
}

#[test]
fn gc_waits_for_the_store_then_gives_up_with_exit_3() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    // This test process uses the store (a shared lock, as every snap command takes).
    let held = snap::store::Store::open(&env.join(".store"))?;
    let out = env.run(&["gc", "--wait", "0"], 3)?;
    assert!(
        stderr(&out).contains("another snap process is using this store"),
        "{}",
        stderr(&out)
    );
    // Released while gc waits: gc proceeds.
    let child = env
        .snap_std(env.path())
        .args(["gc", "--wait", "20"])
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    // Barrier: gc is waiting once it has closed the store's turnstile (store format §7).
    let turnstile = env.join(".store").join(snap::store::TURNSTILE);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while snap::lock::is_held(&turnstile)? != Some(true) {
        assert!(
            std::time::Instant::now() < deadline,
            "gc never started waiting"
        );
        std::thread::yield_now();
    }
    drop(held);
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}
