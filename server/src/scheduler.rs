//! The scheduler: advances staged schedules and enforces health gates by itself.
//!
//! [`State::tick`] looks at every active rollout that has a schedule or a gate, with the
//! feedback figures of its release (since its gate window and its current step began) and of
//! its baseline, and the time from the injectable clock: a tripped gate halts (or pauses) the
//! rollout and records why, with the figures, in the audit log; an elapsed hold advances to
//! the next step only when the gate has the evidence to widen (its sample for the step, and,
//! from a comparing gate's proving share on, proof the build is no worse), and the advance's
//! audit entry records that evidence. A rollout on a first step of a number of devices is
//! widened to that many devices' share of its audience (`Schedule::fit`, audit action
//! `schedule.fit`), which keeps its hold clock and step sample. Metric gates judge the values
//! since the window began against the baseline's in the same time window, and hold a step
//! until it has new values of every gated metric. A proving step held for evidence whose
//! install reports stopped growing (`StepExhaustion`, with `ReportsWatch` remembering when
//! they last grew) gets the comparison's last look (`ExhaustedStep`), once per gate window:
//! a trip (`gate.trip`), a widening (`schedule.advance`) or a pause (`gate.exhausted`), each
//! with the look's figures as its reason.
//! Changes go through the same path as an engineer's (committed, flushed, published).

use std::sync::{Arc, Weak};
use std::time::Duration;

use halftone_channels::{
    Call, ChannelName, Comparison, ExhaustedStep, GateAction, GateFigures, GateVerdict, MetricEvidence, MetricSample,
    Percent, ReportsSeen, Rollout, RolloutState, Schedule, StepExhaustion, StepShort, Summary, Tick,
};

use crate::snapshot::{AppSnapshot, GateMarks, Looked};
use crate::state::State;

/// The actor named in the audit log for changes the scheduler makes.
pub const SCHEDULER: &str = "scheduler";
/// The actor named in the audit log for changes a health gate makes.
pub const HEALTH_GATE: &str = "health-gate";
/// The audit action of a step of a number of devices fitted to its audience: the rollout stays
/// on its step (same hold clock, same step sample).
pub const FIT: &str = "schedule.fit";
/// The audit action of a rollout paused on an exhausted proving step, undecided (actor
/// `health-gate`; the reason begins "undecided: the step's audience is exhausted").
pub const EXHAUSTED: &str = "gate.exhausted";

/// What an exhausted proving step comes to: the rollout after, who changes it, the audit
/// action and reason, and the last look to keep in its marks (none when one was taken).
struct Exhausted {
    after: Rollout,
    actor: &'static str,
    action: &'static str,
    reason: String,
    look: Option<Looked>,
}

/// The state a tripped gate with `action` leaves its rollout in.
fn tripped_state(action: GateAction) -> RolloutState {
    match action {
        GateAction::Halt => RolloutState::Halted,
        GateAction::Pause => RolloutState::Paused,
    }
}

/// What one tick did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TickReport {
    /// Rollouts advanced to a next step, as `app version/channel -> percent`.
    pub advanced: Vec<String>,
    /// Rollouts stopped by their gate, as `app version/channel: why`.
    pub tripped: Vec<String>,
}

impl State {
    /// Advances schedules and enforces gates at the clock's current time.
    pub async fn tick(&self) -> anyhow::Result<TickReport> {
        let mut report = TickReport::default();
        let mut w = self.writer().await;
        // Another replica may have ticked (or an engineer changed a rollout) since this one
        // last looked: decide on what is stored.
        w.sync().await?;
        let now = self.clock.now_ms();
        let apps: Vec<_> = w.snapshot().apps.values().cloned().collect();
        let mut watched = Vec::new();
        for app in apps {
            let mut trips = Vec::new();
            let mut advances = Vec::new();
            let mut fits = Vec::new();
            let mut exhausted = Vec::new();
            for (_, rollouts) in app.catalog.releases() {
                for r in rollouts.iter().filter(|r| r.state == RolloutState::Active) {
                    if r.schedule.is_none() && r.gate.is_none() {
                        continue;
                    }
                    let meta = app.meta_of(&r.release, &r.channel);
                    let figures = r.gate.as_ref().map(|_| self.gate_figures(&app, r, &meta.marks));
                    let judged = r.gate.as_ref().zip(figures.as_ref()).map(|(g, f)| (g.check(f), g.evidence(f)));
                    let verdict = judged.as_ref().map(|(v, _)| *v);
                    let on_metrics = self.metric_evidence(&app, r, &meta.marks);
                    let subject = format!("{} {}/{}", app.id, r.release, r.channel);
                    // A limit breached or a rate proven worse first; else a metric proven worse.
                    let breach = match verdict {
                        Some(GateVerdict::Trip(breach)) => Some(breach.to_string()),
                        _ => on_metrics.iter().find(|e| e.call == Call::Worse).map(ToString::to_string),
                    };
                    if let (Some(gate), Some(breach)) = (&r.gate, breach) {
                        let state = tripped_state(gate.action);
                        tracing::warn!(rollout = %subject, %breach, ?state, "health gate tripped");
                        metrics::counter!("halftone_gate_trips_total", "app" => app.id.to_string()).increment(1);
                        report.tripped.push(format!("{subject}: {breach}"));
                        trips.push(((**r).clone(), Rollout { state, ..(**r).clone() }, breach));
                        continue;
                    }
                    // A comparing gate's step reports: when they last grew, for the last look.
                    let seen = r.gate.as_ref().filter(|g| g.compare.is_some()).zip(figures.as_ref()).map(|(_, f)| {
                        let key = (app.id.clone(), r.release.clone(), r.channel.clone());
                        watched.push(key.clone());
                        self.reports_seen.observe(key, meta.revision, ReportsSeen::reports_of(f), now)
                    });
                    let Some(schedule) = &r.schedule else { continue };
                    if let Some(to) = self.fit(&app, r, schedule, now) {
                        report.advanced.push(format!("{subject} -> {to}"));
                        fits.push(((**r).clone(), Rollout { percent: to, ..(**r).clone() }));
                        continue;
                    }
                    let tick = schedule.next(r.percent, r.state, &meta.clock, now);
                    if let (Some(gate), Some(f), Some(v), Some(seen)) = (&r.gate, &figures, verdict, seen)
                        && StepExhaustion::of(gate.compare.as_ref(), f, v, tick, seen, now) == StepExhaustion::Exhausted
                        && let (Some(c), Tick::Advance { to, .. }) = (gate.compare, tick)
                    {
                        let step = self.last_look(&app, r, &meta.marks, &c, f, to, now);
                        tracing::warn!(rollout = %subject, outcome = %step.reason, "proving step exhausted");
                        match step.after.state {
                            RolloutState::Active => report.advanced.push(format!("{subject} -> {to}")),
                            _ => report.tripped.push(format!("{subject}: {}", step.reason)),
                        }
                        exhausted.push(((**r).clone(), step));
                        continue;
                    }
                    if let Tick::Advance { to, .. } = tick {
                        if verdict == Some(GateVerdict::NotEnoughSample) {
                            continue;
                        }
                        // Every gated metric needs values of its own in this step, as installs do.
                        if !self.metric_steps_short(&app, r, &meta.marks).is_empty() {
                            continue;
                        }
                        // A step widened on a comparison's evidence says so in its audit entry;
                        // others keep the entry they always had (the rollout as `after`).
                        let said: Vec<String> = judged
                            .iter()
                            .flat_map(|(_, e)| e.iter().map(ToString::to_string))
                            .chain(on_metrics.iter().map(ToString::to_string))
                            .collect();
                        let why = (!said.is_empty()).then(|| said.join("; "));
                        report.advanced.push(format!("{subject} -> {to}"));
                        advances.push(((**r).clone(), Rollout { percent: to, ..(**r).clone() }, why));
                    }
                }
            }
            if !fits.is_empty() {
                w.replace_rollouts(now, SCHEDULER, &app, FIT, fits, &[]).await?;
            }
            let (judged, plain): (Vec<_>, Vec<_>) = advances.into_iter().partition(|(_, _, why)| why.is_some());
            if !plain.is_empty() {
                let app = w.snapshot().apps.get(&app.id).cloned().unwrap_or_else(|| app.clone());
                let pairs = plain.into_iter().map(|(b, a, _)| (b, a)).collect();
                w.replace_rollouts(now, SCHEDULER, &app, "schedule.advance", pairs, &[]).await?;
            }
            if !judged.is_empty() {
                let app = w.snapshot().apps.get(&app.id).cloned().unwrap_or_else(|| app.clone());
                let (pairs, why): (Vec<_>, Vec<_>) =
                    judged.into_iter().map(|(b, a, why)| ((b, a), why.unwrap_or_default())).unzip();
                w.replace_rollouts(now, SCHEDULER, &app, "schedule.advance", pairs, &why).await?;
            }
            if !trips.is_empty() {
                let app = w.snapshot().apps.get(&app.id).cloned().unwrap_or_else(|| app.clone());
                let pairs = trips.iter().map(|(b, a, _)| (b.clone(), a.clone())).collect();
                let why: Vec<_> = trips.iter().map(|(_, _, breach)| breach.clone()).collect();
                w.replace_rollouts(now, HEALTH_GATE, &app, "gate.trip", pairs, &why).await?;
            }
            // Rare (once per gate window at most): one commit each.
            for (before, step) in exhausted {
                let app = w.snapshot().apps.get(&app.id).cloned().unwrap_or_else(|| app.clone());
                let pairs = vec![(before, step.after)];
                let looks = [step.look];
                w.replace_rollouts_looked(now, step.actor, &app, step.action, pairs, &[step.reason], &looks).await?;
            }
        }
        self.reports_seen.keep_only(&watched);
        self.first_runs_seen.keep_only(&watched);
        Ok(report)
    }

    /// What an exhausted proving step of `r` (its gate comparing with `c`, its figures `f`,
    /// its next step `to`) comes to: the last look, taken once per gate window, trips it when
    /// a rate is worse, widens it when every rate is no worse (and every gated metric has its
    /// step's values), and pauses it otherwise; a step exhausted again in a window whose look
    /// was taken pauses without another.
    #[allow(clippy::too_many_arguments)]
    fn last_look(
        &self,
        app: &AppSnapshot,
        r: &Rollout,
        marks: &GateMarks,
        c: &Comparison,
        f: &GateFigures,
        to: Percent,
        now: u64,
    ) -> Exhausted {
        let paused = Rollout { state: RolloutState::Paused, ..r.clone() };
        if let Some(taken) = marks.look {
            let reason = format!(
                "{}; the last look of this window was taken at {} ({}): another would exceed its error rates",
                ExhaustedStep::UNDECIDED,
                taken.percent,
                taken.call.phrase()
            );
            return Exhausted { after: paused, actor: HEALTH_GATE, action: EXHAUSTED, reason, look: None };
        }
        let step = ExhaustedStep::judge(c, f);
        let look = Some(Looked {
            at_ms: now,
            percent: r.percent,
            window: f.window,
            baseline: f.baseline,
            settled_first_runs: f.settled_first_runs,
            call: step.call,
        });
        match step.call {
            Call::Worse => {
                let state = r.gate.as_ref().map_or(RolloutState::Halted, |g| tripped_state(g.action));
                metrics::counter!("halftone_gate_trips_total", "app" => app.id.to_string()).increment(1);
                let after = Rollout { state, ..r.clone() };
                Exhausted { after, actor: HEALTH_GATE, action: "gate.trip", reason: step.to_string(), look }
            }
            Call::NoWorse => {
                let short: Vec<String> =
                    self.metric_steps_short(app, r, marks).iter().map(ToString::to_string).collect();
                if short.is_empty() {
                    let after = Rollout { percent: to, ..r.clone() };
                    return Exhausted {
                        after,
                        actor: SCHEDULER,
                        action: "schedule.advance",
                        reason: step.to_string(),
                        look,
                    };
                }
                let reason = format!("{}; {step}; {}", ExhaustedStep::UNDECIDED, short.join("; "));
                Exhausted { after: paused, actor: HEALTH_GATE, action: EXHAUSTED, reason, look }
            }
            Call::Undecided | Call::BaselineTooSmall => {
                Exhausted { after: paused, actor: HEALTH_GATE, action: EXHAUSTED, reason: step.to_string(), look }
            }
        }
    }

    /// The share `r`, on a first step of a number of devices, should have now: that many
    /// devices of the devices that checked in over the last day on the channels that see its
    /// channel (any platform: a release for fewer platforms reaches fewer devices).
    fn fit(&self, app: &AppSnapshot, r: &Rollout, schedule: &Schedule, now: u64) -> Option<Percent> {
        let ladder = app.catalog.ladder();
        let channels: Vec<&ChannelName> = ladder
            .channels()
            .into_iter()
            .map(|(c, _)| c)
            .filter(|c| ladder.sees(c.as_str(), r.channel.as_str()) == Some(true))
            .collect();
        schedule.fit(r.percent, self.feedback.audience(&app.id, &channels, now))
    }

    /// What `r`'s gate judges: the release's figures since its window and its step began,
    /// and its baseline's (`Catalog::baseline`), as the feedback aggregator has them now. The
    /// baseline's rates are its cumulative ones (docs/gates.md: its installs happened when
    /// devices moved to it, so a recent window holds few of them). A comparing gate's settled
    /// first runs are those of the window this replica has seen for its crash window
    /// (`FirstRunsWatch`, which this records the count in).
    pub(crate) fn gate_figures(&self, app: &AppSnapshot, r: &Rollout, marks: &GateMarks) -> GateFigures {
        let now = self.feedback.health(&app.id, &r.release);
        let baseline = app.catalog.baseline(&r.release, &r.channel).map(|b| self.feedback.health(&app.id, b));
        let settled_first_runs = r.gate.as_ref().and_then(|g| g.compare).map_or(0, |c| {
            let key = (app.id.clone(), r.release.clone(), r.channel.clone());
            let window_ms = c.crash_window_s().saturating_mul(1000);
            let settled = self.first_runs_seen.settled(&key, now.first_runs, self.clock.now_ms(), window_ms);
            settled.saturating_sub(marks.window.first_runs)
        });
        GateFigures {
            window: now.since(marks.window),
            step: now.since(marks.step),
            baseline,
            percent: r.percent,
            settled_first_runs,
        }
    }

    /// What `r`'s metric gates say now: each gated metric of the release (every channel)
    /// since its gate's window began, against its baseline's in the same time window, judged
    /// once both have values (empty without a baseline or metric gates). When the baseline is
    /// not the build marked when the window began (it changed since, or the window began
    /// before baselines were marked), the baseline's values are its cumulative ones.
    pub(crate) fn metric_evidence(&self, app: &AppSnapshot, r: &Rollout, marks: &GateMarks) -> Vec<MetricEvidence> {
        let Some(gate) = r.gate.as_ref().filter(|g| !g.metrics.is_empty()) else { return Vec::new() };
        let Some(baseline) = app.catalog.baseline(&r.release, &r.channel) else { return Vec::new() };
        let candidate = self.feedback.metrics(&app.id, &r.release);
        let base_marks = marks.metrics.baseline.as_ref().filter(|b| &b.release == baseline).map(|b| &b.metrics);
        let baseline = self.feedback.metrics(&app.id, baseline);
        gate.judge_metrics(&app.settings.metrics, |name| {
            let (c, b) = (candidate.get(name)?, baseline.get(name)?);
            Some(MetricSample {
                candidate: since(c.gated(), marks.metrics.window.get(name)),
                baseline: since(b.gated(), base_marks.and_then(|m| m.get(name))),
            })
        })
    }

    /// The metric gates of `r` whose current step lacks values of its own (empty when none
    /// does, or without metric gates): the step does not widen until each has its
    /// `min_count` new values.
    pub(crate) fn metric_steps_short(&self, app: &AppSnapshot, r: &Rollout, marks: &GateMarks) -> Vec<StepShort> {
        let Some(gate) = r.gate.as_ref().filter(|g| !g.metrics.is_empty()) else { return Vec::new() };
        let candidate = self.feedback.metrics(&app.id, &r.release);
        gate.metric_steps_short(&app.settings.metrics, |name| {
            candidate.get(name).map_or(0, |f| since(f.gated(), marks.metrics.step.get(name)).count())
        })
    }
}

/// The values of `now` since `mark` (all of them without a mark: none then). A mark holding
/// more values than `now` was read by a replica that had seen more than this one yet (on
/// PostgreSQL each replica re-reads the others' figures every 2 s): nothing new is known here
/// since, so the window is empty for now, as `Health::since` saturates at zero.
fn since(now: &Summary, mark: Option<&Summary>) -> Summary {
    match mark {
        None => *now,
        Some(m) => now.since(m).unwrap_or_default(),
    }
}

/// Ticks every `every` until the state is gone.
pub async fn run(state: Weak<State>, every: Duration, mut lease: crate::replica::Lease) {
    let mut interval = tokio::time::interval(every);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        // Every replica keeps its own series of figures for the dashboard.
        if let Some(state) = state.upgrade() {
            state.sample_trend();
        }
        // Only one replica ticks: the one holding the lease.
        if !lease.hold().await {
            continue;
        }
        let Some(state) = state.upgrade() else { return };
        if let Err(e) = state.tick().await {
            tracing::error!(error = format!("{e:#}"), "scheduler tick failed");
        }
        drop::<Arc<State>>(state);
    }
}
