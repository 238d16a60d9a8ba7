//! A/B between two builds on disjoint halves of the fleet, placed by the server's own code
//! (`Experiment::lay_out` and each arm's `ArmSlot` under the experiment's salt), compared on
//! an app metric as devices report it: each arm's values aggregated in a `Distribution` (as
//! the feedback aggregator keeps them per build), their summaries compared by `compare_arms`
//! with the test the experiment view uses for an app metric (`metric_test`, unless the plan
//! names one): [`AbFigures`] over many experiments ([`measure_ab`]).

use halftone_channels::{
    AppId, ArmShare, ChannelName, Direction, Distribution, Experiment, Figure, MeanTest, MetricValue, Percent, bucket,
    compare_arms, metric_test,
};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};

use crate::fleet::Fleet;

/// The experiment: the metric's mean on each arm (exponentially distributed, like session
/// lengths) and the test (`None`: the server's `metric_test`, tuned to 5% of the arms' pooled
/// mean, alpha 5%).
#[derive(Debug, Clone, Copy)]
pub struct AbPlan {
    /// Mean of arm A.
    pub mean_a: f64,
    /// Mean of arm B (higher is better).
    pub mean_b: f64,
    /// The test.
    pub test: Option<MeanTest>,
}

/// What many experiments came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AbFigures {
    /// Experiments run.
    pub experiments: usize,
    /// The better arm (B) was declared better.
    pub better_won: usize,
    /// The worse arm (A) was declared better.
    pub worse_won: usize,
    /// Every device reported and nothing was declared.
    pub undecided: usize,
    /// Devices that had reported when the test decided, median over decided experiments.
    pub median_reports: u64,
}

/// Runs `experiments` experiments; experiment `i` draws from seed `seed + i`.
pub fn measure_ab(fleet: &Fleet, plan: &AbPlan, experiments: usize, seed: u64) -> AbFigures {
    let mut f = AbFigures { experiments, ..AbFigures::default() };
    let mut reports = Vec::new();
    // Arm A (2.0.0) and arm B (2.1.0) on half the channel each, placed as the server places
    // them: every device is in exactly one arm.
    let half = Percent::from_basis_points(5_000).expect("50% is a share");
    let shares = ["2.0.0", "2.1.0"].map(|v| ArmShare { release: v.parse().expect("a version"), share: half });
    let (app, channel): (AppId, ChannelName) = ("notes".parse().expect("an app"), ChannelName::stable());
    let salt = Experiment::salt_for(&app, &channel, &shares).expect("a salt");
    let slots = Experiment::lay_out(&shares).expect("two arms fit");
    let in_b: Vec<bool> = (0..fleet.devices)
        .map(|d| {
            let b = bucket(salt.as_str(), &format!("device-{d}"));
            let arm = slots.iter().position(|(_, s)| s.admits(half, b)).expect("two halves cover every bucket");
            arm == 1
        })
        .collect();
    for i in 0..experiments {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(i as u64));
        // Devices report in the order of their first check-in after the start.
        let mut order: Vec<(u64, bool)> =
            in_b.iter().map(|&b| (rng.random_range(0..fleet.checkin_every_ms), b)).collect();
        order.sort_unstable();
        let (mut a, mut b) = (Distribution::default(), Distribution::default());
        let mut decided = None;
        for (n, &(_, in_b)) in order.iter().enumerate() {
            let u: f64 = rng.random();
            let mean = if in_b { plan.mean_b } else { plan.mean_a };
            let value = MetricValue::new(-mean * (1.0 - u).ln()).expect("a finite session length");
            if in_b {
                b.add(value)
            } else {
                a.add(value)
            }
            let arms = vec![*a.summary(), *b.summary()];
            let figure = Figure { name: crate::fleet::SESSION.into(), direction: Direction::Higher, arms };
            let test = plan.test.unwrap_or_else(|| metric_test(&figure));
            let c = compare_arms(&test, figure);
            if let Some(leader) = c.ahead.filter(|_| c.proven) {
                decided = Some((leader, n as u64 + 1));
                break;
            }
        }
        match decided {
            Some((1, n)) => {
                f.better_won += 1;
                reports.push(n);
            }
            Some((_, n)) => {
                f.worse_won += 1;
                reports.push(n);
            }
            None => f.undecided += 1,
        }
    }
    reports.sort_unstable();
    f.median_reports = crate::scenarios::quantile(&reports, 0.5).unwrap_or(0);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_better_arm_wins_a_clear_difference_and_equal_arms_rarely_produce_a_winner() {
        let fleet = crate::scenarios::fleet(4_000, "notes:2.0.0");
        let test = Some(MeanTest { alpha: 0.01, tau: 15.0, min_count: 100 });
        let clear = measure_ab(&fleet, &AbPlan { mean_a: 300.0, mean_b: 400.0, test }, 20, 1);
        assert_eq!((clear.better_won, clear.worse_won), (20, 0), "{clear:?}");
        let equal = measure_ab(&fleet, &AbPlan { mean_a: 300.0, mean_b: 300.0, test }, 20, 1);
        assert!(equal.better_won + equal.worse_won <= 2, "{equal:?}");
    }
}
