//! The records the store keeps: the store's own types, apart from the HTTP wire types, so
//! that renaming an API field never becomes a data migration.
//!
//! Each converts explicitly from and to what the server holds in memory (domain values from
//! `channels`, the app's settings, a token). Leaf values (`Version`, `Sha256`, `Percent`,
//! `Rule`, ...) are stored in their domain's canonical text form; rules in the documented
//! rule language (docs/api.md §6), which is versioned with the product, not with the API's
//! field names.
//!
//! Compatibility: unknown fields are ignored when reading, and every field added later must
//! have a default, so data written by a newer binary of the same store format still loads in
//! an older one. A change that an older binary would misread bumps the store format
//! ([`super::FORMAT`]), which an older binary refuses with a clear error at start-up. The JSON
//! shape of format 1 is the one earlier releases wrote, so their data dirs load unchanged.

use std::collections::BTreeMap;

use halftone_channels::wire::{AuditEntry, Role};
use halftone_channels::{
    AppId, Arch, ArmSlot, Artifact, Blob, Call, ChannelName, ClientSignatures, Comparison, DeploymentKey, Direction,
    DisplayName, ExternalUrl, GateAction, Health, HealthGate, IdList, KeyDocument, KeyId, KeySignature, ListedId,
    MetricGate, MetricKind, MetricName, MetricSet, Minisign, Os, ParseError, Patch, PatchFormat, Patches, Percent,
    PublicKey, Rank, Release, ReleaseParts, Rollout, RolloutState, Rule, Rules, Salt, Schedule, ScheduleClock,
    SchedulePreset, Sha256, Sha512, Signature, Signatures, SignedKeyDocument, Step, Stickiness, Summary, Target,
    Threshold, TokenName, TrustedKeys, Version,
};
use serde::{Deserialize, Serialize};

use crate::auth::Token;
use crate::snapshot::{AppSettings, BaselineMark, CodePushKey, GateMarks, Looked, MetricMarks, RolloutMeta};

/// An app's settings as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    display_name: DisplayName,
    #[serde(default)]
    keys: Vec<KeyRecord>,
    #[serde(default)]
    channels: Vec<ChannelRecord>,
    /// Key documents from version 2 on (absent before the first rotation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    key_documents: Vec<KeyDocumentRecord>,
    /// The declared app metrics (absent before the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricRecord>,
    /// CodePush deployment keys (absent before the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    codepush_keys: Vec<CodePushKeyRecord>,
}

/// A declared app metric as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MetricRecord {
    name: MetricName,
    kind: MetricKindRecord,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum MetricKindRecord {
    LowerIsBetter,
    HigherIsBetter,
    Counter,
}

/// A CodePush deployment key as stored, with the channel and target it routes to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CodePushKeyRecord {
    key: DeploymentKey,
    name: TokenName,
    channel: ChannelName,
    os: Os,
    arch: Arch,
}

impl From<&CodePushKey> for CodePushKeyRecord {
    fn from(k: &CodePushKey) -> Self {
        CodePushKeyRecord {
            key: k.key.clone(),
            name: k.name.clone(),
            channel: k.channel.clone(),
            os: k.target.os.clone(),
            arch: k.target.arch.clone(),
        }
    }
}

impl From<CodePushKeyRecord> for CodePushKey {
    fn from(r: CodePushKeyRecord) -> Self {
        CodePushKey { key: r.key, name: r.name, channel: r.channel, target: Target { os: r.os, arch: r.arch } }
    }
}

/// A signed key document as stored (its fields in their domain text forms).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyDocumentRecord {
    app: AppId,
    version: u64,
    threshold: u64,
    keys: Vec<KeyRecord>,
    signatures: Vec<SignatureRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SignatureRecord {
    key_id: KeyId,
    signature: Signature,
}

impl From<&KeySignature> for SignatureRecord {
    fn from(s: &KeySignature) -> Self {
        SignatureRecord { key_id: s.key_id.clone(), signature: s.signature }
    }
}

impl From<SignatureRecord> for KeySignature {
    fn from(r: SignatureRecord) -> Self {
        KeySignature { key_id: r.key_id, signature: r.signature }
    }
}

impl From<&SignedKeyDocument> for KeyDocumentRecord {
    fn from(s: &SignedKeyDocument) -> Self {
        let d = &s.document;
        KeyDocumentRecord {
            app: d.app().clone(),
            version: d.version(),
            threshold: d.threshold().get() as u64,
            keys: d.keys().iter().map(|(id, pk)| KeyRecord { id: id.clone(), public_key: *pk }).collect(),
            signatures: s.signatures.iter().map(SignatureRecord::from).collect(),
        }
    }
}

impl TryFrom<KeyDocumentRecord> for SignedKeyDocument {
    type Error = ParseError;
    fn try_from(r: KeyDocumentRecord) -> Result<Self, ParseError> {
        let keys = TrustedKeys::new(r.keys.into_iter().map(|k| (k.id, k.public_key)))?;
        Ok(SignedKeyDocument {
            document: KeyDocument::new(r.app, r.version, Threshold::new(r.threshold)?, keys)?,
            signatures: Signatures::new(r.signatures.into_iter().map(KeySignature::from).collect())?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KeyRecord {
    id: KeyId,
    public_key: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ChannelRecord {
    name: ChannelName,
    rank: Rank,
}

impl From<&AppSettings> for AppRecord {
    fn from(s: &AppSettings) -> Self {
        AppRecord {
            display_name: s.display_name.clone(),
            keys: s.keys.iter().map(|(id, public_key)| KeyRecord { id: id.clone(), public_key: *public_key }).collect(),
            channels: s.channels.iter().map(|(name, rank)| ChannelRecord { name: name.clone(), rank: *rank }).collect(),
            key_documents: s.key_documents.iter().map(KeyDocumentRecord::from).collect(),
            codepush_keys: s.codepush_keys.iter().map(CodePushKeyRecord::from).collect(),
            metrics: s
                .metrics
                .iter()
                .map(|(name, kind)| MetricRecord {
                    name: name.clone(),
                    kind: match kind {
                        MetricKind::Value(Direction::Lower) => MetricKindRecord::LowerIsBetter,
                        MetricKind::Value(Direction::Higher) => MetricKindRecord::HigherIsBetter,
                        MetricKind::Counter => MetricKindRecord::Counter,
                    },
                })
                .collect(),
        }
    }
}

impl TryFrom<AppRecord> for AppSettings {
    type Error = ParseError;
    fn try_from(r: AppRecord) -> Result<Self, ParseError> {
        Ok(AppSettings {
            display_name: r.display_name,
            keys: r.keys.into_iter().map(|k| (k.id, k.public_key)).collect(),
            channels: r.channels.into_iter().map(|c| (c.name, c.rank)).collect(),
            key_documents: r.key_documents.into_iter().map(SignedKeyDocument::try_from).collect::<Result<_, _>>()?,
            codepush_keys: r.codepush_keys.into_iter().map(CodePushKey::from).collect(),
            metrics: MetricSet::new(r.metrics.into_iter().map(|m| {
                let kind = match m.kind {
                    MetricKindRecord::LowerIsBetter => MetricKind::Value(Direction::Lower),
                    MetricKindRecord::HigherIsBetter => MetricKind::Value(Direction::Higher),
                    MetricKindRecord::Counter => MetricKind::Counter,
                };
                (m.name, kind)
            }))?,
        })
    }
}

/// A release as stored: its content exactly as published, and when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    spec: ReleaseBody,
    published_at_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ReleaseBody {
    version: Version,
    #[serde(default)]
    notes: String,
    #[serde(default)]
    critical: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_from_version: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rebuild_of: Option<Version>,
    artifacts: Vec<ArtifactRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ArtifactRecord {
    os: Os,
    arch: Arch,
    sha256: Sha256,
    size: u64,
    signature: Signature,
    key_id: KeyId,
    /// The signatures after the first (k-of-n), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    more_signatures: Vec<SignatureRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    url: Option<ExternalUrl>,
    /// Added with the other updaters' endpoints (issue 12). Absent in older records; an older
    /// binary ignores it and serves what it always served, so the store format stays 2, and
    /// PostgreSQL keeps it inside the `record` jsonb with no schema change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    clients: Option<ClientSignaturesRecord>,
    /// Added with delta updates (issue 14), by the same rule as `clients`: absent in older
    /// records, ignored by an older binary (which then offers no patch), so the store format
    /// stays as it is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    patches: Vec<PatchRecord>,
}

/// A patch from an earlier build to the artifact, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct PatchRecord {
    format: PatchFormat,
    base_sha256: Sha256,
    base_size: u64,
    sha256: Sha256,
    size: u64,
    /// Every signature, in order.
    signatures: Vec<SignatureRecord>,
}

impl From<&Patch> for PatchRecord {
    fn from(p: &Patch) -> Self {
        PatchRecord {
            format: p.format,
            base_sha256: p.base.sha256,
            base_size: p.base.size,
            sha256: p.file.sha256,
            size: p.file.size,
            signatures: p.signatures.iter().map(SignatureRecord::from).collect(),
        }
    }
}

impl TryFrom<PatchRecord> for Patch {
    type Error = ParseError;
    fn try_from(r: PatchRecord) -> Result<Self, ParseError> {
        Ok(Patch {
            format: r.format,
            base: Blob { sha256: r.base_sha256, size: r.base_size },
            file: Blob { sha256: r.sha256, size: r.size },
            signatures: Signatures::new(r.signatures.into_iter().map(KeySignature::from).collect())?,
        })
    }
}

/// What other updaters verify, in its canonical text forms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ClientSignaturesRecord {
    key_id: KeyId,
    /// Standard base64.
    sha512: String,
    /// The minisign signature file.
    minisign: String,
    /// Hex, as every other stored signature.
    ed_signature: Signature,
}

impl From<&ClientSignatures> for ClientSignaturesRecord {
    fn from(c: &ClientSignatures) -> Self {
        ClientSignaturesRecord {
            key_id: c.key_id.clone(),
            sha512: c.sha512.to_string(),
            minisign: c.minisign.to_string(),
            ed_signature: c.ed_signature,
        }
    }
}

impl TryFrom<ClientSignaturesRecord> for ClientSignatures {
    type Error = ParseError;
    fn try_from(r: ClientSignaturesRecord) -> Result<Self, ParseError> {
        Ok(ClientSignatures {
            key_id: r.key_id,
            sha512: Sha512::parse(&r.sha512)?,
            minisign: Minisign::parse(&r.minisign)?,
            ed_signature: r.ed_signature,
        })
    }
}

impl ReleaseRecord {
    /// The record of `release`, published at `published_at_ms`.
    pub fn new(release: &Release, published_at_ms: u64) -> Self {
        let artifacts = release
            .artifacts()
            .iter()
            .map(|(t, a)| ArtifactRecord {
                os: t.os.clone(),
                arch: t.arch.clone(),
                sha256: a.sha256,
                size: a.size,
                signature: a.signatures.first().signature,
                key_id: a.signatures.first().key_id.clone(),
                more_signatures: a.signatures.iter().skip(1).map(SignatureRecord::from).collect(),
                url: a.url.clone(),
                clients: a.clients.as_ref().map(ClientSignaturesRecord::from),
                patches: a.patches.iter().map(PatchRecord::from).collect(),
            })
            .collect();
        ReleaseRecord {
            spec: ReleaseBody {
                version: release.version().clone(),
                notes: release.notes().to_owned(),
                critical: release.is_critical(),
                min_from_version: release.min_from_version().cloned(),
                rebuild_of: release.rebuild_of().cloned(),
                artifacts,
            },
            published_at_ms,
        }
    }

    /// The release's version.
    pub fn version(&self) -> &Version {
        &self.spec.version
    }
}

impl TryFrom<ReleaseRecord> for Release {
    type Error = ParseError;
    fn try_from(r: ReleaseRecord) -> Result<Self, ParseError> {
        let b = r.spec;
        let artifacts: BTreeMap<Target, Artifact> = b
            .artifacts
            .into_iter()
            .map(|a| {
                let first = KeySignature { key_id: a.key_id, signature: a.signature };
                let signatures = Signatures::new(
                    std::iter::once(first).chain(a.more_signatures.into_iter().map(KeySignature::from)).collect(),
                )?;
                let clients = a.clients.map(ClientSignatures::try_from).transpose()?;
                let patches = a.patches.into_iter().map(Patch::try_from).collect::<Result<_, _>>()?;
                let patches = Patches::new(patches, &Blob { sha256: a.sha256, size: a.size })?;
                let artifact = Artifact { sha256: a.sha256, size: a.size, signatures, url: a.url, clients, patches };
                Ok((Target { os: a.os, arch: a.arch }, artifact))
            })
            .collect::<Result<_, ParseError>>()?;
        Release::new(ReleaseParts {
            version: b.version,
            notes: b.notes,
            critical: b.critical,
            min_from_version: b.min_from_version,
            rebuild_of: b.rebuild_of,
            artifacts,
        })
    }
}

/// A rollout as stored, with the revision its ETag is made of and its schedule clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    spec: RolloutBody,
    revision: u64,
    #[serde(default)]
    clock: ScheduleClock,
    /// Absent before gates had windows: zeros, which count from publish (the old meaning).
    #[serde(default, skip_serializing_if = "MarksRecord::is_zero")]
    marks: MarksRecord,
}

/// The candidate's cumulative figures when its gate window and its current step began.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct MarksRecord {
    #[serde(default)]
    window: HealthRecord,
    #[serde(default)]
    step: HealthRecord,
    /// Absent before metric gates had windows: no metric marks, which count from publish and
    /// judge the baseline's cumulative values (the old meaning).
    #[serde(default, skip_serializing_if = "MetricMarksRecord::is_empty")]
    metrics: Box<MetricMarksRecord>,
    /// The last look taken in this window; absent when none was (and before there were any).
    /// Boxed: rare, and a rollout's record is moved around whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    look: Option<Box<LookedRecord>>,
}

/// A last look the scheduler took, with the figures it judged.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct LookedRecord {
    at_ms: u64,
    percent: Percent,
    window: HealthRecord,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline: Option<HealthRecord>,
    /// Absent from looks taken before crashes were waited for: every first run of the window
    /// (as that look judged them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    settled_first_runs: Option<u64>,
    call: LookCallRecord,
}

/// What a last look said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum LookCallRecord {
    Worse,
    NoWorse,
    Undecided,
}

impl From<&Looked> for LookedRecord {
    fn from(l: &Looked) -> Self {
        let call = match l.call {
            Call::Worse => LookCallRecord::Worse,
            Call::NoWorse => LookCallRecord::NoWorse,
            Call::Undecided | Call::BaselineTooSmall => LookCallRecord::Undecided,
        };
        LookedRecord {
            at_ms: l.at_ms,
            percent: l.percent,
            window: l.window.into(),
            baseline: l.baseline.map(Into::into),
            settled_first_runs: Some(l.settled_first_runs),
            call,
        }
    }
}

impl From<LookedRecord> for Looked {
    fn from(r: LookedRecord) -> Self {
        let call = match r.call {
            LookCallRecord::Worse => Call::Worse,
            LookCallRecord::NoWorse => Call::NoWorse,
            LookCallRecord::Undecided => Call::Undecided,
        };
        let window: Health = r.window.into();
        Looked {
            at_ms: r.at_ms,
            percent: r.percent,
            window,
            baseline: r.baseline.map(Into::into),
            settled_first_runs: r.settled_first_runs.unwrap_or(window.first_runs),
            call,
        }
    }
}

impl MarksRecord {
    fn is_zero(&self) -> bool {
        *self == MarksRecord::default()
    }
}

/// The release's metric summaries when the window and the step began, and the baseline's
/// (with its version) when the window began.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
struct MetricMarksRecord {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    window: BTreeMap<MetricName, SummaryRecord>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    step: BTreeMap<MetricName, SummaryRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    baseline: Option<BaselineMarkRecord>,
}

impl MetricMarksRecord {
    fn is_empty(&self) -> bool {
        *self == MetricMarksRecord::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct BaselineMarkRecord {
    release: Version,
    #[serde(default)]
    metrics: BTreeMap<MetricName, SummaryRecord>,
}

/// A metric summary as its moments (`Summary::from_moments`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct SummaryRecord {
    count: u64,
    mean: f64,
    m2: f64,
}

fn summaries_record(m: &BTreeMap<MetricName, Summary>) -> BTreeMap<MetricName, SummaryRecord> {
    m.iter().map(|(n, s)| (n.clone(), SummaryRecord { count: s.count(), mean: s.mean(), m2: s.m2() })).collect()
}

/// The summaries of a stored mark; one that is not a summary (it cannot be written so) is
/// left out, and that metric counts from zero.
fn summaries(m: BTreeMap<MetricName, SummaryRecord>) -> BTreeMap<MetricName, Summary> {
    m.into_iter().filter_map(|(n, r)| Some((n, Summary::from_moments(r.count, r.mean, r.m2)?))).collect()
}

impl From<&GateMarks> for MarksRecord {
    fn from(m: &GateMarks) -> Self {
        let metrics = MetricMarksRecord {
            window: summaries_record(&m.metrics.window),
            step: summaries_record(&m.metrics.step),
            baseline: m
                .metrics
                .baseline
                .as_ref()
                .map(|b| BaselineMarkRecord { release: b.release.clone(), metrics: summaries_record(&b.metrics) }),
        };
        MarksRecord {
            window: m.window.into(),
            step: m.step.into(),
            metrics: Box::new(metrics),
            look: m.look.as_ref().map(|l| Box::new(l.into())),
        }
    }
}

impl From<MarksRecord> for GateMarks {
    fn from(r: MarksRecord) -> Self {
        let metrics = MetricMarks {
            window: summaries(r.metrics.window),
            step: summaries(r.metrics.step),
            baseline: r.metrics.baseline.map(|b| BaselineMark { release: b.release, metrics: summaries(b.metrics) }),
        };
        GateMarks {
            window: r.window.into(),
            step: r.step.into(),
            metrics: std::sync::Arc::new(metrics),
            look: r.look.map(|l| (*l).into()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
struct HealthRecord {
    #[serde(default)]
    installs: u64,
    #[serde(default)]
    install_failures: u64,
    #[serde(default)]
    first_runs: u64,
    #[serde(default)]
    crashes: u64,
}

impl From<Health> for HealthRecord {
    fn from(h: Health) -> Self {
        HealthRecord {
            installs: h.installs,
            install_failures: h.install_failures,
            first_runs: h.first_runs,
            crashes: h.crashes,
        }
    }
}

impl From<HealthRecord> for Health {
    fn from(h: HealthRecord) -> Self {
        Health {
            installs: h.installs,
            install_failures: h.install_failures,
            first_runs: h.first_runs,
            crashes: h.crashes,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RolloutBody {
    basis_points: Percent,
    salt: Salt,
    #[serde(default)]
    stickiness: Stickiness,
    #[serde(default)]
    allow: Vec<ListedId>,
    #[serde(default)]
    deny: Vec<ListedId>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    state: RolloutState,
    #[serde(default)]
    interactive_bypass: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    schedule: Option<ScheduleRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gate: Option<GateRecord>,
    /// Present on an A/B/N arm or its promoted winner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    arm: Option<ArmRecord>,
}

/// An arm's slot: its first bucket and its width in basis points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct ArmRecord {
    start: u16,
    width: Percent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct ScheduleRecord {
    /// Written by no release, but accepted: a preset stands for its steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    preset: Option<SchedulePreset>,
    #[serde(default)]
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct GateRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_install_failure_rate: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    max_crash_rate: Option<f64>,
    #[serde(default)]
    min_sample: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compare: Option<CompareRecord>,
    #[serde(default)]
    action: GateAction,
    /// Gates on app metrics (absent before the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    metrics: Vec<MetricGateRecord>,
}

/// A metric gate's settings, every field written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct MetricGateRecord {
    name: MetricName,
    degradation: f64,
    alpha: f64,
    min_count: u64,
    /// Absent before counters could be gated (value gates take their declared direction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    better: Option<Direction>,
}

/// A comparing gate's settings, every field written.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
struct CompareRecord {
    degradation: f64,
    min_difference: f64,
    alpha: f64,
    beta: f64,
    proven_from: Percent,
    step_sample: u64,
    /// Absent before the server took the last look: such a gate keeps the test it began with,
    /// with no share of its error rates kept for a look (docs/gates.md, *Decisions*).
    #[serde(default)]
    last_look: f64,
    /// Absent before the server took the last look: a day.
    #[serde(default = "default_exhausted_after_s")]
    exhausted_after_s: u64,
    /// Absent before crashes were waited for: a day, as for every gate (proof only gets
    /// harder, never easier, so a running test keeps its error rates).
    #[serde(default = "default_crash_window_s")]
    crash_window_s: u64,
    /// Absent before the crash rate had its own proving share: the gate's `proven_from`, as
    /// it began with.
    #[serde(default)]
    crashes_proven_from: Option<Percent>,
}

fn default_crash_window_s() -> u64 {
    halftone_channels::DEFAULT_CRASH_WINDOW_S
}

fn default_exhausted_after_s() -> u64 {
    halftone_channels::DEFAULT_EXHAUSTED_AFTER_S
}

impl From<Comparison> for CompareRecord {
    fn from(c: Comparison) -> Self {
        CompareRecord {
            degradation: c.degradation(),
            min_difference: c.min_difference(),
            alpha: c.alpha(),
            beta: c.beta(),
            proven_from: c.proven_from(),
            step_sample: c.step_sample(),
            last_look: c.last_look(),
            exhausted_after_s: c.exhausted_after_s(),
            crash_window_s: c.crash_window_s(),
            crashes_proven_from: Some(c.crashes_proven_from()),
        }
    }
}

impl TryFrom<CompareRecord> for Comparison {
    type Error = ParseError;
    fn try_from(c: CompareRecord) -> Result<Self, ParseError> {
        Comparison::new(c.degradation, c.min_difference, c.alpha, c.beta, c.proven_from, c.step_sample)?
            .with_last_look(c.last_look)?
            .with_exhausted_after(c.exhausted_after_s)?
            .with_crash_window(c.crash_window_s)
            .map(|cmp| cmp.with_crashes_proven_from(c.crashes_proven_from.unwrap_or(c.proven_from)))
    }
}

impl RolloutRecord {
    /// The record of `r` with its metadata.
    pub fn new(r: &Rollout, meta: RolloutMeta) -> Self {
        RolloutRecord {
            spec: RolloutBody {
                basis_points: r.percent,
                salt: r.salt.clone(),
                stickiness: r.stickiness,
                allow: r.allow.iter().cloned().collect(),
                deny: r.deny.iter().cloned().collect(),
                rules: r.rules.to_vec(),
                state: r.state,
                interactive_bypass: r.interactive_bypass,
                schedule: r.schedule.as_ref().map(|s| ScheduleRecord { preset: None, steps: s.steps().to_vec() }),
                gate: r.gate.as_ref().map(|g| GateRecord {
                    max_install_failure_rate: g.max_install_failure_rate,
                    max_crash_rate: g.max_crash_rate,
                    min_sample: g.min_sample,
                    compare: g.compare.map(CompareRecord::from),
                    action: g.action,
                    metrics: g
                        .metrics
                        .iter()
                        .map(|m| MetricGateRecord {
                            name: m.name().clone(),
                            degradation: m.degradation(),
                            alpha: m.alpha(),
                            min_count: m.min_count(),
                            better: m.better(),
                        })
                        .collect(),
                }),
                arm: r.arm.map(|a| ArmRecord { start: a.start(), width: a.width() }),
            },
            revision: meta.revision,
            clock: meta.clock,
            marks: MarksRecord::from(&meta.marks),
        }
    }

    /// The rollout of `release` on `channel` this record describes, with its metadata.
    pub fn into_rollout(self, release: Version, channel: ChannelName) -> Result<(Rollout, RolloutMeta), ParseError> {
        let b = self.spec;
        let schedule = match b.schedule {
            None => None,
            Some(ScheduleRecord { preset: Some(p), .. }) => Some(p.schedule()),
            Some(ScheduleRecord { preset: None, steps }) => Some(Schedule::new(steps)?),
        };
        let gate = b
            .gate
            .map(|g| {
                HealthGate {
                    max_install_failure_rate: g.max_install_failure_rate,
                    max_crash_rate: g.max_crash_rate,
                    min_sample: g.min_sample,
                    compare: g.compare.map(Comparison::try_from).transpose()?,
                    action: g.action,
                    metrics: g
                        .metrics
                        .into_iter()
                        .map(|m| {
                            let gate = MetricGate::new(m.name, m.degradation, m.alpha, m.min_count)?;
                            Ok::<_, ParseError>(match m.better {
                                Some(d) => gate.with_better(d),
                                None => gate,
                            })
                        })
                        .collect::<Result<_, _>>()?,
                }
                .validate()
            })
            .transpose()?;
        let rollout = Rollout {
            release,
            channel,
            percent: b.basis_points,
            salt: b.salt,
            stickiness: b.stickiness,
            allow: IdList::new(b.allow)?,
            deny: IdList::new(b.deny)?,
            rules: Rules::new(b.rules)?,
            state: b.state,
            interactive_bypass: b.interactive_bypass,
            schedule,
            gate,
            arm: b.arm.map(|a| ArmSlot::new(a.start, a.width)).transpose()?,
        };
        Ok((rollout, RolloutMeta { revision: self.revision, clock: self.clock, marks: self.marks.into() }))
    }
}

/// An API token as stored: the secret only as a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    name: TokenName,
    role: RoleRecord,
    #[serde(default)]
    apps: Vec<AppId>,
    secret_sha256: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum RoleRecord {
    Admin,
    Publisher,
    Viewer,
}

impl From<&Token> for TokenRecord {
    fn from(t: &Token) -> Self {
        TokenRecord {
            name: t.name.clone(),
            role: match t.role {
                Role::Admin => RoleRecord::Admin,
                Role::Publisher => RoleRecord::Publisher,
                Role::Viewer => RoleRecord::Viewer,
            },
            apps: t.apps.clone(),
            secret_sha256: t.secret_sha256.clone(),
        }
    }
}

impl From<TokenRecord> for Token {
    fn from(r: TokenRecord) -> Self {
        Token {
            name: r.name,
            role: match r.role {
                RoleRecord::Admin => Role::Admin,
                RoleRecord::Publisher => Role::Publisher,
                RoleRecord::Viewer => Role::Viewer,
            },
            apps: r.apps,
            secret_sha256: r.secret_sha256,
        }
    }
}

/// The server's answer keys as stored (secret `answer-keys`), oldest first; the last one
/// signs. The seeds are secret: they never leave the server.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AnswerKeysRecord {
    /// The keys.
    pub keys: Vec<AnswerKeyRecord>,
}

/// One answer key as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerKeyRecord {
    /// The ed25519 seed.
    #[serde(with = "hex::serde")]
    pub seed: [u8; 32],
    /// When it was made.
    pub created_ms: u64,
}

impl AnswerKeysRecord {
    /// These keys and a new random one, made at `now_ms`, after them.
    pub fn with_new_key(&self, now_ms: u64) -> Self {
        let mut next = self.clone();
        next.keys.push(AnswerKeyRecord { seed: rand::random(), created_ms: now_ms });
        next
    }
}

/// The key that makes device report tokens, as stored (secret `report-key`): made at first
/// start, shared by every replica, never sent anywhere.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportKeyRecord {
    /// The HMAC-SHA256 key.
    #[serde(with = "hex::serde")]
    pub key: [u8; 32],
    /// When it was made.
    pub created_ms: u64,
}

impl ReportKeyRecord {
    /// A new random key, made at `now_ms`.
    pub fn new(now_ms: u64) -> Self {
        ReportKeyRecord { key: rand::random(), created_ms: now_ms }
    }
}

impl std::fmt::Debug for ReportKeyRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("ReportKeyRecord").field("created_ms", &self.created_ms).finish_non_exhaustive()
    }
}

/// An audit entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    seq: u64,
    at_ms: u64,
    actor: String,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    app: Option<AppId>,
    subject: String,
    #[serde(default)]
    before: Option<serde_json::Value>,
    #[serde(default)]
    after: Option<serde_json::Value>,
}

impl AuditRecord {
    /// Its sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The app it is about (`None`: server-wide).
    pub fn app(&self) -> Option<&AppId> {
        self.app.as_ref()
    }

    /// The record of `e` under sequence number `seq`.
    pub fn new(e: &AuditEntry, seq: u64) -> Self {
        AuditRecord {
            seq,
            at_ms: e.at_ms,
            actor: e.actor.clone(),
            action: e.action.clone(),
            app: e.app.clone(),
            subject: e.subject.clone(),
            before: e.before.clone(),
            after: e.after.clone(),
        }
    }
}

impl From<AuditRecord> for AuditEntry {
    fn from(r: AuditRecord) -> Self {
        AuditEntry {
            seq: r.seq,
            at_ms: r.at_ms,
            actor: r.actor,
            action: r.action,
            app: r.app,
            subject: r.subject,
            before: r.before,
            after: r.after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> (Version, ChannelName) {
        (Version::parse("1.1.0").unwrap(), ChannelName::parse("stable").unwrap())
    }

    #[test]
    fn a_rollout_stored_before_gate_windows_and_comparisons_loads_counting_from_publish() {
        let old = r#"{"spec":{"basis_points":100,"salt":"notes:1.1.0",
            "gate":{"max_install_failure_rate":0.05,"min_sample":100}},"revision":3,
            "clock":{"since_ms":7}}"#;
        let record: RolloutRecord = serde_json::from_str(old).unwrap();
        let (v, ch) = release();
        let (rollout, meta) = record.into_rollout(v, ch).unwrap();
        let gate = rollout.gate.unwrap();
        assert_eq!((gate.max_install_failure_rate, gate.min_sample, gate.compare), (Some(0.05), 100, None));
        assert_eq!((meta.revision, meta.marks), (3, GateMarks::default()));
    }

    #[test]
    fn comparisons_and_marks_round_trip() {
        let (v, ch) = release();
        let old: RolloutRecord =
            serde_json::from_str(r#"{"spec":{"basis_points":100,"salt":"s"},"revision":1}"#).unwrap();
        let (mut rollout, mut meta) = old.into_rollout(v.clone(), ch.clone()).unwrap();
        let compare = Comparison::new(0.5, 0.02, 0.02, 0.01, Percent::from_basis_points(500).unwrap(), 30).unwrap();
        rollout.gate = Some(HealthGate {
            max_install_failure_rate: None,
            max_crash_rate: None,
            min_sample: 0,
            compare: Some(compare),
            action: GateAction::Pause,
            metrics: vec![MetricGate::new(MetricName::parse("session_s").unwrap(), 0.2, 0.05, 40).unwrap()],
        });
        let h = |n| Health { installs: n, install_failures: 1, first_runs: n, crashes: 2 };
        meta.marks = GateMarks { window: h(10), step: h(40), ..GateMarks::default() };
        let bytes = serde_json::to_vec(&RolloutRecord::new(&rollout, meta.clone())).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("metrics\":{"), "no metric marks, none written");
        let back: RolloutRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.into_rollout(v, ch).unwrap(), (rollout, meta));
    }

    /// Removes every field named in `names`, at any depth.
    fn strip(v: &mut serde_json::Value, names: &[&str]) {
        match v {
            serde_json::Value::Object(m) => {
                m.retain(|k, _| !names.contains(&k.as_str()));
                m.values_mut().for_each(|x| strip(x, names));
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| strip(x, names)),
            _ => {}
        }
    }

    #[test]
    fn a_comparison_stored_before_the_last_look_keeps_its_test_and_a_taken_look_round_trips() {
        let (v, ch) = release();
        // Stored before the last look (its comparison without the two fields): no share was
        // kept for it, and it keeps none.
        let fresh: RolloutRecord =
            serde_json::from_str(r#"{"spec":{"basis_points":200,"salt":"s"},"revision":2}"#).unwrap();
        let (mut rollout, meta) = fresh.into_rollout(v.clone(), ch.clone()).unwrap();
        rollout.gate = Some(HealthGate::comparing(Comparison::default()));
        let mut json = serde_json::to_value(RolloutRecord::new(&rollout, meta)).unwrap();
        let text = json.to_string();
        assert!(text.contains("\"last_look\":0.5") && text.contains("\"exhausted_after_s\":86400"), "{text}");
        assert!(text.contains("\"crash_window_s\":86400") && text.contains("\"crashes_proven_from\":1000"), "{text}");
        strip(&mut json, &["last_look", "exhausted_after_s", "crash_window_s", "crashes_proven_from"]);
        let record: RolloutRecord = serde_json::from_value(json).unwrap();
        let (rollout, mut meta) = record.into_rollout(v.clone(), ch.clone()).unwrap();
        let c = rollout.gate.as_ref().and_then(|g| g.compare).expect("a comparing gate");
        assert_eq!((c.last_look(), c.exhausted_after_s()), (0.0, 86_400));
        // Stored before crashes were waited for: they are waited for a day from now on (proof
        // only gets harder), and the crash rate needs proof from the proving share, as before.
        assert_eq!((c.crash_window_s(), c.crashes_proven_from()), (86_400, c.proven_from()));
        assert_eq!(meta.marks.look, None);
        // A look taken, and a comparison with the new settings: both written and read back.
        let mut rollout = rollout;
        rollout.gate.as_mut().unwrap().compare =
            Some(c.with_last_look(0.5).unwrap().with_exhausted_after(3_600).unwrap());
        let h = |n| Health { installs: n, install_failures: 3, first_runs: 0, crashes: 0 };
        meta.marks.look = Some(Looked {
            at_ms: 9,
            percent: Percent::from_basis_points(200).unwrap(),
            window: h(1_900),
            baseline: Some(h(98_000)),
            settled_first_runs: 0,
            call: Call::Undecided,
        });
        let bytes = serde_json::to_vec(&RolloutRecord::new(&rollout, meta.clone())).unwrap();
        let back: RolloutRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.into_rollout(v, ch).unwrap(), (rollout, meta));
    }

    #[test]
    fn metric_marks_and_counter_gates_round_trip_and_records_without_them_still_load() {
        let (v, ch) = release();
        let name = |s: &str| MetricName::parse(s).unwrap();
        let summary = |values: &[f64]| {
            let mut s = Summary::default();
            values.iter().for_each(|x| s.add(*x));
            s
        };
        // A rollout stored before metric windows: a metric gate, window marks of installs only.
        let old = r#"{"spec":{"basis_points":100,"salt":"s","gate":{"min_sample":0,
            "metrics":[{"name":"session_s","degradation":0.1,"alpha":0.01,"min_count":30}]}},
            "revision":4,"marks":{"window":{"installs":7},"step":{"installs":9}}}"#;
        let record: RolloutRecord = serde_json::from_str(old).unwrap();
        let (mut rollout, mut meta) = record.into_rollout(v.clone(), ch.clone()).unwrap();
        assert_eq!((meta.marks.window.installs, meta.marks.step.installs), (7, 9));
        assert_eq!(*meta.marks.metrics, MetricMarks::default(), "no metric marks: values count from publish");
        assert_eq!(rollout.gate.as_ref().unwrap().metrics[0].better(), None);

        let errors = MetricGate::new(name("errors"), 0.2, 0.05, 40).unwrap().with_better(Direction::Lower);
        rollout.gate.as_mut().unwrap().metrics.push(errors);
        let at = |values: &[f64]| {
            BTreeMap::from([(name("session_s"), summary(values)), (name("errors"), summary(&[1.0, 3.0]))])
        };
        meta.marks.metrics = std::sync::Arc::new(MetricMarks {
            window: at(&[300.0, 250.5]),
            step: at(&[300.0, 250.5, 10.0, 1e9]),
            baseline: Some(BaselineMark { release: Version::parse("1.0.0").unwrap(), metrics: at(&[5.0; 40]) }),
        });
        let bytes = serde_json::to_vec(&RolloutRecord::new(&rollout, meta.clone())).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains(r#""better":"lower""#) && text.contains(r#""release":"1.0.0""#), "{text}");
        let back: RolloutRecord = serde_json::from_slice(&bytes).unwrap();
        let (rollout_back, meta_back) = back.into_rollout(v, ch).unwrap();
        assert_eq!(rollout_back, rollout);
        assert_eq!(meta_back, meta, "summaries come back exactly (JSON keeps every bit of an f64)");
    }

    #[test]
    fn an_arms_slot_round_trips_and_a_bad_one_is_refused() {
        let (v, ch) = release();
        let old: RolloutRecord =
            serde_json::from_str(r#"{"spec":{"basis_points":1000,"salt":"s"},"revision":1}"#).unwrap();
        let (mut rollout, meta) = old.into_rollout(v.clone(), ch.clone()).unwrap();
        assert_eq!(rollout.arm, None, "records from before experiments are no arm");
        rollout.arm = Some(ArmSlot::new(5_000, Percent::from_basis_points(5_000).unwrap()).unwrap());
        let bytes = serde_json::to_vec(&RolloutRecord::new(&rollout, meta.clone())).unwrap();
        assert!(String::from_utf8_lossy(&bytes).contains(r#""arm":{"start":5000,"width":5000}"#));
        let back: RolloutRecord = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.into_rollout(v.clone(), ch.clone()).unwrap(), (rollout, meta));
        let bad: RolloutRecord = serde_json::from_str(
            r#"{"spec":{"basis_points":1000,"salt":"s","arm":{"start":9000,"width":5000}},"revision":1}"#,
        )
        .unwrap();
        assert!(bad.into_rollout(v, ch).is_err(), "a slot past bucket 9999 is not loaded");
    }
}
