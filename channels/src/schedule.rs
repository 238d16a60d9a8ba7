//! Staged schedules: [`Schedule`] (steps of percentage and minimum hold time), the named
//! [`SchedulePreset`]s (Apple's phased release), and [`Schedule::next`], which decides, for a rollout's current
//! percentage and its [`ScheduleClock`], whether to hold or advance at a given time.
//!
//! Time is an argument (milliseconds since the epoch); nothing here reads a clock. The current
//! step is derived from the rollout's percentage (the highest step at or below it), so a
//! manual change of percentage simply moves the rollout along the schedule.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{ParseError, What};
use crate::{Percent, RolloutState};

/// The most steps a schedule may have.
pub const MAX_STEPS: usize = 32;
const HOUR_MS: u64 = 3_600_000;

/// One step: the rollout's percentage and how long it holds there at least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    /// The percentage of this step.
    pub basis_points: Percent,
    /// Minimum time at this step before the next, in seconds (ignored on the last step).
    #[serde(default)]
    pub hold_s: u64,
}

/// Strictly increasing steps ending anywhere up to 100%.
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
    /// A schedule from steps: 1 to 32, strictly increasing percentages.
    pub fn new(steps: Vec<Step>) -> Result<Self, ParseError> {
        let bad = |why: String| Err(ParseError::new(What::Rollout, "schedule", why));
        if steps.is_empty() || steps.len() > MAX_STEPS {
            return bad(format!("a schedule has 1 to {MAX_STEPS} steps"));
        }
        if let Some(w) = steps.windows(2).find(|w| w[0].basis_points >= w[1].basis_points) {
            return bad(format!("steps must increase: {} is followed by {}", w[0].basis_points, w[1].basis_points));
        }
        Ok(Schedule { steps })
    }

    /// Apple's phased release: 1%, 2%, 5%, 10%, 20%, 50%, 100%, one day each.
    pub fn apple_phased() -> Self {
        let steps = [100, 200, 500, 1000, 2000, 5000, 10_000]
            .into_iter()
            .map(|bp| Step {
                basis_points: Percent::from_basis_points(bp).expect("valid"),
                hold_s: 24 * HOUR_MS / 1000,
            })
            .collect();
        Schedule { steps }
    }

    /// The steps.
    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    /// The first step's percentage (where a scheduled rollout starts).
    pub fn first(&self) -> Percent {
        self.steps[0].basis_points
    }

    /// The index of the step the rollout is on: the highest step at or below `percent`.
    pub fn step_of(&self, percent: Percent) -> Option<usize> {
        self.steps.iter().rposition(|s| s.basis_points <= percent)
    }

    /// What to do at `now_ms` for a rollout at `percent` in `state` with `clock`.
    pub fn next(&self, percent: Percent, state: RolloutState, clock: &ScheduleClock, now_ms: u64) -> Tick {
        if state != RolloutState::Active {
            return Tick::Stopped(state);
        }
        let Some(next) = self.steps.iter().position(|s| s.basis_points > percent) else {
            return Tick::Done;
        };
        let hold_ms = match self.step_of(percent) {
            Some(i) => self.steps[i].hold_s.saturating_mul(1000),
            None => 0,
        };
        let held = now_ms.saturating_sub(clock.since_ms);
        if held >= hold_ms {
            Tick::Advance { step: next, to: self.steps[next].basis_points }
        } else {
            Tick::Hold { remaining_ms: hold_ms - held }
        }
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
        Schedule::new(vec![
            Step { basis_points: bp(100), hold_s: 10 },
            Step { basis_points: bp(500), hold_s: 20 },
            Step { basis_points: bp(10_000), hold_s: 0 },
        ])
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
        let percents: Vec<u16> = apple.steps().iter().map(|s| s.basis_points.basis_points()).collect();
        assert_eq!(percents, [100, 200, 500, 1000, 2000, 5000, 10_000]);
        assert_eq!(apple.steps().iter().map(|s| s.hold_s).sum::<u64>(), 7 * 86_400);
        let down = vec![Step { basis_points: bp(500), hold_s: 1 }, Step { basis_points: bp(100), hold_s: 1 }];
        assert!(Schedule::new(down).unwrap_err().to_string().contains("steps must increase"));
        assert!(Schedule::new(vec![]).is_err());
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
