use crate::harness::{Env, Result};

fn git_repo(env: &Env) -> Result {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/git/make_repo.sh");
    env.sh(&format!("bash {} .", script.display()))?;
    Ok(())
}

#[test]
fn status_is_fresh_then_stale_after_a_git_commit() -> Result {
    let env = Env::new()?;
    git_repo(&env)?;
    env.write("build/index/graph.bin", "g")?;
    env.ok(&["commit", "build/index"])?;
    let head = env.sh("git rev-parse --short=7 HEAD")?.trim().to_owned();
    let fresh = env.ok(&["status"])?;
    assert!(
        fresh.contains(&format!("fresh: built from HEAD {head}")),
        "{fresh}"
    );
    env.write("src/main.rs", "fn main() { v2() }\n")?;
    env.sh("git commit -qam v2")?;
    let new_head = env.sh("git rev-parse --short=7 HEAD")?.trim().to_owned();
    let stale = env.ok(&["status"])?;
    assert!(
        stale.contains(&format!(
            "stale: built from {head}, HEAD is {new_head} (1 commit ahead)"
        )),
        "{stale}"
    );
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["--json", "status"])?)?;
    assert_eq!(v["refs"][0]["name"], "latest");
    assert_eq!(v["refs"][0]["freshness"]["state"], "stale");
    assert_eq!(v["refs"][0]["freshness"]["commits_ahead"], 1);
    Ok(())
}

#[test]
fn status_judges_by_inputs_when_recorded() -> Result {
    let env = Env::new()?;
    git_repo(&env)?;
    env.write("build/index/graph.bin", "g")?;
    env.ok(&["commit", "build/index", "--inputs", "src"])?;
    env.write("docs/guide.md", "other docs\n")?;
    env.sh("git commit -qam docs")?;
    let out = env.ok(&["status"])?;
    assert!(
        out.contains("fresh: built from") && out.contains("inputs unchanged"),
        "{out}"
    );
    env.write("src/main.rs", "fn main() { v2() }\n")?;
    env.sh("git commit -qam src")?;
    let out = env.ok(&["status"])?;
    assert!(
        out.contains("stale:") && out.contains("(2 commits ahead); inputs changed: src/"),
        "{out}"
    );
    Ok(())
}

#[test]
fn status_outside_git_is_unknown() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    let out = env.ok(&["status"])?;
    assert!(out.contains("unknown: no git provenance recorded"), "{out}");
    Ok(())
}

// Issue 14 (item 4): `status --remote` needs git history, and says so before any request.
#[test]
fn status_remote_outside_git_says_there_is_no_history_without_asking() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    // Nothing listens on port 1: an attempt to connect would say "refused".
    let out = env.run(&["status", "--remote", "127.0.0.1:1/acme/index"], 2)?;
    let err = crate::harness::stderr(&out);
    assert!(
        err.contains("not in a git repository with commits"),
        "{err}"
    );
    assert!(
        err.contains("snap status --remote inside the git work tree"),
        "{err}"
    );
    assert!(!err.contains("refused"), "{err}");
    // Without a reference, the `remote` setting is the default.
    let out = env.run(&["status", "--remote"], 2)?;
    let err = crate::harness::stderr(&out);
    assert!(err.contains("no registry given"), "{err}");
    Ok(())
}
