//! Rollout figures over time, for the dashboard's failure and crash rate charts: [`Trend`], a
//! bounded series per rollout of the feedback figures the server already keeps.
//!
//! Every replica samples its own view of the figures (its own events merged with the other
//! replicas', see `feedback`) every [`SAMPLE_EVERY_MS`] of the clock, from the scheduler's task
//! (before the scheduler's lease: each replica answers for itself). A point is kept only when a
//! figure changed since the last one, and a series keeps at most [`KEEP_POINTS`] points. The
//! series live in memory: a restarted server starts them afresh (the figures themselves are
//! stored; only their history is not). Nothing here is on the check-in path.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use halftone_channels::wire::{Figures, TrendPoint};
use halftone_channels::{AppId, ChannelName, Version};

/// How often, by the server's clock, the figures are sampled.
pub const SAMPLE_EVERY_MS: u64 = 5 * 60_000;
/// The most points a series keeps (with a change every sample: 4 days).
pub const KEEP_POINTS: usize = 1152;

/// The series of every rollout this replica has sampled.
#[derive(Debug, Default)]
pub struct Trend {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    last_sample_ms: Option<u64>,
    series: HashMap<(AppId, Version, ChannelName), VecDeque<TrendPoint>>,
}

impl Trend {
    /// Whether a sample is due at `now_ms`; if so, marks it taken.
    pub fn due(&self, now_ms: u64) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let due = inner.last_sample_ms.is_none_or(|last| now_ms.saturating_sub(last) >= SAMPLE_EVERY_MS);
        if due {
            inner.last_sample_ms = Some(now_ms);
        }
        due
    }

    /// Adds the figures of one rollout at `at_ms`, unless they equal its last point's.
    pub fn record(&self, key: (AppId, Version, ChannelName), at_ms: u64, f: &Figures) {
        let point = TrendPoint {
            at_ms,
            installs: f.installs,
            install_failures: f.install_failures,
            first_runs: f.first_runs,
            crashes: f.crashes,
        };
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let series = inner.series.entry(key).or_default();
        if series.back().is_some_and(|last| last.same_figures(&point)) {
            return;
        }
        if series.len() == KEEP_POINTS {
            series.pop_front();
        }
        series.push_back(point);
    }

    /// One rollout's points, oldest first.
    pub fn series(&self, key: &(AppId, Version, ChannelName)) -> Vec<TrendPoint> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.series.get(key).map(|s| s.iter().copied().collect()).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> (AppId, Version, ChannelName) {
        (AppId::parse("notes").unwrap(), "1.0.0".parse().unwrap(), ChannelName::stable())
    }

    fn figures(installs: u64, failures: u64) -> Figures {
        Figures { installs, install_failures: failures, ..Figures::default() }
    }

    #[test]
    fn samples_are_due_every_five_minutes_of_the_clock() {
        let t = Trend::default();
        assert!(t.due(1_000));
        assert!(!t.due(1_000 + SAMPLE_EVERY_MS - 1));
        assert!(t.due(1_000 + SAMPLE_EVERY_MS));
    }

    #[test]
    fn a_point_is_kept_only_when_a_figure_changed_and_a_series_is_bounded() {
        let t = Trend::default();
        t.record(key(), 1, &figures(1, 0));
        t.record(key(), 2, &figures(1, 0));
        t.record(key(), 3, &figures(2, 1));
        let at: Vec<u64> = t.series(&key()).iter().map(|p| p.at_ms).collect();
        assert_eq!(at, [1, 3]);
        for i in 0..(KEEP_POINTS as u64 + 10) {
            t.record(key(), 10 + i, &figures(10 + i, 0));
        }
        let series = t.series(&key());
        assert_eq!(series.len(), KEEP_POINTS);
        assert_eq!(series.last().map(|p| p.installs), Some(10 + KEEP_POINTS as u64 + 9));
        assert!(t.series(&(key().0, "2.0.0".parse().unwrap(), ChannelName::stable())).is_empty());
    }
}
