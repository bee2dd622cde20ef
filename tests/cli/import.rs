//! `snap import` of layouts that are well-formed archives but inconsistent, and of the same
//! layout by several processes at once (issue 13, items 8 and 9).

use std::path::PathBuf;

use serde_json::{Value, json};
use snap::Digest;
use snap::ops::FsckReport;
use snap::ops::import::{ImportOutcome, RefUpdate};

use crate::harness::{Env, Result, stderr};

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Every file under .store with its size, except the advisory lock file.
fn store_listing(env: &Env) -> Result<String> {
    env.sh("find .store -path .store/LOCK -prune -o -printf '%p %s\\n' | sort")
}

fn js(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

fn desc(media_type: &str, bytes: &[u8], tag: Option<&str>) -> Value {
    let mut d = json!({
        "mediaType": media_type,
        "digest": Digest::of(bytes).to_string(),
        "size": bytes.len(),
    });
    if let Some(t) = tag {
        d["annotations"] = json!({ REF_NAME: t });
    }
    d
}

/// A one-file ORAS-style artifact: its manifest (with or without `mediaType`) and its blobs.
fn artifact(content: &[u8], with_media_type: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
    let config = b"{}".to_vec();
    let mut m = json!({
        "schemaVersion": 2,
        "artifactType": "application/vnd.example.test.v1",
        "config": desc("application/vnd.oci.empty.v1+json", &config, None),
        "layers": [desc("application/vnd.example.file.v1", content, None)],
    });
    if with_media_type {
        m["mediaType"] = json!(MANIFEST);
    }
    let m = js(&m);
    (m.clone(), vec![m, config, content.to_vec()])
}

/// Writes a layout archive whose `index.json` lists `entries`, holding `blobs`.
fn archive(env: &Env, name: &str, entries: &[Value], blobs: &[Vec<u8>]) -> Result<PathBuf> {
    let mut sorted: Vec<(Digest, &Vec<u8>)> = blobs.iter().map(|b| (Digest::of(b), b)).collect();
    sorted.sort_by_key(|(d, _)| *d);
    sorted.dedup_by_key(|(d, _)| *d);
    let mut w = snap::oci::layout::TarWriter::new(Vec::new())?;
    for (d, b) in &sorted {
        w.blob(d, b.len() as u64, &mut &b[..])?;
    }
    let index = js(&json!({"schemaVersion": 2, "manifests": entries}));
    env.write(name, w.finish(&index)?)?;
    Ok(env.join(name))
}

/// Imports `path` into a store that already holds a snapshot, expecting exit 2 with `expected`
/// in the one `error:` line, and nothing changed under `.store`.
fn refused(env: &Env, args: &[&str], expected: &str) -> Result {
    let before = store_listing(env)?;
    let refs_before = env.ok(&["refs"])?;
    let mut all = vec!["import"];
    all.extend_from_slice(args);
    let out = env.run(&all, 2)?;
    let err = stderr(&out);
    let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error: ")).collect();
    assert_eq!(errors.len(), 1, "one error line: {err}");
    assert!(
        errors[0].contains(expected),
        "expected `{expected}` in: {err}"
    );
    assert_eq!(
        store_listing(env)?,
        before,
        "{args:?} left something in the store"
    );
    assert_eq!(env.ok(&["refs"])?, refs_before, "{args:?} moved a ref");
    Ok(())
}

fn store_with_a_snapshot() -> Result<Env> {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo"])?;
    Ok(env)
}

// issue 13: a layout whose second ref name is invalid stored objects and the first ref before
// failing; every name is now parsed before anything is stored.
#[test]
fn an_invalid_second_ref_name_is_refused_before_anything_is_stored() -> Result {
    let env = store_with_a_snapshot()?;
    let (m1, b1) = artifact(b"one\n", true);
    let (m2, b2) = artifact(b"two\n", true);
    for (i, bad) in ["x.lock", "a\nb", "..", "a b", "v1\u{1b}[31m"]
        .into_iter()
        .enumerate()
    {
        let blobs: Vec<Vec<u8>> = b1.iter().chain(&b2).cloned().collect();
        let path = archive(
            &env,
            &format!("bad-ref-{i}.tar"),
            &[
                desc(MANIFEST, &m1, Some("good")),
                desc(MANIFEST, &m2, Some(bad)),
            ],
            &blobs,
        )?;
        refused(
            &env,
            &[path.to_str().ok_or("utf8")?],
            "is tagged with a name snap cannot use as a ref",
        )?;
    }
    // The same for --ref.
    let path = archive(&env, "one.tar", &[desc(MANIFEST, &m1, None)], &b1)?;
    refused(
        &env,
        &["--ref", "a.lock", path.to_str().ok_or("utf8")?],
        "invalid ref name",
    )?;
    Ok(())
}

// issue 13: an index entry typed as an index that points at a manifest imported with exit 0 and
// left a snapshot that could not be restored (an index parser accepted manifest bytes).
#[test]
fn an_entry_whose_media_type_does_not_match_its_bytes_is_refused() -> Result {
    let env = store_with_a_snapshot()?;
    let (bare, blobs) = artifact(b"hello\n", false);
    let path = archive(
        &env,
        "index-is-manifest.tar",
        &[desc(INDEX, &bare, Some("v1"))],
        &blobs,
    )?;
    refused(&env, &[path.to_str().ok_or("utf8")?], "not an image index")?;

    // The converse: an index (without its own mediaType) described as a manifest.
    let (m, mut blobs) = artifact(b"hello\n", true);
    let nested = js(&json!({"schemaVersion": 2, "manifests": [desc(MANIFEST, &m, None)]}));
    blobs.push(nested.clone());
    let path = archive(
        &env,
        "manifest-is-index.tar",
        &[desc(MANIFEST, &nested, Some("v1"))],
        &blobs,
    )?;
    refused(
        &env,
        &[path.to_str().ok_or("utf8")?],
        "not an image manifest",
    )?;

    // A nested index whose bytes say they are a manifest.
    let (m, mut blobs) = artifact(b"hello\n", true);
    let inner = js(&json!({"schemaVersion": 2, "manifests": [desc(INDEX, &m, None)]}));
    blobs.push(inner.clone());
    let path = archive(
        &env,
        "nested.tar",
        &[desc(INDEX, &inner, Some("v1"))],
        &blobs,
    )?;
    refused(&env, &[path.to_str().ok_or("utf8")?], "not an image index")?;
    Ok(())
}

// issue 13: when two index entries shared a digest, the second entry's size was never checked
// and its tag was inserted.
#[test]
fn duplicate_descriptors_must_agree_on_size_and_media_type() -> Result {
    let env = store_with_a_snapshot()?;
    let (m, blobs) = artifact(b"hello\n", true);
    let mut lie = desc(MANIFEST, &m, Some("b"));
    lie["size"] = json!(999);
    let path = archive(
        &env,
        "dup-size.tar",
        &[desc(MANIFEST, &m, Some("a")), lie],
        &blobs,
    )?;
    refused(&env, &[path.to_str().ok_or("utf8")?], "999")?;
    let path = archive(
        &env,
        "dup-type.tar",
        &[desc(MANIFEST, &m, Some("a")), desc(INDEX, &m, Some("b"))],
        &blobs,
    )?;
    refused(&env, &[path.to_str().ok_or("utf8")?], "described twice")?;
    let r: FsckReport = env.json(&["fsck"])?;
    assert!(r.is_clean(), "{:?}", r.problems);
    Ok(())
}

// issue 13: two concurrent imports of the same layout made the loser report a false conflict
// (exit 3): it read the ref without its lock, then its compare-and-swap from "absent" failed
// because the winner had inserted the very digest it was importing.
#[test]
fn concurrent_imports_of_the_same_layout_all_succeed() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    let (m1, b1) = artifact(b"one\n", true);
    let (m2, b2) = artifact(b"two\n", true);
    let blobs: Vec<Vec<u8>> = b1.iter().chain(&b2).cloned().collect();
    let path = archive(
        &env,
        "two.tar",
        &[
            desc(MANIFEST, &m1, Some("a")),
            desc(MANIFEST, &m2, Some("b")),
        ],
        &blobs,
    )?;
    let path = path.to_str().ok_or("utf8")?;
    let children: Vec<_> = (0..8)
        .map(|_| {
            env.snap_std(env.path())
                .args(["--json", "import", path])
                .env("SNAP_LOCK_TIMEOUT_MS", "20000")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
        })
        .collect::<std::io::Result<_>>()?;
    let mut inserted = 0;
    for child in children {
        let out = child.wait_with_output()?;
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let o: ImportOutcome = serde_json::from_slice(&out.stdout)?;
        for r in &o.refs {
            assert!(
                matches!(r.update, RefUpdate::Inserted | RefUpdate::Unchanged),
                "{r:?}"
            );
            if r.update == RefUpdate::Unchanged {
                assert_eq!(r.previous, Some(r.digest), "unchanged names what it found");
            }
            inserted += usize::from(r.update == RefUpdate::Inserted);
        }
    }
    assert_eq!(inserted, 2, "each ref is inserted exactly once");
    let refs = env.ok(&["refs"])?;
    assert!(refs.contains(&format!("{} a", Digest::of(&m1))), "{refs}");
    assert!(refs.contains(&format!("{} b", Digest::of(&m2))), "{refs}");
    Ok(())
}
