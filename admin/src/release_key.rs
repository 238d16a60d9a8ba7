//! [`ReleaseKey`]: the release engineer's ed25519 private key, and signing an artifact's signed
//! message with it.
//!
//! The key is a value here: made at random or from its 32-byte seed, never read from or
//! written to a file. Where keys live on disk is the caller's business (the `halftone` CLI keeps
//! them in key files, `server/src/cli/keys.rs`; tests and the bench seeder make them from fixed
//! seeds); see the crate doc for why.

use ed25519_dalek::{Signer as _, SigningKey};
use halftone_channels::wire::{ArtifactSpec, KeyDocumentSpec, KeySpec, PatchSpec, SignatureSpec};
use halftone_channels::{
    Blob, KeyDocument, KeyId, PatchFields, PatchFormat, PublicKey, Signature, SignedFields, patch_message,
    signed_message,
};

/// An ed25519 private key with the id signatures name it by.
///
/// `Debug` shows the id and the public key, never the private key; there is no `Display`.
pub struct ReleaseKey {
    signing: SigningKey,
    id: KeyId,
}

impl std::fmt::Debug for ReleaseKey {
    // The private key is a secret: never print it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseKey").field("id", &self.id).field("public_key", &self.public_key()).finish()
    }
}

impl ReleaseKey {
    /// A new random key, named by its fingerprint.
    pub fn generate() -> Self {
        Self::from_signing(SigningKey::generate(&mut rand::rng()))
    }

    /// The key with this 32-byte ed25519 seed (the private key), named by its fingerprint.
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self::from_signing(SigningKey::from_bytes(&seed))
    }

    fn from_signing(signing: SigningKey) -> Self {
        let id = public_key_of(&signing).fingerprint();
        ReleaseKey { signing, id }
    }

    /// The same key under another id, for apps that registered it under a name of their own
    /// rather than its fingerprint.
    pub fn with_id(self, id: KeyId) -> Self {
        ReleaseKey { id, ..self }
    }

    /// The 32-byte seed: the private key itself, for whoever stores the key. Keep it secret.
    pub fn secret_seed(&self) -> [u8; 32] {
        self.signing.to_bytes()
    }

    pub(crate) fn signing(&self) -> &SigningKey {
        &self.signing
    }

    /// The id signatures name this key by.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The public key to register with an app.
    pub fn public_key(&self) -> PublicKey {
        public_key_of(&self.signing)
    }

    /// The key as an app registers it (`PUT /v1/apps/{app}`).
    pub fn spec(&self) -> KeySpec {
        KeySpec { id: self.id.clone(), public_key: self.public_key() }
    }

    /// Signs an artifact's signed message (exactly `signed_message(fields)`).
    pub fn sign(&self, fields: SignedFields<'_>) -> Signature {
        Signature::from_bytes(self.signing.sign(signed_message(fields).as_bytes()).to_bytes())
    }

    /// The artifact of a release spec for the build `fields` describe: its target, digest and
    /// size, signed with this key and naming it (served from the server's own store, no `url`).
    pub fn sign_artifact(&self, fields: SignedFields<'_>) -> ArtifactSpec {
        ArtifactSpec {
            os: fields.target.os.clone(),
            arch: fields.target.arch.clone(),
            sha256: *fields.sha256,
            size: fields.size,
            signature: self.sign(fields),
            key_id: self.id.clone(),
            signatures: Vec::new(),
            url: None,
            clients: None,
            patches: Vec::new(),
        }
    }

    /// The spec of a patch from `base` to the artifact `result` describes, whose own bytes
    /// are `patch`: signed with this key over the patch message ([`patch_message`]).
    pub fn sign_patch(&self, result: SignedFields<'_>, format: PatchFormat, base: &Blob, patch: &Blob) -> PatchSpec {
        let message = patch_message(PatchFields { artifact: result, format, base, patch });
        PatchSpec {
            format,
            base_sha256: base.sha256,
            base_size: base.size,
            sha256: patch.sha256,
            size: patch.size,
            signature: Signature::from_bytes(self.signing.sign(message.as_bytes()).to_bytes()),
            key_id: self.id.clone(),
            signatures: Vec::new(),
        }
    }

    /// The artifact of a release spec signed by every one of `keys` (k-of-n): the first fills
    /// `key_id` and `signature`, and `signatures` lists them all when there are several.
    /// `None` when `keys` is empty.
    pub fn sign_artifact_by(keys: &[&ReleaseKey], fields: SignedFields<'_>) -> Option<ArtifactSpec> {
        let mut spec = keys.first()?.sign_artifact(fields);
        if keys.len() > 1 {
            spec.signatures =
                keys.iter().map(|k| SignatureSpec { key_id: k.id.clone(), signature: k.sign(fields) }).collect();
        }
        Some(spec)
    }

    /// This key's signature over a key document's signed bytes ([`KeyDocument::message`]).
    pub fn sign_key_document(&self, document: &KeyDocument) -> SignatureSpec {
        let signature = Signature::from_bytes(self.signing.sign(document.message().as_bytes()).to_bytes());
        SignatureSpec { key_id: self.id.clone(), signature }
    }

    /// `document` signed by each of `signers` (enough of the previous version's keys and of its
    /// own), as `POST /v1/apps/{app}/keys` takes it.
    pub fn signed_key_document(document: &KeyDocument, signers: &[&ReleaseKey]) -> KeyDocumentSpec {
        KeyDocumentSpec {
            app: document.app().clone(),
            version: document.version(),
            threshold: document.threshold().get() as u64,
            keys: document.keys().iter().map(|(id, pk)| KeySpec { id: id.clone(), public_key: *pk }).collect(),
            signatures: signers.iter().map(|k| k.sign_key_document(document)).collect(),
        }
    }
}

fn public_key_of(signing: &SigningKey) -> PublicKey {
    // An ed25519 public key derived from a private key is never weak.
    PublicKey::from_bytes(signing.verifying_key().to_bytes()).expect("a derived ed25519 public key is valid")
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::{AppId, Sha256, Target, TrustedKeys, Version};

    #[test]
    fn signatures_verify_with_trusted_keys() {
        let key = ReleaseKey::from_seed([9; 32]);
        let (app, version) = (AppId::parse("notes").unwrap(), Version::parse("1.2.0").unwrap());
        let target = Target { os: "windows".parse().unwrap(), arch: "x86_64".parse().unwrap() };
        let sha256 = Sha256::digest(b"build");
        let fields = SignedFields { app: &app, version: &version, target: &target, sha256: &sha256, size: 5 };
        let signature = key.sign(fields);
        let trusted = TrustedKeys::new([(key.id().clone(), key.public_key())]).unwrap();
        let message = signed_message(fields);
        assert_eq!(trusted.verify(key.id(), message.as_bytes(), &signature), Ok(()));
        // The signature covers the fields: another size does not verify.
        let other = signed_message(SignedFields { size: 6, ..fields });
        assert!(trusted.verify(key.id(), other.as_bytes(), &signature).is_err());
        assert!(key.id().as_str().starts_with("ed25519-"));
        assert!(!format!("{key:?}").contains(&hex::encode([9u8; 32])));
    }

    #[test]
    fn signed_artifacts_name_the_key_and_carry_the_fields() {
        let key = ReleaseKey::from_seed([3; 32]).with_id(KeyId::parse("release-2026").unwrap());
        let (app, version) = (AppId::parse("notes").unwrap(), Version::parse("1.2.0").unwrap());
        let target = Target { os: "linux".parse().unwrap(), arch: "aarch64".parse().unwrap() };
        let sha256 = Sha256::digest(b"build");
        let fields = SignedFields { app: &app, version: &version, target: &target, sha256: &sha256, size: 5 };
        let spec = key.sign_artifact(fields);
        assert_eq!((spec.os, spec.arch), (target.os.clone(), target.arch.clone()));
        assert_eq!((spec.sha256, spec.size, spec.url), (sha256, 5, None));
        assert_eq!(spec.key_id.as_str(), "release-2026");
        assert_eq!(spec.signature, key.sign(fields));
    }

    #[test]
    fn a_seed_gives_the_same_key_back() {
        let key = ReleaseKey::generate();
        let again = ReleaseKey::from_seed(key.secret_seed());
        assert_eq!((again.id(), again.public_key()), (key.id(), key.public_key()));
        let renamed = again.with_id(KeyId::parse("release-2026").unwrap());
        assert_eq!(renamed.id().as_str(), "release-2026");
        assert_eq!(renamed.public_key(), key.public_key());
    }
}
