//! One staged rollout over a simulated fleet, on a manual clock: [`Fleet`] (size, check-in
//! period, the baseline's rates and app metric), [`Build`] (the candidate's), [`Plan`]
//! (schedule, gate, and what to do when a step's audience is exhausted: [`Exhausted`]) and
//! [`run`], which returns an [`Outcome`].
//!
//! The decisions are the server's own code: a device is in the rollout when
//! `Percent::admits(bucket(salt, device id))`, the gate is `HealthGate::check` on
//! `GateFigures` built as the scheduler builds them (the window since publish, the step since
//! it began, the baseline's figures), app metrics are aggregated per build in the server's
//! `Distribution` and judged by `HealthGate::judge_metrics` on their summaries (as
//! `State::metric_evidence` does), and the schedule moves by `Schedule::next`. Only the fleet
//! is simulated: devices check in every `checkin_every_ms` at a random phase, install what
//! they are offered, fail or succeed, run it (reporting one session length) and sometimes
//! crash, and report.
//!
//! The gate is judged after every report and whenever a hold ends, as if the scheduler ticked
//! at least once between two reports (it ticks every second; at the rates simulated here,
//! reports are seconds apart until the rollout is wide, and by then the gate has decided).
//!
//! Only admitted devices cost anything: a device's check-in phase is drawn when its bucket is
//! admitted (uniform over the period, as a fixed random phase would be), and the baseline's
//! fleet-wide counts are drawn as binomials by geometric skips (time in the failures, not the
//! devices), so a rollout halted at 0.1% of a 1,000,000-device fleet costs about as little as
//! on 100,000.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use halftone_channels::{
    Call, Direction, Distribution, ExhaustedStep, GateFigures, GateVerdict, Health, HealthGate, MetricKind, MetricName,
    MetricSample, MetricSet, MetricValue, Percent, ReportsSeen, RolloutState, Schedule, ScheduleClock, Settling,
    StepExhaustion, Tick, bucket,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};

/// The app metric devices report: a session length in seconds, higher is better.
pub const SESSION: &str = "session_s";

/// The devices and the build they run now (the baseline).
#[derive(Debug, Clone)]
pub struct Fleet {
    /// Devices.
    pub devices: u32,
    /// The devices of each bucket (0..10000) under the rollouts' salt, by the server's
    /// bucketing function ([`Fleet::bucketed`]).
    pub by_bucket: Vec<Vec<u32>>,
    /// How often a device checks in.
    pub checkin_every_ms: u64,
    /// The baseline's install failure rate, as measured on the whole fleet when it shipped.
    pub baseline_failure: f64,
    /// The baseline's crash rate per first run.
    pub baseline_crash: f64,
    /// The baseline's mean session length ([`SESSION`], exponentially distributed).
    pub baseline_session_s: f64,
}

impl Fleet {
    /// The devices `device-0`, `device-1`, ... bucketed under `salt` as the server buckets
    /// them. Hashing a large fleet costs more than a rollout's whole simulation, so it is done
    /// once per fleet; rollouts differ in every device's behaviour and check-in phase, drawn
    /// afresh from each rollout's seed.
    pub fn bucketed(devices: u32, salt: &str) -> Vec<Vec<u32>> {
        let mut by_bucket = vec![Vec::new(); 10_000];
        for d in 0..devices {
            by_bucket[usize::from(bucket(salt, &format!("device-{d}")).get())].push(d);
        }
        by_bucket
    }
}

/// How the candidate behaves on a device.
#[derive(Debug, Clone, Copy)]
pub struct Build {
    /// The chance an install fails.
    pub install_failure: f64,
    /// The chance a device that installed it crashes (within a day of its first run).
    pub crash: f64,
    /// Its mean session length, when devices report the app metric ([`SESSION`]): each
    /// device that runs it reports one exponentially distributed value at its first run, and
    /// the baseline's devices one each at the baseline's mean.
    pub session_s: Option<f64>,
}

/// What a rollout does on an exhausted proving step (`StepExhaustion`, the server's rule: its
/// hold over, the gate still short of proof, no new install report for the comparison's
/// `exhausted_after_s`, a day by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exhausted {
    /// Keep holding, silently (the server before it took the last look).
    Hold,
    /// Pause: "undecided, the step's audience is exhausted", for an engineer to decide.
    Pause,
    /// At the first exhausted proving step, take the comparison's last look (`ExhaustedStep`):
    /// halt if worse, widen if no worse, else pause; later, pause (the server's behaviour).
    LastLook,
}

/// The rollout's schedule and gate.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The steps.
    pub schedule: Schedule,
    /// The gate.
    pub gate: HealthGate,
    /// When the simulation gives up on a rollout that neither finished nor halted.
    pub horizon_ms: u64,
    /// What an exhausted, undecided step does.
    pub exhausted: Exhausted,
}

/// Which judgement stopped a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judge {
    /// The sequential comparison (or a fixed limit), looked at continuously.
    Rates,
    /// A metric gate.
    Metric,
    /// The last look at an exhausted proving step.
    LastLook,
}

/// How one rollout ended.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outcome {
    /// The gate halted it.
    Halted {
        /// Devices that had been offered the build (and so installed it or tried to).
        received: u32,
        /// Of those, install attempts reported when the gate decided.
        reported: u64,
        /// When.
        at_ms: u64,
        /// What decided.
        by: Judge,
    },
    /// It paused at an exhausted step, undecided ([`Exhausted::Pause`],
    /// [`Exhausted::LastLook`]): stopped for an engineer to decide.
    Paused {
        /// The step's share.
        percent: Percent,
        /// Devices that had received it.
        received: u32,
    },
    /// It reached its last step and every device there had reported.
    Completed {
        /// When it reached the last step.
        at_ms: u64,
    },
    /// It held at a step until the horizon: the gate never had the evidence to widen.
    Held {
        /// The step's share.
        percent: Percent,
        /// Devices that had received it.
        received: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Event {
    /// A device asks what to run.
    CheckIn(u32),
    /// A device reports its install: failed or succeeded (then its first run).
    Installed { device: u32, failed: bool },
    /// A device reports a crash.
    Crashed(u32),
    /// A step's hold ends.
    HoldEnds,
    /// Every device of the step at this share reported its install `exhausted_after_s` ago.
    StepExhausted(u16),
}

type Queue = BinaryHeap<Reverse<(u64, Event)>>;

/// One step's check-ins, sorted by time, and the next to happen.
struct Batch {
    checkins: Vec<(u64, u32)>,
    next: usize,
}

/// The earliest event: the heap's or a batch's next check-in (a check-in first on a tie, as
/// `Event`'s order has it).
fn next_event(queue: &mut Queue, batches: &mut Vec<Batch>) -> Option<(u64, Event)> {
    batches.retain(|b| b.next < b.checkins.len());
    let earliest =
        batches.iter().enumerate().min_by_key(|(_, b)| b.checkins[b.next]).map(|(i, b)| (i, b.checkins[b.next]));
    match (earliest, queue.peek()) {
        (Some((i, (at, d))), top) if top.is_none_or(|Reverse((t, e))| (at, Event::CheckIn(d)) <= (*t, *e)) => {
            batches[i].next += 1;
            Some((at, Event::CheckIn(d)))
        }
        _ => queue.pop().map(|Reverse(e)| e),
    }
}

/// `Binomial(trials, p)` by geometric skips between successes: `O(trials · p)` draws.
fn binomial(rng: &mut Xoshiro256PlusPlus, trials: u64, p: f64) -> u64 {
    if p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return trials;
    }
    let ln_q = (-p).ln_1p();
    let (mut at, mut successes) = (0u64, 0u64);
    loop {
        let u: f64 = rng.random();
        // Failures before the next success: floor(ln U / ln(1 - p)), U in (0, 1].
        let skip = ((1.0 - u).ln() / ln_q).floor();
        if skip >= (trials - at) as f64 {
            return successes;
        }
        at += skip as u64 + 1;
        successes += 1;
    }
}

/// An exponentially distributed value of mean `mean`.
fn exponential(rng: &mut Xoshiro256PlusPlus, mean: f64) -> MetricValue {
    let u: f64 = rng.random();
    MetricValue::new(-mean * (1.0 - u).ln()).expect("a finite session length")
}

/// Runs one rollout of `build` on `fleet` under `plan`, with randomness from `seed`.
pub fn run(fleet: &Fleet, build: &Build, plan: &Plan, seed: u64) -> Outcome {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = fleet.devices as usize;
    let by_bucket = &fleet.by_bucket;
    let failures = binomial(&mut rng, u64::from(fleet.devices), fleet.baseline_failure);
    let installs = u64::from(fleet.devices) - failures;
    let crashes = binomial(&mut rng, installs, fleet.baseline_crash);
    let baseline = Health { installs, install_failures: failures, first_runs: installs, crashes };
    // The app metric, aggregated per build as the feedback aggregator does.
    let session = MetricName::parse(SESSION).expect("a metric name");
    let declared =
        MetricSet::new([(session.clone(), MetricKind::Value(Direction::Higher))]).expect("one declared metric");
    let judge_metrics = build.session_s.is_some() && !plan.gate.metrics.is_empty();
    let mut candidate_values = Distribution::default();
    let mut baseline_values = Distribution::default();
    if build.session_s.is_some() {
        for _ in 0..installs {
            baseline_values.add(exponential(&mut rng, fleet.baseline_session_s));
        }
    }

    let mut queue: Queue = BinaryHeap::new();
    let mut batches: Vec<Batch> = Vec::new();
    let mut offered = vec![false; n];
    let mut received = 0u32;
    let mut admitted_devices = 0u64;
    let mut health = Health::default();
    let mut step_mark = Health::default();
    let mut percent = plan.schedule.first();
    // A first step of devices: every device checks in, so the audience is the fleet.
    if let Some(to) = plan.schedule.fit(percent, u64::from(fleet.devices)) {
        percent = to;
    }
    let mut clock = ScheduleClock::start(0);
    let mut admitted = 0u16;
    // Admits the buckets `from..to`: each device checks in next at its own phase, uniform over
    // the period. A step's check-ins are one sorted batch (a wide step's hundreds of thousands
    // of check-ins would make the event heap large and slow); the loop merges the batches'
    // heads with the heap.
    let admit = |batches: &mut Vec<Batch>, rng: &mut Xoshiro256PlusPlus, from: u16, to: Percent, now: u64| {
        let mut batch: Vec<(u64, u32)> = Vec::new();
        for b in from..to.basis_points() {
            for &d in &by_bucket[usize::from(b)] {
                batch.push((now + rng.random_range(0..fleet.checkin_every_ms), d));
            }
        }
        batch.sort_unstable();
        let devices = batch.len() as u64;
        batches.push(Batch { checkins: batch, next: 0 });
        devices
    };
    admitted_devices += admit(&mut batches, &mut rng, admitted, percent, 0);
    admitted = percent.basis_points();
    let hold_ms =
        |p: Percent| plan.schedule.step_of(p).map_or(0, |i| plan.schedule.steps()[i].hold_s.saturating_mul(1000));
    queue.push(Reverse((hold_ms(percent), Event::HoldEnds)));
    let mut last_step_at = None;
    let mut looked = false;
    let mut seen = ReportsSeen::new(0, 0);
    let exhausted_after_ms = plan.gate.compare.unwrap_or_default().exhausted_after_s() * 1000;
    // The first runs whose crashes have had time to come, as the scheduler tells them.
    let crash_window_ms = plan.gate.compare.unwrap_or_default().crash_window_s() * 1000;
    let mut settling = Settling::new();

    while let Some((now, event)) = next_event(&mut queue, &mut batches) {
        if now > plan.horizon_ms {
            break;
        }
        match event {
            Event::CheckIn(d) => {
                let i = d as usize;
                if offered[i] {
                    continue;
                }
                offered[i] = true;
                received += 1;
                // Downloading and installing take up to 30 minutes.
                let failed = rng.random_bool(build.install_failure);
                queue
                    .push(Reverse((now + rng.random_range(60_000..1_800_000), Event::Installed { device: d, failed })));
                continue;
            }
            Event::Installed { device, failed } => {
                if failed {
                    health.install_failures += 1;
                } else {
                    health.installs += 1;
                    health.first_runs += 1;
                    if let Some(mean) = build.session_s {
                        candidate_values.add(exponential(&mut rng, mean));
                    }
                    if rng.random_bool(build.crash) {
                        queue.push(Reverse((now + rng.random_range(0..86_400_000), Event::Crashed(device))));
                    }
                }
                // The last report of the step: it counts as exhausted `exhausted_after_s` later
                // (judged then by the same rule as the server, `StepExhaustion`).
                if health.installs + health.install_failures == admitted_devices && percent != plan.schedule.last() {
                    queue.push(Reverse((now + exhausted_after_ms, Event::StepExhausted(percent.basis_points()))));
                }
            }
            Event::Crashed(_) => health.crashes += 1,
            Event::HoldEnds | Event::StepExhausted(_) => {}
        }
        // The scheduler's tick, as `State::tick` does it: a rate breach first, else a metric
        // proven worse.
        settling.observe(now, health.first_runs, crash_window_ms);
        let figures = GateFigures {
            window: health,
            step: health.since(step_mark),
            baseline: Some(baseline),
            percent,
            settled_first_runs: settling.settled(now, crash_window_ms),
        };
        let mut verdict = plan.gate.check(&figures);
        let reported = health.installs + health.install_failures;
        if let GateVerdict::Trip(_) = verdict {
            return Outcome::Halted { received, reported, at_ms: now, by: Judge::Rates };
        }
        if judge_metrics {
            let sample = MetricSample { candidate: *candidate_values.summary(), baseline: *baseline_values.summary() };
            let evidence = plan.gate.judge_metrics(&declared, |_| Some(sample));
            if evidence.iter().any(|e| e.call == Call::Worse) {
                return Outcome::Halted { received, reported, at_ms: now, by: Judge::Metric };
            }
        }
        // The server's rule for an exhausted proving step (`StepExhaustion`): the hold over,
        // the gate still short of proof, and no new install report for `exhausted_after_s`.
        seen = seen.seen(ReportsSeen::reports_of(&figures), now);
        let tick = plan.schedule.next(percent, RolloutState::Active, &clock, now);
        let exhaustion = StepExhaustion::of(plan.gate.compare.as_ref(), &figures, verdict, tick, seen, now);
        if exhaustion == StepExhaustion::Exhausted {
            match (plan.exhausted, plan.gate.compare) {
                (Exhausted::Hold, _) => {}
                (Exhausted::LastLook, Some(c)) if !looked => {
                    looked = true;
                    match ExhaustedStep::judge(&c, &figures).call {
                        Call::Worse => return Outcome::Halted { received, reported, at_ms: now, by: Judge::LastLook },
                        // Proven no worse at the last look: the step widens as on proof.
                        Call::NoWorse => verdict = GateVerdict::Pass,
                        Call::Undecided | Call::BaselineTooSmall => return Outcome::Paused { percent, received },
                    }
                }
                (Exhausted::Pause | Exhausted::LastLook, _) => return Outcome::Paused { percent, received },
            }
        }
        if let Tick::Advance { to, .. } = plan.schedule.next(percent, RolloutState::Active, &clock, now)
            && verdict == GateVerdict::Pass
        {
            percent = to;
            clock = ScheduleClock::start(now);
            step_mark = health;
            admitted_devices += admit(&mut batches, &mut rng, admitted, percent, now);
            admitted = percent.basis_points();
            queue.push(Reverse((now + hold_ms(percent), Event::HoldEnds)));
            if percent == plan.schedule.last() {
                last_step_at = Some(now);
            }
        }
    }
    match last_step_at {
        Some(at_ms) => Outcome::Completed { at_ms },
        None => Outcome::Held { percent, received },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binomial_draws_have_the_right_mean_and_spread() {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(3);
        let draws: Vec<f64> = (0..2_000).map(|_| binomial(&mut rng, 10_000, 0.02) as f64).collect();
        let mean = draws.iter().sum::<f64>() / draws.len() as f64;
        let var = draws.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (draws.len() - 1) as f64;
        // 200 and 196 expected; the mean within 4 standard errors, the variance within 15%.
        assert!((mean - 200.0).abs() < 4.0 * (196.0f64 / 2_000.0).sqrt(), "{mean}");
        assert!((var - 196.0).abs() < 0.15 * 196.0, "{var}");
        assert_eq!(binomial(&mut rng, 50, 0.0), 0);
        assert_eq!(binomial(&mut rng, 50, 1.0), 50);
        assert!((0..100).all(|_| binomial(&mut rng, 7, 0.9) <= 7));
    }
}
