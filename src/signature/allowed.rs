//! Allowed-signers files (ssh-keygen(1) "ALLOWED SIGNERS", git's `gpg.ssh.allowedSignersFile`),
//! parsed once into [`AllowedSigners`]: untrusted text that never panics.
//!
//! A line is `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]`; `#` starts a comment line, and
//! empty lines are skipped. PRINCIPALS is a comma-separated list of patterns (`*` and `?`
//! wildcards, as ssh-keygen). OPTIONS is a comma-separated list of `namespaces="n1,n2"`,
//! `valid-after="YYYYMMDD[HHMM[SS]][Z]"`, `valid-before="…"` and `cert-authority`. snap reads
//! times as UTC (a trailing `Z` or none), and does not verify certificates: a
//! `cert-authority` line is skipped and reported in [`AllowedSigners::skipped`], never
//! trusted. A line snap cannot parse is an error naming it.

use std::path::Path;

use ssh_key::PublicKey;

use crate::timestamp::Timestamp;

/// One trusted key.
#[derive(Clone, Debug)]
pub struct AllowedSigner {
    /// The line it came from (from 1).
    pub line: usize,
    /// Its principal patterns, as written.
    pub principals: Vec<String>,
    /// `namespaces="…"`, if given: the key may sign only in these.
    pub namespaces: Option<Vec<String>>,
    /// `valid-after`, if given.
    pub valid_after: Option<Timestamp>,
    /// `valid-before`, if given.
    pub valid_before: Option<Timestamp>,
    /// The key.
    pub key: PublicKey,
}

impl AllowedSigner {
    /// Whether this entry allows signatures in `namespace` at time `now`.
    #[must_use]
    pub fn allows(&self, namespace: &str, now: Timestamp) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|ns| ns.iter().any(|n| pattern_matches(n, namespace)))
            && self.valid_after.is_none_or(|t| now >= t)
            && self.valid_before.is_none_or(|t| now <= t)
    }

    /// The principals, joined as written (`alice@example.com,ci`).
    #[must_use]
    pub fn principal(&self) -> String {
        self.principals.join(",")
    }
}

/// A parsed allowed-signers file.
#[derive(Clone, Debug, Default)]
pub struct AllowedSigners {
    /// The keys, in file order.
    pub signers: Vec<AllowedSigner>,
    /// Lines snap read but does not trust, with why (`cert-authority`).
    pub skipped: Vec<(usize, String)>,
}

/// The one kind of key snap signs and verifies with.
pub const SUPPORTED_KEY_TYPE: &str = "ssh-ed25519";

/// Longest allowed-signers file read.
pub const MAX_FILE_BYTES: u64 = 1 << 20;

impl AllowedSigners {
    /// Reads and parses the file at `path` (at most [`MAX_FILE_BYTES`]).
    ///
    /// # Errors
    /// [`super::Error::AllowedSignersIo`], [`super::Error::AllowedSigners`].
    pub fn read(path: &Path) -> Result<AllowedSigners, super::Error> {
        use std::io::Read;
        let io = |source| super::Error::AllowedSignersIo {
            path: path.to_owned(),
            source,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
            .map_err(io)?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(super::Error::AllowedSigners {
                path: path.to_owned(),
                line: 0,
                reason: format!("the file is larger than {MAX_FILE_BYTES} bytes"),
            });
        }
        let text = String::from_utf8(bytes).map_err(|_| super::Error::AllowedSigners {
            path: path.to_owned(),
            line: 0,
            reason: "the file is not UTF-8".into(),
        })?;
        AllowedSigners::parse(&text).map_err(|(line, reason)| super::Error::AllowedSigners {
            path: path.to_owned(),
            line,
            reason,
        })
    }

    /// Parses the text of an allowed-signers file.
    ///
    /// # Errors
    /// The line (from 1) and why it cannot be read.
    pub fn parse(text: &str) -> Result<AllowedSigners, (usize, String)> {
        let mut out = AllowedSigners::default();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line).map_err(|r| (n, r))? {
                Parsed::Signer(mut s) => {
                    s.line = n;
                    out.signers.push(s);
                }
                Parsed::Skipped(reason) => out.skipped.push((n, reason)),
            }
        }
        Ok(out)
    }
}

enum Parsed {
    Signer(AllowedSigner),
    Skipped(String),
}

/// Splits on blanks, keeping `"…"` (which may hold blanks) inside one token.
fn tokens(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                }
            }
            c => cur.push(c),
        }
    }
    if quoted {
        return Err("a quote is not closed".into());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    Ok(out)
}

fn is_key_type(t: &str) -> bool {
    t.starts_with("ssh-") || t.starts_with("ecdsa-sha2-") || t.starts_with("sk-")
}

fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

/// Splits options on commas outside quotes.
fn split_options(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn parse_line(line: &str) -> Result<Parsed, String> {
    let toks = tokens(line)?;
    let mut it = toks.iter();
    let principals = it.next().ok_or("no principals")?;
    let principals: Vec<String> = unquote(principals).split(',').map(str::to_owned).collect();
    if principals.iter().any(String::is_empty) {
        return Err("an empty principal".into());
    }
    let mut next = it.next().ok_or("no key type")?;
    let mut namespaces = None;
    let mut valid_after = None;
    let mut valid_before = None;
    let mut cert_authority = false;
    if !is_key_type(next) {
        for opt in split_options(next) {
            let (name, value) = match opt.split_once('=') {
                Some((n, v)) => (n.to_ascii_lowercase(), Some(unquote(v))),
                None => (opt.to_ascii_lowercase(), None),
            };
            match (name.as_str(), value) {
                ("cert-authority", None) => cert_authority = true,
                ("namespaces", Some(v)) => {
                    namespaces = Some(v.split(',').map(str::to_owned).collect());
                }
                ("valid-after", Some(v)) => valid_after = Some(parse_time(v)?),
                ("valid-before", Some(v)) => valid_before = Some(parse_time(v)?),
                _ => return Err(format!("unknown option `{opt}`")),
            }
        }
        next = it.next().ok_or("no key type")?;
    }
    if !is_key_type(next) {
        return Err(format!("`{next}` is not an SSH key type"));
    }
    let base64 = it.next().ok_or("no key")?;
    if cert_authority {
        return Ok(Parsed::Skipped(
            "cert-authority: snap does not verify SSH certificates, so this key is not trusted"
                .into(),
        ));
    }
    if next != SUPPORTED_KEY_TYPE {
        // Another kind of key (RSA, ECDSA, a security key): nothing snap signs or verifies,
        // so the line cannot trust anything here; the rest of the file still counts.
        return Ok(Parsed::Skipped(format!(
            "snap verifies {SUPPORTED_KEY_TYPE} keys only, and this one is {next}"
        )));
    }
    let key = PublicKey::from_openssh(&format!("{next} {base64}"))
        .map_err(|e| format!("the key cannot be read: {e}"))?;
    if key.algorithm().as_str() != next {
        return Err(format!(
            "the key is {}, not {next}",
            key.algorithm().as_str()
        ));
    }
    Ok(Parsed::Signer(AllowedSigner {
        line: 0,
        principals,
        namespaces,
        valid_after,
        valid_before,
        key,
    }))
}

/// `YYYYMMDD[HHMM[SS]][Z]`, read as UTC.
fn parse_time(v: &str) -> Result<Timestamp, String> {
    let bad = || format!("`{v}` is not a time YYYYMMDD[HHMM[SS]][Z]");
    let digits = v.strip_suffix('Z').unwrap_or(v);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(bad());
    }
    let part = |a: usize, b: usize| digits.get(a..b).unwrap_or("00");
    let text = format!(
        "{}-{}-{}T{}:{}:{}Z",
        part(0, 4),
        part(4, 6),
        part(6, 8),
        if digits.len() >= 12 {
            part(8, 10)
        } else {
            "00"
        },
        if digits.len() >= 12 {
            part(10, 12)
        } else {
            "00"
        },
        if digits.len() >= 14 {
            part(12, 14)
        } else {
            "00"
        },
    );
    text.parse::<Timestamp>().map_err(|_| bad())
}

/// ssh's pattern match: `*` any run, `?` any one character; a leading `!` is not supported
/// (negations never allow anything on their own).
#[must_use]
pub fn pattern_matches(pattern: &str, s: &str) -> bool {
    fn go(p: &[char], s: &[char]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some('*'), _) => go(&p[1..], s) || (!s.is_empty() && go(p, &s[1..])),
            (Some('?'), Some(_)) => go(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => go(&p[1..], &s[1..]),
            _ => false,
        }
    }
    if pattern.starts_with('!') || pattern.len() > 1024 || s.len() > 1024 {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let s: Vec<char> = s.chars().collect();
    go(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOnusWcJ7xyPsXWtCBShnzuA14DANPzLUffEhLZl/i/y";

    #[test]
    fn lines_with_and_without_options_parse() -> Result<(), (usize, String)> {
        let text = format!(
            "# team\n\nalice@example.com {KEY} alice's laptop\n\
             bob,ci namespaces=\"git,snap\",valid-after=\"20260101\",valid-before=\"20301231235959Z\" {KEY}\n\
             \"carol dev\" {KEY}\n"
        );
        let a = AllowedSigners::parse(&text)?;
        assert_eq!(a.signers.len(), 3);
        assert_eq!(a.signers[0].principals, vec!["alice@example.com"]);
        assert_eq!(a.signers[0].line, 3);
        let bob = &a.signers[1];
        assert_eq!(bob.principal(), "bob,ci");
        assert_eq!(
            bob.namespaces.as_deref(),
            Some(&["git".to_owned(), "snap".to_owned()][..])
        );
        let in_2027: Timestamp = "2027-01-01T00:00:00Z"
            .parse()
            .map_err(|_| (0, String::new()))?;
        let in_2025: Timestamp = "2025-01-01T00:00:00Z"
            .parse()
            .map_err(|_| (0, String::new()))?;
        assert!(bob.allows("snap", in_2027));
        assert!(!bob.allows("snap", in_2025), "before valid-after");
        assert!(!bob.allows("file", in_2027), "outside its namespaces");
        assert_eq!(a.signers[2].principals, vec!["carol dev"]);
        Ok(())
    }

    #[test]
    fn cert_authorities_and_other_key_kinds_are_skipped_not_trusted() -> Result<(), (usize, String)>
    {
        let text = format!(
            "*@example.com cert-authority {KEY}\n\
             rsa ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC7\n\
             ec ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTY=\n\
             alice {KEY}\n"
        );
        let a = AllowedSigners::parse(&text)?;
        assert_eq!(a.signers.len(), 1, "the ed25519 line still counts");
        assert_eq!(
            a.skipped.iter().map(|s| s.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        Ok(())
    }

    #[test]
    fn hostile_lines_are_errors_naming_the_line_never_panics() {
        for (text, line) in [
            ("alice".to_owned(), 1),
            ("alice ssh-ed25519".to_owned(), 1),
            ("alice ssh-ed25519 !!!notbase64".to_owned(), 1),
            (format!("# ok\nalice unknown-opt {KEY}"), 2),
            (format!("alice namespaces=\"snap {KEY}"), 1),
            (format!("alice valid-after=\"2026\" {KEY}"), 1),
            (format!("alice valid-after=\"2026139900\" {KEY}"), 1),
            (format!(",alice {KEY}"), 1),
            ("alice \u{0}\u{1} ssh-ed25519 AAAA".to_owned(), 1),
        ] {
            let r = AllowedSigners::parse(&text);
            assert_eq!(r.as_ref().err().map(|e| e.0), Some(line), "{text:?}: {r:?}");
        }
    }

    #[test]
    fn patterns_match_like_ssh() {
        assert!(pattern_matches("*@example.com", "alice@example.com"));
        assert!(pattern_matches("ali?e", "alice"));
        assert!(!pattern_matches("alice", "alice2"));
        assert!(!pattern_matches("!alice", "alice"));
        assert!(pattern_matches("snap", "snap"));
    }
}
