use super::*;
use crate::pack;

fn objects() -> io::Result<(tempfile::TempDir, Objects)> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("objects/sha256"))?;
    std::fs::create_dir_all(dir.path().join("packs"))?;
    let o = Objects::new(dir.path());
    Ok((dir, o))
}

/// Stores a pack holding one file `a` with the bytes `abc`.
fn pack_abc(o: &Objects) -> Result<(Digest, u64, bool), Box<dyn std::error::Error>> {
    let mut w = o.begin_pack()?;
    w.add(pack::Member::new(
        "a",
        pack::MemberKind::File {
            size: 3,
            executable: false,
        },
        None,
        Some(b"abc".to_vec()),
    ))?;
    Ok(o.finish_pack(w)?)
}

#[test]
fn put_then_read_verifies_and_dedupes() -> Result<(), Box<dyn std::error::Error>> {
    let (_d, o) = objects()?;
    let a = o.put(b"hello")?;
    assert_eq!(a, Digest::of(b"hello"));
    assert_eq!(o.put(b"hello")?, a);
    assert_eq!(o.read(&a, 100)?, b"hello");
    assert!(matches!(o.read(&a, 2), Err(Error::TooLarge { .. })));
    assert!(matches!(
        o.read(&Digest::of(b"x"), 9),
        Err(Error::NotFound(_))
    ));
    let empty = o.put(b"")?;
    assert_eq!(o.read(&empty, 0)?, b"");
    Ok(())
}

#[test]
fn put_stream_matches_put_for_multi_frame_objects() -> Result<(), Box<dyn std::error::Error>> {
    let (_d, o) = objects()?;
    let data: Vec<u8> = (0..(pack::FRAME_SIZE * 2 + 77))
        .map(|i| (i % 251) as u8)
        .collect();
    let (d, n) = o.put_stream(&mut &data[..], Path::new("src"))?;
    assert_eq!((d, n), (Digest::of(&data), data.len() as u64));
    let on_disk = std::fs::read(o.loose_path(&d))?;
    let (d2, _) = {
        let (_d2dir, o2) = objects()?;
        let d2 = o2.put(&data)?;
        (d2, std::fs::read(o2.loose_path(&d2))? == on_disk)
    };
    assert_eq!(d2, d);
    assert_eq!(o.read(&d, u64::MAX)?, data);
    let (e, _) = o.put_stream(&mut io::empty(), Path::new("empty"))?;
    assert_eq!(o.read(&e, 0)?, b"");
    Ok(())
}

#[test]
fn corrupt_loose_object_is_reported_not_returned() -> Result<(), Box<dyn std::error::Error>> {
    let (_d, o) = objects()?;
    let a = o.put(b"some content that compresses")?;
    let p = o.loose_path(&a);
    let mut bytes = std::fs::read(&p)?;
    let n = bytes.len();
    bytes[n - 2] ^= 0x55;
    std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    std::fs::write(&p, &bytes)?;
    assert!(matches!(o.read(&a, 1000), Err(Error::Corrupt { .. })));
    Ok(())
}

#[test]
fn packed_objects_are_found_and_verified() -> Result<(), Box<dyn std::error::Error>> {
    let (dir, o) = objects()?;
    let (pd, len, new) = pack_abc(&o)?;
    let store_dir = dir.path();
    assert!(new && len > 0);
    assert!(matches!(o.locate(&pd), Some(Location::Pack(_))));
    assert_eq!(o.read(&Digest::of(b"abc"), 10)?, b"abc");
    // A fresh handle loads the index from disk.
    let o2 = Objects::new(store_dir);
    assert_eq!(o2.read(&Digest::of(b"abc"), 10)?, b"abc");
    Ok(())
}

// A pull that had loaded the pack indexes missed the files of a pack another pull stored
// meanwhile, and refused the snapshot as incomplete (concurrent pulls of one tag).
#[test]
fn packs_stored_by_another_process_after_loading_are_found()
-> Result<(), Box<dyn std::error::Error>> {
    let (dir, o) = objects()?;
    let reader = Objects::new(dir.path());
    assert!(
        !reader.contains(&Digest::of(b"abc")),
        "loads the (empty) pack set"
    );
    pack_abc(&o)?;
    assert!(reader.contains(&Digest::of(b"abc")));
    assert_eq!(reader.read(&Digest::of(b"abc"), 10)?, b"abc");
    Ok(())
}
