//! Real tools for interop tests: skopeo, umoci, oras (Python) and a real registry
//! (Debian's `docker-registry`, the CNCF distribution server) started on 127.0.0.1.
//!
//! A test that needs a missing tool is skipped with a message — except under `CI=true`,
//! where it fails, so CI can never pass without running it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Whether `tool` can run; panics under CI when it cannot.
pub fn have(tool: &str, probe: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{tool} is required under CI=true (.ci/run installs it)"
        );
        eprintln!("skipping: {tool} is not installed");
    }
    ok
}

pub fn have_skopeo() -> bool {
    have("skopeo", &["--version"])
}

pub fn have_umoci() -> bool {
    have("umoci", &["--version"])
}

pub fn have_oras() -> bool {
    have("python3", &["-c", "import oras.client"])
}

/// Runs a shell command in `dir`, returning stdout; fails with stderr.
pub fn sh(dir: &Path, script: &str) -> Result<String> {
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "`{script}` failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// `snap` with a fixed environment, in `dir`.
pub fn snap(dir: &Path, args: &[&str]) -> Result<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_snap"))
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", "1767225600")
        .env("NO_COLOR", "1")
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "snap {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// skopeo with a hermetic signature policy.
pub fn skopeo(dir: &Path, args: &str) -> Result<String> {
    let policy = dir.join("policy.json");
    if !policy.exists() {
        std::fs::write(
            &policy,
            r#"{"default":[{"type":"insecureAcceptAnything"}]}"#,
        )?;
    }
    sh(dir, &format!("skopeo --policy {} {args}", policy.display()))
}

/// A registry on a free loopback port, stopped on drop.
pub struct Registry {
    child: Child,
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Result<Registry> {
        let dir = tempfile::tempdir()?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: {addr}\n  secret: snap-interop-tests\n",
                dir.path().join("data").display()
            ),
        )?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let reg = Registry {
            child,
            addr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&reg.addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!("the registry did not start on {}", reg.addr).into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(reg)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn have_registry() -> bool {
    let ok = Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "docker-registry is required under CI=true"
        );
        eprintln!("skipping: docker-registry is not installed");
    }
    ok
}

/// A work directory with the demo fixture and a store holding a grouped and a direct snapshot.
pub fn workdir() -> Result<(tempfile::TempDir, PathBuf)> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().to_owned();
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/demo");
    sh(
        &p,
        &format!(
            "cp -a {} demo && mkdir -p big && for i in $(seq 1 150); do seq 1 $i > big/f$i; done && chmod +x big/f3 && ln -s f1 big/link",
            demo.display()
        ),
    )?;
    snap(&p, &["commit", "big", "-m", "grouped"])?;
    snap(&p, &["commit", "demo", "--ref", "small", "-m", "direct"])?;
    Ok((dir, p))
}
