//! The broad class of an error, which every module's `Error::kind()` answers: what the CLI
//! turns into an exit code and a caller into a decision (retry a conflict, report corruption).

/// The broad class of an error, for exit codes and hints.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// Bad arguments or input.
    InvalidInput,
    /// Something named does not exist.
    NotFound,
    /// Lost a race or would overwrite: a lock is held or a ref moved. Safe to retry.
    Conflict,
    /// Stored data does not match its digest.
    Corrupt,
    /// The operating system failed.
    Io,
    /// The network failed.
    Network,
    /// Ran fine, and the answer is "no": no allowed signer signed (`snap verify`,
    /// `snap pull --verify`; exit 1).
    Unverified,
    /// Stopped at a clean point because a stop was asked for (Ctrl-C, `SIGTERM`): running it
    /// again continues (exit 130).
    Interrupted,
}
