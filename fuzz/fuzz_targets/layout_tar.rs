#![no_main]
//! OCI layout archives (plain, gzip or zstd by magic), as `snap import` reads them.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = snap::oci::layout::read_tar(std::io::Cursor::new(data), 64 << 20, |_, _, r| {
        std::io::copy(r, &mut std::io::sink())
    });
});
