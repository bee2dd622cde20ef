use super::*;

fn paths(entries: &[ScanEntry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

#[test]
fn pre_order_sorts_siblings_by_name_bytes_and_synthesizes_parents()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let idx = dir.path().join("build/index");
    std::fs::create_dir_all(idx.join("a"))?;
    std::fs::write(idx.join("a/x"), "x")?;
    std::fs::write(idx.join("a.b"), "ab")?;
    std::fs::create_dir_all(idx.join(".git"))?;
    std::os::unix::fs::symlink("a.b", idx.join("link"))?;
    let entries = scan(
        &[Root {
            recorded: "build/index".into(),
            source: idx.clone(),
        }],
        &[],
    )?;
    assert_eq!(
        paths(&entries),
        [
            "build",
            "build/index",
            "build/index/a",
            "build/index/a/x",
            "build/index/a.b",
            "build/index/link"
        ]
    );
    assert_eq!(entries[0].source, None, "build/ is synthesized");
    assert_eq!(entries[3].parent, Some(2));
    assert_eq!(
        entries[5].kind,
        ScanKind::Symlink {
            target: "a.b".into()
        }
    );
    Ok(())
}

#[test]
fn contents_as_root_and_nested_roots_are_covered() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("d/e"))?;
    std::fs::write(dir.path().join("d/e/f"), "f")?;
    let as_root = scan(
        &[Root {
            recorded: String::new(),
            source: dir.path().join("d"),
        }],
        &[],
    )?;
    assert_eq!(paths(&as_root), ["e", "e/f"]);
    let nested = scan(
        &[
            Root {
                recorded: "d/e".into(),
                source: dir.path().join("d/e"),
            },
            Root {
                recorded: "d".into(),
                source: dir.path().join("d"),
            },
        ],
        &[],
    )?;
    assert_eq!(paths(&nested), ["d", "d/e", "d/e/f"]);
    Ok(())
}

#[test]
fn missing_paths_and_fifos_are_refused() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let err = scan(
        &[Root {
            recorded: "nope".into(),
            source: dir.path().join("nope"),
        }],
        &[],
    );
    assert!(matches!(err, Err(Error::Missing { .. })));
    let status = std::process::Command::new("mkfifo")
        .arg(dir.path().join("fifo"))
        .status()?;
    assert!(status.success());
    let err = scan(
        &[Root {
            recorded: "fifo".into(),
            source: dir.path().join("fifo"),
        }],
        &[],
    );
    assert!(matches!(err, Err(Error::Unsupported { .. })));
    Ok(())
}
