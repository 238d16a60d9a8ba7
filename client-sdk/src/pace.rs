//! How long a download may take: [`DownloadLimits`] (an overall deadline, and a minimum
//! average rate over a sliding window) and [`RateWindow`], which measures that rate.
//!
//! The stall timeout alone bounds the wait for each piece, not the download: a server that
//! trickles a byte just before every stall timeout would hold a device forever. The minimum
//! rate catches a trickle within about one window; the deadline bounds one
//! [`Client::download`](crate::Client::download) call whatever the rate. Both keep the partial
//! file, so the next call resumes where this one stopped. Time is an argument here: the
//! download loop passes the clock in.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::BuildError;

/// The default minimum rate: 1 KiB/s...
pub(crate) const DEFAULT_MIN_RATE: u64 = 1024;
/// ...on average over the last 30 s.
pub(crate) const DEFAULT_RATE_WINDOW: Duration = Duration::from_secs(30);
/// The derived deadline is this floor...
pub(crate) const DEADLINE_FLOOR: Duration = Duration::from_secs(10 * 60);
/// ...plus the time to transfer the build at this rate (16 KiB/s).
pub(crate) const DEADLINE_RATE: u64 = 16 << 10;

/// The longest deadline an app may set: a week.
const MAX_DEADLINE: Duration = Duration::from_secs(7 * 24 * 3600);
/// The highest minimum rate an app may ask for (a higher one would fail honest links): 100 MiB/s.
const MAX_MIN_RATE: u64 = 100 << 20;
/// The shortest and longest rate windows.
const WINDOW_RANGE: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3600));

/// Bounds on one download, besides the stall timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DownloadLimits {
    /// A deadline the app set; `None` derives one from the size ([`Self::deadline_for`]).
    pub(crate) deadline: Option<Duration>,
    /// Bytes per second, on average over `window`, below which a download fails.
    pub(crate) min_rate: u64,
    /// The window the rate is averaged over.
    pub(crate) window: Duration,
}

impl Default for DownloadLimits {
    fn default() -> Self {
        DownloadLimits { deadline: None, min_rate: DEFAULT_MIN_RATE, window: DEFAULT_RATE_WINDOW }
    }
}

impl DownloadLimits {
    /// Refuses a zero or absurd setting, naming the builder method.
    pub(crate) fn check(&self) -> Result<(), BuildError> {
        let invalid = |setting, reason: String| Err(BuildError::Invalid { setting, reason });
        if let Some(deadline) = self.deadline
            && (deadline.is_zero() || deadline > MAX_DEADLINE)
        {
            return invalid("download_deadline", format!("{deadline:?}: expected more than 0 and at most 7 days"));
        }
        if self.min_rate == 0 || self.min_rate > MAX_MIN_RATE {
            return invalid(
                "min_download_rate",
                format!("{} bytes/s: expected at least 1 and at most {MAX_MIN_RATE}", self.min_rate),
            );
        }
        if self.window < WINDOW_RANGE.0 || self.window > WINDOW_RANGE.1 {
            return invalid("min_download_rate", format!("window {:?}: expected 100 ms to 1 hour", self.window));
        }
        Ok(())
    }

    /// The deadline of a download of `size` bytes: the app's, or [`DEADLINE_FLOOR`] plus
    /// `size` at [`DEADLINE_RATE`].
    pub(crate) fn deadline_for(&self, size: u64) -> Duration {
        self.deadline.unwrap_or_else(|| DEADLINE_FLOOR.saturating_add(Duration::from_secs(size / DEADLINE_RATE)))
    }

    /// A meter for a transfer that starts at `start` with `have` bytes already on disk.
    pub(crate) fn meter(&self, start: Instant, have: u64) -> RateWindow {
        RateWindow { min_rate: self.min_rate, window: self.window, start, samples: VecDeque::from([(start, have)]) }
    }
}

/// A transfer's rate over the last window was below the minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooSlow {
    /// Bytes received during the window.
    pub(crate) received: u64,
}

/// The bytes a transfer received over a sliding window, from samples of its running total.
#[derive(Debug)]
pub(crate) struct RateWindow {
    min_rate: u64,
    window: Duration,
    start: Instant,
    /// (when, total bytes then), oldest first; the first is the last sample at or before the
    /// window's start, so the total at the window's start is known.
    samples: VecDeque<(Instant, u64)>,
}

impl RateWindow {
    /// Records that the transfer has `total` bytes at `now`.
    pub(crate) fn record(&mut self, now: Instant, total: u64) {
        self.samples.push_back((now, total));
        self.prune(now);
    }

    /// Fails once a whole window has passed since the start and the bytes received during
    /// the last window average below the minimum rate.
    pub(crate) fn check(&mut self, now: Instant) -> Result<(), TooSlow> {
        if now.saturating_duration_since(self.start) < self.window {
            return Ok(());
        }
        self.prune(now);
        let (_, then) = self.samples.front().copied().expect("the first sample is never pruned alone");
        let (_, total) = self.samples.back().copied().expect("at least one sample");
        let received = total.saturating_sub(then);
        // received / window < min_rate, in integers: no rounding lets a trickle through.
        let enough = u128::from(self.min_rate) * self.window.as_millis();
        if u128::from(received) * 1000 < enough { Err(TooSlow { received }) } else { Ok(()) }
    }

    /// How often to look at the rate while no bytes arrive.
    pub(crate) fn check_every(&self) -> Duration {
        (self.window / 8).max(Duration::from_millis(10))
    }

    /// Drops samples before the window, keeping the last one at or before its start.
    fn prune(&mut self, now: Instant) {
        let Some(from) = now.checked_sub(self.window) else { return };
        while self.samples.len() >= 2 && self.samples[1].0 <= from {
            self.samples.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// A meter of 100 bytes/s over 10 s, fed `(seconds, total)` samples, checked at `at`.
    #[track_caller]
    fn check(samples: &[(f64, u64)], at: f64, expected: Result<(), u64>) {
        let t0 = Instant::now();
        let limits = DownloadLimits { deadline: None, min_rate: 100, window: secs(10.0) };
        let mut meter = limits.meter(t0, 0);
        for &(s, total) in samples {
            meter.record(t0 + secs(s), total);
        }
        assert_eq!(meter.check(t0 + secs(at)).map_err(|e| e.received), expected, "{samples:?} at {at}");
    }

    #[test]
    fn the_rate_is_averaged_over_the_last_window() {
        // Not judged before a whole window has passed.
        check(&[], 9.9, Ok(()));
        check(&[], 10.0, Err(0));
        // Exactly the minimum passes; one byte less fails.
        check(&[(5.0, 1000)], 10.0, Ok(()));
        check(&[(5.0, 999)], 10.0, Err(999));
        // A fast start does not excuse a trickle later: only the last 10 s count.
        check(&[(1.0, 1_000_000), (12.0, 1_000_001)], 20.0, Err(1));
        check(&[(1.0, 1_000_000), (12.0, 1_001_000)], 20.0, Ok(()));
        // One byte every 2.5 s (the trickle of issue 16, sped up) never reaches the minimum.
        let trickle: Vec<_> = (1..=40u32).map(|i| (f64::from(i) * 2.5, u64::from(i))).collect();
        check(&trickle, 100.0, Err(4));
    }

    #[test]
    fn a_resumed_transfer_counts_only_new_bytes() {
        let t0 = Instant::now();
        let limits = DownloadLimits { deadline: None, min_rate: 100, window: secs(10.0) };
        let mut meter = limits.meter(t0, 50_000);
        meter.record(t0 + secs(5.0), 50_500);
        assert_eq!(meter.check(t0 + secs(10.0)), Err(TooSlow { received: 500 }));
    }

    #[test]
    fn the_default_deadline_grows_with_the_size() {
        let limits = DownloadLimits::default();
        assert_eq!(limits.deadline_for(0), DEADLINE_FLOOR);
        assert_eq!(limits.deadline_for(100 << 20), DEADLINE_FLOOR + Duration::from_secs(6400));
        assert_eq!(
            limits.deadline_for(u64::MAX),
            DEADLINE_FLOOR.saturating_add(Duration::from_secs(u64::MAX / DEADLINE_RATE))
        );
        let fixed = DownloadLimits { deadline: Some(secs(60.0)), ..limits };
        assert_eq!(fixed.deadline_for(100 << 20), secs(60.0));
    }

    #[test]
    fn zero_and_absurd_limits_are_refused() {
        let ok = DownloadLimits::default();
        assert!(ok.check().is_ok());
        let refused = |limits: DownloadLimits| match limits.check() {
            Err(BuildError::Invalid { setting, .. }) => setting,
            other => panic!("{limits:?}: {other:?}"),
        };
        assert_eq!(refused(DownloadLimits { deadline: Some(Duration::ZERO), ..ok }), "download_deadline");
        assert_eq!(refused(DownloadLimits { deadline: Some(secs(8.0 * 24.0 * 3600.0)), ..ok }), "download_deadline");
        assert_eq!(refused(DownloadLimits { min_rate: 0, ..ok }), "min_download_rate");
        assert_eq!(refused(DownloadLimits { min_rate: 1 << 40, ..ok }), "min_download_rate");
        assert_eq!(refused(DownloadLimits { window: Duration::ZERO, ..ok }), "min_download_rate");
        assert_eq!(refused(DownloadLimits { window: secs(7200.0), ..ok }), "min_download_rate");
    }
}
