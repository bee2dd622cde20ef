use snap::ops::CommitOutcome;

use crate::harness::{Env, Result};

#[test]
fn show_manifest_writes_the_exact_stored_bytes() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    let c: CommitOutcome = env.json(&["commit", "demo"])?;
    let out = env.snap().args(["show", "--manifest", "latest"]).output()?;
    assert!(out.status.success());
    assert_eq!(
        snap::Digest::of(&out.stdout),
        c.digest,
        "sha256 of the manifest is the snapshot id"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(v["artifactType"], "application/vnd.snaptool.snapshot.v1");
    assert_eq!(
        v["config"]["mediaType"],
        "application/vnd.snaptool.snapshot.config.v1+json"
    );
    assert_eq!(
        v["layers"].as_array().map(Vec::len),
        Some(5),
        "direct mode: one layer per file"
    );
    Ok(())
}

#[test]
fn show_summarises_and_its_json_parses() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    let c: CommitOutcome = env.json(&[
        "commit",
        "demo",
        "-m",
        "demo graph",
        "--annotation",
        "team=search",
    ])?;
    let text = env.ok(&["show", "latest"])?;
    assert!(text.contains(&format!("snapshot {}", c.digest)));
    assert!(text.contains("Refs:     latest"));
    assert!(text.contains("5 files"));
    assert!(text.contains("direct mode"));
    assert!(text.contains("    demo graph"));
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["--json", "show", "latest"])?)?;
    assert_eq!(v["digest"], c.digest.to_string());
    assert_eq!(v["annotations"]["team"], "search");
    assert_eq!(v["stats"]["files"], 5);
    assert_eq!(v["mode"], "direct");
    Ok(())
}

// Issue 14 (item 4): a SNAP that resolves in the store is local, even when it reads like a
// registry reference (refs keep names such as `localhost:5000/ommx/lp:v1`); only one that
// does not resolve and names a registry host goes to the registry.
#[test]
fn a_ref_named_like_a_registry_reference_is_local_and_others_go_to_the_registry() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    let c: CommitOutcome = env.json(&["commit", "demo"])?;
    env.ok(&["tag", "localhost:1/acme/index:v1", "latest"])?;
    let v: serde_json::Value =
        serde_json::from_str(&env.ok(&["--json", "show", "localhost:1/acme/index:v1"])?)?;
    assert_eq!(v["digest"], c.digest.to_string(), "the local ref wins");
    let log = env.ok(&["log", "--oneline", "localhost:1/acme/index:v1"])?;
    assert!(log.starts_with(&c.digest.short()), "{log}");
    // Not in the store, names a registry: asked there (nothing listens on port 1).
    let out = env.run(&["show", "localhost:1/acme/index:v2"], 2)?;
    let err = crate::harness::stderr(&out);
    assert!(err.contains("localhost:1 refused the connection"), "{err}");
    let out = env.run(&["log", "localhost:1/acme/index:v2"], 2)?;
    assert!(crate::harness::stderr(&out).contains("refused the connection"));
    // Not in the store and no registry host: the local error, no network.
    let out = env.run(&["show", "acme/index:v2"], 2)?;
    let err = crate::harness::stderr(&out);
    assert!(!err.contains("refused"), "{err}");
    Ok(())
}
