//! Health gates: [`HealthGate`] (fixed limits on the install-failure and crash rates, a
//! sequential [`Comparison`] with the baseline build, gates on app metrics, or any of them)
//! and their [`Verdict`] on a rollout's [`GateFigures`]: its window since publish or resume,
//! its current step, and the baseline's figures. Metric gates are judged apart
//! ([`HealthGate::judge_metrics`]) on the builds' metric summaries in the same window, and
//! each step needs new values of every gated metric before it widens
//! ([`HealthGate::metric_steps_short`]).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{ParseError, What};
use crate::experiment::Summary;
use crate::metric::{MAX_METRICS, MetricName};
use crate::metric_gate::{Measure, MetricEvidence, MetricGate};
use crate::sequential::{Call, Comparison, Evidence, Proportion};
use crate::{MetricKind, MetricSet, Percent};

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

/// What a rollout must stay within: fixed limits on its own rates, a sequential comparison with
/// the baseline build, or both; and gates on app metrics. Rates are fractions (0.05 = 5%).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthGate {
    /// Largest acceptable install_failed / (install_succeeded + install_failed).
    pub max_install_failure_rate: Option<f64>,
    /// Largest acceptable crashes / first runs.
    pub max_crash_rate: Option<f64>,
    /// The fixed limits apply once their denominator reaches this many devices in the gate's
    /// window, and each step needs this many new ones before it widens.
    pub min_sample: u64,
    /// The sequential comparison with the build the audience runs now.
    pub compare: Option<Comparison>,
    /// What a trip does.
    pub action: GateAction,
    /// Gates on app metrics (value metrics the app declared), at most one per metric.
    pub metrics: Vec<MetricGate>,
}

/// What a metric gate judges: the candidate's and the baseline's values of one metric (a
/// value metric's values, or a counter's counts per report), each since the gate's window
/// began.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MetricSample {
    /// The candidate's values.
    pub candidate: Summary,
    /// The baseline's values.
    pub baseline: Summary,
}

/// A metric gate whose current step lacks values of its own: the step cannot widen yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepShort {
    /// The metric.
    pub name: MetricName,
    /// New values (a counter's reports) since the step began.
    pub have: u64,
    /// The gate's `min_count`.
    pub need: u64,
}

impl fmt::Display for StepShort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "metric {}: {} new values in this step, {} needed to widen", self.name, self.have, self.need)
    }
}

/// What a gate judges: the candidate's figures in its window (since it was published or last
/// resumed) and in its current step, the baseline's, and the rollout's share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GateFigures {
    /// The candidate since the gate's window began (publish or the last resume).
    pub window: Health,
    /// The candidate since its current step began.
    pub step: Health,
    /// The baseline build's figures, when there is one.
    pub baseline: Option<Health>,
    /// The rollout's current share.
    pub percent: Percent,
    /// Of the window's first runs, those reported at least the comparison's `crash_window_s`
    /// ago (a lower bound, see [`crate::Settling`]): the first runs whose crashes have had
    /// time to arrive.
    pub settled_first_runs: u64,
}

impl GateFigures {
    /// The figures that proof of `metric` is judged on: the window's, but for the crash rate,
    /// whose crashes so far count against the settled first runs only (a rate that can only
    /// look worse than it is, while the window's can only look better).
    pub fn proof(&self, metric: Metric) -> Proportion {
        match metric {
            Metric::InstallFailureRate => metric.of(&self.window),
            Metric::CrashRate => {
                Proportion::new(self.window.crashes, self.settled_first_runs.min(self.window.first_runs))
            }
        }
    }
}

impl HealthGate {
    /// A gate that only compares the build with its baseline (`compare`) and halts it when
    /// it is proven worse: no fixed limits, no metric gates.
    pub fn comparing(compare: Comparison) -> HealthGate {
        HealthGate {
            max_install_failure_rate: None,
            max_crash_rate: None,
            min_sample: 0,
            compare: Some(compare),
            action: GateAction::Halt,
            metrics: Vec::new(),
        }
    }

    /// Checks the rates are fractions in 0..=1 and that the gate watches something.
    pub fn validate(self) -> Result<Self, ParseError> {
        let bad = |why: &'static str| Err(ParseError::new(What::Rollout, "gate", why));
        let rates = [self.max_install_failure_rate, self.max_crash_rate];
        if rates.iter().all(Option::is_none) && self.compare.is_none() && self.metrics.is_empty() {
            return bad("a gate needs max_install_failure_rate, max_crash_rate, compare or metrics");
        }
        if self.metrics.len() > MAX_METRICS {
            return bad("a gate judges at most 32 metrics");
        }
        if self.metrics.iter().enumerate().any(|(i, m)| self.metrics[..i].iter().any(|o| o.name() == m.name())) {
            return bad("a gate judges each metric once");
        }
        if rates.iter().flatten().any(|r| !(0.0..=1.0).contains(r)) {
            return bad("rates are fractions from 0 to 1 (0.05 is 5%)");
        }
        Ok(self)
    }

    /// The comparison's evidence on every metric the baseline has figures for (empty without
    /// a comparison or a baseline).
    pub fn evidence(&self, f: &GateFigures) -> Vec<Evidence> {
        let (Some(c), Some(b)) = (self.compare, f.baseline) else { return Vec::new() };
        let metrics: Vec<_> = Metric::ALL.into_iter().filter(|m| m.of(&b).total() > 0).collect();
        let n = metrics.len() as u32;
        metrics.into_iter().map(|m| c.judge_proving(m, m.of(&f.window), f.proof(m), m.of(&b), n)).collect()
    }

    /// Checks every metric gate names a metric of `declared`, and says which way it is better
    /// when (a counter) the declaration does not, and not otherwise than the declaration.
    pub fn check_metrics_declared(&self, declared: &MetricSet) -> Result<(), ParseError> {
        for m in &self.metrics {
            let bad = |why: String| Err(ParseError::new(What::MetricGate, m.name().as_str(), why));
            match (declared.kind(m.name().as_str()), m.better()) {
                (Some(MetricKind::Value(d)), Some(better)) if d != better => {
                    return bad(format!("is declared {d}: its gate cannot say otherwise (leave better out)"));
                }
                (Some(MetricKind::Value(_)), _) | (Some(MetricKind::Counter), Some(_)) => {}
                (Some(MetricKind::Counter), None) => {
                    return bad(
                        "is a counter: its gate must say which way is better (\"better\": \"lower\" or \"higher\")"
                            .to_owned(),
                    );
                }
                (None, _) => return bad("is not a metric the app declared".to_owned()),
            }
        }
        Ok(())
    }

    /// The metric gates' evidence: one entry per gate whose metric `declared` has (a value
    /// metric, or a counter whose gate says which way is better) and `sample` has figures for
    /// (the baseline's included: without a baseline nothing is judged). A verdict of `Worse`
    /// halts like a breach.
    pub fn judge_metrics(
        &self,
        declared: &MetricSet,
        sample: impl Fn(&MetricName) -> Option<MetricSample>,
    ) -> Vec<MetricEvidence> {
        self.metrics
            .iter()
            .filter_map(|g| {
                let (measure, direction) = match declared.kind(g.name().as_str())? {
                    MetricKind::Value(d) => (Measure::Values, d),
                    MetricKind::Counter => (Measure::CountsPerReport, g.better()?),
                };
                let s = sample(g.name())?;
                Some(g.judge_measured(measure, direction, &s.candidate, &s.baseline))
            })
            .collect()
    }

    /// The metric gates (on metrics `declared` has) whose current step has fewer than their
    /// `min_count` new values, `step` giving each metric's new values (a counter's reports)
    /// since the step began: while any is short, the step does not widen. Like `step_sample`
    /// for installs, this makes a step show its own values before more devices get the build.
    pub fn metric_steps_short(&self, declared: &MetricSet, step: impl Fn(&MetricName) -> u64) -> Vec<StepShort> {
        self.metrics
            .iter()
            .filter(|g| declared.kind(g.name().as_str()).is_some())
            .map(|g| StepShort { name: g.name().clone(), have: step(g.name()), need: g.min_count() })
            .filter(|s| s.have < s.need)
            .collect()
    }

    /// The verdict: the first limit breached or metric proven worse, else whether the current
    /// step has enough evidence to widen.
    pub fn check(&self, f: &GateFigures) -> Verdict {
        let limits =
            [(Metric::InstallFailureRate, self.max_install_failure_rate), (Metric::CrashRate, self.max_crash_rate)];
        let least = self.min_sample.max(1);
        let mut enough = true;
        for (metric, max) in limits {
            let Some(max) = max else { continue };
            if metric.of(&f.step).total() < least {
                enough = false;
            }
            let p = metric.of(&f.window);
            if p.total() >= least && p.rate() > max {
                return Verdict::Trip(Breach::Limit(Limit {
                    metric,
                    rate: p.rate(),
                    max,
                    bad: p.bad(),
                    sample: p.total(),
                }));
            }
        }
        if let Some(c) = self.compare {
            let evidence = self.evidence(f);
            if let Some(worse) = evidence.iter().find(|e| e.call == Call::Worse) {
                return Verdict::Trip(Breach::Worse(*worse));
            }
            if Metric::InstallFailureRate.of(&f.step).total() < c.step_sample() {
                enough = false;
            }
            // Past the proving share, widening needs every metric proven no worse; with no
            // baseline nothing can be proven, and the rollout holds for an engineer.
            let proven = !evidence.is_empty()
                && evidence.iter().all(|e| e.call == Call::NoWorse || !c.needs_proof(e.metric, f.percent));
            if f.percent >= c.proven_from() && !proven {
                enough = false;
            }
        }
        if enough { Verdict::Pass } else { Verdict::NotEnoughSample }
    }
}

/// Distinct-device figures of one release (cumulative, or over a window).
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

impl Health {
    /// The figures gathered since `mark` (an earlier reading of the same cumulative figures).
    pub fn since(self, mark: Health) -> Health {
        Health {
            installs: self.installs.saturating_sub(mark.installs),
            install_failures: self.install_failures.saturating_sub(mark.install_failures),
            first_runs: self.first_runs.saturating_sub(mark.first_runs),
            crashes: self.crashes.saturating_sub(mark.crashes),
        }
    }
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

impl Metric {
    /// Every metric, in the order gates judge them.
    pub const ALL: [Metric; 2] = [Metric::InstallFailureRate, Metric::CrashRate];

    /// This rate's numerator and denominator in `h`.
    pub fn of(self, h: &Health) -> Proportion {
        match self {
            Metric::InstallFailureRate => Proportion::new(h.install_failures, h.installs + h.install_failures),
            Metric::CrashRate => Proportion::new(h.crashes, h.first_runs),
        }
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Metric::InstallFailureRate => "install failure rate",
            Metric::CrashRate => "crash rate per first run",
        })
    }
}

/// A fixed limit breached, with its figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limit {
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

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {:.1}% ({} of {}) is above the limit of {:.1}%",
            self.metric,
            self.rate * 100.0,
            self.bad,
            self.sample,
            self.max * 100.0
        )
    }
}

/// Why a gate tripped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Breach {
    /// A fixed limit is breached.
    Limit(Limit),
    /// The sequential comparison found the candidate worse than the baseline.
    Worse(Evidence),
}

impl fmt::Display for Breach {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Breach::Limit(l) => l.fmt(f),
            Breach::Worse(e) => e.fmt(f),
        }
    }
}

/// A gate's verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verdict {
    /// No limit breached, nothing proven worse, and the step has the evidence to widen.
    Pass,
    /// Nothing breached, but the step lacks the sample or proof to widen: keep holding.
    NotEnoughSample,
    /// A limit is breached or a metric proven worse.
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
            compare: None,
            action: GateAction::Halt,
            metrics: Vec::new(),
        }
    }

    fn say(v: Verdict) -> String {
        match v {
            Verdict::Pass => "pass".to_owned(),
            Verdict::NotEnoughSample => "wait".to_owned(),
            Verdict::Trip(b) => b.to_string(),
        }
    }

    /// The fixed gate on figures whose window and step are both `h`.
    fn check(h: Health, expected: &str) {
        let got = say(gate().check(&GateFigures { window: h, step: h, ..GateFigures::default() }));
        assert!(got.contains(expected), "{h:?}: {got}");
    }

    fn health(installs: u64, install_failures: u64) -> Health {
        Health { installs, install_failures, ..Health::default() }
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
    fn each_step_needs_its_own_sample() {
        let window = Health { installs: 960, install_failures: 40, first_runs: 1000, crashes: 1 };
        let fresh = GateFigures { window, step: Health::default(), ..GateFigures::default() };
        assert_eq!(gate().check(&fresh), Verdict::NotEnoughSample);
        assert_eq!(
            gate().check(&GateFigures { step: window.since(Health { installs: 800, ..window }), ..fresh }),
            Verdict::NotEnoughSample
        );
        assert_eq!(gate().check(&GateFigures { step: window, ..fresh }), Verdict::Pass);
    }

    #[test]
    fn comparing_gate() {
        let gate = HealthGate {
            max_install_failure_rate: None,
            max_crash_rate: None,
            compare: Some(Comparison::default()),
            ..gate()
        };
        let gate = &gate;
        let baseline = Some(health(98_000, 2_000));
        let at = |bp| Percent::from_basis_points(bp).unwrap();
        let f = |window: Health, step: Health, bp| GateFigures {
            window,
            step,
            baseline,
            percent: at(bp),
            settled_first_runs: window.first_runs,
        };
        // 9 failures in 30 installs against 2%: worse, with the figures in the reason.
        let trip = say(gate.check(&f(health(21, 9), health(21, 9), 10)));
        assert!(trip.starts_with("install failure rate: worse than the baseline: 30.00% (9 of 30)"), "{trip}");
        // Below the proving share, a step widens on its own sample.
        assert_eq!(gate.check(&f(health(19, 0), health(19, 0), 10)), Verdict::NotEnoughSample);
        assert_eq!(gate.check(&f(health(20, 0), health(20, 0), 10)), Verdict::Pass);
        // From the proving share on, it needs proof; 2% of 2,000 is proof enough.
        assert_eq!(gate.check(&f(health(300, 6), health(300, 6), 200)), Verdict::NotEnoughSample);
        assert_eq!(gate.check(&f(health(1_960, 40), health(40, 0), 200)), Verdict::Pass);
        // No baseline: nothing can be proven, nothing halts.
        let alone = GateFigures { baseline: None, ..f(health(1_000, 500), health(1_000, 500), 200) };
        assert_eq!(gate.check(&alone), Verdict::NotEnoughSample);
        assert!(gate.evidence(&alone).is_empty());
        // Only metrics the baseline has figures for are judged.
        assert_eq!(gate.evidence(&f(health(1, 0), health(1, 0), 10)).len(), 1);
    }

    #[test]
    fn crashes_prove_only_against_settled_first_runs_and_halt_against_all() {
        let gate = HealthGate::comparing(Comparison::default());
        let baseline = Health { installs: 98_000, install_failures: 2_000, first_runs: 98_000, crashes: 980 };
        let window = |crashes| Health { installs: 1_960, install_failures: 40, first_runs: 1_960, crashes };
        let at = |bp, crashes, settled_first_runs| GateFigures {
            window: window(crashes),
            step: window(crashes),
            baseline: Some(baseline),
            percent: Percent::from_basis_points(bp).unwrap(),
            settled_first_runs,
        };
        // At 10%, where the crash rate needs proof by default.
        let f = |crashes, settled| at(1_000, crashes, settled);
        let crash = |f: &GateFigures| gate.evidence(f).into_iter().find(|e| e.metric == Metric::CrashRate).unwrap();
        // Few crashes among 1,960 first runs, every one a day old: proven no worse.
        assert_eq!(crash(&f(10, 1_960)).call, Call::NoWorse);
        assert_eq!(gate.check(&f(10, 1_960)), Verdict::Pass);
        // The same figures with the first runs just reported: their crashes may still come.
        let fresh = crash(&f(10, 0));
        assert_eq!(fresh.call, Call::Undecided, "{fresh}");
        assert!(fresh.to_string().contains("proof against settled first runs: 100.00% (10 of 10)"), "{fresh}");
        assert_eq!(gate.check(&f(10, 0)), Verdict::NotEnoughSample);
        assert_eq!(crash(&f(10, 1_000)).proof, Proportion::new(10, 1_000));
        // A halt does not wait: many crashes among all first runs are worse, settled or not.
        assert_eq!(crash(&f(120, 0)).call, Call::Worse);
        // Settled first runs never count above the window's.
        assert_eq!(crash(&f(10, 5_000)).proof, Proportion::new(10, 1_960));
        // At 2%, only the install failure rate needs proof, unless the gate says otherwise.
        assert_eq!(gate.check(&at(200, 10, 0)), Verdict::Pass);
        let strict = HealthGate::comparing(
            Comparison::default().with_crashes_proven_from(Percent::from_basis_points(200).unwrap()),
        );
        assert_eq!(strict.check(&at(200, 10, 0)), Verdict::NotEnoughSample);
        assert_eq!(strict.check(&at(200, 10, 1_960)), Verdict::Pass);
    }

    #[test]
    fn validation() {
        assert!(gate().validate().is_ok());
        let none = HealthGate { max_install_failure_rate: None, max_crash_rate: None, ..gate() };
        assert!(none.clone().validate().is_err());
        assert!(HealthGate { compare: Some(Comparison::default()), ..none.clone() }.validate().is_ok());
        let pct = HealthGate { max_crash_rate: Some(5.0), ..gate() };
        assert!(pct.validate().unwrap_err().to_string().contains("fractions"));
        let session = MetricGate::new(MetricName::parse("session_s").unwrap(), 0.1, 0.01, 30).unwrap();
        assert!(HealthGate { metrics: vec![session.clone()], ..none.clone() }.validate().is_ok(), "metrics alone");
        let twice = HealthGate { metrics: vec![session.clone(), session], ..none };
        assert!(twice.validate().unwrap_err().to_string().contains("each metric once"));
    }

    #[test]
    fn metric_gates_judge_declared_value_metrics_with_a_baseline() {
        use crate::{Direction, MetricKind};
        let name = |s: &str| MetricName::parse(s).unwrap();
        let declared = MetricSet::new([
            (name("session_s"), MetricKind::Value(Direction::Higher)),
            (name("purchases"), MetricKind::Counter),
        ])
        .unwrap();
        let on = |m: &str| MetricGate::new(name(m), 0.1, 0.01, 30).unwrap();
        let gate = HealthGate { metrics: vec![on("session_s"), on("purchases"), on("gone")], ..gate() };
        let refused = gate.check_metrics_declared(&declared).unwrap_err().to_string();
        assert!(refused.contains("purchases") && refused.contains("must say which way is better"), "{refused}");
        let counted = HealthGate { metrics: vec![on("purchases").with_better(Direction::Higher)], ..gate.clone() };
        assert!(counted.check_metrics_declared(&declared).is_ok());
        let against = HealthGate { metrics: vec![on("session_s").with_better(Direction::Lower)], ..gate.clone() };
        assert!(against.check_metrics_declared(&declared).unwrap_err().to_string().contains("cannot say otherwise"));
        let gone = HealthGate { metrics: vec![on("gone")], ..gate.clone() };
        assert!(gone.check_metrics_declared(&declared).unwrap_err().to_string().contains("not a metric"));
        let around = |mean: f64, n: usize| {
            let mut s = Summary::default();
            (0..n).for_each(|i| s.add(mean + if i % 2 == 0 { 100.0 } else { -100.0 }));
            s
        };
        let sample = |n: &MetricName| {
            (n.as_str() == "session_s")
                .then(|| MetricSample { candidate: around(210.0, 400), baseline: around(300.0, 2_000) })
        };
        let evidence = gate.judge_metrics(&declared, sample);
        assert_eq!(evidence.len(), 1, "only the declared value metric: {evidence:?}");
        assert_eq!(evidence[0].call, crate::Call::Worse, "{}", evidence[0]);
        assert!(gate.judge_metrics(&declared, |_| None).is_empty(), "no baseline, nothing judged");
        // A counter is judged once its gate says which way is better, on counts per report.
        let counted = HealthGate { metrics: vec![on("purchases").with_better(Direction::Higher)], ..gate.clone() };
        let evidence = counted.judge_metrics(&declared, |_| {
            Some(MetricSample { candidate: around(210.0, 400), baseline: around(300.0, 2_000) })
        });
        assert_eq!(
            (evidence.len(), evidence[0].measure, evidence[0].call),
            (1, Measure::CountsPerReport, crate::Call::Worse)
        );
        // Each step needs the gate's `min_count` new values of every gated, declared metric.
        let short = gate.metric_steps_short(&declared, |n| if n.as_str() == "session_s" { 29 } else { 0 });
        let names: Vec<_> = short.iter().map(|s| (s.name.as_str(), s.have)).collect();
        assert_eq!(names, [("session_s", 29), ("purchases", 0)], "an undeclared metric holds nothing");
        assert_eq!(short[0].to_string(), "metric session_s: 29 new values in this step, 30 needed to widen");
        assert!(gate.metric_steps_short(&declared, |_| 30).is_empty());
    }
}
