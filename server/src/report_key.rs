//! [`ReportKey`]: makes and checks the report tokens of check-in answers, so that install
//! feedback counts only for (app, device, version, channel) a check-in was answered for.
//!
//! A token is HMAC-SHA256 (the `hmac` crate over the workspace's `sha2`) under the server's
//! report key (secret `report-key` in the store, made at first start, shared by every
//! replica), truncated to its first 16 bytes. The message is a version tag and the four fields,
//! each followed by a NUL byte; none of them can contain one (they are parsed values without
//! control characters), so two different tuples never make the same message. Making one costs
//! a clone of the keyed state (the key's pads are absorbed once, at start) and about three
//! SHA-256 compressions (two for a typical message, one for the outer hash): about a
//! microsecond, not measured separately. It allocates nothing (the version is formatted
//! straight into the MAC, the token is 16 bytes on the stack, written as hex by `collect_str`).

use std::fmt::Write as _;

use halftone_channels::wire::{Event, Rejections};
use halftone_channels::{AppId, ChannelName, DeviceId, REPORT_TOKEN_BYTES, ReportToken, Version};
use hmac::{Hmac, KeyInit as _, Mac as _};
use sha2::Sha256;

use crate::store::{ReportKeyRecord, Store};

/// The domain tag that starts every token message (a new layout gets a new tag).
const TAG: &[u8] = b"halftone-report-token-v1\0";

/// What a token is for.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The app.
    pub app: &'a AppId,
    /// The device.
    pub device: &'a DeviceId,
    /// The release the events are about.
    pub version: &'a Version,
    /// The device's own channel (the one events name).
    pub channel: &'a ChannelName,
}

/// The server's report-token key, keyed once (see the module documentation).
pub struct ReportKey {
    /// The MAC with the key already absorbed: each token clones it.
    keyed: Hmac<Sha256>,
}

impl ReportKey {
    /// Loads the report key from the store, making it first if there is none (another
    /// replica may win that race: then its key is read and used).
    pub async fn start(store: &Store, now_ms: u64) -> anyhow::Result<Self> {
        let record = match store.report_key().await? {
            Some(r) => r,
            None => {
                store.put_first_report_key(&ReportKeyRecord::new(now_ms)).await?;
                store.report_key().await?.ok_or_else(|| anyhow::anyhow!("the report key vanished"))?
            }
        };
        Ok(Self::from_key(&record.key))
    }

    /// A key from its bytes.
    pub fn from_key(key: &[u8; 32]) -> Self {
        ReportKey { keyed: Hmac::new_from_slice(key).expect("HMAC takes keys of any length") }
    }

    fn mac(&self, s: Subject<'_>) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        mac.update(TAG);
        for field in [s.app.as_str(), s.device.as_str()] {
            mac.update(field.as_bytes());
            mac.update(b"\0");
        }
        write!(Feed(&mut mac), "{}", s.version).expect("formatting into a MAC cannot fail");
        mac.update(b"\0");
        mac.update(s.channel.as_str().as_bytes());
        mac.update(b"\0");
        mac
    }

    /// The token for `subject`.
    pub fn token(&self, subject: Subject<'_>) -> ReportToken {
        let tag = self.mac(subject).finalize().into_bytes();
        let mut out = [0u8; REPORT_TOKEN_BYTES];
        out.copy_from_slice(&tag[..REPORT_TOKEN_BYTES]);
        ReportToken::from_bytes(out)
    }

    /// True when `token` is the one for `subject`, compared in constant time.
    pub fn verify(&self, subject: Subject<'_>, token: &ReportToken) -> bool {
        self.mac(subject).verify_truncated_left(token.as_bytes()).is_ok()
    }
}

impl ReportKey {
    /// Keeps the events of `app` whose token is the one for their device, version and
    /// channel, and counts the others by reason: they are answered, never counted.
    pub fn screen(&self, app: &AppId, events: Vec<Event>) -> (Vec<Event>, Rejections) {
        let mut rejections = Rejections::default();
        let kept = events
            .into_iter()
            .filter(|e| {
                let subject = Subject { app, device: &e.device_id, version: &e.version, channel: &e.channel };
                match &e.token {
                    None => rejections.missing_token += 1,
                    Some(t) if !self.verify(subject, t) => rejections.invalid_token += 1,
                    Some(_) => return true,
                }
                false
            })
            .collect();
        (kept, rejections)
    }
}

/// Formatting straight into the MAC.
struct Feed<'a>(&'a mut Hmac<Sha256>);

impl std::fmt::Write for Feed<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn subject<'a>(
        app: &'a AppId,
        device: &'a DeviceId,
        version: &'a Version,
        channel: &'a ChannelName,
    ) -> Subject<'a> {
        Subject { app, device, version, channel }
    }

    #[test]
    fn a_token_is_hmac_sha256_of_the_documented_message_truncated() {
        let key = ReportKey::from_key(&[7; 32]);
        let (app, device, version, channel) = (
            "notes".parse().unwrap(),
            DeviceId::parse("d-1").unwrap(),
            "1.2.0-beta.1".parse().unwrap(),
            "beta".parse().unwrap(),
        );
        let got = key.token(subject(&app, &device, &version, &channel));
        let mut mac = Hmac::<Sha256>::new_from_slice(&[7; 32]).unwrap();
        mac.update(b"halftone-report-token-v1\0notes\0d-1\x001.2.0-beta.1\0beta\0");
        let full = mac.finalize().into_bytes();
        assert_eq!(got.as_bytes()[..], full[..16]);
    }

    #[test]
    fn a_token_counts_only_for_its_own_app_device_version_channel_and_key() {
        let key = ReportKey::from_key(&[1; 32]);
        let apps: [AppId; 2] = ["notes".parse().unwrap(), "mail".parse().unwrap()];
        let devices = [DeviceId::parse("a").unwrap(), DeviceId::parse("b").unwrap()];
        let versions: [Version; 2] = ["1.0.0".parse().unwrap(), "1.0.1".parse().unwrap()];
        let channels: [ChannelName; 2] = ["stable".parse().unwrap(), "beta".parse().unwrap()];
        let token = key.token(subject(&apps[0], &devices[0], &versions[0], &channels[0]));
        for (a, d, v, c) in itertools(&apps, &devices, &versions, &channels) {
            let mine = a == &apps[0] && d == &devices[0] && v == &versions[0] && c == &channels[0];
            assert_eq!(key.verify(subject(a, d, v, c), &token), mine, "{a} {d} {v} {c}");
        }
        let other = ReportKey::from_key(&[2; 32]);
        assert!(!other.verify(subject(&apps[0], &devices[0], &versions[0], &channels[0]), &token));
    }

    fn itertools<'a>(
        apps: &'a [AppId],
        devices: &'a [DeviceId],
        versions: &'a [Version],
        channels: &'a [ChannelName],
    ) -> impl Iterator<Item = (&'a AppId, &'a DeviceId, &'a Version, &'a ChannelName)> {
        apps.iter().flat_map(move |a| {
            devices
                .iter()
                .flat_map(move |d| versions.iter().flat_map(move |v| channels.iter().map(move |c| (a, d, v, c))))
        })
    }

    proptest! {
        /// Moving text between fields never keeps a token valid (the NUL separators).
        #[test]
        fn tokens_verify_and_one_changed_bit_fails(device in "[a-z0-9-]{1,20}", bit in 0usize..128) {
            let key = ReportKey::from_key(&[3; 32]);
            let (app, version, channel) = ("notes".parse().unwrap(), "2.0.0".parse().unwrap(), ChannelName::stable());
            let device = DeviceId::parse(&device).unwrap();
            let s = subject(&app, &device, &version, &channel);
            let token = key.token(s);
            prop_assert!(key.verify(s, &token));
            let mut bytes = *token.as_bytes();
            bytes[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(!key.verify(s, &ReportToken::from_bytes(bytes)));
        }

        #[test]
        fn fields_cannot_be_shifted(a in "[a-z]{1,8}", b in "[a-z]{1,8}") {
            let key = ReportKey::from_key(&[4; 32]);
            let version = "1.0.0".parse().unwrap();
            let channel = ChannelName::stable();
            let app1: AppId = format!("{a}x").parse().unwrap();
            let app2: AppId = a.parse().unwrap();
            let d1 = DeviceId::parse(&b).unwrap();
            let d2 = DeviceId::parse(&format!("x{b}")).unwrap();
            let t = key.token(subject(&app1, &d1, &version, &channel));
            prop_assert!(!key.verify(subject(&app2, &d2, &version, &channel), &t));
        }
    }
}
