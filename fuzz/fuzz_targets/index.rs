#![no_main]
//! Image indexes (index.json and nested indexes).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = snap::oci::layout::RawIndex::from_bytes(data.to_vec());
});
