//! `snap export --oci` and `snap import`: round trips, determinism, conflicts.

use snap::ops::import::{ImportOutcome, RefUpdate};
use snap::ops::{CommitOutcome, ExportOutcome};
use snap::snapshot::LogEntry;

use crate::harness::{Env, Result, stderr};

const FORMATS: [&str; 4] = ["layout", "out.tar", "out.tar.gz", "out.tar.zst"];

/// A store with a grouped snapshot (three versions) and a direct one.
fn source() -> Result<Env> {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.sh("mkdir -p big && for i in $(seq 1 120); do seq 1 $i > big/f$i; done && ln -s f1 big/link && mkdir -p big/empty && chmod +x big/f7")?;
    for v in 1..=3 {
        env.write("big/version.txt", format!("v{v}"))?;
        env.ok(&["commit", "big", "-m", &format!("big v{v}")])?;
    }
    env.ok(&["commit", "demo", "--ref", "small", "-m", "direct mode"])?;
    Ok(env)
}

fn log(env: &Env, rev: &str) -> Result<Vec<LogEntry>> {
    env.ok(&["--json", "log", rev])?
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            Ok(serde_json::from_value(v["data"].clone())?)
        })
        .collect()
}

#[test]
fn export_import_round_trips_every_format_with_history() -> Result {
    let src = source()?;
    let latest: CommitOutcome = src.json(&["commit", "big"])?;
    for name in FORMATS {
        let out = src.join(name);
        let e: ExportOutcome = src.json(&[
            "export",
            "--oci",
            "latest",
            "small",
            "--with-history",
            "-o",
            out.to_str().ok_or("utf8")?,
        ])?;
        assert_eq!(e.manifests.len(), 4, "two tagged + two ancestors");
        assert_eq!(e.manifests[0].tag.as_deref(), Some("latest"));
        let dst = Env::new()?;
        let i: ImportOutcome = dst.json(&["import", out.to_str().ok_or("utf8")?])?;
        assert_eq!(i.manifests, 4, "{name}");
        let refs: Vec<_> = i.refs.iter().map(|r| (r.name.as_str(), r.update)).collect();
        assert_eq!(
            refs,
            [
                ("latest", RefUpdate::Inserted),
                ("small", RefUpdate::Inserted)
            ],
            "{name}"
        );
        assert_eq!(
            i.refs[0].digest, latest.digest,
            "same digest after the trip ({name})"
        );
        assert_eq!(
            log(&dst, "latest")?,
            log(&src, "latest")?,
            "same log ({name})"
        );
        dst.ok(&["restore", "latest", "out"])?;
        dst.ok(&["restore", "small", "out2"])?;
        dst.sh(&format!(
            "diff -r --no-dereference {}/big out/big",
            src.path().display()
        ))?;
        dst.sh(&format!(
            "diff -r --no-dereference {}/demo out2/demo",
            src.path().display()
        ))?;
        let fsck: snap::ops::FsckReport = dst.json(&["fsck"])?;
        assert!(fsck.is_clean(), "{:?}", fsck.problems);
    }
    Ok(())
}

#[test]
fn exports_are_byte_identical_across_runs_and_stores() -> Result {
    let a = source()?;
    let b = source()?;
    // Different mtimes in the second store's work tree must not matter.
    b.sh("touch -d 2001-01-01 big/* demo/README.txt")?;
    b.ok(&["commit", "big", "-m", "big v3"])?;
    for name in &FORMATS[1..] {
        for env in [&a, &b] {
            env.ok(&["export", "--oci", "latest", "-o", &format!("1-{name}")])?;
            env.ok(&["export", "--oci", "latest", "-o", &format!("2-{name}")])?;
        }
        let bytes = |env: &Env, n: &str| std::fs::read(env.join(n));
        let first = bytes(&a, &format!("1-{name}"))?;
        assert_eq!(
            first,
            bytes(&a, &format!("2-{name}"))?,
            "{name}: twice in one store"
        );
        assert_eq!(
            first,
            bytes(&b, &format!("1-{name}"))?,
            "{name}: two stores"
        );
    }
    Ok(())
}

#[test]
fn import_refuses_to_move_a_ref_that_points_elsewhere() -> Result {
    let src = source()?;
    src.ok(&["export", "--oci", "latest", "-o", "x.tar"])?;
    let dst = Env::new()?;
    dst.write("other/a", "mine")?;
    let mine: CommitOutcome = dst.json(&["commit", "other"])?;
    let archive = src.join("x.tar");
    let out = dst.run(&["import", archive.to_str().ok_or("utf8")?], 3)?;
    let err = stderr(&out);
    assert!(
        err.contains(&mine.digest.to_string()),
        "names our digest: {err}"
    );
    assert!(err.contains("--force"), "{err}");
    let theirs = snap::Digest::of(
        &crate::support::snap_command(src.path(), src.path())
            .args(["show", "--manifest", "latest"])
            .output()?
            .stdout,
    );
    assert!(
        err.contains(&theirs.to_string()),
        "names their digest: {err}"
    );
    assert!(
        dst.ok(&["refs"])?.contains(&mine.digest.to_string()),
        "ref unchanged"
    );
    let forced: ImportOutcome =
        dst.json(&["import", "--force", archive.to_str().ok_or("utf8")?])?;
    assert_eq!(forced.refs[0].update, RefUpdate::Replaced);
    assert_eq!(forced.refs[0].previous, Some(mine.digest));
    let again: ImportOutcome = dst.json(&["import", archive.to_str().ok_or("utf8")?])?;
    assert_eq!(again.refs[0].update, RefUpdate::Unchanged);
    let named: ImportOutcome =
        dst.json(&["import", "--ref", "theirs", archive.to_str().ok_or("utf8")?])?;
    assert_eq!(
        (named.refs[0].name.as_str(), named.refs[0].update),
        ("theirs", RefUpdate::Inserted)
    );
    Ok(())
}

#[test]
fn a_corrupt_object_stops_the_export_and_leaves_nothing() -> Result {
    let src = source()?;
    let show: serde_json::Value = serde_json::from_str(&src.ok(&["--json", "show", "latest"])?)?;
    let layer = show["layers"][0]["digest"].as_str().ok_or("a layer")?;
    let p = src.join(&format!(
        ".store/packs/{}.pack",
        layer.trim_start_matches("sha256:")
    ));
    src.sh(&format!(
        "chmod u+w {0} && printf 'X' | dd of={0} bs=1 seek=300 conv=notrunc status=none",
        p.display()
    ))?;
    let out = src.run(&["export", "--oci", "latest", "-o", "x.tar"], 2)?;
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    assert!(!src.join("x.tar").exists(), "no partial archive");
    assert_eq!(
        src.sh("ls -A | grep -c '^.tmp-' || true")?.trim(),
        "0",
        "no temp file left"
    );
    let out = src.run(&["export", "--oci", "latest", "-o", "dir"], 2)?;
    assert!(stderr(&out).contains("corrupt"));
    assert!(!src.join("dir").exists(), "no partial directory");
    Ok(())
}

// issue 15: I/O errors named only the path (`error: …/b/f`), never what failed there.
#[test]
fn an_io_error_says_what_it_was_doing_and_where() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    env.write("file", "not a directory")?;
    for (out, op) in [
        ("file/layout", "creating a temp directory in"),
        ("file/out.tar", "creating a temp file in"),
    ] {
        let err = stderr(&env.run(&["export", "--oci", "latest", "-o", out], 2)?);
        let first = err.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("error: {op} ")) && first.ends_with("/file"),
            "{err}"
        );
    }
    Ok(())
}
