//! Shell completions and man pages cover every command, and every command has a book page.

use crate::harness::{Env, Result};

/// The commands `snap --help` lists (without `help`).
fn commands(env: &Env) -> Result<Vec<String>> {
    let help = env.ok(&["--help"])?;
    let list = help
        .split("Commands:")
        .nth(1)
        .and_then(|rest| rest.split("\n\n").next())
        .ok_or("no Commands: section in --help")?;
    let names: Vec<String> = list
        .lines()
        // A command's line is indented two spaces; wrapped descriptions are indented more.
        .filter(|l| l.starts_with("  ") && !l.starts_with("   "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| *n != "help")
        .map(str::to_owned)
        .collect();
    assert!(names.len() >= 20, "{names:?}");
    Ok(names)
}

#[test]
fn completions_for_every_shell_name_every_command() -> Result {
    let env = Env::new()?;
    let names = commands(&env)?;
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = env.ok(&["completions", shell])?;
        for n in &names {
            assert!(
                script.contains(n.as_str()),
                "{shell} completion lacks `{n}`"
            );
        }
    }
    // bash loads it and registers it for `snap`.
    let spec = env.sh("source <(\"$SNAP\" completions bash) && complete -p snap")?;
    assert!(spec.contains("snap"), "{spec}");
    let out = env.run(&["completions", "tcsh"], 2)?;
    assert!(String::from_utf8_lossy(&out.stderr).contains("possible values"));
    Ok(())
}

#[test]
fn the_man_pages_cover_every_command() -> Result {
    let env = Env::new()?;
    let names = commands(&env)?;
    let main = env.ok(&["man"])?;
    assert!(
        main.starts_with(".ie") && main.contains(".TH snap 1"),
        "{main}"
    );
    for n in &names {
        assert!(
            main.contains(&format!("snap\\-{}(1)", n.replace('-', "\\-"))),
            "snap(1) does not list {n}"
        );
        let page = env.ok(&["man", n])?;
        assert!(page.contains(&format!(".TH snap-{n} 1")), "{page}");
        assert!(
            page.contains(".SH SYNOPSIS") && page.contains(".SH OPTIONS"),
            "{page}"
        );
    }
    env.run(&["man", "nope"], 2)?;
    // man(1) renders it without complaint, where man is installed.
    if std::process::Command::new("man")
        .arg("--version")
        .output()
        .is_ok()
    {
        env.sh("\"$SNAP\" man commit > snap-commit.1 && man -l snap-commit.1 >/dev/null")?;
    }
    Ok(())
}

#[test]
fn every_command_has_a_book_page() -> Result {
    let env = Env::new()?;
    let book = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("book/src");
    let summary = std::fs::read_to_string(book.join("SUMMARY.md"))?;
    for n in commands(&env)? {
        let page = match n.as_str() {
            "man" => "completions".to_owned(),
            "verify" => "sign".to_owned(),
            "referrers" => "attach".to_owned(),
            other => other.to_owned(),
        };
        let rel = format!("commands/{page}.md");
        assert!(
            book.join(&rel).is_file(),
            "no book page {rel} for `snap {n}`"
        );
        assert!(summary.contains(&rel), "SUMMARY.md does not link {rel}");
    }
    Ok(())
}
