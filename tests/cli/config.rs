//! `snap config`: settings in `.store/config`, used as defaults that flags override.

use crate::harness::{Env, Result, stderr};

#[test]
fn set_get_list_unset_and_refuse_what_it_does_not_know() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    env.run(&["config", "commit.ref"], 1)?; // unset: exit 1, like git config
    env.ok(&["config", "commit.ref", "nightly"])?;
    assert_eq!(env.ok(&["config", "commit.ref"])?, "nightly\n");
    env.ok(&["config", "remote", "ghcr.io/acme/index"])?;
    assert_eq!(
        env.ok(&["config"])?,
        "commit.ref = nightly\nremote = ghcr.io/acme/index\n"
    );
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["--json", "config"])?)?;
    assert_eq!(v["remote"], "ghcr.io/acme/index");
    let file = std::fs::read_to_string(env.join(".store/config"))?;
    assert!(file.contains("commit.ref = nightly\n"), "{file}");

    let out = env.run(&["config", "commit.colour", "x"], 2)?;
    assert!(
        stderr(&out).contains("`commit.colour` is not a setting snap knows"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["config", "commit.ref", "../up"], 2)?;
    assert!(
        stderr(&out).contains("is not a valid commit.ref"),
        "{}",
        stderr(&out)
    );
    let out = env.run(&["config", "remote", "Not A Ref"], 2)?;
    assert!(
        stderr(&out).contains("is not a valid remote"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        env.ok(&["config", "commit.ref"])?,
        "nightly\n",
        "unchanged by refusals"
    );

    env.ok(&["config", "--unset", "commit.ref"])?;
    env.run(&["config", "--unset", "commit.ref"], 1)?;
    assert!(env.ok(&["config", "--keys"])?.contains("commit.gitignore"));
    // A damaged file is named with its line.
    env.write(".store/config", "remote = a/b\nbroken\n")?;
    let out = env.run(&["config"], 2)?;
    assert!(
        stderr(&out).contains("config, line 2: expected `key = value`"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn settings_are_defaults_that_flags_and_the_environment_override() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    env.ok(&["config", "commit.ref", "nightly"])?;
    env.ok(&["config", "commit.gitignore", "true"])?;
    env.write("out/.gitignore", "*.log\n")?;
    env.write("out/a.txt", "a")?;
    env.write("out/b.log", "b")?;
    env.ok(&["commit", "out"])?;
    let refs = env.ok(&["refs"])?;
    assert!(
        refs.contains("nightly") && !refs.contains("latest"),
        "{refs}"
    );
    let ls = env.ok(&["ls", "nightly", "out"])?;
    assert!(!ls.contains("b.log"), "commit.gitignore applies: {ls}");
    env.ok(&["commit", "out", "--ref", "flagged"])?;
    let out = env
        .snap()
        .args(["commit", "out"])
        .env("SNAP_REF", "fromenv")
        .output()?;
    assert!(out.status.success(), "{}", stderr(&out));
    let refs = env.ok(&["refs"])?;
    assert!(
        refs.contains("flagged") && refs.contains("fromenv"),
        "{refs}"
    );
    let out = env.run(&["push", "nightly"], 2)?;
    assert!(
        stderr(&out).contains("snap config remote"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn a_config_held_by_another_process_exits_3() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    env.write(".store/config.lock", "")?;
    let held = std::fs::File::open(env.join(".store/config.lock"))?;
    held.try_lock()?;
    let out = env.run(&["config", "commit.ref", "x"], 3)?;
    assert!(
        stderr(&out).contains("config.lock is locked"),
        "{}",
        stderr(&out)
    );
    drop(held);
    env.ok(&["config", "commit.ref", "x"])?;
    Ok(())
}

// Issue 18: the registry timeout and low-speed limit are settings, checked when set, and a
// bad value from a flag or the environment is refused before anything is sent.
#[test]
fn issue_18_registry_timeouts_are_checked_settings_flags_and_variables() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    env.ok(&["config", "http.timeout", "120"])?;
    env.ok(&["config", "http.low-speed-limit", "0"])?;
    assert_eq!(env.ok(&["config", "http.timeout"])?, "120\n");
    for (key, bad) in [
        ("http.timeout", "0"),
        ("http.timeout", "1.5"),
        ("http.timeout", "86401"),
        ("http.low-speed-limit", "fast"),
    ] {
        let out = env.run(&["config", key, bad], 2)?;
        assert!(
            stderr(&out).contains(&format!("is not a valid {key}")),
            "{key} = {bad}: {}",
            stderr(&out)
        );
    }
    let keys = env.ok(&["config", "--keys"])?;
    assert!(
        keys.contains("http.timeout") && keys.contains("http.low-speed-limit"),
        "{keys}"
    );
    let out = env.run(&["pull", "127.0.0.1:1/acme/x", "--timeout", "0"], 2)?;
    assert!(
        stderr(&out).contains("whole number of seconds from 1 to 86400"),
        "{}",
        stderr(&out)
    );
    let out = env
        .snap()
        .args(["push", "latest", "127.0.0.1:1/acme/x"])
        .env("SNAP_TIMEOUT", "soon")
        .output()?;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("whole number of seconds"),
        "{}",
        stderr(&out)
    );
    Ok(())
}
