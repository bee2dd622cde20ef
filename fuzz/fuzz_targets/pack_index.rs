#![no_main]
//! Pack index files, against any pack length.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let (len, idx) = data.split_at(8);
    let pack_len = u64::from_le_bytes(len.try_into().unwrap_or([0; 8]));
    let _ = snap::pack::PackIndex::decode(idx, pack_len);
});
