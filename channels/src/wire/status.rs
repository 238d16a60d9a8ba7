//! What `GET /v1/apps/{app}/status` reports: every rollout's state, schedule, gate, feedback
//! [`Figures`] and history, and which versions devices run ([`ChannelAdoption`]); and what
//! `GET /v1/apps/{app}/adoption` reports: the same adoption per window over time
//! ([`AdoptionHistory`]).

use serde::{Deserialize, Serialize};

use super::{AuditEntry, GateSpec, MetricKindSpec};
use crate::{AppId, ChannelName, Direction, Metric, MetricName, Percent, RolloutState, Step, Version};

/// counted with sketches, about 2% error).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Figures {
    /// Check-ins that were offered this release (every check-in counts).
    pub offers: u64,
    /// Distinct devices offered it.
    pub offered_devices: u64,
    /// Devices that started downloading it.
    pub downloads: u64,
    /// Devices whose download failed.
    pub download_failures: u64,
    /// Devices that installed it.
    pub installs: u64,
    /// Devices whose install failed.
    pub install_failures: u64,
    /// Devices that ran it for the first time.
    pub first_runs: u64,
    /// Devices that crashed on it.
    pub crashes: u64,
}

/// A rollout's install figures at one moment (`GET .../rollouts/{channel}/trend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendPoint {
    /// When (ms since the epoch, by the server's clock).
    pub at_ms: u64,
    /// Devices that installed the release (as in [`Figures`]).
    pub installs: u64,
    /// Devices whose install failed.
    pub install_failures: u64,
    /// Devices that ran it for the first time.
    pub first_runs: u64,
    /// Devices that crashed on it.
    pub crashes: u64,
}

impl TrendPoint {
    /// Whether `other` has the same figures (at whatever time).
    pub fn same_figures(&self, other: &TrendPoint) -> bool {
        (self.installs, self.install_failures, self.first_runs, self.crashes)
            == (other.installs, other.install_failures, other.first_runs, other.crashes)
    }
}

/// `GET /v1/apps/{app}/releases/{version}/rollouts/{channel}/trend`: the rollout's figures
/// over time, oldest first, one point per change (sampled every 5 minutes, kept for about 4
/// days, in the answering server's memory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrendView {
    /// Oldest first.
    pub points: Vec<TrendPoint>,
}

/// Where a scheduled rollout stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleStatus {
    /// The steps.
    pub steps: Vec<Step>,
    /// The index of the current step (the highest at or below the rollout's percentage).
    pub step: Option<usize>,
    /// When the current step began (ms since the epoch; shifted by time spent paused).
    pub since_ms: u64,
    /// When the next step is due if the health gate passes, while active.
    pub next_at_ms: Option<u64>,
}

/// One rollout's state, figures and history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutStatus {
    /// The channel.
    pub channel: ChannelName,
    /// Active, paused or halted.
    pub state: RolloutState,
    /// The current share.
    pub basis_points: Percent,
    /// The schedule, if any.
    pub schedule: Option<ScheduleStatus>,
    /// The health gate, if any.
    pub gate: Option<GateSpec>,
    /// Feedback figures.
    pub figures: Figures,
    /// The build a comparing gate judges this one against, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Version>,
    /// A comparing gate's evidence now, one entry per metric judged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceView>,
    /// The app metrics of this build (on every channel) beside the baseline's, one entry per
    /// declared metric.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricView>,
    /// The metric gates' evidence now, one entry per metric gate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_evidence: Vec<MetricEvidenceView>,
    /// The metric gates whose current step lacks new values: the step does not widen yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metric_step_waits: Vec<MetricStepView>,
    /// A comparing gate's proving step held for evidence: when its audience counts as
    /// exhausted if no new install reports come (docs/gates.md, *The last look*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exhaustion: Option<ExhaustionView>,
    /// The last look taken in the gate's window, once taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_look: Option<LastLookTakenView>,
    /// Every change to this rollout, oldest first (including the scheduler's and gates').
    pub history: Vec<AuditEntry>,
}

/// A comparing gate's evidence on one metric: the candidate's figures in the gate's window,
/// the baseline's, the rates tested, the statistic and its bounds (docs/gates.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceView {
    /// The metric.
    pub metric: Metric,
    /// `worse`, `no_worse`, `undecided` or `baseline_too_small`.
    pub call: String,
    /// The candidate's bad outcomes in the window.
    pub bad: u64,
    /// Its trials in the window.
    pub sample: u64,
    /// `bad / sample`.
    pub rate: f64,
    /// The baseline's bad outcomes.
    pub baseline_bad: u64,
    /// The baseline's trials.
    pub baseline_sample: u64,
    /// The baseline's rate.
    pub baseline_rate: f64,
    /// The rate tolerated (`p0`: the baseline's upper confidence bound).
    pub tolerated: f64,
    /// The rate to catch (`p1`).
    pub worse: f64,
    /// The log likelihood ratio of `p1` against `p0`.
    pub statistic: f64,
    /// The statistic halts at or above this.
    pub halt_at: f64,
    /// The proof statistic proves the build no worse at or below this.
    pub accept_at: f64,
    /// The bad outcomes proof is judged on: `bad`, but for the crash rate, whose crashes
    /// count against the settled first runs only (`proof_sample`).
    #[serde(default)]
    pub proof_bad: u64,
    /// The trials proof is judged on: `sample`, but for the crash rate the first runs reported
    /// at least the gate's `crash_window_s` ago.
    #[serde(default)]
    pub proof_sample: u64,
    /// The log likelihood ratio on the proof's figures.
    #[serde(default)]
    pub proof_statistic: f64,
}

/// A proving step waiting to be judged exhausted, as the replica answering saw its reports
/// (the scheduler's replica keeps the wait; another replica counts from when it first saw
/// them, so its `exhausted_at_ms` may be later).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExhaustionView {
    /// The step's install reports (installs and install failures since it began).
    pub step_reports: u64,
    /// When they last grew (or were first seen).
    pub reports_grew_at_ms: u64,
    /// When the step counts as exhausted if no new reports come (at or before now: it is,
    /// and the scheduler takes the last look at its next tick).
    pub exhausted_at_ms: u64,
}

/// The last look taken at an exhausted proving step: when, at which share, what it said
/// (`worse`: tripped; `no_worse`: widened; `undecided`: paused) and each rate's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastLookTakenView {
    /// When.
    pub at_ms: u64,
    /// The step's share then.
    pub basis_points: Percent,
    /// `worse`, `no_worse` or `undecided`.
    pub call: String,
    /// One per rate judged (none without a baseline).
    pub looks: Vec<LastLookView>,
}

/// The last look's figures on one rate: the exact binomial tails and their thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastLookView {
    /// The metric.
    pub metric: Metric,
    /// `worse`, `no_worse`, `undecided` or `baseline_too_small`.
    pub call: String,
    /// The candidate's bad outcomes in the window.
    pub bad: u64,
    /// Its trials in the window.
    pub sample: u64,
    /// The baseline's bad outcomes.
    pub baseline_bad: u64,
    /// The baseline's trials.
    pub baseline_sample: u64,
    /// The rate tolerated (`p0`).
    pub tolerated: f64,
    /// The rate to catch (`p1`).
    pub worse: f64,
    /// The bad outcomes proof is judged on (`bad`, but for the crash rate: see
    /// [`EvidenceView::proof_bad`]).
    #[serde(default)]
    pub proof_bad: u64,
    /// The trials proof is judged on (`sample`, but for the crash rate the settled first runs).
    #[serde(default)]
    pub proof_sample: u64,
    /// The chance of at least `bad` at the tolerated rate.
    pub if_tolerated: f64,
    /// The chance of at most `proof_bad` of `proof_sample` at the rate to catch.
    pub if_worse: f64,
    /// Worse when `if_tolerated` is at or below this.
    pub halt_below: f64,
    /// No worse when `if_worse` is at or below this.
    pub accept_below: f64,
}

/// One app metric of a build, beside the baseline's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricView {
    /// The metric.
    pub name: MetricName,
    /// `value` or `counter`.
    pub kind: MetricKindSpec,
    /// For a value: which way is better.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub better: Option<Direction>,
    /// This build's figures.
    pub build: MetricFiguresView,
    /// The baseline build's, when the rollout has a baseline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<MetricFiguresView>,
}

/// A metric's figures for one build: for a value, its count, mean, standard deviation and
/// quantiles (within 1%); for a counter, its sum, the devices that reported it and the sum per
/// device. Fields that do not apply are absent.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct MetricFiguresView {
    /// Values reported (value metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// Their mean.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Their standard deviation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std_dev: Option<f64>,
    /// The median.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    /// The 90th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    /// The 99th percentile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
    /// The counter's sum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sum: Option<u64>,
    /// Devices that reported the counter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<u64>,
    /// `sum / devices`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_device: Option<f64>,
}

/// A metric gate's evidence: the candidate's values and the baseline's, the mean tolerated,
/// the always-valid test's statistic and its bound (docs/gates.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricEvidenceView {
    /// The metric.
    pub metric: MetricName,
    /// `worse`, `no_worse` or `undecided`.
    pub call: String,
    /// Which way is better.
    pub better: Direction,
    /// What the means are over: `values` (a value metric) or `counts_per_report` (a counter).
    #[serde(default = "values")]
    pub measure: String,
    /// The candidate's values (a counter's reports) in the gate's window.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// The baseline's values in the same time window (docs/gates.md).
    pub baseline_count: u64,
    /// Their mean.
    pub baseline_mean: f64,
    /// The mean tolerated: the baseline's, degraded by the gate's tolerance.
    pub tolerated: f64,
    /// `ln Λ` of the mean test.
    pub statistic: f64,
    /// It decides at or above this: `ln(1 / alpha)`.
    pub decides_at: f64,
}

/// One release's rollouts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseStatus {
    /// The version.
    pub version: Version,
    /// Whether it must be taken.
    pub critical: bool,
    /// The version whose code it re-issues, for a rollback.
    pub rebuild_of: Option<Version>,
    /// Per channel.
    pub rollouts: Vec<RolloutStatus>,
}

/// Distinct devices that checked in on one version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionAdoption {
    /// The version the devices ran.
    pub version: Version,
    /// In the last day (windows of 4 hours: the last 24 to 28 hours).
    pub last_day: u64,
    /// In the last week.
    pub last_week: u64,
}

/// Adoption on one channel, newest version first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAdoption {
    /// The channel devices are on.
    pub channel: ChannelName,
    /// Per version.
    pub versions: Vec<VersionAdoption>,
}

/// `GET /v1/apps/{app}/status[?version=V]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// The app.
    pub app: AppId,
    /// Releases (newest first; one when a version is asked for).
    pub releases: Vec<ReleaseStatus>,
    /// Which versions devices run, per channel.
    pub adoption: Vec<ChannelAdoption>,
    /// The running A/B/N experiments, one per channel at most, arms side by side.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub experiments: Vec<super::ExperimentView>,
}

/// Distinct devices that checked in on one version in one adoption window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowCount {
    /// When the window began (ms since the epoch; windows are `window_ms` wide).
    pub start_ms: u64,
    /// Distinct devices (approximate above about a hundred).
    pub devices: u64,
}

/// One version's adoption windows on one channel, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionHistory {
    /// The version the devices ran.
    pub version: Version,
    /// The windows in which any device checked in on it, oldest first.
    pub windows: Vec<WindowCount>,
}

/// Adoption over time on one channel, newest version first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelHistory {
    /// The channel devices are on.
    pub channel: ChannelName,
    /// Per version.
    pub versions: Vec<VersionHistory>,
}

/// `GET /v1/apps/{app}/adoption`: adoption by version over the windows the server keeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdoptionHistory {
    /// The app.
    pub app: AppId,
    /// The width of a window (ms).
    pub window_ms: u64,
    /// Per channel, by name.
    pub channels: Vec<ChannelHistory>,
}

/// What a metric evidence's means are over when an answer does not say: values.
fn values() -> String {
    "values".to_owned()
}

/// A metric gate whose step waits for values of its own (docs/gates.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricStepView {
    /// The metric.
    pub metric: MetricName,
    /// Its new values (a counter's reports) since the step began.
    pub new_values: u64,
    /// The gate's `min_count`: the step widens from this many on.
    pub needed: u64,
}
