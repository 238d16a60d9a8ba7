//! The JSON of A/B/N experiments: starting one (`ExperimentRequest`), its view with the arms
//! side by side (`ExperimentView`), and promoting its winner (`PromoteWinnerRequest` →
//! `WinnerPromoted`). Plain data; conversions live in `convert.rs` and the server.

use serde::{Deserialize, Serialize};

use super::admin::{RolloutView, ScheduleSpec};
use crate::{AppId, ChannelName, Direction, Percent, RolloutState, Salt, Version};

/// One arm asked for: a release already rolled out on the channel, and its share.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArmRequest {
    /// The arm's release.
    pub version: Version,
    /// Its share of the channel's devices, in basis points (above 0).
    pub basis_points: Percent,
}

/// `POST /v1/apps/{app}/channels/{channel}/experiment`: starts an experiment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentRequest {
    /// Two or more arms; the shares add up to at most 10000.
    pub arms: Vec<ArmRequest>,
    /// Why, for the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Where an arm sits in the experiment's buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArmSlotSpec {
    /// Its first bucket.
    pub start: u16,
    /// Its width (the most its share can widen to), in basis points; 10000 for a promoted
    /// winner (its share goes round from `start`).
    pub width: Percent,
}

/// One figure's value in one arm.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArmValue {
    /// The values behind it (install attempts, first runs, a metric's reports).
    pub count: u64,
    /// Their mean: a rate for a rate.
    pub mean: f64,
}

/// One figure compared across the arms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FigureView {
    /// `install_failure_rate`, `crash_rate`, or an app metric's name.
    pub name: String,
    /// Which way is better.
    pub direction: Direction,
    /// The figure in each arm, in the order of `ExperimentView::arms`.
    pub arms: Vec<ArmValue>,
    /// The arm ahead, if one is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ahead: Option<Version>,
    /// True when the arm ahead is proven better than every other (always-valid test).
    pub proven: bool,
    /// The weakest of the leader's tests, `ln Λ`.
    pub statistic: f64,
    /// The bound it must reach, `ln((arms - 1) / alpha)`.
    pub bound: f64,
}

/// One arm with its figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmView {
    /// The release.
    pub version: Version,
    /// Its share, in basis points.
    pub basis_points: Percent,
    /// Its slot.
    pub slot: ArmSlotSpec,
    /// Its rollout's state (a gate may have halted it).
    pub state: RolloutState,
    /// Devices that installed it.
    pub installs: u64,
    /// Devices whose install failed.
    pub install_failures: u64,
    /// Devices that ran it for the first time.
    pub first_runs: u64,
    /// Devices that crashed on it.
    pub crashes: u64,
}

/// `GET /v1/apps/{app}/channels/{channel}/experiment`: the running experiment, arms side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExperimentView {
    /// The app.
    pub app: AppId,
    /// The channel.
    pub channel: ChannelName,
    /// The salt every arm buckets by.
    pub salt: Salt,
    /// The entity tag to send in `If-Match` when promoting (changes with any arm).
    pub etag: String,
    /// The arms, by slot.
    pub arms: Vec<ArmView>,
    /// Every figure compared, arm by arm.
    pub figures: Vec<FigureView>,
}

/// `POST /v1/apps/{app}/channels/{channel}/experiment/promote` (with `If-Match`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromoteWinnerRequest {
    /// The winning arm's release.
    pub winner: Version,
    /// The winner's new share (at least its arm's); absent: it keeps its share.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis_points: Option<Percent>,
    /// A schedule for the winner to widen by (continuing from the step at or below its share).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<ScheduleSpec>,
    /// Promote even though a loser is newer than the winner (its devices keep the loser).
    #[serde(default)]
    pub allow_higher_losers: bool,
    /// Why, for the audit log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What promoting the winner did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WinnerPromoted {
    /// The winner's rollout now.
    pub winner: RolloutView,
    /// The losers, now halted ordinary rollouts.
    pub retired: Vec<Version>,
    /// Losers newer than the winner: their devices keep them (nobody is offered a lower
    /// version); a rebuild of the winner's code under a version above these reaches them.
    pub newer_than_winner: Vec<Version>,
}
