use snap::ops::CommitOutcome;
use snap::snapshot::LogEntry;

use crate::harness::{Env, Result};

fn three_snapshots(env: &Env) -> Result<Vec<CommitOutcome>> {
    let mut out = Vec::new();
    for (i, msg) in ["first", "second", "third"].iter().enumerate() {
        env.write("d/a.txt", format!("version {i}"))?;
        out.push(env.json(&["commit", "d", "-m", msg])?);
    }
    Ok(out)
}

fn records(text: &str) -> Result<Vec<LogEntry>> {
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            assert_eq!(v["type"], "snapshot");
            Ok(serde_json::from_value(v["data"].clone())?)
        })
        .collect()
}

#[test]
fn log_walks_first_parents_newest_first() -> Result {
    let env = Env::new()?;
    let c = three_snapshots(&env)?;
    let log = records(&env.ok(&["--json", "log"])?)?;
    let ids: Vec<_> = log.iter().map(|e| e.digest).collect();
    assert_eq!(ids, [c[2].digest, c[1].digest, c[0].digest]);
    assert_eq!(log[0].message, "third");
    assert_eq!(log[0].parents, [c[1].digest]);
    assert_eq!(log[2].parents, []);
    assert_eq!(log[0].created.as_deref(), Some("2026-01-01T00:00:00Z"));
    Ok(())
}

#[test]
fn log_limits_and_starts_anywhere() -> Result {
    let env = Env::new()?;
    let c = three_snapshots(&env)?;
    assert_eq!(records(&env.ok(&["--json", "log", "-n", "2"])?)?.len(), 2);
    let from_middle = records(&env.ok(&["--json", "log", "latest~1"])?)?;
    assert_eq!(from_middle[0].digest, c[1].digest);
    let oneline = env.ok(&["log", "--oneline"])?;
    let lines: Vec<_> = oneline.lines().collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0],
        format!("{} 2026-01-01T00:00:00Z third", c[2].digest.short())
    );
    let long = env.ok(&["log"])?;
    assert!(
        long.contains(&format!("snapshot {}", c[0].digest)),
        "{long}"
    );
    assert!(long.contains("    second"), "{long}");
    Ok(())
}

// Issue 19: `Date:` read as the snapshot's own time, while it is the git commit's time (or
// SOURCE_DATE_EPOCH): snap records no clock time. The line now says which it is.
#[test]
fn log_and_show_say_what_the_date_is() -> Result {
    let env = Env::new()?;
    env.sh("git init -q -b main . && echo x > f && git add -A && git commit -qm init")?;
    env.write("out/a", "1")?;
    let out = env
        .snap()
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["commit", "out", "-m", "built"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = env.ok(&["log"])?;
    assert!(
        log.contains("Date:   2026-01-01T00:00:00Z (the time of the git commit it was built from)"),
        "{log}"
    );
    let show = env.ok(&["show", "latest"])?;
    assert!(
        show.contains(
            "Date:     2026-01-01T00:00:00Z (the time of the git commit it was built from)"
        ),
        "{show}"
    );
    env.write("out/a", "2")?;
    let out = env
        .snap()
        .env("SOURCE_DATE_EPOCH", "1767312000")
        .args(["commit", "out", "-m", "with SOURCE_DATE_EPOCH"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = env.ok(&["log", "-n", "1"])?;
    assert!(
        log.contains("Date:   2026-01-02T00:00:00Z (SOURCE_DATE_EPOCH when it was committed)"),
        "{log}"
    );
    Ok(())
}
