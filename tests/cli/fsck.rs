//! fsck on healthy and deliberately damaged stores.

use snap::ops::CommitOutcome;
use snap::ops::fsck::{FsckReport, ProblemKind};

use crate::harness::{Env, Result, stderr};

#[allow(clippy::disallowed_methods)] // deliberate damage to a store file
fn flip_byte(path: &std::path::Path, from_end: usize) -> Result {
    use std::os::unix::fs::PermissionsExt;
    let mut bytes = std::fs::read(path)?;
    let n = bytes.len();
    bytes[n - from_end] ^= 0x5a;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    std::fs::write(path, bytes)?;
    Ok(())
}

fn fsck(env: &Env, code: i32) -> Result<FsckReport> {
    let out = env.run(&["--json", "fsck"], code)?;
    Ok(serde_json::from_slice(&out.stdout)?)
}

#[test]
fn a_healthy_store_is_clean() -> Result {
    let env = Env::new()?;
    env.fixture("demo", "demo")?;
    env.sh("for f in $(seq 1 100); do echo $f > demo/f$f; done")?;
    env.ok(&["commit", "demo"])?;
    let r = fsck(&env, 0)?;
    assert!(r.is_clean(), "{:?}", r.problems);
    assert!(r.packs >= 2 && r.packed_objects >= 100 && r.snapshots == 1);
    Ok(())
}

#[test]
fn a_corrupt_packed_object_is_named_with_its_snapshot_and_restore_refuses_it() -> Result {
    let env = Env::new()?;
    env.sh("mkdir -p t && for f in $(seq 1 100); do seq 1 $f > t/f$f; done")?;
    let c: CommitOutcome = env.json(&["commit", "t"])?;
    // Damage the largest pack (file contents live there) near its end, inside a content frame.
    let pack = env.sh("ls -S .store/packs/*.pack | head -1")?;
    flip_byte(&env.join(pack.trim()), 2000)?;
    let r = fsck(&env, 1)?;
    let corrupt: Vec<_> = r
        .problems
        .iter()
        .filter(|p| p.kind == ProblemKind::CorruptObject || p.kind == ProblemKind::CorruptPack)
        .collect();
    assert!(
        corrupt.len() >= 2,
        "the pack blob and an object inside: {:?}",
        r.problems
    );
    assert!(
        corrupt.iter().all(|p| p.snapshots == vec![c.digest]),
        "{corrupt:?}"
    );
    let out = env.run(&["restore", "latest", "out"], 2)?;
    assert!(stderr(&out).contains("corrupt"), "{}", stderr(&out));
    assert!(stderr(&out).contains("snap fsck"), "hint: {}", stderr(&out));
    assert!(!env.join("out").exists(), "nothing restored");
    Ok(())
}

#[test]
fn a_corrupt_loose_object_and_a_dangling_ref_are_reported() -> Result {
    let env = Env::new()?;
    env.write("d/a.txt", "hello snapshot world")?;
    let c: CommitOutcome = env.json(&["commit", "d"])?;
    // Direct mode: the file is a loose object.
    let digest = snap::Digest::of(b"hello snapshot world").hex();
    flip_byte(
        &env.join(&format!(
            ".store/objects/sha256/{}/{}",
            &digest[..2],
            &digest[2..]
        )),
        3,
    )?;
    env.write(
        ".store/refs/heads/ghost",
        format!("sha256:{}\n", "ab".repeat(32)),
    )?;
    env.write(".store/refs/heads/broken", "not a digest\n")?;
    let r = fsck(&env, 1)?;
    let kinds: Vec<_> = r.problems.iter().map(|p| p.kind).collect();
    assert!(kinds.contains(&ProblemKind::CorruptObject), "{kinds:?}");
    assert!(kinds.contains(&ProblemKind::DanglingRef), "{kinds:?}");
    assert!(kinds.contains(&ProblemKind::CorruptRef), "{kinds:?}");
    let obj = r
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::CorruptObject)
        .ok_or("corrupt object")?;
    assert_eq!(obj.snapshots, vec![c.digest]);
    let human = env.run(&["fsck"], 1)?;
    let text = String::from_utf8(human.stdout)?;
    assert!(
        text.contains(&digest),
        "the human report names the object: {text}"
    );
    Ok(())
}

#[test]
fn leftovers_are_listed_apart_from_damage_and_the_next_command_removes_them() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    // What a SIGKILL leaves: temp files and directories, and a lock file nobody holds.
    env.write(".store/packs/.tmp-abc", "partial")?;
    env.write(".store/.tmp-staging/blob", "partial")?;
    env.write(".store/refs/heads/latest.lock", "sha256:")?;
    let r = fsck(&env, 0)?;
    assert!(r.is_clean(), "leftovers are not damage: {:?}", r.problems);
    let kinds: Vec<_> = r.leftovers.iter().map(|p| p.kind).collect();
    assert_eq!(
        kinds,
        [
            ProblemKind::LeftoverTemp,
            ProblemKind::LeftoverTemp,
            ProblemKind::StaleLock
        ],
        "{:?}",
        r.leftovers
    );
    // A reader that finds the store unused sweeps them.
    env.ok(&["log"])?;
    let r = fsck(&env, 0)?;
    assert!(r.leftovers.is_empty(), "{:?}", r.leftovers);
    assert!(!env.join(".store/refs/heads/latest.lock").exists());
    Ok(())
}

#[test]
fn a_lock_held_by_a_live_process_is_neither_reported_nor_removed() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    env.write(".store/refs/heads/latest.lock", "")?;
    let held = std::fs::File::open(env.join(".store/refs/heads/latest.lock"))?;
    held.try_lock()?;
    let r = fsck(&env, 0)?;
    assert!(r.leftovers.is_empty(), "{:?}", r.leftovers);
    env.ok(&["log"])?;
    assert!(env.join(".store/refs/heads/latest.lock").exists());
    Ok(())
}

#[test]
fn a_bad_reflog_line_is_reported() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    env.sh("echo garbage >> .store/logs/heads/latest")?;
    let r = fsck(&env, 1)?;
    let kinds: Vec<_> = r.problems.iter().map(|p| p.kind).collect();
    assert_eq!(kinds, [ProblemKind::CorruptReflog]);
    Ok(())
}

#[test]
fn a_flipped_pack_index_byte_is_caught() -> Result {
    let env = Env::new()?;
    env.sh("mkdir -p t && for f in $(seq 1 100); do echo $f > t/f$f; done")?;
    env.ok(&["commit", "t"])?;
    let idx = env.sh("ls -S .store/packs/*.idx | head -1")?;
    flip_byte(&env.join(idx.trim()), 40)?;
    let r = fsck(&env, 1)?;
    assert!(
        r.problems
            .iter()
            .any(|p| p.kind == ProblemKind::CorruptIndex),
        "{:?}",
        r.problems
    );
    Ok(())
}
