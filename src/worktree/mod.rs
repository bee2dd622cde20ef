//! Directories ↔ stored objects, in two halves that do not name each other:
//! [`commit`] (scan a work tree, store its files and trees, remember what unchanged files hash
//! to) and [`checkout`] (restore a snapshot or unpack an image into a directory, safely).
//!
//! This module writes objects but never moves refs; `ops` does that.

pub mod checkout;
pub mod commit;
