//! When to ask a registry again, and how long to wait first.
//!
//! A request is tried again when the registry answers 429 (too many requests), 502, 503 or
//! 504, or the connection breaks before an answer arrives — at most [`MAX_ATTEMPTS`] times in
//! all. The wait is what the answer's `Retry-After` asks (seconds or an HTTP-date), else an
//! exponential backoff with jitter ([`FIRST_BACKOFF`], doubling, at most [`MAX_BACKOFF`]);
//! the waits of one request never add up to more than its budget (twice the timeout). A
//! `Retry-After` beyond what is left of the budget ends the retries at once: snap does not
//! sleep for an hour because a registry asked it to.
//!
//! Pure logic: no I/O and no clock of its own (the caller passes `now`), so it is tested
//! without sleeping. Whether a request *may* be sent again (its body can be replayed) is the
//! caller's decision, not this module's.

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

/// Tries of one request, the first included.
pub const MAX_ATTEMPTS: u32 = 5;
/// The first backoff when the registry does not say how long to wait.
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest single backoff.
pub const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// Whether an answer with this status is worth another try after a wait.
#[must_use]
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Why no further attempt is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GiveUp {
    /// [`MAX_ATTEMPTS`] were made.
    Attempts,
    /// The registry asked for a wait longer than what is left of the budget.
    TooLong {
        /// The wait asked for.
        asked: Duration,
    },
}

/// The retry state of one request.
#[derive(Debug)]
pub struct Backoff {
    attempts: u32,
    waited: Duration,
    budget: Duration,
}

impl Backoff {
    /// Before the first attempt, with `budget` for all the waits together.
    #[must_use]
    pub fn new(budget: Duration) -> Backoff {
        Backoff {
            attempts: 1,
            waited: Duration::ZERO,
            budget,
        }
    }

    /// Attempts made so far.
    #[must_use]
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Time spent waiting so far.
    #[must_use]
    pub fn waited(&self) -> Duration {
        self.waited
    }

    /// The wait before the next attempt, given what the failed one's `Retry-After` asked.
    ///
    /// # Errors
    /// [`GiveUp`] when no further attempt should be made.
    pub fn next(&mut self, retry_after: Option<Duration>) -> Result<Duration, GiveUp> {
        if self.attempts >= MAX_ATTEMPTS {
            return Err(GiveUp::Attempts);
        }
        let left = self.budget.saturating_sub(self.waited);
        let wait = match retry_after {
            Some(asked) if asked > left => return Err(GiveUp::TooLong { asked }),
            Some(asked) => asked,
            None => jittered(backoff(self.attempts)).min(left),
        };
        self.attempts += 1;
        self.waited += wait;
        Ok(wait)
    }
}

/// The backoff before attempt `attempts + 1`: 0.5 s, 1 s, 2 s, 4 s, 8 s, 8 s, ….
fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1 << attempts.saturating_sub(1).min(16))
        .min(MAX_BACKOFF)
}

/// Between half and all of `d` ("equal jitter"), so clients that failed together do not
/// return together.
fn jittered(d: Duration) -> Duration {
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let half = d / 2;
    // `random % 1000` thousandths of the other half.
    half + half.mul_f64((random % 1000) as f64 / 1000.0)
}

/// The wait a `Retry-After` value asks for: delay-seconds, or an HTTP-date (a date in the
/// past asks for none). `None` for a value that is neither.
#[must_use]
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// An HTTP-date (RFC 9110 §5.6.7): the IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, and the
/// obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
/// (`Sun Nov  6 08:49:37 1994`) forms recipients must accept.
#[must_use]
pub fn parse_http_date(value: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = value.split_ascii_whitespace().collect();
    let (day, month, year, time) = match parts.as_slice() {
        [_, day, month, year, time, "GMT"] => (*day, *month, year.parse::<i64>().ok()?, *time),
        [_, date, time, "GMT"] => {
            let mut it = date.split('-');
            let (day, month, yy) = (it.next()?, it.next()?, it.next()?);
            if it.next().is_some() || yy.len() != 2 {
                return None;
            }
            let yy: i64 = yy.parse().ok()?;
            // RFC 9110: a two-digit year more than 50 years ahead is in the past century.
            (
                day,
                month,
                if yy < 70 { 2000 + yy } else { 1900 + yy },
                *time,
            )
        }
        [_, month, day, time, year] => (*day, *month, year.parse::<i64>().ok()?, *time),
        _ => return None,
    };
    let day: i64 = day.parse().ok().filter(|d| (1..=31).contains(d))?;
    let month = match month {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let mut hms = time.split(':').map(|p| {
        if p.len() == 2 {
            p.parse::<i64>().ok()
        } else {
            None
        }
    });
    let (h, m, s) = (hms.next()??, hms.next()??, hms.next()??);
    if hms.next().is_some() || h > 23 || m > 59 || s > 60 || !(1970..=9999).contains(&year) {
        return None;
    }
    let secs = crate::timestamp::days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_and_all_three_date_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777 - 10);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        for date in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(10)),
                "{date}"
            );
        }
        let later = now + Duration::from_secs(3600);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", later),
            Some(Duration::ZERO),
            "a date in the past asks for no wait"
        );
        for bad in [
            "",
            "-1",
            "1.5",
            "soon",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
        ] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn backoff_is_bounded_in_attempts_and_total_wait() {
        let mut b = Backoff::new(Duration::from_secs(60));
        let mut waits = Vec::new();
        while let Ok(w) = b.next(None) {
            waits.push(w);
        }
        assert_eq!(waits.len(), 4, "{waits:?}");
        for (i, w) in (1u32..).zip(&waits) {
            let full = backoff(i);
            assert!(
                *w >= full / 2 && *w <= full,
                "wait {i} is {w:?}, full {full:?}"
            );
        }
        assert_eq!(b.next(None), Err(GiveUp::Attempts));
        assert_eq!(b.attempts(), MAX_ATTEMPTS);

        // The budget caps the sum of the waits, and a Retry-After beyond it ends at once.
        let mut b = Backoff::new(Duration::from_secs(4));
        assert_eq!(
            b.next(Some(Duration::from_secs(3))),
            Ok(Duration::from_secs(3))
        );
        assert_eq!(
            b.next(Some(Duration::from_secs(2))),
            Err(GiveUp::TooLong {
                asked: Duration::from_secs(2)
            })
        );
        assert!(b.next(None).is_ok_and(|w| w <= Duration::from_secs(1)));
        assert!(b.waited() <= Duration::from_secs(4));
    }

    #[test]
    fn only_overload_and_gateway_statuses_are_transient() {
        for s in [429, 502, 503, 504] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 500, 501] {
            assert!(!is_transient_status(s), "{s}");
        }
    }
}
