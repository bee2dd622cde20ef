use snap::ops::{CommitOutcome, RestoreOutcome};

use crate::harness::{Env, Result, stderr};

#[test]
fn restore_gives_back_bytes_modes_symlinks_and_empty_dirs() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    std::fs::create_dir_all(env.join("demo/empty/nested"))?;
    env.write("demo/graph/empty.txt", "")?;
    env.ok(&["commit", "demo"])?;
    let out: RestoreOutcome = env.json(&["restore", "latest", "out"])?;
    assert_eq!(out.stats.files, 6);
    env.sh("diff -r --no-dereference demo out/demo")?;
    assert_eq!(
        env.sh("stat -c %A out/demo/bin/query")?.trim(),
        "-rwxr-xr-x"
    );
    assert_eq!(
        env.sh("readlink out/demo/current")?.trim(),
        "graph/meta.json"
    );
    assert!(env.join("out/demo/empty/nested").is_dir());
    Ok(())
}

#[test]
fn restore_refuses_a_non_empty_destination_without_force() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    env.write("out/keep.txt", "mine")?;
    let out = env.run(&["restore", "latest", "out"], 2)?;
    assert!(stderr(&out).contains("not empty"), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "hint names the flag");
    assert_eq!(env.sh("ls out")?, "keep.txt\n", "nothing written");
    env.ok(&["restore", "--force", "latest", "out"])?;
    env.sh("diff -r --no-dereference demo out/demo")?;
    assert!(env.join("out/keep.txt").exists(), "unrelated files stay");
    Ok(())
}

#[test]
fn restore_into_an_existing_empty_directory_works() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    std::fs::create_dir(env.join("empty"))?;
    env.ok(&["restore", "latest", "empty"])?;
    env.sh("diff -r --no-dereference demo empty/demo")?;
    Ok(())
}

#[test]
fn force_never_follows_a_symlink_in_the_destination() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    std::fs::create_dir_all(env.join("victim"))?;
    std::fs::create_dir_all(env.join("out"))?;
    // out/demo is a symlink to a directory outside: restore must replace it, not write through it.
    std::os::unix::fs::symlink(env.join("victim"), env.join("out/demo"))?;
    env.ok(&["restore", "--force", "latest", "out"])?;
    assert_eq!(
        env.sh("ls -A victim")?,
        "",
        "nothing written through the symlink"
    );
    assert!(env.join("out/demo").is_dir() && !env.join("out/demo").is_symlink());
    Ok(())
}

#[test]
fn restore_of_an_older_snapshot_by_rev_syntax() -> Result {
    let env = Env::new()?;
    env.write("data/a.txt", "one")?;
    let first: CommitOutcome = env.json(&["commit", "data"])?;
    env.write("data/a.txt", "two")?;
    env.ok(&["commit", "data"])?;
    env.ok(&["restore", "latest~1", "old"])?;
    assert_eq!(std::fs::read_to_string(env.join("old/data/a.txt"))?, "one");
    let prefix = &first.digest.hex()[..10];
    env.ok(&["restore", prefix, "old2"])?;
    assert_eq!(std::fs::read_to_string(env.join("old2/data/a.txt"))?, "one");
    Ok(())
}

#[test]
fn a_directory_holding_only_a_store_counts_as_empty() -> Result {
    let env = Env::new()?;
    env.write("d/a", "one")?;
    env.ok(&["commit", "d"])?;
    // A fresh clone: its own store and nothing else (as after `snap pull` there).
    env.write("clone/.store/format", "snap-store 1\n")?;
    env.ok(&["--store", ".store", "restore", "latest", "clone"])?;
    assert_eq!(std::fs::read_to_string(env.join("clone/d/a"))?, "one");
    // Anything else there still needs --force.
    env.write("other/x", "")?;
    env.write("other/.store/format", "snap-store 1\n")?;
    env.run(&["--store", ".store", "restore", "latest", "other"], 2)?;
    Ok(())
}

// Issue 17: `--path` restores only the paths asked for (with the directories above them); a
// path the snapshot lacks is refused before anything is written.
#[test]
fn issue_17_restore_path_writes_only_those_paths() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    let out: RestoreOutcome = env.json(&[
        "restore",
        "latest",
        "out",
        "--path",
        "demo/graph",
        "--path",
        "demo/bin/query",
    ])?;
    env.sh("diff -r --no-dereference demo/graph out/demo/graph && cmp demo/bin/query out/demo/bin/query")?;
    assert_eq!(
        env.sh("ls out/demo")?,
        "bin\ngraph\n",
        "nothing else: {out:?}"
    );
    assert_eq!(env.sh("ls out/demo/bin")?, "query\n");
    let refused = env.run(&["restore", "latest", "none", "--path", "demo/nope"], 2)?;
    assert!(
        stderr(&refused).contains("`demo/nope` is not in snapshot"),
        "{}",
        stderr(&refused)
    );
    assert!(!env.join("none").exists(), "nothing written");
    Ok(())
}
