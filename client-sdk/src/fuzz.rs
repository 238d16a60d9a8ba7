//! Fuzz targets for what the SDK parses from the server and its own state dir: check-in
//! answers (then accepted or refused as offers), answer proofs, and the watermark file. Each
//! must answer `Ok` or `Err` for any input, never panic. `cargo test` runs them briefly on
//! random inputs; `cargo bolero test --package halftone-client fuzz::` runs one longer
//! (nightly and cargo-bolero).

use std::time::Duration;

use ed25519_dalek::SigningKey;
use halftone_channels::wire::CheckResponse;
use halftone_channels::{
    AppId, ChannelName, DeviceId, KeyDocument, KeyId, Ladder, PublicKey, Target, Threshold, TrustedKeys, Version,
    answer_key_id,
};
use reqwest::Url;

use crate::answer::AnswerCheck;
use crate::update::{Checked, Device};
use crate::watermark::Watermark;

#[test]
fn check_in_answers() {
    let running = Version::new(1, 0, 0);
    let target = Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
    let key = PublicKey::from_bytes(SigningKey::from_bytes(&[1; 32]).verifying_key().to_bytes()).unwrap();
    let trusted = TrustedKeys::new([(KeyId::parse("k1").unwrap(), key)]).unwrap();
    let keys = KeyDocument::new(AppId::parse("notes").unwrap(), 1, Threshold::ONE, trusted).unwrap();
    let (channel, ladder) = (ChannelName::stable(), Ladder::default());
    bolero::check!().for_each(|bytes: &[u8]| {
        let Ok(response) = serde_json::from_slice::<CheckResponse>(bytes) else { return };
        let device = Device {
            running: &running,
            target: &target,
            watermark: None,
            reverted: None,
            max_size: 1 << 20,
            keys: &keys,
            channel: &channel,
            ladder: &ladder,
        };
        let checked = Checked::from_response(response, &device, |u| {
            Url::parse(&format!("http://h{u}")).map_err(|_| crate::Refusal::BadUrl { url: u.into(), reason: "test" })
        });
        if let Ok(crate::CheckOutcome::Available(update)) = checked.outcome {
            assert!(*update.version() > running, "never an offer at or below the running version");
        }
    });
}

#[test]
fn answer_proofs() {
    let key = PublicKey::from_bytes(SigningKey::from_bytes(&[2; 32]).verifying_key().to_bytes()).unwrap();
    let id = answer_key_id(&key);
    let check = AnswerCheck::new(TrustedKeys::new([(id.clone(), key)]).unwrap(), id, Duration::from_secs(60));
    let (app, device, nonce) = (AppId::parse("notes").unwrap(), DeviceId::parse("d").unwrap(), AnswerCheck::nonce());
    bolero::check!().for_each(|bytes: &[u8]| {
        let header = String::from_utf8_lossy(bytes);
        assert!(check.verify(&app, &device, &nonce, bytes, Some(&header)).is_err(), "random bytes never verify");
    });
}

#[test]
fn watermark_files() {
    bolero::check!().for_each(|bytes: &[u8]| {
        if let Ok(w) = Watermark::decode(&String::from_utf8_lossy(bytes)) {
            assert_eq!(Watermark::decode(&w.encode()), Ok(w));
        }
    });
}
