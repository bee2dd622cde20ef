//! The quickstart, run as a newcomer would: every `console` block of `book/src/quickstart.md`
//! in order — the ones the book runner skips because they need a registry included — in a
//! fresh copy of `quickstart.in`, against the registry the page tells the reader to start (its
//! exact `docker-registry serve` line and its `registry.yml`, on a free port standing in for
//! `localhost:5000`, with no Docker and no authentication).
//!
//! Expected output uses the book runner's conventions: `[CWD]` is the starting directory,
//! `[..]` matches anything within a line, a `...` line matches any lines, `? N` is the exit
//! code (0 when absent). stdout and stderr are compared together, stderr first.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::{Result, have_registry, sh};

/// The registry as the quickstart starts it, stopped when dropped.
struct BookRegistry {
    child: Child,
    addr: String,
}

impl BookRegistry {
    /// Runs the page's `docker-registry serve …` line in `work` (a copy of `quickstart.in`),
    /// with `registry.yml`'s `localhost:5000` moved to a free port and its data to `data`.
    fn start(markdown: &str, work: &Path, data: &Path) -> Result<BookRegistry> {
        let line = markdown
            .lines()
            .find(|l| l.starts_with("docker-registry serve "))
            .ok_or("the quickstart says how to start a registry without Docker")?;
        let args: Vec<&str> = line
            .split_whitespace()
            .skip(1)
            .take_while(|a| *a != "&" && !a.starts_with('#'))
            .collect();
        assert_eq!(args, ["serve", "registry.yml"], "{line}");
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let addr = format!("127.0.0.1:{port}");
        let config = std::fs::read_to_string(work.join("registry.yml"))?;
        assert!(
            config.contains("addr: localhost:5000")
                && config.contains("/tmp/snap-quickstart-registry")
                && !config.lines().any(|l| l.trim_start().starts_with("auth:")),
            "registry.yml: localhost:5000, data in /tmp, no auth:\n{config}"
        );
        let config = config
            .replace("localhost:5000", &addr)
            .replace("/tmp/snap-quickstart-registry", &data.display().to_string());
        std::fs::write(work.join("registry.yml"), config)?;
        let child = Command::new("docker-registry")
            .args(&args)
            .current_dir(work)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let reg = BookRegistry { child, addr };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(&reg.addr).is_err() {
            if Instant::now() > deadline {
                return Err(
                    format!("the quickstart's registry did not start on {}", reg.addr).into(),
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(reg)
    }
}

impl Drop for BookRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `$ command` with what it should print and its exit code.
struct Step {
    command: String,
    expected: Vec<String>,
    code: i32,
}

fn steps(markdown: &str) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::new();
    let mut in_block = false;
    for line in markdown.lines() {
        if line.starts_with("```") {
            in_block = !in_block && line.trim_start_matches('`').starts_with("console");
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push(Step {
                command: cmd.to_owned(),
                expected: Vec::new(),
                code: 0,
            });
        } else if let Some(step) = out.last_mut() {
            if let Some(code) = line.strip_prefix("? ").and_then(|c| c.parse().ok()) {
                step.code = code;
            } else if !line.is_empty() {
                step.expected.push(line.to_owned());
            }
        }
    }
    out
}

/// Whether `line` matches `pattern` with `[..]` wildcards.
fn line_matches(pattern: &str, line: &str) -> bool {
    let mut parts = pattern.split("[..]");
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = line.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

/// Whether `actual` lines match `expected` lines (`...` skips any number of lines).
fn lines_match(expected: &[String], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e == "..." => {
            (0..=actual.len()).any(|skip| lines_match(rest, &actual[skip..]))
        }
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, more)| line_matches(e, a) && lines_match(rest, more)),
    }
}

#[test]
fn the_quickstart_works_from_nothing_to_a_pulled_snapshot() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let markdown = std::fs::read_to_string(root.join("quickstart.md"))?;
    let steps = steps(&markdown);
    assert!(
        steps.iter().any(|s| s.command.starts_with("snap push"))
            && steps.iter().any(|s| s.command.starts_with("snap pull")),
        "the quickstart goes as far as push and pull"
    );
    let t = tempfile::tempdir()?;
    let start = t.path().join("work");
    sh(
        t.path(),
        &format!("cp -a {} work", root.join("quickstart.in").display()),
    )?;
    let reg = BookRegistry::start(&markdown, &start, &t.path().join("registry-data"))?;
    // `snap` on PATH, as after `cargo install`.
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin)?;
    std::os::unix::fs::symlink(crate::support::SNAP, bin.join("snap"))?;
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let cwd_text = start.display().to_string();
    let mut cwd: PathBuf = start.clone();
    for step in &steps {
        let command = step.command.replace("localhost:5000", &reg.addr);
        if let Some(dir) = command.strip_prefix("cd ") {
            cwd = cwd.join(dir);
            continue;
        }
        let out = Command::new("bash")
            .arg("-c")
            .arg(&command)
            .current_dir(&cwd)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", t.path())
            .env("SOURCE_DATE_EPOCH", crate::support::EPOCH)
            .env("NO_COLOR", "1")
            .env("TZ", "UTC")
            .env("DOCKER_CONFIG", t.path().join("no-docker"))
            .output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        let actual: Vec<&str> = text.lines().filter(|l| !l.is_empty()).collect();
        let expected: Vec<String> = step
            .expected
            .iter()
            .map(|l| {
                l.replace("[CWD]", &cwd_text)
                    .replace("localhost:5000", &reg.addr)
            })
            .collect();
        assert_eq!(
            out.status.code(),
            Some(step.code),
            "`{command}` exited {:?}:\n{text}",
            out.status.code()
        );
        assert!(
            lines_match(&expected, &actual),
            "`{command}` printed:\n{text}\nexpected:\n{}",
            expected.join("\n")
        );
    }
    Ok(())
}

#[test]
fn the_matcher_matches_what_it_should() {
    assert!(line_matches("a [..] c", "a b c"));
    assert!(line_matches("a[..]", "abc"));
    assert!(!line_matches("a [..] c", "a b d"));
    assert!(line_matches("exact", "exact"));
    assert!(!line_matches("exact", "exactly"));
    let e = |v: &[&str]| v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert!(lines_match(&e(&["x", "...", "z"]), &["x", "y", "y", "z"]));
    assert!(!lines_match(&e(&["x", "z"]), &["x", "y", "z"]));
}
