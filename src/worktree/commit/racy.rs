//! The racy rule (store format §9.1): when a file's recorded stat may stand for its contents.
//!
//! A commit reads a file at some moment; if the file is written again within the same
//! timestamp tick, with the same size, its stat does not change, and a cache that trusted it
//! would keep the old digest. Git calls such entries "racily clean". A stat can therefore be
//! trusted only if the file's last change (the later of its mtime and ctime: ctime cannot be
//! set back, mtime can) lies in a tick that had ended before the commit began:
//!
//! ```text
//! trusted  ⇔  max(mtime, ctime) + granularity ≤ started
//! ```
//!
//! * `started` is read before any file is stat'ed, from the clock the kernel stamps files
//!   with (Linux: `CLOCK_REALTIME_COARSE`; a stamp taken later is never below it, while the
//!   precise clock runs up to a tick ahead of the stamps).
//! * `granularity` is that of the file's filesystem: 1 ns on filesystems known to keep
//!   nanosecond stamps from that clock (tmpfs, ext2/3/4, XFS, Btrfs, F2FS, ZFS, bcachefs) once a
//!   file on the device shows a sub-second ctime (ext4 with 128-byte inodes keeps whole
//!   seconds); [`UNKNOWN_GRANULARITY_NS`] (FAT's 2 s) anywhere else (network and FUSE
//!   filesystems, overlays, other systems), as before.
//!
//! So on a local filesystem only files changed in the last clock tick (a few ms) before the
//! commit are racy, instead of the last two seconds' worth.

use crate::worktree::commit::scan::FileStat;
use crate::worktree::commit::scan::{ScanEntry, ScanKind};

/// The granularity assumed where a filesystem's is not known: FAT's 2 s (which also covers
/// coarse kernel clocks by far).
pub const UNKNOWN_GRANULARITY_NS: i128 = 2_000_000_000;

/// `statfs` types of filesystems that stamp files with nanoseconds from the kernel's clock
/// (ext2/3/4 only with large inodes, hence the sub-second evidence also required).
#[cfg(target_os = "linux")]
const NANOSECOND_FILESYSTEMS: [u64; 7] = [
    0x0102_1994, // tmpfs
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // XFS
    0x9123_683E, // Btrfs
    0xF2F5_2010, // F2FS
    0x2FC1_2FC1, // ZFS
    0xCA45_1A4E, // bcachefs
];

/// When a commit began, and each scanned device's timestamp granularity.
#[derive(Clone, Debug)]
pub struct RacyRule {
    started_ns: i128,
    /// The granularity of devices not in `fine`.
    default_ns: i128,
    /// Devices with nanosecond stamps.
    fine: Vec<u64>,
}

impl Default for RacyRule {
    /// Nothing is trusted.
    fn default() -> Self {
        RacyRule::uniform(i128::MIN / 2, UNKNOWN_GRANULARITY_NS)
    }
}

impl RacyRule {
    /// The current time on the clock files are stamped with, to take before any stat.
    #[must_use]
    pub fn now() -> i128 {
        #[cfg(target_os = "linux")]
        {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
            i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
        }
        #[cfg(not(target_os = "linux"))]
        {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX))
        }
    }

    /// One granularity for every device (tests, and where nothing is known).
    #[must_use]
    pub fn uniform(started_ns: i128, granularity_ns: i128) -> RacyRule {
        RacyRule {
            started_ns,
            default_ns: granularity_ns,
            fine: Vec::new(),
        }
    }

    /// The rule for a commit that began at `started_ns` (from [`RacyRule::now`]) and scanned
    /// `entries`: each device's granularity from its filesystem type (one `statfs` per
    /// device) and the sub-second ctimes seen on it.
    #[must_use]
    pub fn for_scan(started_ns: i128, entries: &[ScanEntry]) -> RacyRule {
        let mut rule = RacyRule::uniform(started_ns, UNKNOWN_GRANULARITY_NS);
        // Per device: a file on it, and whether one shows a sub-second ctime.
        let mut devices: Vec<(u64, usize, bool)> = Vec::new();
        let mut last: Option<usize> = None;
        for (i, e) in entries.iter().enumerate() {
            let (ScanKind::File { .. }, Some(s)) = (&e.kind, &e.stat) else {
                continue;
            };
            let at = if let Some(d) = last.filter(|&d| devices[d].0 == s.dev) {
                d
            } else {
                let d = devices
                    .iter()
                    .position(|d| d.0 == s.dev)
                    .unwrap_or_else(|| {
                        devices.push((s.dev, i, false));
                        devices.len() - 1
                    });
                last = Some(d);
                d
            };
            devices[at].2 |= s.ctime_ns.rem_euclid(1_000_000_000) != 0;
        }
        for (dev, i, subsecond) in devices {
            if subsecond
                && let Some(src) = &entries[i].source
                && stamps_nanoseconds(src)
            {
                rule.fine.push(dev);
            }
        }
        rule
    }

    /// When the commit began.
    #[must_use]
    pub fn started_ns(&self) -> i128 {
        self.started_ns
    }

    /// The timestamp granularity of device `dev`.
    #[must_use]
    pub fn granularity_ns(&self, dev: u64) -> i128 {
        if self.fine.contains(&dev) {
            1
        } else {
            self.default_ns
        }
    }

    /// Whether a file with this stat may change again without its stat changing: its last
    /// change is not in a tick that ended before the commit began.
    #[must_use]
    pub fn is_racy(&self, stat: &FileStat) -> bool {
        last_change(stat) + self.granularity_ns(stat.dev) > self.started_ns
    }
}

/// The later of a stat's mtime and ctime.
#[must_use]
pub fn last_change(stat: &FileStat) -> i128 {
    stat.mtime_ns.max(stat.ctime_ns)
}

/// Whether the filesystem holding `path` is one known to keep nanosecond stamps.
#[cfg(target_os = "linux")]
fn stamps_nanoseconds(path: &std::path::Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|s| {
        #[allow(clippy::cast_sign_loss, clippy::unnecessary_cast)]
        // a signed or unsigned word by platform
        let t = s.f_type as u64;
        NANOSECOND_FILESYSTEMS.contains(&(t & 0xFFFF_FFFF))
    })
}

#[cfg(not(target_os = "linux"))]
fn stamps_nanoseconds(_: &std::path::Path) -> bool {
    false
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests write fixtures directly
mod tests {
    use super::*;

    fn stat(mtime_ns: i128, ctime_ns: i128) -> FileStat {
        FileStat {
            size: 4,
            mtime_ns,
            ctime_ns,
            ino: 1,
            dev: 7,
        }
    }

    #[test]
    fn a_change_in_the_starting_tick_is_racy() {
        let s = 10_000_000_000;
        let ns = RacyRule::uniform(s, 1);
        assert!(ns.is_racy(&stat(1, s)), "changed at the very start");
        assert!(ns.is_racy(&stat(s + 5, s + 5)), "changed after it");
        assert!(
            !ns.is_racy(&stat(s - 1, s - 1)),
            "changed a nanosecond before"
        );
        // mtime set back (rsync -t, cp -p) does not hide a recent change.
        assert!(ns.is_racy(&stat(s - 60_000_000_000, s)));
        // mtime set in the future (touch -d tomorrow) is racy until then.
        assert!(ns.is_racy(&stat(s + 1_000_000_000, s - 1)));

        let fat = RacyRule::uniform(s, UNKNOWN_GRANULARITY_NS);
        assert!(fat.is_racy(&stat(s - 1_999_999_999, s - 1_999_999_999)));
        assert!(!fat.is_racy(&stat(s - 2_000_000_000, s - 2_000_000_000)));
    }

    #[test]
    fn a_file_written_after_the_start_is_never_stamped_before_it()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        for i in 0..200 {
            let started = RacyRule::now();
            let p = dir.path().join(format!("f{i}"));
            std::fs::write(&p, "x")?;
            let s = FileStat::of(&std::fs::symlink_metadata(&p)?);
            // (A filesystem with whole-second stamps floors them: the rule's 2 s cover it.)
            if s.ctime_ns % 1_000_000_000 != 0 {
                assert!(last_change(&s) >= started, "{s:?} before {started}");
            }
        }
        Ok(())
    }
}
