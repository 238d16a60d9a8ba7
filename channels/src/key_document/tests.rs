use ed25519_dalek::{Signer, SigningKey};
use proptest::prelude::*;

use super::*;
use crate::{KeyId, KeySignature, PublicKey, Signature};

/// The signing key of seed `[n; 32]` and its public half under its default id.
fn key(n: u8) -> (SigningKey, KeyId, PublicKey) {
    let sk = SigningKey::from_bytes(&[n; 32]);
    let pk = PublicKey::from_bytes(sk.verifying_key().to_bytes()).unwrap();
    (sk, pk.fingerprint(), pk)
}

fn app(s: &str) -> AppId {
    AppId::parse(s).unwrap()
}

/// The document of `app` at `version` trusting the keys of seeds `seeds`.
fn doc(app_id: &str, version: u64, threshold: u64, seeds: &[u8]) -> KeyDocument {
    let keys = TrustedKeys::new(seeds.iter().map(|n| key(*n)).map(|(_, id, pk)| (id, pk))).unwrap();
    KeyDocument::new(app(app_id), version, Threshold::new(threshold).unwrap(), keys).unwrap()
}

/// `document` signed by the keys of `seeds`, in order (repeats allowed).
fn signed(document: KeyDocument, seeds: &[u8]) -> SignedKeyDocument {
    let message = document.message();
    let list = seeds
        .iter()
        .map(|n| {
            let (sk, key_id, _) = key(*n);
            KeySignature { key_id, signature: Signature::from_bytes(sk.sign(message.as_bytes()).to_bytes()) }
        })
        .collect();
    SignedKeyDocument { document, signatures: Signatures::new(list).unwrap() }
}

fn chain(threshold: u64, seeds: &[u8]) -> KeyChain {
    KeyChain::trust(doc("notes", 1, threshold, seeds))
}

#[test]
fn the_message_is_the_documented_lines_with_keys_sorted_by_id() {
    let d = doc("notes", 2, 1, &[8, 7]);
    let (_, a, pa) = key(7);
    let (_, b, pb) = key(8);
    let (first, second) = if a < b { ((a, pa), (b, pb)) } else { ((b, pb), (a, pa)) };
    assert_eq!(
        d.message(),
        format!(
            "halftone-keys-v1\napp=notes\nversion=2\nthreshold=1\nkey={} {}\nkey={} {}\n",
            first.0, first.1, second.0, second.1
        )
    );
}

#[test]
fn the_vector_published_in_the_api_doc_holds() {
    use crate::test_support::doc_section;
    let section = doc_section("### Key document: worked example");
    let d = doc("notes", 2, 1, &[8]);
    let message = d.message();
    let block = section.split("```text\n").nth(1).unwrap().split("```").next().unwrap();
    assert_eq!(message, block, "the doc shows the message");
    assert!(section.contains(&format!("The message is {} bytes", message.len())));
    let s = signed(d, &[7, 8]);
    for sig in s.signatures.iter() {
        let line = format!("| `{}` | `{}` |", sig.key_id, sig.signature);
        assert!(section.contains(&line), "the doc shows {line}");
    }
    assert!(chain(1, &[7]).advance(&s).is_ok());
}

#[test]
fn a_rotation_from_a_to_b_chains_and_then_trusts_only_b() {
    let c = chain(1, &[7]);
    let next = c.advance(&signed(doc("notes", 2, 1, &[8]), &[7, 8])).unwrap();
    assert_eq!(next.current().version(), 2);
    let (_, a, _) = key(7);
    let (_, b, _) = key(8);
    assert!(next.current().keys().contains(&b) && !next.current().keys().contains(&a));
    // Rotating back needs B now; A alone cannot.
    let back = doc("notes", 3, 1, &[7]);
    assert!(matches!(
        next.advance(&signed(back.clone(), &[7])),
        Err(KeyChainError::UnderSigned { version: 3, by: Signers::Previous, .. })
    ));
    assert!(next.advance(&signed(back, &[8, 7])).is_ok());
}

#[test]
fn refusals() {
    let c = chain(1, &[7]);
    let check = |d: SignedKeyDocument, expected: KeyChainError| assert_eq!(c.advance(&d), Err(expected));
    check(signed(doc("notes", 3, 1, &[8]), &[7, 8]), KeyChainError::Gap { trusted: 1, found: 3 });
    check(signed(doc("notes", 1, 1, &[8]), &[7, 8]), KeyChainError::NotNewer { trusted: 1, found: 1 });
    check(
        signed(doc("other", 2, 1, &[8]), &[7, 8]),
        KeyChainError::OtherApp { expected: app("notes"), found: app("other") },
    );
    // Signed only by the new key, or only by the old one.
    let (_, a, _) = key(7);
    let (_, b, _) = key(8);
    check(
        signed(doc("notes", 2, 1, &[8]), &[8]),
        KeyChainError::UnderSigned { version: 2, by: Signers::Previous, source: SignatureError::UnknownKey(b) },
    );
    check(
        signed(doc("notes", 2, 1, &[8]), &[7]),
        KeyChainError::UnderSigned { version: 2, by: Signers::Own, source: SignatureError::UnknownKey(a) },
    );
    // A lower version than a chain already at 3.
    let at3 = c.walk(&[signed(doc("notes", 2, 1, &[8]), &[7, 8]), signed(doc("notes", 3, 1, &[9]), &[8, 9])]).unwrap();
    assert_eq!(
        at3.advance(&signed(doc("notes", 2, 1, &[9]), &[8, 9])),
        Err(KeyChainError::NotNewer { trusted: 3, found: 2 })
    );
}

#[test]
fn the_same_key_twice_counts_once_and_unknown_keys_do_not_count() {
    let c = chain(2, &[7, 8]);
    let next = doc("notes", 2, 1, &[9]);
    let too_few = |valid| KeyChainError::UnderSigned {
        version: 2,
        by: Signers::Previous,
        source: SignatureError::TooFew { valid, needed: 2 },
    };
    assert_eq!(c.advance(&signed(next.clone(), &[7, 7, 9])), Err(too_few(1)));
    assert_eq!(c.advance(&signed(next.clone(), &[7, 9, 10])), Err(too_few(1)));
    assert!(c.advance(&signed(next, &[7, 8, 9])).is_ok());
}

#[test]
fn a_signature_over_other_bytes_does_not_count() {
    let c = chain(1, &[7]);
    let mut s = signed(doc("notes", 2, 1, &[8]), &[7, 8]);
    // The same signatures on a document that lowers nothing but names another key.
    s.document = doc("notes", 2, 1, &[9]);
    assert!(matches!(c.advance(&s), Err(KeyChainError::UnderSigned { by: Signers::Previous, .. })));
}

#[test]
fn documents_that_cannot_exist() {
    assert!(Threshold::new(0).is_err());
    assert!(Threshold::new(MAX_TRUSTED_KEYS as u64 + 1).is_err());
    assert!(Threshold::new(256).is_err());
    let keys = doc("notes", 1, 1, &[7, 8]).keys().clone();
    let e = KeyDocument::new(app("notes"), 1, Threshold::new(3).unwrap(), keys.clone()).unwrap_err();
    assert!(e.to_string().contains("threshold 3 is more than its 2 keys"), "{e}");
    assert!(KeyDocument::new(app("notes"), 0, Threshold::ONE, keys).is_err());
    assert!(KeyDocument::new(app("notes"), 1, Threshold::ONE, TrustedKeys::default()).is_err());
}

#[test]
fn a_walk_that_fails_part_way_changes_nothing() {
    let c = chain(1, &[7]);
    let docs = [signed(doc("notes", 2, 1, &[8]), &[7, 8]), signed(doc("notes", 4, 1, &[9]), &[8, 9])];
    assert_eq!(c.walk(&docs), Err(KeyChainError::Gap { trusted: 2, found: 4 }));
    assert_eq!(c.current().version(), 1);
    assert_eq!(c.walk(&docs[..1]).unwrap().current().version(), 2);
    assert_eq!(c.walk([]).unwrap(), c);
}

proptest! {
    /// A step chains exactly when enough distinct old keys and enough distinct new keys
    /// signed, whatever else signed and however often.
    #[test]
    fn a_step_chains_iff_both_thresholds_are_met(
        old_n in 1u8..5, old_k in 1u64..5, new_n in 1u8..5, new_k in 1u64..5,
        signers in proptest::collection::vec(0u8..12, 1..12),
    ) {
        let old_k = old_k.min(u64::from(old_n));
        let new_k = new_k.min(u64::from(new_n));
        // Old keys are seeds 1..=old_n, new keys 5..5+new_n, seeds 10.. are strangers.
        let old_seeds: Vec<u8> = (1..=old_n).collect();
        let new_seeds: Vec<u8> = (5..5 + new_n).collect();
        let signer_seeds: Vec<u8> = signers.iter().map(|s| s + 1).collect();
        let c = chain(old_k, &old_seeds);
        let result = c.advance(&signed(doc("notes", 2, new_k, &new_seeds), &signer_seeds));
        let distinct = |keys: &[u8]| {
            keys.iter().filter(|k| signer_seeds.contains(k)).count() as u64
        };
        let expected = distinct(&old_seeds) >= old_k && distinct(&new_seeds) >= new_k;
        prop_assert_eq!(result.is_ok(), expected, "{:?}", result);
    }

    /// No document at or below the trusted version, or beyond the next, ever chains.
    #[test]
    fn only_the_next_version_chains(trusted in 1u64..1000, found in 1u64..1000) {
        let c = KeyChain::trust(doc("notes", trusted, 1, &[7]));
        let result = c.advance(&signed(doc("notes", found, 1, &[7]), &[7]));
        prop_assert_eq!(result.is_ok(), found == trusted + 1);
    }

    /// A threshold is 1..=keys, never 0 and never more than the keys.
    #[test]
    fn thresholds_fit_the_keys(n in 1u8..6, k in 0u64..300) {
        let keys = doc("notes", 1, 1, &(1..=n).collect::<Vec<_>>()).keys().clone();
        let built = Threshold::new(k).and_then(|t| KeyDocument::new(app("notes"), 1, t, keys));
        prop_assert_eq!(built.is_ok(), k >= 1 && k <= u64::from(n));
    }
}
