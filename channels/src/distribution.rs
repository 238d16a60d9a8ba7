//! A value metric's figures for one build: [`Distribution`], a count, mean and variance
//! ([`Summary`]) with streaming quantiles (a DDSketch, `sketches-ddsketch`), in bounded memory
//! whatever the number of values or devices, and mergeable: the distribution of two disjoint
//! samples is the merge of theirs (how replicas and stored figures combine).
//!
//! The sketch answers a quantile within [`RELATIVE_ERROR`] of the true value, for values
//! within a range of about nine orders of magnitude (`1.0202^1024`) of the largest; below
//! that range, the smallest values are folded into one bin (the p50/p90/p99 a gate and a
//! person read stay exact to that error). Its memory is at most [`MAX_BINS`] counters per
//! sign.

use std::fmt;

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use crate::experiment::Summary;
use crate::metric::MetricValue;

/// The sketch's relative accuracy.
pub const RELATIVE_ERROR: f64 = 0.01;
/// The most bins the sketch keeps for positive values, and as many for negative ones.
pub const MAX_BINS: u32 = 1024;
/// Values closer to zero than this count as zero.
const ZERO: f64 = 1e-9;

fn config() -> Config {
    Config::new(RELATIVE_ERROR, MAX_BINS, ZERO)
}

/// Count, mean, variance and quantiles of a value metric (see the module doc).
#[derive(Clone, Serialize, Deserialize)]
pub struct Distribution {
    summary: Summary,
    sketch: DDSketch,
}

impl Default for Distribution {
    fn default() -> Self {
        Distribution { summary: Summary::default(), sketch: DDSketch::new(config()) }
    }
}

/// The figures people read: count, mean and the usual quantiles (`None` without values).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct DistributionFigures {
    /// Values reported.
    pub count: u64,
    /// Their mean.
    pub mean: f64,
    /// Their standard deviation.
    pub std_dev: f64,
    /// The median.
    pub p50: Option<f64>,
    /// The 90th percentile.
    pub p90: Option<f64>,
    /// The 99th percentile.
    pub p99: Option<f64>,
}

impl Distribution {
    /// Adds one value.
    pub fn add(&mut self, v: MetricValue) {
        self.summary.add(v.get());
        self.sketch.add(v.get());
    }

    /// Adds `other`'s values.
    pub fn merge(&mut self, other: &Distribution) {
        self.summary.merge(&other.summary);
        // Both sketches are made with `config()`; a stored one made otherwise would be a bug,
        // and its quantiles are then left out rather than mixed.
        if self.sketch.merge(&other.sketch).is_err() {
            debug_assert!(false, "a sketch with another configuration");
        }
    }

    /// Count, mean and variance.
    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.summary.count()
    }

    /// The `q`-quantile (`q` in 0..=1), within [`RELATIVE_ERROR`]; `None` without values.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.sketch.quantile(q.clamp(0.0, 1.0)).ok().flatten()
    }

    /// The figures people read.
    pub fn figures(&self) -> DistributionFigures {
        DistributionFigures {
            count: self.count(),
            mean: self.summary.mean(),
            std_dev: self.summary.variance().sqrt(),
            p50: self.quantile(0.5),
            p90: self.quantile(0.9),
            p99: self.quantile(0.99),
        }
    }

    /// Bins in use: at most `2 ×` [`MAX_BINS`] (rounded up to the sketch's chunk of 128).
    pub fn bins(&self) -> usize {
        self.sketch.length()
    }
}

impl fmt::Debug for Distribution {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Distribution").field("figures", &self.figures()).field("bins", &self.bins()).finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn of(values: &[f64]) -> Distribution {
        let mut d = Distribution::default();
        values.iter().for_each(|&v| d.add(MetricValue::new(v).unwrap()));
        d
    }

    /// The value at `q` as the sketch ranks it: the `floor(q (n - 1))`-th smallest.
    fn exact(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[(q * (sorted.len() - 1) as f64) as usize]
    }

    #[test]
    fn quantiles_of_a_known_sample() {
        let values: Vec<f64> = (1..=1000).map(f64::from).collect();
        let f = of(&values).figures();
        assert_eq!(f.count, 1000);
        assert!((f.mean - 500.5).abs() < 1e-9);
        for (got, q) in [(f.p50, 0.5), (f.p90, 0.9), (f.p99, 0.99)] {
            let want = exact(&values, q);
            assert!((got.unwrap() - want).abs() <= RELATIVE_ERROR * want, "q{q}: {got:?} against {want}");
        }
        assert_eq!(Distribution::default().figures().p50, None);
    }

    proptest! {
        /// Merging the distributions of two parts gives the distribution of the whole: the
        /// same count, mean, variance (to rounding) and the same quantiles.
        #[test]
        fn merging_equals_adding_every_value(
            left in prop::collection::vec(0.001f64..1e6, 0..300),
            right in prop::collection::vec(-1e3f64..1e6, 0..300),
        ) {
            let all: Vec<f64> = left.iter().chain(&right).copied().collect();
            let whole = of(&all);
            let mut merged = of(&left);
            merged.merge(&of(&right));
            let (w, m) = (whole.figures(), merged.figures());
            prop_assert_eq!(w.count, m.count);
            prop_assert!((w.mean - m.mean).abs() <= 1e-9 * w.mean.abs().max(1.0));
            prop_assert!((w.std_dev - m.std_dev).abs() <= 1e-6 * w.std_dev.max(1.0));
            for q in [0.0, 0.1, 0.5, 0.9, 0.99, 1.0] {
                prop_assert_eq!(whole.quantile(q), merged.quantile(q), "q {}", q);
            }
        }

        /// Every quantile is within the relative error of the true one.
        #[test]
        fn quantiles_are_within_the_relative_error(values in prop::collection::vec(0.01f64..1e7, 1..500)) {
            let d = of(&values);
            for q in [0.5, 0.9, 0.99] {
                let (got, want) = (d.quantile(q).unwrap(), exact(&values, q));
                prop_assert!((got - want).abs() <= RELATIVE_ERROR * want * 1.0001, "q {}: {} against {}", q, got, want);
            }
        }

        /// Memory is bounded whatever the values: spread over 24 orders of magnitude and both
        /// signs, the sketch keeps at most its bins, and its stored form stays small.
        #[test]
        fn memory_is_bounded_whatever_the_values(exponents in prop::collection::vec(-12f64..12.0, 1..4000), seed in 0u64..1000) {
            let mut d = Distribution::default();
            for (i, e) in exponents.iter().enumerate() {
                let sign = if (i as u64 + seed).is_multiple_of(3) { -1.0 } else { 1.0 };
                d.add(MetricValue::new(sign * 10f64.powf(*e)).unwrap());
            }
            prop_assert!(d.bins() <= 2 * (MAX_BINS as usize + 128), "{} bins", d.bins());
            prop_assert!(serde_json::to_vec(&d).unwrap().len() < 64 * 1024);
        }
    }

    #[test]
    fn a_stored_distribution_reads_back_the_same() {
        let d = of(&[1.0, 2.0, 3.5, 900.0]);
        let back: Distribution = serde_json::from_slice(&serde_json::to_vec(&d).unwrap()).unwrap();
        assert_eq!(back.figures(), d.figures());
        let mut merged = back;
        merged.merge(&d);
        assert_eq!(merged.count(), 8);
    }
}
