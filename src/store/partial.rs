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
//!
//! An upload record is claimed ([`UploadClaim::acquire`]) by taking an exclusive `flock` on
//! it; every new version is written to a temp file that is locked *before* it is renamed over
//! the record, so the record at its path is always locked while its pushing process lives,
//! and a second push of the same blob to the same repository does not touch it (it uploads
//! without resuming). The record is a hint, never trusted: a record that does not decode, or
//! names another registry or repository, is ignored (and overwritten).

use std::fs::File;
use std::io::{self, Read, Write};
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
    let partial = dir.join(PARTIAL_DIR);
    // A `partial/` that is a symlink is not the store's: nothing is removed through it.
    if !std::fs::symlink_metadata(&partial).is_ok_and(|m| m.is_dir()) {
        return Vec::new();
    }
    let Ok(rd) = std::fs::read_dir(partial) else {
        return Vec::new();
    };
    rd.filter_map(Result::ok)
        .filter(|e| is_partial_name(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| is_stale(p, now))
        .collect()
}

/// The largest upload record read: a `location` is a URL of a few hundred bytes.
const MAX_RECORD_BYTES: u64 = 16 << 10;

/// An upload session, as its record holds it (store format §2.1).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRecord {
    /// The registry (`host[:port]`).
    pub registry: String,
    /// The repository in it.
    pub repository: String,
    /// The session's URL, as the registry's last answer gave it.
    pub location: String,
    /// The bytes the registry acknowledged.
    pub offset: u64,
}

impl UploadRecord {
    /// The record's bytes: compact JSON, fields in this order.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a struct of strings and a number serializes")
    }

    /// The record in `bytes`, if they hold one for `registry/repository`; anything else
    /// (garbage, a hand edit, another repository's record) is `None`.
    #[must_use]
    pub fn decode(bytes: &[u8], registry: &str, repository: &str) -> Option<UploadRecord> {
        let r: UploadRecord = serde_json::from_slice(bytes).ok()?;
        (r.registry == registry && r.repository == repository && !r.location.is_empty())
            .then_some(r)
    }
}

/// This process's claim on the upload record of one blob to one repository: the session an
/// earlier run left, and the right to record this run's (see the module documentation).
#[derive(Debug)]
pub struct UploadClaim {
    path: PathBuf,
    registry: String,
    repository: String,
    previous: Option<UploadRecord>,
    /// The record file this process holds locked: the one found, then each one written.
    held: Option<File>,
}

impl UploadClaim {
    /// Claims the record of blob `d` to `registry/repository` in the store `dir`: `None` when
    /// another process holds it (that push is uploading the blob right now).
    ///
    /// # Errors
    /// Any I/O error opening or reading the record.
    pub fn acquire(
        dir: &Path,
        d: &Digest,
        registry: &str,
        repository: &str,
    ) -> io::Result<Option<UploadClaim>> {
        let path = upload_path(dir, d, registry, repository);
        let mut claim = UploadClaim {
            path,
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            previous: None,
            held: None,
        };
        // Nothing is followed out of the store: a `partial/` that is not a plain directory
        // gets no records (the upload goes without); a record that is not a plain file (a
        // symlink, a FIFO) is no record, and the first save replaces it.
        if let Some(dir) = claim.path.parent()
            && std::fs::symlink_metadata(dir).is_ok_and(|m| !m.is_dir())
        {
            return Ok(None);
        }
        match std::fs::symlink_metadata(&claim.path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => return Ok(Some(claim)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(claim)),
            Err(e) => return Err(e),
        }
        let mut file = match File::open(&claim.path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(claim)),
            Err(e) => return Err(e),
        };
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(None),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        // Locked, but perhaps a file its writer had just replaced: only the record at the
        // path counts, and a replaced one means its writer is alive.
        if !same_file(&file, &claim.path) {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        (&mut file).take(MAX_RECORD_BYTES).read_to_end(&mut bytes)?;
        claim.previous = UploadRecord::decode(&bytes, registry, repository);
        claim.held = Some(file);
        Ok(Some(claim))
    }

    /// The session last recorded: by an earlier run (if its record was sound), or by this
    /// claim's [`UploadClaim::save`].
    #[must_use]
    pub fn previous(&self) -> Option<&UploadRecord> {
        self.previous.as_ref()
    }

    /// Records the session at `location` with `offset` bytes acknowledged, replacing the
    /// record atomically (temp file, fsync, rename, fsync of the directory); the new record is
    /// locked before it appears.
    ///
    /// # Errors
    /// Any I/O error; the previous record is then unchanged.
    pub fn save(&mut self, location: &str, offset: u64) -> io::Result<()> {
        let record = UploadRecord {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            location: location.to_owned(),
            offset,
        };
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut temp = crate::fs::AtomicFile::new_in(dir)?;
        temp.write_all(&record.encode())?;
        let held = temp.file().try_clone()?;
        held.try_lock().map_err(|e| match e {
            std::fs::TryLockError::Error(e) => e,
            std::fs::TryLockError::WouldBlock => {
                io::Error::other("a temp file just created is locked")
            }
        })?;
        temp.persist_replace(&self.path, None)?;
        crate::fs::sync_dir(dir)?;
        // The old record's lock goes only now, with the new one locked in its place.
        self.held = Some(held);
        self.previous = Some(record);
        Ok(())
    }

    /// Removes the record (the upload completed, or failed for a reason a rerun would not
    /// cure), unless another process has replaced it since.
    ///
    /// # Errors
    /// Any I/O error removing it.
    pub fn remove(self) -> io::Result<()> {
        match &self.held {
            Some(file) if same_file(file, &self.path) => match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

/// Whether `path` names the open `file` (and not a file renamed over it since).
fn same_file(file: &File, path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (file.metadata(), std::fs::metadata(path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        path.exists()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::disallowed_methods)] // fixtures written as a crash or a hand edit would
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
        // gc removes what this lists: never through a `partial/` that is a symlink.
        let other = tempfile::tempdir()?;
        std::os::unix::fs::symlink(tmp.path().join(PARTIAL_DIR), other.path().join(PARTIAL_DIR))?;
        assert!(
            stale(other.path(), now + STALE_AFTER * 2).is_empty(),
            "nothing listed through a symlinked partial/"
        );
        Ok(())
    }

    fn record() -> UploadRecord {
        UploadRecord {
            registry: "127.0.0.1:5000".into(),
            repository: "a/b".into(),
            location: "http://127.0.0.1:5000/v2/a/b/blobs/uploads/u?_state=x".into(),
            offset: 16 << 20,
        }
    }

    #[test]
    fn an_upload_record_round_trips_and_garbage_is_ignored() {
        let r = record();
        let bytes = r.encode();
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            r#"{"registry":"127.0.0.1:5000","repository":"a/b","location":"http://127.0.0.1:5000/v2/a/b/blobs/uploads/u?_state=x","offset":16777216}"#,
            "the format of store format §2.1"
        );
        assert_eq!(
            UploadRecord::decode(&bytes, "127.0.0.1:5000", "a/b"),
            Some(r.clone())
        );
        let no = |b: &[u8]| UploadRecord::decode(b, "127.0.0.1:5000", "a/b");
        assert_eq!(
            UploadRecord::decode(&bytes, "127.0.0.1:5000", "a/c"),
            None,
            "another repository's record does not apply"
        );
        assert_eq!(
            UploadRecord::decode(&bytes, "example.com", "a/b"),
            None,
            "nor another registry's"
        );
        for garbage in [
            &b""[..],
            b"\xff\xfe",
            b"{}",
            b"null",
            br#"{"registry":"127.0.0.1:5000","repository":"a/b","location":"","offset":1}"#,
            br#"{"registry":"127.0.0.1:5000","repository":"a/b","location":"x","offset":-1}"#,
            br#"{"registry":"127.0.0.1:5000","repository":"a/b","location":"x","offset":1e99}"#,
            br#"{"registry":"127.0.0.1:5000","repository":"a/b","location":"x","offset":1,"x":1}"#,
            &bytes[..bytes.len() - 1],
        ] {
            assert_eq!(no(garbage), None, "{}", String::from_utf8_lossy(garbage));
        }
    }

    #[test]
    fn an_upload_claim_saves_finds_and_removes_its_record() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = Digest::of(b"blob");
        let (reg, repo) = ("127.0.0.1:5000", "a/b");
        let mut claim = UploadClaim::acquire(tmp.path(), &d, reg, repo)?.expect("no one holds it");
        assert_eq!(claim.previous(), None, "no record yet");
        claim.save("http://r/1", 5)?;
        claim.save("http://r/2", 9)?;
        assert!(
            UploadClaim::acquire(tmp.path(), &d, reg, repo)?.is_none(),
            "a record this process holds is not claimed twice"
        );
        drop(claim);
        let claim = UploadClaim::acquire(tmp.path(), &d, reg, repo)?.expect("its holder is gone");
        let found = claim.previous().cloned();
        assert_eq!(
            found.map(|r| (r.location, r.offset)),
            Some(("http://r/2".to_owned(), 9)),
            "the last save"
        );
        claim.remove()?;
        assert!(!upload_path(tmp.path(), &d, reg, repo).exists(), "removed");
        Ok(())
    }

    #[test]
    fn a_garbage_record_is_claimed_as_no_session() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let d = Digest::of(b"blob");
        let path = upload_path(tmp.path(), &d, "r", "a");
        std::fs::create_dir_all(tmp.path().join(PARTIAL_DIR))?;
        std::fs::write(&path, b"{\"registry\": 7")?;
        let mut claim = UploadClaim::acquire(tmp.path(), &d, "r", "a")?.expect("unlocked");
        assert_eq!(claim.previous(), None, "ignored");
        claim.save("http://r/1", 1)?;
        assert!(
            UploadRecord::decode(&std::fs::read(&path)?, "r", "a").is_some(),
            "overwritten with a sound record"
        );
        Ok(())
    }

    // issue 17: records are never read or written through anything planted in the store:
    // a FIFO where the record would be (opening it would hang the push), a symlink out of
    // the store, a `partial/` that is a symlink.
    #[test]
    fn a_record_that_is_not_a_plain_file_in_a_plain_directory_is_not_followed() -> io::Result<()> {
        let tmp = tempfile::tempdir()?;
        let outside = tempfile::tempdir()?;
        let d = Digest::of(b"blob");
        let path = upload_path(tmp.path(), &d, "r", "a");
        std::fs::create_dir_all(tmp.path().join(PARTIAL_DIR))?;
        let victim = outside.path().join("victim");
        let theirs = UploadRecord {
            registry: "r".into(),
            repository: "a".into(),
            ..record()
        }
        .encode();
        std::fs::write(&victim, &theirs)?;
        std::os::unix::fs::symlink(&victim, &path)?;
        let mut claim = UploadClaim::acquire(tmp.path(), &d, "r", "a")?.expect("unlocked");
        assert_eq!(claim.previous(), None, "a symlink is no record");
        claim.save("http://r/1", 1)?;
        assert!(
            std::fs::symlink_metadata(&path)?.is_file(),
            "the symlink is replaced"
        );
        assert_eq!(
            std::fs::read(&victim)?,
            theirs,
            "nothing written through it"
        );

        std::fs::remove_file(&path)?;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )?;
        let claim = UploadClaim::acquire(tmp.path(), &d, "r", "a")?.expect("unlocked");
        assert_eq!(
            claim.previous(),
            None,
            "a FIFO is no record, and is not opened"
        );

        std::fs::remove_dir_all(tmp.path().join(PARTIAL_DIR))?;
        std::os::unix::fs::symlink(outside.path(), tmp.path().join(PARTIAL_DIR))?;
        assert!(
            UploadClaim::acquire(tmp.path(), &d, "r", "a")?.is_none(),
            "no record through a symlinked partial/"
        );
        Ok(())
    }
}
