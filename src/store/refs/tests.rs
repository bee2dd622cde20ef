use super::*;
use std::sync::{Arc, Barrier};

fn refs() -> std::io::Result<(tempfile::TempDir, Refs)> {
    let dir = tempfile::tempdir()?;
    let r = Refs::new(dir.path());
    Ok((dir, r))
}

fn edit(name: &RefName, expected: Expected, new: Option<Digest>) -> RefEdit {
    RefEdit {
        name: name.clone(),
        expected,
        new,
        message: "test".into(),
    }
}

#[test]
fn ref_names_are_validated() {
    for bad in [
        "",
        "a//b",
        "/a",
        "a/",
        ".hidden",
        "a/.b",
        "x.lock",
        "a b",
        "a\\b",
        "ü",
        "..",
        "a/../b",
        ":a",
        "a/:b",
        "sha256:abc",
        "a@sha256:abc",
        "a+b",
    ] {
        assert!(RefName::head(bad).is_err(), "{bad:?} must be refused");
    }
    for good in [
        "latest",
        "ci/main",
        "v1.2.3",
        "a_b-c",
        "localhost:5000/ommx/lp:v1",
        "Sha256-x:y",
    ] {
        assert!(RefName::head(good).is_ok(), "{good:?}");
    }
}

// issue 13: names of 251-255 bytes passed validation, then failed on `<name>.lock`.
#[test]
fn names_too_long_for_their_lock_file_are_refused_before_any_file_is_touched()
-> Result<(), Box<dyn std::error::Error>> {
    let (d, r) = refs()?;
    let ok = "a".repeat(MAX_COMPONENT_BYTES);
    let too_long = "a".repeat(MAX_COMPONENT_BYTES + 1);
    let nested = format!("ab/{too_long}");
    for (name, length, limit) in [
        (
            too_long.as_str(),
            MAX_COMPONENT_BYTES + 1,
            MAX_COMPONENT_BYTES,
        ),
        (
            nested.as_str(),
            MAX_COMPONENT_BYTES + 1,
            MAX_COMPONENT_BYTES,
        ),
        (&"a/".repeat(128), 256, MAX_NAME_BYTES),
    ] {
        match RefName::head(name) {
            Err(e @ Error::NameTooLong { .. }) => {
                assert!(
                    matches!(e, Error::NameTooLong { length: l, limit: m, .. } if l == length && m == limit),
                    "{e:?}"
                );
                assert!(e.to_string().starts_with("ref name too long"), "{e}");
            }
            other => panic!("{name:?} must be too long, got {other:?}"),
        }
    }
    let name = RefName::head(&ok)?;
    r.update(
        &edit(&name, Expected::Absent, Some(Digest::of(b"a"))),
        |_| true,
    )?;
    assert_eq!(r.get(&name)?, Some(Digest::of(b"a")));
    let mut all = Vec::new();
    walk_files(d.path(), d.path(), &mut all)?;
    assert_eq!(all.len(), 2, "the ref and its reflog: {all:?}");
    Ok(())
}

// issue 13: a head named `tags/x` was listed as `tags/x` and shadowed by the tag `x`.
#[test]
fn names_starting_with_a_namespace_are_refused_but_old_ones_stay_reachable()
-> Result<(), Box<dyn std::error::Error>> {
    for name in ["tags/x", "heads/x", "heads/a/b"] {
        assert!(
            matches!(RefName::head(name), Err(Error::ReservedPrefix { .. })),
            "{name}"
        );
        assert!(matches!(
            RefName::tag(name),
            Err(Error::ReservedPrefix { .. })
        ));
    }
    for name in ["tags", "heads", "tagsx/y", "x/tags/y"] {
        assert!(RefName::head(name).is_ok(), "{name} is a fine name");
    }
    // A head an older snap created with such a name.
    let (d, r) = refs()?;
    std::fs::create_dir_all(d.path().join("refs/heads/tags"))?;
    std::fs::write(
        d.path().join("refs/heads/tags/x"),
        format!("{}\n", Digest::of(b"a")),
    )?;
    let (name, _) = r.list()?.pop().ok_or("listed")?;
    assert_eq!(name.to_string(), "heads/tags/x", "shown qualified");
    assert_eq!(r.find("heads/tags/x")?.map(|f| f.0), Some(name.clone()));
    assert!(
        matches!(
            r.update(&edit(&name, Expected::Any, Some(Digest::of(b"b"))), |_| {
                true
            }),
            Err(Error::ReservedPrefix { .. })
        ),
        "it cannot be set"
    );
    r.update(&edit(&name, Expected::Any, None), |_| true)?;
    assert!(r.list()?.is_empty(), "but it can be deleted");
    Ok(())
}

// issue 13: `a` then `a/b` (or the reverse) failed with a raw ENOTDIR / EISDIR.
#[test]
fn a_name_and_a_directory_of_names_conflict_in_either_order()
-> Result<(), Box<dyn std::error::Error>> {
    let (d, r) = refs()?;
    let v = Some(Digest::of(b"a"));
    let (a, ab, abc) = (
        RefName::head("a")?,
        RefName::head("a/b")?,
        RefName::head("a/b/c")?,
    );
    r.update(&edit(&a, Expected::Absent, v), |_| true)?;
    let conflict = |e: Result<(), Error>| match e {
        Err(Error::NameConflict {
            existing, deleted, ..
        }) => Ok((existing.to_string(), deleted)),
        other => Err(format!("expected a conflict, got {other:?}")),
    };
    assert_eq!(
        conflict(r.update(&edit(&abc, Expected::Absent, v), |_| true))?,
        ("a".to_owned(), false)
    );
    // The other order, and the reflog of a deleted ref.
    r.update(&edit(&a, Expected::Any, None), |_| true)?;
    assert_eq!(
        conflict(r.update(&edit(&ab, Expected::Absent, v), |_| true))?,
        ("a".to_owned(), true),
        "the deleted ref's reflog is in the way"
    );
    std::fs::remove_file(d.path().join("logs/heads/a"))?;
    r.update(&edit(&abc, Expected::Absent, v), |_| true)?;
    assert_eq!(
        conflict(r.update(&edit(&a, Expected::Absent, v), |_| true))?,
        ("a/b/c".to_owned(), false)
    );
    assert_eq!(r.get(&a)?, None, "nothing was written");
    assert_eq!(r.get(&ab)?, None, "`a/b` is a directory, not a ref");
    // Deleted, `a/b/c` leaves its reflog (a conflict) and an empty directory (not one).
    r.update(&edit(&abc, Expected::Any, None), |_| true)?;
    assert_eq!(
        conflict(r.update(&edit(&a, Expected::Absent, v), |_| true))?,
        ("a/b/c".to_owned(), true)
    );
    std::fs::remove_dir_all(d.path().join("logs/heads/a"))?;
    r.update(&edit(&a, Expected::Absent, v), |_| true)?;
    assert_eq!(r.get(&a)?, v);
    Ok(())
}

#[test]
fn cas_update_fails_when_ref_moved() -> Result<(), Box<dyn std::error::Error>> {
    let (_d, r) = refs()?;
    let n = RefName::head("main")?;
    let (a, b) = (Digest::of(b"a"), Digest::of(b"b"));
    r.update(&edit(&n, Expected::Absent, Some(a)), |_| true)?;
    assert!(matches!(
        r.update(&edit(&n, Expected::Absent, Some(b)), |_| true),
        Err(Error::OutOfDate { .. })
    ));
    r.update(&edit(&n, Expected::Is(a), Some(b)), |_| true)?;
    assert_eq!(r.get(&n)?, Some(b));
    let (log, bad) = r.reflog(&n)?;
    assert!(bad.is_empty());
    assert_eq!(
        log.iter().map(|e| (e.old, e.new)).collect::<Vec<_>>(),
        [(None, Some(a)), (Some(a), Some(b))]
    );
    r.update(&edit(&n, Expected::Is(b), None), |_| true)?;
    assert_eq!(r.get(&n)?, None);
    assert_eq!(r.reflog(&n)?.0.len(), 3, "deletion is logged");
    Ok(())
}

#[test]
fn missing_target_is_refused_and_nothing_changes() -> Result<(), Box<dyn std::error::Error>> {
    let (_d, r) = refs()?;
    let n = RefName::head("main")?;
    assert!(matches!(
        r.update(&edit(&n, Expected::Any, Some(Digest::of(b"a"))), |_| false),
        Err(Error::MissingTarget { .. })
    ));
    assert_eq!(r.get(&n)?, None);
    assert!(r.reflog(&n)?.0.is_empty());
    assert!(r.lock_files()?.is_empty(), "lock removed");
    Ok(())
}

#[test]
fn racing_updates_with_the_same_expectation_have_one_winner()
-> Result<(), Box<dyn std::error::Error>> {
    let (_d, r) = refs()?;
    let r = Arc::new(r);
    let n = RefName::head("race")?;
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8u8)
        .map(|i| {
            let (r, n, barrier) = (Arc::clone(&r), n.clone(), Arc::clone(&barrier));
            std::thread::spawn(move || {
                barrier.wait();
                r.update(&edit(&n, Expected::Absent, Some(Digest::of(&[i]))), |_| {
                    true
                })
            })
        })
        .collect();
    let mut wins = 0;
    for h in handles {
        match h.join().map_err(|_| "thread panicked")? {
            Ok(()) => wins += 1,
            Err(Error::OutOfDate { .. } | Error::Lock(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    assert_eq!(wins, 1, "exactly one CAS from absent succeeds");
    assert_eq!(r.reflog(&n)?.0.len(), 1);
    Ok(())
}

#[test]
fn find_prefers_qualified_names_and_reports_ambiguity() -> Result<(), Box<dyn std::error::Error>> {
    let (_d, r) = refs()?;
    let a = Digest::of(b"a");
    r.update(
        &edit(&RefName::head("x")?, Expected::Absent, Some(a)),
        |_| true,
    )?;
    assert_eq!(r.find("x")?.map(|f| f.1), Some(a));
    r.update(
        &edit(&RefName::tag("x")?, Expected::Absent, Some(a)),
        |_| true,
    )?;
    assert!(matches!(r.find("x"), Err(Error::Ambiguous { .. })));
    assert_eq!(r.find("tags/x")?.map(|f| f.0.kind()), Some(RefKind::Tag));
    assert_eq!(r.list()?.len(), 2);
    Ok(())
}

// issue 14: an import moved its refs one by one, each with its own retry loop; now they
// are one transaction, locked in name order.
#[test]
fn a_transaction_moves_several_refs_together_or_none() -> Result<(), Box<dyn std::error::Error>> {
    let (_d, r) = refs()?;
    let (a, b) = (RefName::head("a")?, RefName::head("z/b")?);
    let (x, y) = (Digest::of(b"x"), Digest::of(b"y"));
    // A missing target refuses the whole transaction before anything is written.
    let mut tx = r.transaction([b.clone(), a.clone()])?;
    tx.stage(&a, Some(x), "one")?;
    tx.stage(&b, Some(y), "two")?;
    assert!(matches!(
        tx.commit(|d| *d == x),
        Err(Error::MissingTarget { .. })
    ));
    assert_eq!((r.get(&a)?, r.get(&b)?), (None, None));
    assert!(r.lock_files()?.is_empty(), "locks released");
    // Both, with a reflog line each.
    let mut tx = r.transaction([b.clone(), a.clone()])?;
    tx.stage(&a, Some(x), "one")?;
    tx.stage(&b, Some(y), "two")?;
    tx.commit(|_| true)?;
    assert_eq!((r.get(&a)?, r.get(&b)?), (Some(x), Some(y)));
    assert_eq!((r.reflog(&a)?.0.len(), r.reflog(&b)?.0.len()), (1, 1));
    // A ref that was only read is unlocked, unchanged, unlogged.
    let tx = r.transaction([a.clone()])?;
    assert_eq!(tx.actual(&a), Some(x));
    tx.commit(|_| true)?;
    assert_eq!(r.reflog(&a)?.0.len(), 1);
    Ok(())
}

// Transactions over the same refs named in opposite orders never deadlock: locks are
// taken in name order.
#[test]
fn overlapping_transactions_in_any_order_all_finish() -> Result<(), Box<dyn std::error::Error>> {
    let (_d, r) = refs()?;
    let r = Arc::new(r);
    let names = [RefName::head("p")?, RefName::head("q")?];
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8u8)
        .map(|i| {
            let (r, barrier) = (Arc::clone(&r), Arc::clone(&barrier));
            let mut names = names.clone();
            if i % 2 == 1 {
                names.reverse();
            }
            std::thread::spawn(move || -> Result<(), Error> {
                barrier.wait();
                let mut tx = r.transaction(names.clone())?;
                for n in &names {
                    tx.stage(n, Some(Digest::of(&[i])), "t")?;
                }
                tx.commit(|_| true)
            })
        })
        .collect();
    for h in handles {
        h.join().map_err(|_| "thread panicked")??;
    }
    assert_eq!(
        r.get(&names[0])?,
        r.get(&names[1])?,
        "the last writer set both"
    );
    assert_eq!(r.reflog(&names[0])?.0.len(), 8);
    Ok(())
}
