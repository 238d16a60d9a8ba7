//! Signed check-in answers: the [`Nonce`] a device sends, the leaf message that binds an
//! answer's exact bytes to the app, the device, the nonce and an expiry, the Merkle batch that
//! lets one signature cover many answers ([`Batch`]), and the [`Proof`] a device checks.
//!
//! The server holds an online *answer key* (not a release key: it can withhold updates at
//! most, since every build is still checked against the release keys). Signing each answer
//! alone would cost more CPU than the check-in itself, so, as Roughtime does, the server
//! gathers the answers of a short window, builds a Merkle tree over their leaves, signs its
//! root once, and sends each answer its path to the root.
//!
//! The leaf message of one answer is these UTF-8 lines, each ending in `\n`:
//!
//! ```text
//! halftone-answer-v1
//! app=<app id>
//! device=<device id>
//! nonce=<the request's nonce, lowercase hex; empty when it sent none>
//! expires=<unix seconds>
//! body-sha256=<SHA-256 of the answer's body bytes, lowercase hex>
//! ```
//!
//! A leaf is `SHA-256(0x00 ‖ message)`, an inner node `SHA-256(0x01 ‖ left ‖ right)` (the
//! prefixes keep a leaf from passing for a node). Each level pairs its nodes left to right; an
//! odd last node moves up unchanged. The signed message is
//! `halftone-answer-root-v1\nroot=<hex>\nsize=<leaves>\n`, signed with ed25519.

use std::fmt;

use ed25519_dalek::{Signer as _, SigningKey};
use sha2::{Digest, Sha256 as Sha256Hasher};

use crate::error::{ParseError, What};
use crate::{AppId, DeviceId, KeyId, PublicKey, Sha256, Signature, SignatureError, TrustedKeys};

/// The fewest bytes in a nonce.
pub const MIN_NONCE_BYTES: usize = 16;
/// The most bytes in a nonce.
pub const MAX_NONCE_BYTES: usize = 64;
/// The most answers one signature covers (so a path has at most 16 nodes).
pub const MAX_BATCH: usize = 1 << 16;

/// A device's random challenge for one check-in: 16 to 64 bytes, written as lowercase hex.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Nonce(Box<str>);

impl Nonce {
    /// Parses 32 to 128 lowercase hex digits.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let ok_len = (MIN_NONCE_BYTES * 2..=MAX_NONCE_BYTES * 2).contains(&s.len()) && s.len().is_multiple_of(2);
        if !ok_len || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            let why = format!("expected {}–{} lowercase hex digits", MIN_NONCE_BYTES * 2, MAX_NONCE_BYTES * 2);
            return Err(ParseError::new(What::Nonce, s, why));
        }
        Ok(Nonce(s.into()))
    }

    /// A nonce of these random bytes (16 to 64 of them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        Self::parse(&hex::encode(bytes))
    }

    /// The hex form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl fmt::Debug for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Nonce({})", self.0)
    }
}
impl serde::Serialize for Nonce {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}
impl<'de> serde::Deserialize<'de> for Nonce {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// What one answer's leaf binds (see the module documentation).
#[derive(Debug, Clone, Copy)]
pub struct AnswerFields<'a> {
    /// The app asked about.
    pub app: &'a AppId,
    /// The device that asked.
    pub device: &'a DeviceId,
    /// The request's nonce, if it sent one.
    pub nonce: Option<&'a Nonce>,
    /// Unix seconds after which the answer is stale.
    pub expires_s: u64,
    /// The answer's body, exactly as sent.
    pub body: &'a [u8],
}

/// A node of the tree: a leaf or inner hash.
pub type Node = [u8; 32];

/// The leaf message of an answer (see the module documentation).
pub fn leaf_message(f: AnswerFields<'_>) -> String {
    format!(
        "halftone-answer-v1\napp={}\ndevice={}\nnonce={}\nexpires={}\nbody-sha256={}\n",
        f.app,
        f.device,
        f.nonce.map_or("", Nonce::as_str),
        f.expires_s,
        Sha256::digest(f.body)
    )
}

/// The leaf hash of an answer: `SHA-256(0x00 ‖ leaf_message)`, hashed piece by piece (it
/// runs for every check-in, so it builds no string).
pub fn leaf(f: AnswerFields<'_>) -> Node {
    let mut h = Sha256Hasher::new();
    h.update(b"\x00halftone-answer-v1\napp=");
    h.update(f.app.as_str().as_bytes());
    h.update(b"\ndevice=");
    h.update(f.device.as_str().as_bytes());
    h.update(b"\nnonce=");
    h.update(f.nonce.map_or("", Nonce::as_str).as_bytes());
    h.update(b"\nexpires=");
    let mut digits = [0u8; 20];
    h.update(decimal(f.expires_s, &mut digits));
    h.update(b"\nbody-sha256=");
    let mut hex_digest = [0u8; 64];
    hex::encode_to_slice(Sha256Hasher::digest(f.body), &mut hex_digest).expect("64 digits for 32 bytes");
    h.update(hex_digest);
    h.update(b"\n");
    h.finalize().into()
}

/// `n` in decimal, written at the end of `out`.
fn decimal(mut n: u64, out: &mut [u8; 20]) -> &[u8] {
    let mut i = out.len();
    loop {
        i -= 1;
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &out[i..];
        }
    }
}

fn node(left: &Node, right: &Node) -> Node {
    let mut h = Sha256Hasher::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The message the answer key signs for a tree of `size` leaves with this root.
pub fn root_message(root: &Node, size: usize) -> String {
    format!("halftone-answer-root-v1\nroot={}\nsize={size}\n", hex::encode(root))
}

/// A batch of answers' leaves, signed once: its root's signature and every leaf's path.
#[derive(Debug)]
pub struct Batch {
    /// Every level, leaves first, root last.
    levels: Vec<Vec<Node>>,
    signature: Signature,
}

impl Batch {
    /// Builds the tree over `leaves` (1 to [`MAX_BATCH`]) and signs its root with `key`.
    ///
    /// # Panics
    /// When `leaves` is empty or longer than [`MAX_BATCH`]: the caller batches.
    pub fn sign(leaves: Vec<Node>, key: &SigningKey) -> Self {
        assert!(!leaves.is_empty() && leaves.len() <= MAX_BATCH, "a batch holds 1 to {MAX_BATCH} leaves");
        let size = leaves.len();
        let mut levels = vec![leaves];
        while levels.last().is_some_and(|l| l.len() > 1) {
            let below = levels.last().expect("not empty");
            let up = below.chunks(2).map(|p| if let [l, r] = p { node(l, r) } else { p[0] }).collect();
            levels.push(up);
        }
        let root = levels.last().expect("not empty")[0];
        let signature = Signature::from_bytes(key.sign(root_message(&root, size).as_bytes()).to_bytes());
        Batch { levels, signature }
    }

    /// How many answers the batch covers.
    pub fn len(&self) -> usize {
        self.levels[0].len()
    }

    /// Never true: a batch holds at least one leaf.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The `Halftone-Answer-Proof` header of leaf `index` (what [`Batch::proof`] would print),
    /// written straight from the tree: the signer renders one per answer.
    ///
    /// # Panics
    /// When `index` is out of the batch.
    pub fn proof_header(&self, index: usize, key_id: &KeyId, expires_s: u64) -> String {
        assert!(index < self.len(), "leaf {index} is not in a batch of {}", self.len());
        let mut out = String::with_capacity(64 * self.levels.len() + 240);
        write_header(&mut out, key_id, expires_s, index as u64, self.len() as u64, self.path(index), &self.signature)
            .expect("writing to a String cannot fail");
        out
    }

    /// The siblings of leaf `index`, from the leaf up.
    fn path(&self, index: usize) -> impl Iterator<Item = &Node> {
        let mut i = index;
        self.levels[..self.levels.len() - 1].iter().filter_map(move |level| {
            let sibling = i ^ 1;
            i /= 2;
            level.get(sibling)
        })
    }

    /// The proof for leaf `index` of answers that expire at `expires_s`, signed by `key_id`.
    ///
    /// # Panics
    /// When `index` is out of the batch.
    pub fn proof(&self, index: usize, key_id: &KeyId, expires_s: u64) -> Proof {
        assert!(index < self.len(), "leaf {index} is not in a batch of {}", self.len());
        let path = self.path(index).copied().collect();
        Proof {
            key_id: key_id.clone(),
            expires_s,
            index: index as u64,
            size: self.len() as u64,
            path,
            signature: self.signature,
        }
    }
}

/// What proves one answer: the key, the expiry, the leaf's place, its path and the root's
/// signature. Sent in the `Halftone-Answer-Proof` header as
/// `key=<id>; expires=<s>; leaf=<index>/<size>; path=<hex of the nodes, concatenated>; sig=<hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The answer key that signed the root.
    pub key_id: KeyId,
    /// Unix seconds after which the answer is stale.
    pub expires_s: u64,
    /// The leaf's index in its batch.
    pub index: u64,
    /// How many leaves the batch has.
    pub size: u64,
    /// The siblings from the leaf up (none where a node moved up alone).
    pub path: Vec<Node>,
    /// The signature over the root message.
    pub signature: Signature,
}

/// The header that carries a [`Proof`].
pub const PROOF_HEADER: &str = "halftone-answer-proof";

impl fmt::Display for Proof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_header(f, &self.key_id, self.expires_s, self.index, self.size, self.path.iter(), &self.signature)
    }
}

/// The header form of a proof.
fn write_header<'n>(
    out: &mut impl fmt::Write,
    key_id: &KeyId,
    expires_s: u64,
    index: u64,
    size: u64,
    path: impl Iterator<Item = &'n Node>,
    signature: &Signature,
) -> fmt::Result {
    write!(out, "key={key_id}; expires={expires_s}; leaf={index}/{size}; path=")?;
    let mut hex_node = [0u8; 64];
    for n in path {
        hex::encode_to_slice(n, &mut hex_node).expect("64 digits for 32 bytes");
        out.write_str(std::str::from_utf8(&hex_node).expect("hex is ASCII"))?;
    }
    write!(out, "; sig={signature}")
}

impl Proof {
    /// Parses the header form, strictly: each field once, in order.
    pub fn parse(s: &str) -> Result<Self, AnswerError> {
        let bad = |why: &str| AnswerError::Malformed(why.to_owned());
        let mut fields = s.split("; ");
        let mut field = |name: &str| {
            fields
                .next()
                .and_then(|f| f.strip_prefix(name))
                .and_then(|f| f.strip_prefix('='))
                .ok_or_else(|| bad(&format!("expected the field {name}")))
        };
        let key_id = KeyId::parse(field("key")?).map_err(|e| bad(&e.to_string()))?;
        let expires_s = field("expires")?.parse().map_err(|_| bad("expires is not a number"))?;
        let (index, size) = field("leaf")?.split_once('/').ok_or_else(|| bad("leaf is not index/size"))?;
        let index: u64 = index.parse().map_err(|_| bad("leaf index is not a number"))?;
        let size: u64 = size.parse().map_err(|_| bad("leaf size is not a number"))?;
        let path_hex = field("path")?;
        if !path_hex.len().is_multiple_of(64) || path_hex.len() > 64 * 16 {
            return Err(bad("path is not a whole number of nodes (at most 16)"));
        }
        let mut path = Vec::with_capacity(path_hex.len() / 64);
        for chunk in path_hex.as_bytes().chunks(64) {
            let mut n = [0u8; 32];
            hex::decode_to_slice(chunk, &mut n).map_err(|_| bad("path is not hex"))?;
            path.push(n);
        }
        let signature = Signature::parse(field("sig")?).map_err(|e| bad(&e.to_string()))?;
        if fields.next().is_some() {
            return Err(bad("unexpected fields after sig"));
        }
        if size == 0 || size > MAX_BATCH as u64 || index >= size {
            return Err(bad("leaf index out of the batch"));
        }
        Ok(Proof { key_id, expires_s, index, size, path, signature })
    }

    /// The root this proof leads to from `leaf`, or `None` when the path's length does not fit
    /// the leaf's place.
    fn root_from(&self, leaf: Node) -> Option<Node> {
        let mut path = self.path.iter();
        let (mut i, mut n, mut acc) = (self.index, self.size, leaf);
        while n > 1 {
            let sibling = i ^ 1;
            if sibling < n {
                let s = path.next()?;
                acc = if i % 2 == 0 { node(&acc, s) } else { node(s, &acc) };
            }
            i /= 2;
            n = n.div_ceil(2);
        }
        path.next().is_none().then_some(acc)
    }

    /// Checks that this proof signs `answer` under one of `keys` (not the expiry: that needs
    /// a clock, the caller's).
    pub fn verify(&self, keys: &TrustedKeys, answer: AnswerFields<'_>) -> Result<(), AnswerError> {
        if answer.expires_s != self.expires_s {
            return Err(AnswerError::Malformed("the expiry does not match the proof".into()));
        }
        let root = self.root_from(leaf(answer)).ok_or(AnswerError::BadPath)?;
        let size = usize::try_from(self.size).map_err(|_| AnswerError::BadPath)?;
        keys.verify(&self.key_id, root_message(&root, size).as_bytes(), &self.signature).map_err(|e| match e {
            SignatureError::UnknownKey(k) => AnswerError::UnknownKey(k),
            _ => AnswerError::BadSignature,
        })
    }
}

/// Why an answer's proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AnswerError {
    /// The proof header is missing or cannot be read.
    #[error("malformed answer proof: {0}")]
    Malformed(String),
    /// Signed by an answer key the app does not pin.
    #[error("the answer is signed by key {0}, which this app does not pin")]
    UnknownKey(KeyId),
    /// The path does not fit the leaf's place in its batch.
    #[error("the answer's Merkle path does not fit its place in the batch")]
    BadPath,
    /// The signature does not verify: the answer, the device, the nonce or the expiry differ
    /// from what was signed.
    #[error("the answer's signature does not verify (changed, replayed, or for another device or nonce)")]
    BadSignature,
}

/// An answer key's id: `answer-` and the first 8 bytes of SHA-256 of its public key, in hex.
pub fn answer_key_id(key: &PublicKey) -> KeyId {
    let digest = Sha256::digest(&key.to_bytes());
    KeyId::parse(&format!("answer-{}", hex::encode(&digest.as_bytes()[..8]))).expect("a valid key id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> (SigningKey, KeyId, TrustedKeys) {
        let sk = SigningKey::from_bytes(&[9u8; 32]);
        let pk = PublicKey::from_bytes(sk.verifying_key().to_bytes()).unwrap();
        let id = answer_key_id(&pk);
        (sk, id.clone(), TrustedKeys::new([(id, pk)]).unwrap())
    }

    fn app() -> AppId {
        AppId::parse("notes").unwrap()
    }

    fn device(i: usize) -> DeviceId {
        DeviceId::parse(&format!("device-{i}")).unwrap()
    }

    fn nonce(i: usize) -> Nonce {
        Nonce::from_bytes(&[i as u8; 16]).unwrap()
    }

    proptest! {
        #[test]
        fn every_leaf_of_every_batch_verifies_and_no_other_answer_does(size in 1usize..70, pick in 0usize..70) {
            let (sk, id, keys) = key();
            let (app, body) = (app(), b"{\"next_check_s\":3600,\"update\":null}".to_vec());
            let devices: Vec<_> = (0..size).map(device).collect();
            let nonces: Vec<_> = (0..size).map(nonce).collect();
            let fields = |i: usize| AnswerFields { app: &app, device: &devices[i], nonce: Some(&nonces[i]), expires_s: 100, body: &body };
            let batch = Batch::sign((0..size).map(|i| leaf(fields(i))).collect(), &sk);
            let i = pick % size;
            let proof = batch.proof(i, &id, 100);
            prop_assert_eq!(Proof::parse(&proof.to_string()).unwrap(), proof.clone());
            prop_assert_eq!(batch.proof_header(i, &id, 100), proof.to_string());
            prop_assert_eq!(proof.verify(&keys, fields(i)), Ok(()));
            // Another device's answer, another nonce, another body, another expiry: refused.
            let other = (i + 1) % size;
            if other != i {
                prop_assert!(proof.verify(&keys, AnswerFields { device: &devices[other], ..fields(i) }).is_err(), "refused");
                prop_assert!(proof.verify(&keys, AnswerFields { nonce: Some(&nonces[other]), ..fields(i) }).is_err(), "refused");
            }
            prop_assert!(proof.verify(&keys, AnswerFields { nonce: None, ..fields(i) }).is_err(), "refused");
            prop_assert!(proof.verify(&keys, AnswerFields { body: b"{\"next_check_s\":3600,\"update\":nul}", ..fields(i) }).is_err(), "refused");
            prop_assert!(proof.verify(&keys, AnswerFields { expires_s: 101, ..fields(i) }).is_err(), "refused");
            let moved = Proof { expires_s: 101, ..proof.clone() };
            prop_assert_eq!(moved.verify(&keys, AnswerFields { expires_s: 101, ..fields(i) }), Err(AnswerError::BadSignature));
            // Another place in the batch does not verify with this leaf's path.
            if size > 1 {
                let shifted = Proof { index: (proof.index + 1) % proof.size, ..proof.clone() };
                prop_assert!(shifted.verify(&keys, fields(i)).is_err(), "refused");
            }
        }
    }

    #[test]
    fn an_unpinned_key_or_a_forged_signature_is_refused() {
        let (sk, id, keys) = key();
        let (app, d, n) = (app(), device(1), nonce(1));
        let f = AnswerFields { app: &app, device: &d, nonce: Some(&n), expires_s: 5, body: b"{}" };
        let other = SigningKey::from_bytes(&[3u8; 32]);
        let forged = Batch::sign(vec![leaf(f)], &other).proof(0, &id, 5);
        assert_eq!(forged.verify(&keys, f), Err(AnswerError::BadSignature));
        let stranger = KeyId::parse("answer-0000000000000000").unwrap();
        let unknown = Batch::sign(vec![leaf(f)], &sk).proof(0, &stranger, 5);
        assert_eq!(unknown.verify(&keys, f), Err(AnswerError::UnknownKey(stranger)));
    }

    #[test]
    fn proof_headers_parse_strictly() {
        let (sk, id, _) = key();
        let (app, d) = (app(), device(1));
        let f = AnswerFields { app: &app, device: &d, nonce: None, expires_s: 5, body: b"{}" };
        let good = Batch::sign(vec![leaf(f), leaf(f), leaf(f)], &sk).proof(2, &id, 5).to_string();
        assert!(Proof::parse(&good).is_ok());
        for bad in [
            String::new(),
            good.replace("leaf=2/3", "leaf=3/3"),
            good.replace("leaf=2/3", "leaf=0/0"),
            good.replace("key=", "kee="),
            good.replace("; sig=", "; sig=00"),
            format!("{good}; extra=1"),
            good.replace("path=", "path=0"),
        ] {
            assert!(matches!(Proof::parse(&bad), Err(AnswerError::Malformed(_))), "{bad}");
        }
    }

    #[test]
    fn nonces_are_16_to_64_bytes_of_lowercase_hex() {
        assert!(Nonce::parse(&"ab".repeat(16)).is_ok());
        assert!(Nonce::parse(&"ab".repeat(64)).is_ok());
        for bad in ["ab".repeat(15), "ab".repeat(65), "AB".repeat(16), format!("{}a", "ab".repeat(16))] {
            assert!(Nonce::parse(&bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn the_leaf_is_the_hash_of_the_documented_message(expires_s: u64, nonce_byte: u8, with_nonce: bool, body: Vec<u8>) {
            let (app, d, n) = (app(), device(3), Nonce::from_bytes(&[nonce_byte; 20]).unwrap());
            let f = AnswerFields { app: &app, device: &d, nonce: with_nonce.then_some(&n), expires_s, body: &body };
            let mut h = Sha256Hasher::new();
            h.update([0u8]);
            h.update(leaf_message(f).as_bytes());
            let expected: Node = h.finalize().into();
            prop_assert_eq!(leaf(f), expected);
        }
    }

    #[test]
    fn the_leaf_message_is_exactly_the_documented_lines() {
        let (app, d, n) = (app(), device(1), nonce(1));
        let f = AnswerFields { app: &app, device: &d, nonce: Some(&n), expires_s: 1_800_000_000, body: b"hello" };
        assert_eq!(
            leaf_message(f),
            "halftone-answer-v1\napp=notes\ndevice=device-1\nnonce=01010101010101010101010101010101\n\
             expires=1800000000\nbody-sha256=2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824\n"
        );
    }
}
