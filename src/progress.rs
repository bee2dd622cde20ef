//! Progress of a long operation — a commit, a restore, a transfer — reported to whoever
//! watches: the CLI draws a bar, the library never prints. One trait for every operation.

/// Reports the progress of a long operation.
pub trait Progress: Sync {
    /// An operation named `label` (`Committing`, `Restoring`, `Pulling`, …) of `bytes` in
    /// `items` begins.
    fn begin(&self, label: &str, bytes: u64, items: u64) {
        let _ = (label, bytes, items);
    }
    /// `bytes` more in `items` more are done.
    fn advance(&self, bytes: u64, items: u64) {
        let _ = (bytes, items);
    }
    /// The operation ended (done or failed).
    fn end(&self) {}
}

/// Progress nobody watches.
pub struct NoProgress;

impl Progress for NoProgress {}
