//! One staged rollout over a simulated fleet, on a manual clock: [`Fleet`] (size, check-in
//! period, the baseline's rates), [`Build`] (the candidate's rates), [`Plan`] (schedule and
//! gate) and [`run`], which returns an [`Outcome`].
//!
//! The decisions are the server's own code: a device is in the rollout when
//! `Percent::admits(bucket(salt, device id))`, the gate is `HealthGate::check` on
//! `GateFigures` built as the scheduler builds them (the window since publish, the step since
//! it began, the baseline's figures), and the schedule moves by `Schedule::next`. Only the
//! fleet is simulated: devices check in every `checkin_every_ms` at a random phase, install
//! what they are offered, fail or succeed, run it and sometimes crash, and report.
//!
//! The gate is judged after every report and whenever a hold ends, as if the scheduler ticked
//! at least once between two reports (it ticks every second; at the rates simulated here,
//! reports are seconds apart until the rollout is wide, and by then the gate has decided).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use halftone_channels::{
    GateFigures, GateVerdict, Health, HealthGate, Percent, RolloutState, Schedule, ScheduleClock, Tick, bucket,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};

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
}

/// Runs one rollout of `build` on `fleet` under `plan`, with randomness from `seed`.
pub fn run(fleet: &Fleet, build: &Build, plan: &Plan, seed: u64) -> Outcome {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let n = fleet.devices as usize;
    // Devices by bucket: widening to a share admits the next buckets' devices.
    let by_bucket = &fleet.by_bucket;
    let phase: Vec<u64> = (0..n).map(|_| rng.random_range(0..fleet.checkin_every_ms)).collect();
    let binomial =
        |rng: &mut Xoshiro256PlusPlus, trials: u64, p: f64| (0..trials).filter(|_| rng.random_bool(p)).count() as u64;
    let failures = binomial(&mut rng, u64::from(fleet.devices), fleet.baseline_failure);
    let installs = u64::from(fleet.devices) - failures;
    let crashes = binomial(&mut rng, installs, fleet.baseline_crash);
    let baseline = Health { installs, install_failures: failures, first_runs: installs, crashes };

    let mut queue: BinaryHeap<Reverse<(u64, Event)>> = BinaryHeap::new();
    let mut offered = vec![false; n];
    let mut received = 0u32;
    let mut health = Health::default();
    let mut step_mark = Health::default();
    let mut percent = plan.schedule.first();
    // A first step of devices: every device checks in, so the audience is the fleet.
    if let Some(to) = plan.schedule.fit(percent, u64::from(fleet.devices)) {
        percent = to;
    }
    let mut clock = ScheduleClock::start(0);
    let mut admitted = 0u16;
    let admit = |queue: &mut BinaryHeap<Reverse<(u64, Event)>>, from: u16, to: Percent, now: u64| {
        for b in from..to.basis_points() {
            for &d in &by_bucket[usize::from(b)] {
                // The device's next check-in after `now`, at its own phase.
                let period = fleet.checkin_every_ms;
                let next = now + (phase[d as usize] + period - now % period) % period;
                queue.push(Reverse((next, Event::CheckIn(d))));
            }
        }
    };
    admit(&mut queue, admitted, percent, 0);
    admitted = percent.basis_points();
    let hold_ms =
        |p: Percent| plan.schedule.step_of(p).map_or(0, |i| plan.schedule.steps()[i].hold_s.saturating_mul(1000));
    queue.push(Reverse((hold_ms(percent), Event::HoldEnds)));
    let mut last_step_at = None;

    while let Some(Reverse((now, event))) = queue.pop() {
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
                    if rng.random_bool(build.crash) {
                        queue.push(Reverse((now + rng.random_range(0..86_400_000), Event::Crashed(device))));
                    }
                }
            }
            Event::Crashed(_) => health.crashes += 1,
            Event::HoldEnds => {}
        }
        // The scheduler's tick, as `State::tick` does it.
        let figures = GateFigures { window: health, step: health.since(step_mark), baseline: Some(baseline), percent };
        let verdict = plan.gate.check(&figures);
        if let GateVerdict::Trip(_) = verdict {
            let reported = health.installs + health.install_failures;
            return Outcome::Halted { received, reported, at_ms: now };
        }
        if let Tick::Advance { to, .. } = plan.schedule.next(percent, RolloutState::Active, &clock, now)
            && verdict == GateVerdict::Pass
        {
            percent = to;
            clock = ScheduleClock::start(now);
            step_mark = health;
            admit(&mut queue, admitted, percent, now);
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
