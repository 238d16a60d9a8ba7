//! Staged schedules: [`Schedule`] (steps of percentage and minimum hold time), the named
//! [`SchedulePreset`]s (Apple's phased release), and [`Schedule::next`], which decides, for a rollout's current
//! percentage and its [`ScheduleClock`], whether to hold or advance at a given time.
//!
//! Time is an argument (milliseconds since the epoch); nothing here reads a clock. The current
//! step is derived from the rollout's percentage (the highest step at or below it), so a
//! manual change of percentage simply moves the rollout along the schedule.
//!
//! The first step may name a number of devices instead of a share ([`Share::Devices`]): a
//! rollout on it starts at the smallest share, 0.01%, and [`Schedule::fit`] raises it to the
//! share that many devices take of the rollout's audience (as the caller estimates it), never
//! lowering it and never reaching the next step. A fleet of 20,000 devices then starts with as
//! many devices as a fleet of 20 million, enough for a gate's first sample and no more.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ParseError, What};
use crate::{Percent, RolloutState};

/// The most steps a schedule may have.
pub const MAX_STEPS: usize = 32;
const HOUR_MS: u64 = 3_600_000;

/// How wide a step is: a share of the audience, or about a number of devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Share {
    /// This share of the audience.
    Percent(Percent),
    /// About this many devices of the audience (first step only).
    Devices(NonZeroU32),
}

/// One step: its width and how long the rollout holds there at least. In JSON, either
/// `{"basis_points": 100, "hold_s": 3600}` or `{"devices": 500, "hold_s": 3600}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "StepFields", into = "StepFields")]
pub struct Step {
    /// The width of this step.
    pub share: Share,
    /// Minimum time at this step before the next, in seconds (ignored on the last step).
    pub hold_s: u64,
}

impl Step {
    /// A step at `percent`, held at least `hold_s` seconds.
    pub fn percent(percent: Percent, hold_s: u64) -> Self {
        Step { share: Share::Percent(percent), hold_s }
    }

    /// The share of this step, when it is one.
    pub fn basis_points(&self) -> Option<Percent> {
        match self.share {
            Share::Percent(p) => Some(p),
            Share::Devices(_) => None,
        }
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Share::Percent(p) => write!(f, "{p}"),
            Share::Devices(n) => write!(f, "{n} devices"),
        }
    }
}

/// A step as JSON spells it: exactly one of `basis_points` and `devices`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StepFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    basis_points: Option<Percent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    devices: Option<NonZeroU32>,
    #[serde(default)]
    hold_s: u64,
}

impl TryFrom<StepFields> for Step {
    type Error = String;
    fn try_from(f: StepFields) -> Result<Self, String> {
        let share = match (f.basis_points, f.devices) {
            (Some(p), None) => Share::Percent(p),
            (None, Some(n)) => Share::Devices(n),
            _ => return Err("a step has either basis_points or devices".into()),
        };
        Ok(Step { share, hold_s: f.hold_s })
    }
}

impl From<Step> for StepFields {
    fn from(s: Step) -> Self {
        let (basis_points, devices) = match s.share {
            Share::Percent(p) => (Some(p), None),
            Share::Devices(n) => (None, Some(n)),
        };
        StepFields { basis_points, devices, hold_s: s.hold_s }
    }
}

/// Strictly increasing steps ending anywhere up to 100%; the first may be a number of devices,
/// followed by at least one share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    steps: Vec<Step>,
}

/// A schedule known by name. Its name is parsed like any value (an unknown name is an
/// error), and it stands for its steps ([`SchedulePreset::schedule`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulePreset {
    /// `apple_phased`: Apple's phased release, 1, 2, 5, 10, 20, 50, 100%, a day each.
    ApplePhased,
}

impl SchedulePreset {
    /// The name, as in JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            SchedulePreset::ApplePhased => "apple_phased",
        }
    }

    /// The steps it names.
    pub fn schedule(self) -> Schedule {
        match self {
            SchedulePreset::ApplePhased => Schedule::apple_phased(),
        }
    }
}

impl FromStr for SchedulePreset {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "apple_phased" => Ok(SchedulePreset::ApplePhased),
            other => Err(ParseError::new(What::Rollout, other, "unknown schedule preset; the preset is apple_phased")),
        }
    }
}

impl fmt::Display for SchedulePreset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for SchedulePreset {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SchedulePreset {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Schedule {
    /// A schedule from steps: 1 to 32, strictly increasing percentages; only the first may be a
    /// number of devices, and then a share must follow.
    pub fn new(steps: Vec<Step>) -> Result<Self, ParseError> {
        let bad = |why: String| Err(ParseError::new(What::Rollout, "schedule", why));
        if steps.is_empty() || steps.len() > MAX_STEPS {
            return bad(format!("a schedule has 1 to {MAX_STEPS} steps"));
        }
        if steps.iter().skip(1).any(|s| matches!(s.share, Share::Devices(_))) {
            return bad("only the first step may be a number of devices".into());
        }
        if steps.len() == 1 && matches!(steps[0].share, Share::Devices(_)) {
            return bad("a step of a number of devices must be followed by a share".into());
        }
        let shares: Vec<Percent> = steps.iter().filter_map(Step::basis_points).collect();
        if let Some(w) = shares.windows(2).find(|w| w[0] >= w[1]) {
            return bad(format!("steps must increase: {} is followed by {}", w[0], w[1]));
        }
        Ok(Schedule { steps })
    }

    /// Apple's phased release: 1%, 2%, 5%, 10%, 20%, 50%, 100%, one day each.
    pub fn apple_phased() -> Self {
        let steps = [100, 200, 500, 1000, 2000, 5000, 10_000]
            .into_iter()
            .map(|bp| Step::percent(Percent::from_basis_points(bp).expect("valid"), 24 * HOUR_MS / 1000))
            .collect();
        Schedule { steps }
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// Where a scheduled rollout starts: its first step's share, or the smallest share, 0.01%,
    /// when the first step is a number of devices ([`Schedule::fit`] then widens it).
    pub fn first(&self) -> Percent {
        self.steps[0].basis_points().unwrap_or(Percent::SMALLEST)
    }

    /// The last step's share (where the schedule ends).
    pub fn last(&self) -> Percent {
        self.steps.last().and_then(Step::basis_points).expect("a schedule ends with a share")
    }

    /// The index of the step the rollout is on: the highest share at or below `percent`, or
    /// the first step when it is a number of devices and `percent` is below every share.
    pub fn step_of(&self, percent: Percent) -> Option<usize> {
        self.steps
            .iter()
            .rposition(|s| s.basis_points().is_some_and(|p| p <= percent))
            .or_else(|| matches!(self.steps[0].share, Share::Devices(_)).then_some(0))
    }

    /// For a rollout at `percent` on a first step of `n` devices, the share that `n` devices
    /// take of an audience of `audience` devices, when it is wider than `percent`: rounded up,
    /// at least 0.01%, and below the next step. `None` when the rollout is past that step, the
    /// audience is unknown (0), or the share would not grow: a step of devices never narrows.
    pub fn fit(&self, percent: Percent, audience: u64) -> Option<Percent> {
        let Share::Devices(n) = self.steps[0].share else { return None };
        let next = self.steps.iter().find_map(Step::basis_points)?;
        if audience == 0 || percent >= next {
            return None;
        }
        let wanted = (u64::from(n.get()) * 10_000).div_ceil(audience).clamp(1, 10_000);
        let below_next = u64::from(next.basis_points() - 1);
        let to = Percent::from_basis_points(wanted.min(below_next) as u16).ok()?;
        (to > percent).then_some(to)
    }

    /// What to do at `now_ms` for a rollout at `percent` in `state` with `clock`.
    pub fn next(&self, percent: Percent, state: RolloutState, clock: &ScheduleClock, now_ms: u64) -> Tick {
        if state != RolloutState::Active {
            return Tick::Stopped(state);
        }
        let Some((next, to)) =
            self.steps.iter().enumerate().find_map(|(i, s)| s.basis_points().filter(|p| *p > percent).map(|p| (i, p)))
        else {
            return Tick::Done;
        };
        let hold_ms = match self.step_of(percent) {
            Some(i) => self.steps[i].hold_s.saturating_mul(1000),
            None => 0,
        };
        let held = now_ms.saturating_sub(clock.since_ms);
        if held >= hold_ms { Tick::Advance { step: next, to } } else { Tick::Hold { remaining_ms: hold_ms - held } }
    }
}

/// When the rollout's current percentage took effect, and since when it is paused or halted
/// (the hold clock runs only while the rollout is active).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ScheduleClock {
    /// When the current step started (ms since the epoch), shifted forward by paused time.
    pub since_ms: u64,
    /// When the rollout was paused, while it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_at_ms: Option<u64>,
}

impl ScheduleClock {
    /// A clock starting at `now_ms`.
    pub fn start(now_ms: u64) -> Self {
        ScheduleClock { since_ms: now_ms, paused_at_ms: None }
    }

    /// The clock after a state change at `now_ms`: pausing or halting stops it, resuming
    /// continues it.
    pub fn on_state(self, from: RolloutState, to: RolloutState, now_ms: u64) -> Self {
        match (from, to) {
            (RolloutState::Active, RolloutState::Paused | RolloutState::Halted) => {
                ScheduleClock { paused_at_ms: Some(now_ms), ..self }
            }
            (RolloutState::Paused | RolloutState::Halted, RolloutState::Active) => {
                let paused = self.paused_at_ms.map_or(0, |p| now_ms.saturating_sub(p));
                ScheduleClock { since_ms: self.since_ms + paused, paused_at_ms: None }
            }
            _ => self,
        }
    }
}

/// The scheduler's decision for one rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Not active: the clock does not run.
    Stopped(RolloutState),
    /// The last step is reached.
    Done,
    /// Wait this much longer at the current step.
    Hold {
        /// Milliseconds left.
        remaining_ms: u64,
    },
    /// Move to the next step.
    Advance {
        /// Its index.
        step: usize,
        /// Its percentage.
        to: Percent,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(n: u16) -> Percent {
        Percent::from_basis_points(n).unwrap()
    }

    fn schedule() -> Schedule {
        Schedule::new(vec![Step::percent(bp(100), 10), Step::percent(bp(500), 20), Step::percent(bp(10_000), 0)])
            .unwrap()
    }

    #[test]
    fn holds_then_advances_step_by_step() {
        let s = schedule();
        let clock = ScheduleClock::start(1_000);
        assert_eq!(s.next(bp(100), RolloutState::Active, &clock, 5_000), Tick::Hold { remaining_ms: 6_000 });
        assert_eq!(s.next(bp(100), RolloutState::Active, &clock, 11_000), Tick::Advance { step: 1, to: bp(500) });
        assert_eq!(s.next(bp(500), RolloutState::Active, &clock, 11_000), Tick::Hold { remaining_ms: 10_000 });
        assert_eq!(s.next(bp(10_000), RolloutState::Active, &clock, 99_000), Tick::Done);
        assert_eq!(s.next(bp(100), RolloutState::Halted, &clock, 99_000), Tick::Stopped(RolloutState::Halted));
        // A manual change between steps holds at the lower step, then goes to the next one.
        assert_eq!(s.next(bp(300), RolloutState::Active, &clock, 11_000), Tick::Advance { step: 1, to: bp(500) });
    }

    #[test]
    fn pausing_stops_the_clock() {
        let s = schedule();
        let clock = ScheduleClock::start(0);
        let paused = clock.on_state(RolloutState::Active, RolloutState::Paused, 4_000);
        assert_eq!(s.next(bp(100), RolloutState::Paused, &paused, 50_000), Tick::Stopped(RolloutState::Paused));
        let resumed = paused.on_state(RolloutState::Paused, RolloutState::Active, 54_000);
        assert_eq!(resumed.since_ms, 50_000);
        assert_eq!(s.next(bp(100), RolloutState::Active, &resumed, 56_000), Tick::Hold { remaining_ms: 4_000 });
        let halted = clock.on_state(RolloutState::Active, RolloutState::Halted, 4_000);
        let unhalted = halted.on_state(RolloutState::Halted, RolloutState::Active, 90_000);
        assert_eq!(s.next(bp(100), RolloutState::Active, &unhalted, 92_000), Tick::Hold { remaining_ms: 4_000 });
    }

    #[test]
    fn presets_and_errors() {
        let apple = Schedule::apple_phased();
        let percents: Vec<u16> =
            apple.steps().iter().filter_map(|s| s.basis_points()).map(Percent::basis_points).collect();
        assert_eq!(percents, [100, 200, 500, 1000, 2000, 5000, 10_000]);
        assert_eq!(apple.steps().iter().map(|s| s.hold_s).sum::<u64>(), 7 * 86_400);
        let down = vec![Step::percent(bp(500), 1), Step::percent(bp(100), 1)];
        assert!(Schedule::new(down).unwrap_err().to_string().contains("steps must increase"));
        assert!(Schedule::new(vec![]).is_err());
    }

    fn devices_first() -> Schedule {
        Schedule::new(vec![
            Step { share: Share::Devices(NonZeroU32::new(200).unwrap()), hold_s: 10 },
            Step::percent(bp(200), 20),
            Step::percent(bp(10_000), 0),
        ])
        .unwrap()
    }

    #[test]
    fn a_first_step_of_devices_starts_at_the_smallest_share_and_fits_the_audience() {
        let s = devices_first();
        assert_eq!(s.first(), Percent::SMALLEST);
        assert_eq!(s.last(), Percent::FULL);
        // 200 of 1,000,000 devices is 0.02%; of 20,000, 1%; of 1,000, 20%: capped below 2%.
        assert_eq!(s.fit(Percent::SMALLEST, 1_000_000), Some(bp(2)));
        assert_eq!(s.fit(Percent::SMALLEST, 20_000), Some(bp(100)));
        assert_eq!(s.fit(Percent::SMALLEST, 30_000), Some(bp(67)), "rounded up");
        assert_eq!(s.fit(Percent::SMALLEST, 1_000), Some(bp(199)));
        // It never narrows, needs an audience, and stops once the rollout is past the step.
        assert_eq!(s.fit(bp(100), 1_000_000), None);
        assert_eq!(s.fit(Percent::SMALLEST, 0), None);
        assert_eq!(s.fit(bp(200), 20_000), None);
        assert_eq!(schedule().fit(bp(100), 20_000), None, "no step of devices");
        // The devices step is step 0 below the first share, and it holds like any step.
        assert_eq!(s.step_of(bp(100)), Some(0));
        assert_eq!(s.step_of(bp(200)), Some(1));
        let clock = ScheduleClock::start(0);
        assert_eq!(s.next(bp(100), RolloutState::Active, &clock, 5_000), Tick::Hold { remaining_ms: 5_000 });
        assert_eq!(s.next(bp(100), RolloutState::Active, &clock, 10_000), Tick::Advance { step: 1, to: bp(200) });
    }

    #[test]
    fn steps_of_devices_are_validated_and_spelled_in_json() {
        let devices = |n: u32| Step { share: Share::Devices(NonZeroU32::new(n).unwrap()), hold_s: 1 };
        let e = Schedule::new(vec![Step::percent(bp(100), 1), devices(500)]).unwrap_err().to_string();
        assert!(e.contains("only the first step"), "{e}");
        let e = Schedule::new(vec![devices(500)]).unwrap_err().to_string();
        assert!(e.contains("followed by a share"), "{e}");
        let step: Step = serde_json::from_str(r#"{"devices": 500, "hold_s": 3600}"#).unwrap();
        assert_eq!(step, Step { share: Share::Devices(NonZeroU32::new(500).unwrap()), hold_s: 3600 });
        assert_eq!(serde_json::to_string(&step).unwrap(), r#"{"devices":500,"hold_s":3600}"#);
        let old: Step = serde_json::from_str(r#"{"basis_points": 100, "hold_s": 60}"#).unwrap();
        assert_eq!(old, Step::percent(bp(100), 60), "stored steps read as before");
        for bad in [
            r#"{"devices": 5, "basis_points": 100}"#,
            r#"{"hold_s": 5}"#,
            r#"{"devices": 0}"#,
            r#"{"devices": 5, "percent": 3}"#,
        ] {
            assert!(serde_json::from_str::<Step>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn presets_by_name() {
        assert_eq!("apple_phased".parse::<SchedulePreset>().unwrap().schedule(), Schedule::apple_phased());
        assert_eq!(SchedulePreset::ApplePhased.to_string(), "apple_phased");
        assert_eq!(
            "google".parse::<SchedulePreset>().unwrap_err().to_string(),
            r#"invalid rollout "google": unknown schedule preset; the preset is apple_phased"#
        );
        let e = serde_json::from_str::<SchedulePreset>(r#""Apple_Phased""#).unwrap_err().to_string();
        assert!(e.contains("unknown schedule preset"), "{e}");
    }
}
