//! The names restore never creates, removes or writes through: `.git` and `.store`, with
//! every spelling a filesystem may treat as one of them — the rules of git's `verify_path`
//! (read-cache.c) with `core.protectHFS` and `core.protectNTFS` on, as `git fsck` applies
//! them: ASCII case is ignored; the code points HFS+ ignores are dropped; trailing dots and
//! spaces and an NTFS alternate data stream (`:…`) are dropped; the NTFS short names `git~1`
//! and `store~1` are the same names; a backslash separates (NTFS).
//!
//! Strings only: names (`EntryName`) and paths (`EntryPath`)
//! both ask here, so neither needs the other for it.

/// The names restore never writes, as [`fold`] spells them.
const RESERVED: &[&str] = &[".git", "git~1", ".store", "store~1"];

/// Whether a directory entry called `name` would be, on some filesystem, `.git` or `.store`
/// (see the module documentation for the rules).
#[must_use]
pub fn is_reserved(name: &str) -> bool {
    // The common case without allocating: an ASCII name (HFS+-ignorable code points are not
    // ASCII) that does not contain `git` or `store` in any case folds to neither.
    let b = name.as_bytes();
    if b.is_ascii()
        && !b.windows(3).any(|w| w.eq_ignore_ascii_case(b"git"))
        && !b.windows(5).any(|w| w.eq_ignore_ascii_case(b"store"))
    {
        return false;
    }
    // NTFS takes a backslash as a separator: each part is a name there.
    name.split('\\')
        .any(|part| RESERVED.contains(&fold(part).as_str()))
}

/// The spelling of `name` a case-insensitive, HFS+ or NTFS filesystem would compare: the
/// code points HFS+ ignores removed, ASCII lowercased, an alternate data stream (from the
/// first `:`) and then trailing dots and spaces cut. Two names with the same fold may be one
/// file on such a filesystem.
#[must_use]
pub fn fold(name: &str) -> String {
    let mut out: String = name
        .chars()
        .filter(|c| !is_hfs_ignorable(*c))
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if let Some(i) = out.find(':') {
        out.truncate(i);
    }
    let kept = out.trim_end_matches(['.', ' ']).len();
    out.truncate(kept);
    out
}

/// The code points HFS+ drops when it compares names (git's `next_hfs_char`).
fn is_hfs_ignorable(c: char) -> bool {
    matches!(
        c,
        '\u{200c}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{206a}'..='\u{206f}' | '\u{feff}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_git_and_store_is_reserved() {
        for name in [
            ".git",
            ".GIT",
            ".Git",
            ".git.",
            ".git ",
            ".git. . ",
            ".git::$INDEX_ALLOCATION",
            ".git:stream",
            "git~1",
            "GIT~1",
            "git~1.",
            ".g\u{200c}it",
            "\u{feff}.git",
            ".gi\u{206f}t\u{200e}",
            ".store",
            ".STORE",
            ".store..",
            ".store::$DATA",
            "store~1",
            "STORE~1 ",
            ".st\u{202a}ore",
            "x\\.git",
            ".store\\x",
        ] {
            assert!(is_reserved(name), "{name:?} must be reserved");
        }
        for name in [
            "git",
            ".gitignore",
            ".gitmodules",
            ".git2",
            "a.git",
            ".store2",
            "store",
            "git~2",
            "store~2",
            ".g\u{200b}it", // ZERO WIDTH SPACE is not ignored by HFS+
            ".gıt",         // no Unicode case folding: HFS+ compares these apart
            ".wh..git",
        ] {
            assert!(!is_reserved(name), "{name:?} is an ordinary name");
        }
    }
}
