//! Arms side by side: [`Figure`] (one figure's value in every arm: a rate today, an app metric
//! later), [`compare_arms`] → [`FigureComparison`] (which arm is ahead, and whether the
//! difference is proven by the always-valid [`MeanTest`]).
//!
//! Every figure is a [`Summary`] per arm: a rate (install failures among attempts, crashes
//! among first runs) is the mean of 0/1 values ([`Summary::of_bernoulli`]), and an app
//! metric's summary plugs in as it is, with its [`Direction`]. The leader is the arm with the
//! best mean; it is proven ahead when the mixture test declares it better than *every* other
//! arm, each of the `N - 1` tests run at `alpha / (N - 1)`, so the chance of naming a leader
//! among equal arms stays at most `alpha` however often the figures are looked at.

use crate::{Direction, Health, MeanTest, Metric, Summary};

/// One figure in every arm, in the experiment's arm order.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Its name as shown (`install_failure_rate`, or an app metric's name).
    pub name: String,
    /// Which way is better.
    pub direction: Direction,
    /// Its summary in each arm.
    pub arms: Vec<Summary>,
}

impl Figure {
    /// A gate's rate in every arm, from each arm's figures.
    pub fn rate(metric: Metric, arms: &[Health]) -> Figure {
        let name = match metric {
            Metric::InstallFailureRate => "install_failure_rate",
            Metric::CrashRate => "crash_rate",
        };
        let arms = arms
            .iter()
            .map(|h| {
                let p = metric.of(h);
                Summary::of_bernoulli(p.bad(), p.total())
            })
            .collect();
        Figure { name: name.to_owned(), direction: Direction::Lower, arms }
    }
}

/// What comparing the arms on one figure found.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureComparison {
    /// The figure.
    pub figure: Figure,
    /// The arm (index) with the best mean, when some arm has values and no other ties it.
    pub ahead: Option<usize>,
    /// True when the leader is proven better than every other arm.
    pub proven: bool,
    /// The weakest of the leader's tests (`ln Λ`, the smallest over the other arms; 0 without
    /// a leader).
    pub statistic: f64,
    /// The bound each test must reach: `ln((N - 1) / alpha)`.
    pub bound: f64,
}

/// The test arms are compared with unless told otherwise: a 5% chance of naming a leader
/// among equal arms, differences of about one point (0.01) worth finding, and 30 values per
/// arm before anything is declared.
pub const ARM_TEST: MeanTest = MeanTest { alpha: 0.05, tau: 0.01, min_count: 30 };

/// The difference, as a fraction of the arms' pooled mean, that the test an app metric is
/// compared with is tuned to find: 5%, the A/B case the simulator measures.
pub const METRIC_EFFECT: f64 = 0.05;

/// The test an app metric's arms are compared with: [`ARM_TEST`]'s error rate and sample, its
/// mixture scaled to the metric ([`METRIC_EFFECT`] of the arms' pooled mean), since a metric's
/// values are in its own unit (seconds, milliseconds), not fractions like rates.
pub fn metric_test(figure: &Figure) -> MeanTest {
    let (n, sum) = figure.arms.iter().fold((0.0, 0.0), |(n, sum), s| {
        let c = s.count() as f64;
        (n + c, sum + c * s.mean())
    });
    let pooled = if n > 0.0 { (sum / n).abs() } else { 0.0 };
    MeanTest { tau: (METRIC_EFFECT * pooled).max(1e-9), ..ARM_TEST }
}

/// Compares the arms on `figure` with `test` (see the module documentation).
pub fn compare_arms(test: &MeanTest, figure: Figure) -> FigureComparison {
    let n = figure.arms.len();
    let others = (n.max(2) - 1) as f64;
    let split = MeanTest { alpha: test.alpha / others, ..*test };
    let bound = (1.0 / split.alpha).ln();
    let score = |s: &Summary| match figure.direction {
        Direction::Lower => -s.mean(),
        Direction::Higher => s.mean(),
    };
    let with_values: Vec<usize> = (0..n).filter(|&i| figure.arms[i].count() > 0).collect();
    let best = with_values.iter().copied().max_by(|&a, &b| score(&figure.arms[a]).total_cmp(&score(&figure.arms[b])));
    let ahead = best.filter(|&b| {
        with_values.len() >= 2 && with_values.iter().all(|&i| i == b || score(&figure.arms[i]) < score(&figure.arms[b]))
    });
    let mut out = FigureComparison { figure, ahead, proven: false, statistic: 0.0, bound };
    let Some(lead) = ahead else { return out };
    let mut weakest = f64::INFINITY;
    let mut proven = true;
    for i in (0..n).filter(|&i| i != lead) {
        let c = split.compare(&out.figure.arms[i], &out.figure.arms[lead]);
        weakest = weakest.min(c.statistic);
        // `b` (the leader) declared better means a higher mean; for a lower-is-better figure
        // the leader's mean is lower, so the test declares `a` better.
        let leader_side = match out.figure.direction {
            Direction::Higher => Some(crate::Better::B),
            Direction::Lower => Some(crate::Better::A),
        };
        proven &= c.better.is_some() && c.better == leader_side;
    }
    out.statistic = if weakest.is_finite() { weakest } else { 0.0 };
    out.proven = proven;
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(attempts: u64, failures: u64) -> Health {
        Health { installs: attempts - failures, install_failures: failures, first_runs: 0, crashes: 0 }
    }

    #[test]
    fn a_clear_difference_is_proven_and_a_small_sample_is_not() {
        let f = Figure::rate(Metric::InstallFailureRate, &[health(5_000, 250), health(5_000, 100)]);
        let c = compare_arms(&ARM_TEST, f);
        assert_eq!(c.ahead, Some(1), "2% fails less than 5%");
        assert!(c.proven && c.statistic >= c.bound, "{c:?}");
        let f = Figure::rate(Metric::InstallFailureRate, &[health(40, 2), health(40, 1)]);
        let c = compare_arms(&ARM_TEST, f);
        assert_eq!(c.ahead, Some(1));
        assert!(!c.proven, "one failure apart in 40 proves nothing: {c:?}");
    }

    #[test]
    fn a_metrics_test_is_scaled_to_its_unit() {
        let arm = |mean: f64, n: usize| {
            let mut s = Summary::default();
            for i in 0..n {
                s.add(mean * (0.5 + (i % 11) as f64 / 10.0));
            }
            s
        };
        // Session lengths of 300 s and 400 s over 600 devices each: the rates' test (tuned to
        // differences of 0.01) misses it; the metric's test (5% of about 350 s) proves it.
        let f = Figure {
            name: "session_s".into(),
            direction: Direction::Higher,
            arms: vec![arm(300.0, 600), arm(400.0, 600)],
        };
        let t = metric_test(&f);
        assert!((t.tau - 0.05 * 350.0).abs() < 1.0, "{t:?}");
        assert!(!compare_arms(&ARM_TEST, f.clone()).proven);
        let c = compare_arms(&t, f);
        assert_eq!((c.ahead, c.proven), (Some(1), true), "{c:?}");
        let same =
            Figure { name: "s".into(), direction: Direction::Higher, arms: vec![arm(300.0, 600), arm(300.0, 600)] };
        assert!(!compare_arms(&metric_test(&same), same).proven);
    }

    #[test]
    fn ties_and_empty_arms_have_no_leader() {
        let c = compare_arms(&ARM_TEST, Figure::rate(Metric::CrashRate, &[Health::default(), Health::default()]));
        assert_eq!((c.ahead, c.proven), (None, false));
        let f = Figure::rate(Metric::InstallFailureRate, &[health(100, 5), health(100, 5), health(100, 9)]);
        assert_eq!(compare_arms(&ARM_TEST, f).ahead, None, "two arms tie for the lead");
        let f = Figure::rate(Metric::InstallFailureRate, &[health(100, 5), Health::default()]);
        assert_eq!(compare_arms(&ARM_TEST, f).ahead, None, "one arm alone has no one to lead");
    }

    #[test]
    fn higher_is_better_figures_plug_in_as_summaries() {
        let of = |mean: f64| {
            let mut s = Summary::default();
            (0..2_000).for_each(|i| s.add(mean + if i % 2 == 0 { 0.5 } else { -0.5 }));
            s
        };
        let f = Figure {
            name: "session_minutes".into(),
            direction: Direction::Higher,
            arms: vec![of(10.0), of(10.3), of(9.0)],
        };
        let c = compare_arms(&ARM_TEST, f);
        assert_eq!(c.ahead, Some(1));
        assert!(c.proven, "{c:?}");
        assert!((c.bound - (2.0f64 / 0.05).ln()).abs() < 1e-12, "alpha is split over the other two arms");
    }
}
