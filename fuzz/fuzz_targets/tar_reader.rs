#![no_main]
//! snap's bounded tar reader on any bytes: every member read to its end, nothing may panic or
//! allocate past the extension-record limit.

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let mut reader = snap::pack::tar::Reader::new(data);
    while let Ok(Some(mut entry)) = reader.next_entry() {
        let _ = (entry.path_bytes().len(), entry.link_bytes(), entry.kind(), entry.mode());
        let _ = std::io::copy(&mut entry, &mut std::io::sink());
    }
});
