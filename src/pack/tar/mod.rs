//! Tar, both ways: deterministic headers for what snap writes (store format §5.2: ustar, mtime
//! 0, uid/gid 0, no user names, PAX records only for what ustar cannot hold), and [`Reader`],
//! the one bounded streaming reader every untrusted tar input goes through.

pub mod reader;

pub use reader::{Entry, EntryKind, Limits, MAX_EXTENSION_BYTES, Reader};

/// What a tar member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// A regular file of `size` bytes.
    File {
        /// Size in bytes.
        size: u64,
        /// Owner-execute bit.
        executable: bool,
    },
    /// A directory.
    Dir,
    /// A symlink (its target is passed separately).
    Symlink,
}

const BLOCK: usize = 512;
/// Largest size the 11-digit octal field holds.
const MAX_OCTAL_SIZE: u64 = 0o777_7777_7777;

/// The header block(s) of one member: an optional PAX header and its records, then the ustar
/// header. `path` is relative and `/`-separated, without a trailing `/` (added for
/// directories here).
#[must_use]
pub fn header(path: &str, kind: MemberKind, link_target: Option<&str>) -> Vec<u8> {
    let mut name = path.to_owned();
    if kind == MemberKind::Dir {
        name.push('/');
    }
    let size = match kind {
        MemberKind::File { size, .. } => size,
        _ => 0,
    };
    let mut pax = Vec::new();
    let split = split_ustar_path(&name);
    if split.is_none() {
        pax_record(&mut pax, "path", &name);
    }
    if let Some(target) = link_target
        && target.len() > 100
    {
        pax_record(&mut pax, "linkpath", target);
    }
    if size > MAX_OCTAL_SIZE {
        pax_record(&mut pax, "size", &size.to_string());
    }

    let mut out = Vec::with_capacity(BLOCK * 3);
    if !pax.is_empty() {
        let mut h = [0u8; BLOCK];
        put_str(&mut h[0..100], "PaxHeader");
        fill_common(&mut h, 0o644, pax.len() as u64, b'x');
        finish_checksum(&mut h);
        out.extend_from_slice(&h);
        out.extend_from_slice(&pax);
        out.resize(out.len() + padding(pax.len() as u64), 0);
    }

    let mut h = [0u8; BLOCK];
    match split {
        Some((prefix, rest)) => {
            put_str(&mut h[0..100], rest);
            put_str(&mut h[345..500], prefix);
        }
        None => put_str(&mut h[0..100], truncate(&name, 100)),
    }
    let (mode, typeflag) = match kind {
        MemberKind::File { executable, .. } => (if executable { 0o755 } else { 0o644 }, b'0'),
        MemberKind::Dir => (0o755, b'5'),
        MemberKind::Symlink => (0o777, b'2'),
    };
    fill_common(
        &mut h,
        mode,
        if size > MAX_OCTAL_SIZE { 0 } else { size },
        typeflag,
    );
    if let Some(target) = link_target {
        put_str(&mut h[157..257], truncate(target, 100));
    }
    finish_checksum(&mut h);
    out.extend_from_slice(&h);
    out
}

/// The length of [`header`]'s result, without building it: 512, plus a PAX header and its
/// records (padded) when the path, the link target or the size does not fit ustar.
#[must_use]
pub fn header_len(path: &str, kind: MemberKind, link_target: Option<&str>) -> usize {
    let dir = kind == MemberKind::Dir;
    let name_len = path.len() + usize::from(dir);
    let fits = if dir {
        split_ustar_path(&format!("{path}/")).is_some()
    } else {
        split_ustar_path(path).is_some()
    };
    let mut pax = 0;
    if !fits {
        pax += pax_record_len("path", name_len);
    }
    if let Some(target) = link_target
        && target.len() > 100
    {
        pax += pax_record_len("linkpath", target.len());
    }
    if let MemberKind::File { size, .. } = kind
        && size > MAX_OCTAL_SIZE
    {
        pax += pax_record_len("size", size.to_string().len());
    }
    if pax == 0 {
        BLOCK
    } else {
        BLOCK + pax + padding(pax as u64) + BLOCK
    }
}

/// Zero bytes that pad `size` bytes of content to the next block boundary.
#[must_use]
pub fn padding(size: u64) -> usize {
    // The remainder is below 512, so it always fits.
    let rem = usize::try_from(size % BLOCK as u64).unwrap_or(0);
    if rem == 0 { 0 } else { BLOCK - rem }
}

/// The end-of-archive marker: two zero blocks.
pub const TRAILER: [u8; 1024] = [0u8; 1024];

fn fill_common(h: &mut [u8; BLOCK], mode: u32, size: u64, typeflag: u8) {
    put_octal(&mut h[100..108], u64::from(mode));
    put_octal(&mut h[108..116], 0);
    put_octal(&mut h[116..124], 0);
    put_octal(&mut h[124..136], size);
    put_octal(&mut h[136..148], 0);
    h[156] = typeflag;
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    put_octal(&mut h[329..337], 0);
    put_octal(&mut h[337..345], 0);
}

fn finish_checksum(h: &mut [u8; BLOCK]) {
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
}

/// Writes `value` as zero-padded octal digits followed by NUL, filling the field.
fn put_octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{value:0digits$o}");
    field[..digits].copy_from_slice(&s.as_bytes()[s.len() - digits..]);
    field[digits] = 0;
}

fn put_str(field: &mut [u8], s: &str) {
    let b = s.as_bytes();
    let n = b.len().min(field.len());
    field[..n].copy_from_slice(&b[..n]);
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Splits a path into ustar `prefix` (≤ 155 bytes) and `name` (≤ 100 bytes) at a `/`.
fn split_ustar_path(path: &str) -> Option<(&str, &str)> {
    if path.len() <= 100 {
        return Some(("", path));
    }
    // Prefer the longest prefix that fits, so the name part is as short as possible.
    let bytes = path.as_bytes();
    let limit = bytes.len().min(156);
    (1..limit)
        .rev()
        .filter(|&i| bytes[i] == b'/')
        .map(|i| (&path[..i], &path[i + 1..]))
        .find(|(prefix, name)| prefix.len() <= 155 && !name.is_empty() && name.len() <= 100)
}

fn pax_record(out: &mut Vec<u8>, key: &str, value: &str) {
    // "<len> <key>=<value>\n" where len counts the whole record, its own digits included.
    let len = pax_record_len(key, value.len());
    out.extend_from_slice(format!("{len} {key}={value}\n").as_bytes());
}

/// The length of the PAX record `"<len> <key>=<value>\n"`, its own digits included.
fn pax_record_len(key: &str, value_len: usize) -> usize {
    let body = key.len() + value_len + 3;
    let mut len = body + 1;
    while len != body + len.to_string().len() {
        len = body + len.to_string().len();
    }
    len
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;
    use std::io::Read;

    fn archive(members: &[(&str, MemberKind, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (path, kind, link, content) in members {
            out.extend(header(path, *kind, *link));
            out.extend_from_slice(content);
            out.resize(out.len() + padding(content.len() as u64), 0);
        }
        out.extend_from_slice(&TRAILER);
        out
    }

    #[test]
    fn the_tar_crate_reads_what_we_write() -> std::io::Result<()> {
        let long_dir = "d".repeat(120);
        let long_file = format!("{long_dir}/{}", "f".repeat(60));
        let very_long = format!("{}/{}", "x".repeat(200), "y".repeat(120));
        let long_target = "t".repeat(150);
        let bytes = archive(&[
            ("a", MemberKind::Dir, None, b""),
            (
                "a/hello.txt",
                MemberKind::File {
                    size: 6,
                    executable: false,
                },
                None,
                b"hello\n",
            ),
            (
                "a/run",
                MemberKind::File {
                    size: 3,
                    executable: true,
                },
                None,
                b"#!\n",
            ),
            ("a/link", MemberKind::Symlink, Some("hello.txt"), b""),
            (
                &long_file,
                MemberKind::File {
                    size: 1,
                    executable: false,
                },
                None,
                b"1",
            ),
            (
                &very_long,
                MemberKind::File {
                    size: 2,
                    executable: false,
                },
                None,
                b"22",
            ),
            ("a/far", MemberKind::Symlink, Some(&long_target), b""),
        ]);
        let mut ar = tar::Archive::new(&bytes[..]);
        let mut seen = Vec::new();
        for e in ar.entries()? {
            let mut e = e?;
            let path = e.path()?.to_string_lossy().into_owned();
            let mode = e.header().mode()?;
            let link = e.link_name()?.map(|l| l.to_string_lossy().into_owned());
            let mut content = Vec::new();
            e.read_to_end(&mut content)?;
            seen.push((path, mode, link, content));
        }
        assert_eq!(seen.len(), 7);
        assert_eq!(seen[0].0, "a/", "directories end in a slash");
        assert_eq!(
            seen[1],
            ("a/hello.txt".into(), 0o644, None, b"hello\n".to_vec())
        );
        assert_eq!(seen[2].1, 0o755);
        assert_eq!(seen[3].2.as_deref(), Some("hello.txt"));
        assert_eq!(seen[4].0, long_file);
        assert_eq!(seen[5].0, very_long);
        assert_eq!(seen[6].2.as_deref(), Some(long_target.as_str()));
        Ok(())
    }

    #[test]
    fn pax_record_lengths_count_themselves() {
        for n in [1, 5, 88, 89, 90, 95, 96, 990, 1000] {
            let mut out = Vec::new();
            pax_record(&mut out, "path", &"p".repeat(n));
            let s = String::from_utf8_lossy(&out);
            let (len, _) = s.split_once(' ').unwrap_or_default();
            assert_eq!(len.parse::<usize>().ok(), Some(out.len()), "{s}");
        }
    }

    #[test]
    fn headers_are_deterministic_and_checksummed() {
        let a = header(
            "x/y",
            MemberKind::File {
                size: 10,
                executable: false,
            },
            None,
        );
        assert_eq!(
            a,
            header(
                "x/y",
                MemberKind::File {
                    size: 10,
                    executable: false
                },
                None
            )
        );
        assert!(
            a[148..154].iter().all(|b| (b'0'..=b'7').contains(b)),
            "6 octal digits"
        );
        assert_eq!(&a[154..156], b"\0 ", "then NUL and space");
    }

    #[test]
    fn header_len_is_the_length_of_the_header() {
        let mut paths = vec![String::from("a"), "d/e".into()];
        for n in [
            98, 99, 100, 101, 150, 155, 156, 157, 254, 255, 256, 300, 1000,
        ] {
            paths.push("p".repeat(n));
            paths.push(format!("{}/{}", "d".repeat(n / 2), "f".repeat(n - n / 2)));
            paths.push(format!(
                "{}/{}",
                "d".repeat(n.min(155)),
                "f".repeat(n % 101)
            ));
        }
        let kinds = [
            MemberKind::Dir,
            MemberKind::Symlink,
            MemberKind::File {
                size: 7,
                executable: true,
            },
            MemberKind::File {
                size: MAX_OCTAL_SIZE + 1,
                executable: false,
            },
        ];
        for path in &paths {
            for kind in kinds {
                for target in [None, Some("t"), Some(&*"t".repeat(101))] {
                    let target = if kind == MemberKind::Symlink {
                        target
                    } else {
                        None
                    };
                    assert_eq!(
                        header_len(path, kind, target),
                        header(path, kind, target).len(),
                        "{} bytes of path, {kind:?}, {target:?}",
                        path.len()
                    );
                }
            }
        }
    }
}
