//! Install feedback and adoption: [`Feedback`] counts what devices report (downloads,
//! installs, failures, first runs, crashes), what check-ins were offered, and which versions
//! devices run, per release and channel, as approximate distinct-device counts (sketches of a
//! few KiB each: the server keeps no per-device table).
//!
//! One aggregator task owns the figures. The check-in path hands it a sample with `try_send`
//! on a bounded channel (lock-free, never waits; a full queue drops the sample and counts the
//! drop). Every 5 ms the aggregator drains its queue. Event reports are
//! group-committed: at the first tick after they arrive (or after the commit in flight, which
//! the reports that came meanwhile then share), the figures they changed are written to the
//! store and flushed, and only then does the report's 2xx go out, so an acknowledged report
//! survives even `kill -9`. (Commits used to wait for a 200 ms interval: with 16 reports in
//! flight that capped ingestion at 8,000 events/s whatever the machine; `bench/feedback.sh`.)
//! Figures changed only by check-ins are swept to sled every 30 s, in chunks. Readers (status,
//! the scheduler) take a short lock on the figures; the check-in path never does.
//!
//! App metrics (`MetricReport`s) travel with events and are group-committed with them: per
//! release and channel, each declared value metric keeps a [`Distribution`] (count, mean,
//! variance, quantiles: a few KiB at most, whatever the number of values) and each counter
//! its sum, a sketch of the devices that reported it and the count, mean and variance of the
//! amounts its reports carried (what a counter gate judges), inside the same stored figures as the
//! event sketches, so they are durable before the 202, restored at start and merged across
//! replicas exactly as those are.
//!
//! Events reach the aggregator only with a valid report token (checked by the handler, see
//! `report_key`), and count only within their network's cap ([`NetworkCap`]): one client
//! network stands for at most `--max-devices-per-network` devices of a release.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cardinality_estimator::CardinalityEstimator;
use halftone_channels::wire::{
    ChannelAdoption, ChannelHistory, Event, EventKind, Figures, MetricReport, VersionAdoption, VersionHistory,
    WindowCount,
};
use halftone_channels::{AppId, ChannelName, CounterFigures, Distribution, Health, MetricName, Summary, Version};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::network_cap::{Admission, Network, NetworkCap};
use crate::store::{AdoptionKey, Change, FeedbackKey as ReleaseKey, Store};

/// An approximate set of device hashes.
type Sketch = CardinalityEstimator<u64>;

/// Adoption is counted in windows of this width; "last day" is the windows that overlap the
/// last 24 hours (so 24 to 28 hours), "last week" those that overlap the last 7 days.
pub const ADOPTION_WINDOW_MS: u64 = 4 * 3_600_000;
const DAY_MS: u64 = 24 * 3_600_000;
/// Adoption windows older than this are dropped.
const KEEP_MS: u64 = 8 * DAY_MS;
/// How often figures from check-ins (offers, adoption) are stored. Nobody waits on them, and
/// under load every check-in changes some sketch: storing them at each group commit would
/// rewrite thousands of sketches five times a second. A `kill -9` loses at most this much of
/// them; a graceful stop stores them all.
const SAMPLES_EVERY: Duration = Duration::from_secs(30);
/// The most check-in sketches one commit writes: a sweep over thousands of changed sketches
/// is spread over several ticks, so that no commit holds tens of megabytes at once.
const SWEEP_CHUNK: usize = 64;
/// How often the aggregator drains its queue.
const DRAIN_EVERY: Duration = Duration::from_millis(5);

/// The hash of a device id that sketches count: FNV-1a, 64 bits. It is stored (inside the
/// sketches), so it must never change; std's `DefaultHasher` makes no such promise.
pub fn device_hash(device_id: &str) -> u64 {
    device_id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

/// What one check-in tells the figures.
#[derive(Debug)]
pub struct CheckSample {
    /// The app.
    pub app: AppId,
    /// The device's channel.
    pub channel: ChannelName,
    /// The version it runs, when that is a release of the app: adoption counts releases only,
    /// so a device cannot make the server keep figures for versions that do not exist.
    pub version: Option<Version>,
    /// [`device_hash`] of its id.
    pub device: u64,
    /// The release and rollout channel it was offered, if any.
    pub offered: Option<(Version, ChannelName)>,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// The figures of one release on one channel, as stored.
#[derive(Default, Clone, Serialize, Deserialize)]
struct Counters {
    offers: u64,
    offered: Sketch,
    /// Distinct devices per event kind.
    devices: BTreeMap<EventKind, Sketch>,
    /// Value metrics (only those the app declared: at most 32).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    values: BTreeMap<MetricName, Distribution>,
    /// Counter metrics.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    counts: BTreeMap<MetricName, Tally>,
}

/// A counter metric's figures: the sum of what was reported, the devices that reported, and
/// the amounts reports carried (count, mean and variance per report: what a counter gate
/// judges; absent in figures stored before counter gates, which then count from zero).
#[derive(Default, Clone, Serialize, Deserialize)]
struct Tally {
    sum: u64,
    devices: Sketch,
    #[serde(default)]
    per_report: Summary,
}

impl Counters {
    /// Adds `other`'s figures: counters add up, sketches merge as unions.
    fn merge(&mut self, other: &Counters) {
        self.offers += other.offers;
        self.offered.merge(&other.offered);
        for (kind, s) in &other.devices {
            self.devices.entry(*kind).or_default().merge(s);
        }
        for (name, d) in &other.values {
            self.values.entry(name.clone()).or_default().merge(d);
        }
        for (name, t) in &other.counts {
            let mine = self.counts.entry(name.clone()).or_default();
            mine.sum = mine.sum.saturating_add(t.sum);
            mine.devices.merge(&t.devices);
            mine.per_report.merge(&t.per_report);
        }
    }

    fn distinct(&self, kind: EventKind) -> u64 {
        self.devices.get(&kind).map_or(0, |s| s.estimate() as u64)
    }
}

#[derive(Default)]
struct Aggregates {
    releases: HashMap<ReleaseKey, Counters>,
    adoption: HashMap<AdoptionKey, Sketch>,
    /// Changed by events: stored before the events are acknowledged.
    dirty_events: HashSet<ReleaseKey>,
    /// Changed by check-ins only: stored every [`SAMPLES_EVERY`].
    dirty_releases: HashSet<ReleaseKey>,
    dirty_adoption: HashSet<AdoptionKey>,
    /// What the other replicas on a shared store stored, merged per key; re-read every
    /// [`OTHERS_EVERY`]. Readers add it to this replica's own figures: fleet-wide figures.
    others: HashMap<ReleaseKey, Counters>,
    others_adoption: HashMap<AdoptionKey, Sketch>,
}

impl Aggregates {
    /// The fleet-wide figures of one release on one channel.
    fn counters(&self, key: &ReleaseKey) -> Counters {
        let mut c = self.releases.get(key).cloned().unwrap_or_default();
        if let Some(o) = self.others.get(key) {
            c.merge(o);
        }
        c
    }

    /// This replica's figures and the others', key by key.
    fn all_releases(&self) -> impl Iterator<Item = (&ReleaseKey, &Counters)> {
        self.releases.iter().chain(&self.others)
    }

    fn all_adoption(&self) -> impl Iterator<Item = (&AdoptionKey, &Sketch)> {
        self.adoption.iter().chain(&self.others_adoption)
    }
}

/// How often a replica on a shared store re-reads the other replicas' figures.
const OTHERS_EVERY: Duration = Duration::from_secs(2);

/// A figure changed by check-ins, waiting in a sweep to be stored.
enum Swept {
    Release(ReleaseKey),
    Adoption(AdoptionKey),
}

/// What one accepted report carries for the aggregator: events and metric reports whose
/// tokens were checked, all of one app.
#[derive(Debug, Default)]
pub struct Report {
    /// The events.
    pub events: Vec<Event>,
    /// The metric reports (names declared by the app, kinds matching).
    pub metrics: Vec<MetricReport>,
}

/// An app metric's figures for one release, on every channel.
#[derive(Debug, Clone)]
pub enum MetricFigures {
    /// A value metric.
    Value(Distribution),
    /// A counter: its sum and devices, and the amounts per report a counter gate judges.
    Counter(CounterFigures, Summary),
}

impl MetricFigures {
    /// What a metric gate judges and its window marks: a value metric's values, a counter's
    /// amounts per report.
    pub fn gated(&self) -> &Summary {
        match self {
            MetricFigures::Value(d) => d.summary(),
            MetricFigures::Counter(_, per_report) => per_report,
        }
    }
}

enum Msg {
    Events(AppId, Report, Network, oneshot::Sender<Result<(), FeedbackError>>),
    Sample(CheckSample),
    Flush(oneshot::Sender<Result<(), FeedbackError>>),
    Close(oneshot::Sender<Result<(), FeedbackError>>),
}

/// The feedback figures and the handle to their aggregator.
pub struct Feedback {
    tx: mpsc::Sender<Msg>,
    figures: Arc<Mutex<Aggregates>>,
    dropped: AtomicU64,
}

/// Why a report was not acknowledged.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FeedbackError {
    /// The store cannot be reached; the report may be sent again.
    #[error("feedback could not be stored: the store is unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug, a full disk, the aggregator stopped).
    #[error("feedback could not be stored: {0}")]
    Failed(String),
}

impl Feedback {
    /// Loads the stored figures and starts the aggregator on the current tokio runtime.
    /// One client network counts for at most `per_network` devices of a release.
    pub async fn start(store: Arc<Store>, per_network: u32) -> anyhow::Result<Feedback> {
        let mut agg = Aggregates::default();
        if store.is_shared() {
            // Every stored row is another replica's (this process writes under a new id).
            (agg.others, agg.others_adoption) = others(&store).await?;
        } else {
            for ((app, version, channel), bytes) in store.load_feedback().await? {
                agg.releases.insert((app, version, channel), serde_json::from_slice(&bytes)?);
            }
            for (key, bytes) in store.load_adoption().await? {
                agg.adoption.insert(key, serde_json::from_slice(&bytes)?);
            }
        }
        let figures = Arc::new(Mutex::new(agg));
        let (tx, rx) = mpsc::channel(1 << 16);
        if store.is_shared() {
            tokio::spawn(follow_others(Arc::downgrade(&figures), store.clone()));
        }
        tokio::spawn(aggregate(rx, figures.clone(), store, per_network as usize));
        Ok(Feedback { tx, figures, dropped: AtomicU64::new(0) })
    }

    /// Records a check-in; never waits (drops the sample when the aggregator is behind).
    pub fn observe(&self, sample: CheckSample) {
        // Lock-free (a bounded channel): the check-in path takes no lock.
        if self.tx.try_send(Msg::Sample(sample)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("halftone_feedback_samples_dropped_total").increment(1);
        }
    }

    /// Check-in samples dropped because the aggregator was behind.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Counts reported events and metrics of `app` (whose tokens were checked) from a client
    /// in `network`, within that network's cap; returns once they are durably stored.
    pub async fn report(&self, app: AppId, report: Report, network: Network) -> Result<(), FeedbackError> {
        let (ack, done) = oneshot::channel();
        self.tx
            .send(Msg::Events(app, report, network, ack))
            .await
            .map_err(|_| FeedbackError::Failed("the aggregator stopped".into()))?;
        done.await.map_err(|_| FeedbackError::Failed("the aggregator stopped".into()))?
    }

    /// Applies and stores everything received so far.
    pub async fn flush(&self) -> Result<(), FeedbackError> {
        self.call(Msg::Flush).await
    }

    /// Stores everything received so far and stops the aggregator (it lets go of the store).
    pub async fn close(&self) -> Result<(), FeedbackError> {
        self.call(Msg::Close).await
    }

    async fn call(&self, msg: fn(oneshot::Sender<Result<(), FeedbackError>>) -> Msg) -> Result<(), FeedbackError> {
        let (ack, done) = oneshot::channel();
        self.tx.send(msg(ack)).await.map_err(|_| FeedbackError::Failed("the aggregator stopped".into()))?;
        done.await.map_err(|_| FeedbackError::Failed("the aggregator stopped".into()))?
    }

    fn with<T>(&self, f: impl FnOnce(&Aggregates) -> T) -> T {
        f(&self.figures.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Offers of `version` of `app`, on every channel.
    pub fn offers(&self, app: &AppId, version: &Version) -> u64 {
        self.with(|a| a.all_releases().filter(|((x, v, _), _)| x == app && v == version).map(|(_, c)| c.offers).sum())
    }

    /// The figures of one release on one channel.
    pub fn figures(&self, app: &AppId, version: &Version, channel: &ChannelName) -> Figures {
        self.with(|a| {
            let c = a.counters(&(app.clone(), version.clone(), channel.clone()));
            Figures {
                offers: c.offers,
                offered_devices: c.offered.estimate() as u64,
                downloads: c.distinct(EventKind::DownloadStarted),
                download_failures: c.distinct(EventKind::DownloadFailed),
                installs: c.distinct(EventKind::InstallSucceeded),
                install_failures: c.distinct(EventKind::InstallFailed),
                first_runs: c.distinct(EventKind::FirstRun),
                crashes: c.distinct(EventKind::Crash),
            }
        })
    }

    /// What a health gate looks at: the release's distinct devices on every channel (a build
    /// is bad wherever it runs, and devices report the channel they chose, which may be less
    /// stable than the rollout that offered them the build).
    pub fn health(&self, app: &AppId, version: &Version) -> Health {
        self.with(|a| {
            let mut merged: BTreeMap<EventKind, Sketch> = BTreeMap::new();
            for ((x, v, _), c) in a.all_releases() {
                if x == app && v == version {
                    for (kind, s) in &c.devices {
                        merged.entry(*kind).or_default().merge(s);
                    }
                }
            }
            let n = |k| merged.get(&k).map_or(0, |s: &Sketch| s.estimate() as u64);
            Health {
                installs: n(EventKind::InstallSucceeded),
                install_failures: n(EventKind::InstallFailed),
                first_runs: n(EventKind::FirstRun),
                crashes: n(EventKind::Crash),
            }
        })
    }

    /// The app metrics of `version` of `app` on every channel (a build is judged wherever it
    /// runs, as [`Feedback::health`]), by name.
    pub fn metrics(&self, app: &AppId, version: &Version) -> BTreeMap<MetricName, MetricFigures> {
        self.with(|a| {
            let mut values: BTreeMap<MetricName, Distribution> = BTreeMap::new();
            let mut counts: BTreeMap<MetricName, Tally> = BTreeMap::new();
            for ((x, v, _), c) in a.all_releases() {
                if x == app && v == version {
                    for (name, d) in &c.values {
                        values.entry(name.clone()).or_default().merge(d);
                    }
                    for (name, t) in &c.counts {
                        let mine = counts.entry(name.clone()).or_default();
                        mine.sum = mine.sum.saturating_add(t.sum);
                        mine.devices.merge(&t.devices);
                        mine.per_report.merge(&t.per_report);
                    }
                }
            }
            let counters = counts.into_iter().map(|(name, t)| {
                let figures = CounterFigures { sum: t.sum, devices: t.devices.estimate() as u64 };
                (name, MetricFigures::Counter(figures, t.per_report))
            });
            values.into_iter().map(|(name, d)| (name, MetricFigures::Value(d))).chain(counters).collect()
        })
    }

    /// Distinct devices per channel and version over the last day and week, as of `now_ms`.
    pub fn adoption(&self, app: &AppId, now_ms: u64) -> Vec<ChannelAdoption> {
        let day = now_ms.saturating_sub(DAY_MS) / ADOPTION_WINDOW_MS;
        let week = now_ms.saturating_sub(7 * DAY_MS) / ADOPTION_WINDOW_MS;
        self.with(|a| {
            let mut merged: BTreeMap<(ChannelName, Version), (Sketch, Sketch)> = BTreeMap::new();
            for ((x, channel, version, window), sketch) in a.all_adoption() {
                if x != app || *window < week {
                    continue;
                }
                let (d, w) = merged.entry((channel.clone(), version.clone())).or_default();
                w.merge(sketch);
                if *window >= day {
                    d.merge(sketch);
                }
            }
            let mut out: Vec<ChannelAdoption> = Vec::new();
            for ((channel, version), (d, w)) in merged {
                let v = VersionAdoption { version, last_day: d.estimate() as u64, last_week: w.estimate() as u64 };
                match out.last_mut().filter(|c| c.channel == channel) {
                    Some(c) => c.versions.push(v),
                    None => out.push(ChannelAdoption { channel, versions: vec![v] }),
                }
            }
            for c in &mut out {
                c.versions.sort_by(|a, b| b.version.cmp(&a.version));
            }
            out
        })
    }

    /// Distinct devices that checked in on any of `channels` over the last day (the adoption
    /// windows that overlap it), as of `now_ms`, whatever version they run: the audience a
    /// step of a number of devices is a share of.
    pub fn audience(&self, app: &AppId, channels: &[&ChannelName], now_ms: u64) -> u64 {
        let day = now_ms.saturating_sub(DAY_MS) / ADOPTION_WINDOW_MS;
        self.with(|a| {
            let mut union = Sketch::default();
            for ((x, channel, _, window), sketch) in a.all_adoption() {
                if x == app && *window >= day && channels.contains(&channel) {
                    union.merge(sketch);
                }
            }
            union.estimate() as u64
        })
    }

    /// Distinct devices per channel, version and adoption window, over the windows kept (the
    /// last 8 days) as of `now_ms`: what the dashboard draws as adoption over time. Channels
    /// by name, versions newest first, windows oldest first.
    pub fn adoption_history(&self, app: &AppId, now_ms: u64) -> Vec<ChannelHistory> {
        let oldest = now_ms.saturating_sub(KEEP_MS) / ADOPTION_WINDOW_MS;
        self.with(|a| {
            let mut merged: BTreeMap<(ChannelName, Version), BTreeMap<u64, Sketch>> = BTreeMap::new();
            for ((x, channel, version, window), sketch) in a.all_adoption() {
                if x != app || *window < oldest {
                    continue;
                }
                merged.entry((channel.clone(), version.clone())).or_default().entry(*window).or_default().merge(sketch);
            }
            let mut out: Vec<ChannelHistory> = Vec::new();
            for ((channel, version), windows) in merged {
                let windows = windows
                    .into_iter()
                    .map(|(w, s)| WindowCount { start_ms: w * ADOPTION_WINDOW_MS, devices: s.estimate() as u64 })
                    .collect();
                let v = VersionHistory { version, windows };
                match out.last_mut().filter(|c| c.channel == channel) {
                    Some(c) => c.versions.push(v),
                    None => out.push(ChannelHistory { channel, versions: vec![v] }),
                }
            }
            for c in &mut out {
                c.versions.sort_by(|a, b| b.version.cmp(&a.version));
            }
            out
        })
    }
}

/// The other replicas' stored figures, merged per key.
async fn others(store: &Store) -> anyhow::Result<(HashMap<ReleaseKey, Counters>, HashMap<AdoptionKey, Sketch>)> {
    let mut releases: HashMap<ReleaseKey, Counters> = HashMap::new();
    for (key, bytes) in store.load_feedback().await? {
        releases.entry(key).or_default().merge(&serde_json::from_slice(&bytes)?);
    }
    let mut adoption: HashMap<AdoptionKey, Sketch> = HashMap::new();
    for (key, bytes) in store.load_adoption().await? {
        adoption.entry(key).or_default().merge(&serde_json::from_slice(&bytes)?);
    }
    Ok((releases, adoption))
}

/// Re-reads the other replicas' figures every [`OTHERS_EVERY`] (shared stores only), so that
/// status views and health gates judge the whole fleet.
async fn follow_others(figures: std::sync::Weak<Mutex<Aggregates>>, store: Arc<Store>) {
    let mut every = tokio::time::interval(OTHERS_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let Some(figures) = figures.upgrade() else { return };
        match others(&store).await {
            Ok((releases, adoption)) => {
                let mut a = figures.lock().unwrap_or_else(|p| p.into_inner());
                (a.others, a.others_adoption) = (releases, adoption);
            }
            Err(e) => tracing::warn!(error = format!("{e:#}"), "reading the other replicas' figures failed"),
        }
    }
}

async fn aggregate(
    mut rx: mpsc::Receiver<Msg>,
    figures: Arc<Mutex<Aggregates>>,
    store: Arc<Store>,
    per_network: usize,
) {
    let mut acks: Vec<oneshot::Sender<Result<(), FeedbackError>>> = Vec::new();
    // The devices counted per network, per release (every channel): in memory only.
    let mut caps: HashMap<(AppId, Version), NetworkCap> = HashMap::new();
    // The aggregator drains its queue on a timer rather than waiting on it: a check-in then
    // never has to wake a parked thread, which would cost it a futex call and two context
    // switches.
    let mut poll = tokio::time::interval(DRAIN_EVERY);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_sweep = tokio::time::Instant::now();
    let mut sweep: Vec<Swept> = Vec::new();
    let mut newest_ms = 0u64;
    loop {
        poll.tick().await;
        let (mut commit_now, mut stop) = (false, false);
        loop {
            match rx.try_recv() {
                Ok(Msg::Events(app, report, network, ack)) => {
                    let mut a = figures.lock().unwrap_or_else(|p| p.into_inner());
                    for m in report.metrics {
                        let device = device_hash(m.device_id.as_str());
                        let release = (app.clone(), m.version);
                        let cap = match caps.get_mut(&release) {
                            Some(cap) => cap,
                            None => caps.entry(release.clone()).or_default(),
                        };
                        if cap.admit(network, device, per_network) == Admission::OverCap {
                            metrics::counter!("halftone_metric_reports_capped_total").increment(1);
                            continue;
                        }
                        let key = (release.0, release.1, m.channel);
                        let c = a.releases.entry(key.clone()).or_default();
                        for (name, values) in m.values {
                            let d = c.values.entry(name).or_default();
                            values.into_iter().for_each(|v| d.add(v));
                        }
                        for (name, n) in m.counts {
                            let t = c.counts.entry(name).or_default();
                            t.sum = t.sum.saturating_add(n);
                            t.devices.insert(&device);
                            t.per_report.add(n as f64);
                        }
                        a.dirty_events.insert(key);
                    }
                    for e in report.events {
                        let device = device_hash(e.device_id.as_str());
                        let release = (app.clone(), e.version);
                        let cap = match caps.get_mut(&release) {
                            Some(cap) => cap,
                            None => caps.entry(release.clone()).or_default(),
                        };
                        match cap.admit(network, device, per_network) {
                            Admission::Counted => {}
                            Admission::OverCap => {
                                metrics::counter!("halftone_events_capped_total").increment(1);
                                continue;
                            }
                            Admission::Untracked => {
                                metrics::counter!("halftone_events_untracked_total").increment(1);
                            }
                        }
                        let key = (release.0, release.1, e.channel);
                        a.releases.entry(key.clone()).or_default().devices.entry(e.kind).or_default().insert(&device);
                        a.dirty_events.insert(key);
                    }
                    acks.push(ack);
                }
                Ok(Msg::Sample(s)) => {
                    newest_ms = newest_ms.max(s.at_ms);
                    let mut a = figures.lock().unwrap_or_else(|p| p.into_inner());
                    let a = &mut *a;
                    // Keys are cloned only when first seen: this runs for every check-in.
                    if let Some(version) = s.version {
                        let key = (s.app.clone(), s.channel, version, s.at_ms / ADOPTION_WINDOW_MS);
                        counted(&mut a.adoption, &mut a.dirty_adoption, key).insert(&s.device);
                    }
                    if let Some((version, channel)) = s.offered {
                        let c = counted(&mut a.releases, &mut a.dirty_releases, (s.app, version, channel));
                        c.offers += 1;
                        c.offered.insert(&s.device);
                    }
                }
                Ok(Msg::Flush(ack)) => {
                    acks.push(ack);
                    commit_now = true;
                }
                Ok(Msg::Close(ack)) => {
                    acks.push(ack);
                    stop = true;
                    break;
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    stop = true;
                    break;
                }
            }
        }
        if sweep.is_empty() && last_sweep.elapsed() >= SAMPLES_EVERY {
            start_sweep(&figures, newest_ms, &mut sweep);
            last_sweep = tokio::time::Instant::now();
        }
        let all = stop || commit_now;
        if all || !sweep.is_empty() || !acks.is_empty() {
            persist(&figures, &store, &mut acks, &mut sweep, all).await;
        }
        if stop {
            return;
        }
    }
}

/// The figure under `key`, created if new, and `key` marked dirty; `key` is cloned only the
/// first time it is seen or marked.
fn counted<'m, K: Clone + Eq + std::hash::Hash, V: Default>(
    figures: &'m mut HashMap<K, V>,
    dirty: &mut HashSet<K>,
    key: K,
) -> &'m mut V {
    if !dirty.contains(&key) {
        dirty.insert(key.clone());
    }
    figures.entry(key).or_default()
}

/// Starts a sweep: takes every figure changed by check-ins since the last one, and drops
/// adoption windows that have aged out.
fn start_sweep(figures: &Mutex<Aggregates>, newest_ms: u64, sweep: &mut Vec<Swept>) {
    let mut a = figures.lock().unwrap_or_else(|p| p.into_inner());
    sweep.extend(std::mem::take(&mut a.dirty_releases).into_iter().map(Swept::Release));
    sweep.extend(std::mem::take(&mut a.dirty_adoption).into_iter().map(Swept::Adoption));
    let oldest = newest_ms.saturating_sub(KEEP_MS) / ADOPTION_WINDOW_MS;
    a.adoption.retain(|k, _| {
        let keep = k.3 >= oldest;
        if !keep {
            sweep.push(Swept::Adoption(k.clone()));
        }
        keep
    });
}

/// Writes, in one transaction, the figures that events changed and the next chunk of the
/// sweep (the whole sweep and everything changed when `all`), flushes, then acknowledges.
async fn persist(
    figures: &Mutex<Aggregates>,
    store: &Store,
    acks: &mut Vec<oneshot::Sender<Result<(), FeedbackError>>>,
    sweep: &mut Vec<Swept>,
    all: bool,
) {
    let change = {
        let mut a = figures.lock().unwrap_or_else(|p| p.into_inner());
        let a = &mut *a;
        let events = std::mem::take(&mut a.dirty_events);
        if all {
            sweep.extend(std::mem::take(&mut a.dirty_releases).into_iter().map(Swept::Release));
            sweep.extend(std::mem::take(&mut a.dirty_adoption).into_iter().map(Swept::Adoption));
        }
        let n = if all { sweep.len() } else { sweep.len().min(SWEEP_CHUNK) };
        if events.is_empty() && n == 0 && acks.is_empty() {
            return;
        }
        let mut change = Change::default();
        let put_release = |change: &mut Change, key: &ReleaseKey| {
            if let Some(c) = a.releases.get(key) {
                change.put_feedback(&key.0, &key.1, &key.2, serde_json::to_vec(c).expect("sketches serialize"));
            }
        };
        for key in &events {
            put_release(&mut change, key);
        }
        for swept in sweep.drain(sweep.len() - n..) {
            match swept {
                Swept::Release(key) if !events.contains(&key) => put_release(&mut change, &key),
                Swept::Release(_) => {}
                Swept::Adoption(key) => match a.adoption.get(&key) {
                    Some(s) => {
                        let bytes = serde_json::to_vec(s).expect("sketches serialize");
                        change.put_adoption(&key.0, &key.1, &key.2, key.3, bytes);
                    }
                    None => {
                        change.remove_adoption(&key.0, &key.1, &key.2, key.3);
                    }
                },
            }
        }
        change
    };
    let result = store.commit(change).await.map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "storing feedback failed");
        match crate::store::is_unavailable(&e) {
            true => FeedbackError::Unavailable(format!("{e:#}")),
            false => FeedbackError::Failed(format!("{e:#}")),
        }
    });
    for ack in acks.drain(..) {
        let _ = ack.send(result.clone());
    }
}
