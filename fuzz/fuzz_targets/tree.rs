#![no_main]
//! Tree objects: a decoded tree re-encodes to the same bytes (canonical form) or is refused.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(t) = snap::object::Tree::decode(data) {
        assert_eq!(t.encode(), data, "a decoded tree is canonical");
    }
});
