//! The hostile archives of fixtures/oci/hostile (see fixtures/README.md): each is refused with
//! a clear error and the store is left exactly as it was. Then issue 13's hostile restores,
//! with images and artifacts built in the test (`layout.rs`): nothing escapes DEST, nothing
//! touches `.store` or `.git`, `--force` loses no unrecorded file.

use std::path::{Path, PathBuf};

use snap::ops::FsckReport;

use crate::harness::{Env, Result, stderr};
use crate::layout::{self, Member, tar_layer};

fn hostile(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/oci/hostile")
        .join(name)
}

/// Every file under .store with its size, except the advisory lock file.
fn store_listing(env: &Env) -> Result<String> {
    env.sh("find .store -path .store/LOCK -prune -o -printf '%p %s\\n' | sort")
}

#[test]
fn hostile_archives_are_refused_and_change_nothing() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    let before = store_listing(&env)?;
    let refs_before = env.ok(&["refs"])?;
    let cases = [
        ("path-traversal.tar", "unsafe path `../evil`"),
        ("absolute-path.tar", "unsafe path `/tmp/snap-evil`"),
        ("symlink-entry.tar", "link entry"),
        ("hardlink-entry.tar", "link entry"),
        ("device-entry.tar", "unexpected entry"),
        ("duplicate-entry.tar", "duplicate entry `index.json`"),
        ("unknown-entry.tar", "unexpected entry `run-me.sh`"),
        ("other-algorithm.tar", "only sha256"),
        ("bad-digest.tar", "does not match its name"),
        ("size-lie.tar", "but its descriptor says 999"),
        (
            "absurd-size.tar",
            "but its descriptor says 4611686018427387904",
        ),
        ("missing-blob.tar", "missing from the layout"),
        ("truncated.tar", "truncated"),
        ("deep-index.tar", "nest deeper than 8 levels"),
        ("many-missing.tar.zst", "missing from the layout"),
        ("legacy-artifact-manifest.tar", "image-spec 1.1 withdrew"),
        ("not-a-snap-pack.tar", "is not a snap pack"),
        // issue 13: a large blob past the bomb limit is hashed, not written; this one's bytes
        // do not match its name.
        ("bomb.tar.zst", "does not match its name"),
        ("bomb-many-blobs.tar.zst", "expands to more than"),
        ("incomplete-snapshot.tar", "is not in its layers"),
    ];
    for (file, expected) in cases {
        let path = hostile(file);
        let out = env.run(&["import", path.to_str().ok_or("utf8")?], 2)?;
        let err = stderr(&out);
        assert!(err.starts_with("error: "), "{file}: {err}");
        assert!(
            err.contains(expected),
            "{file}: expected `{expected}` in: {err}"
        );
        assert_eq!(
            store_listing(&env)?,
            before,
            "{file} left something in the store"
        );
        assert_eq!(env.ok(&["refs"])?, refs_before, "{file} moved a ref");
    }
    let r: FsckReport = env.json(&["fsck"])?;
    assert!(r.is_clean(), "{:?}", r.problems);
    Ok(())
}

#[test]
fn hostile_content_is_imported_but_never_restored_outside_the_destination() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    let _ = std::fs::remove_file("/tmp/snap-escaped.txt");
    for (file, expected) in [
        ("restore-title-traversal.tar", "unsafe path"),
        ("restore-title-absolute.tar", "unsafe path"),
        ("restore-layer-traversal.tar", "unsafe path"),
        ("restore-layer-through-symlink.tar", "through a symlink"),
    ] {
        let path = hostile(file);
        env.ok(&[
            "import",
            "--ref",
            "x",
            "--force",
            path.to_str().ok_or("utf8")?,
        ])?;
        let out = env.run(&["restore", "x", "dest/out"], 2)?;
        assert!(stderr(&out).contains(expected), "{file}: {}", stderr(&out));
        assert!(!env.join("dest/out").exists(), "{file}: nothing restored");
        assert!(
            !env.join("escaped.txt").exists() && !env.join("dest/escaped.txt").exists(),
            "{file} escaped"
        );
        assert!(
            !Path::new("/tmp/snap-escaped.txt").exists(),
            "{file} escaped to /tmp"
        );
        assert!(
            !Path::new("/tmp/escaped.txt").exists()
                || std::fs::read_to_string("/tmp/escaped.txt")? != "escape\n",
            "{file} wrote through a symlink"
        );
    }
    Ok(())
}

/// Writes `a` as a layout under `layouts/TAG` and imports it into the store found from `cwd`
/// as the head `TAG`.
fn import_in(env: &Env, cwd: &Path, tag: &str, a: &layout::Artifact) -> Result {
    let dir = env.join("layouts").join(tag);
    layout::write(&dir, a, None)?;
    let out = env
        .snap_in(cwd)
        .args(["import", "--ref", tag, dir.to_str().ok_or("utf8")?])
        .output()?;
    assert!(out.status.success(), "import {tag}: {}", stderr(&out));
    Ok(())
}

/// Imports `a` untagged into the store found from `cwd` and returns its digest: a store whose
/// refs are all snap snapshots stays `fsck`-clean (fsck reads every head as a snapshot).
fn import_untagged(env: &Env, cwd: &Path, a: &layout::Artifact) -> Result<String> {
    let digest = snap::Digest::of(&a.manifest).to_string();
    let dir = env.join("layouts").join(&digest[7..]);
    layout::write(&dir, a, None)?;
    let out = env
        .snap_in(cwd)
        .args(["import", dir.to_str().ok_or("utf8")?])
        .output()?;
    assert!(out.status.success(), "import {digest}: {}", stderr(&out));
    Ok(digest)
}

/// Every path below `dir` (but the store's advisory lock) with its type, mode, size, symlink
/// target and content digest: what "nothing changed" is checked against.
fn listing(env: &Env, dir: &str) -> Result<String> {
    env.sh(&format!(
        "cd {dir} && find . -path ./.store/LOCK -prune -o -printf '%y %m %s %p -> %l\\n' | sort \
         && find . -type f ! -path ./.store/LOCK -exec sha256sum {{}} + | sort"
    ))
}

// issue 13 (item 1): a whiteout of ``, `.` or `..` (`.wh.`, `.wh..`, `.wh...`) names no
// entry; restore refuses the image and deletes nothing, beside DEST or in it — before, `.wh...`
// deleted DEST's parent, and with --force the command reported success.
#[test]
fn whiteouts_of_dot_entries_are_refused_and_delete_nothing() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    env.write("sandbox/sibling.txt", "next to DEST\n")?;
    env.write("sandbox/dest/mine.txt", "already in DEST\n")?;
    let before = listing(&env, "sandbox")?;
    for (i, whiteout) in [".wh...", ".wh..", ".wh.", "a/.wh...", "a/.wh.."]
        .into_iter()
        .enumerate()
    {
        let tag = format!("wh{i}");
        let layer = tar_layer(&[Member::file("a/f", b"f\n"), Member::empty(whiteout)])?;
        import_in(&env, env.path(), &tag, &layout::image(&[layer]))?;
        for args in [
            vec!["restore", "--force", &tag, "sandbox/dest"],
            vec!["restore", &tag, "sandbox/dest/new"],
        ] {
            let out = env.snap().args(&args).output()?;
            assert_eq!(
                listing(&env, "sandbox")?,
                before,
                "{args:?} changed the sandbox: {}",
                stderr(&out)
            );
            assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
            assert!(
                stderr(&out).contains(&format!("unsafe path `{whiteout}`")),
                "{args:?}: {}",
                stderr(&out)
            );
        }
    }
    Ok(())
}

// issue 13 (item 1): an image is assembled apart from DEST, so with --force its whiteouts
// undo only what its own earlier layers wrote — before, `.wh.NAME` and `.wh..wh..opq` removed
// what DEST held.
#[test]
fn whiteouts_never_remove_what_dest_held_before() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    env.write("dest/keep.txt", "mine\n")?;
    env.write("dest/dir/inner.txt", "mine too\n")?;
    env.write("dest/a/own.txt", "and this\n")?;
    let lower = tar_layer(&[Member::file("a/x", b"x\n"), Member::file("b", b"b\n")])?;
    let upper = tar_layer(&[
        Member::empty(".wh.keep.txt"),
        Member::empty(".wh.b"),
        Member::empty("dir/.wh..wh..opq"),
        Member::empty("a/.wh..wh..opq"),
        Member::file("a/y", b"y\n"),
    ])?;
    import_in(&env, env.path(), "img", &layout::image(&[lower, upper]))?;
    env.ok(&["restore", "--force", "img", "dest"])?;
    assert_eq!(
        env.sh("cd dest && find . | sort")?,
        ".\n./a\n./a/own.txt\n./a/y\n./dir\n./dir/inner.txt\n./keep.txt\n",
        "the image's own `a/x` and `b` are whited out; DEST's files stay"
    );
    Ok(())
}

// issue 13 (item 2): restoring into the store root (a clone holding only `.store`) never
// deletes or rewrites the store and never writes `.git` — before, `.wh..wh..opq` and
// `.wh..store` deleted the store, an ORAS title `.store/refs/heads/latest` rewrote a ref with no
// lock and no reflog line, and a title `.git/hooks/post-checkout` wrote a git hook.
#[test]
fn restore_into_the_store_root_never_touches_the_store_or_git() -> Result {
    let env = Env::new()?;
    let clone = env.join("clone");
    std::fs::create_dir(&clone)?;
    env.snap_in(&clone).arg("init").assert().success();
    // A ref and its reflog to keep intact: a snapshot committed from elsewhere into this store.
    env.write("work/f.txt", "f\n")?;
    env.ok(&["--store", "clone/.store", "commit", "work"])?;
    let refused = [
        ".store/refs/heads/latest",
        ".git/hooks/post-checkout",
        ".GIT/config",
        "sub/.Git/hooks/pre-commit",
        ".store./format",
        "STORE~1/format",
        "git~1/config",
        ".g\u{200c}it/config",
    ];
    let mut titles = Vec::new();
    for title in refused {
        let a = layout::oras(&[("ok.txt", b"fine\n"), (title, b"#!/bin/sh\necho pwned\n")]);
        titles.push(import_untagged(&env, &clone, &a)?);
    }
    let skipped = [
        vec![Member::empty(".wh..wh..opq"), Member::file("a", b"a\n")],
        vec![Member::file("a", b"a\n"), Member::empty(".wh..store")],
        vec![Member::file("a", b"a\n"), Member::empty(".wh..git")],
        vec![
            Member::file("a", b"a\n"),
            Member::file(".store/refs/heads/evil", b"sha256:0\n"),
            Member::Dir(".git/hooks".into()),
            Member::file(".git/hooks/post-checkout", b"#!/bin/sh\n"),
            Member::empty(".store/.wh..wh..opq"),
            Member::Hardlink("h".into(), ".store/format".into()),
        ],
    ];
    let mut images = Vec::new();
    for members in &skipped {
        images.push(import_untagged(
            &env,
            &clone,
            &layout::image(&[tar_layer(members)?]),
        )?);
    }
    let store_before = listing(&env, "clone/.store")?;
    let refs_before = env.snap_in(&clone).arg("refs").output()?.stdout;
    let check = |what: &str| -> Result {
        assert_eq!(
            listing(&env, "clone/.store")?,
            store_before,
            "{what}: store changed"
        );
        assert_eq!(
            env.snap_in(&clone).arg("refs").output()?.stdout,
            refs_before,
            "{what}: a ref moved"
        );
        assert!(!clone.join(".git").exists(), "{what}: wrote .git");
        Ok(())
    };
    for (title, digest) in refused.iter().zip(&titles) {
        let out = env
            .snap_in(&clone)
            .args(["restore", digest, "."])
            .output()?;
        check(title)?;
        assert_eq!(out.status.code(), Some(2), "{title}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("reserved name"),
            "{title}: {}",
            stderr(&out)
        );
        assert_eq!(
            env.sh("ls -A clone")?,
            ".store\n",
            "{title}: nothing written"
        );
    }
    for (i, digest) in images.iter().enumerate() {
        let out = env
            .snap_in(&clone)
            .args(["--json", "restore", digest, "."])
            .output()?;
        check(&format!("image{i}"))?;
        assert!(out.status.success(), "image{i}: {}", stderr(&out));
        let outcome: snap::ops::RestoreOutcome = serde_json::from_slice(&out.stdout)?;
        assert_eq!(std::fs::read(clone.join("a"))?, b"a\n", "image{i}");
        assert_eq!(env.sh("ls -A clone")?, ".store\na\n", "image{i}");
        assert!(
            i == 0 || outcome.stats.skipped >= 1,
            "image{i}: {outcome:?}"
        );
        std::fs::remove_file(clone.join("a"))?;
    }
    let r: FsckReport = serde_json::from_slice(
        &env.snap_in(&clone)
            .args(["--json", "fsck"])
            .output()?
            .stdout,
    )?;
    assert!(r.is_clean(), "{:?}", r.problems);
    Ok(())
}

// issue 13 (item 2): the store in use is left alone under any name (`--store`), and a
// destination inside the store is refused.
#[test]
fn a_store_under_another_name_is_left_alone() -> Result {
    let env = Env::new()?;
    env.ok(&["--store", "state", "init"])?;
    let title = layout::oras(&[("state/refs/heads/evil", b"sha256:0\n")]);
    import_in_store(&env, "title", &title)?;
    let layer = tar_layer(&[
        Member::file("a", b"a\n"),
        Member::file("State/format", b"x\n"),
    ])?;
    import_in_store(&env, "image", &layout::image(&[layer]))?;
    let before = listing(&env, "state")?;
    let out = env.run(&["--store", "state", "restore", "--force", "title", "."], 2)?;
    assert!(
        stderr(&out).contains("would write into"),
        "{}",
        stderr(&out)
    );
    env.ok(&["--store", "state", "restore", "--force", "image", "."])?;
    assert_eq!(std::fs::read(env.join("a"))?, b"a\n");
    let out = env.run(
        &["--store", "state", "restore", "image", "state/refs/new"],
        2,
    )?;
    assert!(
        stderr(&out).contains("is inside the store"),
        "{}",
        stderr(&out)
    );
    assert_eq!(listing(&env, "state")?, before, "the store changed");
    Ok(())
}

fn import_in_store(env: &Env, tag: &str, a: &layout::Artifact) -> Result {
    let dir = env.join("layouts").join(tag);
    layout::write(&dir, a, None)?;
    env.ok(&[
        "--store",
        "state",
        "import",
        "--ref",
        tag,
        dir.to_str().ok_or("utf8")?,
    ])?;
    Ok(())
}

// issue 13 (item 6): `restore --force` never deletes a directory holding files the snapshot
// does not record: where the snapshot has a file or symlink and DEST a non-empty directory,
// it refuses before writing anything, naming the directory — before, the directory and
// everything in it went. An empty directory is replaced.
#[test]
fn force_never_deletes_a_directory_of_unrecorded_files() -> Result {
    let env = Env::new()?;
    env.write("src/a.txt", "a\n")?;
    env.write("src/x", "x\n")?;
    std::os::unix::fs::symlink("a.txt", env.join("src/l"))?;
    env.ok(&["commit", "src"])?;
    for (dir, file) in [
        ("out/src/x", "out/src/x/mine.txt"),
        ("out/src/l", "out/src/l/mine.txt"),
    ] {
        std::fs::remove_dir_all(env.join("out")).ok();
        env.write(file, "unrecorded\n")?;
        let before = listing(&env, "out")?;
        let out = env
            .snap()
            .args(["restore", "--force", "latest", "out"])
            .output()?;
        assert_eq!(listing(&env, "out")?, before, "nothing written");
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "{}: it holds files the snapshot does not record",
                env.join(dir).display()
            )),
            "{err}"
        );
        assert!(err.contains("hint: "), "{err}");
        std::fs::remove_file(env.join(file))?;
        env.ok(&["restore", "--force", "latest", "out"])?;
        env.sh("diff -r --no-dereference src out/src")?;
    }
    Ok(())
}

// issue 13: nothing is written, removed or hard-linked through a symlink, whether DEST held it
// or a layer just made it; special files are skipped and counted.
#[test]
fn nothing_goes_through_a_symlink_and_special_files_are_skipped() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    env.write("outside/secret.txt", "outside DEST\n")?;
    let outside = env.join("outside").display().to_string();
    let cases = [
        vec![
            Member::Symlink("l".into(), outside.clone()),
            Member::Hardlink("h".into(), "l/secret.txt".into()),
        ],
        vec![
            Member::Symlink("l".into(), "../outside".into()),
            Member::file("l/evil.txt", b"evil\n"),
        ],
        vec![
            Member::Symlink("l".into(), "../outside".into()),
            Member::empty("l/.wh.secret.txt"),
        ],
        vec![
            Member::Symlink("l".into(), "../outside".into()),
            Member::Dir("l/sub".into()),
        ],
    ];
    let before = listing(&env, "outside")?;
    for (i, members) in cases.iter().enumerate() {
        let tag = format!("link{i}");
        import_in(
            &env,
            env.path(),
            &tag,
            &layout::image(&[tar_layer(members)?]),
        )?;
        let out = env.run(&["restore", &tag, &format!("dest{i}")], 2)?;
        assert!(
            stderr(&out).contains("through a symlink"),
            "{members:?}: {}",
            stderr(&out)
        );
        assert!(!env.join(&format!("dest{i}")).exists(), "{members:?}");
        assert_eq!(listing(&env, "outside")?, before, "{members:?}");
    }
    let special = tar_layer(&[Member::Fifo("pipe".into()), Member::file("a", b"a\n")])?;
    import_in(&env, env.path(), "fifo", &layout::image(&[special]))?;
    let out: snap::ops::RestoreOutcome = env.json(&["restore", "fifo", "fifo-out"])?;
    assert_eq!((out.stats.files, out.stats.skipped), (1, 1));
    assert!(!env.join("fifo-out/pipe").exists());
    Ok(())
}

// issue 13 (item 9, for layers): image layers were read with the `tar` crate, which reads a PAX
// record whole into memory whatever it declares; a small layer holding one 256 MiB record
// drove `restore` (and `ls`) to hundreds of MB. Layers now go through snap's bounded reader:
// the record is refused from its header, nothing is written, and the process stays small.
#[test]
fn a_layer_with_a_huge_pax_record_is_refused_in_bounded_memory() -> Result {
    use std::io::Write;
    let env = Env::new()?;
    env.ok(&["init"])?;
    let record_len: u64 = 256 << 20;
    let mut z = zstd::stream::Encoder::new(Vec::new(), 1)?;
    z.write_all(&crate::import::raw_header("PaxHeader", b'x', record_len))?;
    let fill = vec![b'9'; 1 << 20];
    for _ in 0..256 {
        z.write_all(&fill)?;
    }
    let image = layout::image(&[z.finish()?]);
    let digest = import_untagged(&env, env.path(), &image)?;
    for args in [
        ["restore", digest.as_str(), "out"],
        ["ls", digest.as_str(), ""],
    ] {
        let args: Vec<&str> = args.into_iter().filter(|a| !a.is_empty()).collect();
        let (code, max_rss_kib, err) = env.peak_memory(&args)?;
        assert_eq!(code, 2, "{args:?}: {err}");
        assert!(
            err.lines()
                .next()
                .is_some_and(|l| l.starts_with("error: ") && l.contains("PAX extended header")),
            "{args:?}: {err}"
        );
        assert!(
            max_rss_kib < 64 << 10,
            "{args:?} peaked at {max_rss_kib} KiB of memory"
        );
    }
    assert!(!env.join("out").exists(), "nothing restored");
    Ok(())
}
