//! Every manifest snap writes validates against the OCI image-spec v1.1.1 JSON schemas
//! (vendored in fixtures/oci-schemas).
#![allow(clippy::disallowed_methods)] // tests write their input files directly

use std::path::{Path, PathBuf};

use snap::ops::NoProgress;
use snap::ops::{self, CommitOptions};
use snap::snapshot::Snapshot;

type Result<T = ()> = std::result::Result<T, Box<dyn std::error::Error>>;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/oci-schemas")
}

/// Resolves the schemas' relative `$ref`s (`defs.json`, `content-descriptor.json`, …) by
/// file name, whatever base URI the draft-04 `id`s give them.
struct Local;

impl jsonschema::Retrieve for Local {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> std::result::Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let name = uri
            .path()
            .as_str()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let text = std::fs::read_to_string(schema_dir().join(&name))?;
        Ok(serde_json::from_str(&text)?)
    }
}

fn validate(schema_file: &str, doc: &[u8]) -> Result {
    let schema: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(schema_dir().join(schema_file))?)?;
    let validator = jsonschema::options()
        .with_retriever(Local)
        .build(&schema)
        .map_err(|e| format!("schema {schema_file}: {e}"))?;
    let value: serde_json::Value = serde_json::from_slice(doc)?;
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} invalid: {errors:?}\n{}",
            schema_file,
            String::from_utf8_lossy(doc)
        )
        .into())
    }
}

fn commit(store: &snap::store::Store, cwd: &Path, path: &str) -> Result<Snapshot> {
    let out = ops::commit(
        store,
        &CommitOptions {
            paths: vec![path.into()],
            message: "schema".into(),
            cwd: cwd.to_owned(),
            annotations: vec!["com.example.team=search".into()],
            ..CommitOptions::default()
        },
        &NoProgress,
    )?;
    Ok(Snapshot::load(store, &out.digest)?)
}

#[test]
fn direct_and_grouped_manifests_validate_against_the_image_manifest_schema() -> Result {
    let dir = tempfile::tempdir()?;
    let (store, _) = ops::init(None, dir.path())?;
    std::fs::create_dir_all(dir.path().join("small"))?;
    std::fs::write(dir.path().join("small/one.txt"), "one")?;
    let direct = commit(&store, dir.path(), "small")?;
    assert_eq!(direct.manifest.manifest().layers.len(), 1);
    validate("image-manifest-schema.json", direct.manifest.bytes())?;

    std::fs::create_dir_all(dir.path().join("big"))?;
    for i in 0..200 {
        std::fs::write(
            dir.path().join(format!("big/f{i}")),
            format!("file {i}").repeat(i),
        )?;
    }
    let grouped = commit(&store, dir.path(), "big")?;
    assert!(
        grouped.manifest.manifest().layers.len() >= 2,
        "file groups and trees"
    );
    validate("image-manifest-schema.json", grouped.manifest.bytes())?;
    for layer in &grouped.manifest.manifest().layers {
        validate("content-descriptor.json", &serde_json::to_vec(layer)?)?;
    }

    std::fs::create_dir_all(dir.path().join("empty"))?;
    let empty = commit(&store, dir.path(), "empty")?;
    validate("image-manifest-schema.json", empty.manifest.bytes())?;
    Ok(())
}

#[test]
fn the_validator_rejects_a_broken_manifest() {
    let bad = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"x","digest":"sha256:nothex","size":-1},"layers":[]}"#;
    assert!(
        validate("image-manifest-schema.json", bad).is_err(),
        "a validator that accepts this is not checking"
    );
}

#[test]
fn exported_layouts_validate_against_the_index_and_layout_schemas() -> Result {
    let dir = tempfile::tempdir()?;
    let (store, _) = ops::init(None, dir.path())?;
    std::fs::create_dir_all(dir.path().join("small"))?;
    std::fs::write(dir.path().join("small/one.txt"), "one")?;
    commit(&store, dir.path(), "small")?;
    let out = dir.path().join("layout");
    ops::export(
        &store,
        &ops::ExportOptions {
            revs: vec!["latest".into()],
            out: out.clone(),
            ..ops::ExportOptions::default()
        },
    )?;
    validate(
        "image-index-schema.json",
        &std::fs::read(out.join("index.json"))?,
    )?;
    validate(
        "image-layout-schema.json",
        &std::fs::read(out.join("oci-layout"))?,
    )?;
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json"))?)?;
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    Ok(())
}

// issue 16: signatures, attached artifacts, the layout that carries them and the referrers
// index of the fallback tag schema are all valid OCI documents.
#[test]
fn referrers_and_their_indexes_validate_against_the_schemas() -> Result {
    let dir = tempfile::tempdir()?;
    let (store, _) = ops::init(None, dir.path())?;
    std::fs::create_dir_all(dir.path().join("small"))?;
    std::fs::write(dir.path().join("small/one.txt"), "one")?;
    let snap = commit(&store, dir.path(), "small")?;
    let key = dir.path().join("key");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()?;
    assert!(
        status.success(),
        "ssh-keygen (openssh-client) must be installed"
    );
    let signed = ops::sign(
        &store,
        &ops::SignOptions {
            rev: "latest".into(),
            key: Some(key),
        },
    )?;
    std::fs::write(dir.path().join("sbom.json"), "{}")?;
    let attached = ops::attach(
        &store,
        &ops::AttachOptions {
            rev: "latest".into(),
            files: vec![dir.path().join("sbom.json")],
            artifact_type: "application/vnd.example.sbom.v1+json".into(),
            annotations: vec!["k=v".into()],
        },
    )?;
    let mut descriptors = Vec::new();
    for d in [signed.signature, attached.digest] {
        let bytes = store.objects.read(&d, 1 << 20)?;
        validate("image-manifest-schema.json", &bytes)?;
        let m = snap::oci::RawManifest::from_bytes(bytes)?;
        assert_eq!(
            m.manifest().subject.as_ref().map(|s| s.digest),
            Some(snap.manifest.digest())
        );
        descriptors.push(snap::oci::referrers::descriptor(&m));
    }
    let index = snap::oci::referrers::index(descriptors);
    validate("image-index-schema.json", index.bytes())?;

    let out = dir.path().join("layout");
    ops::export(
        &store,
        &ops::ExportOptions {
            revs: vec!["latest".into()],
            out: out.clone(),
            ..ops::ExportOptions::default()
        },
    )?;
    let index_json = std::fs::read(out.join("index.json"))?;
    validate("image-index-schema.json", &index_json)?;
    let index: serde_json::Value = serde_json::from_slice(&index_json)?;
    assert_eq!(index["manifests"].as_array().map(Vec::len), Some(3));
    Ok(())
}
