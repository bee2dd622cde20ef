//! The `snap` binary: a thin layer over the `snap` library.

mod cli;

fn main() -> std::process::ExitCode {
    stop_on_signal();
    cli::main()
}

/// Ctrl-C, `SIGTERM` and `SIGHUP`: the first asks a running push or pull to stop at its next
/// clean point (the chunk or bytes in flight land, so the next run continues them; see
/// `snap explain interrupted`); when nothing listens for it, and on a second signal, snap ends
/// at once with 130, as the signal itself would have ended it (every write snap makes is safe
/// to cut off).
fn stop_on_signal() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SIGNALS: AtomicUsize = AtomicUsize::new(0);
    // `-q` silences status lines, this one too.
    let quiet = std::env::args_os().skip(1).any(|a| {
        let a = a.as_encoded_bytes();
        a == b"--quiet" || (a.len() > 1 && a[0] == b'-' && a[1..].iter().all(|&b| b == b'q'))
    });
    // Best effort: without a handler, a signal ends snap at once, as before.
    let _ = ctrlc::set_handler(move || {
        if SIGNALS.fetch_add(1, Ordering::SeqCst) == 0 && snap::ops::request_stop() {
            if !quiet {
                eprintln!(
                    "    Stopping at the next clean point (the chunk in flight finishes); \
                     Ctrl-C again to stop at once"
                );
            }
            return;
        }
        // The one exit outside `main`'s return: a signal handler's thread cannot return to it.
        #[allow(clippy::disallowed_methods)]
        std::process::exit(130);
    });
}
