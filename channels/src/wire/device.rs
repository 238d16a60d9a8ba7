//! The device side of the protocol: the check-in (`POST /v1/apps/{app}/check`) and its answer
//! with the offered update, and install events and app metrics (`POST /v1/apps/{app}/events`).
//!
//! These bodies ignore unknown fields, so older servers accept newer SDKs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{
    Arch, ChannelName, DeviceId, KeyId, Locale, MetricName, MetricValue, Nonce, Os, OsVersion, PatchFormat, PublicKey,
    ReportToken, Sha256, Signature, Traits, UserId, Version,
};

/// `POST /v1/apps/{app}/check`: what a device sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckRequest {
    /// The device's stable random id.
    pub device_id: DeviceId,
    /// The signed-in user, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<UserId>,
    /// The version the device runs.
    pub current_version: Version,
    /// The channel the user chose.
    pub channel: ChannelName,
    /// The device's os.
    pub os: Os,
    /// The device's CPU architecture.
    pub arch: Arch,
    /// The OS version, e.g. `10.0.19045`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<OsVersion>,
    /// The locale, e.g. `zh-CN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<Locale>,
    /// App-reported traits.
    #[serde(default)]
    pub traits: Traits,
    /// True when a person pressed "Check for updates".
    #[serde(default)]
    pub interactive: bool,
    /// A fresh random challenge: the signed answer is bound to it, so a recorded answer
    /// cannot be replayed to this request (see [`Proof`](crate::Proof)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<Nonce>,
    /// The answer key the device pins: the server signs with it while it still holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_key: Option<KeyId>,
    /// SHA-256 of the build the device runs (the file an update replaces), when the SDK knows
    /// it: an offer then carries a patch from that build, when the release has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_sha256: Option<Sha256>,
}

/// The answer to a check-in: always a poll hint, and the offered update or `null`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckResponse {
    /// Seconds until the device should check again (jittered by the server).
    pub next_check_s: u32,
    /// The offered update, or `null` when the device is up to date.
    pub update: Option<UpdateOffer>,
    /// The token for events about the version the device runs (crashes, first runs), on the
    /// device's channel. Servers before report tokens send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_token: Option<ReportToken>,
    /// Present only when the app has no channel of the name the device sent (it was removed):
    /// the channel the device was served as (`stable`). The device's events still name its
    /// own channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_channel: Option<ChannelName>,
}

/// An update offered to a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateOffer {
    /// The offered version.
    pub version: Version,
    /// The channel whose rollout offered it.
    pub channel: ChannelName,
    /// Release notes.
    pub notes: String,
    /// True when the update must be taken (this release or one it skips over is critical).
    pub critical: bool,
    /// The build for the device's platform.
    pub artifact: ArtifactOffer,
    /// The token for events about the offered version (downloads, installs, first runs), on
    /// the device's channel (the one it checked in with, which events name), not
    /// [`channel`](Self::channel). Servers before report tokens send none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_token: Option<ReportToken>,
}

/// The artifact of an offered update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactOffer {
    /// Where to download it (absolute, or relative to the server URL).
    pub url: String,
    /// The os it was built for.
    pub os: Os,
    /// The arch it was built for.
    pub arch: Arch,
    /// SHA-256 of the file.
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
    /// ed25519 signature over the signed message.
    pub signature: Signature,
    /// The id of the signing key.
    pub key_id: KeyId,
    /// Every signature, the first included, when there are several (k-of-n); omitted when
    /// `signature` and `key_id` are the only one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<super::SignatureSpec>,
    /// A patch from the build the device said it runs (`current_sha256`) to this one, when
    /// the release has one; omitted otherwise. The device may use it instead of `url`, and
    /// falls back to `url` when anything about it fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patch: Option<PatchOffer>,
}

/// A patch offered beside an artifact: what the device downloads instead of the whole file,
/// and what it verifies first (docs/api.md §8, the patch message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PatchOffer {
    /// Where to download the patch file (absolute, or relative to the server URL).
    pub url: String,
    /// How to apply it: `zstd-patch-from`.
    pub format: PatchFormat,
    /// SHA-256 of the build it applies to.
    pub base_sha256: Sha256,
    /// Size of that build in bytes.
    pub base_size: u64,
    /// SHA-256 of the patch file.
    pub sha256: Sha256,
    /// Size of the patch file in bytes.
    pub size: u64,
    /// ed25519 signature over the patch message.
    pub signature: Signature,
    /// The id of the signing key.
    pub key_id: KeyId,
    /// Every signature, the first included, when there are several (k-of-n).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<super::SignatureSpec>,
}

/// What happened on a device, reported by the SDK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A download began.
    DownloadStarted,
    /// A download failed (network, verification).
    DownloadFailed,
    /// The update installed.
    InstallSucceeded,
    /// The update failed to install.
    InstallFailed,
    /// The new version started for the first time.
    FirstRun,
    /// The app crashed on this version.
    Crash,
}

impl EventKind {
    /// Every kind, in declaration order.
    pub const ALL: [EventKind; 6] = [
        EventKind::DownloadStarted,
        EventKind::DownloadFailed,
        EventKind::InstallSucceeded,
        EventKind::InstallFailed,
        EventKind::FirstRun,
        EventKind::Crash,
    ];

    /// Its name on the wire (`install_failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::DownloadStarted => "download_started",
            EventKind::DownloadFailed => "download_failed",
            EventKind::InstallSucceeded => "install_succeeded",
            EventKind::InstallFailed => "install_failed",
            EventKind::FirstRun => "first_run",
            EventKind::Crash => "crash",
        }
    }
}

/// One event about one release on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The device.
    pub device_id: DeviceId,
    /// What happened.
    pub kind: EventKind,
    /// The release it is about.
    pub version: Version,
    /// The device's channel.
    pub channel: ChannelName,
    /// Optional short detail (error message), at most 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The report token a check-in answer gave for this device, version and channel; an
    /// event without the right one is not counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<ReportToken>,
}

/// `POST /v1/apps/{app}/events`: up to 100 events and up to 100 metric reports (at least one
/// of either), carrying at most 1,000 metric values and counts in all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    /// The events.
    #[serde(default)]
    pub events: Vec<Event>,
    /// App metrics, per device and build.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricReport>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl MetricReport {
    /// Values and counts it carries (a report's limits count these).
    pub fn size(&self) -> usize {
        self.values.values().map(Vec::len).sum::<usize>() + self.counts.len()
    }
}

/// App metrics one device observed while running one build: values of `value` metrics and
/// counts of `counter` metrics, each declared by the app. Like an event, it counts only with
/// the report token the device's check-in answer gave for this version and channel, so a
/// device cannot report for a build it does not run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricReport {
    /// The device.
    pub device_id: DeviceId,
    /// The release it runs.
    pub version: Version,
    /// The device's channel.
    pub channel: ChannelName,
    /// The report token of this device, version and channel.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<ReportToken>,
    /// Observed values per value metric (finite, at most 1e12 in magnitude).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub values: BTreeMap<MetricName, Vec<MetricValue>>,
    /// Amounts to add per counter metric (0 to 1,000,000 each).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counts: BTreeMap<MetricName, u64>,
}

/// The answer to an event batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsAccepted {
    /// Distinct events with a valid token in the batch (device, release, channel, kind), all
    /// durably stored. Figures count each device once per release, channel and kind, across
    /// batches too, and at most a set number of devices per client network.
    pub accepted: u32,
    /// Events with a valid token repeated within this batch.
    pub duplicates: u32,
    /// Events not counted because they carried no valid token
    /// (`accepted + duplicates + rejected` is the batch size).
    #[serde(default)]
    pub rejected: u32,
    /// Why the rejected events were rejected.
    #[serde(default)]
    pub rejections: Rejections,
    /// Metric values and counts (see [`MetricReport::size`]) in reports with a valid token,
    /// all durably stored (absent when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub metrics_accepted: u32,
    /// Metric values and counts not counted because their report carried no valid token
    /// (absent when 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub metrics_rejected: u32,
}

/// Why events of a batch were not counted, per reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejections {
    /// Events that carried no token.
    #[serde(default)]
    pub missing_token: u32,
    /// Events whose token is not the one for their device, version and channel.
    #[serde(default)]
    pub invalid_token: u32,
}

/// `GET /v1/answer-keys`: the public keys that sign check-in answers, for apps to pin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerKeys {
    /// Oldest first; the current one signs unless a device pins another.
    pub keys: Vec<AnswerKeyView>,
}

/// One answer key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerKeyView {
    /// Its id (`answer-` and a fingerprint), sent in each proof.
    pub key_id: KeyId,
    /// The ed25519 public key, hex.
    pub public_key: PublicKey,
    /// When it was made (Unix milliseconds).
    pub created_ms: u64,
    /// True for the key that signs answers for devices that pin no other.
    pub current: bool,
}
