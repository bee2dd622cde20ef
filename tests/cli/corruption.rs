//! The corruption matrix: random bytes flipped in packs, loose objects, pack indexes, refs and
//! reflogs of a store holding three snapshots. For every flip:
//!
//! * `fsck` catches it (packs, loose objects, indexes, refs: always) and names the damaged
//!   object or file, and the snapshots that depend on it;
//! * `restore` and `export` of each snapshot either refuse (and then fsck named that snapshot)
//!   or produce exactly what they produced from the intact store: never corrupt data. (A
//!   snapshot fsck names may still go out whole when an intact copy of what it needs exists,
//!   e.g. a damaged loose tree that its config also carries inline.)
//!
//! Reflogs carry no checksum: a flip inside a message or a time is a valid line, so only
//! flips that break a line are caught; the test counts both. `SNAP_CORRUPT_FLIPS` sets the
//! flips per kind (4 by default); the totals are printed.

use std::path::{Path, PathBuf};

use snap::ops::fsck::{FsckReport, ProblemKind};

use crate::harness::{Env, Result};
use crate::support::Rng;

fn flips_per_kind() -> usize {
    std::env::var("SNAP_CORRUPT_FLIPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
}

/// Files under `dir` (recursively) whose name passes `keep`, sorted.
fn files(dir: &Path, keep: &dyn Fn(&str) -> bool) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let e = e?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.file_type()?.is_dir() {
                stack.push(e.path());
            } else if keep(&name) {
                out.push(e.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// XORs the byte at `offset` with a non-zero mask; returns the mask.
#[allow(clippy::disallowed_methods)] // deliberate damage to a store file
fn flip(path: &Path, offset: usize, mask: u8) -> Result {
    use std::os::unix::fs::PermissionsExt;
    let mut bytes = std::fs::read(path)?;
    bytes[offset] ^= mask;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    std::fs::write(path, bytes)?;
    Ok(())
}

/// The digest a store file is named after (loose objects and packs), if any.
fn named_digest(path: &Path) -> Option<snap::Digest> {
    let name = path.file_name()?.to_str()?;
    let hex = if let Some(h) = name.strip_suffix(".pack") {
        h.to_owned()
    } else {
        format!("{}{name}", path.parent()?.file_name()?.to_str()?)
    };
    snap::Digest::from_hex(&hex).ok()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Pack,
    Loose,
    Index,
    Ref,
    Reflog,
}

#[test]
fn every_flipped_byte_is_caught_named_and_never_restored_or_exported() -> Result {
    let mut rng = Rng::from_env("SNAP_CORRUPT_SEED");
    let env = Env::new()?;
    // Three snapshots: a grouped one (packs), its next version, and a direct one (loose).
    env.sh(
        "mkdir -p big && for i in $(seq 1 300); do seq 1 $i > big/f$i; done && \
         head -c 200000 /dev/urandom > big/blob",
    )?;
    env.ok(&["commit", "big", "-m", "one"])?;
    env.sh("for i in $(seq 1 40); do echo changed >> big/f$i; done")?;
    env.ok(&["commit", "big", "-m", "two"])?;
    env.fixture("demo", "demo")?;
    env.ok(&["commit", "demo", "--ref", "small"])?;
    env.ok(&["tag", "first", "latest~1"])?;
    let snapshots = ["latest", "latest~1", "small"];
    let ids: Vec<snap::Digest> = snapshots
        .iter()
        .map(|s| -> Result<snap::Digest> {
            let v: serde_json::Value = serde_json::from_str(&env.ok(&["--json", "show", s])?)?;
            Ok(v["digest"].as_str().ok_or("digest")?.parse()?)
        })
        .collect::<Result<_>>()?;
    // What the intact store gives.
    for (i, id) in ids.iter().enumerate() {
        let rev = id.to_string();
        env.ok(&["restore", &rev, &format!("good-r{i}")])?;
        env.ok(&["export", "--oci", &rev, "-o", &format!("good-e{i}.tar")])?;
    }
    env.sh("mv .store pristine")?;

    let mut flipped = 0;
    let mut caught = 0;
    let mut reflog_valid_after_flip = 0;
    let (mut refused, mut intact) = (0, 0);
    for kind in [
        Kind::Pack,
        Kind::Loose,
        Kind::Index,
        Kind::Ref,
        Kind::Reflog,
    ] {
        for _ in 0..flips_per_kind() {
            env.sh("rm -rf .store out-* bad-*.tar && cp -a pristine .store")?;
            let store = env.join(".store");
            let candidates = match kind {
                Kind::Pack => files(&store.join("packs"), &|n| n.ends_with(".pack"))?,
                Kind::Index => files(&store.join("packs"), &|n| n.ends_with(".idx"))?,
                Kind::Loose => files(&store.join("objects"), &|n| !n.starts_with('.'))?,
                Kind::Ref => files(&store.join("refs"), &|_| true)?,
                Kind::Reflog => files(&store.join("logs"), &|_| true)?,
            };
            let file = &candidates[rng.below(candidates.len())];
            let len = usize::try_from(std::fs::metadata(file)?.len())?;
            let offset = rng.below(len);
            let mask = u8::try_from(rng.below(255) + 1)?;
            flip(file, offset, mask)?;
            flipped += 1;
            let what = format!("{kind:?} {} byte {offset} ^ {mask:#04x}", file.display());

            let out = env.snap().args(["--json", "fsck"]).output()?;
            let report: FsckReport = serde_json::from_slice(&out.stdout)?;
            assert_eq!(
                out.status.code(),
                Some(i32::from(!report.is_clean())),
                "{what}"
            );
            if kind == Kind::Reflog {
                if report.is_clean() {
                    reflog_valid_after_flip += 1;
                } else {
                    caught += 1;
                    assert!(
                        report
                            .problems
                            .iter()
                            .all(|p| p.kind == ProblemKind::CorruptReflog),
                        "{what}: {:?}",
                        report.problems
                    );
                }
                continue;
            }
            assert!(!report.is_clean(), "{what}: not caught");
            caught += 1;
            let digest = named_digest(file);
            assert!(
                report
                    .problems
                    .iter()
                    .any(|p| p.path.as_deref() == Some(file.as_path())
                        || (digest.is_some() && p.object == digest)),
                "{what}: no problem names it: {:#?}",
                report.problems
            );
            let named = |id: &snap::Digest| {
                report
                    .problems
                    .iter()
                    .any(|p| p.object == Some(*id) || p.snapshots.contains(id))
            };
            if kind == Kind::Ref {
                continue; // the snapshots are intact; only the name is lost
            }
            for (i, (s, id)) in snapshots.iter().zip(&ids).enumerate() {
                // Address snapshots by digest: refs are not what this part is about.
                let rev = id.to_string();
                let restored = env
                    .snap()
                    .args(["restore", &rev, &format!("out-{i}")])
                    .output()?;
                if restored.status.success() {
                    intact += 1;
                    env.sh(&format!("diff -r --no-dereference good-r{i} out-{i}"))
                        .map_err(|e| format!("{what}: restore of {s} differs: {e}"))?;
                } else {
                    refused += 1;
                    assert!(
                        named(id),
                        "{what}: restore of {s} failed, fsck did not name it"
                    );
                    assert!(
                        !env.join(&format!("out-{i}")).exists(),
                        "{what}: partial restore"
                    );
                }
                let exported = env
                    .snap()
                    .args(["export", "--oci", &rev, "-o", &format!("bad-{i}.tar")])
                    .output()?;
                if exported.status.success() {
                    // Named or not (a damaged loose tree whose config carries it inline), what
                    // goes out must be exactly what the intact store gave.
                    intact += 1;
                    env.sh(&format!("cmp good-e{i}.tar bad-{i}.tar"))
                        .map_err(|e| format!("{what}: export of {s} differs: {e}"))?;
                } else {
                    refused += 1;
                    assert!(
                        named(id),
                        "{what}: export of {s} failed, fsck did not name it"
                    );
                    assert!(
                        !env.join(&format!("bad-{i}.tar")).exists(),
                        "{what}: partial export"
                    );
                }
            }
        }
    }
    eprintln!(
        "{flipped} bytes flipped, {caught} caught by fsck, {reflog_valid_after_flip} left a \
         valid reflog line (no checksum there); {refused} restores and exports refused, \
         {intact} gave exactly the intact store's output"
    );
    Ok(())
}
