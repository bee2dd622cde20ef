use super::*;

fn drain() -> impl BlobSink {
    sink(|_, _, r| io::copy(r, &mut io::sink()))
}

fn layout_tar(index: &[u8], blobs: &[&[u8]]) -> io::Result<Vec<u8>> {
    let mut sorted: Vec<(Digest, &[u8])> = blobs.iter().map(|b| (Digest::of(b), *b)).collect();
    sorted.sort_by_key(|(d, _)| *d);
    let mut w = TarWriter::new(Vec::new())?;
    for (d, b) in &sorted {
        w.blob(d, b.len() as u64, &mut &b[..])?;
    }
    w.finish(index)
}

#[test]
fn written_layouts_read_back_and_are_deterministic() -> Result<(), Box<dyn std::error::Error>> {
    let index = br#"{"schemaVersion":2,"manifests":[]}"#;
    let a = layout_tar(index, &[b"one", b"two"])?;
    assert_eq!(
        a,
        layout_tar(index, &[b"two", b"one"])?,
        "order and bytes are fixed"
    );
    let mut seen = Vec::new();
    let l = read_tar(
        &a[..],
        Expansion::at_most(u64::MAX),
        &mut sink(|d, _, r| {
            let mut v = Vec::new();
            r.read_to_end(&mut v)?;
            seen.push((*d, v.clone()));
            Ok(v.len() as u64)
        }),
    )?;
    assert_eq!(l.index, index);
    check_oci_layout(l.oci_layout.as_deref().ok_or("no oci-layout")?)?;
    assert_eq!(seen.len(), 2);
    // GNU tar lists what we wrote.
    let listing = {
        let mut c = std::process::Command::new("tar")
            .arg("-tvf")
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()?;
        c.stdin.take().ok_or("stdin")?.write_all(&a)?;
        String::from_utf8(c.wait_with_output()?.stdout)?
    };
    assert!(
        listing.contains("root/root") || listing.contains("0/0"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .next()
            .is_some_and(|l| l.ends_with("oci-layout")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .last()
            .is_some_and(|l| l.ends_with("index.json")),
        "{listing}"
    );
    Ok(())
}

#[test]
fn compressed_archives_are_detected_by_their_bytes() -> Result<(), Box<dyn std::error::Error>> {
    let plain = layout_tar(br#"{"schemaVersion":2,"manifests":[]}"#, &[b"x"])?;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain)?;
    let gz = gz.finish()?;
    let zst = zstd::stream::encode_all(&plain[..], 3)?;
    for bytes in [plain, gz, zst] {
        let l = read_tar(&bytes[..], Expansion::at_most(u64::MAX), &mut drain())?;
        assert_eq!(l.index, br#"{"schemaVersion":2,"manifests":[]}"#);
    }
    Ok(())
}

/// A GNU-style member with any type flag and link name, checksummed.
fn raw_entry(out: &mut Vec<u8>, path: &str, kind: u8, content: &[u8], link: &str) {
    let mut h = [0u8; 512];
    let name = &path.as_bytes()[..path.len().min(100)];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..136].copy_from_slice(format!("{:011o}\0", content.len()).as_bytes());
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    out.extend_from_slice(&h);
    out.extend_from_slice(content);
    out.resize(out.len() + tar::padding(content.len() as u64), 0);
}

#[test]
fn hostile_entries_are_refused() {
    let d = Digest::of(b"x").hex();
    let cases: Vec<(&str, u8, &[u8], &str)> = vec![
        ("../escape", b'0', b"x", ""),
        ("/etc/passwd", b'0', b"x", ""),
        ("blobs/sha256/../../x", b'0', b"x", ""),
        ("evil-link", b'2', b"", "/etc"),
        ("blobs/sha256/link", b'1', b"", "oci-layout"),
        ("blobs/sha512/abc", b'0', b"x", ""),
        ("random.txt", b'0', b"x", ""),
        ("dev", b'3', b"", ""),
    ];
    for (path, kind, content, link) in cases {
        let mut t = Vec::new();
        raw_entry(&mut t, path, kind, content, link);
        t.extend_from_slice(&tar::TRAILER);
        let r = read_tar(&t[..], Expansion::at_most(u64::MAX), &mut drain());
        assert!(r.is_err(), "{path} must be refused");
    }
    // A blob whose bytes do not match its name, and a duplicate.
    let mut t = Vec::new();
    raw_entry(&mut t, &format!("blobs/sha256/{d}"), b'0', b"y", "");
    t.extend_from_slice(&tar::TRAILER);
    assert!(matches!(
        read_tar(&t[..], Expansion::at_most(u64::MAX), &mut drain()),
        Err(Error::DigestMismatch { .. })
    ));
    let mut t = Vec::new();
    raw_entry(&mut t, "oci-layout", b'0', OCI_LAYOUT_BYTES, "");
    raw_entry(&mut t, "./oci-layout", b'0', OCI_LAYOUT_BYTES, "");
    t.extend_from_slice(&tar::TRAILER);
    assert!(matches!(
        read_tar(&t[..], Expansion::at_most(u64::MAX), &mut drain()),
        Err(Error::Duplicate { .. })
    ));
}

#[test]
fn a_decompression_bomb_stops_at_the_limit() -> Result<(), Box<dyn std::error::Error>> {
    let big = vec![0u8; 8 << 20];
    let plain = layout_tar(br#"{"schemaVersion":2,"manifests":[]}"#, &[&big])?;
    let zst = zstd::stream::encode_all(&plain[..], 3)?;
    assert!(zst.len() < 10_000, "it compresses very well");
    let r = read_tar(&zst[..], Expansion::at_most(1 << 20), &mut drain());
    assert!(r.is_err());
    Ok(())
}

// issue 13: manifest bytes parsed as an index with no entries (`manifests` defaulted to
// empty), so an entry typed as an index imported a manifest that could not be restored.
#[test]
fn an_index_is_never_a_manifest() {
    let config = format!(
        r#"{{"mediaType":"application/vnd.oci.empty.v1+json","digest":"{}","size":2}}"#,
        Digest::of(b"{}")
    );
    let manifest = format!(r#"{{"schemaVersion":2,"config":{config},"layers":[]}}"#);
    assert!(RawIndex::from_bytes(manifest.into_bytes()).is_err());
    let layers_only = br#"{"schemaVersion":2,"layers":[],"manifests":[]}"#;
    assert!(RawIndex::from_bytes(layers_only.to_vec()).is_err());
    assert!(
        RawIndex::from_bytes(br#"{"schemaVersion":2}"#.to_vec()).is_err(),
        "`manifests` is required"
    );
    assert!(RawIndex::from_bytes(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec()).is_ok());
}

#[test]
fn ref_names_are_kept_whole() {
    let mut d = Descriptor::new("x", Digest::of(b""), 0);
    for (name, tag) in [
        ("v1", Some("v1")),
        ("127.0.0.1:5000/a/b:v2", Some("127.0.0.1:5000/a/b:v2")),
        (
            "registry.example.com/repo:latest",
            Some("registry.example.com/repo:latest"),
        ),
        ("host:5000/repo", Some("host:5000/repo")),
        ("repo@sha256:abc", None),
        ("", None),
    ] {
        d.annotations
            .insert(ANNOTATION_REF_NAME.into(), name.into());
        assert_eq!(ref_name(&d).as_deref(), tag, "{name}");
    }
}
