//! The hostile archives of fixtures/oci/hostile (see fixtures/README.md): each is refused with
//! a clear error and the store is left exactly as it was.

use std::path::{Path, PathBuf};

use snap::ops::FsckReport;

use crate::harness::{Env, Result, stderr};

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
