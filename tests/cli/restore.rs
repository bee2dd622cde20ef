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

// Issue 17: "partial restore from a registry (and from a layout)". `oci:DIR[:NAME]` and
// `oci-archive:FILE[:NAME]` restore from an exported layout without a store, reading only the
// layers that hold the paths; a layout whose blob is a symlink or not what its descriptor says
// is refused with nothing written, and so is a name the layout lacks.
#[test]
fn issue_17_restore_reads_a_layout_in_place_and_only_the_layers_of_its_paths() -> Result {
    let env = Env::new()?;
    // Enough bytes for several group layers (groups are cut at about 8 MiB of files).
    for i in 0..40 {
        env.write(&format!("data/a/f{i}"), format!("{i} ").repeat(150_000))?;
        env.write(&format!("data/b/g{i}"), format!("{i}. ").repeat(150_000))?;
    }
    env.ok(&["commit", "data"])?;
    env.ok(&["export", "--oci", "latest", "-o", "lay"])?;
    env.ok(&["export", "--oci", "latest", "-o", "lay.tar.zst"])?;
    for (i, source) in ["oci:lay", "oci-archive:lay.tar.zst:latest"]
        .iter()
        .enumerate()
    {
        let out_dir = format!("out{i}");
        let out: snap::ops::RemoteRestoreOutcome = env.json(&[
            "--store",
            "nowhere/.store",
            "restore",
            source,
            &out_dir,
            "--path",
            "data/a/f3",
        ])?;
        assert!(
            out.layers_fetched < out.layers,
            "{source}: only the layers of the path are read: {out:?}"
        );
        env.sh(&format!("cmp data/a/f3 {out_dir}/data/a/f3"))?;
        assert_eq!(env.sh(&format!("ls {out_dir}/data"))?, "a\n", "{source}");
        assert_eq!(env.sh(&format!("ls {out_dir}/data/a"))?, "f3\n", "{source}");
    }
    assert!(!env.join("nowhere").exists(), "no store was made");
    // The whole of it, by name.
    env.ok(&["restore", "oci:lay:latest", "whole"])?;
    env.sh("diff -r --no-dereference data whole/data")?;

    let refused = env.run(&["restore", "oci:lay:v9", "none"], 2)?;
    assert!(
        stderr(&refused).contains("no entry named `v9` (it has: latest)"),
        "{}",
        stderr(&refused)
    );
    // A layer's blob swapped for another file's bytes, then for a symlink to it.
    let blobs = env.join("lay/blobs/sha256");
    let biggest = env
        .sh("ls -S lay/blobs/sha256 | head -1")?
        .trim()
        .to_owned();
    let victim = blobs.join(&biggest);
    let len = std::fs::metadata(&victim)?.len();
    std::fs::remove_file(&victim)?;
    env.write(
        &format!("lay/blobs/sha256/{biggest}"),
        "x".repeat(usize::try_from(len)?),
    )?;
    let wrong = env.run(&["restore", "oci:lay", "none"], 2)?;
    assert!(
        stderr(&wrong).contains("is not what its descriptor says"),
        "{}",
        stderr(&wrong)
    );
    std::fs::remove_file(&victim)?;
    std::os::unix::fs::symlink(env.join("data/a/f1"), &victim)?;
    let linked = env.run(&["restore", "oci:lay", "none"], 2)?;
    assert!(
        stderr(&linked).contains("is not a regular file"),
        "{}",
        stderr(&linked)
    );
    assert!(!env.join("none").exists(), "nothing written");
    Ok(())
}
