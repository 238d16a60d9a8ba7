//! The answer to "is there an update?": [`CheckOutcome`], and [`Update`], an offer the SDK has
//! accepted (newer than the running version and the watermark, for this device's os and
//! arch). An `Update` is built only here, from a server offer that passed those checks.

use std::time::Duration;

use halftone_channels::wire::{CheckResponse, UpdateOffer};
use halftone_channels::{ChannelName, KeyId, Sha256, Signature, Target, TrustedKeys, Version};
use reqwest::Url;

use crate::watermark::{Watermark, admit};
use crate::{Error, Refusal};

/// Whether an update is available.
#[derive(Debug, Clone, PartialEq, Eq)]
// Made once per check and matched at once; a box would only make matching clumsier.
#[allow(clippy::large_enum_variant)]
pub enum CheckOutcome {
    /// The device runs the newest version it is offered.
    UpToDate,
    /// A newer version is offered; pass it to [`Client::download`](crate::Client::download).
    Available(Update),
}

/// An update offered by the server and accepted by the SDK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    version: Version,
    channel: ChannelName,
    notes: String,
    critical: bool,
    target: Target,
    pub(crate) url: Url,
    pub(crate) sha256: Sha256,
    pub(crate) size: u64,
    pub(crate) signature: Signature,
    pub(crate) key_id: KeyId,
}

impl Update {
    /// The offered version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The channel whose rollout offered it (the user's channel or a more stable one).
    pub fn channel(&self) -> &ChannelName {
        &self.channel
    }

    /// The release notes.
    pub fn notes(&self) -> &str {
        &self.notes
    }

    /// True when the update must be taken: this release, or one it skips over, is critical.
    pub fn is_critical(&self) -> bool {
        self.critical
    }

    /// The download size in bytes, as signed.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The SHA-256 of the build, as signed.
    pub fn sha256(&self) -> &Sha256 {
        &self.sha256
    }

    /// The os and arch the build is for (always the device's).
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Where the build is downloaded from.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

/// What an offer is checked against.
pub(crate) struct Device<'a> {
    pub(crate) running: &'a Version,
    pub(crate) target: &'a Target,
    pub(crate) watermark: Option<&'a Watermark>,
    /// The largest download the app allows.
    pub(crate) max_size: u64,
    /// The release keys the app trusts.
    pub(crate) keys: &'a TrustedKeys,
}

/// A check-in answer as the SDK sees it: the validated outcome, and when to ask again.
#[derive(Debug)]
pub(crate) struct Checked {
    pub(crate) outcome: Result<CheckOutcome, Error>,
    pub(crate) next_check: Duration,
}

impl Checked {
    /// Validates the server's answer for `device`; `resolve` makes the artifact URL absolute.
    pub(crate) fn from_response(
        response: CheckResponse,
        device: &Device<'_>,
        resolve: impl FnOnce(&str) -> Result<Url, Refusal>,
    ) -> Self {
        let outcome = match response.update {
            None => Ok(CheckOutcome::UpToDate),
            Some(offer) => accept(offer, device, resolve).map(CheckOutcome::Available).map_err(Error::Refused),
        };
        Checked { outcome, next_check: Duration::from_secs(response.next_check_s.into()) }
    }
}

/// Accepts an offer only if it is for this device's target, newer than the running version,
/// not below the watermark, and not larger than the app allows. The server never offers anything else; the SDK checks anyway,
/// because a compromised or misconfigured server must not be able to downgrade a device.
pub(crate) fn accept(
    offer: UpdateOffer,
    device: &Device<'_>,
    resolve: impl FnOnce(&str) -> Result<Url, Refusal>,
) -> Result<Update, Refusal> {
    let artifact = offer.artifact;
    let target = Target { os: artifact.os, arch: artifact.arch };
    if target != *device.target {
        return Err(Refusal::WrongTarget { offered: target, device: device.target.clone() });
    }
    admit(&offer.version, &artifact.sha256, device.running, device.watermark)?;
    if artifact.size > device.max_size {
        return Err(Refusal::TooLarge { size: artifact.size, limit: device.max_size });
    }
    // Its signature could never verify: refuse before a single byte is downloaded.
    if !device.keys.contains(&artifact.key_id) {
        return Err(Refusal::UntrustedKey { key_id: artifact.key_id });
    }
    Ok(Update {
        url: resolve(&artifact.url)?,
        version: offer.version,
        channel: offer.channel,
        notes: offer.notes,
        critical: offer.critical,
        target,
        sha256: artifact.sha256,
        size: artifact.size,
        signature: artifact.signature,
        key_id: artifact.key_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::wire::ArtifactOffer;

    fn target(os: &str, arch: &str) -> Target {
        Target { os: os.parse().unwrap(), arch: arch.parse().unwrap() }
    }

    fn offer(version: &str, os: &str) -> UpdateOffer {
        UpdateOffer {
            version: version.parse().unwrap(),
            channel: ChannelName::beta(),
            notes: "Faster sync.".into(),
            critical: true,
            artifact: ArtifactOffer {
                url: "/v1/artifacts/x".into(),
                os: os.parse().unwrap(),
                arch: "x86_64".parse().unwrap(),
                sha256: Sha256::digest(b"build"),
                size: 5,
                signature: Signature::from_bytes([0; 64]),
                key_id: KeyId::parse("k").unwrap(),
            },
            report_token: None,
        }
    }

    fn keys(id: &str) -> TrustedKeys {
        let public = crate::test_support::signing_key(1).public_key();
        TrustedKeys::new([(KeyId::parse(id).unwrap(), public)]).unwrap()
    }

    fn check(version: &str, os: &str) -> Result<Update, Refusal> {
        let running = Version::new(1, 0, 0);
        let keys = keys("k");
        let device =
            Device { running: &running, target: &target("linux", "x86_64"), watermark: None, max_size: 5, keys: &keys };
        accept(offer(version, os), &device, |u| Ok(Url::parse(&format!("http://h{u}")).unwrap()))
    }

    #[test]
    fn accepts_a_newer_build_for_this_device() {
        let u = check("1.1.0", "linux").unwrap();
        assert_eq!((u.version().to_string(), u.size(), u.is_critical()), ("1.1.0".into(), 5, true));
        assert_eq!(
            (u.channel(), u.notes(), u.url()),
            (&ChannelName::beta(), "Faster sync.", "http://h/v1/artifacts/x")
        );
    }

    #[test]
    fn refuses_other_targets_and_old_versions() {
        assert!(matches!(check("1.1.0", "windows"), Err(Refusal::WrongTarget { .. })));
        assert!(matches!(check("1.0.0", "linux"), Err(Refusal::NotNewer { .. })));
        assert!(matches!(check("0.9.9", "linux"), Err(Refusal::NotNewer { .. })));
        assert!(matches!(check("1.0.0-rc.1", "linux"), Err(Refusal::NotNewer { .. })));
        let running = Version::new(1, 0, 0);
        let keys = keys("k");
        let device =
            Device { running: &running, target: &target("linux", "x86_64"), watermark: None, max_size: 4, keys: &keys };
        let big = accept(offer("1.1.0", "linux"), &device, |_| unreachable!());
        assert_eq!(big, Err(Refusal::TooLarge { size: 5, limit: 4 }));
    }

    #[test]
    fn refuses_a_build_signed_by_a_key_the_app_does_not_trust_before_downloading() {
        let running = Version::new(1, 0, 0);
        let other = keys("other");
        let device = Device {
            running: &running,
            target: &target("linux", "x86_64"),
            watermark: None,
            max_size: 5,
            keys: &other,
        };
        let refused =
            accept(offer("1.1.0", "linux"), &device, |_| unreachable!("no URL is resolved, nothing downloads"));
        assert_eq!(refused, Err(Refusal::UntrustedKey { key_id: KeyId::parse("k").unwrap() }));
    }
}
