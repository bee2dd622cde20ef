//! Progress bars for transfers (indicatif), drawn only on a terminal.

use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::output::Printer;

/// A byte-and-item bar on stderr, or nothing when the printer says no.
pub struct Bar {
    inner: Option<ProgressBar>,
    /// What the items are (`blobs`, `files`).
    unit: &'static str,
    done: AtomicU64,
    total: AtomicU64,
}

impl Bar {
    pub fn new(printer: &Printer) -> Bar {
        Bar {
            inner: printer.progress().then(|| {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:>12.cyan.bold} [{wide_bar}] {bytes}/{total_bytes} {msg} {bytes_per_sec}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar
            }),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            unit: "blobs",
        }
    }

    /// A bar counting `unit` (`files`) rather than blobs.
    pub fn counting(mut self, unit: &'static str) -> Bar {
        self.unit = unit;
        self
    }
}

impl snap::ops::Progress for Bar {
    fn begin(&self, label: &str, bytes: u64, items: u64) {
        if let Some(b) = &self.inner {
            b.set_prefix(label.to_owned());
            b.set_length(bytes);
            b.set_position(0);
            self.done.store(0, Ordering::Relaxed);
            self.total.store(items, Ordering::Relaxed);
            b.set_message(format!("0/{items} {}", self.unit));
            b.reset_eta();
        }
    }

    fn advance(&self, bytes: u64, items: u64) {
        if let Some(b) = &self.inner {
            b.inc(bytes);
            let done = self.done.fetch_add(items, Ordering::Relaxed) + items;
            let total = self.total.load(Ordering::Relaxed);
            b.set_message(format!("{done}/{total} {}", self.unit));
        }
    }

    fn end(&self) {
        if let Some(b) = &self.inner {
            b.finish_and_clear();
        }
    }
}
