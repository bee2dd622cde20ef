use super::*;

#[test]
fn second_acquire_times_out_with_the_lock_path() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("r");
    let _held = LockFile::acquire(&target, Duration::ZERO)?;
    match LockFile::acquire(&target, Duration::from_millis(20)) {
        Err(Error::Locked { lock_path, .. }) => {
            assert_eq!(lock_path, dir.path().join("r.lock"));
        }
        other => panic!("expected Locked, got {:?}", other.map(|_| ())),
    }
    Ok(())
}

#[test]
fn drop_rolls_back_and_commit_renames() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("r");
    {
        let mut l = LockFile::acquire(&target, Duration::ZERO)?;
        l.write_content(b"x")?;
    }
    assert!(!target.exists() && !dir.path().join("r.lock").exists());
    let mut l = LockFile::acquire(&target, Duration::ZERO)?;
    l.write_content(b"y")?;
    l.commit()?;
    assert_eq!(std::fs::read(&target)?, b"y");
    assert!(!dir.path().join("r.lock").exists());
    Ok(())
}

#[test]
fn a_dead_holders_lock_file_is_removed_and_a_live_one_is_not()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("r");
    // What a holder killed with SIGKILL leaves: the file, with no flock on it.
    std::fs::write(dir.path().join("r.lock"), b"sha256:partial")?;
    assert_eq!(is_held(&dir.path().join("r.lock"))?, Some(false));
    let held = LockFile::acquire(&target, Duration::ZERO)?;
    assert_eq!(is_held(held.lock_path())?, Some(true));
    assert!(!remove_if_stale(held.lock_path())?);
    assert!(matches!(
        LockFile::acquire(&target, Duration::from_millis(20)),
        Err(Error::Locked { .. })
    ));
    assert!(held.lock_path().exists());
    drop(held);
    assert_eq!(is_held(&dir.path().join("r.lock"))?, None);
    Ok(())
}

#[test]
fn racing_threads_with_stale_locks_about_never_share_the_lock()
-> Result<(), Box<dyn std::error::Error>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("r");
    let inside = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for t in 0..4 {
            let (target, inside) = (&target, &inside);
            s.spawn(move || {
                for i in 0..200 {
                    if (i + t) % 7 == 0 {
                        // Leave a stale lock now and then (create_new fails if one is there).
                        let _ = crate::fs::create_new(&lock_path_for(target));
                    }
                    let l = LockFile::acquire(target, Duration::from_secs(10)).expect("acquire");
                    assert_eq!(inside.fetch_add(1, Ordering::SeqCst), 0, "two holders");
                    std::thread::yield_now();
                    inside.fetch_sub(1, Ordering::SeqCst);
                    drop(l);
                }
            });
        }
    });
    Ok(())
}

// issue 13: the turnstile and the shared wait on `LOCK` were blocking flocks, so a
// stopped holder made every command wait forever.
#[test]
fn every_flock_wait_gives_up_after_its_timeout() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("LOCK");
    let t = dir.path().join("LOCK.turnstile");
    // Another open file description conflicts like another process (flock(2)).
    let _gc = StoreLock::acquire(&p, LockMode::Exclusive, Duration::ZERO)?;
    let _closed = Turnstile::close(&t, Duration::ZERO)?;
    let wait = Duration::from_millis(50);
    let start = Instant::now();
    for res in [
        StoreLock::acquire(&p, LockMode::Shared, wait).map(drop),
        StoreLock::acquire_shared_after(&p, wait, || {}).map(drop),
        Turnstile::pass(&t, wait),
        Turnstile::close(&t, wait).map(drop),
    ] {
        match res {
            Err(e @ Error::Locked { waited, .. }) => {
                assert_eq!(waited, wait);
                assert!(
                    e.to_string().ends_with("gave up after waiting 50 ms"),
                    "{e}"
                );
            }
            other => panic!("expected Locked, got {other:?}"),
        }
    }
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "no wait is unbounded"
    );
    Ok(())
}

#[test]
fn the_holder_is_read_from_proc_locks() {
    let locks = "1: FLOCK  ADVISORY  WRITE 4242 fe:01:77 0 EOF\n\
                 2: FLOCK  ADVISORY  READ 4343 fe:01:88 0 EOF\n\
                 2: -> FLOCK  ADVISORY  WRITE 4444 fe:01:88 0 EOF\n\
                 3: POSIX  ADVISORY  WRITE 4545 fe:01:99 0 EOF\n\
                 4: FLOCK  ADVISORY  WRITE 4646 00:2a:99 0 EOF\n\
                 5: FLOCK  ADVISORY  WRITE 4747 fe:01:99 0 EOF\n";
    let dev = (0xfe << 8) | 0x01;
    let find = |ino, mode| holder_in_proc_locks(locks, dev, ino, mode);
    assert_eq!(find(77, LockMode::Shared), Some(4242));
    assert_eq!(
        find(88, LockMode::Exclusive),
        Some(4343),
        "a reader is in gc's way"
    );
    assert_eq!(
        find(88, LockMode::Shared),
        None,
        "not in a reader's, nor is a waiter"
    );
    assert_eq!(
        find(99, LockMode::Shared),
        Some(4747),
        "same device first, POSIX never"
    );
    assert_eq!(find(5, LockMode::Exclusive), None);
    assert_eq!(
        holder_in_proc_locks(locks, 0x2b, 99, LockMode::Shared),
        Some(4646),
        "another device only if none matches"
    );
}

#[test]
fn exclusive_store_lock_excludes_shared() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let p = dir.path().join("LOCK");
    let shared = StoreLock::acquire(&p, LockMode::Shared, Duration::ZERO)?;
    let _shared2 = StoreLock::acquire(&p, LockMode::Shared, Duration::ZERO)?;
    assert!(matches!(
        StoreLock::acquire(&p, LockMode::Exclusive, Duration::ZERO),
        Err(Error::Locked { .. })
    ));
    drop(shared);
    Ok(())
}
