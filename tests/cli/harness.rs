//! The test environment: a temp directory holding a work tree, and `snap` commands run in it
//! with a fixed, minimal environment (no $HOME, no colour, UTC, a fixed SOURCE_DATE_EPOCH).

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

pub struct Env {
    pub dir: tempfile::TempDir,
}

impl Env {
    /// An empty work tree (not a git repository).
    pub fn new() -> Result<Env> {
        let dir = tempfile::Builder::new().prefix("snap-test-").tempdir()?;
        std::fs::create_dir_all(dir.path().join("home"))?;
        Ok(Env { dir })
    }

    /// Like [`Env::new`], on `/dev/shm` when it is there (for tests whose many syncs would
    /// only measure the disk).
    pub fn in_memory() -> Result<Env> {
        let shm = Path::new("/dev/shm");
        if !shm.is_dir() {
            return Env::new();
        }
        let dir = tempfile::Builder::new()
            .prefix("snap-test-")
            .tempdir_in(shm)?;
        std::fs::create_dir_all(dir.path().join("home"))?;
        Ok(Env { dir })
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    /// `snap` in the work tree.
    pub fn snap(&self) -> Command {
        self.snap_in(self.path())
    }

    /// `snap` in `cwd`.
    pub fn snap_in(&self, cwd: &Path) -> Command {
        Command::from_std(self.snap_std(cwd))
    }

    /// `snap` in `cwd` as a plain `std::process::Command` (to spawn without waiting).
    pub fn snap_std(&self, cwd: &Path) -> std::process::Command {
        let mut c = crate::support::snap_command(cwd, &self.join("home"));
        c.env("SNAP_LOCK_TIMEOUT_MS", "300");
        c
    }

    /// Writes a file (creating parents).
    #[allow(clippy::disallowed_methods)] // test fixtures, not final paths of the tool
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> Result {
        let p = self.join(rel);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, content)?;
        Ok(())
    }

    /// Runs `snap ARGS`, asserts success, and returns stdout.
    pub fn ok(&self, args: &[&str]) -> Result<String> {
        let out = self.snap().args(args).output()?;
        check(&out, Some(0), args)?;
        Ok(String::from_utf8(out.stdout)?)
    }

    /// Runs `snap ARGS` and returns the whole output, asserting the exit code.
    pub fn run(&self, args: &[&str], code: i32) -> Result<Output> {
        let out = self.snap().args(args).output()?;
        check(&out, Some(code), args)?;
        Ok(out)
    }

    /// Runs `snap --json ARGS` and parses stdout as one JSON document of type `T`.
    pub fn json<T: serde::de::DeserializeOwned>(&self, args: &[&str]) -> Result<T> {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all)?;
        Ok(serde_json::from_str(&out)?)
    }

    /// Copies the repository's `fixtures/<name>` into the work tree at `rel`.
    pub fn fixture(&self, name: &str, rel: &str) -> Result {
        let src = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures")
            .join(name);
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&src)
            .arg(self.join(rel))
            .status()?;
        assert!(status.success(), "cp -a {}", src.display());
        Ok(())
    }

    /// Runs snap with `args` in the work tree and returns its exit code, its peak resident
    /// memory in KiB (from its parent's rusage: a bound, not a timing) and its stderr.
    pub fn peak_memory(&self, args: &[&str]) -> Result<(i32, u64, String)> {
        let quoted: Vec<String> = args
            .iter()
            .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
            .collect();
        let report = self.sh(&format!(
            r#"python3 - "$SNAP" {} <<'EOF'
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], stderr=subprocess.PIPE)
print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
print(r.stderr.decode(errors="replace"))
EOF"#,
            quoted.join(" ")
        ))?;
        let (first, err) = report.split_once('\n').ok_or("no report")?;
        let (code, rss) = first.split_once(' ').ok_or("no report")?;
        Ok((code.parse()?, rss.parse()?, err.to_owned()))
    }

    /// Runs a shell command in the work tree.
    pub fn sh(&self, script: &str) -> Result<String> {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(script)
            .current_dir(self.path())
            .env("SNAP", crate::support::SNAP)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "Snap Test")
            .env("GIT_AUTHOR_EMAIL", "test@example.com")
            .env("GIT_COMMITTER_NAME", "Snap Test")
            .env("GIT_COMMITTER_EMAIL", "test@example.com")
            .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
            .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "`{script}` failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(String::from_utf8(out.stdout)?)
    }
}

fn check(out: &Output, code: Option<i32>, args: &[&str]) -> Result {
    if out.status.code() != code {
        return Err(format!(
            "snap {args:?}: expected exit {code:?}, got {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(())
}

/// stderr as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Waits out the clock tick the files just written or touched were stamped in: a commit
/// beginning in that tick records them *racy* (store format §9.1) and reads them again next
/// time. 20 ms is two ticks of the coarsest kernel clock (HZ = 100).
pub fn settle() {
    std::thread::sleep(std::time::Duration::from_millis(20));
}
