//! What other updaters verify of an artifact, made with the release engineer's ed25519 key by
//! `halftone publish`: [`ClientSignatures`] holds a [`Sha512`] of the file (electron-updater),
//! a [`Minisign`] signature (Tauri's updater and cargo-packager) and an Ed25519 signature over
//! the file's bytes (Sparkle's `sparkle:edSignature`). The public key in the forms those clients
//! are configured with: [`minisign_public_key`] (Tauri's `pubkey` is its base64) and
//! [`sparkle_public_key`] (`SUPublicEDKey`).
//!
//! The minisign signature is prehashed (algorithm `ED`): ed25519 over BLAKE2b-512 of the file.
//! Its trusted comment is [`trusted_comment`] of the artifact's signed fields, and its global
//! signature covers the signature and that comment, so it is bound to one app, version, target
//! and SHA-256 exactly as the Halftone signature is: it cannot be replayed for another build.
//! [`ClientSignatures::check_binding`] checks that binding without the file's bytes (pure); the
//! server checks the file-level signatures and the digest against the stored bytes.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
use sha2::{Digest as _, Sha256 as Sha256Hasher};

use crate::error::{ParseError, What};
use crate::{KeyId, PublicKey, Signature, SignedFields};

/// A SHA-512 digest of a file, written in standard base64 (as electron-updater's `sha512`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Sha512([u8; 64]);

impl Sha512 {
    /// Parses 88 characters of standard base64 that encode 64 bytes.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let bytes = B64.decode(s).map_err(|_| ParseError::new(What::Sha512, s, "expected standard base64"))?;
        let bytes: [u8; 64] =
            bytes.try_into().map_err(|_| ParseError::new(What::Sha512, s, "expected 64 bytes in base64"))?;
        Ok(Sha512(bytes))
    }

    /// Wraps a finished digest.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Sha512(bytes)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Display for Sha512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&B64.encode(self.0))
    }
}
impl fmt::Debug for Sha512 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha512({self})")
    }
}

/// The 8-byte key number minisign names a key by: the first 8 bytes of SHA-256 of the ed25519
/// public key (the same bytes as the key's default [`KeyId`] fingerprint).
pub fn minisign_key_number(key: &PublicKey) -> [u8; 8] {
    let digest = Sha256Hasher::digest(key.to_bytes());
    digest[..8].try_into().expect("8 of 32 bytes")
}

/// The minisign public key file of `key`: an untrusted comment line, then base64 of `Ed`, the
/// key number and the key. Tauri's and cargo-packager's `pubkey` setting is this text in base64.
pub fn minisign_public_key(key: &PublicKey) -> String {
    let number = minisign_key_number(key);
    let mut blob = Vec::with_capacity(42);
    blob.extend_from_slice(b"Ed");
    blob.extend_from_slice(&number);
    blob.extend_from_slice(&key.to_bytes());
    let mut number_le = number;
    number_le.reverse();
    format!("untrusted comment: minisign public key {}\n{}\n", hex::encode_upper(number_le), B64.encode(blob))
}

/// Sparkle's `SUPublicEDKey` for `key`: the 32 key bytes in base64.
pub fn sparkle_public_key(key: &PublicKey) -> String {
    B64.encode(key.to_bytes())
}

/// The trusted comment of an artifact's minisign signature: the Halftone signed message's
/// fields on one line, so the signature names the build it was made for.
pub fn trusted_comment(f: SignedFields<'_>) -> String {
    format!(
        "halftone-artifact-v1 app={} version={} os={} arch={} sha256={} size={}",
        f.app, f.version, f.target.os, f.target.arch, f.sha256, f.size
    )
}

/// A prehashed minisign signature (algorithm `ED`) as its `.sig` file spells it: four lines,
/// the untrusted comment (not signed, so not kept), base64 of `ED` ‖ key number ‖ signature,
/// the trusted comment, and base64 of the global signature.
#[derive(Clone, PartialEq, Eq)]
pub struct Minisign {
    key_number: [u8; 8],
    signature: [u8; 64],
    trusted_comment: Box<str>,
    global: [u8; 64],
}

/// The most characters of a minisign signature file Halftone reads.
const MAX_MINISIGN: usize = 1024;

impl Minisign {
    /// Builds a signature from its parts (the signer's side).
    pub fn new(key_number: [u8; 8], signature: [u8; 64], trusted_comment: &str, global: [u8; 64]) -> Self {
        Minisign { key_number, signature, trusted_comment: trusted_comment.into(), global }
    }

    /// Parses a minisign signature file (prehashed only: `ED`).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let fail = |why: &'static str| ParseError::new(What::Minisign, s, why);
        if s.len() > MAX_MINISIGN {
            return Err(fail("must be at most 1024 characters"));
        }
        let mut lines = s.lines();
        let (Some(untrusted), Some(sig), Some(trusted), Some(global)) =
            (lines.next(), lines.next(), lines.next(), lines.next())
        else {
            return Err(fail("expected four lines"));
        };
        if lines.any(|l| !l.trim().is_empty()) {
            return Err(fail("expected four lines"));
        }
        if !untrusted.starts_with("untrusted comment: ") {
            return Err(fail("line 1 must be an untrusted comment"));
        }
        let sig = B64.decode(sig.trim()).map_err(|_| fail("line 2 must be base64"))?;
        if sig.len() != 74 {
            return Err(fail("line 2 must hold 74 bytes"));
        }
        if &sig[..2] != b"ED" {
            return Err(fail("only prehashed (ED) signatures are accepted"));
        }
        let trusted_comment =
            trusted.strip_prefix("trusted comment: ").ok_or_else(|| fail("line 3 must be a trusted comment"))?;
        let global = B64.decode(global.trim()).map_err(|_| fail("line 4 must be base64"))?;
        let global: [u8; 64] = global.try_into().map_err(|_| fail("line 4 must hold 64 bytes"))?;
        Ok(Minisign {
            key_number: sig[2..10].try_into().expect("8 bytes"),
            signature: sig[10..].try_into().expect("64 bytes"),
            trusted_comment: trusted_comment.into(),
            global,
        })
    }

    /// The key number the signature names.
    pub fn key_number(&self) -> [u8; 8] {
        self.key_number
    }

    /// The signed trusted comment.
    pub fn trusted_comment(&self) -> &str {
        &self.trusted_comment
    }

    /// The bytes the global signature covers: the signature, then the trusted comment.
    pub fn global_message(signature: &[u8; 64], trusted_comment: &str) -> Vec<u8> {
        let mut m = Vec::with_capacity(64 + trusted_comment.len());
        m.extend_from_slice(signature);
        m.extend_from_slice(trusted_comment.as_bytes());
        m
    }

    /// The `.sig` file in base64, as Tauri's and cargo-packager's update JSON carries it.
    pub fn to_base64(&self) -> String {
        B64.encode(self.to_string())
    }
}

impl fmt::Display for Minisign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut sig = Vec::with_capacity(74);
        sig.extend_from_slice(b"ED");
        sig.extend_from_slice(&self.key_number);
        sig.extend_from_slice(&self.signature);
        write!(
            f,
            "untrusted comment: signature from halftone\n{}\ntrusted comment: {}\n{}\n",
            B64.encode(sig),
            self.trusted_comment,
            B64.encode(self.global)
        )
    }
}
impl fmt::Debug for Minisign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Minisign({:?})", self.trusted_comment)
    }
}

/// Why client signatures do not belong to an artifact.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// The minisign signature names another key than the one the signatures claim.
    #[error("the minisign signature names key number {found}, not {expected} (the key of {key_id})")]
    KeyNumber {
        /// The key number of the named key, hex.
        expected: String,
        /// The key number in the signature, hex.
        found: String,
        /// The Halftone key id.
        key_id: KeyId,
    },
    /// The trusted comment names another build.
    #[error("the minisign trusted comment is {found:?}, not {expected:?}")]
    TrustedComment {
        /// The comment this artifact's signature must carry.
        expected: String,
        /// The comment it carries.
        found: String,
    },
    /// The global signature over the signature and the trusted comment does not verify.
    #[error("the minisign global signature does not verify with key {0}")]
    Global(KeyId),
}

/// The signatures and digest other updaters check, made by one of the app's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSignatures {
    /// The app key that made them (clients pin one key: see docs/clients.md).
    pub key_id: KeyId,
    /// SHA-512 of the file (electron-updater).
    pub sha512: Sha512,
    /// Minisign signature of the file (Tauri, cargo-packager).
    pub minisign: Minisign,
    /// Ed25519 over the file's bytes (Sparkle's `sparkle:edSignature`).
    pub ed_signature: Signature,
}

impl ClientSignatures {
    /// Checks what can be checked without the file: the minisign signature names `key`, its
    /// trusted comment names the artifact `fields` describes, and its global signature verifies.
    pub fn check_binding(&self, fields: SignedFields<'_>, key: &PublicKey) -> Result<(), BindingError> {
        let expected = minisign_key_number(key);
        if self.minisign.key_number != expected {
            return Err(BindingError::KeyNumber {
                expected: hex::encode(expected),
                found: hex::encode(self.minisign.key_number),
                key_id: self.key_id.clone(),
            });
        }
        let comment = trusted_comment(fields);
        if *self.minisign.trusted_comment != *comment {
            return Err(BindingError::TrustedComment {
                expected: comment,
                found: self.minisign.trusted_comment.to_string(),
            });
        }
        let verifying =
            VerifyingKey::from_bytes(&key.to_bytes()).map_err(|_| BindingError::Global(self.key_id.clone()))?;
        let message = Minisign::global_message(&self.minisign.signature, &self.minisign.trusted_comment);
        verifying
            .verify_strict(&message, &DalekSignature::from_bytes(&self.minisign.global))
            .map_err(|_| BindingError::Global(self.key_id.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AppId, Sha256, Target, Version};
    use ed25519_dalek::{Signer as _, SigningKey};

    fn fields_for<'a>(app: &'a AppId, v: &'a Version, t: &'a Target, sha: &'a Sha256) -> SignedFields<'a> {
        SignedFields { app, version: v, target: t, sha256: sha, size: 3 }
    }

    #[test]
    fn a_minisign_signature_round_trips_and_is_bound_to_its_build() {
        let signing = SigningKey::from_bytes(&[5; 32]);
        let key = PublicKey::from_bytes(signing.verifying_key().to_bytes()).unwrap();
        let (app, v) = (AppId::parse("notes").unwrap(), Version::parse("1.0.0").unwrap());
        let t = Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
        let sha = Sha256::digest(b"abc");
        let fields = fields_for(&app, &v, &t, &sha);
        let comment = trusted_comment(fields);
        let sig = [9u8; 64];
        let global = signing.sign(&Minisign::global_message(&sig, &comment)).to_bytes();
        let m = Minisign::new(minisign_key_number(&key), sig, &comment, global);
        assert_eq!(Minisign::parse(&m.to_string()).unwrap(), m);
        let c = ClientSignatures {
            key_id: key.fingerprint(),
            sha512: Sha512::from_bytes([1; 64]),
            minisign: m.clone(),
            ed_signature: Signature::from_bytes([0; 64]),
        };
        assert_eq!(c.check_binding(fields, &key), Ok(()));
        let v2 = Version::parse("2.0.0").unwrap();
        assert!(matches!(
            c.check_binding(fields_for(&app, &v2, &t, &sha), &key),
            Err(BindingError::TrustedComment { .. })
        ));
        let other = PublicKey::from_bytes(SigningKey::from_bytes(&[6; 32]).verifying_key().to_bytes()).unwrap();
        assert!(matches!(c.check_binding(fields, &other), Err(BindingError::KeyNumber { .. })));
        let forged = ClientSignatures { minisign: Minisign { global: [0; 64], ..m }, ..c };
        assert!(matches!(forged.check_binding(fields, &key), Err(BindingError::Global(_))));
    }

    #[test]
    fn malformed_minisign_files_are_refused() {
        for (text, why) in [
            ("x", "four lines"),
            ("untrusted comment: a\n!!\ntrusted comment: b\nAAAA\n", "line 2 must be base64"),
            ("nope\nAAAA\ntrusted comment: b\nAAAA\n", "untrusted comment"),
        ] {
            let e = Minisign::parse(text).unwrap_err().to_string();
            assert!(e.contains(why), "{text:?}: {e}");
        }
        let legacy =
            format!("untrusted comment: a\n{}\ntrusted comment: b\n{}\n", B64.encode([b'E'; 74]), B64.encode([0; 64]));
        let legacy = legacy.replacen(&B64.encode([b'E'; 74]), &B64.encode([b"Ed".as_slice(), &[0; 72]].concat()), 1);
        assert!(Minisign::parse(&legacy).unwrap_err().to_string().contains("prehashed"));
        assert!(Sha512::parse(&B64.encode([0; 63])).is_err());
        assert_eq!(Sha512::parse(&B64.encode([7; 64])).unwrap(), Sha512::from_bytes([7; 64]));
    }

    #[test]
    fn the_public_key_forms() {
        let key = PublicKey::from_bytes(SigningKey::from_bytes(&[5; 32]).verifying_key().to_bytes()).unwrap();
        let text = minisign_public_key(&key);
        let (comment, blob) = text.trim_end().split_once('\n').unwrap();
        assert!(comment.starts_with("untrusted comment: minisign public key "));
        let blob = B64.decode(blob).unwrap();
        assert_eq!(
            (&blob[..2], &blob[2..10], &blob[10..]),
            (b"Ed".as_slice(), minisign_key_number(&key).as_slice(), key.to_bytes().as_slice())
        );
        assert_eq!(B64.decode(sparkle_public_key(&key)).unwrap(), key.to_bytes());
    }
}
