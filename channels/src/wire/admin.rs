//! The admin side of the protocol: apps and their keys and channels, releases and their
//! artifacts, rollouts with their rules, schedules and gates, tokens, the audit log and
//! explanations.
//!
//! Request bodies refuse unknown fields, so a typo is an error rather than a silently ignored
//! setting.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::CheckRequest;
use crate::{
    AppId, Arch, ChannelName, Direction, DisplayName, ExternalUrl, GateAction, KeyId, ListedId, MetricName, Os,
    PatchFormat, Percent, PublicKey, Rank, RolloutState, Rule, Salt, SchedulePreset, Sha256, Signature, Step,
    Stickiness, TokenName, TraitName, TraitValue, Version,
};

/// A trusted public key of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySpec {
    /// The key's id, named by signatures.
    pub id: KeyId,
    /// The ed25519 public key, hex.
    pub public_key: PublicKey,
}

/// A custom channel of an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// The channel's name.
    pub name: ChannelName,
    /// Its rank: lower is more stable (stable = 100, beta = 200, unstable = 300).
    pub rank: Rank,
}

/// `PUT /v1/apps/{app}`: create or update an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppSpec {
    /// A human name.
    pub display_name: DisplayName,
    /// Keys whose signatures the app trusts.
    #[serde(default)]
    pub keys: Vec<KeySpec>,
    /// Channels beyond stable/beta/unstable.
    #[serde(default)]
    pub channels: Vec<ChannelSpec>,
    /// The app metrics devices may report (at most 32); a report naming another is refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
}

/// An app metric's declaration: `{"name": "session_s", "kind": "value", "better": "higher"}`
/// or `{"name": "purchases", "kind": "counter"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricSpec {
    /// The name devices report it under.
    pub name: MetricName,
    /// `value` or `counter`.
    pub kind: MetricKindSpec,
    /// For a value: `lower` or `higher` is better (required); absent for a counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub better: Option<Direction>,
}

/// The kind of an app metric on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MetricKindSpec {
    /// A numeric figure per observation.
    Value,
    /// A named counter.
    Counter,
}

/// An app as the server reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppView {
    /// The id.
    pub id: AppId,
    /// The human name.
    pub display_name: DisplayName,
    /// Trusted keys.
    pub keys: Vec<KeySpec>,
    /// All channels (built-in and custom), most stable first.
    pub channels: Vec<ChannelSpec>,
    /// The app metrics it declared.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricSpec>,
}

/// The kind of a targeting rule (see [`RuleSpec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuleKind {
    /// `values`: os names.
    OsIn,
    /// `values`: arch names.
    ArchIn,
    /// `range`: OS versions.
    OsVersion,
    /// `range`: app versions.
    AppVersion,
    /// `values`: locale prefixes.
    LocaleIn,
    /// `name`, `op`, and `value` or `values`.
    Trait,
    /// `values`: CIDRs or addresses.
    IpIn,
}

impl RuleKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            RuleKind::OsIn => "os_in",
            RuleKind::ArchIn => "arch_in",
            RuleKind::OsVersion => "os_version",
            RuleKind::AppVersion => "app_version",
            RuleKind::LocaleIn => "locale_in",
            RuleKind::Trait => "trait",
            RuleKind::IpIn => "ip_in",
        }
    }
}

/// The operator of a trait rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraitOp {
    /// equal
    Eq,
    /// not equal
    Ne,
    /// one of
    In,
    /// none of
    NotIn,
    /// present
    Exists,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

impl TraitOp {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            TraitOp::Eq => "eq",
            TraitOp::Ne => "ne",
            TraitOp::In => "in",
            TraitOp::NotIn => "not_in",
            TraitOp::Exists => "exists",
            TraitOp::Lt => "lt",
            TraitOp::Le => "le",
            TraitOp::Gt => "gt",
            TraitOp::Ge => "ge",
        }
    }
}

/// A targeting rule on the wire, e.g. `{"kind":"os_version","range":">=10.0.19041"}` or
/// `{"kind":"trait","name":"tier","op":"in","values":["gold","silver"]}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// What the rule looks at.
    pub kind: RuleKind,
    /// Listed values (`os_in`, `arch_in`, `locale_in`, `ip_in`, trait `in`/`not_in`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<TraitValue>>,
    /// A range (`os_version`, `app_version`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
    /// The trait's name (`trait`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<TraitName>,
    /// The trait operator (`trait`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<TraitOp>,
    /// The trait operand (`trait` with eq, ne, lt, le, gt, ge).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<TraitValue>,
}

/// A rollout's settings on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutSpec {
    /// Share of devices in basis points (0..=10000; 100 = 1%).
    pub basis_points: Percent,
    /// Bucketing salt; defaults to `app:version`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub salt: Option<Salt>,
    /// `device` (default) or `user`.
    #[serde(default)]
    pub stickiness: Stickiness,
    /// Device or user ids always included (rules still apply).
    #[serde(default)]
    pub allow: Vec<ListedId>,
    /// Device or user ids never included.
    #[serde(default)]
    pub deny: Vec<ListedId>,
    /// Rules, all of which must hold.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// `active` (default), `paused` or `halted`.
    #[serde(default)]
    pub state: RolloutState,
    /// Whether user-initiated checks skip the percentage.
    #[serde(default)]
    pub interactive_bypass: bool,
    /// Steps the server advances by itself; `basis_points` must be the first step's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// Limits that halt (or pause) the rollout by themselves when install feedback breaches them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,
}

/// `PATCH .../rollouts/{channel}`: the fields to change; absent fields keep their value.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutPatch {
    /// New share in basis points.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis_points: Option<Percent>,
    /// New allow list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<ListedId>>,
    /// New deny list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<ListedId>>,
    /// New rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<Rule>>,
    /// New state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<RolloutState>,
    /// New interactive bypass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interactive_bypass: Option<bool>,
    /// A new schedule (the rollout continues from the step at or below its percentage).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// A new health gate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateSpec>,
    /// True to resume or widen a release that a rollback replaced (it offers the bad build
    /// again); without it, such a change is refused with 409.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resume_rolled_back: bool,
}

/// A health gate on the wire: limits that halt (or pause) a rollout by themselves. Rates are
/// fractions (0.05 = 5%); at least one must be given.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    /// Largest acceptable install_failed / (install_succeeded + install_failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_install_failure_rate: Option<f64>,
    /// Largest acceptable crashes / first runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_crash_rate: Option<f64>,
    /// The fixed limits apply once their denominator reaches this many devices, and each
    /// step needs this many new ones before it widens (default 0: no minimum).
    #[serde(default)]
    pub min_sample: u64,
    /// A sequential comparison with the build the rollout's audience runs now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<CompareSpec>,
    /// `halt` (default) or `pause`.
    #[serde(default)]
    pub action: GateAction,
    /// Gates on value metrics the app declared, each against the baseline (docs/gates.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricGateSpec>,
}

/// A gate on one app metric: halt when the build's mean (of a value metric's values, or of a
/// counter's counts per report) is worse than the baseline's by more than `degradation`.
/// Absent fields take the documented defaults; answers carry every field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricGateSpec {
    /// A metric the app declared: a value metric, or a counter.
    pub name: MetricName,
    /// Which way is better: required for a counter (`lower` for errors, `higher` for
    /// purchases); for a value metric absent or its declared direction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub better: Option<Direction>,
    /// The worsening of the mean tolerated, as a fraction of the baseline's (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degradation: Option<f64>,
    /// The largest chance of halting a build exactly at the tolerated mean (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// Values (a counter's reports) each build needs in the gate's window before anything is
    /// judged, and each step needs of its own before it widens (default 30).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_count: Option<u64>,
}

/// A gate's comparison with the baseline (docs/gates.md). Absent fields take the documented
/// defaults; answers carry every field.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareSpec {
    /// The relative worsening to catch (default 1.0: twice the baseline's rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub degradation: Option<f64>,
    /// The absolute worsening to catch when the relative one is smaller (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_difference: Option<f64>,
    /// The largest chance of halting a build no worse than the baseline (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    /// The largest chance of widening a build as bad as the degradation past
    /// `proven_from_bp` (default 0.005).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beta: Option<f64>,
    /// From this share on, widening needs proof the build is no worse (default 200: 2%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proven_from_bp: Option<Percent>,
    /// New install attempts each step needs before it widens (default 20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_sample: Option<u64>,
    /// The share of `alpha` and `beta` kept for the last look at an exhausted proving step,
    /// from 0 (no look) to below 1 (default 0.5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_look: Option<f64>,
    /// Seconds without a new install report after which a proving step held for evidence
    /// counts as exhausted, from 60 to 2592000 (default 86400: a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhausted_after_s: Option<u64>,
    /// Seconds after its first run that a device's crashes are waited for: proof that the
    /// crash rate is no worse counts crashes against the first runs at least this old, from 60
    /// to 2592000 (default 86400: a day).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash_window_s: Option<u64>,
    /// From this share on, widening also needs proof that the crash rate is no worse (never
    /// below `proven_from_bp`; default 1000: 10%).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crashes_proven_from_bp: Option<Percent>,
}

/// A schedule on the wire: a named preset or explicit steps, not both. Answers always carry the
/// steps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleSpec {
    /// `apple_phased`: 1, 2, 5, 10, 20, 50, 100% over seven days (a day per step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<SchedulePreset>,
    /// Explicit steps, when no preset is named.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub steps: Vec<Step>,
}

/// One artifact of a release being published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactSpec {
    /// Built for this os.
    pub os: Os,
    /// Built for this arch.
    pub arch: Arch,
    /// SHA-256 of the file (uploaded before, unless `url` is given).
    pub sha256: Sha256,
    /// Size in bytes.
    pub size: u64,
    /// ed25519 signature over the signed message.
    pub signature: Signature,
    /// The id of the signing key (one of the app's keys).
    pub key_id: KeyId,
    /// More signatures, for apps whose keys have a threshold above 1 (k-of-n). The artifact's
    /// signatures are `key_id`+`signature` followed by these (an entry equal to the first is
    /// skipped, so the whole list may be given here too). Omitted when there is one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<super::SignatureSpec>,
    /// Where devices download it, when not from this server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<ExternalUrl>,
    /// What other updaters verify (Tauri, cargo-packager, electron-updater, Sparkle); omitted
    /// when the release was published without them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clients: Option<ClientSignaturesSpec>,
    /// Signed patches from earlier builds to this one (delta updates), at most one per base;
    /// omitted when there is none. Each patch file is uploaded before, like an artifact.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub patches: Vec<PatchSpec>,
}

/// A patch from an earlier build (its base) to the artifact that lists it (`Patch` in the
/// domain); its signatures cover the patch message (docs/api.md §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchSpec {
    /// How to apply it: `zstd-patch-from`.
    pub format: PatchFormat,
    /// SHA-256 of the base build.
    pub base_sha256: Sha256,
    /// Size of the base build in bytes.
    pub base_size: u64,
    /// SHA-256 of the patch file (stored under it, like an artifact).
    pub sha256: Sha256,
    /// Size of the patch file in bytes.
    pub size: u64,
    /// ed25519 signature over the patch message.
    pub signature: Signature,
    /// The id of the signing key (one of the app's keys).
    pub key_id: KeyId,
    /// More signatures (k-of-n), by the artifact's rule. Omitted when there is one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signatures: Vec<super::SignatureSpec>,
}

/// The signatures and digest of one artifact for other updaters, made by one app key
/// (`ClientSignatures` in the domain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSignaturesSpec {
    /// The app key that made them.
    pub key_id: KeyId,
    /// SHA-512 of the file, standard base64 (electron-updater's `sha512`).
    pub sha512: String,
    /// The minisign signature file (prehashed, `ED`), as text: Tauri and cargo-packager.
    pub minisign: String,
    /// Ed25519 over the file's bytes, standard base64: Sparkle's `sparkle:edSignature`.
    pub ed_signature: String,
}

/// A release's content on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// The version.
    pub version: Version,
    /// Release notes.
    #[serde(default)]
    pub notes: String,
    /// Whether the update must be taken.
    #[serde(default)]
    pub critical: bool,
    /// Devices older than this must first take an older release.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_from_version: Option<Version>,
    /// The version whose code this build re-issues.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebuild_of: Option<Version>,
    /// One artifact per os+arch.
    pub artifacts: Vec<ArtifactSpec>,
}

/// `POST /v1/apps/{app}/releases`: publish a release with its first rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The release.
    pub release: ReleaseSpec,
    /// The channel of its first rollout.
    pub channel: ChannelName,
    /// The first rollout.
    pub rollout: RolloutSpec,
}

/// `POST /v1/apps/{app}/releases/{version}/promote`: roll the release out on a more stable
/// channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteRequest {
    /// The more stable channel.
    pub channel: ChannelName,
    /// Its rollout.
    pub rollout: RolloutSpec,
}

/// `POST /v1/apps/{app}/rollback`: halt `bad_version` and publish `release`, a rebuild of
/// older good code under a version higher than every version of the app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RollbackRequest {
    /// The version to halt everywhere.
    pub bad_version: Version,
    /// The rebuild; its `rebuild_of` names the good version. A rollback is always critical.
    pub release: ReleaseSpec,
    /// True to accept a rebuild without a build for some platform the bad release has: devices
    /// there keep the bad build (halted, so nobody new gets it). Without it, such a rollback is
    /// refused.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub leave_uncovered: bool,
}

/// A rollout as the server reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutView {
    /// The channel.
    pub channel: ChannelName,
    /// The entity tag to send in `If-Match` when changing it.
    pub etag: String,
    /// The settings.
    #[serde(flatten)]
    pub rollout: RolloutSpec,
    /// Its slot, when it is an arm of an A/B/N experiment or the winner of one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<super::ArmSlotSpec>,
}

/// A release with its rollouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseView {
    /// The release.
    #[serde(flatten)]
    pub release: ReleaseSpec,
    /// Its rollouts, one per channel.
    pub rollouts: Vec<RolloutView>,
    /// Check-ins that were offered this release since the server started.
    #[serde(default)]
    pub offers: u64,
}

/// `GET /v1/apps/{app}/releases`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseList {
    /// Newest first.
    pub releases: Vec<ReleaseView>,
}

/// An admin token's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything.
    Admin,
    /// Publish and change rollouts of the listed apps; read everything.
    Publisher,
    /// Read only.
    Viewer,
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    /// A label for people (`ci-notes`, `alice`).
    pub name: TokenName,
    /// The role.
    pub role: Role,
    /// For publishers: the apps they may change.
    #[serde(default)]
    pub apps: Vec<AppId>,
}

/// A token as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenView {
    /// The token's id (used to revoke it).
    pub id: String,
    /// The label.
    pub name: TokenName,
    /// The role.
    pub role: Role,
    /// Apps, for publishers.
    pub apps: Vec<AppId>,
}

/// The answer to `POST /v1/tokens`: the only time the secret is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// The token's metadata.
    #[serde(flatten)]
    pub view: TokenView,
    /// The bearer secret.
    pub token: String,
}

/// One entry of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Sequence number, increasing.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The token name that made the change.
    pub actor: String,
    /// What was done, e.g. `rollout.update`.
    pub action: String,
    /// The app; absent for a server-wide change (a token's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppId>,
    /// What it was done to (`1.2.0/beta`, a token id).
    pub subject: String,
    /// State before, if any.
    pub before: Option<serde_json::Value>,
    /// State after, if any.
    pub after: Option<serde_json::Value>,
}

/// `GET /v1/apps/{app}/audit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditLog {
    /// Oldest first.
    pub entries: Vec<AuditEntry>,
}

/// `POST /v1/apps/{app}/explain`: a check-in body, and optionally the device's IP address
/// (for `ip_in` rules; without it the rules see no IP and do not match).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExplainRequest {
    /// What the device would send.
    #[serde(flatten)]
    pub check: CheckRequest,
    /// The device's IP address as the server would see it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
}

/// One release's verdict in an explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseVerdict {
    /// The release.
    pub version: Version,
    /// `offered` or `skipped`.
    pub offered: bool,
    /// For an offer: how the device got in; for a skip: why not, one line each.
    pub reasons: Vec<Reason>,
}

/// A reason with a stable code and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    /// A stable machine-readable code (`outside_rollout`, `rule_failed`, ...).
    pub code: String,
    /// The sentence.
    pub detail: String,
}

/// `POST /v1/apps/{app}/explain`: the decision and every release's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExplainResponse {
    /// Present only when the app has no channel of the name the check-in sent: the channel the
    /// device is served as (`stable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub served_channel: Option<ChannelName>,
    /// The offered version, if any.
    pub offered: Option<Version>,
    /// Whether the offer is critical.
    pub critical: bool,
    /// Newest first.
    pub releases: Vec<ReleaseVerdict>,
    /// How the device id was made, when the server can tell: the other updaters' endpoints
    /// derive `net-…` ids from the client IP and user agent when the client sends none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
}

/// `GET /v1/apps`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppList {
    /// Every app, by id.
    pub apps: Vec<AppView>,
}

/// The answer to `PUT /v1/artifacts/{sha256}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactStored {
    /// The digest, verified by the server.
    pub sha256: Sha256,
    /// The stored size in bytes.
    pub size: u64,
    /// False when the same bytes were already stored (the upload was a no-op).
    pub created: bool,
}

/// `GET /v1/tokens`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenList {
    /// Live tokens (revoked ones are gone).
    pub tokens: Vec<TokenView>,
}

/// `POST /v1/apps/{app}/codepush-keys`: a CodePush deployment key for one channel and target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodePushKeyRequest {
    /// A label for people (`android-beta`).
    pub name: TokenName,
    /// The channel its devices follow.
    pub channel: ChannelName,
    /// The os its devices are served as (`ios`, `android`): the bundle is published for it.
    pub os: Os,
    /// The arch they are served as (`universal` when omitted: a JavaScript bundle runs on any).
    #[serde(default = "universal")]
    pub arch: Arch,
    /// The key itself, to keep one an app already ships with; made by the server when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<crate::DeploymentKey>,
}

fn universal() -> Arch {
    Arch::parse("universal").expect("a valid arch")
}

/// A CodePush deployment key as listed (it is not a secret: every copy of the app carries it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodePushKeyView {
    /// The key, as the app's `CodePushDeploymentKey`.
    pub key: crate::DeploymentKey,
    /// The label.
    pub name: TokenName,
    /// The channel its devices follow.
    pub channel: ChannelName,
    /// The os its devices are served as.
    pub os: Os,
    /// The arch they are served as.
    pub arch: Arch,
}

/// `GET /v1/apps/{app}/codepush-keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodePushKeyList {
    /// The app's live deployment keys, by name.
    pub keys: Vec<CodePushKeyView>,
}
