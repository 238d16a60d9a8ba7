//! A/B between two builds on disjoint halves of the fleet (buckets 0..5000 and 5000..10000
//! under the server's bucketing), compared on an app metric with `MeanTest` as devices report
//! it: [`AbFigures`] over many experiments ([`measure_ab`]).

use halftone_channels::{Better, MeanTest, Summary};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};

use crate::fleet::Fleet;

/// The experiment: the metric's mean on each arm (exponentially distributed, like session
/// lengths) and the test.
#[derive(Debug, Clone, Copy)]
pub struct AbPlan {
    /// Mean of arm A.
    pub mean_a: f64,
    /// Mean of arm B (higher is better).
    pub mean_b: f64,
    /// The test.
    pub test: MeanTest,
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
    for i in 0..experiments {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(i as u64));
        // Devices report in the order of their first check-in after the start.
        let mut order: Vec<(u64, bool)> = Vec::with_capacity(fleet.devices as usize);
        for (b, devices) in fleet.by_bucket.iter().enumerate() {
            for _ in devices {
                order.push((rng.random_range(0..fleet.checkin_every_ms), b >= 5_000));
            }
        }
        order.sort_unstable();
        let (mut a, mut b) = (Summary::default(), Summary::default());
        let mut decided = None;
        for (n, &(_, in_b)) in order.iter().enumerate() {
            let u: f64 = rng.random();
            let mean = if in_b { plan.mean_b } else { plan.mean_a };
            let value = -mean * (1.0 - u).ln();
            if in_b {
                b.add(value)
            } else {
                a.add(value)
            }
            if let Some(better) = plan.test.compare(&a, &b).better {
                decided = Some((better, n as u64 + 1));
                break;
            }
        }
        match decided {
            Some((Better::B, n)) => {
                f.better_won += 1;
                reports.push(n);
            }
            Some((Better::A, n)) => {
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
