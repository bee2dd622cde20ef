use snap::ops::{CommitOutcome, Update};

use crate::harness::{Env, Result, settle, stderr};

#[test]
fn commit_records_paths_relative_to_the_store_root_and_prints_the_digest() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["init"])?;
    let out: CommitOutcome = env.json(&["commit", "demo", "-m", "first"])?;
    assert_eq!(out.update, Update::Inserted);
    assert_eq!(out.ref_name, "latest");
    assert_eq!(out.parent, None);
    assert_eq!(
        (out.files, out.symlinks, out.dirs),
        (5, 1, 4),
        "demo/, bin, graph, graph/shards"
    );
    let plain = env.ok(&["commit", "demo", "-m", "first"])?;
    assert_eq!(
        plain.trim(),
        out.digest.to_string(),
        "stdout is the digest alone"
    );
    Ok(())
}

#[test]
fn committing_identical_content_again_reports_unchanged_and_creates_nothing() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    let first: CommitOutcome = env.json(&["commit", "demo"])?;
    let files_before = env.sh("find .store -type f | sort")?;
    let again = env.snap().args(["commit", "demo"]).output()?;
    assert!(again.status.success());
    assert!(stderr(&again).contains("Unchanged"), "{}", stderr(&again));
    let second: CommitOutcome = env.json(&["commit", "demo"])?;
    assert_eq!(second.update, Update::Unchanged);
    assert_eq!(second.digest, first.digest);
    assert_eq!(
        env.sh("find .store -type f | sort")?,
        files_before,
        "no new files in the store"
    );
    Ok(())
}

#[test]
fn a_change_makes_a_child_snapshot() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    let first: CommitOutcome = env.json(&["commit", "demo"])?;
    env.write("demo/graph/meta.json", "{\"nodes\": 4}\n")?;
    let second: CommitOutcome = env.json(&["commit", "demo", "-m", "more nodes"])?;
    assert_eq!(second.update, Update::Replaced);
    assert_eq!(second.parent, Some(first.digest));
    Ok(())
}

#[test]
fn the_same_tree_in_two_stores_has_the_same_digest() -> Result {
    let a = Env::new()?;
    let b = Env::new()?;
    a.fixture("demo", "demo")?;
    b.fixture("demo", "demo")?;
    // Different mtimes must not matter.
    b.sh("touch -d 2001-01-01 demo/README.txt demo/graph/edges.tsv")?;
    let da: CommitOutcome = a.json(&["commit", "demo", "-m", "m"])?;
    let db: CommitOutcome = b.json(&["commit", "demo", "-m", "m"])?;
    assert_eq!(da.digest, db.digest);
    Ok(())
}

#[test]
fn commit_creates_a_store_at_the_git_root_and_says_so() -> Result {
    let env = Env::new()?;
    env.sh("git init -q -b main . && mkdir -p sub/out && echo x > sub/out/f && git add -A && git commit -qm init")?;
    let out = env
        .snap_in(&env.join("sub"))
        .args(["commit", "out"])
        .output()?;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("Created"), "{}", stderr(&out));
    assert!(
        env.join(".store/format").exists(),
        "store at the git work tree root"
    );
    assert_eq!(
        std::fs::read_to_string(env.join(".store/.gitignore"))?,
        "*\n"
    );
    assert_eq!(
        env.sh("git status --porcelain --ignored .store")?,
        "!! .store/\n",
        "git ignores the store"
    );
    Ok(())
}

#[test]
fn minus_c_makes_a_directorys_contents_the_root() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "-C", "demo", "."])?;
    env.ok(&["restore", "latest", "out"])?;
    assert!(env.join("out/graph/meta.json").exists());
    assert!(!env.join("out/demo").exists());
    Ok(())
}

#[test]
fn a_path_outside_the_store_root_is_recorded_under_its_base_name() -> Result {
    let env = Env::new()?;
    let outside = Env::new()?;
    outside.fixture("demo", "index")?;
    env.ok(&["init"])?;
    env.ok(&["commit", outside.join("index").to_str().ok_or("utf8")?])?;
    env.ok(&["restore", "latest", "out"])?;
    assert!(env.join("out/index/graph/meta.json").exists());
    Ok(())
}

#[test]
fn a_large_tree_uses_few_layers_and_a_small_manifest() -> Result {
    let env = Env::new()?;
    // 3,000 small files in 30 directories, plus one large file.
    env.sh("for d in $(seq 1 30); do mkdir -p t/d$d; for f in $(seq 1 100); do echo \"file $d $f $(seq 1 $f)\" > t/d$d/f$f.txt; done; done")?;
    env.sh("head -c 20000000 /dev/urandom > t/big.bin && touch t/d1/empty t/d30/empty")?;
    let out: CommitOutcome = env.json(&["commit", "t"])?;
    assert_eq!(out.files, 3003);
    assert!(out.layers >= 2 && out.layers <= 20, "{} layers", out.layers);
    assert!(out.manifest_bytes < 8_000, "{} bytes", out.manifest_bytes);
    env.ok(&["restore", "latest", "out"])?;
    env.sh("diff -r t out/t")?;
    Ok(())
}

fn load(env: &Env, digest: &snap::Digest) -> Result<snap::snapshot::Snapshot> {
    let store = snap::store::Store::open(&env.join(".store"))?;
    Ok(snap::snapshot::Snapshot::load(&store, digest)?)
}

#[test]
fn git_provenance_is_stamped_on_the_manifest_and_the_config() -> Result {
    let env = Env::new()?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/git/make_repo.sh");
    env.sh(&format!("bash {} .", script.display()))?;
    env.write("build/index/graph.bin", "graph")?;
    let out: CommitOutcome = env.json(&["commit", "build/index", "--inputs", "src", "docs"])?;
    let snap = load(&env, &out.digest)?;
    let head = env.sh("git rev-parse HEAD")?.trim().to_owned();
    let a = &snap.manifest.manifest().annotations;
    assert_eq!(a["org.opencontainers.image.revision"], head);
    assert_eq!(
        a["org.opencontainers.image.source"],
        "https://example.com/acme/app.git"
    );
    assert_eq!(a["dev.snaptool.git.branch"], "main");
    assert_eq!(
        a["dev.snaptool.git.dirty"], "false",
        "build/ is ignored by git"
    );
    assert_eq!(
        a["org.opencontainers.image.created"],
        "2026-01-01T00:00:00Z"
    );
    let g = snap
        .config
        .provenance
        .git
        .as_ref()
        .ok_or("git provenance")?;
    assert_eq!(g.commit, head);
    let inputs: Vec<_> = snap
        .config
        .provenance
        .inputs
        .iter()
        .map(|i| (i.path.as_str(), i.tree.clone()))
        .collect();
    assert_eq!(
        inputs,
        [
            (
                "src",
                Some(env.sh("git rev-parse HEAD:src")?.trim().to_owned())
            ),
            (
                "docs",
                Some(env.sh("git rev-parse HEAD:docs")?.trim().to_owned())
            ),
        ]
    );
    Ok(())
}

#[test]
fn a_dirty_work_tree_is_marked_dirty() -> Result {
    let env = Env::new()?;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/git/make_repo.sh");
    env.sh(&format!("bash {} .", script.display()))?;
    env.write("build/out.txt", "x")?;
    env.write("src/main.rs", "fn main() { dirty() }\n")?;
    let out: CommitOutcome = env.json(&["commit", "build"])?;
    let snap = load(&env, &out.digest)?;
    assert_eq!(
        snap.manifest.manifest().annotations["dev.snaptool.git.dirty"],
        "true"
    );
    assert!(snap.config.provenance.git.as_ref().is_some_and(|g| g.dirty));
    Ok(())
}

#[test]
fn created_comes_from_source_date_epoch_and_is_absent_without_git_or_it() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let with: CommitOutcome = env.json(&["commit", "d"])?;
    assert_eq!(
        load(&env, &with.digest)?.config.created.as_deref(),
        Some("2026-01-01T00:00:00Z")
    );
    let out = env
        .snap()
        .env_remove("SOURCE_DATE_EPOCH")
        .args(["--json", "commit", "d", "--ref", "other"])
        .output()?;
    assert!(out.status.success());
    let without: CommitOutcome = serde_json::from_slice(&out.stdout)?;
    assert_eq!(
        load(&env, &without.digest)?.config.created,
        None,
        "never the wall clock"
    );
    Ok(())
}

#[test]
fn committing_the_store_root_never_records_the_store_or_git() -> Result {
    let env = Env::new()?;
    env.sh("git init -q -b main .")?;
    env.fixture("demo", "demo")?;
    env.ok(&["init"])?;
    env.ok(&["commit", "."])?;
    let all = env.ok(&["ls", "-r", "latest"])?;
    assert!(!all.contains(".store") && !all.contains(".git/"), "{all}");
    assert!(all.contains("demo/graph/meta.json"), "{all}");
    Ok(())
}

#[test]
fn gnu_tar_and_zstd_unpack_the_group_layers_into_the_same_tree() -> Result {
    // The packs are the layers: extracting every tar+zstd layer in manifest order with the
    // standard tools reproduces the files, modes, symlinks and empty directories.
    assert!(
        std::process::Command::new("zstd")
            .arg("--version")
            .output()
            .is_ok(),
        "this test needs zstd, which is not installed: apt-get install -y zstd (or run ./test)"
    );
    let env = Env::new()?;
    env.fixture("demo", "t")?;
    env.sh("mkdir -p t/empty/dir && for i in $(seq 1 80); do seq 1 $i > t/graph/f$i; done")?;
    env.sh("head -c 9000000 /dev/urandom > t/big.bin")?;
    let out: CommitOutcome = env.json(&["commit", "t"])?;
    let snap = load(&env, &out.digest)?;
    std::fs::create_dir(env.join("unpacked"))?;
    let mut group_layers = 0;
    for layer in &snap.manifest.manifest().layers {
        if layer.media_type == snap::oci::MEDIA_TYPE_LAYER_TAR_ZSTD {
            group_layers += 1;
            env.sh(&format!(
                "zstd -dc .store/packs/{}.pack | tar -x -C unpacked",
                layer.digest.hex()
            ))?;
        }
    }
    assert!(group_layers >= 2, "a group and the large file's own pack");
    env.sh("diff -r --no-dereference t unpacked/t")?;
    assert_eq!(
        env.sh("stat -c %A unpacked/t/bin/query")?.trim(),
        "-rwxr-xr-x"
    );
    assert!(env.join("unpacked/t/empty/dir").is_dir());
    Ok(())
}

#[test]
fn the_stat_cache_skips_unchanged_files_and_misses_no_change() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    let age = "find demo -exec touch -h -d '2020-01-01 00:00:00' {} +";
    env.sh(age)?;
    settle();
    let first: CommitOutcome = env.json(&["commit", "demo"])?;
    assert_eq!(first.files_read, 5);
    let again: CommitOutcome = env.json(&["commit", "demo"])?;
    assert_eq!(again.update, Update::Unchanged);
    assert_eq!(again.files_read, 0, "an unchanged tree is not read");

    // Same size, same mtime, other bytes: the ctime gives it away.
    env.sh("printf X | dd of=demo/graph/meta.json bs=1 conv=notrunc status=none")?;
    env.sh("touch -d '2020-01-01 00:00:00' demo/graph/meta.json")?;
    let changed: CommitOutcome = env.json(&["commit", "demo"])?;
    assert_eq!(changed.update, Update::Replaced);
    assert!(
        env.ok(&["cat", "latest", "demo/graph/meta.json"])?
            .starts_with('X')
    );

    // Replaced by another file (a new inode) with the same size and times.
    env.sh("cp -p demo/graph/meta.json m && printf Y | dd of=m bs=1 conv=notrunc status=none && touch -d '2020-01-01 00:00:00' m && mv m demo/graph/meta.json")?;
    let renamed: CommitOutcome = env.json(&["commit", "demo"])?;
    assert_eq!(renamed.update, Update::Replaced);
    assert!(
        env.ok(&["cat", "latest", "demo/graph/meta.json"])?
            .starts_with('Y')
    );

    // A file changed twice within one timestamp tick, keeping its size: it was too new to be
    // cached the first time, so the second change is seen.
    env.write("demo/fresh.txt", "aaaa")?;
    let one: CommitOutcome = env.json(&["commit", "demo"])?;
    env.write("demo/fresh.txt", "bbbb")?;
    env.sh("touch -r demo/graph demo/fresh.txt -d \"$(stat -c %y demo/fresh.txt)\"")?;
    let two: CommitOutcome = env.json(&["commit", "demo"])?;
    assert_ne!(one.digest, two.digest);
    assert_eq!(env.ok(&["cat", "latest", "demo/fresh.txt"])?, "bbbb");

    // A damaged cache is ignored.
    env.sh(age)?;
    settle();
    env.ok(&["commit", "demo"])?;
    env.write(".store/cache/trees.v2", "snap-tree-cache 2\nzz\n")?;
    let fingerprint_gone: CommitOutcome = env.json(&["commit", "demo"])?;
    assert_eq!(
        (fingerprint_gone.update, fingerprint_gone.files_read),
        (Update::Unchanged, 0),
        "the per-file records still know every file"
    );
    env.write(".store/cache/stat.v4", "snap-stat-cache 4\nnot a record\n")?;
    env.write(".store/cache/trees.v2", "junk")?;
    let after: CommitOutcome = env.json(&["commit", "demo"])?;
    assert_eq!(after.update, Update::Unchanged);
    assert_eq!(after.files_read, 6);
    let r: snap::ops::FsckReport = env.json(&["fsck"])?;
    assert!(r.is_clean(), "{:?}", r.problems);
    Ok(())
}

/// Every path `snap ls -r`-style listing of a snapshot: walks `snap ls` recursively.
fn recorded(env: &Env, rev: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut dirs = vec![String::new()];
    while let Some(d) = dirs.pop() {
        let args: Vec<&str> = if d.is_empty() {
            vec!["--json", "ls", rev]
        } else {
            vec!["--json", "ls", rev, &d]
        };
        for line in env.ok(&args)?.lines() {
            let v: serde_json::Value = serde_json::from_str(line)?;
            let path = v["data"]["path"].as_str().ok_or("path")?.to_owned();
            if v["data"]["type"] == "dir" {
                dirs.push(path.clone());
            }
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn snapignore_files_exclude_and_re_include_like_gitignore() -> Result {
    let env = Env::new()?;
    env.write(".snapignore", "*.tmp\n!keep.tmp\n")?;
    env.write("out/a.txt", "a")?;
    env.write("out/b.tmp", "b")?;
    env.write("out/keep.tmp", "k")?;
    env.write("out/cache/big", "c")?;
    env.write("out/sub/.snapignore", "/local\n")?;
    env.write("out/sub/local", "l")?;
    env.write("out/sub/deep/local", "d")?;
    env.write("out/.gitignore", "a.txt\n")?;
    env.ok(&["commit", "out", "--exclude", "out/cache/"])?;
    assert_eq!(
        recorded(&env, "latest")?,
        [
            "out",
            "out/.gitignore",
            "out/a.txt",
            "out/keep.tmp",
            "out/sub",
            "out/sub/.snapignore",
            "out/sub/deep",
            "out/sub/deep/local",
        ]
    );
    // .gitignore only when asked; .snapignore has the last word.
    env.write("out/.snapignore", "!a.txt\nkeep.tmp\n")?;
    env.write("out/.gitignore", "a.txt\nsub/\n")?;
    env.ok(&["commit", "out", "--gitignore"])?;
    let got = recorded(&env, "latest")?;
    assert!(got.contains(&"out/a.txt".to_owned()), "{got:?}");
    assert!(!got.iter().any(|p| p.starts_with("out/sub")), "{got:?}");
    assert!(!got.contains(&"out/keep.tmp".to_owned()), "{got:?}");
    assert!(
        got.contains(&"out/cache/big".to_owned()),
        "--exclude is per commit: {got:?}"
    );
    Ok(())
}

#[test]
fn a_path_given_on_the_command_line_is_recorded_even_if_ignored() -> Result {
    let env = Env::new()?;
    env.write(".snapignore", "build/\n*.bin\n")?;
    env.write("build/model.bin", "m")?;
    env.write("build/notes.txt", "n")?;
    env.ok(&["commit", "build"])?;
    assert_eq!(recorded(&env, "latest")?, ["build", "build/notes.txt"]);
    let out = env.run(&["commit", "build", "--exclude", "{a,b"], 2)?;
    assert!(
        stderr(&out).contains("--exclude `{a,b`: error parsing glob"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn verbose_says_what_was_read_and_quiet_says_nothing() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.write("d/b", "2")?;
    // Old enough that the stat cache trusts it (a file changed within 2 s of the cache being
    // written is always read again: the racy case).
    env.sh("touch -d '2020-01-01' d/a")?;
    env.ok(&["commit", "d"])?;
    env.write("d/b", "3")?;
    let out = env.run(&["commit", "d", "-v"], 0)?;
    let err = stderr(&out);
    assert!(err.contains("Read 1 of 2 files"), "{err}");
    assert!(err.contains("Stored"), "{err}");
    env.write("d/b", "4")?;
    let out = env.run(&["commit", "d", "-q"], 0)?;
    assert_eq!(stderr(&out), "");
    Ok(())
}

// issue 13 (item 4): `snap commit .store` recorded the store itself; restoring that snapshot
// then rewound a ref, truncated its reflog, and gc removed the newer snapshot.
#[test]
fn issue13_commit_refuses_to_record_the_store_itself() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let first: CommitOutcome = env.json(&["commit", "d"])?;
    let refs = env.ok(&["refs"])?;
    for args in [
        vec!["commit", ".store"],
        vec!["commit", ".store/refs"],
        vec!["commit", ".store/."],
        vec!["commit", "d", ".store/logs/heads/latest"],
        vec!["commit", "-C", ".store", "."],
    ] {
        let out = env.run(&args, 2)?;
        assert!(
            stderr(&out).contains("refusing to record the store itself"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("see: snap explain commit-store"),
            "{}",
            stderr(&out)
        );
    }
    let out = env
        .snap_in(&env.join(".store"))
        .args(["commit", "."])
        .output()?;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(env.ok(&["refs"])?, refs, "no ref moved");
    assert!(env.ok(&["log"])?.contains(&first.digest.to_string()));
    // Found inside a committed directory, the store is left out, as before.
    env.ok(&["commit", "."])?;
    assert_eq!(recorded(&env, "latest")?, ["d", "d/a", "home"]);
    Ok(())
}

// issue 13: restore refuses `.git` and `.store` in any letter case, so commit must not record
// them either (it skipped `.git` exactly, and recorded `.GIT/hooks/…` and `.Store`).
#[test]
fn issue13_commit_skips_git_and_store_entries_in_any_letter_case() -> Result {
    let env = Env::new()?;
    for f in [
        "d/a",
        "d/.GIT/hooks/post-checkout",
        "d/sub/.Store/refs/heads/latest",
        "d/sub/.git",
        "d/.gitignore",
        "d/.git2/x",
        "d/x.store",
        "d/.git./x",
        "d/GIT~1/x",
        "d/store~1",
    ] {
        env.write(f, "1")?;
    }
    env.ok(&["commit", "d"])?;
    assert_eq!(
        recorded(&env, "latest")?,
        [
            "d",
            "d/.git2",
            "d/.git2/x",
            "d/.gitignore",
            "d/a",
            "d/sub",
            "d/x.store"
        ]
    );
    for root in ["d/.GIT", "d/.GIT/hooks", "d/sub/.Store"] {
        let out = env.run(&["commit", root], 2)?;
        assert!(
            stderr(&out).contains("which are never recorded"),
            "{root}: {}",
            stderr(&out)
        );
    }
    Ok(())
}

// issue 13 (item 5): the stat cache wrote paths raw, one record per line, so a directory
// named `a\n<record>` forged a record: a later commit recorded good.txt (GOOD) as EVIL.
#[test]
fn issue13_stat_cache_records_cannot_be_forged_by_file_names() -> Result {
    use std::os::unix::fs::MetadataExt;
    let env = Env::new()?;
    let root = env.path().canonicalize()?;
    env.write("good.txt", "GOOD")?;
    env.sh("touch -d '2020-01-01' good.txt")?;
    let m = std::fs::symlink_metadata(root.join("good.txt"))?;
    let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
    let attack = format!(
        "a\n{} {} {} {} {} {} ",
        snap::Digest::of(b"EVIL").hex(),
        m.len(),
        ns(m.mtime(), m.mtime_nsec()),
        ns(m.ctime(), m.ctime_nsec()),
        m.ino(),
        m.dev()
    );
    // `<root>/a\n<record> /<root>/good.txt`: read as a line of its own, the tail of this
    // path is a record for the real good.txt.
    let evil = root
        .join(&attack)
        .join(root.strip_prefix("/")?)
        .join("good.txt");
    std::fs::create_dir_all(evil.parent().ok_or("parent")?)?;
    #[allow(clippy::disallowed_methods)] // a test fixture
    std::fs::write(&evil, "EVIL")?;
    let touch = std::process::Command::new("touch")
        .args(["-d", "2020-01-01"])
        .arg(&evil)
        .status()?;
    assert!(touch.success());
    env.ok(&["commit", &attack])?;
    env.ok(&["commit", "good.txt"])?;
    assert_eq!(env.ok(&["cat", "latest", "good.txt"])?, "GOOD");
    env.ok(&["fsck"])?;
    Ok(())
}

// issue 13 (item 5): any newline in a name made the whole stat cache unreadable.
#[test]
fn issue13_files_with_newlines_in_their_names_are_cached() -> Result {
    let env = Env::new()?;
    env.write("n/a\nb", "x")?;
    env.write("n/c", "1")?;
    env.sh("touch -d '2020-01-01' n/a* n/c")?;
    settle();
    let first: CommitOutcome = env.json(&["commit", "n"])?;
    assert_eq!(first.files_read, 2);
    env.write("n/c", "2")?;
    let second: CommitOutcome = env.json(&["commit", "n"])?;
    assert_eq!(
        second.files_read, 1,
        "only the changed file is read: the one with a newline came from the cache"
    );
    assert_eq!(env.ok(&["cat", "latest", "n/a\nb"])?, "x");
    Ok(())
}
