//! Artifact signatures: the signed message ([`signed_message`]), [`Sha256`], [`Signature`],
//! [`PublicKey`], [`KeyId`], [`KeySignature`] and [`Signatures`] (one or more, for k-of-n), and
//! [`TrustedKeys`], which verifies one signature or counts the distinct keys that signed.
//!
//! The signed message for an artifact is these UTF-8 lines, each ending in `\n`, and nothing
//! else:
//!
//! ```text
//! halftone-artifact-v1
//! app=<app id>
//! version=<version>
//! os=<os>
//! arch=<arch>
//! sha256=<lowercase hex>
//! size=<decimal bytes>
//! ```
//!
//! Release engineers sign it with ed25519 (the CLI does); the server and the SDK both verify.
//! Because app, version and target are inside the message, a genuine signature cannot be
//! replayed for another app, version or platform.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signature as DalekSignature, VerifyingKey};
use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::error::{ParseError, What, check_slug, string_newtype};
use crate::{AppId, Target, Threshold, Version};

/// The fields an artifact's signature covers.
#[derive(Debug, Clone, Copy)]
pub struct SignedFields<'a> {
    /// The app.
    pub app: &'a AppId,
    /// The release version.
    pub version: &'a Version,
    /// The os and arch.
    pub target: &'a Target,
    /// The artifact's digest.
    pub sha256: &'a Sha256,
    /// The artifact's size in bytes.
    pub size: u64,
}

/// The exact bytes that are signed for an artifact (see the module documentation).
pub fn signed_message(f: SignedFields<'_>) -> String {
    format!(
        "halftone-artifact-v1\napp={}\nversion={}\nos={}\narch={}\nsha256={}\nsize={}\n",
        f.app, f.version, f.target.os, f.target.arch, f.sha256, f.size
    )
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Sha256([u8; 32]);

impl Sha256 {
    /// Parses 64 lowercase hex digits (uppercase is refused so that one digest has one
    /// spelling, in URLs and file names alike).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return Err(ParseError::new(What::Sha256, s, "expected 64 lowercase hex digits"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| ParseError::new(What::Sha256, s, "expected 64 lowercase hex digits"))?;
        Ok(Sha256(out))
    }

    /// Wraps a finished digest.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Sha256(bytes)
    }

    /// The digest of `data`.
    pub fn digest(data: &[u8]) -> Self {
        Sha256(Sha256Hasher::digest(data).into())
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(lower_hex(&self.0, &mut [0; 64]))
    }
}
impl fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

/// An ed25519 signature, written as 128 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature([u8; 64]);

impl Signature {
    /// Parses 128 hex digits.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut out = [0u8; 64];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| ParseError::new(What::Signature, s, "expected 128 hex digits (64 bytes)"))?;
        Ok(Signature(out))
    }

    /// Wraps raw signature bytes.
    pub fn from_bytes(bytes: [u8; 64]) -> Self {
        Signature(bytes)
    }

    /// The raw bytes.
    pub fn to_bytes(&self) -> [u8; 64] {
        self.0
    }
}
impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(lower_hex(&self.0, &mut [0; 128]))
    }
}

/// `bytes` in lowercase hex, written into `out` (twice as long): no allocation, since digests
/// and signatures are written into every check-in answer.
fn lower_hex<'o>(bytes: &[u8], out: &'o mut [u8]) -> &'o str {
    hex::encode_to_slice(bytes, out).expect("the buffer is twice the input");
    std::str::from_utf8(out).expect("hex is ASCII")
}
impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

/// An ed25519 public key, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey(VerifyingKey);

impl PublicKey {
    /// Parses 64 hex digits that encode a valid (non-weak) ed25519 point.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| ParseError::new(What::PublicKey, s, "expected 64 hex digits (32 bytes)"))?;
        Self::from_bytes(out).map_err(|_| ParseError::new(What::PublicKey, s, "not a valid ed25519 public key"))
    }

    /// Wraps raw key bytes, refusing invalid or weak keys.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, ParseError> {
        let key = VerifyingKey::from_bytes(&bytes)
            .map_err(|_| ParseError::new(What::PublicKey, &hex::encode(bytes), "not a valid ed25519 public key"))?;
        if key.is_weak() {
            return Err(ParseError::new(What::PublicKey, &hex::encode(bytes), "weak ed25519 key"));
        }
        Ok(PublicKey(key))
    }

    /// The raw key bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The default id of this key: `ed25519-` and the first 8 bytes of SHA-256 of the key, in
    /// hex. The CLI's `keygen` prints it; apps may register keys under other ids.
    pub fn fingerprint(&self) -> KeyId {
        let digest = Sha256Hasher::digest(self.0.as_bytes());
        KeyId(format!("ed25519-{}", hex::encode(&digest[..8])).into())
    }
}
impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0.as_bytes()))
    }
}
impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// The id a signature names its key by: 1–64 characters of `[A-Za-z0-9._-]`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(Box<str>);

impl KeyId {
    /// Parses a key id.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_slug(
            What::KeyId,
            s,
            64,
            |c| c.is_ascii_alphanumeric(),
            |c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'),
            "letters, digits, '.', '_' and '-'",
        )?;
        Ok(KeyId(s.into()))
    }
}
string_newtype!(KeyId);

macro_rules! hex_serde {
    ($ty:ident) => {
        impl FromStr for $ty {
            type Err = ParseError;
            fn from_str(s: &str) -> Result<Self, ParseError> {
                Self::parse(s)
            }
        }
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}
hex_serde!(Sha256);
hex_serde!(Signature);
hex_serde!(PublicKey);

/// One signature and the id of the key that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySignature {
    /// The key that signed.
    pub key_id: KeyId,
    /// The ed25519 signature.
    pub signature: Signature,
}

/// The most signatures one artifact or key document may carry.
pub const MAX_SIGNATURES: usize = 2 * MAX_TRUSTED_KEYS;

/// One or more signatures over one message (at most [`MAX_SIGNATURES`]). A key may appear
/// more than once; it still counts once towards a threshold ([`TrustedKeys::signers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signatures(Vec<KeySignature>);

impl Signatures {
    /// A list of one.
    pub fn one(key_id: KeyId, signature: Signature) -> Self {
        Signatures(vec![KeySignature { key_id, signature }])
    }

    /// At least one and at most [`MAX_SIGNATURES`] signatures, in the order given.
    pub fn new(list: Vec<KeySignature>) -> Result<Self, ParseError> {
        let count = format!("{} signatures", list.len());
        if list.is_empty() {
            return Err(ParseError::new(What::Signatures, &count, "needs at least one signature"));
        }
        if list.len() > MAX_SIGNATURES {
            return Err(ParseError::new(What::Signatures, &count, format!("at most {MAX_SIGNATURES} signatures")));
        }
        Ok(Signatures(list))
    }

    /// The first signature (the one the single-signature wire fields carry).
    pub fn first(&self) -> &KeySignature {
        &self.0[0]
    }

    /// All signatures, in order.
    pub fn iter(&self) -> impl Iterator<Item = &KeySignature> {
        self.0.iter()
    }

    /// The distinct key ids named, sorted.
    pub fn key_ids(&self) -> BTreeSet<&KeyId> {
        self.0.iter().map(|s| &s.key_id).collect()
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature names a key the verifier does not trust.
    #[error("signature key {0} is not one of the trusted keys")]
    UnknownKey(KeyId),
    /// The signature does not match the message under the named key.
    #[error("signature does not verify under key {0}")]
    Invalid(KeyId),
    /// Fewer distinct trusted keys made valid signatures than the threshold asks for.
    #[error("signed by {valid} distinct trusted keys, {needed} needed")]
    TooFew {
        /// Distinct trusted keys whose signature verified.
        valid: usize,
        /// The threshold.
        needed: usize,
    },
}

/// The public keys an app trusts, by id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(BTreeMap<KeyId, PublicKey>);

/// The most keys an app may trust at once.
pub const MAX_TRUSTED_KEYS: usize = 32;

impl TrustedKeys {
    /// Keys by id: at most [`MAX_TRUSTED_KEYS`], each id once (two keys under one id would
    /// make a signature's meaning depend on which one is looked up).
    pub fn new(keys: impl IntoIterator<Item = (KeyId, PublicKey)>) -> Result<Self, ParseError> {
        let mut map = BTreeMap::new();
        for (id, key) in keys {
            if map.insert(id.clone(), key).is_some() {
                return Err(ParseError::new(What::TrustedKeys, id.as_str(), "this key id is listed twice"));
            }
        }
        if map.len() > MAX_TRUSTED_KEYS {
            let why = format!("an app trusts at most {MAX_TRUSTED_KEYS} keys");
            return Err(ParseError::new(What::TrustedKeys, &format!("{} keys", map.len()), why));
        }
        Ok(TrustedKeys(map))
    }

    /// Verifies `signature` by key `key_id` over `message` (strict ed25519: no malleable
    /// signatures, no small-order keys).
    pub fn verify(&self, key_id: &KeyId, message: &[u8], signature: &Signature) -> Result<(), SignatureError> {
        let key = self.0.get(key_id).ok_or_else(|| SignatureError::UnknownKey(key_id.clone()))?;
        let sig = DalekSignature::from_bytes(&signature.0);
        key.0.verify_strict(message, &sig).map_err(|_| SignatureError::Invalid(key_id.clone()))
    }

    /// The distinct trusted keys whose signature in `signatures` verifies over `message`.
    /// A key that signs twice is one signer; signatures by unknown keys, and invalid ones, are
    /// not counted.
    pub fn signers<'s>(&self, message: &[u8], signatures: &'s Signatures) -> BTreeSet<&'s KeyId> {
        signatures.iter().filter(|s| self.verify(&s.key_id, message, &s.signature).is_ok()).map(|s| &s.key_id).collect()
    }

    /// Verifies that at least `threshold` distinct trusted keys signed `message`. When the
    /// list holds a single signature that fails, the error says why (unknown key or invalid)
    /// rather than counting.
    pub fn verify_threshold(
        &self,
        threshold: Threshold,
        message: &[u8],
        signatures: &Signatures,
    ) -> Result<(), SignatureError> {
        let threshold = threshold.get();
        let valid = self.signers(message, signatures).len();
        if valid >= threshold {
            return Ok(());
        }
        if let [only] = signatures.0.as_slice() {
            self.verify(&only.key_id, message, &only.signature)?;
        }
        Err(SignatureError::TooFew { valid, needed: threshold })
    }

    /// The number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The key of id `key_id`.
    pub fn get(&self, key_id: &KeyId) -> Option<&PublicKey> {
        self.0.get(key_id)
    }

    /// True when a key of this id is trusted (an artifact signed by any other cannot verify).
    pub fn contains(&self, key_id: &KeyId) -> bool {
        self.0.contains_key(key_id)
    }

    /// The keys, by id.
    pub fn iter(&self) -> impl Iterator<Item = (&KeyId, &PublicKey)> {
        self.0.iter()
    }

    /// True when no key is trusted (nothing can verify).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, SigningKey};

    fn fields() -> (AppId, Version, Target, Sha256) {
        (
            AppId::parse("notes").unwrap(),
            Version::parse("1.2.3").unwrap(),
            Target { os: "windows".parse().unwrap(), arch: "x86_64".parse().unwrap() },
            Sha256::digest(b"hello"),
        )
    }

    #[test]
    fn signed_message_is_exactly_the_documented_lines() {
        let (app, version, target, sha256) = fields();
        let msg =
            signed_message(SignedFields { app: &app, version: &version, target: &target, sha256: &sha256, size: 5 });
        assert_eq!(
            msg,
            "halftone-artifact-v1\napp=notes\nversion=1.2.3\nos=windows\narch=x86_64\nsha256=2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\nsize=5\n"
        );
    }

    #[test]
    fn the_vector_published_in_the_api_doc_holds() {
        use crate::test_support::{doc_row, doc_section};
        let doc = doc_section("### Worked example");
        let seed: [u8; 32] = hex::decode(doc_row(doc, "private seed (hex)")).unwrap().try_into().unwrap();
        let sk = SigningKey::from_bytes(&seed);
        let pk = PublicKey::from_bytes(sk.verifying_key().to_bytes()).unwrap();
        assert_eq!(pk.to_string(), doc_row(doc, "public key (hex)"));
        assert_eq!(pk.fingerprint().to_string(), doc_row(doc, "default key id"));
        assert_eq!(Sha256::digest(b"hello").to_string(), doc_row(doc, "sha256"));

        let (app, version, target, sha256) = fields();
        let msg =
            signed_message(SignedFields { app: &app, version: &version, target: &target, sha256: &sha256, size: 5 });
        // The string literal the doc gives, `\n` spelled out.
        let literal = doc.lines().find_map(|l| l.strip_prefix("`\"halftone-artifact-v1")).unwrap();
        let literal = format!("halftone-artifact-v1{}", literal.trim_end_matches("\"`.")).replace("\\n", "\n");
        assert_eq!(msg, literal);
        assert!(doc.contains(&format!("The message is {} bytes", msg.len())));

        let signature = doc
            .lines()
            .find(|l| l.len() == 128 && l.bytes().all(|b| b.is_ascii_hexdigit()))
            .expect("the doc shows the signature");
        assert_eq!(hex::encode(sk.sign(msg.as_bytes()).to_bytes()), signature);
        let keys = TrustedKeys::new([(pk.fingerprint(), pk)]).unwrap();
        assert!(keys.verify(&pk.fingerprint(), msg.as_bytes(), &Signature::parse(signature).unwrap()).is_ok());
    }

    #[test]
    fn verifies_only_the_right_key_and_message() {
        let sk = SigningKey::from_bytes(&[7u8; 32]);
        let pk = PublicKey::from_bytes(sk.verifying_key().to_bytes()).unwrap();
        let id = pk.fingerprint();
        let keys = TrustedKeys::new([(id.clone(), pk)]).unwrap();
        let sig = Signature::from_bytes(sk.sign(b"message").to_bytes());
        assert_eq!(keys.verify(&id, b"message", &sig), Ok(()));
        assert_eq!(keys.verify(&id, b"messagf", &sig), Err(SignatureError::Invalid(id.clone())));
        let other = KeyId::parse("other").unwrap();
        assert_eq!(keys.verify(&other, b"message", &sig), Err(SignatureError::UnknownKey(other)));
        assert!(id.as_str().starts_with("ed25519-") && id.as_str().len() == 24);
    }

    #[test]
    fn hex_values_parse_strictly() {
        assert!(Sha256::parse(&"A".repeat(64)).is_err());
        assert!(Sha256::parse(&"a".repeat(63)).is_err());
        assert!(Sha256::parse("../../etc/passwd").is_err());
        assert!(Signature::parse("00").is_err());
        assert!(PublicKey::parse(&"zz".repeat(32)).is_err());
        let (_, _, _, d) = fields();
        assert_eq!(Sha256::parse(&d.to_string()).unwrap(), d);
    }
}
