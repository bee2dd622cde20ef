//! How long to wait for a registry: the connect timeout and the low-speed rule's limit,
//! their defaults and bounds, and how the flags and settings that give them are parsed.

use std::time::Duration;

/// How long connecting may take, and the stretch of the low-speed rule, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// The slowest transfer accepted by default, in bytes per second.
pub const DEFAULT_LOW_SPEED_LIMIT: u64 = 1024;
/// The longest `--timeout` accepted (a day).
pub const MAX_TIMEOUT_SECS: u64 = 86_400;
/// Redirects followed for one request.
pub const MAX_REDIRECTS: usize = 10;
/// What is read of an error answer's body (a distribution error envelope); the rest is left.
pub const MAX_ENVELOPE_BYTES: u64 = 64 << 10;

/// When a registry is too slow to wait for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts {
    /// How long connecting may take, and the stretch of time over which the low-speed rule
    /// is measured.
    pub timeout: Duration,
    /// A transfer fails when fewer than this many bytes per second (averaged over
    /// `timeout`) move; 0 fails only when nothing moves at all for `timeout`.
    pub low_speed_limit: u64,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            timeout: DEFAULT_TIMEOUT,
            low_speed_limit: DEFAULT_LOW_SPEED_LIMIT,
        }
    }
}

impl Timeouts {
    /// Parses a timeout in whole seconds (1 to [`MAX_TIMEOUT_SECS`]).
    ///
    /// # Errors
    /// A sentence saying what a timeout must be.
    pub fn parse_timeout(text: &str) -> Result<Duration, String> {
        match text.trim().parse::<u64>() {
            Ok(s) if (1..=MAX_TIMEOUT_SECS).contains(&s) => Ok(Duration::from_secs(s)),
            _ => Err(format!(
                "write a whole number of seconds from 1 to {MAX_TIMEOUT_SECS}"
            )),
        }
    }

    /// Parses a low-speed limit in bytes per second.
    ///
    /// # Errors
    /// A sentence saying what a limit must be.
    pub fn parse_low_speed_limit(text: &str) -> Result<u64, String> {
        text.trim()
            .parse::<u64>()
            .map_err(|_| "write a whole number of bytes per second (0: no limit)".to_owned())
    }

    /// Bytes that must move in every `timeout`.
    pub(super) fn min_bytes(&self) -> u64 {
        let millis = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        (self.low_speed_limit.saturating_mul(millis) / 1000).max(1)
    }

    /// What all the waits between the attempts of one request may add up to.
    #[must_use]
    pub fn retry_budget(&self) -> Duration {
        self.timeout.saturating_mul(2)
    }
}
