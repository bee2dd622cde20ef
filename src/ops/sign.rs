//! `snap sign` and `snap verify`: SSH signatures of a snapshot's manifest digest, stored as
//! referrers (OCI mapping §7), and checked against an allowed-signers file.
//!
//! A signature is an artifact manifest with `artifactType`
//! [`crate::oci::ARTIFACT_TYPE_SIGNATURE`], the empty config, one layer holding the armored
//! SSHSIG ([`crate::oci::MEDIA_TYPE_SSHSIG`]) and `subject` = the snapshot. Signing twice
//! with one key gives the same bytes (ed25519 is deterministic), so it is stored once.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::digest::Digest;
use crate::oci::{self, ANNOTATION_TITLE, Descriptor, RawManifest};
use crate::ops::Error;
use crate::ops::referrers::{self, read_referrer};
use crate::rev;
use crate::signature::{self, AllowedSigners, Check, SigningKey};
use crate::store::Store;
use crate::timestamp::Timestamp;

pub use crate::oci::ARTIFACT_TYPE_SIGNATURE;
pub use crate::signature::Check as SignatureCheckResult;

/// The setting naming the default signing key.
pub const KEY_SETTING: &str = "sign.key";
/// The setting naming the default allowed-signers file.
pub const ALLOWED_SIGNERS_SETTING: &str = "verify.allowed-signers";
/// The annotation of a signature manifest naming the key's fingerprint (`SHA256:…`).
pub const ANNOTATION_KEY: &str = "dev.snaptool.signature.key";
/// The title of a signature's layer.
pub const SIGNATURE_TITLE: &str = "signature.sig";

/// What to sign with.
#[derive(Clone, Debug, Default)]
pub struct SignOptions {
    /// The snapshot.
    pub rev: String,
    /// The private key (default: the `sign.key` setting).
    pub key: Option<PathBuf>,
}

/// What `sign` stored.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct SignOutcome {
    /// The snapshot signed.
    pub subject: Digest,
    /// The signature's manifest.
    pub signature: Digest,
    /// The key's fingerprint.
    pub key: String,
}

/// What to verify against.
#[derive(Clone, Debug, Default)]
pub struct VerifyOptions {
    /// The snapshot.
    pub rev: String,
    /// The allowed-signers file (default: the `verify.allowed-signers` setting).
    pub allowed_signers: Option<PathBuf>,
}

/// One signature checked.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct SignatureCheck {
    /// The signature's manifest.
    pub digest: Digest,
    /// The signing key's fingerprint, when the signature could be read.
    pub key: Option<String>,
    /// What the check found.
    pub check: Check,
}

/// What `verify` found.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct VerifyReport {
    /// The snapshot.
    pub subject: Digest,
    /// Whether an allowed signer signed it.
    pub verified: bool,
    /// Every signature found.
    pub signatures: Vec<SignatureCheck>,
    /// Allowed-signers lines not trusted (line, why).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<(usize, String)>,
}

impl VerifyReport {
    /// Why it is not verified, in a sentence.
    #[must_use]
    pub fn reason(&self) -> String {
        if self.signatures.is_empty() {
            return "it has no signature".into();
        }
        let unknown = self
            .signatures
            .iter()
            .filter(|s| s.check == Check::UnknownKey)
            .count();
        let bad = self.signatures.len() - unknown;
        format!(
            "{unknown} signature(s) by keys not in the allowed signers, {bad} that do not verify"
        )
    }
}

/// A path from a setting: relative to the directory holding the store.
fn setting_path(store: &Store, key: &str) -> Result<Option<PathBuf>, Error> {
    let cfg = Config::load(store.dir())?;
    Ok(cfg.get(key).map(|p| {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_owned()
        } else {
            store.root().join(p)
        }
    }))
}

/// Signs a snapshot.
///
/// # Errors
/// `NoSigningKey`; key errors (unreadable, encrypted); `NotFound` for an unknown revision.
pub fn sign(store: &Store, opts: &SignOptions) -> Result<SignOutcome, Error> {
    let subject = rev::resolve(store, &opts.rev)?;
    let path = match &opts.key {
        Some(p) => p.clone(),
        None => setting_path(store, KEY_SETTING)?.ok_or(Error::NoSigningKey)?,
    };
    let key = SigningKey::read(&path)?;
    let text = key.sign(&subject)?;
    let blob = store.objects.put(text.as_bytes())?;
    let mut layer = Descriptor::new(oci::MEDIA_TYPE_SSHSIG, blob, text.len() as u64);
    layer
        .annotations
        .insert(ANNOTATION_TITLE.to_owned(), SIGNATURE_TITLE.to_owned());
    store.objects.put(oci::EMPTY_BLOB)?;
    let m = oci::referrers::manifest(
        referrers::subject_descriptor(store, &subject)?,
        oci::ARTIFACT_TYPE_SIGNATURE,
        vec![layer],
        [(ANNOTATION_KEY.to_owned(), key.fingerprint())].into(),
    );
    let signature = referrers::store_referrer(store, &m)?;
    Ok(SignOutcome {
        subject,
        signature,
        key: key.fingerprint(),
    })
}

/// Reads the allowed signers: `given`, else the `verify.allowed-signers` setting.
///
/// # Errors
/// `NoAllowedSigners`; file and syntax errors.
pub fn allowed_signers(store: &Store, given: Option<&Path>) -> Result<AllowedSigners, Error> {
    let path = match given {
        Some(p) => p.to_owned(),
        None => setting_path(store, ALLOWED_SIGNERS_SETTING)?.ok_or(Error::NoAllowedSigners)?,
    };
    Ok(AllowedSigners::read(&path)?)
}

/// Verifies a snapshot's signatures in the store.
///
/// # Errors
/// `NoAllowedSigners`, allowed-signers errors, `NotFound` for an unknown revision. An
/// unsigned snapshot is not an error: the report says `verified: false`.
pub fn verify(store: &Store, opts: &VerifyOptions) -> Result<VerifyReport, Error> {
    let subject = rev::resolve(store, &opts.rev)?;
    let allowed = allowed_signers(store, opts.allowed_signers.as_deref())?;
    let mut sigs = Vec::new();
    for r in store.referrers.list(&subject)? {
        let m = read_referrer(store, &r, &subject)?;
        if let Some(text) = signature_text(&m, |d, size| {
            store
                .objects
                .read(d, size.min(signature::MAX_SIGNATURE_BYTES))
                .ok()
        }) {
            sigs.push((r, text));
        }
    }
    Ok(check_signatures(subject, &sigs, &allowed))
}

/// The armored signature a signature manifest carries (its first layer, read by `read`
/// within [`signature::MAX_SIGNATURE_BYTES`]); `None` for other referrers. A layer that cannot
/// be read gives empty text, which does not verify.
pub(crate) fn signature_text(
    m: &RawManifest,
    read: impl Fn(&Digest, u64) -> Option<Vec<u8>>,
) -> Option<Vec<u8>> {
    let v = m.manifest();
    if v.artifact_type.as_deref() != Some(oci::ARTIFACT_TYPE_SIGNATURE) {
        return None;
    }
    let layer = v.layers.first()?;
    if layer.size > signature::MAX_SIGNATURE_BYTES {
        return Some(Vec::new());
    }
    Some(read(&layer.digest, layer.size).unwrap_or_default())
}

/// Checks signatures `(manifest, armored text)` of `subject` against `allowed`, now.
pub(crate) fn check_signatures(
    subject: Digest,
    sigs: &[(Digest, Vec<u8>)],
    allowed: &AllowedSigners,
) -> VerifyReport {
    let now = Timestamp::now();
    let signatures: Vec<SignatureCheck> = sigs
        .iter()
        .map(|(d, text)| {
            let (check, key) = signature::verify(text, &subject, allowed, now);
            SignatureCheck {
                digest: *d,
                key,
                check,
            }
        })
        .collect();
    VerifyReport {
        subject,
        verified: signatures
            .iter()
            .any(|s| matches!(s.check, Check::Good { .. })),
        signatures,
        skipped: allowed.skipped.clone(),
    }
}
