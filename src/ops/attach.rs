//! `snap attach SNAP FILE… --artifact-type TYPE`: stores an artifact whose `subject` is the
//! snapshot (like `oras attach`): one layer per file, titled with its base name, the empty
//! config, then the referrers index line (OCI mapping §7).
//!
//! File names are checked before anything is stored: each must be a valid entry name
//! (UTF-8, not `.`/`..`, no `/` or NUL) and the titles must differ.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::digest::Digest;
use crate::object::EntryName;
use crate::oci::{self, ANNOTATION_TITLE, Descriptor};
use crate::ops::Error;
use crate::ops::referrers;
use crate::rev;
use crate::store::Store;

/// The media type of an attached file's layer (its bytes as they are).
pub const MEDIA_TYPE_ATTACHED_FILE: &str = "application/octet-stream";

/// What to attach to what.
#[derive(Clone, Debug, Default)]
pub struct AttachOptions {
    /// The snapshot (or any stored manifest) to refer to.
    pub rev: String,
    /// The files, each one layer.
    pub files: Vec<PathBuf>,
    /// The artifact's `artifactType` (`type/subtype`).
    pub artifact_type: String,
    /// Manifest annotations (`KEY=VALUE`).
    pub annotations: Vec<String>,
}

/// One attached file.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct AttachedFile {
    /// Its title (base name).
    pub title: String,
    /// Its digest.
    pub digest: Digest,
    /// Its size.
    pub size: u64,
}

/// What `attach` stored.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct AttachOutcome {
    /// The snapshot referred to.
    pub subject: Digest,
    /// The referrer's manifest.
    pub digest: Digest,
    /// Its artifact type.
    pub artifact_type: String,
    /// Its files.
    pub files: Vec<AttachedFile>,
}

/// A media type as `artifactType` takes it: `type/subtype`, RFC 6838 characters, at most 255
/// bytes.
pub(crate) fn check_media_type(t: &str) -> Result<(), String> {
    let ok_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 127
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match t.split_once('/') {
        Some((a, b)) if ok_part(a) && ok_part(b) => Ok(()),
        _ => Err(format!(
            "`{t}` is not a media type (type/subtype, e.g. application/vnd.example.sbom.v1+json)"
        )),
    }
}

/// Attaches files to a snapshot.
///
/// # Errors
/// `InvalidInput` for a bad artifact type, annotation or file name, `NotFound` for an unknown
/// revision or file; store errors.
pub fn attach(store: &Store, opts: &AttachOptions) -> Result<AttachOutcome, Error> {
    let subject = rev::resolve(store, &opts.rev)?;
    check_media_type(&opts.artifact_type).map_err(|reason| Error::BadAttachment {
        path: PathBuf::from("--artifact-type"),
        reason,
    })?;
    let mut annotations = BTreeMap::new();
    for a in &opts.annotations {
        match a.split_once('=') {
            Some((k, v)) if !k.is_empty() => {
                annotations.insert(k.to_owned(), v.to_owned());
            }
            _ => return Err(Error::InvalidAnnotation { input: a.clone() }),
        }
    }
    // Every name first: nothing is stored for a refused one.
    let mut titles: Vec<(EntryName, &PathBuf)> = Vec::new();
    for path in &opts.files {
        let bad = |reason: String| Error::BadAttachment {
            path: path.clone(),
            reason,
        };
        let name = path
            .file_name()
            .ok_or_else(|| bad("it has no file name".into()))?
            .to_str()
            .ok_or_else(|| bad("its name is not UTF-8".into()))?;
        let title = EntryName::new(name).map_err(|e| bad(e.to_string()))?;
        if titles.iter().any(|(t, _)| t == &title) {
            return Err(bad(format!("another file is also titled `{name}`")));
        }
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_file() => {}
            Ok(_) => {
                return Err(bad(
                    "it is not a regular file (attach files; archive a directory first)".into(),
                ));
            }
            Err(_) => return Err(Error::PathNotFound { path: path.clone() }),
        }
        titles.push((title, path));
    }
    let layer_type = if opts.artifact_type == oci::ARTIFACT_TYPE_SIGNATURE {
        oci::MEDIA_TYPE_SSHSIG
    } else {
        MEDIA_TYPE_ATTACHED_FILE
    };
    let mut layers = Vec::new();
    let mut files = Vec::new();
    for (title, path) in titles {
        let mut f = std::fs::File::open(path).map_err(|source| Error::Io {
            op: "opening",
            path: path.clone(),
            source,
        })?;
        let (digest, size) = store.objects.put_stream(&mut f, path)?;
        let mut d = Descriptor::new(layer_type, digest, size);
        d.annotations
            .insert(ANNOTATION_TITLE.to_owned(), title.as_str().to_owned());
        layers.push(d);
        files.push(AttachedFile {
            title: title.as_str().to_owned(),
            digest,
            size,
        });
    }
    store.objects.put(oci::EMPTY_BLOB)?;
    let m = oci::referrers::manifest(
        referrers::subject_descriptor(store, &subject)?,
        &opts.artifact_type,
        layers,
        annotations,
    );
    let digest = referrers::store_referrer(store, &m)?;
    Ok(AttachOutcome {
        subject,
        digest,
        artifact_type: opts.artifact_type.clone(),
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifact_types_must_be_media_types() {
        assert!(check_media_type("application/vnd.example.sbom.v1+json").is_ok());
        for bad in ["", "sbom", "a/", "/b", "a/b/c", "a b/c", "a/\u{0}"] {
            assert!(check_media_type(bad).is_err(), "{bad:?}");
        }
    }
}
