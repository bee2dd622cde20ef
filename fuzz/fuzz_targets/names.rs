#![no_main]
//! Digests, ref names, revisions' ref part and registry references.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let _ = s.parse::<snap::Digest>();
    // A name a ref can be created with fits the filesystem and can never be the name of
    // another store file (a lock, a temp file) nor read as a qualified name (issue 13).
    if let Ok(name) = snap::store::RefName::head(&s) {
        let short = name.short();
        assert!(short.len() <= snap::store::refs::MAX_NAME_BYTES);
        assert!(!short.starts_with("heads/") && !short.starts_with("tags/"));
        for c in short.split('/') {
            assert!(!c.is_empty() && c.len() <= snap::store::refs::MAX_COMPONENT_BYTES);
            assert!(!c.starts_with('.') && !c.ends_with(".lock"));
        }
    }
    let _ = snap::store::RefName::parse_qualified(&s);
    let _ = snap::registry::RemoteRef::parse(&s);
});
