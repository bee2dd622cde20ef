//! Every `console` example in the book's command pages runs here, with snap and a few
//! standard tools, in a sandbox copy of the page's `<page>.in/` directory.

use std::path::Path;

#[test]
fn book_examples() {
    let cases = trycmd::TestCases::new();
    cases
        .register_bin("snap", Path::new(env!("CARGO_BIN_EXE_snap")))
        .env("SOURCE_DATE_EPOCH", "1767225600")
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
