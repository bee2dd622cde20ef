//! Issue 17: what a push and a pull cost on the wire, counted from a real registry's access
//! log (requests, never time).

use serde_json::Value;

use crate::harness::{Registry, Result, have_registry, snap_ok, workdir};

fn json(s: &str) -> Result<Value> {
    Ok(s.parse()?)
}

/// The requests about blobs (`/blobs/…`, uploads included) in `seen`.
fn blob_requests(seen: &[String]) -> Vec<&String> {
    seen.iter().filter(|r| r.contains("/blobs/")).collect()
}

// https://github.com/snap/snap/issues/17: a push took three requests per new blob (HEAD,
// POST, PUT); a mount of the repository into itself asks and opens the upload at once.
#[test]
fn issue_17_push_takes_two_requests_per_new_blob_and_one_per_blob_already_there() -> Result {
    if !have_registry() {
        return Ok(());
    }
    let (_t, dir) = workdir()?;
    let reg = Registry::start()?;
    let target = format!("{}/snap/wire:v1", reg.addr);
    let mark = reg.requests()?.len();
    let first = json(&snap_ok(&dir, &["--json", "push", "latest", &target], &[])?)?;
    let seen = reg.requests()?[mark..].to_vec();
    let blobs = first["blobs"].as_u64().ok_or("blobs")?;
    assert_eq!(first["uploaded"].as_u64(), Some(blobs), "{first}");
    let about_blobs = blob_requests(&seen);
    assert!(
        about_blobs.len() as u64 <= 2 * blobs,
        "{} requests for {blobs} new blobs: {about_blobs:#?}",
        about_blobs.len()
    );
    assert!(
        !about_blobs.iter().any(|r| r.starts_with("HEAD ")),
        "no HEAD before an upload: {about_blobs:#?}"
    );

    // Again, into the same repository: every blob is there, one request each, no bytes.
    let mark = reg.requests()?.len();
    let again = json(&snap_ok(&dir, &["--json", "push", "latest", &target], &[])?)?;
    let seen = reg.requests()?[mark..].to_vec();
    assert_eq!(
        (again["uploaded"].as_u64(), again["skipped"].as_u64()),
        (Some(0), Some(blobs)),
        "{again}"
    );
    assert_eq!(
        blob_requests(&seen).len() as u64,
        blobs,
        "{:#?}",
        blob_requests(&seen)
    );
    assert!(
        !seen
            .iter()
            .any(|r| r.starts_with("PUT ") && r.contains("/blobs/")),
        "nothing uploaded twice: {seen:#?}"
    );

    // What went up is whole: a fresh store pulls it and its fsck is clean.
    let fresh = tempfile::tempdir()?;
    snap_ok(fresh.path(), &["init"], &[])?;
    snap_ok(fresh.path(), &["pull", &target], &[])?;
    snap_ok(fresh.path(), &["fsck"], &[])?;
    Ok(())
}
