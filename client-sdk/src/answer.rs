//! Checking signed check-in answers: the app pins the server's answer key(s); every check-in
//! then sends a fresh nonce, and its answer counts only with a proof (`Halftone-Answer-Proof`)
//! that binds these exact bytes to this app, this device, this nonce and an expiry that has not
//! passed. Anything else is [`Error::Unverified`]: the update state could not be determined,
//! which is never reported as "up to date".
//!
//! The answer key is not a release key: whatever an answer offers is still checked against
//! the release keys before anything is installed, and only a verified build raises the
//! watermark. A stolen answer key can at most withhold updates until its answers expire.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use halftone_channels::{AnswerError, AnswerFields, AppId, DeviceId, KeyId, Nonce, Proof, TrustedKeys};

use crate::Error;

/// The answer keys an app pins, and how far the device's clock may be behind the server's.
#[derive(Debug, Clone)]
pub(crate) struct AnswerCheck {
    keys: TrustedKeys,
    /// The key the server is asked to sign with: the newest one pinned.
    preferred: KeyId,
    skew: Duration,
}

/// Why an answer was not believed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unverified {
    /// The answer came without a proof (an old or impostor server, or a proxy that strips it).
    #[error("the answer carries no proof")]
    Missing,
    /// The proof is malformed, signed by a key the app does not pin, or does not verify for
    /// this app, device, nonce and body (changed, replayed, or meant for another device).
    #[error(transparent)]
    Proof(#[from] AnswerError),
    /// The proof's expiry has passed (by the device's clock, with the allowed skew).
    #[error("the answer expired at {expires_s} (Unix seconds); it is now {now_s}")]
    Expired {
        /// When it expired.
        expires_s: u64,
        /// The device's clock.
        now_s: u64,
    },
}

impl AnswerCheck {
    /// Pins `keys`, preferring `preferred` (one of them); the clock may be `skew` behind.
    pub(crate) fn new(keys: TrustedKeys, preferred: KeyId, skew: Duration) -> Self {
        AnswerCheck { keys, preferred, skew }
    }

    /// The key to ask the server to sign with.
    pub(crate) fn preferred(&self) -> &KeyId {
        &self.preferred
    }

    /// A fresh random nonce for one check-in.
    pub(crate) fn nonce() -> Nonce {
        Nonce::from_bytes(&rand::random::<[u8; 16]>()).expect("16 bytes make a nonce")
    }

    /// Checks `body` against the proof header `proof`, for this app, device and nonce.
    pub(crate) fn verify(
        &self,
        app: &AppId,
        device: &DeviceId,
        nonce: &Nonce,
        body: &[u8],
        proof: Option<&str>,
    ) -> Result<(), Error> {
        let now_s = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.verify_at(app, device, nonce, body, proof, now_s).map_err(Error::Unverified)
    }

    fn verify_at(
        &self,
        app: &AppId,
        device: &DeviceId,
        nonce: &Nonce,
        body: &[u8],
        proof: Option<&str>,
        now_s: u64,
    ) -> Result<(), Unverified> {
        let proof = Proof::parse(proof.ok_or(Unverified::Missing)?)?;
        let fields = AnswerFields { app, device, nonce: Some(nonce), expires_s: proof.expires_s, body };
        proof.verify(&self.keys, fields)?;
        if proof.expires_s.saturating_add(self.skew.as_secs()) < now_s {
            return Err(Unverified::Expired { expires_s: proof.expires_s, now_s });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use halftone_channels::{Batch, PublicKey, answer_key_id, leaf};

    fn setup() -> (SigningKey, AnswerCheck, AppId, DeviceId, Nonce) {
        let sk = SigningKey::from_bytes(&[5u8; 32]);
        let pk = PublicKey::from_bytes(sk.verifying_key().to_bytes()).unwrap();
        let id = answer_key_id(&pk);
        let check = AnswerCheck::new(TrustedKeys::new([(id.clone(), pk)]).unwrap(), id, Duration::from_secs(60));
        (sk, check, AppId::parse("notes").unwrap(), DeviceId::parse("dev-1").unwrap(), AnswerCheck::nonce())
    }

    fn proof(sk: &SigningKey, check: &AnswerCheck, f: AnswerFields<'_>) -> String {
        Batch::sign(vec![leaf(f)], sk).proof(0, check.preferred(), f.expires_s).to_string()
    }

    #[test]
    fn a_fresh_answer_for_this_nonce_passes_and_an_expired_or_other_one_does_not() {
        let (sk, check, app, device, nonce) = setup();
        let body = b"{\"next_check_s\":3600,\"update\":null}";
        let f = AnswerFields { app: &app, device: &device, nonce: Some(&nonce), expires_s: 1000, body };
        let header = proof(&sk, &check, f);
        assert_eq!(check.verify_at(&app, &device, &nonce, body, Some(&header), 1000), Ok(()));
        assert_eq!(check.verify_at(&app, &device, &nonce, body, Some(&header), 1060), Ok(()), "within the skew");
        assert_eq!(
            check.verify_at(&app, &device, &nonce, body, Some(&header), 1061),
            Err(Unverified::Expired { expires_s: 1000, now_s: 1061 })
        );
        let other = AnswerCheck::nonce();
        assert!(matches!(
            check.verify_at(&app, &device, &other, body, Some(&header), 1000),
            Err(Unverified::Proof(AnswerError::BadSignature))
        ));
        assert_eq!(check.verify_at(&app, &device, &nonce, body, None, 1000), Err(Unverified::Missing));
    }
}
