use super::*;

type Result = std::result::Result<(), Box<dyn std::error::Error>>;

fn p(s: &str) -> EntryPath {
    EntryPath::new(s).expect("test paths are valid")
}

/// `d/e/f.txt`, `d/l -> ../outside`, `d/file`, and `outside/secret.txt` beside the root.
fn fixture() -> std::result::Result<(tempfile::TempDir, PathBuf), Box<dyn std::error::Error>> {
    let t = tempfile::tempdir()?;
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("d/e"))?;
    std::fs::write(root.join("d/e/f.txt"), "f")?;
    std::fs::write(root.join("d/file"), "x")?;
    std::fs::create_dir_all(t.path().join("outside"))?;
    std::fs::write(t.path().join("outside/secret.txt"), "secret")?;
    std::os::unix::fs::symlink("../../outside", root.join("d/l"))?;
    Ok((t, root))
}

#[test]
fn both_resolutions_refuse_symlinks_and_files_on_the_way() -> Result {
    let (_t, root) = fixture()?;
    let r = Root::open(&root)?;
    for open in [Root::open_dir, Root::walk_dir] {
        assert!(open(&r, "d/e").is_ok());
        for blocked in ["d/l", "d/l/x", "d/file", "d/file/x", "missing/x"] {
            assert!(open(&r, blocked).is_err(), "{blocked} must not open");
        }
    }
    Ok(())
}

#[test]
fn writes_through_a_symlink_are_refused_by_name() -> Result {
    let (t, root) = fixture()?;
    let r = Root::open_scratch(&root)?;
    let mut cache = DirCache::default();
    let through = |e: &Error| matches!(e, Error::ThroughSymlink { .. });
    let e = r
        .create(&mut cache, &p("d/l/new.txt"), 0o644, |_, _| {
            Ok::<_, Error>(())
        })
        .err();
    assert!(e.as_ref().is_some_and(through), "{e:?}");
    assert!(r.make_dirs(&p("d/l/sub")).as_ref().is_err_and(through));
    assert!(r.remove(&p("d/l/secret.txt")).as_ref().is_err_and(through));
    let linked = r.hard_link(&p("d/l/secret.txt"), &p("h"));
    assert!(linked.as_ref().is_err_and(through), "{linked:?}");
    assert!(
        r.symlink(&mut cache, &p("d/l/s"), OsStr::new("x"))
            .as_ref()
            .is_err_and(through)
    );
    assert_eq!(
        std::fs::read_dir(t.path().join("outside"))?.count(),
        1,
        "nothing written beside the root"
    );
    // A symlink as the last component is replaced, not followed.
    r.remove(&p("d/l"))?;
    assert!(t.path().join("outside/secret.txt").exists());
    Ok(())
}

#[test]
fn only_a_scratch_root_removes_a_directory_that_holds_anything() -> Result {
    let (_t, root) = fixture()?;
    let dest = Root::open(&root)?;
    let e = dest.remove(&p("d/e")).err();
    assert!(matches!(e, Some(Error::WouldDelete { .. })), "{e:?}");
    assert!(root.join("d/e/f.txt").exists());
    std::fs::create_dir(root.join("empty"))?;
    dest.remove(&p("empty"))?;
    assert!(!root.join("empty").exists(), "an empty directory may go");
    let scratch = Root::open_scratch(&root)?;
    scratch.remove(&p("d"))?;
    assert!(!root.join("d").exists());
    Ok(())
}

#[test]
fn take_replaces_files_and_empty_directories_only() -> Result {
    let (t, root) = fixture()?;
    let stage_dir = t.path().join("stage");
    std::fs::create_dir_all(stage_dir.join("d"))?;
    std::fs::write(stage_dir.join("d/e"), "file where a directory is")?;
    std::fs::write(stage_dir.join("d/file"), "new")?;
    let stage = Root::open_scratch(&stage_dir)?;
    let dest = Root::open(&root)?;
    dest.take(&stage, &p("d/file"))?;
    assert_eq!(std::fs::read(root.join("d/file"))?, b"new");
    let e = dest.take(&stage, &p("d/e")).err();
    assert!(matches!(e, Some(Error::WouldDelete { .. })), "{e:?}");
    assert!(root.join("d/e/f.txt").exists());
    Ok(())
}

#[test]
fn the_guard_refuses_reserved_names_and_the_store_under_any_case() -> Result {
    let t = tempfile::tempdir()?;
    let store = t.path().join("work/state");
    std::fs::create_dir_all(&store)?;
    let guard = Guard::new(&t.path().join("work"), &store)?;
    assert!(guard.admit(&p("a/b")).is_ok());
    for refused in ["state", "State/refs/heads/x", ".git/config", "a/.STORE/x"] {
        assert!(guard.admit(&p(refused)).is_err(), "{refused}");
    }
    let e = Guard::new(&store.join("refs"), &store).err();
    assert!(matches!(e, Some(Error::InStore { .. })), "{e:?}");
    let e = Guard::new(&store, &store).err();
    assert!(matches!(e, Some(Error::InStore { .. })), "{e:?}");
    assert!(Guard::new(&t.path().join("elsewhere/new"), &store).is_ok());
    Ok(())
}
