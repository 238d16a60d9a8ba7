//! Health gates: [`HealthGate`] (maximum install-failure rate, maximum crash rate per first
//! run, minimum sample) and their verdict on a release's [`Health`] figures.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ParseError, What};

/// What a tripped gate does to the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateAction {
    /// Halt: offered to nobody new.
    #[default]
    Halt,
    /// Pause: keep serving, stop advancing.
    Pause,
}

/// Limits a rollout must stay within. Rates are fractions (0.05 = 5%).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HealthGate {
    /// Largest acceptable install_failed / (install_succeeded + install_failed).
    pub max_install_failure_rate: Option<f64>,
    /// Largest acceptable crashes / first runs.
    pub max_crash_rate: Option<f64>,
    /// The rates apply once their denominator reaches this many devices.
    pub min_sample: u64,
    /// What a trip does.
    pub action: GateAction,
}

impl HealthGate {
    /// Checks the rates are fractions in 0..=1 and at least one is set.
    pub fn validate(self) -> Result<Self, ParseError> {
        let bad = |why: &'static str| Err(ParseError::new(What::Rollout, "gate", why));
        let rates = [self.max_install_failure_rate, self.max_crash_rate];
        if rates.iter().all(Option::is_none) {
            return bad("a gate needs max_install_failure_rate or max_crash_rate");
        }
        if rates.iter().flatten().any(|r| !(0.0..=1.0).contains(r)) {
            return bad("rates are fractions from 0 to 1 (0.05 is 5%)");
        }
        Ok(self)
    }

    /// The verdict on `h`: the first limit breached, else whether there was enough sample.
    pub fn check(&self, h: &Health) -> Verdict {
        let installs = h.installs + h.install_failures;
        let checks = [
            (Metric::InstallFailureRate, self.max_install_failure_rate, h.install_failures, installs),
            (Metric::CrashRate, self.max_crash_rate, h.crashes, h.first_runs),
        ];
        let mut enough = true;
        for (metric, max, bad, sample) in checks {
            let Some(max) = max else { continue };
            if sample < self.min_sample.max(1) {
                enough = false;
                continue;
            }
            let rate = bad as f64 / sample as f64;
            if rate > max {
                return Verdict::Trip(Breach { metric, rate, max, bad, sample });
            }
        }
        if enough { Verdict::Pass } else { Verdict::NotEnoughSample }
    }
}

/// Distinct-device figures of one release on one channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Health {
    /// Devices that installed it.
    pub installs: u64,
    /// Devices whose install failed.
    pub install_failures: u64,
    /// Devices that ran it for the first time.
    pub first_runs: u64,
    /// Devices that crashed on it.
    pub crashes: u64,
}

/// The rate a gate watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// install failures / installs attempted
    InstallFailureRate,
    /// crashes / first runs
    CrashRate,
}

/// A breached limit, with its figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Breach {
    /// Which rate.
    pub metric: Metric,
    /// Its value.
    pub rate: f64,
    /// The limit.
    pub max: f64,
    /// The numerator.
    pub bad: u64,
    /// The denominator.
    pub sample: u64,
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.metric {
            Metric::InstallFailureRate => "install failure rate",
            Metric::CrashRate => "crash rate per first run",
        };
        write!(
            f,
            "{what} {:.1}% ({} of {}) is above the limit of {:.1}%",
            self.rate * 100.0,
            self.bad,
            self.sample,
            self.max * 100.0
        )
    }
}

/// A gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// Every watched rate is within its limit, on enough sample.
    Pass,
    /// Some rate lacks the minimum sample (and none is breached): keep holding.
    NotEnoughSample,
    /// A limit is breached.
    Trip(Breach),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> HealthGate {
        HealthGate {
            max_install_failure_rate: Some(0.05),
            max_crash_rate: Some(0.02),
            min_sample: 100,
            action: GateAction::Halt,
        }
    }

    fn check(h: Health, expected: &str) {
        let got = match gate().check(&h) {
            Verdict::Pass => "pass".to_owned(),
            Verdict::NotEnoughSample => "wait".to_owned(),
            Verdict::Trip(b) => b.to_string(),
        };
        assert!(got.contains(expected), "{h:?}: {got}");
    }

    #[test]
    fn verdicts() {
        check(Health { installs: 10, install_failures: 5, first_runs: 10, crashes: 5 }, "wait");
        check(Health { installs: 96, install_failures: 4, first_runs: 100, crashes: 1 }, "pass");
        check(
            Health { installs: 70, install_failures: 30, first_runs: 100, crashes: 0 },
            "install failure rate 30.0% (30 of 100) is above the limit of 5.0%",
        );
        check(
            Health { installs: 200, install_failures: 0, first_runs: 150, crashes: 6 },
            "crash rate per first run 4.0% (6 of 150)",
        );
        // A breach with enough sample trips even when the other rate lacks sample.
        check(Health { installs: 50, install_failures: 50, first_runs: 3, crashes: 0 }, "install failure rate 50.0%");
    }

    #[test]
    fn validation() {
        assert!(gate().validate().is_ok());
        let none = HealthGate { max_install_failure_rate: None, max_crash_rate: None, ..gate() };
        assert!(none.validate().is_err());
        let pct = HealthGate { max_crash_rate: Some(5.0), ..gate() };
        assert!(pct.validate().unwrap_err().to_string().contains("fractions"));
    }
}
