//! The JSON schemas of `--json` output, in `book/src/reference/schemas/`, are generated from
//! the library's types (schemars) — this test fails when a type changes and its schema file
//! does not (`SNAP_BLESS=1 cargo test --test json_schema` rewrites them) — and real command
//! output is validated against them, then parsed back into the library's types.

#![allow(clippy::disallowed_methods)] // writes blessed schema files and test fixtures

mod support;

use std::path::{Path, PathBuf};

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn schemas() -> Vec<(&'static str, schemars::Schema)> {
    use schemars::schema_for;
    vec![
        ("commit", schema_for!(snap::ops::CommitOutcome)),
        ("restore", schema_for!(snap::ops::RestoreOutcome)),
        (
            "restore-remote",
            schema_for!(snap::ops::RemoteRestoreOutcome),
        ),
        ("export", schema_for!(snap::ops::ExportOutcome)),
        ("import", schema_for!(snap::ops::ImportOutcome)),
        ("push", schema_for!(snap::ops::PushOutcome)),
        ("pull", schema_for!(snap::ops::PullOutcome)),
        ("gc", schema_for!(snap::ops::GcOutcome)),
        ("fsck", schema_for!(snap::ops::FsckReport)),
        ("sign", schema_for!(snap::ops::SignOutcome)),
        ("verify", schema_for!(snap::ops::VerifyReport)),
        ("attach", schema_for!(snap::ops::AttachOutcome)),
        ("referrers", schema_for!(snap::ops::ReferrersReport)),
        ("log", schema_for!(snap::snapshot::LogEntry)),
        ("diff", schema_for!(snap::ops::diff::Change)),
        ("ls-remote", schema_for!(snap::ops::remote::LsRemoteOutcome)),
        (
            "status-remote",
            schema_for!(snap::ops::remote::RemoteStatus),
        ),
    ]
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src/reference/schemas")
}

#[test]
fn schema_files_match_the_library_types() -> Result {
    let bless = std::env::var("SNAP_BLESS").is_ok_and(|v| v == "1");
    for (name, schema) in schemas() {
        let text = serde_json::to_string_pretty(&schema)? + "\n";
        let path = dir().join(format!("{name}.json"));
        if bless {
            std::fs::create_dir_all(dir())?;
            std::fs::write(&path, &text)?;
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == text,
            "{} is out of date: run SNAP_BLESS=1 cargo test --test json_schema",
            path.display()
        );
    }
    Ok(())
}

fn validate(name: &str, doc: &serde_json::Value) -> Result {
    let schema: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        dir().join(format!("{name}.json")),
    )?)?;
    let validator = jsonschema::validator_for(&schema).map_err(|e| format!("{name}: {e}"))?;
    let errors: Vec<String> = validator
        .iter_errors(doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{name}: {errors:?}\n{doc}");
    Ok(())
}

fn snap(dir: &Path, args: &[&str]) -> Result<String> {
    let out = support::snap_command(dir, dir)
        .arg("--json")
        .args(args)
        .output()?;
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "snap {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// One document per command, or one `{type, data}` record per line (log, diff).
fn documents(out: &str, records: bool) -> Result<Vec<serde_json::Value>> {
    if records {
        out.lines()
            .map(|l| Ok(serde_json::from_str::<serde_json::Value>(l)?["data"].clone()))
            .collect()
    } else {
        Ok(vec![serde_json::from_str(out)?])
    }
}

#[test]
fn real_output_validates_and_parses_back_into_the_library_types() -> Result {
    let t = tempfile::tempdir()?;
    let d = t.path();
    std::fs::create_dir_all(d.join("out/sub"))?;
    for i in 0..30 {
        std::fs::write(d.join(format!("out/f{i}")), format!("{i}\n").repeat(i + 1))?;
    }
    std::fs::write(d.join("out/sub/x"), "x")?;
    std::os::unix::fs::symlink("f1", d.join("out/link"))?;
    let cases: Vec<(&str, Vec<&str>, bool)> = vec![
        ("commit", vec!["commit", "out", "-m", "one"], false),
        ("restore", vec!["restore", "latest", "restored"], false),
        (
            "export",
            vec!["export", "--oci", "latest", "-o", "x.tar"],
            false,
        ),
        ("import", vec!["import", "x.tar", "--ref", "again"], false),
        ("gc", vec!["gc", "--dry-run"], false),
        ("fsck", vec!["fsck"], false),
        ("log", vec!["log"], true),
        ("diff", vec!["diff", "latest", "out"], true),
    ];
    std::fs::write(d.join("out/f0"), "changed")?;
    for (name, args, records) in cases {
        let out = snap(d, &args)?;
        let docs = documents(&out, records)?;
        assert!(!docs.is_empty(), "{name}: no output");
        for doc in &docs {
            validate(name, doc)?;
            let text = doc.to_string();
            let parsed = match name {
                "commit" => serde_json::from_str::<snap::ops::CommitOutcome>(&text).map(|_| ()),
                "restore" => serde_json::from_str::<snap::ops::RestoreOutcome>(&text).map(|_| ()),
                "export" => serde_json::from_str::<snap::ops::ExportOutcome>(&text).map(|_| ()),
                "import" => serde_json::from_str::<snap::ops::ImportOutcome>(&text).map(|_| ()),
                "gc" => serde_json::from_str::<snap::ops::GcOutcome>(&text).map(|_| ()),
                "fsck" => serde_json::from_str::<snap::ops::FsckReport>(&text).map(|_| ()),
                "log" => serde_json::from_str::<snap::snapshot::LogEntry>(&text).map(|_| ()),
                _ => serde_json::from_str::<snap::ops::diff::Change>(&text).map(|_| ()),
            };
            parsed.map_err(|e| format!("{name}: {e}: {text}"))?;
        }
    }
    Ok(())
}
