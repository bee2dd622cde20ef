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
    // One tag on two different entries would move the ref once, then conflict.
    let blobs: Vec<Vec<u8>> = b1.iter().chain(&b2).cloned().collect();
    let path = archive(
        &env,
        "same-tag.tar",
        &[
            desc(MANIFEST, &m1, Some("v1")),
            desc(MANIFEST, &m2, Some("v1")),
        ],
        &blobs,
    )?;
    refused(
        &env,
        &[path.to_str().ok_or("utf8")?],
        "ref `v1` names two entries",
    )?;
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

// issue 13: snap could not import its own `.tar.zst` export of a highly compressible snapshot:
// the 100× bomb limit refused the raw layer of zeros (80 MB from a few KB).
#[test]
fn snap_imports_its_own_export_of_a_highly_compressible_snapshot() -> Result {
    let env = Env::new()?;
    env.sh("mkdir -p zeros && head -c 80000000 /dev/zero > zeros/big && echo small > zeros/small")?;
    env.ok(&["commit", "zeros", "-m", "zeros"])?;
    env.ok(&["export", "--oci", "latest", "-o", "z.tar.zst"])?;
    let len = std::fs::metadata(env.join("z.tar.zst"))?.len();
    assert!(
        len * 100 + (64 << 20) < 80_000_000,
        "the archive ({len} bytes) expands past the old limit"
    );
    let dst = Env::new()?;
    let archive = env.join("z.tar.zst");
    let archive = archive.to_str().ok_or("utf8")?;
    let i: ImportOutcome = dst.json(&["import", archive])?;
    assert_eq!(i.refs[0].update, RefUpdate::Inserted);
    dst.ok(&["restore", "latest", "out"])?;
    assert_eq!(
        std::fs::metadata(dst.join("out/zeros/big"))?.len(),
        80_000_000
    );
    let r: FsckReport = dst.json(&["fsck"])?;
    assert!(r.is_clean(), "{:?}", r.problems);

    // --max-bytes raises or lowers the limit, and stages everything as it comes.
    let again = Env::new()?;
    again.ok(&["import", "--max-bytes", "90000000", archive])?;
    let out = again.run(&["import", "--max-bytes", "1000000", archive], 2)?;
    assert!(
        stderr(&out).contains("expands to more than 1000000 bytes"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

/// A tar header block of type `typeflag` declaring `size` bytes, checksummed.
pub fn raw_header(name: &str, typeflag: u8, size: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name.as_bytes());
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(format!("{size:011o}\0").as_bytes());
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

// issue 13: a small archive holding one huge PAX record drove import to 434 MB of memory (the
// `tar` crate reads extension records whole). Now the record is refused from its header, and
// the process stays small.
#[test]
fn a_pax_bomb_is_refused_from_its_header_in_bounded_memory() -> Result {
    use std::io::Write;
    let env = Env::new()?;
    env.ok(&["init"])?;
    // 1 MiB of noise (so the archive is big enough for the old limit to be generous), then
    // 256 MiB that compress to nearly nothing, all one PAX record.
    let noise_len = 1 << 20;
    let record_len: u64 = noise_len + (256 << 20);
    let mut z = zstd::stream::Encoder::new(Vec::new(), 1)?;
    z.write_all(&raw_header("PaxHeader", b'x', record_len))?;
    let mut rng = crate::support::Rng::seeded(0x9e37_79b9_7f4a_7c15);
    let noise: Vec<u8> = (0..noise_len)
        .map(|_| rng.next().to_le_bytes()[0])
        .collect();
    z.write_all(&noise)?;
    let fill = vec![b'9'; 1 << 20];
    for _ in 0..256 {
        z.write_all(&fill)?;
    }
    env.write("pax-bomb.tar.zst", z.finish()?)?;
    let before = store_listing(&env)?;
    let (code, max_rss_kib, err) = env.peak_memory(&["import", "pax-bomb.tar.zst"])?;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.lines()
            .next()
            .is_some_and(|l| l.starts_with("error: ") && l.contains("PAX extended header")),
        "{err}"
    );
    assert!(
        max_rss_kib < 64 << 10,
        "import peaked at {max_rss_kib} KiB of memory"
    );
    assert_eq!(store_listing(&env)?, before, "nothing stored");
    Ok(())
}

// issue 13: an `index.json` of up to 16 MiB was parsed whole, and JSON of tiny annotations
// takes about thirty times its size once parsed (15 MB of it drove import to 430 MB). It is
// now capped at 4 MiB, what registries accept for an index, in a directory or an archive.
#[test]
fn an_oversized_index_json_is_refused_before_it_is_parsed() -> Result {
    let env = store_with_a_snapshot()?;
    let annotations: serde_json::Map<String, Value> =
        (0..420_000).map(|i| (format!("k{i}"), json!(""))).collect();
    let mut entry = desc(MANIFEST, b"x", None);
    entry["annotations"] = Value::Object(annotations);
    let index = js(&json!({"schemaVersion": 2, "manifests": [entry]}));
    assert!(index.len() > 4 << 20, "{}", index.len());
    env.write("L/oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    env.write("L/index.json", &index)?;
    refused(
        &env,
        &["L"],
        "index.json is not a regular file of at most 4194304 bytes",
    )?;
    let w = snap::oci::layout::TarWriter::new(Vec::new())?;
    env.write("big-index.tar", w.finish(&index)?)?;
    refused(
        &env,
        &["big-index.tar"],
        "`index.json` is larger than 4194304 bytes",
    )?;
    Ok(())
}

// issue 14: export took only snapshot manifests: an imported image index (a multi-platform
// image, an index of artifacts) was refused as "not an image manifest" although it is in the
// store. Export now walks the store's graph like push does, so the index, its nested index
// and every manifest below travel, and a re-import gives the same digests.
#[test]
fn an_imported_index_exports_with_everything_below_it() -> Result {
    let env = store_with_a_snapshot()?;
    let (m1, mut blobs) = artifact(b"one\n", true);
    let (m2, more) = artifact(b"two\n", false);
    blobs.extend(more);
    // The nested index lists m1 too: a shared child, stored and exported once.
    let inner = js(
        &json!({"schemaVersion": 2, "mediaType": INDEX, "manifests": [desc(MANIFEST, &m1, None)]}),
    );
    let top = js(&json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [desc(MANIFEST, &m1, None), desc(INDEX, &inner, None), desc(MANIFEST, &m2, None)],
    }));
    blobs.extend([inner.clone(), top.clone()]);
    let path = archive(
        &env,
        "images.tar",
        &[desc(INDEX, &top, Some("multi:v1"))],
        &blobs,
    )?;
    env.ok(&["import", path.to_str().ok_or("utf8")?])?;

    env.ok(&["export", "--oci", "multi:v1", "-o", "out"])?;
    let index: Value = serde_json::from_slice(&std::fs::read(env.join("out/index.json"))?)?;
    assert_eq!(
        index["manifests"],
        json!([desc(INDEX, &top, Some("multi:v1"))]),
        "the entry is the index, as it was imported"
    );
    let mut exported: Vec<String> = std::fs::read_dir(env.join("out/blobs/sha256"))?
        .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_>>()?;
    exported.sort();
    let mut expected: Vec<String> = blobs.iter().map(|b| Digest::of(b).hex()).collect();
    expected.sort();
    expected.dedup();
    assert_eq!(
        exported, expected,
        "every node and blob below the index, once"
    );

    // A fresh store takes the export back with the same digest under the same name.
    let other = Env::new()?;
    let out: ImportOutcome = serde_json::from_str(&other.ok(&[
        "--json",
        "import",
        env.join("out").to_str().ok_or("utf8")?,
    ])?)?;
    assert_eq!(out.entries, vec![Digest::of(&top)]);
    assert_eq!(out.refs.len(), 1);
    assert_eq!(out.refs[0].update, RefUpdate::Inserted);
    let report: FsckReport = serde_json::from_str(&other.ok(&["--json", "fsck"])?)?;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    Ok(())
}
