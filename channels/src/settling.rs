//! First runs old enough to judge their crashes by: [`Settling`], a short history of a build's
//! first-run count from which the gate reads how many first runs were reported at least the
//! comparison's `crash_window_s` ago.
//!
//! A crash is reported when it happens, up to a day or more after the device's first run; a
//! first run is reported at once. Counting every crash so far against every first run so far
//! therefore makes a build that is still filling its step look as if it crashed less than it
//! does: the crashes of its newest first runs have not come yet. A gate that *proved* the
//! crash rate no worse on those figures widened a build crashing twice as often as its
//! baseline past the proving share in 9 rollouts of 10 (simulated, docs/gates.md). Proof is
//! therefore judged against the **settled** first runs only, those reported at least
//! `crash_window_s` ago, while every crash so far still counts: a rate that can only look
//! worse than it is, so proof keeps its error rate. A halt keeps counting against every first
//! run (a rate that can only look better than it is, so a halt keeps its error rate).
//!
//! Counts are cumulative and only grow, so the count of the newest sample taken at or before
//! `now − window` is a lower bound of the first runs reported by then. One sample is kept per
//! `window / 48` (half an hour for a day), so the history is a few dozen entries, however many
//! reports arrive; the bound lags the truth by at most two such intervals while reports come,
//! and not at all a window after the last one.

use std::collections::VecDeque;

/// Samples kept per window: the resolution of the settled count.
const SAMPLES_PER_WINDOW: u64 = 48;

/// A build's first-run count over the last window, sampled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settling {
    /// `(at_ms, first runs reported by then)`, oldest first.
    samples: VecDeque<(u64, u64)>,
}

impl Settling {
    /// No first runs seen yet.
    pub fn new() -> Self {
        Settling::default()
    }

    /// Records that `count` first runs had been reported by `now_ms`, and forgets samples no
    /// longer needed to answer [`Settling::settled`] for `window_ms` from now on.
    pub fn observe(&mut self, now_ms: u64, count: u64, window_ms: u64) {
        let every = (window_ms / SAMPLES_PER_WINDOW).max(1);
        match self.samples.back_mut() {
            // The same count again: its sample keeps the earliest time it was seen, so that
            // once reports stop, all of them settle exactly a window after the last.
            Some(&mut (_, last)) if last == count => {}
            // A new count in the interval of the last sample replaces it: one sample per
            // interval, each exact, the bound lagging by at most two intervals.
            Some(last) if now_ms / every == last.0 / every => *last = (now_ms, count),
            _ => self.samples.push_back((now_ms, count)),
        }
        let cutoff = now_ms.saturating_sub(window_ms);
        while self.samples.len() > 1 && self.samples[1].0 <= cutoff {
            self.samples.pop_front();
        }
    }

    /// The first runs reported at least `window_ms` before `now_ms`, as a lower bound: the
    /// count of the newest sample at or before then, 0 if none is that old.
    pub fn settled(&self, now_ms: u64, window_ms: u64) -> u64 {
        let cutoff = now_ms.checked_sub(window_ms);
        cutoff.and_then(|cutoff| self.samples.iter().rev().find(|(at, _)| *at <= cutoff)).map_or(0, |&(_, count)| count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400_000;

    #[test]
    fn first_runs_settle_a_window_after_they_were_seen() {
        let mut s = Settling::new();
        s.observe(0, 0, DAY);
        s.observe(3_600_000, 100, DAY);
        s.observe(7_200_000, 250, DAY);
        assert_eq!(s.settled(7_200_000, DAY), 0, "nothing is a day old yet");
        assert_eq!(s.settled(DAY + 3_600_000, DAY), 100);
        assert_eq!(s.settled(DAY + 7_199_999, DAY), 100, "250 were seen at two hours, not before");
        assert_eq!(s.settled(DAY + 7_200_000, DAY), 250);
        assert_eq!(s.settled(5 * DAY, DAY), 250);
    }

    #[test]
    fn the_history_stays_short_and_its_bound_only_lags() {
        let mut s = Settling::new();
        // A report every second for three days.
        for t in 0..3 * 86_400u64 {
            s.observe(t * 1000, t, DAY);
            assert!(s.samples.len() <= SAMPLES_PER_WINDOW as usize + 2, "{}", s.samples.len());
        }
        let now = 3 * DAY - 1000;
        let settled = s.settled(now, DAY);
        let truth = (now - DAY) / 1000;
        assert!(settled <= truth && truth - settled <= 2 * DAY / SAMPLES_PER_WINDOW / 1000, "{settled} vs {truth}");
    }

    #[test]
    fn once_reports_stop_every_first_run_settles_a_window_after_the_last() {
        let mut s = Settling::new();
        for t in 0..=600u64 {
            s.observe(t * 1000, t, DAY);
        }
        for t in 601..5_000u64 {
            s.observe(t * 1000, 600, DAY);
        }
        assert!(s.settled(DAY + 599_000, DAY) < 600);
        assert_eq!(s.settled(DAY + 600_000, DAY), 600);
    }
}
