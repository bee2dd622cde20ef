//! Every `console` example in the book's command pages runs here, with snap and a few
//! standard tools, in a sandbox copy of the page's `<page>.in/` directory.

mod support;

use std::path::Path;

#[test]
fn book_examples() {
    let cases = trycmd::TestCases::new();
    cases
        .register_bin("snap", Path::new(support::SNAP))
        .env("SOURCE_DATE_EPOCH", support::EPOCH)
        .env("NO_COLOR", "1")
        .env("TZ", "UTC")
        .env("SNAP_LOCK_TIMEOUT_MS", "300");
    for tool in [
        "sha256sum",
        "ls",
        "cat",
        "cp",
        "chmod",
        "rm",
        "diff",
        "find",
        "touch",
        "mkdir",
        "ln",
    ] {
        for dir in ["/usr/bin", "/bin"] {
            let p = Path::new(dir).join(tool);
            if p.exists() {
                cases.register_bin(tool, p);
                break;
            }
        }
    }
    cases
        .case("book/src/commands/*.md")
        .case("book/src/quickstart.md");
}

/// trycmd runs a page in a sandbox (a temp copy of `<page>.in/`) only when `<page>.out/`
/// exists; otherwise in `<page>.in/` itself, inside this checkout, where snap finds the
/// checkout's own store (`cargo run -- commit …`, the README's first command, makes one) and
/// an example that expects "no store" fails, or one that writes, writes into it.
#[test]
fn every_page_with_examples_runs_in_a_sandbox() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let mut pages: Vec<_> = std::fs::read_dir(root.join("commands"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    pages.push(root.join("quickstart.md"));
    for page in pages
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
    {
        let text = std::fs::read_to_string(page).unwrap();
        if text.contains("```console") {
            assert!(
                page.with_extension("out").is_dir(),
                "{} has examples but no {} directory: trycmd would run them inside the \
                 checkout instead of a sandbox",
                page.display(),
                page.with_extension("out").display()
            );
        }
    }
}

/// Every topic a hint can name (`see: snap explain TOPIC`) is a heading of the book's
/// troubleshooting page, and `snap explain TOPIC` prints it from the binary.
#[test]
fn every_hint_topic_exists_and_snap_explain_prints_it() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let page = std::fs::read_to_string(root.join("book/src/troubleshooting.md")).unwrap();
    let headings: Vec<&str> = page.lines().filter_map(|l| l.strip_prefix("## ")).collect();
    let mut anchors = Vec::new();
    for entry in std::fs::read_dir(root.join("src/cli")).unwrap() {
        let path = entry.unwrap().path();
        let in_hint_for = path.ends_with("error.rs");
        let text = std::fs::read_to_string(&path).unwrap();
        for line in text.lines() {
            let t = line.trim();
            // `"anchor",` on its own line in hint_for, or `troubleshooting.md#anchor`.
            // Elsewhere (import and pull conflicts), anchors are hyphenated words.
            if let Some(a) = t.strip_prefix('"').and_then(|t| t.strip_suffix("\","))
                && !a.is_empty()
                && a.chars().all(|c| c.is_ascii_lowercase() || c == '-')
                && (in_hint_for || (a.contains('-') && !a.starts_with('-')))
            {
                anchors.push(a.to_owned());
            }
            if let Some((_, rest)) = t
                .split_once("troubleshooting.md#")
                .or_else(|| t.split_once("see(\""))
            {
                let a: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                    .collect();
                // `#{anchor}` in a format string: the anchors come from the callers.
                if !a.is_empty() {
                    anchors.push(a);
                }
            }
        }
    }
    // The anchors of `ops::Topic` (the library says which entry an error belongs to).
    let topics = std::fs::read_to_string(root.join("src/ops/topic.rs")).unwrap();
    let body = &topics[topics.find("fn anchor(").unwrap()..];
    let body = &body[..body.find("\n    }\n").unwrap()];
    for line in body.lines() {
        let t = line.trim();
        let quoted = t
            .split_once("=> \"")
            .map(|(_, r)| r)
            .or_else(|| t.strip_prefix('"'));
        if let Some(rest) = quoted {
            let a: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '-')
                .collect();
            if !a.is_empty() {
                anchors.push(a);
            }
        }
    }
    anchors.sort();
    anchors.dedup();
    assert!(anchors.len() >= 40, "found only {anchors:?}");
    for a in &anchors {
        assert!(
            headings.contains(&a.as_str()),
            "no `## {a}` in troubleshooting.md"
        );
        let home = std::env::temp_dir();
        let out = support::snap_command(&home, &home)
            .args(["explain", a])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success()
                && text.starts_with(&format!("{a}\n\n"))
                && text.len() > a.len() + 20,
            "`snap explain {a}` printed {text:?}"
        );
    }
    assert!(anchors.contains(&"disk-full".to_owned()), "{anchors:?}");
}

/// `mdbook build` renders the whole book (a broken SUMMARY.md or include fails it). Without
/// mdbook the test fails with the line that installs it (`./test` does).
#[test]
fn mdbook_builds_the_book() {
    let have = std::process::Command::new("mdbook")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        have,
        "this test needs mdbook, which is not installed: cargo install mdbook --locked \
         --no-default-features --features search (or run ./test, which installs everything \
         the tests need)"
    );
    let out_dir = tempfile::tempdir().expect("temp dir");
    let book = Path::new(env!("CARGO_MANIFEST_DIR")).join("book");
    let out = std::process::Command::new("mdbook")
        .arg("build")
        .arg(&book)
        .arg("-d")
        .arg(out_dir.path())
        .output()
        .expect("mdbook runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "mdbook build failed:\n{log}");
    assert!(!log.contains("WARN") && !log.contains("ERROR"), "{log}");
    for page in [
        "index.html",
        "quickstart.html",
        "commands/push.html",
        "comparison.html",
    ] {
        assert!(out_dir.path().join(page).is_file(), "{page} not rendered");
    }
}
