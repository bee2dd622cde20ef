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
