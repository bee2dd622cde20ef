//! Signatures with the SSH keys people already have: SSHSIG (OpenSSH's `PROTOCOL.sshsig`, what
//! `ssh-keygen -Y sign` and git's SSH-signed commits write), through the `ssh-key` crate.
//!
//! The signed message is a manifest digest as text, `sha256:<64 hex>`, with no newline; the
//! namespace is [`NAMESPACE`]; the hash is SHA-512. So
//! `printf %s sha256:… | ssh-keygen -Y verify -n snap -f allowed_signers -I ID -s SIG` checks
//! a snap signature, and `ssh-keygen -Y sign -n snap` makes one snap accepts (OCI mapping §7).
//!
//! Keys: ed25519 only (the crate's other algorithms are features left off; an allowed-signers
//! line with another kind of key is skipped, and said so). An
//! encrypted private key is refused with [`Error::EncryptedKey`]: snap has no passphrase
//! prompt, so the next step is an agent-free unencrypted copy or `ssh-keygen -Y sign`.
//!
//! This module reads key files and signature text; it knows neither the store nor OCI.

pub mod allowed;

use std::path::{Path, PathBuf};

use ssh_key::{HashAlg, LineEnding, PrivateKey, SshSig};

use crate::digest::Digest;
use crate::timestamp::Timestamp;

pub use allowed::AllowedSigners;

/// The SSHSIG namespace of snap's signatures.
pub const NAMESPACE: &str = "snap";
/// Largest signature read (an armored ed25519 SSHSIG is about 300 bytes; RSA-4096 about 1.5 KB).
pub const MAX_SIGNATURE_BYTES: u64 = 64 << 10;
/// Largest private key file read.
pub const MAX_KEY_BYTES: u64 = 64 << 10;

/// The message signed for manifest `digest`: its text, no newline.
#[must_use]
pub fn message(digest: &Digest) -> String {
    digest.to_string()
}

/// A private key, read and ready to sign.
pub struct SigningKey {
    key: PrivateKey,
}

impl SigningKey {
    /// Reads an OpenSSH private key file (`-----BEGIN OPENSSH PRIVATE KEY-----`).
    ///
    /// # Errors
    /// [`Error::KeyIo`], [`Error::Key`] for what is not such a key, [`Error::EncryptedKey`].
    pub fn read(path: &Path) -> Result<SigningKey, Error> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_KEY_BYTES).read_to_end(&mut bytes))
            .map_err(|source| Error::KeyIo {
                path: path.to_owned(),
                source,
            })?;
        let key = PrivateKey::from_openssh(&bytes).map_err(|e| Error::Key {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
        if key.is_encrypted() {
            return Err(Error::EncryptedKey {
                path: path.to_owned(),
            });
        }
        let kind = key.algorithm();
        if kind.as_str() != allowed::SUPPORTED_KEY_TYPE {
            return Err(Error::Key {
                path: path.to_owned(),
                reason: format!(
                    "it is a {} key; snap signs with {} keys only (`ssh-keygen -t ed25519`)",
                    kind.as_str(),
                    allowed::SUPPORTED_KEY_TYPE
                ),
            });
        }
        Ok(SigningKey { key })
    }

    /// The public key's fingerprint, `SHA256:…` as `ssh-keygen -l` prints it.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// Signs manifest `digest`: the armored SSHSIG text.
    ///
    /// # Errors
    /// [`Error::Sign`] when the crate cannot sign with this kind of key.
    pub fn sign(&self, digest: &Digest) -> Result<String, Error> {
        let sig = self
            .key
            .sign(NAMESPACE, HashAlg::Sha512, message(digest).as_bytes())
            .map_err(|e| Error::Sign {
                reason: e.to_string(),
            })?;
        sig.to_pem(LineEnding::LF).map_err(|e| Error::Sign {
            reason: e.to_string(),
        })
    }
}

/// What checking one signature found.
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// It verifies, by a key the allowed signers trust for this namespace now.
    Good {
        /// The principals of the allowed-signers line that trusts the key.
        principal: String,
    },
    /// It verifies cryptographically, but no allowed signer trusts its key (here, now).
    UnknownKey,
    /// It is not a valid signature of this digest in this namespace.
    Bad {
        /// Why.
        reason: String,
    },
}

/// Checks armored SSHSIG `text` over manifest `digest` against `allowed` at time `now`.
/// Returns the check and the signing key's fingerprint (when the signature could be read).
#[must_use]
pub fn verify(
    text: &[u8],
    digest: &Digest,
    allowed: &AllowedSigners,
    now: Timestamp,
) -> (Check, Option<String>) {
    let bad = |reason: String| (Check::Bad { reason }, None);
    if text.len() as u64 > MAX_SIGNATURE_BYTES {
        return bad(format!("larger than {MAX_SIGNATURE_BYTES} bytes"));
    }
    let sig = match SshSig::from_pem(text) {
        Ok(s) => s,
        Err(e) => return bad(format!("not an SSH signature: {e}")),
    };
    let public = ssh_key::PublicKey::from(sig.public_key().clone());
    let fingerprint = public.fingerprint(HashAlg::Sha256).to_string();
    if sig.namespace() != NAMESPACE {
        return (
            Check::Bad {
                reason: format!(
                    "made for namespace `{}`, not `{NAMESPACE}`",
                    sig.namespace()
                ),
            },
            Some(fingerprint),
        );
    }
    if let Err(e) = public.verify(NAMESPACE, message(digest).as_bytes(), &sig) {
        return (
            Check::Bad {
                reason: format!("it does not sign {digest}: {e}"),
            },
            Some(fingerprint),
        );
    }
    let trusted = allowed
        .signers
        .iter()
        .find(|s| s.key.key_data() == sig.public_key() && s.allows(NAMESPACE, now));
    match trusted {
        Some(s) => (
            Check::Good {
                principal: s.principal(),
            },
            Some(fingerprint),
        ),
        None => (Check::UnknownKey, Some(fingerprint)),
    }
}

/// Signing and verifying errors.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key file cannot be read.
    #[error("reading signing key {}", path.display())]
    KeyIo {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Not an OpenSSH ed25519 private key.
    #[error("{} is not an OpenSSH ed25519 private key: {reason}", path.display())]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A passphrase-protected key.
    #[error("signing key {} is encrypted with a passphrase, which snap cannot ask for", path.display())]
    EncryptedKey {
        /// The file.
        path: PathBuf,
    },
    /// The crate could not sign.
    #[error("cannot sign: {reason}")]
    Sign {
        /// Why.
        reason: String,
    },
    /// The allowed-signers file cannot be read.
    #[error("reading allowed signers {}", path.display())]
    AllowedSignersIo {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A line of the allowed-signers file that cannot be used.
    #[error("allowed signers {}, line {line}: {reason}", path.display())]
    AllowedSigners {
        /// The file.
        path: PathBuf,
        /// The line (0: the whole file).
        line: usize,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// The broad class of this error.
    #[must_use]
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind as K;
        match self {
            Error::KeyIo { source, .. } | Error::AllowedSignersIo { source, .. }
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                K::NotFound
            }
            Error::KeyIo { .. } | Error::AllowedSignersIo { .. } => K::Io,
            _ => K::InvalidInput,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway key made with `ssh-keygen -t ed25519 -N ''` for these tests only.
    fn key() -> Result<SigningKey, Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("id");
        let status = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "t", "-f"])
            .arg(&path)
            .status()?;
        assert!(
            status.success(),
            "ssh-keygen (openssh-client) must be installed"
        );
        Ok(SigningKey::read(&path)?)
    }

    #[test]
    fn a_signature_verifies_only_over_its_digest_and_for_allowed_keys()
    -> Result<(), Box<dyn std::error::Error>> {
        let k = key()?;
        let d = Digest::of(b"snapshot");
        let text = k.sign(&d)?;
        assert!(text.starts_with("-----BEGIN SSH SIGNATURE-----"), "{text}");
        let line = format!("alice {}", k.key.public_key().to_openssh()?);
        let allowed = AllowedSigners::parse(&line).map_err(|e| e.1)?;
        let now = Timestamp(0);
        let (check, fp) = verify(text.as_bytes(), &d, &allowed, now);
        assert_eq!(
            check,
            Check::Good {
                principal: "alice".into()
            }
        );
        assert_eq!(fp, Some(k.fingerprint()));
        assert!(matches!(
            verify(text.as_bytes(), &Digest::of(b"other"), &allowed, now).0,
            Check::Bad { .. }
        ));
        assert_eq!(
            verify(text.as_bytes(), &d, &AllowedSigners::default(), now).0,
            Check::UnknownKey
        );
        assert!(matches!(
            verify(b"garbage", &d, &allowed, now).0,
            Check::Bad { .. }
        ));
        Ok(())
    }
}
