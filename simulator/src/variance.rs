//! The metric gate's test on skewed values, with the ways of estimating the candidate's
//! variance side by side ([`Rule`]): each run draws a baseline of many exponential values and a
//! candidate's stream, judges after every value with every rule, and notes the value at which
//! each rule first calls the candidate worse ([`study`] → [`RuleFigures`]). The rules are
//! transformations of the summaries handed to `channels`' `MeanTest`, except [`Rule::Gate`],
//! which is `MetricGate::judge` as the server runs it: the alternatives that were measured and
//! not chosen (docs/gates.md, "The variance at small counts").

use halftone_channels::{Call, Direction, MeanTest, MetricGate, MetricName, Summary, metric_gate_defaults};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt as _, SeedableRng as _};

/// How the test takes the candidate's variance.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// The candidate's sample variance (the gate before this change).
    Plain,
    /// As `Plain`, judging only from this many values on.
    MinCount(u64),
    /// The candidate's variance, at least the baseline's coefficient of variation times the
    /// candidate's mean, squared.
    FloorOnCandidateMean,
    /// The candidate's variance, at least the tolerated baseline's (the variance a candidate
    /// exactly at the tolerance has when its values are the baseline's, scaled).
    FloorOnTolerated,
    /// Both sides take the pooled within-build variance.
    Pooled,
    /// The sample variance times `ν / (ν − 2)`, `ν = n − 1` (a Student-t's variance).
    StudentT,
    /// The sample variance shrunk towards the tolerated baseline's, as if it had this many
    /// more values of that variance.
    Shrunk(u64),
    /// The floor on the candidate's mean, judging only from this many values on.
    FloorOnCandidateMeanFrom(u64),
    /// The candidate's variance, at least the baseline's squared coefficient of variation
    /// times the candidate's mean times the tolerated mean (between the two floors above).
    FloorBetween,
    /// `MetricGate::judge` at its defaults, as shipped.
    Gate,
}

impl Rule {
    /// What the table calls it.
    pub fn name(&self) -> String {
        match self {
            Rule::Plain => "sample variance, min_count 30 (before)".into(),
            Rule::MinCount(n) => format!("sample variance, min_count {n}"),
            Rule::FloorOnCandidateMean => "floor: (baseline's CV × candidate's mean)²".into(),
            Rule::FloorOnTolerated => "floor: the tolerated baseline's variance".into(),
            Rule::Pooled => "pooled variance".into(),
            Rule::StudentT => "t-type: variance × ν/(ν−2)".into(),
            Rule::Shrunk(k) => format!("shrunk towards the baseline's, {k} values' weight"),
            Rule::FloorOnCandidateMeanFrom(n) => format!("floor: (baseline's CV × candidate's mean)², min_count {n}"),
            Rule::FloorBetween => "floor: baseline's CV² × candidate's mean × tolerated mean".into(),
            Rule::Gate => "the gate as shipped (MetricGate::judge)".into(),
        }
    }
}

/// The rules measured, in the table's order.
pub const RULES: [Rule; 13] = [
    Rule::Plain,
    Rule::MinCount(50),
    Rule::MinCount(100),
    Rule::StudentT,
    Rule::Shrunk(30),
    Rule::Pooled,
    Rule::FloorOnTolerated,
    Rule::FloorOnCandidateMean,
    Rule::FloorOnCandidateMeanFrom(100),
    Rule::FloorBetween,
    Rule::Shrunk(100),
    Rule::MinCount(200),
    Rule::Gate,
];

/// One rule over many runs of one candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleFigures {
    /// The rule.
    pub rule: Rule,
    /// The values at which each halted run was halted, sorted.
    pub halted_at: Vec<u64>,
}

/// A summary with the same count and mean as `s` and the variance `var`.
fn with_variance(s: &Summary, var: f64) -> Summary {
    let m2 = var * s.count().saturating_sub(1) as f64;
    Summary::from_moments(s.count(), s.mean(), m2).unwrap_or(*s)
}

/// Runs `runs` candidates whose values are exponential of mean `mean` (sessions: higher is
/// better) against a baseline of `baseline_values` exponential values of mean 300, each judged
/// after every value up to `values`; run `i` draws from seed `seed + i`.
pub fn study(mean: f64, baseline_values: u64, values: u64, runs: usize, seed: u64) -> Vec<RuleFigures> {
    let d = (metric_gate_defaults::DEGRADATION, metric_gate_defaults::ALPHA, metric_gate_defaults::MIN_COUNT);
    let gate = MetricGate::new(MetricName::parse(crate::SESSION).expect("a name"), d.0, d.1, d.2).expect("defaults");
    let mut out: Vec<RuleFigures> = RULES.iter().map(|&rule| RuleFigures { rule, halted_at: Vec::new() }).collect();
    for i in 0..runs {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed.wrapping_add(i as u64));
        let mut exp = |m: f64| {
            let u: f64 = rng.random();
            -m * (1.0 - u).ln()
        };
        let mut baseline = Summary::default();
        (0..baseline_values).for_each(|_| baseline.add(exp(300.0)));
        let tolerated = baseline.scaled(1.0 - d.0);
        let cv = baseline.variance().sqrt() / baseline.mean();
        let tau = d.0 * baseline.mean();
        let test = |min_count: u64| MeanTest { alpha: d.1, tau, min_count };
        let mut candidate = Summary::default();
        let mut open: Vec<bool> = vec![true; RULES.len()];
        for n in 1..=values {
            candidate.add(exp(mean));
            for (r, figures) in out.iter_mut().enumerate() {
                if !open[r] {
                    continue;
                }
                let c = &candidate;
                let worse = |a: &Summary, b: &Summary, min_count: u64| {
                    let c = test(min_count).compare(a, b);
                    c.better == Some(halftone_channels::Better::A)
                };
                let halted = match figures.rule {
                    Rule::Plain => worse(&tolerated, c, d.2),
                    Rule::MinCount(m) => worse(&tolerated, c, m),
                    Rule::FloorOnCandidateMean => {
                        let floor = (cv * c.mean()).powi(2);
                        worse(&tolerated, &with_variance(c, c.variance().max(floor)), d.2)
                    }
                    Rule::FloorOnCandidateMeanFrom(m) => {
                        let floor = (cv * c.mean()).powi(2);
                        worse(&tolerated, &with_variance(c, c.variance().max(floor)), m)
                    }
                    Rule::FloorBetween => {
                        let floor = cv * cv * c.mean() * tolerated.mean();
                        worse(&tolerated, &with_variance(c, c.variance().max(floor)), d.2)
                    }
                    Rule::FloorOnTolerated => {
                        worse(&tolerated, &with_variance(c, c.variance().max(tolerated.variance())), d.2)
                    }
                    Rule::Pooled => {
                        let pooled =
                            (tolerated.m2() + c.m2()) / (tolerated.count() + c.count()).saturating_sub(2).max(1) as f64;
                        worse(&with_variance(&tolerated, pooled), &with_variance(c, pooled), d.2)
                    }
                    Rule::StudentT => {
                        let nu = c.count().saturating_sub(1) as f64;
                        let k = if nu > 2.0 { nu / (nu - 2.0) } else { f64::INFINITY };
                        worse(&tolerated, &with_variance(c, c.variance() * k), d.2)
                    }
                    Rule::Shrunk(k) => {
                        let var = (c.m2() + k as f64 * tolerated.variance())
                            / (c.count().saturating_sub(1) + k).max(1) as f64;
                        worse(&tolerated, &with_variance(c, var), d.2)
                    }
                    Rule::Gate => gate.judge(Direction::Higher, c, &baseline).call == Call::Worse,
                };
                if halted {
                    open[r] = false;
                    figures.halted_at.push(n);
                }
            }
            if open.iter().all(|o| !o) {
                break;
            }
        }
    }
    out.iter_mut().for_each(|f| f.halted_at.sort_unstable());
    out
}
