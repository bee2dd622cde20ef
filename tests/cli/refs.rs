use snap::ops::CommitOutcome;

use crate::harness::{Env, Result, stderr};

#[test]
fn tags_never_move_without_force() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let first: CommitOutcome = env.json(&["commit", "d"])?;
    env.ok(&["tag", "v1", "latest"])?;
    env.write("d/a", "2")?;
    let second: CommitOutcome = env.json(&["commit", "d"])?;
    let out = env.run(&["tag", "v1", "latest"], 3)?;
    assert!(stderr(&out).contains("already exists"), "{}", stderr(&out));
    let refs = env.ok(&["refs"])?;
    assert!(
        refs.contains(&format!("{} tags/v1", first.digest)),
        "{refs}"
    );
    env.ok(&["tag", "--force", "v1", "latest"])?;
    assert!(
        env.ok(&["refs"])?
            .contains(&format!("{} tags/v1", second.digest))
    );
    Ok(())
}

#[test]
fn commits_refuse_to_move_a_tag() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    env.ok(&["tag", "release", "latest"])?;
    let out = env.run(&["commit", "d", "--ref", "release"], 2)?;
    assert!(stderr(&out).contains("is a tag"), "{}", stderr(&out));
    Ok(())
}

#[test]
fn ref_delete_removes_the_ref_and_logs_it() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d", "--ref", "ci/main"])?;
    env.ok(&["ref", "delete", "ci/main"])?;
    assert_eq!(env.ok(&["refs"])?, "");
    let log = std::fs::read_to_string(env.join(".store/logs/heads/ci/main"))?;
    assert_eq!(log.lines().count(), 2);
    assert!(
        log.lines()
            .nth(1)
            .is_some_and(|l| l.contains(" - ") && l.ends_with("\tdelete")),
        "{log}"
    );
    let out = env.run(&["ref", "delete", "ci/main"], 2)?;
    assert!(stderr(&out).contains("no ref named"));
    Ok(())
}

#[test]
fn refs_json_lines_parse() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let c: CommitOutcome = env.json(&["commit", "d"])?;
    let out = env.ok(&["--json", "refs"])?;
    let v: serde_json::Value = serde_json::from_str(out.trim())?;
    assert_eq!(v["type"], "ref");
    assert_eq!(v["data"]["name"], "latest");
    assert_eq!(v["data"]["kind"], "head");
    assert_eq!(v["data"]["digest"], c.digest.to_string());
    Ok(())
}

// issue 13 (item 3): a ref named like a pack index was taken for an orphan index by the next
// command's leftover sweep, which deleted the ref and its reflog; gc then deleted the snapshot.
#[test]
fn issue13_refs_named_like_pack_indexes_survive_the_leftover_sweep() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let c: CommitOutcome = env.json(&["commit", "d", "--ref", "release-1.idx"])?;
    env.json::<CommitOutcome>(&["commit", "d", "--ref", "ci/nightly.idx"])?;
    // Each of these opens the store alone, so each sweeps leftovers.
    env.ok(&["log", "release-1.idx"])?;
    env.ok(&["gc", "--prune-now"])?;
    let refs = env.ok(&["refs"])?;
    assert!(
        refs.contains(&format!("{} release-1.idx", c.digest)) && refs.contains("ci/nightly.idx"),
        "both refs are still there: {refs}"
    );
    for log in ["release-1.idx", "ci/nightly.idx"] {
        assert!(
            env.join(".store/logs/heads").join(log).is_file(),
            "the reflog of {log} is still there"
        );
    }
    assert_eq!(env.ok(&["cat", "release-1.idx", "d/a"])?, "1", "gc kept it");
    let report: snap::ops::FsckReport = env.json(&["fsck"])?;
    assert!(
        report.is_clean() && report.leftovers.is_empty(),
        "fsck takes no ref for a leftover either: {report:?}"
    );
    assert_eq!(report.refs, 2);
    Ok(())
}

// issue 13 (item 10): names of 251-255 bytes failed with a raw "File name too long", a head
// `tags/x` was shadowed by the tag `x`, and `a` beside `a/b` failed with a raw ENOTDIR.
#[test]
fn issue13_ref_names_that_cannot_be_stored_are_refused_with_a_clear_error() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let long = "r".repeat(251);
    let nested = format!("ci/{long}");
    for name in [long.as_str(), nested.as_str()] {
        let out = env.run(&["commit", "d", "--ref", name], 2)?;
        let err = stderr(&out);
        assert!(
            err.contains("ref name too long") && err.contains("hint: choose a shorter name"),
            "{err}"
        );
        assert!(!err.contains("os error"), "no raw OS error: {err}");
    }
    assert_eq!(env.ok(&["refs"])?, "", "nothing was created");

    env.ok(&["commit", "d", "--ref", "x"])?;
    env.ok(&["tag", "x", "x"])?;
    for name in ["tags/x", "heads/x"] {
        let out = env.run(&["commit", "d", "--ref", name], 2)?;
        assert!(
            stderr(&out).contains(&format!("invalid ref name `{name}`: it starts with")),
            "{}",
            stderr(&out)
        );
    }

    env.ok(&["commit", "d", "--ref", "a"])?;
    env.ok(&["commit", "d", "--ref", "b/c"])?;
    for (name, message) in [
        ("a/b", "cannot create ref `a/b`: ref `a` exists"),
        ("b", "cannot create ref `b`: ref `b/c` exists"),
    ] {
        let out = env.run(&["commit", "d", "--ref", name], 2)?;
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("ref-name-conflict"),
            "{}",
            stderr(&out)
        );
    }
    env.ok(&["ref", "delete", "a"])?;
    let out = env.run(&["commit", "d", "--ref", "a/b"], 2)?;
    assert!(
        stderr(&out).contains("cannot create ref `a/b`: the reflog of deleted ref `a` is kept"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["log", "a/b"], 2)?;
    assert!(
        stderr(&out).contains("unknown revision"),
        "{}",
        stderr(&out)
    );
    env.ok(&["fsck"])?;
    Ok(())
}
