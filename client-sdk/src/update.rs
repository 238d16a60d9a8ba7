//! The answer to "is there an update?": [`CheckOutcome`], and [`Update`], an offer the SDK has
//! accepted (newer than the running version and the watermark, for this device's os and
//! arch). An `Update` is built only here, from a server offer that passed those checks.

use std::time::Duration;

use halftone_channels::wire::{CheckResponse, UpdateOffer};
use halftone_channels::{Blob, ChannelName, KeyDocument, Ladder, Sha256, Signatures, Target, Version};
use reqwest::Url;

use crate::delta::OfferedPatch;
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
    pub(crate) signatures: Signatures,
    /// A patch from the running build, when the server offered one (verified only when used).
    pub(crate) patch: Option<OfferedPatch>,
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

    /// The size of the patch from the running build that the server offered, if it offered
    /// one: [`Client::download`](crate::Client::download) then fetches that many bytes instead
    /// of [`size`](Self::size), unless the patch fails (then it fetches the whole file).
    pub fn patch_size(&self) -> Option<u64> {
        self.patch.as_ref().map(|p| p.file.size)
    }
}

/// What an offer is checked against.
pub(crate) struct Device<'a> {
    pub(crate) running: &'a Version,
    pub(crate) target: &'a Target,
    pub(crate) watermark: Option<&'a Watermark>,
    /// The version this device installed and reverted, if any.
    pub(crate) reverted: Option<&'a Version>,
    /// The largest download the app allows.
    pub(crate) max_size: u64,
    /// The release keys the app trusts (the newest key document it verified).
    pub(crate) keys: &'a KeyDocument,
    /// The channel the device is on.
    pub(crate) channel: &'a ChannelName,
    /// The app's channels, by stability.
    pub(crate) ladder: &'a Ladder,
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
        resolve: impl Fn(&str) -> Result<Url, Refusal>,
    ) -> Self {
        if let Some(served) = &response.served_channel {
            // The app's channel list lost this channel: the app should move its users.
            tracing::warn!(channel = %device.channel, served = %served, "the app has no such channel on the server any more; served as on {served}");
        }
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
    resolve: impl Fn(&str) -> Result<Url, Refusal>,
) -> Result<Update, Refusal> {
    let resolve_patch = &resolve;
    let artifact = offer.artifact;
    let target = Target { os: artifact.os, arch: artifact.arch };
    if target != *device.target {
        return Err(Refusal::WrongTarget { offered: target, device: device.target.clone() });
    }
    admit(&offer.version, &artifact.sha256, device.running, device.watermark, device.reverted)?;
    // A device sees its own channel and the more stable ones; never a less stable one's build
    // (a beta prerelease offered to a stable device). A device on a channel the SDK was not
    // told about is not checked.
    let ladder = device.ladder;
    if ladder.contains(device.channel.as_str())
        && ladder.sees(device.channel.as_str(), offer.channel.as_str()) != Some(true)
    {
        return Err(Refusal::WrongChannel { offered: offer.channel, device: device.channel.clone() });
    }
    if artifact.size > device.max_size {
        return Err(Refusal::TooLarge { size: artifact.size, limit: device.max_size });
    }
    let signatures = halftone_channels::wire::signatures(artifact.key_id, artifact.signature, artifact.signatures)
        .map_err(|e| Refusal::BadSignatures { reason: e.to_string() })?;
    // Too few of its signatures could ever verify: refuse before a single byte is downloaded.
    let trusted = device.keys.keys();
    let named = signatures.key_ids().into_iter().filter(|id| trusted.contains(id)).count();
    let needed = device.keys.threshold().get();
    if named < needed {
        let first = &signatures.first().key_id;
        if signatures.key_ids().len() == 1 && !trusted.contains(first) {
            return Err(Refusal::UntrustedKey { key_id: first.clone() });
        }
        return Err(Refusal::TooFewTrustedKeys { named, needed });
    }
    // A patch is an offer within the offer: one that cannot be taken (a URL the app does not
    // allow, malformed signatures) leaves the full file, never refuses the update.
    let patch = artifact.patch.and_then(|p| {
        let signatures = halftone_channels::wire::signatures(p.key_id, p.signature, p.signatures).ok()?;
        let url = match resolve_patch(&p.url) {
            Ok(url) => url,
            Err(refusal) => {
                tracing::warn!(%refusal, "the offered patch cannot be downloaded from its URL; the full file will be");
                return None;
            }
        };
        Some(OfferedPatch {
            url,
            format: p.format,
            base: Blob { sha256: p.base_sha256, size: p.base_size },
            file: Blob { sha256: p.sha256, size: p.size },
            signatures,
        })
    });
    Ok(Update {
        patch,
        url: resolve(&artifact.url)?,
        version: offer.version,
        channel: offer.channel,
        notes: offer.notes,
        critical: offer.critical,
        target,
        sha256: artifact.sha256,
        size: artifact.size,
        signatures,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::wire::ArtifactOffer;
    use halftone_channels::{KeyId, Signature, Threshold, TrustedKeys};

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
                signatures: vec![],
                patch: None,
            },
            report_token: None,
        }
    }

    /// Version 1 of the app's keys: `ids` (each with some public key), `threshold` of them.
    fn document(ids: &[&str], threshold: u64) -> KeyDocument {
        let keys = ids
            .iter()
            .enumerate()
            .map(|(n, id)| (KeyId::parse(id).unwrap(), crate::test_support::signing_key(n as u8 + 1).public_key()));
        let app = halftone_channels::AppId::parse("notes").unwrap();
        KeyDocument::new(app, 1, Threshold::new(threshold).unwrap(), TrustedKeys::new(keys).unwrap()).unwrap()
    }

    fn keys(id: &str) -> KeyDocument {
        document(&[id], 1)
    }

    /// A device on linux/x86_64 running 1.0.0: what `accept` checks an offer against.
    struct Fixture {
        running: Version,
        target: Target,
        keys: KeyDocument,
        channel: ChannelName,
        ladder: Ladder,
        max_size: u64,
    }

    impl Fixture {
        /// On beta, trusting key `k`, taking up to 5 bytes, with the built-in channels.
        fn new() -> Self {
            Fixture {
                running: Version::new(1, 0, 0),
                target: target("linux", "x86_64"),
                keys: keys("k"),
                channel: ChannelName::beta(),
                ladder: Ladder::default(),
                max_size: 5,
            }
        }

        fn accept(&self, offer: UpdateOffer) -> Result<Update, Refusal> {
            let device = Device {
                running: &self.running,
                target: &self.target,
                watermark: None,
                reverted: None,
                max_size: self.max_size,
                keys: &self.keys,
                channel: &self.channel,
                ladder: &self.ladder,
            };
            accept(offer, &device, |u| Ok(Url::parse(&format!("http://h{u}")).unwrap()))
        }
    }

    fn check(version: &str, os: &str) -> Result<Update, Refusal> {
        Fixture::new().accept(offer(version, os))
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
        let small = Fixture { max_size: 4, ..Fixture::new() };
        assert_eq!(small.accept(offer("1.1.0", "linux")), Err(Refusal::TooLarge { size: 5, limit: 4 }));
    }

    #[test]
    fn a_device_takes_builds_of_its_channel_or_a_more_stable_one_only() {
        let ladder = Ladder::with_custom([(ChannelName::parse("canary").unwrap(), 400)]).unwrap();
        let on = |device: &str, offered: &str| {
            let fixture =
                Fixture { channel: ChannelName::parse(device).unwrap(), ladder: ladder.clone(), ..Fixture::new() };
            let mut o = offer("1.1.0", "linux");
            o.channel = ChannelName::parse(offered).unwrap();
            fixture.accept(o).map(|_| ())
        };
        assert_eq!(on("beta", "stable"), Ok(()));
        assert_eq!(on("beta", "beta"), Ok(()));
        assert_eq!(on("canary", "unstable"), Ok(()));
        for (device, offered) in [("stable", "beta"), ("beta", "canary"), ("stable", "nightly")] {
            let refused = on(device, offered);
            assert!(matches!(refused, Err(Refusal::WrongChannel { .. })), "{device} offered {offered}: {refused:?}");
        }
        assert_eq!(on("nightly", "beta"), Ok(()), "a channel the app did not declare is not checked");
    }

    #[test]
    fn refuses_a_build_signed_by_a_key_the_app_does_not_trust_before_downloading() {
        let untrusting = Fixture { keys: keys("other"), ..Fixture::new() };
        let refused = untrusting.accept(offer("1.1.0", "linux"));
        assert_eq!(refused, Err(Refusal::UntrustedKey { key_id: KeyId::parse("k").unwrap() }));
    }

    #[test]
    fn with_a_threshold_an_offer_must_name_enough_distinct_trusted_keys() {
        let two = document(&["k", "m", "n"], 2);
        let fixture = Fixture { keys: two, ..Fixture::new() };
        let signed_by = |ids: &[&str]| {
            let mut o = offer("1.1.0", "linux");
            // Distinct signature bytes, so that no entry is a repeat of another (repeats are
            // dropped by the wire rule) and a key named twice is counted, if at all, by id.
            o.artifact.signatures = ids
                .iter()
                .enumerate()
                .map(|(n, id)| halftone_channels::wire::SignatureSpec {
                    key_id: KeyId::parse(id).unwrap(),
                    signature: Signature::from_bytes([n as u8 + 1; 64]),
                })
                .collect();
            fixture.accept(o).map(|_| ())
        };
        // The offer's own `key_id` is k; `signatures` adds to it.
        assert_eq!(signed_by(&[]), Err(Refusal::TooFewTrustedKeys { named: 1, needed: 2 }));
        assert_eq!(signed_by(&["k", "k"]), Err(Refusal::TooFewTrustedKeys { named: 1, needed: 2 }));
        assert_eq!(signed_by(&["k", "stranger"]), Err(Refusal::TooFewTrustedKeys { named: 1, needed: 2 }));
        assert_eq!(signed_by(&["k", "m"]), Ok(()));
    }
}
