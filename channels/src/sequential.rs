//! Sequential comparison with the baseline: [`Comparison`] (what the operator tolerates and the
//! error rates they accept), [`Proportion`] (bad outcomes among trials) and [`Evidence`] (one
//! metric's figures, statistic, bounds and [`Call`]).
//!
//! A gate looks at a growing sample every second. A fixed threshold checked that often stops
//! good builds by chance far more often than its nominal rate; a sequential test does not. The
//! test here is Wald's sequential probability ratio test of the candidate's rate, run as an
//! always-valid test (Ville's inequality): the likelihood ratio of "as bad as the degradation
//! the operator wants caught" (`p1`) against "no worse than the baseline" (`p0`) is a
//! non-negative martingale while the candidate is no worse than `p0`, so the chance that it
//! *ever* reaches `1/alpha`, however often it is looked at, is at most `alpha`. Symmetrically,
//! while the candidate is as bad as `p1`, the chance that the ratio ever falls to `beta` is at
//! most `beta`: that is the evidence a rollout needs before it widens past its proving share.
//!
//! The baseline's rate is itself an estimate. `p0` is its upper confidence bound (Wilson, 99%),
//! so that a candidate exactly as good as the baseline is tested against a rate at least as
//! high as its own (the test stays valid), and `p1` is set from the baseline's point estimate:
//! the larger of `rate × (1 + degradation)` and `rate + min_difference`. When the baseline's
//! sample is so small that `p1` is not above `p0`, the metric cannot be judged
//! ([`Call::BaselineTooSmall`]).

use std::fmt;

use crate::Percent;
use crate::error::{ParseError, What};
use crate::health::Metric;

/// The normal quantile of the baseline's one-sided 99% upper confidence bound.
const BASELINE_Z: f64 = 2.576;

/// `bad` outcomes among `total` trials (install failures among install attempts, crashes
/// among first runs). `bad` never exceeds `total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Proportion {
    bad: u64,
    total: u64,
}

impl Proportion {
    /// `bad` among `total`; `total` is raised to `bad` when a count estimated by sketches came
    /// out smaller (a device may crash without reporting its first run).
    pub fn new(bad: u64, total: u64) -> Self {
        Proportion { bad, total: total.max(bad) }
    }

    /// Bad outcomes.
    pub fn bad(self) -> u64 {
        self.bad
    }

    /// Trials.
    pub fn total(self) -> u64 {
        self.total
    }

    /// `bad / total`, 0 without trials.
    pub fn rate(self) -> f64 {
        if self.total == 0 { 0.0 } else { self.bad as f64 / self.total as f64 }
    }

    /// The Wilson score upper bound of the rate at normal quantile `z` (1 without trials).
    fn upper_bound(self, z: f64) -> f64 {
        if self.total == 0 {
            return 1.0;
        }
        let (n, p, z2) = (self.total as f64, self.rate(), z * z);
        let centre = p + z2 / (2.0 * n);
        let spread = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
        ((centre + spread) / (1.0 + z2 / n)).min(1.0)
    }
}

impl fmt::Display for Proportion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.2}% ({} of {})", self.rate() * 100.0, self.bad, self.total)
    }
}

/// What a comparing gate tolerates and the errors it accepts. Build it with
/// [`Comparison::new`] (checked) or take the documented [`Comparison::default`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Comparison {
    degradation: f64,
    min_difference: f64,
    alpha: f64,
    beta: f64,
    proven_from: Percent,
    step_sample: u64,
}

impl Comparison {
    /// A comparison; refuses values outside their ranges.
    ///
    /// - `degradation`: the relative worsening that must be caught (1.0: twice the
    ///   baseline's rate), above 0 and at most 100;
    /// - `min_difference`: the absolute worsening that must be caught when the relative one
    ///   is smaller (0.01: one percentage point), from 0 to below 1;
    /// - `alpha`: the largest chance of halting a build no worse than the baseline, in
    ///   (0, 0.5]; split evenly among the metrics judged;
    /// - `beta`: the largest chance of widening a build as bad as the degradation past
    ///   `proven_from`, in (0, 0.5];
    /// - `proven_from`: from this share on, a step widens only when every metric is proven no
    ///   worse (below it, a step widens on its sample and the absence of a halt);
    /// - `step_sample`: the new install attempts a step needs before it widens.
    pub fn new(
        degradation: f64,
        min_difference: f64,
        alpha: f64,
        beta: f64,
        proven_from: Percent,
        step_sample: u64,
    ) -> Result<Self, ParseError> {
        let bad = |why: &'static str| Err(ParseError::new(What::Rollout, "gate.compare", why));
        if !(degradation > 0.0 && degradation <= 100.0) {
            return bad("degradation is a relative worsening above 0 and at most 100 (1.0 is twice the baseline)");
        }
        if !(0.0..1.0).contains(&min_difference) {
            return bad("min_difference is a fraction from 0 to below 1 (0.01 is one point)");
        }
        let rate = |r: f64| r > 0.0 && r <= 0.5;
        if !(rate(alpha) && rate(beta)) {
            return bad("alpha and beta are error rates above 0 and at most 0.5");
        }
        Ok(Comparison { degradation, min_difference, alpha, beta, proven_from, step_sample })
    }

    /// The relative worsening to catch.
    pub fn degradation(&self) -> f64 {
        self.degradation
    }
    /// The absolute worsening to catch when the relative one is smaller.
    pub fn min_difference(&self) -> f64 {
        self.min_difference
    }
    /// The false-halt rate.
    pub fn alpha(&self) -> f64 {
        self.alpha
    }
    /// The false-widen rate.
    pub fn beta(&self) -> f64 {
        self.beta
    }
    /// The share from which widening needs proof.
    pub fn proven_from(&self) -> Percent {
        self.proven_from
    }
    /// New install attempts per step.
    pub fn step_sample(&self) -> u64 {
        self.step_sample
    }

    /// The evidence on one metric, one of `metrics` judged (the false-halt rate is split
    /// among them): the candidate's figures against the baseline's.
    pub fn judge(&self, metric: Metric, candidate: Proportion, baseline: Proportion, metrics: u32) -> Evidence {
        let halt_at = (f64::from(metrics.max(1)) / self.alpha).ln();
        let accept_at = self.beta.ln();
        let base = baseline.rate();
        let tolerated = baseline.upper_bound(BASELINE_Z);
        let worse = (base * (1.0 + self.degradation)).max(base + self.min_difference).min(0.999_999);
        let mut e = Evidence {
            metric,
            candidate,
            baseline,
            tolerated,
            worse,
            statistic: 0.0,
            halt_at,
            accept_at,
            call: Call::Undecided,
        };
        if worse <= tolerated {
            e.call = Call::BaselineTooSmall;
            return e;
        }
        let (bad, good) = (candidate.bad as f64, (candidate.total - candidate.bad) as f64);
        e.statistic = bad * (worse / tolerated).ln() + good * ((1.0 - worse) / (1.0 - tolerated)).ln();
        e.call = if e.statistic >= halt_at {
            Call::Worse
        } else if e.statistic <= accept_at {
            Call::NoWorse
        } else {
            Call::Undecided
        };
        e
    }
}

impl Default for Comparison {
    /// The documented defaults (docs/gates.md gives the reasoning): catch a doubling of the
    /// baseline's rate or 1 point more, whichever is larger; halt a build no worse than the
    /// baseline by chance at most 1% of the time; widen a build that is as bad as the
    /// degradation past 2% of devices at most 0.1% of the time; each step sees 20 new
    /// install attempts before it widens.
    fn default() -> Self {
        Comparison {
            degradation: 1.0,
            min_difference: 0.01,
            alpha: 0.01,
            beta: 0.001,
            proven_from: Percent::from_basis_points(200).expect("2% is a share"),
            step_sample: 20,
        }
    }
}

/// What the evidence on one metric says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// The candidate is worse than the baseline by at least the degradation: halt.
    Worse,
    /// The candidate is no worse than the tolerated rate: it may widen past the proving share.
    NoWorse,
    /// Not enough evidence either way yet.
    Undecided,
    /// The baseline's sample is too small to set a tolerated rate below the one to catch.
    BaselineTooSmall,
}

/// One metric's figures, statistic and bounds, as recorded with a verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evidence {
    /// The metric.
    pub metric: Metric,
    /// The candidate's figures in the gate's window.
    pub candidate: Proportion,
    /// The baseline's figures.
    pub baseline: Proportion,
    /// `p0`: the baseline's upper confidence bound, the rate tolerated.
    pub tolerated: f64,
    /// `p1`: the rate that must be caught.
    pub worse: f64,
    /// The log likelihood ratio of `p1` against `p0` on the candidate's figures.
    pub statistic: f64,
    /// The statistic halts at or above this bound: `ln(metrics / alpha)`.
    pub halt_at: f64,
    /// The statistic proves the candidate no worse at or below this bound: `ln(beta)`.
    pub accept_at: f64,
    /// What it says.
    pub call: Call,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = match self.call {
            Call::Worse => "worse than the baseline",
            Call::NoWorse => "no worse than the baseline",
            Call::Undecided => "undecided",
            Call::BaselineTooSmall => "baseline sample too small to judge",
        };
        write!(
            f,
            "{}: {call}: {} against the baseline's {}; log likelihood ratio {:.2} \
             (halts at {:.2}, proves at {:.2}; tolerated {:.2}%, to catch {:.2}%)",
            self.metric,
            self.candidate,
            self.baseline,
            self.statistic,
            self.halt_at,
            self.accept_at,
            self.tolerated * 100.0,
            self.worse * 100.0
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judge(bad: u64, total: u64) -> Evidence {
        let baseline = Proportion::new(2_000, 100_000);
        Comparison::default().judge(Metric::InstallFailureRate, Proportion::new(bad, total), baseline, 1)
    }

    #[test]
    fn calls() {
        // A build failing 30%: halted within a few dozen installs.
        assert_eq!(judge(9, 30).call, Call::Worse, "{}", judge(9, 30));
        assert_eq!(judge(2, 30).call, Call::Undecided);
        // As good as the baseline: proven no worse after some hundreds of installs.
        assert_eq!(judge(20, 1_000).call, Call::Undecided, "{}", judge(20, 1_000));
        assert_eq!(judge(30, 1_500).call, Call::NoWorse, "{}", judge(30, 1_500));
        assert_eq!(judge(40, 1_000).call, Call::Worse);
        assert_eq!(judge(0, 0).call, Call::Undecided);
        let small =
            Comparison::default().judge(Metric::InstallFailureRate, Proportion::new(5, 10), Proportion::new(0, 20), 1);
        assert_eq!(small.call, Call::BaselineTooSmall, "{small}");
    }

    #[test]
    fn figures_are_shown() {
        let e = judge(9, 30).to_string();
        assert!(e.starts_with("install failure rate: worse than the baseline: 30.00% (9 of 30)"), "{e}");
        assert!(e.contains("baseline's 2.00% (2000 of 100000)") && e.contains("halts at 4.61"), "{e}");
    }

    #[test]
    fn ranges() {
        let ok = Comparison::new(1.0, 0.01, 0.01, 0.001, Percent::FULL, 20).unwrap();
        assert_eq!(ok.beta(), 0.001);
        for (d, m, a, b) in
            [(0.0, 0.01, 0.01, 0.01), (1.0, 1.0, 0.01, 0.01), (1.0, 0.0, 0.0, 0.01), (1.0, 0.0, 0.1, 0.9)]
        {
            assert!(Comparison::new(d, m, a, b, Percent::FULL, 1).is_err(), "{d} {m} {a} {b}");
        }
        assert!(Comparison::new(f64::NAN, 0.0, 0.01, 0.01, Percent::FULL, 1).is_err());
    }

    #[test]
    fn wilson_bound() {
        let p = Proportion::new(2_000, 100_000);
        let ub = p.upper_bound(BASELINE_Z);
        assert!(ub > 0.0211 && ub < 0.0212, "{ub}");
        assert_eq!(Proportion::new(0, 0).upper_bound(BASELINE_Z), 1.0);
        assert_eq!(Proportion::new(5, 2).total(), 5);
    }
}
