//! Every parser of untrusted bytes, fed thousands of mutations of real inputs: none may panic
//! (a panic fails the test). A deterministic, seeded complement to coverage-guided fuzzing,
//! cheap enough for every CI run.

#![allow(clippy::disallowed_methods)] // tests write their fixtures directly

mod support;

use support::Rng;

use std::io::Cursor;
use std::path::Path;

use snap::Digest;
use snap::object::{SnapshotConfig, Tree};
use snap::oci::RawManifest;
use snap::oci::layout::{Expansion, RawIndex, read_tar, sink};
use snap::pack::PackIndex;

/// One mutation: flip, insert, delete, duplicate a slice, or splice in JSON-ish tokens.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..=rng.below(4) {
        let at = rng.below(b.len() + 1);
        match rng.below(6) {
            0 if !b.is_empty() => {
                let i = at.min(b.len() - 1);
                b[i] ^= 1 << rng.below(8);
            }
            1 => b.insert(at, u8::try_from(rng.below(256)).unwrap_or(0)),
            2 if at < b.len() => {
                let end = (at + rng.below(16)).min(b.len());
                b.drain(at..end);
            }
            3 if at < b.len() => {
                let end = (at + rng.below(64)).min(b.len());
                let piece = b[at..end].to_vec();
                b.splice(at..at, piece);
            }
            4 => {
                const TOKENS: [&[u8]; 10] = [
                    b"\"",
                    b"{",
                    b"}",
                    b"[",
                    b"]",
                    b"null",
                    b"-1",
                    b"1e999",
                    b"\\u0000",
                    b"18446744073709551616",
                ];
                let t = TOKENS[rng.below(TOKENS.len())];
                b.splice(at..at, t.iter().copied());
            }
            _ => b.truncate(at),
        }
    }
    b
}

const ROUNDS: usize = 4000;

fn fuzz(seeds: &[Vec<u8>], mut parse: impl FnMut(&[u8])) {
    let mut rng = Rng::seeded(0x5eed_cafe_f00d_0001);
    for seed in seeds {
        parse(seed);
        for _ in 0..ROUNDS {
            parse(&mutate(&mut rng, seed));
        }
    }
}

/// A store with a grouped and a direct snapshot, and its files' bytes by kind.
fn corpus() -> (tempfile::TempDir, Vec<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let snap = |args: &[&str]| {
        let out = support::snap_command(d, d)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    std::fs::create_dir_all(d.join("big/sub")).unwrap_or_else(|e| panic!("{e}"));
    for i in 0..120 {
        std::fs::write(d.join(format!("big/sub/f{i}")), format!("{i}\n").repeat(i))
            .unwrap_or_else(|e| panic!("{e}"));
    }
    std::os::unix::fs::symlink("sub/f1", d.join("big/link")).unwrap_or_else(|e| panic!("{e}"));
    snap(&["commit", "big"]);
    snap(&["commit", "-C", "big/sub", "f1", "f2", "--ref", "small"]);
    snap(&["export", "--oci", "latest", "small", "-o", "layout.tar"]);
    let mut manifests = Vec::new();
    for r in ["latest", "small"] {
        manifests.push(snap(&["show", "--manifest", r]).into_bytes());
    }
    (dir, manifests)
}

fn read_zstd_objects(store: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in walk(&store.join("objects")) {
        if let Ok(b) = std::fs::read(&entry)
            && let Ok(plain) = zstd::decode_all(Cursor::new(b))
        {
            out.push(plain);
        }
    }
    out
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn json_parsers_never_panic() {
    let (dir, manifests) = corpus();
    let objects = read_zstd_objects(&dir.path().join(".store"));
    let configs: Vec<Vec<u8>> = objects
        .iter()
        .filter(|o| o.starts_with(b"{\"root\""))
        .cloned()
        .collect();
    let trees: Vec<Vec<u8>> = objects
        .iter()
        .filter(|o| o.starts_with(b"{\"entries\""))
        .cloned()
        .collect();
    assert!(!configs.is_empty() && !trees.is_empty());
    fuzz(&manifests, |b| {
        let _ = RawManifest::from_bytes(b.to_vec());
    });
    let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":12,"annotations":{"org.opencontainers.image.ref.name":"v1"}}]}"#;
    fuzz(&[index.to_vec()], |b| {
        let _ = RawIndex::from_bytes(b.to_vec());
    });
    // The one manifest-or-index check, on both kinds of seed.
    let mut nodes = manifests.clone();
    nodes.push(index.to_vec());
    fuzz(&nodes, |b| {
        if let Ok(n) = snap::oci::Node::from_bytes(b.to_vec()) {
            let _ = (n.media_type(), n.children().count());
        }
    });
    fuzz(&configs, |b| {
        let _ = SnapshotConfig::decode(b);
    });
    fuzz(&trees, |b| {
        let _ = Tree::decode(b);
    });
}

#[test]
fn pack_indexes_and_packs_never_panic() {
    let (dir, _) = corpus();
    let packs = dir.path().join(".store/packs");
    let mut idx = Vec::new();
    let mut pack_bytes = Vec::new();
    for p in walk(&packs) {
        let b = std::fs::read(&p).unwrap_or_else(|e| panic!("{e}"));
        if p.extension().is_some_and(|e| e == "idx") {
            idx.push(b);
        } else if b.len() < 64 << 10 {
            pack_bytes.push(b);
        }
    }
    assert!(!idx.is_empty() && !pack_bytes.is_empty());
    fuzz(&idx, |b| {
        let _ = PackIndex::decode(b, 1 << 20);
    });
    let mut rng = Rng::seeded(7);
    for seed in &pack_bytes {
        for _ in 0..300 {
            let m = mutate(&mut rng, seed);
            let _ = snap::pack::scan::index_pack(&mut Cursor::new(m));
        }
    }
}

#[test]
fn layout_archives_never_panic() {
    let (dir, _) = corpus();
    let tar = std::fs::read(dir.path().join("layout.tar")).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng::seeded(11);
    for _ in 0..400 {
        let m = mutate(&mut rng, &tar);
        let _ = read_tar(
            Cursor::new(m),
            Expansion::at_most(1 << 30),
            &mut sink(|_, _, r| std::io::copy(r, &mut std::io::sink())),
        );
    }
}

#[test]
fn the_tar_reader_never_panics() {
    let (dir, _) = corpus();
    let tar = std::fs::read(dir.path().join("layout.tar")).unwrap_or_else(|e| panic!("{e}"));
    let mut rng = Rng::seeded(13);
    for _ in 0..400 {
        let m = mutate(&mut rng, &tar);
        let mut reader = snap::pack::tar::Reader::new(Cursor::new(m));
        while let Ok(Some(mut entry)) = reader.next_entry() {
            let _ = std::io::copy(&mut entry, &mut std::io::sink());
        }
    }
}

#[test]
fn names_and_references_never_panic() {
    let seeds: Vec<Vec<u8>> = [
        "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "latest",
        "heads/feature/x-1.2",
        "ghcr.io/acme/index:v1",
        "127.0.0.1:5000/a/b@sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "[::1]:5000/a:b",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz(&seeds, |b| {
        let s = String::from_utf8_lossy(b);
        let _ = s.parse::<Digest>();
        let _ = snap::store::RefName::head(&s);
        let _ = snap::store::RefName::parse_qualified(&s);
        let _ = snap::registry::RemoteRef::parse(&s);
    });
}
