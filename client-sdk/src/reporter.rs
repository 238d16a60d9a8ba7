//! Event reporting that never blocks the app: a bounded in-memory queue, drained in batches
//! of up to [`MAX_BATCH`] by a background task that retries with backoff. When the queue is
//! full the oldest event is dropped and counted ([`ReportStats::dropped`]).
//!
//! Events are not written to disk: they are telemetry, and a lost event costs a count on a
//! dashboard, not a device. Call [`Client::flush`](crate::Client::flush) before the app exits.
//!
//! The server counts an event only with the report token its check-in answer gave for that
//! version and channel (the offer's token for the offered version, the answer's own for the
//! running one). The reporter keeps the tokens of the last answers ([`MAX_TOKENS`] of them)
//! and puts the matching one on each event **when the batch is sent**, so an event queued
//! before the check-in that brings its token still gets it. An event for which no token is
//! known is sent without one: the server answers it as rejected (counted in
//! [`ReportStats::rejected`]) and leaves it out of the figures. Tokens are not stored on disk:
//! after a restart, events count once the app has checked in again.
//!
//! App metrics ([`Client::record_metric`](crate::Client::record_metric),
//! [`Client::count`](crate::Client::count)) wait in the same queue, per build (version and
//! channel), at most [`MAX_METRIC_VALUES`] values and counters in all (a counter adds up in
//! place; further values are dropped and counted in [`ReportStats::metrics_dropped`]). They
//! travel with the next batch of events, or alone, **once a token for their build is known**:
//! metrics recorded before the first check-in wait for it rather than being refused.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use halftone_channels::wire::{CheckResponse, Event, EventBatch, MetricReport};
use halftone_channels::{ChannelName, DeviceId, MAX_COUNT, MetricName, MetricValue, ReportToken, Version};
use tokio::sync::Notify;
use tokio::time::{Instant, sleep_until};

use crate::Error;
use crate::api::Api;
use crate::backoff::Backoff;

/// The most events one request carries (the server's limit).
pub(crate) const MAX_BATCH: usize = 100;

/// The longest `detail` the server accepts, in characters.
pub(crate) const MAX_DETAIL: usize = 1024;

/// The most metric values and counters held at once (one request's worth: the server's limit).
pub(crate) const MAX_METRIC_VALUES: usize = 1_000;

/// The most report tokens kept (one per version and channel; the oldest go first).
pub(crate) const MAX_TOKENS: usize = 8;

const BACKOFF: Backoff = Backoff { initial: Duration::from_secs(5), max: Duration::from_secs(300) };

/// Counters of the event queue, for diagnostics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReportStats {
    /// Events waiting to be sent.
    pub queued: usize,
    /// Events the server accepted.
    pub sent: u64,
    /// Events dropped because the queue was full (the oldest go first).
    pub dropped: u64,
    /// Events the server refused with a 4xx status (retrying would not help), or accepted
    /// but did not count for lack of a valid report token.
    pub rejected: u64,
    /// Metric values and counters waiting to be sent.
    pub metrics_queued: usize,
    /// Metric values and counters the server accepted.
    pub metrics_sent: u64,
    /// Metric values dropped because the queue held its 1,000 already.
    pub metrics_dropped: u64,
    /// Metric values and counters the server refused (a 4xx, or no valid token).
    pub metrics_rejected: u64,
}

/// The queue and its background sender. Dropping it stops the sender; unsent events are lost.
pub(crate) struct Reporter {
    shared: Arc<Shared>,
}

struct Shared {
    api: Arc<Api>,
    /// The device metric reports are about.
    device: DeviceId,
    queue: Mutex<Queue>,
    /// Signals the sender: an event arrived, or the reporter closed.
    wake: Notify,
    closed: AtomicBool,
    /// One batch in flight at a time, whether the background task or `flush` sends it.
    sending: tokio::sync::Mutex<()>,
    /// The report tokens of the last check-in answers.
    tokens: Mutex<Tokens>,
}

/// Report tokens by (version, channel), newest last, at most [`MAX_TOKENS`].
#[derive(Default)]
struct Tokens(VecDeque<(Version, ChannelName, ReportToken)>);

impl Tokens {
    fn remember(&mut self, version: &Version, channel: &ChannelName, token: ReportToken) {
        self.0.retain(|(v, c, _)| !(v == version && c == channel));
        self.0.push_back((version.clone(), channel.clone(), token));
        while self.0.len() > MAX_TOKENS {
            self.0.pop_front();
        }
    }

    fn get(&self, version: &Version, channel: &ChannelName) -> Option<ReportToken> {
        self.0.iter().find(|(v, c, _)| v == version && c == channel).map(|(_, _, t)| *t)
    }

    /// Puts the known token on events that have none.
    fn attach(&self, events: &mut [Event]) {
        for e in events.iter_mut().filter(|e| e.token.is_none()) {
            e.token = self.get(&e.version, &e.channel);
        }
    }
}

struct Queue {
    events: VecDeque<Event>,
    capacity: usize,
    stats: ReportStats,
    metrics: Pending,
}

/// Metrics not sent yet, per build.
#[derive(Default)]
struct Pending {
    builds: BTreeMap<(Version, ChannelName), Measured>,
    /// Values and counters held, in all builds.
    held: usize,
}

/// One build's metrics not sent yet.
#[derive(Default)]
struct Measured {
    values: BTreeMap<MetricName, Vec<MetricValue>>,
    counts: BTreeMap<MetricName, u64>,
}

impl Measured {
    fn size(&self) -> usize {
        self.values.values().map(Vec::len).sum::<usize>() + self.counts.len()
    }
}

impl Pending {
    /// Adds a value; answers false (dropped) when the queue is full.
    fn record(&mut self, build: (Version, ChannelName), name: &MetricName, value: MetricValue) -> bool {
        if self.held >= MAX_METRIC_VALUES {
            return false;
        }
        self.builds.entry(build).or_default().values.entry(name.clone()).or_default().push(value);
        self.held += 1;
        true
    }

    /// Adds to a counter (up to the server's limit per report: the rest is dropped); answers
    /// false when the queue is full or the counter at its limit.
    fn count(&mut self, build: (Version, ChannelName), name: &MetricName, n: u64) -> bool {
        let measured = self.builds.entry(build).or_default();
        match measured.counts.get_mut(name) {
            Some(c) if *c >= MAX_COUNT => false,
            Some(c) => {
                *c = c.saturating_add(n).min(MAX_COUNT);
                true
            }
            None if self.held >= MAX_METRIC_VALUES => false,
            None => {
                measured.counts.insert(name.clone(), n.min(MAX_COUNT));
                self.held += 1;
                true
            }
        }
    }

    /// Takes the builds a token is known for, with their tokens.
    fn take(&mut self, tokens: &Tokens, device: &DeviceId) -> Vec<MetricReport> {
        let ready: Vec<_> = self.builds.keys().filter(|(v, c)| tokens.get(v, c).is_some()).cloned().collect();
        ready
            .into_iter()
            .filter_map(|key| {
                let measured = self.builds.remove(&key)?;
                self.held -= measured.size();
                let (version, channel) = key;
                Some(MetricReport {
                    device_id: device.clone(),
                    token: tokens.get(&version, &channel),
                    version,
                    channel,
                    values: measured.values,
                    counts: measured.counts,
                })
            })
            .collect()
    }

    /// Puts back reports a failed request carried, as far as the queue has room.
    fn requeue(&mut self, reports: Vec<MetricReport>) -> u64 {
        let mut dropped = 0;
        for r in reports {
            let build = (r.version, r.channel);
            for (name, values) in r.values {
                for v in values {
                    dropped += u64::from(!self.record(build.clone(), &name, v));
                }
            }
            for (name, n) in r.counts {
                dropped += u64::from(!self.count(build.clone(), &name, n));
            }
        }
        dropped
    }

    /// Whether some build's metrics can be sent (its token is known).
    fn ready(&self, tokens: &Tokens) -> bool {
        self.builds.keys().any(|(v, c)| tokens.get(v, c).is_some())
    }
}

/// Values and counters in `reports` (the server counts these).
fn metric_values(reports: &[MetricReport]) -> usize {
    reports.iter().map(MetricReport::size).sum()
}

impl Queue {
    /// Adds at the back, dropping from the front when full.
    fn push_back(&mut self, event: Event) {
        self.events.push_back(event);
        self.trim();
    }

    /// Puts a batch that failed back at the front, in order; when that overfills the queue,
    /// the oldest (the batch itself) give way to newer events.
    fn requeue(&mut self, batch: Vec<Event>) {
        for event in batch.into_iter().rev() {
            self.events.push_front(event);
        }
        self.trim();
    }

    fn trim(&mut self) {
        while self.events.len() > self.capacity {
            self.events.pop_front();
            self.stats.dropped += 1;
        }
    }
}

impl Reporter {
    /// Starts the background sender on the current tokio runtime. `capacity` is at least 1.
    pub(crate) fn start(api: Arc<Api>, capacity: usize, device: DeviceId) -> Self {
        let shared = Arc::new(Shared {
            api,
            device,
            queue: Mutex::new(Queue {
                events: VecDeque::new(),
                capacity: capacity.max(1),
                stats: ReportStats::default(),
                metrics: Pending::default(),
            }),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            sending: tokio::sync::Mutex::new(()),
            tokens: Mutex::new(Tokens::default()),
        });
        tokio::spawn(run(shared.clone()));
        Reporter { shared }
    }

    /// Keeps the report tokens of a (verified) check-in answer: the answer's own for
    /// `running`, the offer's for the offered version, both on `channel`, the channel the
    /// check-in named (which events name too).
    pub(crate) fn remember(&self, running: &Version, channel: &ChannelName, answer: &CheckResponse) {
        let mut tokens = self.shared.tokens.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(t) = answer.report_token {
            tokens.remember(running, channel, t);
        }
        if let Some((offered, t)) = answer.update.as_ref().and_then(|o| o.report_token.map(|t| (&o.version, t))) {
            tokens.remember(offered, channel, t);
        }
        drop(tokens);
        // Metrics may have been waiting for this token.
        self.shared.wake.notify_one();
    }

    /// Queues a metric value of `version` on `channel`; never waits.
    pub(crate) fn record(&self, version: &Version, channel: &ChannelName, name: &MetricName, value: MetricValue) {
        let mut queue = self.shared.queue();
        if !queue.metrics.record((version.clone(), channel.clone()), name, value) {
            queue.stats.metrics_dropped += 1;
        }
        drop(queue);
        self.shared.wake.notify_one();
    }

    /// Adds `n` to a counter of `version` on `channel`; never waits.
    pub(crate) fn count(&self, version: &Version, channel: &ChannelName, name: &MetricName, n: u64) {
        let mut queue = self.shared.queue();
        if !queue.metrics.count((version.clone(), channel.clone()), name, n) {
            queue.stats.metrics_dropped += 1;
        }
        drop(queue);
        self.shared.wake.notify_one();
    }

    /// Whether a report token for `version` on `channel` is known (an event for them counts).
    pub(crate) fn has_token(&self, version: &Version, channel: &ChannelName) -> bool {
        self.shared.tokens.lock().unwrap_or_else(PoisonError::into_inner).get(version, channel).is_some()
    }

    /// Queues an event; never waits.
    pub(crate) fn push(&self, event: Event) {
        self.shared.queue().push_back(event);
        self.shared.wake.notify_one();
    }

    /// Sends what is queued now, batch by batch; stops at the first failure, leaving the
    /// unsent events queued for the background sender.
    pub(crate) async fn flush(&self) -> Result<(), Error> {
        // Bounded, so an app reporting in a loop cannot keep `flush` from returning; the extra
        // batch covers one the background sender may have had in flight and put back.
        let mut budget = self.shared.queue().events.len().div_ceil(MAX_BATCH) + 2;
        while budget > 0 {
            if self.shared.send_batch().await? == 0 {
                break;
            }
            budget -= 1;
        }
        Ok(())
    }

    /// The counters.
    pub(crate) fn stats(&self) -> ReportStats {
        let queue = self.shared.queue();
        ReportStats { queued: queue.events.len(), metrics_queued: queue.metrics.held, ..queue.stats }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        // The queue's invariants hold between statements, so a panic elsewhere leaves it usable.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether something can be sent now: events, or metrics whose token is known.
    fn has_work(&self) -> bool {
        let queue = self.queue();
        !queue.events.is_empty() || queue.metrics.ready(&self.tokens.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Sends one batch; answers how many events and metric reports it carried (0: nothing
    /// could be sent).
    async fn send_batch(&self) -> Result<usize, Error> {
        let _sending = self.sending.lock().await;
        let (mut events, metrics) = {
            let mut queue = self.queue();
            let n = queue.events.len().min(MAX_BATCH);
            let events: Vec<Event> = queue.events.drain(..n).collect();
            let tokens = self.tokens.lock().unwrap_or_else(PoisonError::into_inner);
            (events, queue.metrics.take(&tokens, &self.device))
        };
        if events.is_empty() && metrics.is_empty() {
            return Ok(0);
        }
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner).attach(&mut events);
        let (n, m, values) = (events.len(), metrics.len(), metric_values(&metrics) as u64);
        let batch = EventBatch { events, metrics };
        let result = self.api.send_events(&batch).await;
        let mut queue = self.queue();
        match result {
            Ok(answer) => {
                // Rejected ones (no valid token) were answered, not counted: sending them
                // again would not help either.
                let rejected = (answer.rejected as usize).min(n);
                queue.stats.sent += (n - rejected) as u64;
                queue.stats.rejected += rejected as u64;
                let refused = u64::from(answer.metrics_rejected);
                queue.stats.metrics_sent += values.saturating_sub(refused);
                queue.stats.metrics_rejected += refused.min(values);
                Ok(n + m)
            }
            Err(e) if refused_for_good(&e) => {
                queue.stats.rejected += n as u64;
                queue.stats.metrics_rejected += values;
                Err(e)
            }
            Err(e) => {
                let dropped = queue.metrics.requeue(batch.metrics);
                queue.stats.metrics_dropped += dropped;
                queue.requeue(batch.events);
                Err(e)
            }
        }
    }
}

/// A 4xx other than 408 and 429 means the batch itself is wrong: sending it again would not help.
fn refused_for_good(e: &Error) -> bool {
    matches!(e, Error::Server { status, .. } if (400..500).contains(status) && !matches!(status, 408 | 429))
}

/// The background sender: sends while events are queued, backs off after failures, and ends
/// when the reporter is dropped.
async fn run(shared: Arc<Shared>) {
    let mut failures = 0u32;
    let mut retry_at: Option<Instant> = None;
    loop {
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        if let Some(at) = retry_at {
            tokio::select! {
                () = sleep_until(at) => retry_at = None,
                () = shared.wake.notified() => {}
            }
            continue;
        }
        if !shared.has_work() {
            shared.wake.notified().await;
            continue;
        }
        match shared.send_batch().await {
            Ok(_) => failures = 0,
            Err(e) if refused_for_good(&e) => {
                tracing::warn!(error = %e, "event batch refused by the server; dropped");
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                let delay = BACKOFF.delay(failures, e.retry_after(), rand::random());
                tracing::debug!(error = %e, ?delay, "sending events failed; will retry");
                retry_at = Some(Instant::now() + delay);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::wire::EventKind;
    use halftone_channels::{ChannelName, DeviceId, Version};

    fn event(n: u64) -> Event {
        Event {
            device_id: DeviceId::parse("d").unwrap(),
            kind: EventKind::FirstRun,
            version: Version::new(1, 0, n),
            channel: ChannelName::stable(),
            detail: None,
            token: None,
        }
    }

    #[test]
    fn tokens_go_on_events_of_their_version_and_channel_only() {
        let mut tokens = Tokens::default();
        let t = |b| ReportToken::from_bytes([b; 16]);
        tokens.remember(&Version::new(1, 0, 1), &ChannelName::stable(), t(1));
        tokens.remember(&Version::new(1, 0, 2), &ChannelName::beta(), t(2));
        let mut events = vec![event(1), event(2), Event { channel: ChannelName::beta(), ..event(2) }, event(3)];
        events[3].token = Some(t(9));
        tokens.attach(&mut events);
        let got: Vec<_> = events.iter().map(|e| e.token).collect();
        assert_eq!(got, [Some(t(1)), None, Some(t(2)), Some(t(9))], "an event's own token is kept");
        tokens.remember(&Version::new(1, 0, 1), &ChannelName::stable(), t(5));
        assert_eq!(tokens.get(&Version::new(1, 0, 1), &ChannelName::stable()), Some(t(5)), "the newest wins");
        for patch in 10..30 {
            tokens.remember(&Version::new(1, 0, patch), &ChannelName::stable(), t(7));
        }
        assert_eq!(tokens.0.len(), MAX_TOKENS);
        assert_eq!(tokens.get(&Version::new(1, 0, 2), &ChannelName::beta()), None, "the oldest go first");
    }

    #[test]
    fn a_full_queue_drops_the_oldest_and_counts() {
        let mut q =
            Queue { events: VecDeque::new(), capacity: 3, stats: ReportStats::default(), metrics: Pending::default() };
        for n in 0..5 {
            q.push_back(event(n));
        }
        let patches: Vec<u64> = q.events.iter().map(|e| e.version.as_semver().patch).collect();
        assert_eq!(patches, [2, 3, 4]);
        assert_eq!(q.stats.dropped, 2);
        q.requeue(vec![event(0), event(1)]);
        let patches: Vec<u64> = q.events.iter().map(|e| e.version.as_semver().patch).collect();
        assert_eq!(patches, [2, 3, 4]);
        assert_eq!(q.stats.dropped, 4);
        q.events.pop_back();
        q.requeue(vec![event(7), event(8)]);
        let patches: Vec<u64> = q.events.iter().map(|e| e.version.as_semver().patch).collect();
        assert_eq!(patches, [8, 2, 3]);
    }

    #[test]
    fn metrics_are_bounded_and_wait_for_their_token() {
        let build = (Version::new(1, 0, 0), ChannelName::stable());
        let (name, counter) = (MetricName::parse("session_s").unwrap(), MetricName::parse("purchases").unwrap());
        let mut p = Pending::default();
        for i in 0..MAX_METRIC_VALUES {
            assert!(p.record(build.clone(), &name, MetricValue::new(i as f64).unwrap()));
        }
        assert!(!p.record(build.clone(), &name, MetricValue::new(1.0).unwrap()), "full: dropped");
        assert!(!p.count(build.clone(), &counter, 1), "a new counter needs room too");
        assert_eq!(p.held, MAX_METRIC_VALUES);
        let device = DeviceId::parse("d").unwrap();
        let mut tokens = Tokens::default();
        assert!(p.take(&tokens, &device).is_empty() && !p.ready(&tokens), "no token yet: they wait");
        tokens.remember(&build.0, &build.1, ReportToken::from_bytes([1; 16]));
        let reports = p.take(&tokens, &device);
        assert_eq!(reports.len(), 1);
        assert_eq!(reports[0].token, Some(ReportToken::from_bytes([1; 16])));
        assert_eq!(reports[0].values[&name].len(), MAX_METRIC_VALUES);
        assert_eq!(p.held, 0);
        // Counters add up in place, to the server's limit per report.
        assert!(p.count(build.clone(), &counter, 2) && p.count(build.clone(), &counter, 3));
        assert_eq!(p.held, 1);
        assert!(p.count(build.clone(), &counter, MAX_COUNT));
        assert!(!p.count(build.clone(), &counter, 1), "at its limit");
        let reports = p.take(&tokens, &device);
        assert_eq!(reports[0].counts[&counter], MAX_COUNT);
        // A failed request's reports go back.
        assert_eq!(p.requeue(reports), 0);
        assert_eq!(p.held, 1);
    }

    #[test]
    fn only_client_errors_are_final() {
        let server = |status| Error::Server { status, problem: None, retry_after: None };
        assert!(refused_for_good(&server(400)));
        assert!(refused_for_good(&server(404)));
        assert!(!refused_for_good(&server(429)));
        assert!(!refused_for_good(&server(408)));
        assert!(!refused_for_good(&server(503)));
        assert!(!refused_for_good(&Error::Network { detail: "reset".into() }));
    }
}
