//! Stores and exports written by store format version 1 (per-member frames, `SNAPIDX1`
//! indexes; `fixtures/v1/`, made by `fixtures/v1/make.sh` with snap at 28b8175) stay readable,
//! and a version 1 store is upgraded when snap works in it (store format §2).

use crate::harness::{Env, Result, stderr};

const V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/v1");

fn format(env: &Env) -> Result<String> {
    Ok(std::fs::read_to_string(env.join(".store/format"))?)
}

/// Checks `dir` holds exactly the files `fixtures/v1/tree.sha256` lists.
fn same_as_fixture_tree(env: &Env, dir: &str) -> Result {
    env.sh(&format!(
        "cd {dir} && sha256sum --quiet -c {V1}/tree.sha256"
    ))?;
    let listed = std::fs::read_to_string(format!("{V1}/tree.sha256"))?
        .lines()
        .count();
    let found = env.sh(&format!("cd {dir} && find . -type f | wc -l"))?;
    assert_eq!(found.trim(), listed.to_string(), "no extra files in {dir}");
    Ok(())
}

#[test]
fn a_version_1_store_reads_as_is_and_is_upgraded_when_written() -> Result {
    let env = Env::new()?;
    env.sh(&format!("tar -xf {V1}/store.tar"))?;
    assert_eq!(format(&env)?, "snap-store 1\n");
    let indexes = || env.sh("head -c 8 -q .store/packs/*.idx | fold -w 8 | sort | uniq -c");

    // fsck reads it as it is, and changes nothing.
    let out = env.ok(&["fsck"])?;
    assert!(out.is_empty() || !out.contains("problem"), "{out}");
    assert_eq!(format(&env)?, "snap-store 1\n");
    assert_eq!(indexes()?.trim(), "2 SNAPIDX1");

    // Working in it says version 2 first; the old packs restore byte for byte.
    env.ok(&["restore", "latest", "out"])?;
    assert_eq!(format(&env)?, "snap-store 2\n");
    same_as_fixture_tree(&env, "out/tree")?;

    // A new version next to the old one: new packs get version 2 indexes.
    env.write("out/tree/docs/new.txt", "new\n".repeat(50))?;
    env.ok(&["commit", "-C", "out", "tree"])?;
    env.ok(&["fsck"])?;
    let kinds = indexes()?;
    assert!(
        kinds.contains("SNAPIDX1") && kinds.contains("SNAPIDX2"),
        "{kinds}"
    );
    env.ok(&["restore", "latest~1", "again"])?;
    same_as_fixture_tree(&env, "again/tree")?;
    Ok(())
}

#[test]
fn a_version_1_export_imports() -> Result {
    let env = Env::new()?;
    env.ok(&["import", &format!("{V1}/export.tar")])?;
    env.ok(&["fsck"])?;
    env.ok(&["restore", "latest", "out"])?;
    same_as_fixture_tree(&env, "out/tree")?;
    Ok(())
}

#[test]
fn an_unknown_store_version_is_refused_by_name() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    env.write(".store/format", "snap-store 3\n")?;
    let out = env.run(&["log"], 2)?;
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: ") && first.contains("says `snap-store 3`"),
        "{err}"
    );
    Ok(())
}
