//! Durability of a restore: one `syncfs` at the end of the writes, and a background thread
//! syncing meanwhile so the disk writes overlap with decompressing and verifying.

use std::fs::File;
use std::path::Path;

use super::error::{Error, io_err};

/// Runs `write`, then flushes everything written on `dir`'s filesystem (one `syncfs` instead
/// of an fsync per file). Meanwhile a second thread syncs every [`FLUSH_INTERVAL`], so the
/// disk writes overlap with decompressing and verifying instead of all waiting for the end.
/// The descriptor synced last is opened first, so a write-back error that happens at any time
/// is reported to it; one seen by the background syncs is reported too.
pub(super) fn synced<T, E: From<Error>>(
    dir: &Path,
    write: impl FnOnce() -> Result<T, E>,
) -> Result<T, E> {
    let f = File::open(dir).map_err(|e| io_err("opening", dir, e))?;
    let done = (std::sync::Mutex::new(false), std::sync::Condvar::new());
    let background_error = std::sync::Mutex::new(None);
    let out = std::thread::scope(|s| {
        s.spawn(|| {
            if let Err(e) = flush_until_done(&done, FLUSH_INTERVAL, || rustix::fs::syncfs(&f)) {
                *background_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
            }
        });
        let out = write();
        *done
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        done.1.notify_all();
        out
    })?;
    let seen = background_error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(e) = seen {
        return Err(io_err("syncing", dir, e.into()).into());
    }
    rustix::fs::syncfs(&f).map_err(|e| io_err("syncing", dir, e.into()))?;
    Ok(out)
}

/// The background half of [`synced`]: calls `sync` every `interval` until `done` holds true
/// (set, then notified, by the writer), or until `sync` fails.
pub(super) fn flush_until_done(
    done: &(std::sync::Mutex<bool>, std::sync::Condvar),
    interval: std::time::Duration,
    mut sync: impl FnMut() -> rustix::io::Result<()>,
) -> rustix::io::Result<()> {
    let mut stop = done
        .0
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Checked before each wait too: a write that ends before this thread first takes the
    // lock has already notified, and must not wait out a whole interval.
    while !*stop {
        let (guard, waited) = done
            .1
            .wait_timeout(stop, interval)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stop = guard;
        if !*stop && waited.timed_out() {
            sync()?;
        }
    }
    Ok(())
}

/// How often a restore syncs while it writes (see [`synced`]).
pub(super) const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;

    // issue 13: a restore that writes little waited out a whole flush interval (250 ms) when
    // its writing ended before the background flusher first took the lock: the notification
    // came before anyone waited for it. Here the writer is done (and has notified) before the
    // flusher starts: it must return at once, without a sync, not after the interval.
    #[test]
    fn the_flusher_stops_at_once_when_the_write_ended_first() {
        let done = (std::sync::Mutex::new(true), std::sync::Condvar::new());
        let start = std::time::Instant::now();
        let mut syncs = 0;
        let r = flush_until_done(&done, std::time::Duration::from_secs(5), || {
            syncs += 1;
            Ok(())
        });
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(syncs, 0, "nothing to sync: the write was done");
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "returned without waiting out the interval"
        );
    }
}
