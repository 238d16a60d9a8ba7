//! An exhausted proving step: [`ReportsSeen`] (a step's install reports and when they last
//! grew, which the scheduler keeps), [`StepExhaustion`] (whether a rollout held on a proving
//! step waits for evidence that will not come) and [`ExhaustedStep`] (what the last look at
//! such a step decides).
//!
//! A proving step (at or above the comparison's `proven_from`) widens only on proof that the
//! build is no worse. Its audience is a share of a finite fleet: once every admitted device
//! has installed and reported, the sequential test may still be undecided, and no more
//! evidence will come. The rule, shared by the server's scheduler and the simulator:
//!
//! > a rollout is on an **exhausted proving step** when its gate has a comparison, its share
//! > is at or above `proven_from`, its step's hold has elapsed, its gate still lacks the
//! > evidence to widen (`Verdict::NotEnoughSample`), and the step's install reports (installs
//! > and install failures since the step began) have not grown for the comparison's
//! > `exhausted_after_s` (a day by default).
//!
//! Counting time from the last report, not from the step's start, is what makes the sample
//! size of the last look independent of its outcomes: whether an install failed or not does
//! not change when the reports stop coming. A replica that starts (or takes the scheduler's
//! lease) has not seen the reports grow: it starts the wait afresh, which only delays a look.

use std::fmt;

use crate::health::{GateFigures, Metric, Verdict};
use crate::schedule::Tick;
use crate::sequential::{Call, Comparison, LastLook};

/// A step's install reports and when they last grew, as the scheduler saw them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportsSeen {
    reports: u64,
    grew_at_ms: u64,
}

impl ReportsSeen {
    /// The step's reports in `f`: installs and install failures since the step began.
    pub fn reports_of(f: &GateFigures) -> u64 {
        Metric::InstallFailureRate.of(&f.step).total()
    }

    /// Seen for the first time at `now_ms` (the wait starts now).
    pub fn new(reports: u64, now_ms: u64) -> Self {
        ReportsSeen { reports, grew_at_ms: now_ms }
    }

    /// Seen again at `now_ms`: a count that changed (grew, or fell with a new step or window)
    /// restarts the wait.
    pub fn seen(self, reports: u64, now_ms: u64) -> Self {
        if reports == self.reports { self } else { ReportsSeen::new(reports, now_ms) }
    }

    /// The reports last seen.
    pub fn reports(&self) -> u64 {
        self.reports
    }

    /// When they last changed (or were first seen).
    pub fn grew_at_ms(&self) -> u64 {
        self.grew_at_ms
    }
}

/// Whether a rollout waits on an exhausted proving step (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepExhaustion {
    /// Not a proving step held for evidence: no comparison, below `proven_from`, the hold has
    /// not elapsed (or no step follows), or the gate has decided.
    NotWaiting,
    /// A proving step held for evidence: its audience counts as exhausted at `at_ms` unless
    /// new install reports come.
    Waiting {
        /// When it will count as exhausted.
        at_ms: u64,
    },
    /// Exhausted: no new install report for the comparison's `exhausted_after_s`.
    Exhausted,
}

impl StepExhaustion {
    /// Whether a rollout on `percent` (of `f`), whose gate compares with `compare` and says
    /// `verdict`, whose schedule says `tick`, with its step's reports `seen`, is on an
    /// exhausted proving step at `now_ms`.
    pub fn of(
        compare: Option<&Comparison>,
        f: &GateFigures,
        verdict: Verdict,
        tick: Tick,
        seen: ReportsSeen,
        now_ms: u64,
    ) -> Self {
        let Some(c) = compare else { return StepExhaustion::NotWaiting };
        let held = matches!(tick, Tick::Advance { .. }) && verdict == Verdict::NotEnoughSample;
        if !held || f.percent < c.proven_from() {
            return StepExhaustion::NotWaiting;
        }
        let at_ms = seen.grew_at_ms.saturating_add(c.exhausted_after_s().saturating_mul(1000));
        if now_ms >= at_ms { StepExhaustion::Exhausted } else { StepExhaustion::Waiting { at_ms } }
    }
}

/// The last look at an exhausted proving step: each rate's [`LastLook`] and what they decide
/// together.
#[derive(Debug, Clone, PartialEq)]
pub struct ExhaustedStep {
    /// One per rate the baseline has figures for (none without a baseline).
    pub looks: Vec<LastLook>,
    /// `Worse` if any rate is, `NoWorse` if every rate that needs proof at the step's share is
    /// (and there is a rate), else `Undecided`.
    pub call: Call,
}

impl ExhaustedStep {
    /// The phrase an undecided step is paused with.
    pub const UNDECIDED: &'static str = "undecided: the step's audience is exhausted";

    /// What the last look decides for the rollout whose gate compares with `c`, on its window's
    /// figures `f`. Take it once per gate window: its error rates hold only then.
    pub fn judge(c: &Comparison, f: &GateFigures) -> ExhaustedStep {
        let looks = c.last_looks(f);
        let call = if looks.iter().any(|l| l.call == Call::Worse) {
            Call::Worse
        } else if !looks.is_empty()
            && looks.iter().all(|l| l.call == Call::NoWorse || !c.needs_proof(l.metric, f.percent))
        {
            Call::NoWorse
        } else {
            Call::Undecided
        };
        ExhaustedStep { looks, call }
    }
}

impl fmt::Display for ExhaustedStep {
    /// The reason recorded in the audit log: the looks' figures, led (when undecided) by
    /// [`ExhaustedStep::UNDECIDED`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.call == Call::Undecided {
            f.write_str(Self::UNDECIDED)?;
            if self.looks.is_empty() {
                return f.write_str("; no baseline figures to compare with");
            }
            f.write_str("; ")?;
        }
        let said: Vec<String> = self.looks.iter().map(ToString::to_string).collect();
        f.write_str(&said.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Health, Percent};

    const DAY_MS: u64 = 86_400_000;

    fn figures(percent_bp: u16, failures: u64, installs: u64) -> GateFigures {
        let window = Health { installs, install_failures: failures, first_runs: installs, crashes: 0 };
        let baseline = Health { installs: 98_000, install_failures: 2_000, first_runs: 0, crashes: 0 };
        GateFigures {
            window,
            step: window,
            baseline: Some(baseline),
            percent: Percent::from_basis_points(percent_bp).unwrap(),
            settled_first_runs: installs,
        }
    }

    fn advance() -> Tick {
        Tick::Advance { step: 3, to: Percent::from_basis_points(1_000).unwrap() }
    }

    fn check(percent_bp: u16, verdict: Verdict, tick: Tick, grew_at: u64, now: u64, expected: StepExhaustion) {
        let c = Comparison::default();
        let f = figures(percent_bp, 50, 1_950);
        let seen = ReportsSeen::new(ReportsSeen::reports_of(&f), grew_at);
        assert_eq!(
            StepExhaustion::of(Some(&c), &f, verdict, tick, seen, now),
            expected,
            "{percent_bp} {verdict:?} {tick:?} {grew_at} {now}"
        );
    }

    #[test]
    fn a_proving_step_held_for_evidence_is_exhausted_a_day_after_its_last_report() {
        let held = Verdict::NotEnoughSample;
        check(200, held, advance(), 5, 5, StepExhaustion::Waiting { at_ms: 5 + DAY_MS });
        check(200, held, advance(), 5, 4 + DAY_MS, StepExhaustion::Waiting { at_ms: 5 + DAY_MS });
        check(200, held, advance(), 5, 5 + DAY_MS, StepExhaustion::Exhausted);
        // Below the proving share, the hold not elapsed, the last step, a gate that passed.
        check(50, held, advance(), 5, 5 + DAY_MS, StepExhaustion::NotWaiting);
        check(200, held, Tick::Hold { remaining_ms: 1 }, 5, 5 + DAY_MS, StepExhaustion::NotWaiting);
        check(200, held, Tick::Done, 5, 5 + DAY_MS, StepExhaustion::NotWaiting);
        check(200, Verdict::Pass, advance(), 5, 5 + DAY_MS, StepExhaustion::NotWaiting);
        // No comparison: nothing is proven, nothing is exhausted.
        let f = figures(200, 50, 1_950);
        let seen = ReportsSeen::new(0, 0);
        assert_eq!(StepExhaustion::of(None, &f, held, advance(), seen, DAY_MS * 9), StepExhaustion::NotWaiting);
        // A shorter wait, as set on the gate.
        let c = Comparison::default().with_exhausted_after(3_600).unwrap();
        assert_eq!(StepExhaustion::of(Some(&c), &f, held, advance(), seen, 3_600_000), StepExhaustion::Exhausted);
        assert!(Comparison::default().with_exhausted_after(59).is_err());
        assert!(Comparison::default().with_exhausted_after(31 * 86_400).is_err());
    }

    #[test]
    fn new_reports_restart_the_wait_and_the_same_count_does_not() {
        let seen = ReportsSeen::new(10, 1_000);
        assert_eq!(seen.seen(10, 50_000), seen);
        assert_eq!(seen.seen(11, 50_000), ReportsSeen::new(11, 50_000));
        // A new step counts from zero again: the wait restarts too.
        assert_eq!(seen.seen(0, 60_000).grew_at_ms(), 60_000);
    }

    #[test]
    fn the_last_look_halts_widens_or_pauses() {
        let c = Comparison::default();
        assert_eq!(c.last_look(), 0.5);
        // 2,000 install attempts against a 2% baseline (crash rate not judged: no first runs).
        let worse = ExhaustedStep::judge(&c, &figures(200, 66, 1_934));
        assert_eq!(worse.call, Call::Worse, "{worse}");
        assert!(
            worse.to_string().starts_with("install failure rate: last look, the step's audience exhausted: worse"),
            "{worse}"
        );
        let fine = ExhaustedStep::judge(&c, &figures(200, 44, 1_956));
        assert_eq!(fine.call, Call::NoWorse, "{fine}");
        let open = ExhaustedStep::judge(&c, &figures(200, 57, 1_943));
        assert_eq!(open.call, Call::Undecided, "{open}");
        assert!(
            open.to_string()
                .starts_with("undecided: the step's audience is exhausted; install failure rate: last look"),
            "{open}"
        );
        let none = ExhaustedStep::judge(&c, &GateFigures { baseline: None, ..figures(200, 44, 1_956) });
        assert_eq!((none.call, none.looks.len()), (Call::Undecided, 0));
        assert_eq!(
            none.to_string(),
            "undecided: the step's audience is exhausted; no baseline figures to compare with"
        );
        // Without a share kept, the look decides nothing: the step pauses, undecided.
        let off = c.with_last_look(0.0).unwrap();
        assert_eq!(ExhaustedStep::judge(&off, &figures(200, 200, 1_800)).call, Call::Undecided);
    }

    proptest::proptest! {
        /// Reports that keep growing never leave a proving step exhausted: the wait always
        /// ends a full `exhausted_after_s` after the latest report.
        #[test]
        fn growing_reports_are_never_exhausted(gaps in proptest::collection::vec(1u64..86_400_000, 1..50), after_s in 60u64..200_000) {
            let c = Comparison::default().with_exhausted_after(after_s).unwrap();
            let f = figures(200, 50, 1_950);
            let (mut now, mut reports) = (0u64, 0u64);
            let mut seen = ReportsSeen::new(reports, now);
            for gap in gaps {
                now += gap;
                let state = StepExhaustion::of(Some(&c), &f, Verdict::NotEnoughSample, advance(), seen, now);
                // Exhausted exactly when the gap since the last new report reached the wait.
                let due = seen.grew_at_ms() + after_s * 1000;
                proptest::prop_assert_eq!(state == StepExhaustion::Exhausted, now >= due);
                if gap < after_s * 1000 {
                    proptest::prop_assert_eq!(state, StepExhaustion::Waiting { at_ms: due });
                }
                reports += 1;
                seen = seen.seen(reports, now);
                let after = StepExhaustion::of(Some(&c), &f, Verdict::NotEnoughSample, advance(), seen, now);
                proptest::prop_assert_eq!(after, StepExhaustion::Waiting { at_ms: now + after_s * 1000 });
            }
        }
    }
}
