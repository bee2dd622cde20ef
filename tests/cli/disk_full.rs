//! A commit on a full filesystem fails with a clear error and leaves the store as it was.
//!
//! The store lives on a small tmpfs that the test mounts, which needs root. Without root (or
//! where mounting is not allowed) the test fails and says so: it never passes without having
//! run.

use std::path::{Path, PathBuf};
use std::process::Command;

use snap::ops::fsck::FsckReport;

use crate::harness::{Env, Result, stderr};

/// A tmpfs of `size` mounted at a fresh directory, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Result<Tmpfs> {
        let dir = tempfile::Builder::new().prefix("snap-full-").tempdir()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(Tmpfs { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                Err(format!(
                    "the full-disk test mounts a 6 MiB tmpfs and could not ({why}): run the \
                     tests as root (./test, the README's test command, does on this kind of \
                     machine), or in a container allowed to mount"
                )
                .into())
            }
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// Every file under `dir` with its size, sorted.
fn listing(dir: &Path) -> Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let e = e?;
            let m = e.metadata()?;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                out.push((e.path(), m.len()));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[test]
fn a_commit_that_fills_the_disk_fails_clearly_and_leaves_the_store_as_it_was() -> Result {
    let fs = Tmpfs::mount("6m")?;
    let env = Env::new()?;
    let store = fs.path().join(".store");
    let store = store.to_str().ok_or("path")?;
    env.write("small/a", "hello")?;
    env.ok(&["--store", store, "commit", "small"])?;
    let refs_before = env.ok(&["--store", store, "refs"])?;
    // Incompressible data, twice what the filesystem holds.
    env.sh("mkdir big && for i in 1 2 3 4; do head -c 3000000 /dev/urandom > big/b$i; done")?;
    let before = listing(fs.path())?;

    let out = env.run(&["--store", store, "commit", "big"], 2)?;
    let err = stderr(&out);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: no space left on device, writing "),
        "one clear line first: {err}"
    );
    assert!(err.contains("see: snap explain disk-full"), "{err}");

    assert_eq!(
        env.ok(&["--store", store, "refs"])?,
        refs_before,
        "ref unchanged"
    );
    assert_eq!(
        listing(fs.path())?,
        before,
        "the store holds exactly what it held"
    );
    let r: FsckReport = env.json(&["--store", store, "fsck"])?;
    assert!(r.is_clean() && r.leftovers.is_empty(), "{r:?}");
    // With room again, the same commit goes through.
    env.sh("rm big/b3 big/b4")?;
    env.ok(&["--store", store, "commit", "big"])?;
    Ok(())
}
