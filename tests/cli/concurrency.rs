//! Eight processes committing to one ref at once lose nothing.

use std::collections::BTreeSet;

use snap::ops::CommitOutcome;
use snap::ops::fsck::FsckReport;

use crate::harness::{Env, Result};

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
    let mut chain = BTreeSet::new();
    let mut cur = env
        .ok(&["refs"])?
        .split_whitespace()
        .next()
        .map(str::to_owned);
    while let Some(d) = cur {
        let digest: snap::Digest = d.parse()?;
        chain.insert(digest);
        cur = parent_of(&env, &digest)?;
    }
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

fn parent_of(env: &Env, d: &snap::Digest) -> Result<Option<String>> {
    let store = snap::store::Store::open(&env.join(".store"))?;
    let snap = snap::snapshot::Snapshot::load(&store, d)?;
    Ok(snap.parent().map(|p| p.to_string()))
}
