//! CLI integration tests: one binary, one module per command.

mod harness;

mod commit;
mod concurrency;
mod errors;
mod fsck;
mod refs;
mod restore;
