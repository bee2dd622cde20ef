#![no_main]
//! Digests, ref names, revisions' ref part and registry references.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = s.parse::<snap::Digest>();
    let _ = snap::store::RefName::head(&s);
    let _ = snap::store::RefName::parse_qualified(&s);
    let _ = snap::registry::RemoteRef::parse(&s);
});
