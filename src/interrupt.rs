//! A stop asked for — Ctrl-C, `SIGTERM` — as STYLE 2.5 describes: a flag the CLI's signal
//! handler sets and long loops check at the points where they can stop cleanly.
//!
//! A transfer that can stop cleanly *listens* (holds a [`Listening`]) while it runs: a push
//! between two chunks of an upload, so that the session it records is one the registry will
//! continue (distribution cancels a session whose chunk was cut off: see store format §2.1);
//! a pull between two writes of a download, so that everything that arrived is in its part.
//! There it returns its `Interrupted` error, destructors run, and the next run continues.
//!
//! Nothing else listens: while nothing does, [`request`] says so, and the CLI ends the process
//! at once, as the signal itself would have (every write snap makes is safe to cut off: temp
//! files and renames, store format §8).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);
static LISTENERS: AtomicUsize = AtomicUsize::new(0);

/// Asks whatever runs to stop at its next clean point. Returns whether something listens; if
/// nothing does, the caller should end the process itself.
pub fn request() -> bool {
    REQUESTED.store(true, Ordering::SeqCst);
    LISTENERS.load(Ordering::SeqCst) > 0
}

/// Whether a stop was asked for.
#[must_use]
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Held while an operation checks [`requested`] at its clean points.
#[must_use = "the operation listens only while this is held"]
pub struct Listening {
    _private: (),
}

impl Listening {
    /// Starts listening.
    pub fn start() -> Listening {
        LISTENERS.fetch_add(1, Ordering::SeqCst);
        Listening { _private: () }
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        LISTENERS.fetch_sub(1, Ordering::SeqCst);
    }
}
