//! A/B/N experiments on a channel: starting one (its arms become rollouts bucketed by one
//! experiment salt, in slots laid out by `Experiment::lay_out`), its view with the arms side
//! by side (`compare_arms` on the figures every arm has), and promoting its winner (its slot
//! goes round the whole circle, the losers are halted). Every write goes through the
//! `Writer` and the store like any rollout change; the domain decides, this orchestrates.

use halftone_channels::wire::{
    ArmSlotSpec, ArmValue, ArmView, ExperimentRequest, ExperimentView, FigureView, PromoteWinnerRequest, WinnerPromoted,
};
use halftone_channels::{
    ARM_TEST, AppId, ArmShare, ChannelName, Experiment, Figure, Health, IdList, Metric, MetricKind, Rollout,
    RolloutEdit, RolloutState, Schedule, Summary, Version, compare_arms, metric_test,
};

use crate::auth::Principal;
use crate::feedback::MetricFigures;
use crate::problem::ApiError;
use crate::snapshot::AppSnapshot;
use crate::state::State;

impl State {
    /// Starts an experiment on `channel` with the arms of `req`: each a release already rolled
    /// out there, set to its share of the experiment's slot (schedule, allow list and
    /// interactive bypass cleared: an arm admits by its range only).
    pub async fn start_experiment(
        &self,
        who: &Principal,
        id: AppId,
        channel: ChannelName,
        req: ExperimentRequest,
    ) -> Result<ExperimentView, ApiError> {
        let mut w = self.writer().await;
        let app = w.app(&id).await?;
        known_channel(&app, &channel)?;
        let shares: Vec<ArmShare> =
            req.arms.iter().map(|a| ArmShare { release: a.version.clone(), share: a.basis_points }).collect();
        let slots = Experiment::lay_out(&shares)?;
        let salt = Experiment::salt_for(&id, &channel, &shares)?;
        if let Some(running) = app.catalog.experiment(&channel) {
            let arms: Vec<String> = running.arms.iter().map(|r| r.release.to_string()).collect();
            return Err(ApiError::Conflict(format!(
                "an experiment already runs on {channel} ({}): its arms would overlap; promote its winner first",
                arms.join(" vs ")
            )));
        }
        let mut pairs = Vec::with_capacity(slots.len());
        for ((version, slot), share) in slots.into_iter().zip(&shares) {
            let current = arm_rollout(&app, &version, &channel)?;
            let next = Rollout {
                salt: salt.clone(),
                arm: Some(slot),
                percent: share.share,
                schedule: None,
                allow: IdList::default(),
                interactive_bypass: false,
                state: RolloutState::Active,
                ..current.clone()
            };
            pairs.push((current.clone(), next));
        }
        let reasons = reasons(&req.reason, pairs.len(), "experiment started");
        let built =
            w.replace_rollouts(self.clock.now_ms(), &who.name, &app, "experiment.start", pairs, &reasons).await?;
        self.experiment_of(&built, &channel)
    }

    /// The running experiment on `channel`, arms side by side.
    pub fn experiment_view(&self, id: &AppId, channel: &ChannelName) -> Result<ExperimentView, ApiError> {
        let app = self.app(id)?;
        known_channel(&app, channel)?;
        self.experiment_of(&app, channel)
    }

    /// Every running experiment of an app (for the status view).
    pub fn experiment_views(&self, app: &AppSnapshot) -> Vec<ExperimentView> {
        app.catalog.ladder().channels().into_iter().filter_map(|(ch, _)| self.experiment_of(app, ch).ok()).collect()
    }

    fn experiment_of(&self, app: &AppSnapshot, channel: &ChannelName) -> Result<ExperimentView, ApiError> {
        let x = app.catalog.experiment(channel).ok_or_else(|| no_experiment(&app.id, channel))?;
        let health: Vec<Health> = x
            .arms
            .iter()
            .map(|r| {
                let f = self.feedback.figures(&app.id, &r.release, channel);
                Health {
                    installs: f.installs,
                    install_failures: f.install_failures,
                    first_runs: f.first_runs,
                    crashes: f.crashes,
                }
            })
            .collect();
        // The rates, then every value metric the app declares, each arm's build wherever it runs.
        let metrics: Vec<_> = x.arms.iter().map(|r| self.feedback.metrics(&app.id, &r.release)).collect();
        let value_metrics = app.settings.metrics.iter().filter_map(|(name, kind)| match kind {
            MetricKind::Value(direction) => Some(Figure {
                name: name.to_string(),
                direction,
                arms: metrics
                    .iter()
                    .map(|m| match m.get(name) {
                        Some(MetricFigures::Value(d)) => *d.summary(),
                        _ => Summary::default(),
                    })
                    .collect(),
            }),
            MetricKind::Counter => None,
        });
        let figures = Metric::ALL
            .iter()
            .map(|&m| (ARM_TEST, Figure::rate(m, &health)))
            .chain(value_metrics.map(|f| (metric_test(&f), f)))
            .map(|(test, figure)| {
                let c = compare_arms(&test, figure);
                FigureView {
                    name: c.figure.name.clone(),
                    direction: c.figure.direction,
                    arms: c.figure.arms.iter().map(|s| ArmValue { count: s.count(), mean: s.mean() }).collect(),
                    ahead: c.ahead.map(|i| x.arms[i].release.clone()),
                    proven: c.proven,
                    statistic: c.statistic,
                    bound: c.bound,
                }
            })
            .collect();
        let arms = x
            .arms
            .iter()
            .zip(&health)
            .map(|(r, h)| {
                let slot = r.arm.expect("an experiment's arms have slots");
                ArmView {
                    version: r.release.clone(),
                    basis_points: r.percent,
                    slot: ArmSlotSpec { start: slot.start(), width: slot.width() },
                    state: r.state,
                    installs: h.installs,
                    install_failures: h.install_failures,
                    first_runs: h.first_runs,
                    crashes: h.crashes,
                }
            })
            .collect();
        Ok(ExperimentView {
            app: app.id.clone(),
            channel: channel.clone(),
            salt: x.salt.clone(),
            etag: experiment_etag(app, &x),
            arms,
            figures,
        })
    }

    /// Promotes the winner of the experiment on `channel`, if `if_match` names its current
    /// state: the winner's slot becomes the whole circle from its start (its devices stay, it
    /// widens to `basis_points` or by `schedule`), the losers are halted and stop being arms.
    /// Refused when a loser is newer than the winner, unless `allow_higher_losers`: those
    /// devices keep the loser (nothing lower is ever offered).
    pub async fn promote_winner(
        &self,
        who: &Principal,
        id: AppId,
        channel: ChannelName,
        if_match: Option<&str>,
        req: PromoteWinnerRequest,
    ) -> Result<WinnerPromoted, ApiError> {
        let if_match = if_match.ok_or_else(|| {
            ApiError::PreconditionRequired(
                "send If-Match with the experiment's ETag (GET it first) so concurrent changes are not lost".into(),
            )
        })?;
        let schedule = req.schedule.clone().map(Schedule::try_from).transpose()?;
        let mut w = self.writer().await;
        let app = w.app(&id).await?;
        known_channel(&app, &channel)?;
        let x = app.catalog.experiment(&channel).ok_or_else(|| no_experiment(&id, &channel))?;
        let etag = experiment_etag(&app, &x);
        if if_match.trim() != etag {
            return Err(ApiError::PreconditionFailed(format!(
                "the experiment changed since you read it (now {etag}, you sent {if_match}); read it again"
            )));
        }
        let Some(winner) = x.arms.iter().find(|r| r.release == req.winner) else {
            let arms: Vec<String> = x.arms.iter().map(|r| r.release.to_string()).collect();
            return Err(ApiError::Unprocessable(format!(
                "{} is not an arm of the experiment on {channel} (arms: {})",
                req.winner,
                arms.join(", ")
            )));
        };
        if winner.state == RolloutState::Halted {
            return Err(ApiError::Conflict(format!(
                "{} is halted (by its gate or by hand): resume it before promoting it",
                winner.release
            )));
        }
        let newer: Vec<Version> =
            x.arms.iter().filter(|r| r.release > winner.release).map(|r| r.release.clone()).collect();
        if !newer.is_empty() && !req.allow_higher_losers {
            let list: Vec<String> = newer.iter().map(Version::to_string).collect();
            return Err(ApiError::Conflict(format!(
                "{} is newer than the winner {}: its devices would keep it, since nobody is offered a lower \
                 version. Rebuild the winner's code as a version above {} and start it instead, or set \
                 allow_higher_losers (CLI: --allow-higher-losers) to promote anyway",
                list.join(", "),
                winner.release,
                list.last().expect("not empty")
            )));
        }
        let percent = req.basis_points.unwrap_or(winner.percent);
        if percent < winner.percent {
            return Err(ApiError::Unprocessable(format!(
                "the winner's share only widens: {} is below its arm's {}",
                percent, winner.percent
            )));
        }
        let slot = winner.arm.expect("an experiment's arms have slots").promoted();
        let widened = Rollout { arm: Some(slot), ..(*winner).clone() }.edited(RolloutEdit {
            percent: Some(percent),
            schedule,
            ..Default::default()
        });
        let mut pairs = vec![((*winner).clone(), widened)];
        let losers: Vec<&Rollout> = x.arms.iter().copied().filter(|r| r.release != winner.release).collect();
        for l in &losers {
            pairs.push(((*l).clone(), Rollout { arm: None, state: RolloutState::Halted, ..(*l).clone() }));
        }
        let why = req.reason.clone().unwrap_or_else(|| format!("{} won the experiment on {channel}", winner.release));
        let mut reasons = vec![format!("winner: {why}")];
        reasons.extend(losers.iter().map(|_| format!("retired: {why}")));
        let retired: Vec<Version> = losers.iter().map(|r| r.release.clone()).collect();
        let winner_version = winner.release.clone();
        let built =
            w.replace_rollouts(self.clock.now_ms(), &who.name, &app, "experiment.promote", pairs, &reasons).await?;
        let (_, rollouts) = built.catalog.release(&winner_version).expect("the winner exists");
        let winner = rollouts.iter().find(|r| r.channel == channel).expect("the winner's rollout exists");
        Ok(WinnerPromoted { winner: built.rollout_view(winner), retired, newer_than_winner: newer })
    }
}

/// One audit reason per arm: the engineer's, or `default`.
fn reasons(reason: &Option<String>, n: usize, default: &str) -> Vec<String> {
    vec![reason.clone().unwrap_or_else(|| default.to_owned()); n]
}

/// The experiment's entity tag: every arm's rollout revision, so any change to an arm (a gate
/// halting it, an edit) changes it.
fn experiment_etag(app: &AppSnapshot, x: &Experiment<'_>) -> String {
    let revisions: Vec<String> = x.arms.iter().map(|r| app.revision(&r.release, &r.channel).to_string()).collect();
    format!("\"x{}\"", revisions.join("."))
}

/// The rollout of `version` on `channel` that an arm is made of: 422 when the release does not
/// exist or is not rolled out there (the version is part of the request's body).
fn arm_rollout<'a>(app: &'a AppSnapshot, version: &Version, channel: &ChannelName) -> Result<&'a Rollout, ApiError> {
    let (_, rollouts) = app
        .catalog
        .release(version)
        .ok_or_else(|| ApiError::Unprocessable(format!("app {} has no release {version}", app.id)))?;
    rollouts.iter().find(|r| r.channel == *channel).map(|r| &**r).ok_or_else(|| {
        ApiError::Unprocessable(format!(
            "release {version} is not rolled out on {channel}: publish it there first (at 0% if need be)"
        ))
    })
}

fn known_channel(app: &AppSnapshot, channel: &ChannelName) -> Result<(), ApiError> {
    match app.catalog.ladder().rank(channel.as_str()) {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("app {} has no channel {channel}", app.id))),
    }
}

fn no_experiment(app: &AppId, channel: &ChannelName) -> ApiError {
    ApiError::NotFound(format!("no experiment runs on channel {channel} of {app}"))
}
