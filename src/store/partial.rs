//! Partial transfers (store format §2.1): what an interrupted pull or push needs to continue
//! where it stopped instead of starting over (issue 17).
//!
//! `partial/` holds, per blob, named by its digest:
//!
//! * `<64 hex>.part` — the first bytes of a blob being downloaded, exactly as the registry sent
//!   them. A pull that finds one hashes what is there and asks the registry for the rest
//!   (`Range: bytes=<len>-`); the whole blob is checked against the digest as always, so a
//!   `.part` is never trusted, only continued. The downloading process holds an exclusive
//!   `flock` on it, so two pulls never write one part.
//! * `<64 hex>.<16 hex>.upload` — an upload session of a chunked push: the registry, the
//!   repository (the 16 hex are the first of the SHA-256 of `registry/repository`), the
//!   session's `Location` and how many bytes the registry acknowledged. A push that finds one
//!   asks the registry where the session stands and sends the rest.
//!
//! Neither is an object, nothing refers to them, and losing one costs only a transfer. They
//! are not leftovers (`.tmp-*`): a run killed at 50 % keeps them for the next. They are removed
//! when the transfer they belong to completes, when it fails for a reason a rerun would not
//! cure, and — by the sweep of leftovers (§7) and by `snap gc` — once nothing has touched them
//! for [`STALE_AFTER`] (distribution's default lifetime of an upload session).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::digest::Digest;

/// The directory of partial transfers, inside the store directory.
pub const PARTIAL_DIR: &str = "partial";

/// How long an untouched partial transfer is kept: a week.
pub const STALE_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// The partial download of blob `d` in the store `dir`.
#[must_use]
pub fn download_path(dir: &Path, d: &Digest) -> PathBuf {
    dir.join(PARTIAL_DIR).join(format!("{}.part", d.hex()))
}

/// The upload session record of blob `d` to `registry/repository` in the store `dir`.
#[must_use]
pub fn upload_path(dir: &Path, d: &Digest, registry: &str, repository: &str) -> PathBuf {
    let target = Digest::of(format!("{registry}/{repository}").as_bytes());
    dir.join(PARTIAL_DIR)
        .join(format!("{}.{}.upload", d.hex(), &target.hex()[..16]))
}

/// Whether `name` (in `partial/`) is a partial transfer's, as this module names them.
#[must_use]
pub fn is_partial_name(name: &str) -> bool {
    let Some((hex, rest)) = name.split_once('.') else {
        return false;
    };
    let hex_ok = |s: &str, n: usize| {
        s.len() == n && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    hex_ok(hex, 64)
        && (rest == "part"
            || rest
                .strip_suffix(".upload")
                .is_some_and(|target| hex_ok(target, 16)))
}

/// Whether the file at `path` was last modified at least [`STALE_AFTER`] before `now`.
#[must_use]
pub fn is_stale(path: &Path, now: SystemTime) -> bool {
    std::fs::symlink_metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|age| age >= STALE_AFTER)
}

/// The stale partial transfers in the store `dir` (see [`is_stale`]); names this module does
/// not give are left alone.
#[must_use]
pub fn stale(dir: &Path, now: SystemTime) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(dir.join(PARTIAL_DIR)) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| is_partial_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| is_stale(p, now))
        .collect()
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn only_the_names_this_module_gives_are_partial_transfers() {
        let d = Digest::of(b"blob");
        let part = download_path(Path::new("s"), &d);
        let upload = upload_path(Path::new("s"), &d, "127.0.0.1:5000", "a/b");
        for p in [&part, &upload] {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            assert!(is_partial_name(name), "{name}");
        }
        assert_ne!(
            upload,
            upload_path(Path::new("s"), &d, "127.0.0.1:5000", "a/c"),
            "one record per repository"
        );
        for name in [
            "x.part",
            ".tmp-1",
            &format!("{}.part.lock", d.hex()),
            &format!("{}.upload", d.hex()),
            &format!("{}.0123456789abcdeF.upload", d.hex()),
        ] {
            assert!(!is_partial_name(name), "{name}");
        }
    }

    #[test]
    fn a_partial_transfer_is_stale_only_after_a_week_untouched() -> std::io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = Digest::of(b"blob");
        let path = download_path(tmp.path(), &d);
        std::fs::create_dir_all(tmp.path().join(PARTIAL_DIR))?;
        std::fs::write(&path, b"half")?;
        std::fs::write(tmp.path().join(PARTIAL_DIR).join("notes.txt"), b"mine")?;
        let now = SystemTime::now();
        assert!(stale(tmp.path(), now).is_empty(), "fresh");
        assert!(
            stale(tmp.path(), now + STALE_AFTER / 2).is_empty(),
            "days old"
        );
        assert_eq!(
            stale(tmp.path(), now + STALE_AFTER + Duration::from_secs(1)),
            vec![path],
            "a week untouched; a file snap did not name is never taken"
        );
        Ok(())
    }
}
