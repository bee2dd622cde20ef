//! Real tools for interop tests: skopeo, umoci, oras (Python) and a real registry
//! (Debian's `docker-registry`, the CNCF distribution server) started on 127.0.0.1.
//!
//! A test that needs a missing tool fails, naming the line that installs it (`./test`, the
//! README's test command, installs them all): no test passes without having run.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Marker requests sent by [`Registry::requests`], numbered.
static MARKERS: AtomicU64 = AtomicU64::new(0);

pub type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Whether `tool` runs (`probe` succeeds); when it does not, the test fails with the line
/// that installs it, so that a test never passes without having run.
pub fn have(tool: &str, probe: &[&str], install: &str) -> bool {
    let ok = Command::new(tool)
        .args(probe)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs {tool}, which is not installed: {install} (or run ./test, which \
         installs everything the tests need)"
    );
    ok
}

pub fn have_skopeo() -> bool {
    have("skopeo", &["--version"], "apt-get install -y skopeo")
}

pub fn have_umoci() -> bool {
    have("umoci", &["--version"], "apt-get install -y umoci")
}

pub fn have_oras() -> bool {
    have(
        "python3",
        &["-c", "import oras.client"],
        "python3 -m pip install oras",
    )
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
    let out = snap_env(dir, args, &[])?;
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

/// How a test registry authenticates.
pub enum Auth {
    /// Anyone may pull and push.
    Anonymous,
    /// htpasswd (bcrypt) basic auth for one user.
    Basic {
        user: &'static str,
        password: &'static str,
    },
    /// Bearer tokens from `token_server.py`: anonymous pulls, the user pushes.
    Token {
        user: &'static str,
        password: &'static str,
        expire_first: bool,
    },
}

/// A registry on a free loopback port (and its token server), stopped on drop.
pub struct Registry {
    child: Child,
    token_server: Option<Child>,
    pub addr: String,
    dir: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn wait_for(addr: &str) -> Result {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(addr).is_err() {
        if Instant::now() > deadline {
            return Err(format!("nothing started on {addr}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

impl Registry {
    pub fn start() -> Result<Registry> {
        Registry::start_with(&Auth::Anonymous)
    }

    pub fn start_with(auth: &Auth) -> Result<Registry> {
        let dir = tempfile::tempdir()?;
        let addr = format!("127.0.0.1:{}", free_port()?);
        let mut token_server = None;
        let auth_yaml = match auth {
            Auth::Anonymous => String::new(),
            Auth::Basic { user, password } => {
                let htpasswd = dir.path().join("htpasswd");
                let line = sh(dir.path(), &format!("htpasswd -Bbn {user} {password}"))?;
                std::fs::write(&htpasswd, line)?;
                format!(
                    "auth:\n  htpasswd: {{realm: snap-test-realm, path: {}}}\n",
                    htpasswd.display()
                )
            }
            Auth::Token {
                user,
                password,
                expire_first,
            } => {
                sh(
                    dir.path(),
                    "openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 -subj /CN=snap-test 2>/dev/null",
                )?;
                let tport = free_port()?;
                let script =
                    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/token_server.py");
                let mut cmd = Command::new("python3");
                cmd.arg(script)
                    .arg(tport.to_string())
                    .arg(dir.path().join("key.pem"))
                    .arg(dir.path().join("cert.pem"))
                    .arg(user)
                    .arg(password);
                if *expire_first {
                    cmd.arg("--expire-first");
                }
                let log = std::fs::File::create(dir.path().join("tokens.log"))?;
                token_server = Some(cmd.stdout(log).stderr(Stdio::null()).spawn()?);
                wait_for(&format!("127.0.0.1:{tport}"))?;
                format!(
                    "auth:\n  token:\n    realm: http://127.0.0.1:{tport}/token\n    service: snap-test\n    issuer: snap-test-issuer\n    rootcertbundle: {}\n",
                    dir.path().join("cert.pem").display()
                )
            }
        };
        let config = dir.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: false}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\n  delete: {{enabled: true}}\nhttp:\n  addr: {addr}\n  secret: snap-interop-tests\n{auth_yaml}",
                dir.path().join("data").display()
            ),
        )?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        // The access log (one line per request, combined log format) goes to stdout.
        let access = std::fs::File::create(dir.path().join("access.log"))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            .stdout(access)
            .stderr(log)
            .spawn()?;
        let reg = Registry {
            child,
            token_server,
            addr,
            dir,
        };
        wait_for(&reg.addr)?;
        Ok(reg)
    }

    /// The registry's storage directory (its filesystem driver's root).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs the registry's garbage collector, deleting every manifest no tag names
    /// (`garbage-collect --delete-untagged`), and returns what it printed.
    pub fn garbage_collect(&self) -> Result<String> {
        let out = Command::new("docker-registry")
            .arg("garbage-collect")
            .arg("--delete-untagged")
            .arg(self.dir.path().join("config.yml"))
            .output()?;
        if !out.status.success() {
            return Err(format!(
                "garbage-collect failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )
            .into());
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The requests the registry has served so far, as `METHOD /path?query`, in the order it
    /// logged them. A marker request is sent and waited for first, so that every request of a
    /// command that has exited is in the log.
    pub fn requests(&self) -> Result<Vec<String>> {
        Ok(self.responses()?.into_iter().map(|(r, _, _)| r).collect())
    }

    /// Every request the registry logged so far as `METHOD PATH`, with the status and the
    /// bytes of the body it sent back (the access log's combined format), in order.
    pub fn responses(&self) -> Result<Vec<(String, u16, u64)>> {
        use std::io::{Read as _, Write as _};
        let marker = format!("/v2/_marker_{}", MARKERS.fetch_add(1, Ordering::Relaxed));
        let mut c = std::net::TcpStream::connect(&self.addr)?;
        write!(
            c,
            "GET {marker} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        )?;
        let mut sink = Vec::new();
        c.read_to_end(&mut sink)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let lines: Vec<(String, u16, u64)> =
                std::fs::read_to_string(self.dir.path().join("access.log"))?
                    .lines()
                    .filter_map(|l| {
                        let mut fields = l.split('"');
                        let request = fields.nth(1)?.rsplit_once(' ')?.0.to_owned();
                        let mut answer = fields.next()?.split_whitespace();
                        let status = answer.next()?.parse().ok()?;
                        let bytes = answer.next()?.parse().unwrap_or(0);
                        Some((request, status, bytes))
                    })
                    .collect();
            if let Some(at) = lines.iter().position(|(l, _, _)| l.ends_with(&marker)) {
                let mut lines = lines;
                lines.remove(at);
                lines.retain(|(l, _, _)| !l.contains("/v2/_marker_"));
                return Ok(lines);
            }
            if Instant::now() > deadline {
                return Err(format!("the registry never logged {marker}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Tokens the token server has issued.
    pub fn tokens_issued(&self) -> Result<usize> {
        Ok(std::fs::read_to_string(self.dir.path().join("tokens.log"))?
            .lines()
            .count())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = &mut self.token_server {
            let _ = t.kill();
            let _ = t.wait();
        }
    }
}

pub fn have_registry() -> bool {
    have(
        "docker-registry",
        &["--version"],
        "apt-get install -y docker-registry",
    )
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

/// `snap` with extra environment variables; returns the whole output, whatever the exit code.
pub fn snap_env(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<std::process::Output> {
    // The tests' environment: no stray credentials or settings from the machine.
    let mut cmd = crate::support::snap_command(dir, dir);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Ok(cmd.output()?)
}

/// Like [`snap_env`], failing unless snap succeeds; returns stdout.
pub fn snap_ok(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
    let out = snap_env(dir, args, env)?;
    if !out.status.success() {
        return Err(format!(
            "snap {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Like [`snap_env`], expecting exit `code`; returns stderr.
pub fn snap_fails(dir: &Path, args: &[&str], env: &[(&str, &str)], code: i32) -> Result<String> {
    let out = snap_env(dir, args, env)?;
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.code() != Some(code) {
        return Err(format!(
            "snap {args:?} exited {:?}, not {code}:\n{err}",
            out.status.code()
        )
        .into());
    }
    Ok(err)
}

pub fn have_auth_tools() -> bool {
    have(
        "htpasswd",
        &["-nbB", "probe", "probe"],
        "apt-get install -y apache2-utils",
    ) && have("openssl", &["version"], "apt-get install -y openssl")
}

/// A git repository in `dir` (fixed identities and dates) with an ignored `build/`.
pub fn git_repo(dir: &Path) -> Result {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/git/make_repo.sh");
    sh(dir, &format!("bash {} .", script.display()))?;
    Ok(())
}

/// Adds an empty commit with a fixed date to the repository in `dir`; returns its id.
pub fn git_commit(dir: &Path, message: &str) -> Result<String> {
    sh(
        dir,
        &format!(
            "GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t \
             GIT_COMMITTER_EMAIL=t@example.com GIT_AUTHOR_DATE=2026-01-02T00:00:00Z GIT_COMMITTER_DATE=2026-01-02T00:00:00Z \
             git commit -q --allow-empty -m '{message}'"
        ),
    )?;
    Ok(sh(dir, "git rev-parse HEAD")?.trim().to_owned())
}

/// `fault_server.py` on a free port: a fake registry that answers everything but `/v2/` with
/// one fault. Stopped on drop.
pub struct FaultServer {
    child: Child,
    pub addr: String,
}

impl FaultServer {
    pub fn start(status: u16, envelope: Option<(&str, &str)>) -> Result<FaultServer> {
        let port = free_port()?;
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/fault_server.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(port.to_string())
            .arg(status.to_string());
        if let Some((code, message)) = envelope {
            cmd.arg(code).arg(message);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        let addr = format!("127.0.0.1:{port}");
        let server = FaultServer { child, addr };
        wait_for(&server.addr)?;
        Ok(server)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `hostile_registry.py` on a free port, serving the OCI layout `layout` with one `fault`
/// (and, for `cross-host`, "object storage" on 127.0.0.2). Stopped on drop.
pub struct HostileRegistry {
    child: Child,
    pub addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

/// One request the hostile registry (or its object storage) received.
#[derive(serde::Deserialize, Debug)]
pub struct Received {
    pub server: String,
    pub method: String,
    pub path: String,
    pub authorization: bool,
}

impl HostileRegistry {
    pub fn start(layout: &Path, fault: &str) -> Result<HostileRegistry> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("requests.jsonl");
        std::fs::write(&log, "")?;
        let port = free_port()?;
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/hostile_registry.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script)
            .arg(port.to_string())
            .arg(layout)
            .arg(fault)
            .arg(&log);
        let storage = if fault == "cross-host" {
            let p = TcpListener::bind("127.0.0.2:0")?.local_addr()?.port();
            cmd.arg(p.to_string());
            Some(format!("127.0.0.2:{p}"))
        } else {
            None
        };
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        let addr = format!("127.0.0.1:{port}");
        let server = HostileRegistry {
            child,
            addr,
            log,
            _dir: dir,
        };
        wait_for(&server.addr)?;
        if let Some(s) = storage {
            wait_for(&s)?;
        }
        Ok(server)
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Result<Vec<Received>> {
        let mut out = Vec::new();
        for line in std::fs::read_to_string(&self.log)?.lines() {
            out.push(serde_json::from_str(line)?);
        }
        Ok(out)
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How one `snap` run went, measured from outside.
#[derive(Debug)]
pub struct Measured {
    /// The exit code; `None` when it was killed (at the deadline or the memory ceiling).
    pub code: Option<i32>,
    /// Why it was killed, if it was.
    #[allow(dead_code)] // read through `Debug` in assertion messages
    pub killed: Option<String>,
    pub stdout: String,
    pub stderr: String,
    /// Peak resident memory, bytes.
    pub peak_rss: u64,
    pub elapsed: Duration,
}

/// Runs snap as [`snap_env`] does, measuring its peak RSS (python's `getrusage`) and wall
/// time. A run that outlives `deadline` or grows past 512 MiB of RSS is killed (`code: None`,
/// `killed` says why), so a hang or a flood fails the test instead of hanging it or the machine.
pub fn snap_measured(
    dir: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    deadline: Duration,
) -> Result<Measured> {
    let script = r#"
import json, resource, subprocess, sys, tempfile, time
deadline, ceiling = float(sys.argv[1]), 512 << 20
out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
start = time.monotonic()
p = subprocess.Popen(sys.argv[2:], stdout=out, stderr=err)
killed = None
while p.poll() is None:
    time.sleep(0.02)
    try:
        with open(f"/proc/{p.pid}/status") as f:
            rss = next((int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:")), 0)
    except OSError:
        rss = 0
    if rss > ceiling:
        killed = f"past the memory ceiling ({rss} bytes)"
    elif time.monotonic() - start > deadline:
        killed = f"still running after {deadline} s"
    if killed:
        p.kill()
        p.wait()
elapsed = time.monotonic() - start
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
out.seek(0); err.seek(0)
print(json.dumps({"code": None if killed else p.returncode, "killed": killed, "rss": peak,
                  "elapsed": elapsed, "out": out.read().decode(errors="replace"),
                  "err": err.read().decode(errors="replace")}))
"#;
    let mut cmd = Command::new("python3");
    cmd.arg("-c")
        .arg(script)
        .arg(deadline.as_secs_f64().to_string())
        .arg(crate::support::SNAP)
        .args(args)
        .current_dir(dir);
    crate::support::env(&mut cmd, dir);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output()?;
    if !out.status.success() {
        return Err(format!("measuring failed: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(Measured {
        code: v["code"].as_i64().and_then(|c| i32::try_from(c).ok()),
        killed: v["killed"].as_str().map(str::to_owned),
        stdout: v["out"].as_str().unwrap_or_default().to_owned(),
        stderr: v["err"].as_str().unwrap_or_default().to_owned(),
        peak_rss: v["rss"].as_u64().unwrap_or(u64::MAX),
        elapsed: Duration::from_secs_f64(v["elapsed"].as_f64().unwrap_or(f64::MAX)),
    })
}
