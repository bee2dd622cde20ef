//! CLI integration tests: one binary, one module per command.

mod harness;
#[path = "../support/mod.rs"]
mod support;

mod commit;
mod compat;
mod completions;
mod concurrency;
mod config;
mod corruption;
mod diff;
mod disk_full;
mod errors;
mod export;
mod foreign;
mod fsck;
mod gc;
mod hostile;
mod hostile_property;
mod import;
mod incremental;
mod layout;
mod log;
mod ls;
mod refs;
mod restore;
mod show;
mod sign;
mod status;
mod terminal;
