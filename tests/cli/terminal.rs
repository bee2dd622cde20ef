//! Issue 13 (item 10): names and annotations from file systems and archives never reach the
//! terminal raw. A name holding a newline cannot forge a line of `ls`, `diff` or `show`; an
//! escape sequence is shown, not obeyed; `--json` keeps the exact strings.

use crate::harness::{Env, Result, stderr};

/// Whether `text` holds a control character other than the line ends and tabs of its layout.
fn has_raw_controls(text: &str) -> bool {
    text.chars()
        .any(|c| (c.is_control() && c != '\n' && c != '\t') || c == '\u{202e}')
}

// Issue 13, item 10: control characters and escape sequences reached the terminal raw.
#[test]
fn hostile_names_and_annotations_are_escaped_for_humans_and_exact_in_json() -> Result {
    let env = Env::new()?;
    let forged = "a\n-rw-r--r--          999 000000000000 forged";
    let escape = "clear\x1b[2J\x1b]0;pwned\x07";
    let bidi = "report\u{202e}fdp.exe";
    env.write("out/plain.txt", "one")?;
    env.write(&format!("out/{forged}"), "two")?;
    env.write(&format!("out/{escape}"), "three")?;
    env.write(&format!("out/{bidi}"), "four")?;
    env.ok(&[
        "commit",
        "out",
        "--annotation",
        "note=line one\nFAKE: line\x1b[31m red",
        "-m",
        "msg\x1b[2J",
    ])?;

    let ls = env.ok(&["ls", "-r", "latest"])?;
    assert!(
        !has_raw_controls(&ls),
        "raw control characters in ls: {ls:?}"
    );
    assert_eq!(
        ls.lines().count(),
        5,
        "one line per entry, none forged: {ls}"
    );
    assert!(
        ls.contains(r#""out/a\n-rw-r--r--          999 000000000000 forged""#),
        "the newline name is quoted as git quotes it: {ls}"
    );
    assert!(ls.contains(r#""out/clear\x1b[2J\x1b]0;pwned\x07""#), "{ls}");
    assert!(ls.contains(r#""out/report\u{202e}fdp.exe""#), "{ls}");
    assert!(
        ls.contains(" out/plain.txt\n"),
        "plain names stay as they are: {ls}"
    );

    let json = env.ok(&["--json", "ls", "-r", "latest"])?;
    let paths: Vec<String> = json
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l)
                .map(|v| v["data"]["path"].as_str().unwrap_or("").to_owned())
        })
        .collect::<std::result::Result<_, _>>()?;
    for name in [forged, escape, bidi] {
        assert!(
            paths.contains(&format!("out/{name}")),
            "--json keeps the exact name {name:?}: {paths:?}"
        );
    }

    let show = env.ok(&["show", "latest"])?;
    assert!(
        !has_raw_controls(&show),
        "raw control characters in show: {show:?}"
    );
    assert!(
        show.contains(r"Annotation: note=line one\nFAKE: line\x1b[31m red"),
        "{show}"
    );
    let log = env.ok(&["log"])?;
    assert!(
        !has_raw_controls(&log),
        "raw control characters in log: {log:?}"
    );

    env.write("out/plain.txt", "changed")?;
    env.write(&format!("out/{forged}"), "changed")?;
    let out = env.run(&["diff", "latest", "."], 1)?;
    let diff = String::from_utf8(out.stdout)?;
    assert!(
        !has_raw_controls(&diff),
        "raw control characters in diff: {diff:?}"
    );
    let modified: Vec<&str> = diff.lines().filter(|l| l.starts_with("M\t")).collect();
    assert_eq!(
        modified,
        [
            r#"M	"out/a\n-rw-r--r--          999 000000000000 forged""#,
            "M\tout/plain.txt"
        ],
        "{diff}"
    );

    // Errors naming a hostile path are escaped too.
    let out = env.run(&["ls", "latest", "out/no\x1b[2Jsuch"], 2)?;
    let err = stderr(&out);
    assert!(
        !has_raw_controls(&err),
        "raw control characters in an error: {err:?}"
    );
    assert!(err.contains(r"no\x1b[2Jsuch"), "{err}");
    Ok(())
}
