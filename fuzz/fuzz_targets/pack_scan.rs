#![no_main]
//! Rebuilding a pack index from a pack's frames (import and pull of untrusted layers).
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = snap::pack::scan::index_pack(&mut std::io::Cursor::new(data));
});
