//! Bad input: a clear one-line error, a hint, a non-zero exit, and nothing changed.

use crate::harness::{Env, Result, stderr};

fn first_line(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

#[test]
fn a_missing_path_is_named_and_nothing_is_created() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    let out = env.run(&["commit", "nope"], 2)?;
    let err = stderr(&out);
    assert!(
        first_line(&err).starts_with("error: ") && first_line(&err).contains("nope"),
        "{err}"
    );
    assert!(err.contains("hint:"), "{err}");
    assert_eq!(env.sh("ls .store/refs/heads")?, "", "no ref created");
    Ok(())
}

#[test]
fn an_unknown_ref_is_an_error_with_a_hint() -> Result {
    let env = Env::new()?;
    env.ok(&["init"])?;
    let out = env.run(&["restore", "nosuchref", "out"], 2)?;
    let err = stderr(&out);
    assert!(err.contains("unknown revision `nosuchref`"), "{err}");
    assert!(err.contains("snap refs"), "{err}");
    assert!(!env.join("out").exists());
    Ok(())
}

#[test]
fn no_store_is_an_error_with_a_hint() -> Result {
    let env = Env::new()?;
    let out = env.run(&["refs"], 2)?;
    let err = stderr(&out);
    assert!(err.contains("no snap store found"), "{err}");
    assert!(err.contains("snap init"), "{err}");
    Ok(())
}

#[test]
fn a_too_short_prefix_is_refused() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    let out = env.run(&["restore", "abc", "out"], 2)?;
    assert!(stderr(&out).contains("too short"), "{}", stderr(&out));
    Ok(())
}

#[test]
fn an_ambiguous_prefix_lists_the_candidates() -> Result {
    use std::collections::HashMap;

    use snap::object::{Provenance, SnapshotConfig, Stats};
    use snap::oci::{Descriptor, MEDIA_TYPE_CONFIG, MEDIA_TYPE_EMPTY, artifact};

    let env = Env::new()?;
    env.ok(&["init"])?;
    // Two snapshots whose ids share 7 hex digits (28 bits): by the birthday bound a few ten
    // thousand candidates (differing only in their message) contain such a pair.
    let empty_tree = snap::object::Tree::default().encode();
    let make = |i: u32| {
        let config = SnapshotConfig {
            root: snap::Digest::of(&empty_tree),
            parents: vec![],
            message: format!("candidate {i}"),
            created: None,
            provenance: Provenance::default(),
            stats: Stats::default(),
            trees: std::collections::BTreeMap::default(),
        }
        .encode();
        let manifest = artifact::snapshot_manifest(
            Descriptor::new(
                MEDIA_TYPE_CONFIG,
                snap::Digest::of(&config),
                config.len() as u64,
            ),
            vec![Descriptor::new(
                MEDIA_TYPE_EMPTY,
                snap::Digest::of(b"{}"),
                2,
            )],
            std::collections::BTreeMap::default(),
        );
        (config, manifest)
    };
    let mut seen: HashMap<String, u32> = HashMap::new();
    let (a, b) = (0..200_000u32)
        .find_map(|i| {
            let prefix = make(i).1.digest().hex()[..7].to_owned();
            seen.insert(prefix, i).map(|j| (j, i))
        })
        .ok_or("no 28-bit collision among 200k candidates")?;
    let store = snap::store::Store::open(&env.join(".store"))?;
    let mut ids = Vec::new();
    for i in [a, b] {
        let (config, manifest) = make(i);
        store.objects.put(&config)?;
        store.objects.put(b"{}")?;
        store.objects.put(&empty_tree)?;
        ids.push(store.objects.put(manifest.bytes())?);
    }
    drop(store);
    let prefix = &ids[0].hex()[..7];
    let out = env.run(&["restore", prefix, "out"], 2)?;
    let err = stderr(&out);
    assert!(err.contains("is ambiguous"), "{err}");
    for id in &ids {
        assert!(err.contains(&id.short()), "candidate {id} listed: {err}");
    }
    // One more digit (or the full digest) resolves.
    let longer = &ids[0].hex()[..12];
    if !ids[1].hex().starts_with(longer) {
        env.ok(&["restore", longer, "out"])?;
    }
    Ok(())
}

#[test]
fn a_held_lock_is_named_and_the_exit_code_is_3_and_a_dead_holders_lock_is_removed() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    env.ok(&["commit", "d"])?;
    env.write("d/a", "2")?;
    // A live holder: this test process holds the lock file's flock, as a running snap would.
    env.write(".store/refs/heads/latest.lock", "")?;
    let held = std::fs::File::open(env.join(".store/refs/heads/latest.lock"))?;
    held.try_lock()?;
    let before = env.ok(&["refs"])?;
    let out = env.run(&["commit", "d"], 3)?;
    let err = stderr(&out);
    assert!(
        err.contains("latest.lock"),
        "the message names the lock file: {err}"
    );
    assert!(err.contains("retry when it has finished"), "{err}");
    assert_eq!(env.ok(&["refs"])?, before, "ref unchanged");
    assert!(env.join(".store/refs/heads/latest.lock").exists());
    // The holder dies (its flock goes with it): the next commit removes the file and succeeds.
    drop(held);
    env.ok(&["commit", "d"])?;
    assert_ne!(env.ok(&["refs"])?, before);
    assert!(!env.join(".store/refs/heads/latest.lock").exists());
    Ok(())
}

#[test]
fn an_invalid_ref_name_is_refused() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let out = env.run(&["commit", "d", "--ref", "../escape"], 2)?;
    assert!(
        stderr(&out).contains("invalid ref name"),
        "{}",
        stderr(&out)
    );
    Ok(())
}

#[test]
fn reserved_and_malformed_annotations_are_refused() -> Result {
    let env = Env::new()?;
    env.write("d/a", "1")?;
    let out = env.run(&["commit", "d", "--annotation", "novalue"], 2)?;
    assert!(stderr(&out).contains("KEY=VALUE"));
    let out = env.run(
        &[
            "commit",
            "d",
            "--annotation",
            "org.opencontainers.image.revision=x",
        ],
        2,
    )?;
    assert!(stderr(&out).contains("set by snap"));
    Ok(())
}
