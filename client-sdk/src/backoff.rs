//! Retry timing after failures: exponential backoff with jitter, capped, and the server's
//! `Retry-After`. Pure: the jitter comes in as a number, so the schedule is testable.

use std::time::Duration;

/// The longest `Retry-After` honoured; a larger value (a misconfigured proxy) is cut to this.
pub(crate) const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// Exponential backoff: `initial`, doubling per consecutive failure, capped at `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// The base wait after the first failure.
    pub(crate) initial: Duration,
    /// The cap.
    pub(crate) max: Duration,
}

impl Backoff {
    /// The wait after the `failures`-th consecutive failure (1 for the first), with `jitter`
    /// drawn uniformly from `[0, 1)`.
    ///
    /// Without `Retry-After`: "equal jitter", half of the capped exponential delay fixed and half
    /// random, so a fleet that failed together does not retry together, yet never retries
    /// sooner than half the schedule. With `Retry-After`: that wait (at most a day) plus up to
    /// 10% more, never less, because the server asked for at least that long.
    pub(crate) fn delay(&self, failures: u32, retry_after: Option<Duration>, jitter: f64) -> Duration {
        let jitter = jitter.clamp(0.0, 1.0);
        if let Some(wait) = retry_after {
            let wait = wait.min(MAX_RETRY_AFTER);
            return wait + wait.mul_f64(0.1 * jitter);
        }
        // 2^31 times any non-zero wait saturates, which the cap then brings down.
        let doublings = failures.saturating_sub(1).min(31);
        let exp = self.initial.saturating_mul(1u32 << doublings).min(self.max);
        exp / 2 + (exp / 2).mul_f64(jitter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff { initial: Duration::from_secs(10), max: Duration::from_secs(600) };

    fn check(failures: u32, retry_after: Option<u64>, jitter: f64, expected_ms: u64) {
        let got = B.delay(failures, retry_after.map(Duration::from_secs), jitter);
        assert_eq!(got, Duration::from_millis(expected_ms), "failures={failures} retry_after={retry_after:?}");
    }

    #[test]
    fn doubles_per_failure_and_caps() {
        check(1, None, 0.0, 5_000);
        check(1, None, 0.5, 7_500);
        check(2, None, 0.0, 10_000);
        check(3, None, 0.0, 20_000);
        check(4, None, 0.5, 60_000);
        check(7, None, 0.0, 300_000);
        check(7, None, 1.0, 600_000);
        check(1000, None, 1.0, 600_000);
        check(u32::MAX, None, 0.0, 300_000);
    }

    #[test]
    fn retry_after_is_a_floor_with_a_little_jitter() {
        check(1, Some(7), 0.0, 7_000);
        check(5, Some(7), 1.0, 7_700);
        check(1, Some(0), 0.5, 0);
        check(1, Some(10 * 24 * 3600), 0.0, 24 * 3600 * 1000);
    }
}
