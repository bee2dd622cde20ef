use super::*;
use crate::pack::tar::{MemberKind, TRAILER, header, padding};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn member(out: &mut Vec<u8>, path: &str, kind: MemberKind, link: Option<&str>, body: &[u8]) {
    out.extend(header(path, kind, link));
    out.extend_from_slice(body);
    out.resize(out.len() + padding(body.len() as u64), 0);
}

fn file(size: usize) -> MemberKind {
    MemberKind::File {
        size: size as u64,
        executable: false,
    }
}

/// A raw header block with a correct checksum.
fn raw(name: &[u8], typeflag: u8, size_field: &[u8], link: &[u8]) -> [u8; BLOCK] {
    let mut h = [0u8; BLOCK];
    h[..name.len()].copy_from_slice(name);
    h[100..108].copy_from_slice(b"0000644\0");
    h[124..124 + size_field.len()].copy_from_slice(size_field);
    h[156] = typeflag;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..156].copy_from_slice(format!("{sum:06o}\0 ").as_bytes());
    h
}

fn octal(size: u64) -> Vec<u8> {
    format!("{size:011o}\0").into_bytes()
}

fn pax(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in records {
        let body = k.len() + v.len() + 3;
        let mut len = body + 1;
        while len != body + len.to_string().len() {
            len = body + len.to_string().len();
        }
        out.extend_from_slice(format!("{len} {k}=").as_bytes());
        out.extend_from_slice(v);
        out.push(b'\n');
    }
    out
}

fn extension(out: &mut Vec<u8>, typeflag: u8, data: &[u8]) {
    out.extend_from_slice(&raw(b"ext", typeflag, &octal(data.len() as u64), b""));
    out.extend_from_slice(data);
    out.resize(out.len() + padding(data.len() as u64), 0);
}

fn all(bytes: &[u8]) -> Result<Vec<(Vec<u8>, EntryKind, Option<Vec<u8>>, Vec<u8>)>, Error> {
    let mut r = Reader::new(bytes);
    let mut out = Vec::new();
    while let Some(mut e) = r.next_entry()? {
        let mut content = Vec::new();
        e.read_to_end(&mut content)?;
        out.push((
            e.path_bytes().to_vec(),
            e.kind(),
            e.link_bytes().map(<[u8]>::to_vec),
            content,
        ));
    }
    Ok(out)
}

#[test]
fn reads_what_snaps_writer_writes_including_long_paths() -> TestResult {
    let long_file = format!("{}/{}", "d".repeat(120), "f".repeat(60));
    let very_long = format!("{}/{}", "x".repeat(200), "y".repeat(120));
    let long_target = "t".repeat(150);
    let mut a = Vec::new();
    member(&mut a, "a", MemberKind::Dir, None, b"");
    member(&mut a, "a/hello.txt", file(6), None, b"hello\n");
    member(
        &mut a,
        "a/link",
        MemberKind::Symlink,
        Some("hello.txt"),
        b"",
    );
    member(&mut a, &long_file, file(1), None, b"1");
    member(&mut a, &very_long, file(2), None, b"22");
    member(
        &mut a,
        "a/far",
        MemberKind::Symlink,
        Some(&long_target),
        b"",
    );
    a.extend_from_slice(&TRAILER);
    let got = all(&a)?;
    assert_eq!(got.len(), 6);
    assert_eq!(got[0].0, b"a/", "directories keep their slash");
    assert_eq!(got[0].1, EntryKind::Dir);
    assert_eq!(
        got[1],
        (
            b"a/hello.txt".to_vec(),
            EntryKind::File,
            None,
            b"hello\n".to_vec()
        )
    );
    assert_eq!(got[2].2.as_deref(), Some(&b"hello.txt"[..]));
    assert_eq!(got[3].0, long_file.as_bytes(), "ustar prefix");
    assert_eq!(got[4].0, very_long.as_bytes(), "PAX path");
    assert_eq!(
        got[5].2.as_deref(),
        Some(long_target.as_bytes()),
        "PAX linkpath"
    );
    Ok(())
}

#[test]
fn reads_what_gnu_tar_writes() -> TestResult {
    let dir = tempfile::tempdir()?;
    let long = "n".repeat(150);
    std::fs::create_dir(dir.path().join(&long))?;
    std::fs::write(dir.path().join(&long).join("f"), b"content")?;
    std::os::unix::fs::symlink("t".repeat(120), dir.path().join("l"))?;
    for format in ["gnu", "posix"] {
        let out = std::process::Command::new("tar")
            .args(["--format", format, "--sort=name", "-cf", "-", "-C"])
            .arg(dir.path())
            .arg(".")
            .output()?;
        assert!(out.status.success(), "{format}");
        let got = all(&out.stdout)?;
        let find = |p: &str| got.iter().find(|e| e.0 == p.as_bytes());
        let f = find(&format!("./{long}/f")).ok_or(format!("{format}: long path"))?;
        assert_eq!(f.3, b"content");
        let l = find("./l").ok_or("link")?;
        assert_eq!(l.1, EntryKind::Symlink);
        assert_eq!(l.2.as_deref(), Some("t".repeat(120).as_bytes()), "{format}");
    }
    Ok(())
}

#[test]
fn gnu_long_names_links_and_base_256_sizes_are_read() -> TestResult {
    let mut a = Vec::new();
    let name = "L".repeat(300);
    extension(&mut a, b'L', format!("{name}\0").as_bytes());
    extension(&mut a, b'K', b"target-of-link\0");
    a.extend_from_slice(&raw(b"short", b'2', &octal(0), b"ignored"));
    let mut size = vec![0x80u8];
    size.extend_from_slice(&[0; 8]);
    size.extend_from_slice(&[0, 0, 3]);
    a.extend_from_slice(&raw(b"b256", b'0', &size, b""));
    a.extend_from_slice(b"abc");
    a.resize(a.len() + padding(3), 0);
    a.extend_from_slice(&TRAILER);
    let got = all(&a)?;
    assert_eq!(got[0].0, name.as_bytes());
    assert_eq!(got[0].2.as_deref(), Some(&b"target-of-link"[..]));
    assert_eq!(got[1].0, b"b256");
    assert_eq!(got[1].3, b"abc");
    Ok(())
}

#[test]
fn pax_size_overrides_the_header_and_global_values_persist() -> TestResult {
    let mut a = Vec::new();
    extension(&mut a, b'g', &pax(&[("linkpath", b"everywhere")]));
    extension(&mut a, b'x', &pax(&[("size", b"5"), ("mtime", b"1.5")]));
    a.extend_from_slice(&raw(b"f", b'0', &octal(0), b""));
    a.extend_from_slice(b"12345");
    a.resize(a.len() + padding(5), 0);
    a.extend_from_slice(&raw(b"g", b'2', &octal(0), b""));
    a.extend_from_slice(&TRAILER);
    let got = all(&a)?;
    assert_eq!(got[0].3, b"12345");
    assert_eq!(got[1].2.as_deref(), Some(&b"everywhere"[..]));
    Ok(())
}

// issue 13: the `tar` crate reads a PAX record of any declared size whole into memory (a
// 3.5 MB archive drove import to 434 MB); this reader refuses it before reading a byte.
#[test]
fn an_oversized_extension_record_is_refused_before_it_is_read() {
    for typeflag in [b'x', b'g', b'L', b'K'] {
        let mut a = raw(b"ext", typeflag, &octal(1 << 32), b"").to_vec();
        a.extend_from_slice(&[b'9'; 100]); // far less than declared: never read
        let mut r = Reader::new(&a[..]);
        match r.next_entry() {
            Err(Error::ExtensionTooLarge { size, limit, .. }) => {
                assert_eq!((size, limit), (1 << 32, MAX_EXTENSION_BYTES));
            }
            other => panic!("{}: {:?}", typeflag as char, other.map(|e| e.is_some())),
        }
        assert_eq!(r.position(), 512, "only the header was read");
    }
}

#[test]
fn hostile_headers_are_errors_not_panics() {
    let mut bad_sum = raw(b"f", b'0', &octal(0), b"");
    bad_sum[0] = b'g';
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("checksum", bad_sum.to_vec()),
        (
            "size digits",
            raw(b"f", b'0', b"0000000009a\0", b"").to_vec(),
        ),
        (
            "negative base-256",
            raw(b"f", b'0', &[0xff; 12], b"").to_vec(),
        ),
        (
            "base-256 overflow",
            raw(b"f", b'0', &[0x80, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0], b"").to_vec(),
        ),
        (
            "truncated header",
            raw(b"f", b'0', &octal(0), b"")[..300].to_vec(),
        ),
        ("truncated content", {
            let mut v = raw(b"f", b'0', &octal(1000), b"").to_vec();
            v.extend_from_slice(&[1; 10]);
            v
        }),
        ("sparse", raw(b"f", b'S', &octal(0), b"").to_vec()),
    ];
    for (what, bytes) in cases {
        assert!(all(&bytes).is_err(), "{what} must be refused");
    }
    let mut malformed = Vec::new();
    for records in [
        &b"9999 path=x\n"[..],
        b"x path=y\n",
        b"8 path=x",
        b"6 abc\n",
    ] {
        malformed.clear();
        extension(&mut malformed, b'x', records);
        malformed.extend_from_slice(&raw(b"f", b'0', &octal(0), b""));
        assert!(
            matches!(all(&malformed), Err(Error::BadExtension { .. })),
            "{}",
            String::from_utf8_lossy(records)
        );
    }
}

#[test]
fn the_member_count_is_capped() {
    let mut a = Vec::new();
    for i in 0..5 {
        member(&mut a, &format!("f{i}"), file(0), None, b"");
    }
    a.extend_from_slice(&TRAILER);
    let mut r = Reader::with_limits(
        &a[..],
        Limits {
            max_entries: 4,
            ..Limits::default()
        },
    );
    let mut n = 0;
    let err = loop {
        match r.next_entry() {
            Ok(Some(_)) => n += 1,
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
    };
    assert_eq!(n, 4);
    assert!(matches!(err, Some(Error::TooManyEntries { limit: 4 })));
}

#[test]
fn unread_content_is_skipped_and_a_missing_trailer_is_an_end() -> TestResult {
    let mut a = Vec::new();
    member(&mut a, "a", file(700), None, &[7; 700]);
    member(&mut a, "b", file(1), None, b"b");
    let mut r = Reader::new(&a[..]);
    let first = r.next_entry()?.ok_or("a")?;
    assert_eq!(first.size(), 700);
    let mut second = r.next_entry()?.ok_or("b")?;
    let mut s = Vec::new();
    second.read_to_end(&mut s)?;
    assert_eq!(s, b"b");
    assert!(r.next_entry()?.is_none());
    Ok(())
}
