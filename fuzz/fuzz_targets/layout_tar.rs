#![no_main]
//! OCI layout archives (plain, gzip or zstd by magic), as `snap import` reads them: through
//! snap's bounded tar reader, with an expansion limit.
use snap::oci::layout::{Expansion, read_tar, sink};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = read_tar(
        std::io::Cursor::new(data),
        Expansion::at_most(64 << 20),
        &mut sink(|_, _, r| std::io::copy(r, &mut std::io::sink())),
    );
});
