//! Content digests: `sha256:<64 hex>`, exactly as OCI writes them.
//!
//! Owns [`Digest`] (parse, display, serde), [`Hasher`] and the hashing reader and writer that
//! compute a digest while bytes stream through.
//!
//! Invariants: a `Digest` is always a valid SHA-256 digest; `Display` prints the full,
//! lossless form and [`Digest::short`] is the only abbreviation. Only SHA-256 is accepted.
//!
//! This module does no I/O beyond the `Read`/`Write` it wraps.
//!
//! ```
//! use snap::Digest;
//! let d = Digest::of(b"hello\n");
//! assert_eq!(d.to_string(), "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
//! assert_eq!(d, d.to_string().parse()?);
//! # Ok::<(), snap::ops::DigestError>(())
//! ```

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use sha2::Digest as _;

/// The prefix of every digest snap reads or writes.
pub const PREFIX: &str = "sha256:";

/// A SHA-256 content digest.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest([u8; 32]);

impl Digest {
    /// The digest of no bytes at all (`sha256sum < /dev/null`).
    pub const EMPTY: Digest = Digest([
        0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9,
        0x24, 0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52,
        0xb8, 0x55,
    ]);

    /// The digest of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Self {
        let mut h = Hasher::new();
        h.update(bytes);
        h.finish()
    }

    /// A digest from its 32 raw bytes.
    #[must_use]
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Digest(bytes)
    }

    /// The 32 raw bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The 64 lowercase hex digits, without the algorithm prefix.
    #[must_use]
    pub fn hex(&self) -> String {
        let mut s = String::with_capacity(64);
        for b in self.0 {
            s.push(HEX[usize::from(b >> 4)] as char);
            s.push(HEX[usize::from(b & 0xf)] as char);
        }
        s
    }

    /// The first 12 hex digits, for people. Never use it as identity.
    #[must_use]
    pub fn short(&self) -> String {
        self.hex()[..12].to_owned()
    }

    /// Parses 64 hex digits without the `sha256:` prefix.
    ///
    /// # Errors
    /// `Error::Parse` unless `hex` is exactly 64 lowercase hex digits.
    pub fn from_hex(hex: &str) -> Result<Self, Error> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return Err(Error::parse(hex, "expected 64 hex digits"));
        }
        let mut out = [0u8; 32];
        for (i, pair) in bytes.chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(|| Error::parse(hex, "not lowercase hex"))?;
            let lo = hex_value(pair[1]).ok_or_else(|| Error::parse(hex, "not lowercase hex"))?;
            out[i] = (hi << 4) | lo;
        }
        Ok(Digest(out))
    }

    /// Whether `hex` (lowercase hex digits, possibly fewer than 64) is a prefix of this digest.
    #[must_use]
    pub fn has_hex_prefix(&self, hex: &str) -> bool {
        self.hex().starts_with(hex)
    }

    /// Checks that `actual` equals `self`.
    ///
    /// # Errors
    /// `Error::Mismatch` naming both digests.
    pub fn verify(&self, actual: &Digest) -> Result<(), Error> {
        if self == actual {
            Ok(())
        } else {
            Err(Error::Mismatch {
                expected: *self,
                actual: *actual,
            })
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{PREFIX}{}", self.hex())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

impl FromStr for Digest {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(Error::parse(s, "expected `sha256:<64 hex digits>`"));
        };
        if alg != "sha256" {
            return Err(Error::parse(
                s,
                "unsupported digest algorithm (only sha256 is supported)",
            ));
        }
        Digest::from_hex(hex).map_err(|_| Error::parse(s, "expected 64 lowercase hex digits"))
    }
}

impl schemars::JsonSchema for Digest {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Digest".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^sha256:[0-9a-f]{64}$",
            "description": "An OCI digest: `sha256:` and 64 lowercase hex digits."
        })
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental SHA-256.
#[derive(Clone, Default)]
pub struct Hasher(sha2::Sha256);

impl Hasher {
    /// A fresh hasher.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// The digest of everything fed so far.
    #[must_use]
    pub fn finish(self) -> Digest {
        let out = self.0.finalize();
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(&out);
        Digest(bytes)
    }
}

/// A writer that hashes and counts everything written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    /// Wraps `inner`.
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Hasher::new(),
            len: 0,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The digest and length of what was written, and the inner writer.
    pub fn finish(self) -> (Digest, u64, W) {
        (self.hasher.finish(), self.len, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A reader that hashes and counts everything read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    len: u64,
}

impl<R: Read> HashingReader<R> {
    /// Wraps `inner`.
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Hasher::new(),
            len: 0,
        }
    }

    /// Bytes read so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The digest and length of what was read, and the inner reader.
    pub fn finish(self) -> (Digest, u64, R) {
        (self.hasher.finish(), self.len, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
}

/// Errors of digest parsing and verification.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The text is not a digest snap accepts.
    #[error("invalid digest `{input}`: {reason}")]
    Parse {
        /// What was given.
        input: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// Bytes did not hash to the digest they were stored or sent under.
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch {
        /// The digest the bytes should have.
        expected: Digest,
        /// The digest they have.
        actual: Digest,
    },
}

impl Error {
    fn parse(input: &str, reason: &'static str) -> Self {
        let mut input = input.to_owned();
        if input.len() > 100 {
            let mut end = 100;
            while !input.is_char_boundary(end) {
                end -= 1;
            }
            input.truncate(end);
            input.push('…');
        }
        Error::Parse { input, reason }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn digest_of_empty_matches_sha256sum() {
        assert_eq!(Digest::EMPTY, Digest::of(b""));
        assert_eq!(
            Digest::of(b"").to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn parse_then_display_round_trips() -> Result<(), Error> {
        let s = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a";
        assert_eq!(s.parse::<Digest>()?.to_string(), s);
        Ok(())
    }

    #[test]
    fn parse_rejects_other_algorithms_uppercase_and_lengths() {
        for bad in [
            "sha512:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256:44136FA355B3678A1146AD16F7E8649E94FB4FC21FE77E8310C060F61CAAFF8A",
            "sha256:44136fa3",
            "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
            "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8é",
            "",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn hashing_writer_and_reader_agree_with_of() -> io::Result<()> {
        let data = vec![7u8; 100_000];
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(&data)?;
        let (d, n, out) = w.finish();
        assert_eq!((d, n), (Digest::of(&data), 100_000));
        let mut r = HashingReader::new(&out[..]);
        io::copy(&mut r, &mut io::sink())?;
        assert_eq!(r.finish().0, d);
        Ok(())
    }

    #[test]
    fn serde_uses_the_full_string_form() -> Result<(), serde_json::Error> {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d)?;
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json)?, d);
        Ok(())
    }
}
