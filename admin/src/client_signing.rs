//! Signing a build for the other updaters ([`ReleaseKey::sign_for_clients`]): the SHA-512
//! electron-updater checks, the minisign signature Tauri and cargo-packager check, and the
//! Ed25519 signature over the file's bytes Sparkle checks, all with the same release key as the
//! Halftone signature (see `halftone_channels::ClientSignatures`).

use std::cell::RefCell;
use std::io::{self, Read};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use blake2::Blake2b512;
use ed25519_dalek::hazmat::{ExpandedSecretKey, raw_sign_byupdate};
use ed25519_dalek::{SignatureError, Signer as _};
use halftone_channels::wire::ClientSignaturesSpec;
use halftone_channels::{Minisign, Sha256, Sha512, SignedFields, minisign_key_number, trusted_comment};
use sha2::Digest as _;

use crate::ReleaseKey;

/// Feeds every byte `open` gives to `update`, in chunks.
fn feed<R: Read>(open: &impl Fn() -> io::Result<R>, mut update: impl FnMut(&[u8])) -> io::Result<()> {
    let mut reader = open()?;
    let mut buf = vec![0u8; crate::artifact::CHUNK];
    loop {
        match reader.read(&mut buf)? {
            0 => return Ok(()),
            n => update(&buf[..n]),
        }
    }
}

impl ReleaseKey {
    /// The other updaters' signatures of the build `fields` describe. `open` gives the file's
    /// bytes from the start each time it is called (three times: Ed25519 over raw bytes reads
    /// the message twice); bytes whose SHA-256 or size differ from `fields` are an error, so a
    /// file that changed after it was hashed is never signed.
    pub fn sign_for_clients<R: Read>(
        &self,
        fields: SignedFields<'_>,
        open: impl Fn() -> io::Result<R>,
    ) -> io::Result<ClientSignaturesSpec> {
        let (mut sha256, mut sha512, mut blake, mut size) =
            (sha2::Sha256::new(), sha2::Sha512::new(), Blake2b512::new(), 0u64);
        feed(&open, |chunk| {
            sha256.update(chunk);
            sha512.update(chunk);
            blake.update(chunk);
            size += chunk.len() as u64;
        })?;
        if Sha256::from_bytes(sha256.finalize().into()) != *fields.sha256 || size != fields.size {
            return Err(io::Error::other("the file changed after it was hashed"));
        }
        let sha512 = Sha512::from_bytes(sha512.finalize().into());
        let prehash: [u8; 64] = blake.finalize().into();

        let key = self.public_key();
        let minisig = self.signing().sign(&prehash).to_bytes();
        let comment = trusted_comment(fields);
        let global = self.signing().sign(&Minisign::global_message(&minisig, &comment)).to_bytes();
        let minisign = Minisign::new(minisign_key_number(&key), minisig, &comment, global);

        // Sparkle: plain Ed25519 over the file, fed twice by the signer (never held whole).
        let failure: RefCell<Option<io::Error>> = RefCell::new(None);
        let expanded = ExpandedSecretKey::from(&self.signing().to_bytes());
        let ed = raw_sign_byupdate::<sha2::Sha512, _>(
            &expanded,
            |h: &mut sha2::Sha512| {
                feed(&open, |chunk| h.update(chunk)).map_err(|e| {
                    *failure.borrow_mut() = Some(e);
                    SignatureError::new()
                })
            },
            &self.signing().verifying_key(),
        )
        .map_err(|e| failure.take().unwrap_or_else(|| io::Error::other(e.to_string())))?;
        Ok(ClientSignaturesSpec {
            key_id: self.id().clone(),
            sha512: sha512.to_string(),
            minisign: minisign.to_string(),
            ed_signature: B64.encode(ed.to_bytes()),
        })
    }

    /// [`Self::sign_for_clients`] of bytes in memory.
    pub fn sign_bytes_for_clients(&self, fields: SignedFields<'_>, bytes: &[u8]) -> ClientSignaturesSpec {
        self.sign_for_clients(fields, || Ok(bytes)).expect("reading memory does not fail")
    }
}

#[cfg(test)]
mod tests {
    use halftone_channels::{AppId, ClientSignatures, Target, Version};

    use super::*;

    #[test]
    fn client_signatures_verify_with_independent_code() {
        let key = ReleaseKey::from_seed([4; 32]);
        let bytes = b"a build".repeat(20_000);
        let (app, version) = (AppId::parse("notes").unwrap(), Version::parse("1.0.0").unwrap());
        let target = Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
        let sha = Sha256::digest(&bytes);
        let fields =
            SignedFields { app: &app, version: &version, target: &target, sha256: &sha, size: bytes.len() as u64 };
        let spec = key.sign_bytes_for_clients(fields, &bytes);
        // minisign, as Tauri and cargo-packager verify it.
        let pk =
            minisign_verify::PublicKey::decode(&halftone_channels::minisign_public_key(&key.public_key())).unwrap();
        let sig = minisign_verify::Signature::decode(&spec.minisign).unwrap();
        pk.verify(&bytes, &sig, false).unwrap();
        let mut tampered = bytes.clone();
        tampered[3] ^= 1;
        assert!(pk.verify(&tampered, &sig, false).is_err());
        // Sparkle: plain Ed25519 over the bytes.
        let ed: [u8; 64] = B64.decode(&spec.ed_signature).unwrap().try_into().unwrap();
        let vk = ed25519_dalek::VerifyingKey::from_bytes(&key.public_key().to_bytes()).unwrap();
        vk.verify_strict(&bytes, &ed25519_dalek::Signature::from_bytes(&ed)).unwrap();
        assert_eq!(spec.sha512, B64.encode(sha2::Sha512::digest(&bytes)));
        let parsed = ClientSignatures::try_from(spec).unwrap();
        assert_eq!(parsed.check_binding(fields, &key.public_key()), Ok(()));
        // A file that is not the hashed one is not signed.
        let other = SignedFields { size: 1, ..fields };
        assert!(key.sign_for_clients(other, || Ok(bytes.as_slice())).is_err());
    }
}
