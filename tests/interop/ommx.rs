//! OMMX (PyPI `ommx`, the OCI artifact format of an optimisation-modelling ecosystem): its
//! archives have no `oci-layout`, untitled layers of its own media types, and full image
//! references as names (issue 14).

use crate::harness::{Result, have, sh, snap};

fn have_ommx() -> bool {
    have(
        "python3",
        &["-c", "import ommx.artifact"],
        "python3 -m pip install ommx",
    )
}

#[test]
fn an_ommx_archive_round_trips_through_snap_with_its_digest_and_name() -> Result {
    if !have_ommx() {
        return Ok(());
    }
    let t = tempfile::tempdir()?;
    let dir = t.path();
    // OMMX builds the archive: a JSON layer and a raw one, annotations on both levels.
    let made = sh(
        dir,
        r#"python3 - <<'EOF'
from ommx.artifact import ArtifactBuilder
b = ArtifactBuilder.new_archive("lp.ommx", "localhost:5000/ommx/lp:v1")
b.add_layer("application/org.ommx.v1.custom", b"hello world", {"org.ommx.user.k": "v"})
b.add_layer("application/json", b"{\"nodes\": 3}", {"org.ommx.user.kind": "meta"})
b.add_annotation("org.ommx.user.x", "y")
a = b.build()
print(a.image_name)
for l in a.layers:
    print(l.digest)
EOF"#,
    )?;
    let mut lines = made.lines();
    let name = lines.next().ok_or("image name")?.to_owned();
    let layers: Vec<&str> = lines.collect();
    assert_eq!(name, "localhost:5000/ommx/lp:v1");
    assert_eq!(layers.len(), 2);

    sh(dir, "mkdir store")?;
    let store = dir.join("store");
    snap(&store, &["import", "../lp.ommx"])?;
    let refs = snap(&store, &["refs"])?;
    assert!(
        refs.trim_end().ends_with(" localhost:5000/ommx/lp:v1"),
        "{refs}"
    );
    let digest = refs.split_whitespace().next().ok_or("digest")?.to_owned();
    snap(&store, &["fsck"])?;

    // Each layer is a file at its blob path, and cat and restore give its bytes.
    let ls = snap(&store, &["ls", &name])?;
    for l in &layers {
        let hex = l.trim_start_matches("sha256:");
        assert!(ls.contains(&format!("blobs/sha256/{hex}")), "{ls}");
    }
    let first = format!("blobs/sha256/{}", layers[0].trim_start_matches("sha256:"));
    assert_eq!(snap(&store, &["cat", &name, &first])?, "hello world");
    snap(&store, &["restore", &name, "../out"])?;
    assert_eq!(std::fs::read(dir.join("out").join(&first))?, b"hello world");

    // Exported back, OMMX loads it under the same name, with the same manifest and layers.
    snap(&store, &["export", "--oci", &name, "-o", "../again.ommx"])?;
    let loaded = sh(
        dir,
        r#"python3 - <<'EOF'
import json, tarfile
from ommx.artifact import Artifact
a = Artifact.load_archive("again.ommx")
print(a.image_name)
print(json.load(tarfile.open("again.ommx").extractfile("index.json"))["manifests"][0]["digest"])
print(a.get_blob(a.layers[0].digest).decode())
for l in a.layers:
    print(l.digest)
EOF"#,
    )?;
    let mut lines = loaded.lines();
    assert_eq!(lines.next(), Some(name.as_str()));
    assert_eq!(lines.next(), Some(digest.as_str()));
    assert_eq!(lines.next(), Some("hello world"));
    assert_eq!(lines.collect::<Vec<_>>(), layers);
    Ok(())
}
