//! Fuzz targets for the parsers a device or a client touches: the check-in body, rollout
//! specs with their rules, the signed messages' values (digests, signatures, keys), signed
//! answers' proofs and nonces. Each must answer `Ok` or `Err` for any input, never panic, and
//! what parses must survive a round trip.
//!
//! `cargo test` runs every target briefly on random inputs (bolero's default). To fuzz one
//! for longer with coverage guidance (nightly and cargo-bolero):
//! `cargo bolero test --package halftone-channels --test fuzz check_in_bodies`.

use halftone_channels::wire::{CheckRequest, RolloutSpec};
use halftone_channels::*;

fn device() -> CheckIn {
    let body = br#"{"device_id":"d-1","current_version":"1.0.0","channel":"stable","os":"linux",
        "arch":"x86_64","os_version":"6.8","locale":"zh-CN","traits":{"tier":"gold"}}"#;
    serde_json::from_slice::<CheckRequest>(body).unwrap().into_checkin(Some([10, 0, 0, 1].into()))
}

#[test]
fn check_in_bodies() {
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok(request) = serde_json::from_slice::<CheckRequest>(bytes) {
            let again: CheckRequest = serde_json::from_slice(&serde_json::to_vec(&request).unwrap()).unwrap();
            assert_eq!(again, request);
            let _ = request.into_checkin(None);
        }
    });
}

#[test]
fn rollout_specs_and_rules() {
    let (app, version, channel) = (AppId::parse("notes").unwrap(), Version::new(1, 1, 0), ChannelName::stable());
    let checkin = device();
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok(spec) = serde_json::from_slice::<RolloutSpec>(bytes)
            && let Ok(rollout) = spec.into_rollout(&app, version.clone(), channel.clone())
        {
            let _ = rollout.evaluate(&checkin);
        }
        if let Ok(rule) = serde_json::from_slice::<Rule>(bytes) {
            let _ = rule.matches(&checkin);
        }
    });
}

#[test]
fn signed_message_values() {
    bolero::check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        for back in [
            Sha256::parse(&text).map(|v| v.to_string()),
            Signature::parse(&text).map(|v| v.to_string()),
            PublicKey::parse(&text).map(|v| v.to_string()),
            KeyId::parse(&text).map(|v| v.to_string()),
            Version::parse(&text).map(|v| v.to_string()),
            Nonce::parse(&text).map(|v| v.to_string()),
        ]
        .into_iter()
        .flatten()
        {
            assert!(text.eq_ignore_ascii_case(&back) || Version::parse(&back).is_ok(), "{text:?} -> {back:?}");
        }
    });
}

#[test]
fn answer_proofs() {
    let (app, device) = (AppId::parse("notes").unwrap(), DeviceId::parse("d-1").unwrap());
    let key =
        PublicKey::from_bytes(ed25519_dalek::SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes()).unwrap();
    let keys = TrustedKeys::new([(answer_key_id(&key), key)]).unwrap();
    bolero::check!().for_each(|bytes: &[u8]| {
        let text = String::from_utf8_lossy(bytes);
        if let Ok(proof) = Proof::parse(&text) {
            assert_eq!(Proof::parse(&proof.to_string()).as_ref(), Ok(&proof));
            let fields =
                AnswerFields { app: &app, device: &device, nonce: None, expires_s: proof.expires_s, body: bytes };
            assert!(proof.verify(&keys, fields).is_err(), "random bytes never verify");
        }
    });
}
