//! Points in time as snap records them: whole seconds since the Unix epoch, written as
//! RFC 3339 in UTC (`2026-11-20T10:00:00Z`).
//!
//! snap never stamps the wall clock into a snapshot; the clock is read only for reflog lines.
//! This module does no I/O.

use std::fmt;
use std::str::FromStr;

/// Seconds since 1970-01-01T00:00:00Z.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// The current time (for reflogs only).
    #[must_use]
    pub fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        Timestamp(secs)
    }

    /// `SOURCE_DATE_EPOCH`, if set to an integer.
    #[must_use]
    pub fn from_source_date_epoch() -> Option<Self> {
        std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days = self.0.div_euclid(86_400);
        let secs = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            secs / 3600,
            secs / 60 % 60,
            secs % 60
        )
    }
}

impl FromStr for Timestamp {
    type Err = String;

    /// Parses `YYYY-MM-DDTHH:MM:SS` followed by `Z` or `±HH:MM`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || format!("invalid RFC 3339 time `{s}`");
        let b = s.as_bytes();
        if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b't') {
            return Err(err());
        }
        let num = |r: std::ops::Range<usize>| -> Result<i64, String> {
            s.get(r).and_then(|t| t.parse().ok()).ok_or_else(err)
        };
        let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
            return Err(err());
        }
        let mut rest = &s[19..];
        if let Some(frac) = rest.strip_prefix('.') {
            let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
            rest = &frac[digits..];
        }
        let offset = match rest {
            "Z" | "z" => 0,
            _ if rest.len() == 6 && (rest.starts_with('+') || rest.starts_with('-')) => {
                let oh: i64 = rest[1..3].parse().map_err(|_| err())?;
                let om: i64 = rest[4..6].parse().map_err(|_| err())?;
                let v = oh * 3600 + om * 60;
                if rest.starts_with('-') { -v } else { v }
            }
            _ => return Err(err()),
        };
        Ok(Timestamp(
            days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - offset,
        ))
    }
}

/// Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Howard Hinnant's `days_from_civil`: days since 1970-01-01 of a proleptic Gregorian date.
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::disallowed_methods, clippy::cast_possible_truncation)] // tests write fixtures directly
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp(1_700_000_000).to_string(), "2023-11-14T22:13:20Z");
        assert_eq!(Timestamp(951_782_400).to_string(), "2000-02-29T00:00:00Z");
    }

    #[test]
    fn parse_then_display_round_trips() -> Result<(), String> {
        for t in [0, 1, 86_399, 951_782_400, 1_700_000_000, 4_102_444_800] {
            let ts = Timestamp(t);
            assert_eq!(ts.to_string().parse::<Timestamp>()?, ts);
        }
        assert_eq!(
            "2023-11-14T23:13:20+01:00".parse::<Timestamp>()?,
            Timestamp(1_700_000_000)
        );
        Ok(())
    }
}
