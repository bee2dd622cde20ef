use super::*;
use std::io::Read;

fn build(
    members: &[(&str, MemberKind, Option<&str>, Option<&[u8]>)],
) -> io::Result<(Vec<u8>, PackIndex)> {
    let mut w = PackWriter::new(Vec::new());
    for (p, k, l, c) in members {
        w.add(Member::new(p, *k, *l, c.map(<[u8]>::to_vec)))?;
    }
    let (d, len, idx, bytes) = w.finish()?;
    assert_eq!(d, Digest::of(&bytes));
    assert_eq!(len, bytes.len() as u64);
    Ok((bytes, idx))
}

#[test]
fn a_pack_is_a_tar_zstd_and_each_object_reads_alone() -> io::Result<()> {
    let big = vec![42u8; FRAME_SIZE + 1000];
    let (pack, idx) = build(&[
        ("d", MemberKind::Dir, None, None),
        (
            "d/a",
            MemberKind::File {
                size: 5,
                executable: false,
            },
            None,
            Some(b"hello"),
        ),
        (
            "d/big",
            MemberKind::File {
                size: big.len() as u64,
                executable: true,
            },
            None,
            Some(&big),
        ),
        (
            "d/empty",
            MemberKind::File {
                size: 0,
                executable: false,
            },
            None,
            Some(b""),
        ),
        ("d/l", MemberKind::Symlink, Some("a"), None),
    ])?;
    // As a whole: one zstd stream holding a tar.
    let tar_bytes = zstd::stream::decode_all(&pack[..])?;
    let mut ar = ::tar::Archive::new(&tar_bytes[..]);
    let mut names = Vec::new();
    for e in ar.entries()? {
        let mut e = e?;
        let mut v = Vec::new();
        e.read_to_end(&mut v)?;
        names.push((e.path()?.to_string_lossy().into_owned(), v.len()));
    }
    assert_eq!(
        names,
        [
            ("d/".into(), 0),
            ("d/a".into(), 5),
            ("d/big".into(), big.len()),
            ("d/empty".into(), 0),
            ("d/l".into(), 0)
        ]
    );
    // Alone: through the index.
    assert_eq!(idx.entries().len(), 2, "empty files are not indexed");
    for (content, digest) in [
        (&b"hello"[..], Digest::of(b"hello")),
        (&big[..], Digest::of(&big)),
    ] {
        let e = idx.find(&digest).ok_or_else(|| invalid("indexed"))?;
        let frames = &pack[e.offset as usize..(e.offset + e.length) as usize];
        assert_eq!(read_object(frames, e)?, content);
    }
    Ok(())
}

fn file(size: usize) -> MemberKind {
    MemberKind::File {
        size: size as u64,
        executable: false,
    }
}

/// The frames of a pack: (offset, compressed length, decompressed length).
fn frames(pack: &[u8]) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < pack.len() {
        let n = zstd::zstd_safe::find_frame_compressed_size(&pack[at..]).expect("a frame");
        let size = zstd::zstd_safe::get_frame_content_size(&pack[at..])
            .ok()
            .flatten()
            .expect("content size") as usize;
        out.push((at, n, size));
        at += n;
    }
    out
}

#[test]
fn small_files_share_blocks_and_large_ones_get_frames() -> io::Result<()> {
    // 64 KiB is the most a block holds inline; one byte more gets frames of its own.
    let inline = vec![7u8; BLOCK_INLINE_MAX as usize];
    let own = vec![8u8; BLOCK_INLINE_MAX as usize + 1];
    let smalls: Vec<Vec<u8>> = (0..40u8).map(|i| vec![i; 10_000]).collect();
    let mut members: Vec<(String, Vec<u8>)> =
        vec![("a".into(), inline.clone()), ("b".into(), own.clone())];
    for (i, c) in smalls.iter().enumerate() {
        members.push((format!("s{i:02}"), c.clone()));
    }
    let mut w = PackWriter::new(Vec::new());
    for (p, c) in &members {
        w.add(Member::new(p, file(c.len()), None, Some(c.clone())))?;
    }
    let (_, _, idx, pack) = w.finish()?;
    // [a's header, a, b's header] [b's contents and padding] [the small members, in
    // blocks that end where their cut values say, once past 64 KiB] [the trailer]
    let member = 512 + 10_240;
    let mut small_blocks = Vec::new();
    let mut open = 0;
    for (p, c) in &members[2..] {
        open += member;
        let m = Member::new(p, file(c.len()), None, Some(c.clone()));
        if ends_block(open, m.cut, c.len() as u64) {
            small_blocks.push(open);
            open = 0;
        }
    }
    if open > 0 {
        small_blocks.push(open);
    }
    let sizes: Vec<usize> = frames(&pack).iter().map(|f| f.2).collect();
    let mut expected = vec![512 + inline.len() + 512, own.len() + 511];
    expected.extend(&small_blocks);
    expected.push(1024);
    assert_eq!(sizes, expected);
    assert!(small_blocks.len() >= 2, "{small_blocks:?}");
    for b in &small_blocks[..small_blocks.len() - 1] {
        assert!(
            (BLOCK_MIN..BLOCK_MAX + member).contains(b),
            "{small_blocks:?}"
        );
    }
    let a = idx.find(&Digest::of(&inline)).ok_or_else(|| invalid("a"))?;
    assert_eq!((a.offset, a.skip), (0, 512));
    let b = idx.find(&Digest::of(&own)).ok_or_else(|| invalid("b"))?;
    assert_eq!(b.skip, 0, "b has frames of its own");
    // Every object reads alone, and the whole pack is still one tar.
    for (_, c) in &members {
        let e = idx.find(&Digest::of(c)).ok_or_else(|| invalid("indexed"))?;
        let bytes = &pack[e.offset as usize..(e.offset + e.length) as usize];
        assert_eq!(&read_object(bytes, e)?, c);
    }
    let tar_bytes = zstd::stream::decode_all(&pack[..])?;
    assert_eq!(
        ::tar::Archive::new(&tar_bytes[..]).entries()?.count(),
        members.len()
    );
    Ok(())
}

#[test]
fn version_1_indexes_read_with_skip_zero() -> io::Result<()> {
    let (pack, idx) = build(&[("x", file(3), None, Some(b"abc"))])?;
    let e = idx.entries()[0];
    let mut v1 = Vec::new();
    v1.extend_from_slice(b"SNAPIDX1");
    v1.extend_from_slice(&1u64.to_le_bytes());
    v1.extend_from_slice(e.digest.as_bytes());
    for n in [e.offset, e.length, e.size] {
        v1.extend_from_slice(&n.to_le_bytes());
    }
    let sum = Digest::of(&v1);
    v1.extend_from_slice(sum.as_bytes());
    let decoded = PackIndex::decode(&v1, pack.len() as u64).map_err(io::Error::other)?;
    assert_eq!(decoded.entries()[0], IndexEntry { skip: 0, ..e });
    Ok(())
}

#[test]
fn packs_are_deterministic() -> io::Result<()> {
    let m: &[(&str, MemberKind, Option<&str>, Option<&[u8]>)] = &[(
        "x",
        MemberKind::File {
            size: 3,
            executable: false,
        },
        None,
        Some(b"abc"),
    )];
    assert_eq!(build(m)?.0, build(m)?.0);
    Ok(())
}

#[test]
fn index_round_trips_and_rejects_damage() -> io::Result<()> {
    let (pack, idx) = build(&[
        (
            "a",
            MemberKind::File {
                size: 1,
                executable: false,
            },
            None,
            Some(b"1"),
        ),
        (
            "b",
            MemberKind::File {
                size: 1,
                executable: false,
            },
            None,
            Some(b"2"),
        ),
        (
            "c",
            MemberKind::File {
                size: 1,
                executable: false,
            },
            None,
            Some(b"1"),
        ),
    ])?;
    assert_eq!(idx.entries().len(), 2, "duplicates indexed once");
    let bytes = idx.encode();
    assert_eq!(
        PackIndex::decode(&bytes, pack.len() as u64).map_err(io::Error::other)?,
        idx.clone()
    );
    for i in [0, 9, 20, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[i] ^= 1;
        assert!(
            PackIndex::decode(&bad, pack.len() as u64).is_err(),
            "flip at {i}"
        );
    }
    assert!(
        PackIndex::decode(&bytes, 10).is_err(),
        "entries beyond a short pack"
    );
    assert!(PackIndex::decode(&bytes[..40], 1000).is_err());
    Ok(())
}

#[test]
fn read_object_detects_corrupt_frames() -> io::Result<()> {
    let (pack, idx) = build(&[(
        "a",
        MemberKind::File {
            size: 11,
            executable: false,
        },
        None,
        Some(b"hello world"),
    )])?;
    let e = *idx
        .find(&Digest::of(b"hello world"))
        .ok_or_else(|| invalid("indexed"))?;
    let mut frames = pack[e.offset as usize..(e.offset + e.length) as usize].to_vec();
    let last = frames.len() - 3;
    frames[last] ^= 0xff;
    assert!(read_object(&frames, &e).is_err());
    let wrong = IndexEntry {
        digest: Digest::of(b"other"),
        ..e
    };
    let good = &pack[e.offset as usize..(e.offset + e.length) as usize];
    assert!(read_object(good, &wrong).is_err());
    Ok(())
}

/// Small members with distinct contents of a few KiB each.
fn smalls(n: usize, salt: u8) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let len = 1000 + (i * 7919) % 6000;
            let c: Vec<u8> = (0..len)
                .map(|j| (i.wrapping_mul(31) ^ j ^ usize::from(salt)) as u8)
                .collect();
            (format!("d/f{i:04}"), c)
        })
        .collect()
}

fn block_frames(members: &[(String, Vec<u8>)]) -> io::Result<Vec<Vec<u8>>> {
    let mut w = PackWriter::new(Vec::new());
    for (p, c) in members {
        w.add(Member::new(p, file(c.len()), None, Some(c.clone())))?;
    }
    let f = w.finish_with_blocks()?;
    Ok(f.blocks
        .iter()
        .map(|(o, l)| f.inner[*o as usize..(o + l) as usize].to_vec())
        .collect())
}

#[test]
fn block_ends_are_content_defined_so_a_change_moves_only_nearby_ones() -> io::Result<()> {
    let before = smalls(600, 0);
    let mut after = before.clone();
    after[40].1.extend_from_slice(b"one more line\n");
    after.insert(300, ("d/f0299b".into(), vec![9u8; 3000]));
    after.remove(500);
    let a = block_frames(&before)?;
    let b = block_frames(&after)?;
    let same = a.iter().filter(|f| b.contains(f)).count();
    assert!(a.len() > 8, "{} blocks", a.len());
    assert!(
        same + 6 >= a.len(),
        "three changes, {same} of {} blocks kept",
        a.len()
    );
    Ok(())
}

#[test]
fn copied_blocks_and_frames_give_the_bytes_compressing_gives() -> io::Result<()> {
    let mut members = smalls(300, 1);
    members.insert(
        120,
        ("d/big".into(), vec![5u8; BLOCK_INLINE_MAX as usize + 77]),
    );
    let mut w = PackWriter::new(Vec::new());
    for (p, c) in &members {
        w.add(Member::new(p, file(c.len()), None, Some(c.clone())))?;
    }
    let orig = w.finish_with_blocks()?;
    let pack = &orig.inner;
    let slice = |o: u64, l: u64| pack[o as usize..(o + l) as usize].to_vec();

    // The same members again, each block copied whole from the first pack (with the big
    // file's content frames after its header's block), except one block that is built.
    let mut w = PackWriter::new(Vec::new());
    let mut at = 0;
    for (bi, (offset, length)) in orig.blocks.iter().enumerate() {
        // The members of this block: until the writer would end it.
        let mut len = 0;
        let start = at;
        let mut tail = None;
        while at < members.len() {
            let (p, c) = &members[at];
            let m = Member::new(p, file(c.len()), None, Some(c.clone()));
            len += m.header.len();
            at += 1;
            if c.len() as u64 > BLOCK_INLINE_MAX {
                let e = orig
                    .index
                    .find(&Digest::of(c))
                    .ok_or_else(|| invalid("big"))?;
                tail = Some((slice(e.offset, e.length), e.digest, e.size));
                break;
            }
            len += c.len() + tar::padding(c.len() as u64);
            if ends_block(len, m.cut, c.len() as u64) {
                break;
            }
        }
        if bi == 3 {
            for (p, c) in &members[start..at] {
                let m = Member::new(p, file(c.len()), None, Some(c.clone()));
                match &tail {
                    Some((frames, d, size)) if c.len() as u64 > BLOCK_INLINE_MAX => {
                        w.add_framed(&m.header, frames.clone(), *d, *size)?;
                    }
                    _ => w.add(m)?,
                }
            }
            assert!(w.at_block_start(), "block {bi} ends where the rule says");
            continue;
        }
        let objects: Vec<(Digest, u64, u64)> = orig
            .index
            .entries()
            .iter()
            .filter(|e| e.offset == *offset && e.skip > 0)
            .map(|e| (e.digest, e.skip, e.size))
            .collect();
        w.copy_block(slice(*offset, *length), objects, (at - start) as u64, tail)?;
    }
    assert_eq!(at, members.len(), "every member is in a block");
    let copy = w.finish_with_blocks()?;
    assert_eq!(copy.inner, orig.inner, "byte for byte");
    assert_eq!(copy.index, orig.index);
    assert_eq!(copy.blocks, orig.blocks);
    Ok(())
}

#[test]
fn a_copied_block_must_start_a_block() -> io::Result<()> {
    let mut w = PackWriter::new(Vec::new());
    w.add(Member::new("x", file(1), None, Some(vec![1])))?;
    assert!(!w.at_block_start());
    assert!(w.copy_block(Vec::new(), Vec::new(), 1, None).is_err());
    Ok(())
}
