//! Comparing builds on an app metric: [`Summary`] (a mergeable count, mean and variance of a
//! numeric figure, in constant memory) and [`MeanTest`] (an always-valid test of the
//! difference of two builds' means), whose [`Comparison`](MeanComparison) names the better
//! build once the evidence is strong enough.
//!
//! The test is the mixture sequential probability ratio test of Johari, Pekelis and Walsh
//! ("Always valid inference", 2017) on the difference of means, with a normal mixture of
//! scale `tau` over the alternatives: with `V = var_a / n_a + var_b / n_b` and `d` the
//! observed difference, `Λ = sqrt(V / (V + tau²)) · exp(tau² d² / (2 V (V + tau²)))`. Under
//! equal means, the chance that `Λ` ever reaches `1 / alpha` is at most `alpha` (asymptotically,
//! with the variances estimated), however often it is looked at; so the side it declares
//! better is wrong at most that often.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Count, mean and sum of squared deviations of a numeric figure (Welford); two summaries of
/// disjoint samples merge exactly (Chan et al.).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Summary {
    count: u64,
    mean: f64,
    m2: f64,
}

impl Summary {
    /// Adds one value; values that are not finite are ignored.
    pub fn add(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
    }

    /// The summary of both samples.
    pub fn merge(&mut self, other: &Summary) {
        if other.count == 0 {
            return;
        }
        let n = self.count + other.count;
        let delta = other.mean - self.mean;
        self.m2 += other.m2 + delta * delta * (self.count as f64 * other.count as f64 / n as f64);
        self.mean += delta * other.count as f64 / n as f64;
        self.count = n;
    }

    /// The summary of `total` values of which `ones` are 1 and the rest 0: a rate as a mean,
    /// so that rates and app metrics are compared by the same test. `ones` above `total`
    /// counts as `total` ones.
    pub fn of_bernoulli(ones: u64, total: u64) -> Summary {
        let ones = ones.min(total);
        if total == 0 {
            return Summary::default();
        }
        let mean = ones as f64 / total as f64;
        Summary { count: total, mean, m2: total as f64 * mean * (1.0 - mean) }
    }

    /// The summary of the values added after `earlier` was read, when `earlier` is an earlier
    /// reading of this same growing sample (the inverse of [`Summary::merge`]): a gate's window
    /// is its build's summary now less its summary at the window's start. `None` when
    /// `earlier` holds more values than this summary, so it cannot be a part of it.
    ///
    /// Subtracting a large sample from another loses precision in the variance when the part
    /// left is small; what is lost is rounding, and a variance that rounds below zero is zero.
    pub fn since(&self, earlier: &Summary) -> Option<Summary> {
        let n = self.count.checked_sub(earlier.count)?;
        if n == 0 {
            return Some(Summary::default());
        }
        if earlier.count == 0 {
            return Some(*self);
        }
        let (total, before, after) = (self.count as f64, earlier.count as f64, n as f64);
        let mean = (self.mean * total - earlier.mean * before) / after;
        let delta = mean - earlier.mean;
        let m2 = self.m2 - earlier.m2 - delta * delta * (before * after / total);
        Some(Summary { count: n, mean, m2: if m2.is_finite() { m2.max(0.0) } else { 0.0 } })
    }

    /// The summary stored as its moments: `count` values of mean `mean` whose squared
    /// deviations from it add up to `m2`. `None` unless both are finite and `m2` is not
    /// negative (a stored mark read back).
    pub fn from_moments(count: u64, mean: f64, m2: f64) -> Option<Summary> {
        if !mean.is_finite() || !m2.is_finite() || m2 < 0.0 {
            return None;
        }
        if count == 0 {
            return Some(Summary::default());
        }
        Some(Summary { count, mean, m2 })
    }

    /// The sum of squared deviations from the mean (`variance × (count − 1)`): with
    /// [`Summary::count`] and [`Summary::mean`], what [`Summary::from_moments`] takes back.
    pub fn m2(&self) -> f64 {
        self.m2
    }

    /// Values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Their mean (0 without values).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// The summary of every value multiplied by `k`: the same count, the mean times `k`, the
    /// variance times `k²`. A gate compares a candidate with its baseline scaled by the
    /// degradation it tolerates.
    pub fn scaled(&self, k: f64) -> Summary {
        Summary { count: self.count, mean: self.mean * k, m2: self.m2 * k * k }
    }

    /// Their sample variance (0 below two values).
    pub fn variance(&self) -> f64 {
        if self.count < 2 { 0.0 } else { self.m2 / (self.count - 1) as f64 }
    }
}

/// Which of two builds a comparison found better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    /// The first (`a`).
    A,
    /// The second (`b`).
    B,
}

/// An always-valid comparison of two means: `alpha` is the largest chance of naming a better
/// build when both are equal; `tau` the scale of differences worth finding, in the metric's
/// unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanTest {
    /// The error rate, in (0, 0.5].
    pub alpha: f64,
    /// The mixture's scale, above 0.
    pub tau: f64,
    /// Each build needs this many values before anything is declared (the variance must be
    /// estimated first).
    pub min_count: u64,
}

/// A comparison's figures and its verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeanComparison {
    /// `mean(b) - mean(a)`.
    pub difference: f64,
    /// `ln Λ`.
    pub statistic: f64,
    /// The bound: `ln(1 / alpha)`.
    pub bound: f64,
    /// The build declared better (higher mean), once `statistic >= bound`.
    pub better: Option<Better>,
}

impl MeanTest {
    /// The comparison of `a` and `b` (higher is better).
    pub fn compare(&self, a: &Summary, b: &Summary) -> MeanComparison {
        let difference = b.mean() - a.mean();
        let bound = (1.0 / self.alpha).ln();
        let mut out = MeanComparison { difference, statistic: 0.0, bound, better: None };
        if a.count() < self.min_count.max(2) || b.count() < self.min_count.max(2) {
            return out;
        }
        let v = a.variance() / a.count() as f64 + b.variance() / b.count() as f64;
        if v <= 0.0 {
            return out;
        }
        let t2 = self.tau * self.tau;
        out.statistic = 0.5 * (v / (v + t2)).ln() + t2 * difference * difference / (2.0 * v * (v + t2));
        if out.statistic >= bound {
            out.better = Some(if difference > 0.0 { Better::B } else { Better::A });
        }
        out
    }
}

impl fmt::Display for MeanComparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match self.better {
            Some(Better::A) => "a is better",
            Some(Better::B) => "b is better",
            None => "undecided",
        };
        write!(f, "{who}: difference {:.4}, statistic {:.2} (bound {:.2})", self.difference, self.statistic, self.bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn of(values: impl IntoIterator<Item = f64>) -> Summary {
        let mut s = Summary::default();
        values.into_iter().for_each(|v| s.add(v));
        s
    }

    #[test]
    fn summaries_merge_exactly() {
        let all = of((0..100).map(f64::from));
        let mut left = of((0..37).map(f64::from));
        left.merge(&of((37..100).map(f64::from)));
        assert_eq!(left.count(), 100);
        assert!((left.mean() - 49.5).abs() < 1e-9 && (left.mean() - all.mean()).abs() < 1e-9);
        assert!((left.variance() - all.variance()).abs() < 1e-6, "{} {}", left.variance(), all.variance());
        assert_eq!(of([f64::NAN, 1.0]).count(), 1);
        let rate = of((0..50).map(|i| if i < 7 { 1.0 } else { 0.0 }));
        let counted = Summary::of_bernoulli(7, 50);
        assert_eq!(counted.count(), 50);
        assert!((counted.mean() - rate.mean()).abs() < 1e-12);
        assert!((counted.variance() - rate.variance()).abs() < 1e-9, "{counted:?} {rate:?}");
        assert_eq!(Summary::of_bernoulli(3, 0), Summary::default());
    }

    /// Both close to rounding, relative to the magnitudes involved.
    fn close(a: f64, b: f64, scale: f64) -> bool {
        (a - b).abs() <= 1e-7 * scale.max(1.0)
    }

    proptest::proptest! {
        /// The summary of a whole less the summary of its first part is the summary of the
        /// rest: the same count, mean and variance (to rounding); a "part" holding more values
        /// than the whole is refused.
        #[test]
        fn since_is_the_summary_of_what_came_after(
            first in proptest::collection::vec(-1e6f64..1e6, 0..200),
            rest in proptest::collection::vec(-1e6f64..1e6, 0..200),
        ) {
            let earlier = of(first.iter().copied());
            let whole = of(first.iter().chain(&rest).copied());
            let want = of(rest.iter().copied());
            let got = whole.since(&earlier).expect("a part of the whole");
            let scale = first.iter().chain(&rest).fold(0f64, |m, v| m.max(v.abs()));
            proptest::prop_assert_eq!(got.count(), want.count());
            proptest::prop_assert!(close(got.mean(), want.mean(), scale), "{:?} {:?}", got, want);
            proptest::prop_assert!(
                close(got.variance().sqrt(), want.variance().sqrt(), scale * 1e2),
                "{:?} {:?}", got, want
            );
            proptest::prop_assert!(got.m2() >= 0.0);
            if !rest.is_empty() {
                proptest::prop_assert_eq!(earlier.since(&whole), None);
            }
            let back = Summary::from_moments(whole.count(), whole.mean(), whole.m2());
            proptest::prop_assert_eq!(back, Some(whole));
        }
    }

    #[test]
    fn since_by_hand() {
        let whole = of([1.0, 2.0, 3.0, 10.0, 20.0]);
        let after = whole.since(&of([1.0, 2.0, 3.0])).unwrap();
        assert_eq!(after.count(), 2);
        assert!((after.mean() - 15.0).abs() < 1e-9 && (after.variance() - 50.0).abs() < 1e-9, "{after:?}");
        assert_eq!(whole.since(&whole), Some(Summary::default()));
        assert_eq!(whole.since(&Summary::default()), Some(whole));
        assert_eq!(Summary::default().since(&whole), None);
        assert_eq!(Summary::from_moments(3, f64::NAN, 1.0), None);
        assert_eq!(Summary::from_moments(3, 1.0, -1.0), None);
        assert_eq!(Summary::from_moments(0, 5.0, 1.0), Some(Summary::default()));
    }

    #[test]
    fn clear_differences_are_found_and_equal_means_are_not() {
        let test = MeanTest { alpha: 0.05, tau: 1.0, min_count: 10 };
        // Alternating values around 10 and 11, spread 2.
        let a = of((0..2_000).map(|i| 10.0 + if i % 2 == 0 { 2.0 } else { -2.0 }));
        let b = of((0..2_000).map(|i| 11.0 + if i % 2 == 0 { 2.0 } else { -2.0 }));
        assert_eq!(test.compare(&a, &b).better, Some(Better::B), "{}", test.compare(&a, &b));
        assert_eq!(test.compare(&b, &a).better, Some(Better::A));
        assert_eq!(test.compare(&a, &a).better, None);
        assert_eq!(test.compare(&of([1.0; 5]), &b).better, None, "too few values");
    }
}
