#![no_main]
//! Snapshot config blobs.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = snap::object::SnapshotConfig::decode(data);
});
