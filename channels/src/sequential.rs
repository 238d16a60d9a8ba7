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
//!
//! ## Two sets of figures: one to halt, one to prove
//!
//! [`Comparison::judge_proving`] halts on the candidate's figures and proves on `proof`
//! figures, which for the crash rate are its crashes against the *settled* first runs only
//! ([`crate::Settling`], [`crate::GateFigures::proof`]): a crash comes up to a day after its
//! first run, so the window's rate can only look better than the truth (safe for a halt) and
//! the settled one only worse (safe for proof). Each call keeps its error rate without a model
//! of when crashes come. The crash rate needs proof only from `crashes_proven_from`.
//!
//! ## The last look at an exhausted proving step
//!
//! A proving step admits a share of a finite audience. When all of it has reported and the
//! sequential test is still undecided, waiting longer brings no evidence: the rollout would
//! hold forever. [`Comparison::judge_last_look`] ([`LastLook`]) is one more, fixed-sample
//! test for that moment, in the manner of a group-sequential design's final analysis: an
//! exact binomial test of the candidate's `bad` of `total` against `p0` (worse when
//! `P(X ≥ bad | total, p0) ≤ share · alpha / metrics`) and against `p1` (no worse when
//! `P(X ≤ bad | total, p1) ≤ share · beta`). Its validity rests on two facts:
//!
//! - it is looked at **once** per rollout, at a sample size set by the step's audience and not
//!   by the outcomes (counting install attempts does not depend on whether they failed), so
//!   the exact tail is its error rate at `p0` (at most the nominal level: the test is
//!   discrete), and smaller for any rate below `p0` (the binomial family has a monotone
//!   likelihood ratio); likewise at and above `p1`;
//! - its error rates are spent apart from the continuous test's (Bonferroni): with a last
//!   look's `share` in `[0, 1)`, the continuous test runs at `alpha (1 − share)` and
//!   `beta (1 − share)`, so the chance of halting a build no worse than `p0` by either is at
//!   most `alpha`, and of widening one as bad as `p1` by either at most `beta`.
//!
//! The exact tail is far sharper than Ville's bound at a known sample size: at 2,000 install
//! attempts against `p0` = 2.115%, 64 failures have a tail of 0.001, where the likelihood
//! ratio for `p1` = 4% is only `e^3.1` (Ville's bound from it: 0.043). The default share is
//! [`DEFAULT_LAST_LOOK`] (0.5); with `share` 0 no error rate is spent on a last look and it
//! decides nothing. When a step counts as exhausted is [`crate::StepExhaustion`]'s.

use std::fmt;

use crate::Percent;
use crate::error::{ParseError, What};
use crate::health::{GateFigures, Metric};

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
    last_look: f64,
    exhausted_after_s: u64,
    crash_window_s: u64,
    crashes_proven_from: Percent,
}

/// The share of `alpha` and `beta` a comparison keeps for the last look unless told otherwise
/// (docs/gates.md, *Decisions*).
pub const DEFAULT_LAST_LOOK: f64 = 0.5;

/// How long a proving step's install reports must not grow before its audience counts as
/// exhausted, unless told otherwise: a day, as the simulator measured it (every admitted device
/// reported, then a day for their crashes).
pub const DEFAULT_EXHAUSTED_AFTER_S: u64 = 86_400;

/// How long after its first run a device's crashes are waited for, unless told otherwise: a
/// day. Proof that the crash rate is no worse counts crashes against the first runs reported
/// at least this long ago only (see [`crate::Settling`]).
pub const DEFAULT_CRASH_WINDOW_S: u64 = 86_400;

/// From which share on the crash rate must be proven no worse, unless told otherwise: 10%.
/// Proving a 1% crash rate no worse than 2% takes several thousand settled first runs, more
/// than a 2% step holds on a fleet of 100,000 (docs/gates.md, *Crashes come late*).
pub const DEFAULT_CRASHES_PROVEN_FROM: Percent = Percent::TENTH;

/// The shortest `exhausted_after_s`: a minute (a step whose reports paused for less is not
/// exhausted, it is between two check-ins).
pub const MIN_EXHAUSTED_AFTER_S: u64 = 60;

/// The longest `exhausted_after_s`: 30 days.
pub const MAX_EXHAUSTED_AFTER_S: u64 = 30 * 86_400;

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
        Ok(Comparison {
            degradation,
            min_difference,
            alpha,
            beta,
            proven_from,
            step_sample,
            last_look: DEFAULT_LAST_LOOK,
            exhausted_after_s: DEFAULT_EXHAUSTED_AFTER_S,
            crash_window_s: DEFAULT_CRASH_WINDOW_S,
            crashes_proven_from: DEFAULT_CRASHES_PROVEN_FROM,
        })
    }

    /// The same comparison with `share` (in `[0, 1)`) of its `alpha` and `beta` kept for a
    /// last look at an exhausted proving step (see the module doc); the continuous test runs
    /// on the rest.
    pub fn with_last_look(self, share: f64) -> Result<Self, ParseError> {
        if !(0.0..1.0).contains(&share) {
            return Err(ParseError::new(What::Rollout, "gate.compare", "last_look is a share from 0 to below 1"));
        }
        Ok(Comparison { last_look: share, ..self })
    }

    /// The share of `alpha` and `beta` kept for the last look.
    pub fn last_look(&self) -> f64 {
        self.last_look
    }

    /// The same comparison with a proving step's audience counted as exhausted once its
    /// install reports have not grown for `seconds` (from [`MIN_EXHAUSTED_AFTER_S`] to
    /// [`MAX_EXHAUSTED_AFTER_S`]; see [`crate::StepExhaustion`]).
    pub fn with_exhausted_after(self, seconds: u64) -> Result<Self, ParseError> {
        Ok(Comparison { exhausted_after_s: duration_s("exhausted_after_s", seconds)?, ..self })
    }

    /// The same comparison with a device's crashes waited for `seconds` after its first run
    /// (from [`MIN_EXHAUSTED_AFTER_S`] to [`MAX_EXHAUSTED_AFTER_S`]): proof that the crash
    /// rate is no worse counts crashes against the first runs at least that old only.
    pub fn with_crash_window(self, seconds: u64) -> Result<Self, ParseError> {
        Ok(Comparison { crash_window_s: duration_s("crash_window_s", seconds)?, ..self })
    }

    /// How long, in seconds, a device's crashes are waited for after its first run.
    pub fn crash_window_s(&self) -> u64 {
        self.crash_window_s
    }

    /// The same comparison with the crash rate proven no worse from `share` on (and never
    /// below `proven_from`, where nothing needs proof); the install failure rate needs proof
    /// from `proven_from`.
    pub fn with_crashes_proven_from(self, share: Percent) -> Self {
        Comparison { crashes_proven_from: share, ..self }
    }

    /// The share from which the crash rate must be proven no worse (from `proven_from` on).
    pub fn crashes_proven_from(&self) -> Percent {
        self.crashes_proven_from
    }

    /// Whether a step at `percent` widens only once `metric` is proven no worse.
    pub fn needs_proof(&self, metric: Metric, percent: Percent) -> bool {
        percent >= self.proven_from && (metric != Metric::CrashRate || percent >= self.crashes_proven_from)
    }

    /// How long, in seconds, a proving step's install reports must not grow before its
    /// audience counts as exhausted.
    pub fn exhausted_after_s(&self) -> u64 {
        self.exhausted_after_s
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
    /// among them): the candidate's figures against the baseline's, for a halt and for proof.
    pub fn judge(&self, metric: Metric, candidate: Proportion, baseline: Proportion, metrics: u32) -> Evidence {
        self.judge_proving(metric, candidate, candidate, baseline, metrics)
    }

    /// As [`Comparison::judge`], with proof that the candidate is no worse judged on `proof`
    /// (figures that can only look worse than the truth: the crash rate against settled first
    /// runs, see [`crate::Settling`]) and a halt on `candidate` (figures that can only look
    /// better), so that each call keeps its error rate.
    pub fn judge_proving(
        &self,
        metric: Metric,
        candidate: Proportion,
        proof: Proportion,
        baseline: Proportion,
        metrics: u32,
    ) -> Evidence {
        let continuous = 1.0 - self.last_look;
        let halt_at = (f64::from(metrics.max(1)) / (self.alpha * continuous)).ln();
        let accept_at = (self.beta * continuous).ln();
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
            proof,
            proof_statistic: 0.0,
            halt_at,
            accept_at,
            call: Call::Undecided,
        };
        if worse <= tolerated {
            e.call = Call::BaselineTooSmall;
            return e;
        }
        let ratio = |p: Proportion| {
            let (bad, good) = (p.bad as f64, (p.total - p.bad) as f64);
            bad * (worse / tolerated).ln() + good * ((1.0 - worse) / (1.0 - tolerated)).ln()
        };
        e.statistic = ratio(candidate);
        e.proof_statistic = ratio(proof);
        e.call = if e.statistic >= halt_at {
            Call::Worse
        } else if e.proof_statistic <= accept_at {
            Call::NoWorse
        } else {
            Call::Undecided
        };
        e
    }
}

/// `seconds` if it is a duration from a minute to 30 days, else why not, named `field`.
fn duration_s(field: &'static str, seconds: u64) -> Result<u64, ParseError> {
    if (MIN_EXHAUSTED_AFTER_S..=MAX_EXHAUSTED_AFTER_S).contains(&seconds) {
        Ok(seconds)
    } else {
        let why = format!("{field} is a duration in seconds from 60 to 2592000 (30 days)");
        Err(ParseError::new(What::Rollout, "gate.compare", why))
    }
}

impl Default for Comparison {
    /// The documented defaults (docs/gates.md gives the reasoning): catch a doubling of the
    /// baseline's rate or 1 point more, whichever is larger; halt a build no worse than the
    /// baseline by chance at most 1% of the time; widen a build that is as bad as the
    /// degradation past 2% of devices at most 0.5% of the time; each step sees 20 new
    /// install attempts before it widens; half of alpha and beta are kept for the last look
    /// at a proving step whose reports have not grown for a day.
    fn default() -> Self {
        Comparison {
            degradation: 1.0,
            min_difference: 0.01,
            alpha: 0.01,
            beta: 0.005,
            proven_from: Percent::from_basis_points(200).expect("2% is a share"),
            step_sample: 20,
            last_look: DEFAULT_LAST_LOOK,
            exhausted_after_s: DEFAULT_EXHAUSTED_AFTER_S,
            crash_window_s: DEFAULT_CRASH_WINDOW_S,
            crashes_proven_from: DEFAULT_CRASHES_PROVEN_FROM,
        }
    }
}

impl Comparison {
    /// The last look at one metric of a proving step whose audience has all reported (see the
    /// module doc), on the figures the continuous test judged (`sequential`, one of `metrics`):
    /// exact binomial tails of its candidate's figures at the tolerated rate and of its proof's
    /// at the rate to catch. Its error rates are valid only if it is taken once per rollout.
    pub fn judge_last_look(&self, sequential: &Evidence, metrics: u32) -> LastLook {
        let Evidence { metric, candidate, proof, baseline, .. } = *sequential;
        let halt_below = self.last_look * self.alpha / f64::from(metrics.max(1));
        let accept_below = self.last_look * self.beta;
        let mut look = LastLook {
            metric,
            candidate,
            proof,
            baseline,
            tolerated: sequential.tolerated,
            worse: sequential.worse,
            if_tolerated: 1.0,
            if_worse: 1.0,
            halt_below,
            accept_below,
            call: Call::Undecided,
        };
        if sequential.call == Call::BaselineTooSmall {
            look.call = Call::BaselineTooSmall;
            return look;
        }
        look.if_tolerated = binomial::at_least(candidate.total, candidate.bad, look.tolerated);
        look.if_worse = binomial::at_most(proof.total, proof.bad, look.worse);
        // Without a share kept (0), nothing is decided, even a tail that underflows to 0.
        look.call = if self.last_look > 0.0 && look.if_tolerated <= halt_below {
            Call::Worse
        } else if self.last_look > 0.0 && look.if_worse <= accept_below {
            Call::NoWorse
        } else {
            Call::Undecided
        };
        look
    }

    /// The last look at every metric the baseline has figures for, on the window's figures
    /// (as [`HealthGate::evidence`](crate::HealthGate::evidence) judges them; empty without a
    /// baseline). The rollout is worse if any metric is, and may widen if all are no worse.
    pub fn last_looks(&self, f: &GateFigures) -> Vec<LastLook> {
        let Some(b) = f.baseline else { return Vec::new() };
        let metrics: Vec<_> = Metric::ALL.into_iter().filter(|m| m.of(&b).total() > 0).collect();
        let n = metrics.len() as u32;
        metrics
            .into_iter()
            .map(|m| self.judge_last_look(&self.judge_proving(m, m.of(&f.window), f.proof(m), m.of(&b), n), n))
            .collect()
    }
}

/// The last look's figures on one metric (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LastLook {
    /// The metric.
    pub metric: Metric,
    /// The candidate's figures in the gate's window.
    pub candidate: Proportion,
    /// The figures proof is judged on ([`GateFigures::proof`]).
    pub proof: Proportion,
    /// The baseline's figures.
    pub baseline: Proportion,
    /// `p0`, the rate tolerated.
    pub tolerated: f64,
    /// `p1`, the rate to catch.
    pub worse: f64,
    /// The chance of at least the candidate's bad outcomes at the tolerated rate.
    pub if_tolerated: f64,
    /// The chance of at most the candidate's bad outcomes at the rate to catch.
    pub if_worse: f64,
    /// Worse when `if_tolerated` is at or below this: `share · alpha / metrics`.
    pub halt_below: f64,
    /// No worse when `if_worse` is at or below this: `share · beta`.
    pub accept_below: f64,
    /// What it says.
    pub call: Call,
}

impl fmt::Display for LastLook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = self.call.phrase();
        write!(
            f,
            "{}: last look, the step's audience exhausted: {call}: {} against the baseline's {}; \
             chance of as many at the tolerated {:.2}%: {:.2e} (halts at {:.2e}); \
             of as few at {:.2}%: {:.2e} (proves at {:.2e})",
            self.metric,
            self.candidate,
            self.baseline,
            self.tolerated * 100.0,
            self.if_tolerated,
            self.halt_below,
            self.worse * 100.0,
            self.if_worse,
            self.accept_below
        )?;
        if self.proof != self.candidate {
            write!(f, " on settled first runs: {}", self.proof)?;
        }
        Ok(())
    }
}

/// Exact binomial tails, summed in floating point from the term at the cut outwards (each
/// term from the previous by the ratio of successive probabilities), so that a tail of
/// 10⁻³⁰⁰ is as exact as one of 0.3.
mod binomial {
    /// `ln P(X = k)` for `X ~ Binomial(n, p)`, `0 < p < 1`, `k ≤ n`.
    fn ln_pmf(n: u64, k: u64, p: f64) -> f64 {
        let m = k.min(n - k);
        let ln_choose: f64 = (1..=m).map(|i| ((n - m + i) as f64 / i as f64).ln()).sum();
        ln_choose + k as f64 * p.ln() + (n - k) as f64 * (-p).ln_1p()
    }

    /// `P(X ≥ k)`.
    pub fn at_least(n: u64, k: u64, p: f64) -> f64 {
        if k == 0 {
            return 1.0;
        }
        if k > n {
            return 0.0;
        }
        if (k as f64) <= n as f64 * p {
            return (1.0 - at_most(n, k - 1, p)).clamp(0.0, 1.0);
        }
        // Above the mean, terms only fall going up.
        let ratio = p / (1.0 - p);
        let mut term = ln_pmf(n, k, p).exp();
        let mut sum = term;
        for j in k..n {
            term *= (n - j) as f64 / (j + 1) as f64 * ratio;
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        sum.min(1.0)
    }

    /// `P(X ≤ k)`.
    pub fn at_most(n: u64, k: u64, p: f64) -> f64 {
        if k >= n {
            return 1.0;
        }
        if (k as f64) >= n as f64 * p {
            return (1.0 - at_least(n, k + 1, p)).clamp(0.0, 1.0);
        }
        // Below the mean, terms only fall going down.
        let ratio = (1.0 - p) / p;
        let mut term = ln_pmf(n, k, p).exp();
        let mut sum = term;
        for j in (1..=k).rev() {
            term *= j as f64 / (n - j + 1) as f64 * ratio;
            sum += term;
            if term <= sum * 1e-17 {
                break;
            }
        }
        sum.min(1.0)
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

impl Call {
    /// What it says, in the words of an audit reason (`worse than the baseline`).
    pub fn phrase(self) -> &'static str {
        match self {
            Call::Worse => "worse than the baseline",
            Call::NoWorse => "no worse than the baseline",
            Call::Undecided => "undecided",
            Call::BaselineTooSmall => "baseline sample too small to judge",
        }
    }
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
    /// The log likelihood ratio of `p1` against `p0` on the candidate's figures: it halts.
    pub statistic: f64,
    /// The figures proof is judged on ([`GateFigures::proof`]; the candidate's, but for the
    /// crash rate, whose crashes count against settled first runs only).
    pub proof: Proportion,
    /// The log likelihood ratio on `proof`: it proves.
    pub proof_statistic: f64,
    /// The statistic halts at or above this bound: `ln(metrics / alpha)`.
    pub halt_at: f64,
    /// The statistic proves the candidate no worse at or below this bound: `ln(beta)`.
    pub accept_at: f64,
    /// What it says.
    pub call: Call,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let call = self.call.phrase();
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
        )?;
        if self.proof != self.candidate {
            write!(
                f,
                "; proof against settled first runs: {}, log likelihood ratio {:.2}",
                self.proof, self.proof_statistic
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults of the tests below, with the stricter `beta` of 0.001 their thresholds were
    /// worked out for.
    fn strict() -> Comparison {
        let c = Comparison::default();
        Comparison::new(c.degradation(), c.min_difference(), c.alpha(), 0.001, c.proven_from(), c.step_sample())
            .unwrap()
    }

    fn judge(bad: u64, total: u64) -> Evidence {
        let baseline = Proportion::new(2_000, 100_000);
        strict().judge(Metric::InstallFailureRate, Proportion::new(bad, total), baseline, 1)
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
        let small = strict().judge(Metric::InstallFailureRate, Proportion::new(5, 10), Proportion::new(0, 20), 1);
        assert_eq!(small.call, Call::BaselineTooSmall, "{small}");
    }

    #[test]
    fn figures_are_shown() {
        let e = judge(9, 30).to_string();
        assert!(e.starts_with("install failure rate: worse than the baseline: 30.00% (9 of 30)"), "{e}");
        assert!(e.contains("baseline's 2.00% (2000 of 100000)") && e.contains("halts at 5.30"), "{e}");
        // ln(1 / (alpha (1 - share))): half of the default alpha of 0.01 is kept for the last look.
        let plain = strict().with_last_look(0.0).unwrap();
        let e = plain.judge(Metric::InstallFailureRate, Proportion::new(9, 30), Proportion::new(2_000, 100_000), 1);
        assert!(e.to_string().contains("halts at 4.61, proves at -6.91"), "{e}");
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
    fn binomial_tails_are_exact() {
        // Small cases against the sum of the probabilities, computed directly.
        let direct = |n: u64, k: u64, p: f64| {
            let mut c = 1.0f64;
            (0..=n)
                .map(|j| {
                    if j > 0 {
                        c = c * (n - j + 1) as f64 / j as f64;
                    }
                    (j, c * p.powi(j as i32) * (1.0 - p).powi((n - j) as i32))
                })
                .filter(|&(j, _)| j >= k)
                .map(|(_, t)| t)
                .sum::<f64>()
        };
        for (n, k, p) in [(10, 3, 0.2), (30, 0, 0.5), (30, 30, 0.5), (40, 1, 0.02), (40, 12, 0.3), (50, 20, 0.1)] {
            let (got, want) = (binomial::at_least(n, k, p), direct(n, k, p));
            assert!((got - want).abs() <= 1e-12 + 1e-9 * want, "P(X >= {k} | {n}, {p}) = {got}, not {want}");
            let below = binomial::at_most(n, k.saturating_sub(1), p);
            let want_below = if k == 0 { 0.0 } else { 1.0 - want };
            assert!((below - want_below).abs() <= 1e-9, "P(X <= {k} - 1 | {n}, {p}) = {below}");
        }
        // Far in the tail, still a positive, tiny number.
        let tiny = binomial::at_least(2_000, 400, 0.02);
        assert!(tiny > 0.0 && tiny < 1e-100, "{tiny}");
        assert_eq!(binomial::at_least(10, 11, 0.5), 0.0);
        assert_eq!(binomial::at_most(10, 10, 0.5), 1.0);
    }

    #[test]
    fn the_last_look_decides_what_the_sequential_test_left_open() {
        let half = strict().with_last_look(0.5).unwrap();
        let baseline = Proportion::new(2_000, 100_000);
        let running = |bad| half.judge(Metric::InstallFailureRate, Proportion::new(bad, 2_000), baseline, 2);
        let look = |bad| half.judge_last_look(&running(bad), 2);
        // 66 failures in 2,000 (3.3%): the likelihood ratio is undecided, the exact tail is not.
        assert_eq!(running(66).call, Call::Undecided, "{}", running(66));
        assert_eq!(look(66).call, Call::Worse, "{}", look(66));
        // 44 (2.2%): proven no worse than 4% at the last look.
        assert_eq!(look(44).call, Call::NoWorse, "{}", look(44));
        // 55 (2.75%): neither.
        assert_eq!(look(55).call, Call::Undecided, "{}", look(55));
        assert!(look(66).to_string().contains("last look, the step's audience exhausted: worse"), "{}", look(66));
        // Kept for the last look, the error rates are taken from the continuous test.
        let (unsplit, split) = (strict().with_last_look(0.0).unwrap(), strict());
        let plain =
            unsplit.judge(Metric::InstallFailureRate, Proportion::new(30, 1_000), Proportion::new(2_000, 100_000), 1);
        let e = split.judge(Metric::InstallFailureRate, Proportion::new(30, 1_000), Proportion::new(2_000, 100_000), 1);
        assert!((e.halt_at - plain.halt_at - 2f64.ln()).abs() < 1e-12 && e.accept_at < plain.accept_at);
        // Without a share kept, the last look decides nothing.
        let none = unsplit
            .judge_last_look(&unsplit.judge(Metric::InstallFailureRate, Proportion::new(500, 2_000), baseline, 1), 1);
        assert_eq!(none.call, Call::Undecided);
        assert!(strict().with_last_look(1.0).is_err());
    }

    #[test]
    fn the_last_look_judges_every_rate_the_baseline_has_figures_for() {
        use crate::Health;
        let c = Comparison::default().with_last_look(0.5).unwrap();
        let window = Health { installs: 1_934, install_failures: 66, first_runs: 1_934, crashes: 19 };
        let baseline = Health { installs: 98_000, install_failures: 2_000, first_runs: 98_000, crashes: 980 };
        let f = GateFigures {
            window,
            step: window,
            baseline: Some(baseline),
            percent: Percent::FULL,
            settled_first_runs: window.first_runs,
        };
        let looks = c.last_looks(&f);
        assert_eq!(looks.iter().map(|l| l.metric).collect::<Vec<_>>(), Metric::ALL);
        // 66 failures of 2,000 against 2%: worse, at alpha split over the two rates.
        assert_eq!(looks[0].call, Call::Worse, "{}", looks[0]);
        assert!((looks[0].halt_below - 0.5 * 0.01 / 2.0).abs() < 1e-15);
        assert!(c.last_looks(&GateFigures { baseline: None, ..f }).is_empty());
        // A baseline without first runs: only the install failure rate is judged.
        let no_runs = Health { first_runs: 0, crashes: 0, ..baseline };
        assert_eq!(c.last_looks(&GateFigures { baseline: Some(no_runs), ..f }).len(), 1);
    }

    proptest::proptest! {
        /// The last look halts a build exactly at the tolerated rate at most `share · alpha`
        /// of the time, and proves one exactly at the rate to catch no worse at most
        /// `share · beta` of the time: summed exactly over every outcome.
        #[test]
        fn the_last_look_keeps_its_error_rates(total in 50u64..3_000, share in 0.1f64..0.9) {
            let c = Comparison::default().with_last_look(share).unwrap();
            let baseline = Proportion::new(2_000, 100_000);
            let look = |bad| c.judge_last_look(&c.judge(Metric::InstallFailureRate, Proportion::new(bad, total), baseline, 1), 1);
            let first = look(0);
            let (p0, p1) = (first.tolerated, first.worse);
            let calls: Vec<Call> = (0..=total)
                .map(|bad| look(bad).call)
                .collect();
            // The smallest count called worse and the largest called no worse.
            let halt_from = calls.iter().position(|&k| k == Call::Worse).map_or(total + 1, |i| i as u64);
            let accept_to = calls.iter().rposition(|&k| k == Call::NoWorse);
            proptest::prop_assert!(binomial::at_least(total, halt_from, p0) <= share * c.alpha() * (1.0 + 1e-9));
            if let Some(k) = accept_to {
                proptest::prop_assert!(binomial::at_most(total, k as u64, p1) <= share * c.beta() * (1.0 + 1e-9));
            }
        }
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
