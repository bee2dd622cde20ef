//! A streaming tar reader for untrusted archives, with every allocation bounded.
//!
//! Reads ustar headers (with the POSIX `prefix`), PAX extended headers (`x` for the next
//! member, `g` for all that follow) and GNU long names and links (`L`, `K`). From PAX it takes
//! `path`, `linkpath` and `size`; other keys are skipped. Sizes may be octal or GNU base-256.
//! Every header's checksum is checked.
//!
//! **Bounds.** Member content is never buffered: an [`Entry`] is a `Read` of exactly its
//! declared size, straight from the input. The only buffers are the extension records, each
//! refused *before it is read* when its header declares more than [`Limits::max_extension`]
//! ([`MAX_EXTENSION_BYTES`], 1 MiB, by default), and at most one pending long name, long link
//! and PAX `path`/`linkpath` (plus their global counterparts) are kept. The number of members
//! is capped by [`Limits::max_entries`]. So memory stays a few MiB whatever the archive says;
//! compare the `tar` crate, which reads a PAX record or GNU long name of any declared size
//! whole into memory.
//!
//! GNU sparse members (`S`) are refused: their extra header blocks would otherwise be read as
//! content. Members of other types (devices, FIFOs, ...) are reported as
//! [`EntryKind::Other`] with their content skippable like any other.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::io::Read;
//! use snap::pack::tar::{self, EntryKind, MemberKind, Reader};
//! let mut archive = tar::header("hello.txt", MemberKind::File { size: 3, executable: false }, None);
//! archive.extend_from_slice(b"hi\n");
//! archive.resize(archive.len() + tar::padding(3), 0);
//! archive.extend_from_slice(&tar::TRAILER);
//! let mut reader = Reader::new(&archive[..]);
//! let mut entry = reader.next_entry()?.ok_or("one member")?;
//! assert_eq!(entry.path_bytes(), b"hello.txt");
//! assert_eq!(entry.kind(), EntryKind::File);
//! let mut content = String::new();
//! entry.read_to_string(&mut content)?;
//! assert_eq!(content, "hi\n");
//! assert!(reader.next_entry()?.is_none());
//! # Ok(())
//! # }
//! ```
//!
//! This module reads bytes; it knows nothing of what the members mean.

use std::io::{self, Read};

/// Largest extension record (PAX `x`/`g` header, GNU long name or link) read by default.
pub const MAX_EXTENSION_BYTES: u64 = 1 << 20;

const BLOCK: usize = 512;

/// What a reader accepts.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Largest PAX extended header or GNU long name or link, in bytes.
    pub max_extension: u64,
    /// Most members (extension records not counted).
    pub max_entries: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_extension: MAX_EXTENSION_BYTES,
            max_entries: u64::MAX,
        }
    }
}

/// What a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A regular file (`0`, NUL or `7`, contiguous).
    File,
    /// A directory (`5`).
    Dir,
    /// A symbolic link (`2`); the target is [`Entry::link_bytes`].
    Symlink,
    /// A hard link (`1`) to an earlier member, named by [`Entry::link_bytes`].
    HardLink,
    /// Anything else (devices, FIFOs, vendor types), with its type flag.
    Other(u8),
}

/// Extension values waiting for the member they describe.
#[derive(Default)]
struct Extensions {
    path: Option<Vec<u8>>,
    link: Option<Vec<u8>>,
    size: Option<u64>,
}

/// A streaming reader of tar members.
pub struct Reader<R> {
    inner: R,
    limits: Limits,
    /// Bytes consumed from `inner`.
    position: u64,
    /// Content bytes of the current member not yet read, then its padding.
    remaining: u64,
    padding: u64,
    entries: u64,
    /// PAX `g` values: apply to every later member.
    global: Extensions,
    done: bool,
}

/// One member: its header facts, and a `Read` of its content (exactly [`Entry::size`] bytes).
pub struct Entry<'a, R> {
    reader: &'a mut Reader<R>,
    path: Vec<u8>,
    link: Option<Vec<u8>>,
    kind: EntryKind,
    size: u64,
    mode: u32,
    offset: u64,
}

impl<R: Read> Reader<R> {
    /// A reader with the default [`Limits`].
    pub fn new(inner: R) -> Self {
        Self::with_limits(inner, Limits::default())
    }

    /// A reader with `limits`.
    pub fn with_limits(inner: R, limits: Limits) -> Self {
        Reader {
            inner,
            limits,
            position: 0,
            remaining: 0,
            padding: 0,
            entries: 0,
            global: Extensions::default(),
            done: false,
        }
    }

    /// Bytes consumed from the input so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The input, positioned after what was read (after the first end-of-archive block when
    /// [`Reader::next_entry`] returned `None`), for a caller that must drain it.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// The next member, skipping what is left of the previous one. `None` at the end of the
    /// archive: a zero block, or the end of the input where a header would start.
    ///
    /// # Errors
    /// [`Error`] for a truncated archive, a bad checksum or number, an extension record over
    /// the limit or malformed, too many members, a sparse member, or a read error.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'_, R>>, Error> {
        if self.done {
            return Ok(None);
        }
        self.skip_rest()?;
        let mut pending = Extensions::default();
        let mut long_name = None;
        let mut long_link = None;
        loop {
            let offset = self.position;
            let Some(block) = self.read_header()? else {
                self.done = true;
                return Ok(None);
            };
            let header = Header::parse(&block, offset)?;
            match header.typeflag {
                b'x' | b'g' => {
                    let data = self.read_extension(&header, "PAX extended header")?;
                    let target = if header.typeflag == b'x' {
                        &mut pending
                    } else {
                        &mut self.global
                    };
                    parse_pax(&data, target, offset)?;
                }
                b'L' | b'K' => {
                    let what = if header.typeflag == b'L' {
                        "GNU long name"
                    } else {
                        "GNU long link"
                    };
                    let mut data = self.read_extension(&header, what)?;
                    while data.last() == Some(&0) {
                        data.pop();
                    }
                    if header.typeflag == b'L' {
                        long_name = Some(data);
                    } else {
                        long_link = Some(data);
                    }
                }
                b'S' => {
                    return Err(Error::Unsupported {
                        offset,
                        what: "GNU sparse member",
                    });
                }
                flag => {
                    self.entries += 1;
                    if self.entries > self.limits.max_entries {
                        return Err(Error::TooManyEntries {
                            limit: self.limits.max_entries,
                        });
                    }
                    let size = pending.size.or(self.global.size).unwrap_or(header.size);
                    let path = pending
                        .path
                        .take()
                        .or(long_name)
                        .or_else(|| self.global.path.clone())
                        .unwrap_or(header.name);
                    let link = pending
                        .link
                        .take()
                        .or(long_link)
                        .or_else(|| self.global.link.clone())
                        .or(header.link);
                    let kind = match flag {
                        b'0' | 0 | b'7' => EntryKind::File,
                        b'1' => EntryKind::HardLink,
                        b'2' => EntryKind::Symlink,
                        b'5' => EntryKind::Dir,
                        other => EntryKind::Other(other),
                    };
                    self.remaining = size;
                    self.padding = padding_of(size);
                    return Ok(Some(Entry {
                        reader: self,
                        path,
                        link,
                        kind,
                        size,
                        mode: header.mode,
                        offset,
                    }));
                }
            }
        }
    }

    /// Skips the rest of the current member's content and its padding.
    fn skip_rest(&mut self) -> Result<(), Error> {
        let n = self.remaining + self.padding;
        if n > 0 {
            let skipped = io::copy(&mut (&mut self.inner).take(n), &mut io::sink())?;
            self.position += skipped;
            if skipped != n {
                return Err(Error::Truncated {
                    offset: self.position,
                });
            }
            self.remaining = 0;
            self.padding = 0;
        }
        Ok(())
    }

    /// The next header block; `None` for a zero block or a clean end of input.
    fn read_header(&mut self) -> Result<Option<[u8; BLOCK]>, Error> {
        let mut block = [0u8; BLOCK];
        let mut filled = 0;
        while filled < BLOCK {
            match self.inner.read(&mut block[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        self.position += filled as u64;
        match filled {
            0 => Ok(None),
            BLOCK if block.iter().all(|&b| b == 0) => Ok(None),
            BLOCK => Ok(Some(block)),
            _ => Err(Error::Truncated {
                offset: self.position,
            }),
        }
    }

    /// Reads an extension record's data (and padding), refusing it before reading when its
    /// header declares more than the limit.
    fn read_extension(&mut self, header: &Header, what: &'static str) -> Result<Vec<u8>, Error> {
        if header.size > self.limits.max_extension {
            return Err(Error::ExtensionTooLarge {
                what,
                offset: header.offset,
                size: header.size,
                limit: self.limits.max_extension,
            });
        }
        let len = usize::try_from(header.size).expect("at most max_extension, which is small");
        let mut data = vec![0u8; len];
        self.read_exact_counted(&mut data)?;
        self.padding = padding_of(header.size);
        self.skip_rest()?;
        Ok(data)
    }

    fn read_exact_counted(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        match self.inner.read_exact(buf) {
            Ok(()) => {
                self.position += buf.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Err(Error::Truncated {
                offset: self.position,
            }),
            Err(e) => Err(Error::Io(e)),
        }
    }
}

impl<R> Entry<'_, R> {
    /// The member's path, as bytes (PAX `path`, else GNU long name, else ustar prefix/name).
    pub fn path_bytes(&self) -> &[u8] {
        &self.path
    }

    /// A link's target (PAX `linkpath`, else GNU long link, else ustar linkname); `None` when
    /// the header has none.
    pub fn link_bytes(&self) -> Option<&[u8]> {
        self.link.as_deref()
    }

    /// What the member is.
    pub fn kind(&self) -> EntryKind {
        self.kind
    }

    /// The content's size in bytes (PAX `size`, else the header's).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The permission bits (and set-id bits) of the header.
    pub fn mode(&self) -> u32 {
        self.mode
    }

    /// Where the member's first header starts in the input.
    pub fn offset(&self) -> u64 {
        self.offset
    }
}

impl<R: Read> Read for Entry<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let r = &mut *self.reader;
        if r.remaining == 0 || buf.is_empty() {
            return Ok(0);
        }
        let max = usize::try_from(r.remaining).map_or(buf.len(), |n| n.min(buf.len()));
        let n = r.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the archive ends inside the member at offset {}",
                    self.offset
                ),
            ));
        }
        r.remaining -= n as u64;
        r.position += n as u64;
        Ok(n)
    }
}

/// The facts of one header block.
struct Header {
    offset: u64,
    name: Vec<u8>,
    link: Option<Vec<u8>>,
    mode: u32,
    size: u64,
    typeflag: u8,
}

impl Header {
    fn parse(b: &[u8; BLOCK], offset: u64) -> Result<Header, Error> {
        let recorded = number(&b[148..156], offset, "checksum")?;
        let (unsigned, signed) = checksums(b);
        if recorded != unsigned && i64::try_from(recorded).ok() != Some(signed) {
            return Err(Error::Checksum { offset });
        }
        let mut name = until_nul(&b[0..100]).to_vec();
        // POSIX ustar splits long paths into prefix and name; GNU's magic uses that space for
        // other fields.
        if &b[257..263] == b"ustar\0" {
            let prefix = until_nul(&b[345..500]);
            if !prefix.is_empty() {
                let mut full = prefix.to_vec();
                full.push(b'/');
                full.extend_from_slice(&name);
                name = full;
            }
        }
        let link = until_nul(&b[157..257]);
        let mode = number(&b[100..108], offset, "mode")?;
        Ok(Header {
            offset,
            name,
            link: (!link.is_empty()).then(|| link.to_vec()),
            mode: u32::try_from(mode & 0o7777).expect("masked to 12 bits"),
            size: number(&b[124..136], offset, "size")?,
            typeflag: b[156],
        })
    }
}

/// The unsigned and (historical) signed sums of a header, its checksum field read as spaces.
fn checksums(b: &[u8; BLOCK]) -> (u64, i64) {
    let mut unsigned = 0u64;
    let mut signed = 0i64;
    for (i, &byte) in b.iter().enumerate() {
        let byte = if (148..156).contains(&i) { b' ' } else { byte };
        unsigned += u64::from(byte);
        signed += i64::from(byte.cast_signed());
    }
    (unsigned, signed)
}

fn until_nul(field: &[u8]) -> &[u8] {
    field
        .iter()
        .position(|&c| c == 0)
        .map_or(field, |n| &field[..n])
}

/// A numeric header field: octal digits (leading spaces, ending at a space or NUL), or GNU
/// base-256 (first byte `0x80`, then big-endian).
fn number(field: &[u8], offset: u64, what: &'static str) -> Result<u64, Error> {
    let bad = || Error::BadNumber {
        offset,
        field: what,
    };
    if field.first().is_some_and(|&c| c & 0x80 != 0) {
        // Base-256: 0x80 marks a positive number; 0xff a negative one, never valid here.
        if field[0] != 0x80 {
            return Err(bad());
        }
        let mut v = 0u64;
        for &c in &field[1..] {
            if v >> 56 != 0 {
                return Err(bad());
            }
            v = (v << 8) | u64::from(c);
        }
        return Ok(v);
    }
    let digits = field
        .iter()
        .skip_while(|&&c| c == b' ')
        .take_while(|&&c| c != b' ' && c != 0);
    let mut v = 0u64;
    for &c in digits {
        if !(b'0'..=b'7').contains(&c) {
            return Err(bad());
        }
        v = v
            .checked_mul(8)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or_else(bad)?;
    }
    Ok(v)
}

/// Parses PAX records (`"<len> <key>=<value>\n"`, `len` counting the whole record) into
/// `into`, keeping `path`, `linkpath` and `size`.
fn parse_pax(data: &[u8], into: &mut Extensions, offset: u64) -> Result<(), Error> {
    let bad = |reason: &'static str| Error::BadExtension { offset, reason };
    let mut rest = data;
    while !rest.is_empty() {
        // Some writers pad the record area with NULs.
        if rest.iter().all(|&c| c == 0) {
            break;
        }
        let space = rest
            .iter()
            .position(|&c| c == b' ')
            .ok_or(bad("a record has no length"))?;
        let len: usize = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(bad("a record's length is not a number"))?;
        if len <= space + 1 || len > rest.len() {
            return Err(bad("a record's length does not fit"));
        }
        let (record, tail) = rest.split_at(len);
        rest = tail;
        let body = record[space + 1..]
            .strip_suffix(b"\n")
            .ok_or(bad("a record does not end in a newline"))?;
        let eq = body
            .iter()
            .position(|&c| c == b'=')
            .ok_or(bad("a record has no `=`"))?;
        let (key, value) = (&body[..eq], &body[eq + 1..]);
        match key {
            b"path" => into.path = Some(value.to_vec()),
            b"linkpath" => into.link = Some(value.to_vec()),
            b"size" => {
                let size = std::str::from_utf8(value)
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(bad("`size` is not a number"))?;
                into.size = Some(size);
            }
            _ => {}
        }
    }
    Ok(())
}

fn padding_of(size: u64) -> u64 {
    (BLOCK as u64 - size % BLOCK as u64) % BLOCK as u64
}

/// Tar reading errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside a header or a member.
    #[error("the archive is truncated at byte {offset}")]
    Truncated {
        /// Where the input ended.
        offset: u64,
    },
    /// A header whose checksum does not match.
    #[error("the tar header at byte {offset} has a bad checksum")]
    Checksum {
        /// Where the header starts.
        offset: u64,
    },
    /// A numeric field that is not a number.
    #[error("the tar header at byte {offset} has a malformed {field} field")]
    BadNumber {
        /// Where the header starts.
        offset: u64,
        /// Which field.
        field: &'static str,
    },
    /// An extension record larger than the limit (refused before it is read).
    #[error("the {what} at byte {offset} declares {size} bytes, more than the {limit} snap reads")]
    ExtensionTooLarge {
        /// Which kind of record.
        what: &'static str,
        /// Where its header starts.
        offset: u64,
        /// What it declares.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// A malformed PAX record.
    #[error("the PAX extended header at byte {offset} is malformed: {reason}")]
    BadExtension {
        /// Where its header starts.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// More members than the limit.
    #[error("the archive has more than {limit} members")]
    TooManyEntries {
        /// The limit.
        limit: u64,
    },
    /// A member snap cannot read.
    #[error("the {what} at byte {offset} is not supported")]
    Unsupported {
        /// Where its header starts.
        offset: u64,
        /// What it is.
        what: &'static str,
    },
    /// Reading the input failed.
    #[error("cannot read the archive")]
    Io(#[from] io::Error),
}

#[cfg(test)]
#[allow(clippy::cast_possible_truncation, clippy::disallowed_methods)]
// tests build small archives and trees
mod tests;
