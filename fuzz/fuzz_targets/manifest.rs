#![no_main]
//! Image manifests: parsing untrusted bytes never panics.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = snap::oci::RawManifest::from_bytes(data.to_vec());
});
