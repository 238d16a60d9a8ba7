//! The background poller: checks for updates on the server's schedule (`next_check_s`), with
//! jitter, backs off exponentially after failures (honouring `Retry-After` on 429 and 503),
//! and hands every outcome to a callback. It stops when its [`Poller`] handle is dropped or
//! [stopped](Poller::stop).
//!
//! All waiting is `tokio::time`, so tests drive it with a paused clock.

use std::future::Future;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::update::Checked;
use crate::{CheckOutcome, Error};

/// When the poller checks.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PollPolicy {
    /// The shortest wait between checks, whatever the server says. Default: 1 minute.
    pub min_interval: Duration,
    /// The longest wait between checks, whatever the server says. Default: 1 day.
    pub max_interval: Duration,
    /// Each wait after a successful check is moved by up to this fraction, up or down, at
    /// random, so devices started together spread out. Default: 0.1.
    pub jitter: f64,
    /// The wait after a first failure; it doubles with each further failure. Default: 30 s.
    pub backoff_initial: Duration,
    /// The longest wait after failures (unless the server asks for longer). Default: 1 hour.
    pub backoff_max: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            min_interval: Duration::from_secs(60),
            max_interval: Duration::from_secs(24 * 3600),
            jitter: 0.1,
            backoff_initial: Duration::from_secs(30),
            backoff_max: Duration::from_secs(3600),
        }
    }
}

impl PollPolicy {
    /// The wait after a successful check whose answer asked for `next_check`; `random` is
    /// uniform in `[0, 1)`.
    pub(crate) fn after_success(&self, next_check: Duration, random: f64) -> Duration {
        let max = self.max_interval.max(self.min_interval);
        let base = next_check.clamp(self.min_interval, max);
        let spread = self.jitter.clamp(0.0, 1.0) * (2.0 * random.clamp(0.0, 1.0) - 1.0);
        base.mul_f64(1.0 + spread).max(self.min_interval)
    }

    /// The wait after the `failures`-th failure in a row (see [`Backoff::delay`]).
    pub(crate) fn after_failure(&self, failures: u32, retry_after: Option<Duration>, random: f64) -> Duration {
        Backoff { initial: self.backoff_initial, max: self.backoff_max }.delay(failures, retry_after, random)
    }
}

/// A running poller. Dropping it stops it.
#[derive(Debug)]
pub struct Poller {
    task: Option<JoinHandle<()>>,
}

impl Poller {
    /// Starts polling on the current tokio runtime: a check at once, then on schedule. `check`
    /// performs one check; `random` draws the jitter.
    pub(crate) fn spawn<C, F>(
        policy: PollPolicy,
        mut check: C,
        mut deliver: impl FnMut(Result<CheckOutcome, Error>) + Send + 'static,
        mut random: impl FnMut() -> f64 + Send + 'static,
    ) -> Self
    where
        C: FnMut() -> F + Send + 'static,
        F: Future<Output = Result<Checked, Error>> + Send,
    {
        let task = tokio::spawn(async move {
            let mut failures = 0u32;
            loop {
                let delay = match check().await {
                    Ok(Checked { outcome, next_check }) => {
                        failures = 0;
                        deliver(outcome);
                        policy.after_success(next_check, random())
                    }
                    Err(e) => {
                        failures = failures.saturating_add(1);
                        let delay = policy.after_failure(failures, e.retry_after(), random());
                        deliver(Err(e));
                        delay
                    }
                };
                tokio::time::sleep(delay).await;
            }
        });
        Poller { task: Some(task) }
    }

    /// Stops the poller and waits until it has stopped: the callback is not called again.
    pub async fn stop(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    use tokio::time::Instant;

    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn success_follows_the_server_within_bounds_and_jitter() {
        let p = PollPolicy::default();
        assert_eq!(p.after_success(secs(3600), 0.5), secs(3600));
        assert_eq!(p.after_success(secs(3600), 0.0), secs(3240));
        assert_eq!(p.after_success(secs(3600), 1.0), secs(3960));
        assert_eq!(p.after_success(secs(0), 0.5), secs(60));
        assert_eq!(p.after_success(secs(0), 0.0), secs(60), "never below the minimum");
        assert_eq!(p.after_success(secs(10 * 24 * 3600), 0.5), secs(24 * 3600));
    }

    #[test]
    fn failures_back_off_and_honour_retry_after() {
        let p = PollPolicy::default();
        assert_eq!(p.after_failure(1, None, 0.0), secs(15));
        assert_eq!(p.after_failure(1, None, 1.0), secs(30));
        assert_eq!(p.after_failure(3, None, 1.0), secs(120));
        assert_eq!(p.after_failure(30, None, 1.0), secs(3600));
        assert_eq!(p.after_failure(30, Some(secs(7)), 0.0), secs(7));
        assert_eq!(p.after_failure(1, Some(secs(7200)), 0.0), secs(7200), "the server may ask for longer");
    }

    type Script = Arc<Mutex<VecDeque<Result<u32, Option<u64>>>>>;

    struct Scripted {
        poller: Poller,
        /// When each check ran, from the start.
        times: Arc<Mutex<Vec<Duration>>>,
        /// Whether each delivered outcome was a success.
        outcomes: Arc<Mutex<Vec<bool>>>,
    }

    /// A poller whose checks follow `script` (Ok(next_check_s) or Err(retry_after)).
    fn scripted(script: Vec<Result<u32, Option<u64>>>) -> Scripted {
        let start = Instant::now();
        let script: Script = Arc::new(Mutex::new(script.into()));
        let times = Arc::new(Mutex::new(Vec::new()));
        let outcomes = Arc::new(Mutex::new(Vec::new()));
        let (t, o) = (times.clone(), outcomes.clone());
        let policy = PollPolicy { jitter: 0.0, ..PollPolicy::default() };
        let poller = Poller::spawn(
            policy,
            move || {
                t.lock().unwrap().push(start.elapsed());
                let step = script.lock().unwrap().pop_front().unwrap_or(Ok(3600));
                async move {
                    match step {
                        Ok(next) => Ok(Checked {
                            outcome: Ok(CheckOutcome::UpToDate),
                            next_check: Duration::from_secs(next.into()),
                        }),
                        Err(retry) => Err(Error::Server {
                            status: 503,
                            problem: None,
                            retry_after: retry.map(Duration::from_secs),
                        }),
                    }
                }
            },
            move |outcome| o.lock().unwrap().push(outcome.is_ok()),
            || 0.0,
        );
        Scripted { poller, times, outcomes }
    }

    #[tokio::test(start_paused = true)]
    async fn polls_on_schedule_backs_off_and_stops_when_dropped() {
        let Scripted { poller, times, outcomes } = scripted(vec![Ok(100), Err(None), Err(None), Err(Some(7)), Ok(600)]);
        tokio::time::sleep(secs(1000)).await;
        let got: Vec<u64> = times.lock().unwrap().iter().map(Duration::as_secs).collect();
        // 0: ok, next in 100; 100: fail (15 s); 115: fail (30 s); 145: 503 + Retry-After 7;
        // 152: ok, next in 600; 752: ok (script exhausted), next in 3600.
        assert_eq!(got, [0, 100, 115, 145, 152, 752]);
        assert_eq!(*outcomes.lock().unwrap(), [true, false, false, false, true, true]);
        drop(poller);
        tokio::time::sleep(secs(10 * 3600)).await;
        assert_eq!(times.lock().unwrap().len(), 6, "no check after the handle is dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn stop_waits_for_the_task() {
        let Scripted { poller, times, .. } = scripted(vec![Ok(60)]);
        tokio::time::sleep(secs(61)).await;
        poller.stop().await;
        tokio::time::sleep(secs(3600)).await;
        assert_eq!(times.lock().unwrap().len(), 2);
    }
}
