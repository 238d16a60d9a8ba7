//! Install feedback and adoption: [`Feedback`] counts what devices report (downloads,
//! installs, failures, first runs, crashes), what check-ins were offered, and which versions
//! devices run, per release and channel, as approximate distinct-device counts (sketches of a
//! few KiB each: the server keeps no per-device table).
//!
//! One aggregator owns the figures: a thread of its own (`feedback`, at the background's
//! priority), not a task on the runtime, so that a tick costs one wake-up. The check-in path
//! hands it a sample with `try_send` on a bounded channel (lock-free, never waits; a full
//! queue drops the sample and counts the drop). Every 5 ms the aggregator drains its queue.
//! Event reports are
//! group-committed: at the first tick after they arrive (or after the commit in flight, which
//! the reports that came meanwhile then share), what they counted is appended to the feedback
//! log ([`LogEntry`], a few dozen bytes per event) and flushed, and only then does the report's
//! 2xx go out, so an acknowledged report survives even `kill -9`. Once a second the figures
//! the log's entries changed are written whole (a checkpoint) and those entries dropped, in one
//! transaction; at start the entries after the last checkpoint are replayed (on PostgreSQL,
//! every other replica's, live or gone, are replayed into the fleet-wide figures).
//! Writing whole figures at every commit cost each event the serialization of its release's
//! sketches, and held check-ins beside 40,000 events/s to 0.84x of their rate
//! (`bench/feedback.sh`).
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

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cardinality_estimator::CardinalityEstimator;
use halftone_channels::wire::{
    ChannelAdoption, ChannelHistory, Event, EventKind, Figures, MetricReport, VersionAdoption, VersionHistory,
    WindowCount,
};
use halftone_channels::{
    AppId, ChannelName, CounterFigures, Distribution, Health, MetricName, MetricValue, Summary, Version,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use crate::network_cap::{Admission, Network, NetworkCap};
use crate::store::{AdoptionKey, Change, FeedbackKey as ReleaseKey, Store};

/// An approximate set of device hashes.
type Sketch = CardinalityEstimator<u64>;
/// The aggregator's maps: keys are the server's own (apps, releases, channels of the
/// catalog), so a fast hash without flood protection serves them. hashbrown's (std's own map)
/// looks a key up by a borrowed form ([`ReleaseRef`]): counting an event clones no key.
type HashMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::RandomState>;
type HashSet<K> = hashbrown::HashSet<K, foldhash::fast::RandomState>;

/// A release key ([`ReleaseKey`]: app, version, channel) borrowed from an event, to look its
/// figures up without cloning the key (cloned only when the figures are new or become
/// dirty). It hashes exactly as the owned tuple does.
#[derive(Clone, Copy)]
struct ReleaseRef<'a>(&'a AppId, &'a Version, &'a ChannelName);

impl std::hash::Hash for ReleaseRef<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        // A tuple hashes its fields in order, with nothing between them.
        self.0.hash(h);
        self.1.hash(h);
        self.2.hash(h);
    }
}

impl hashbrown::Equivalent<ReleaseKey> for ReleaseRef<'_> {
    fn equivalent(&self, key: &ReleaseKey) -> bool {
        *self.0 == key.0 && *self.1 == key.1 && *self.2 == key.2
    }
}

impl ReleaseRef<'_> {
    fn to_key(self) -> ReleaseKey {
        (self.0.clone(), self.1.clone(), self.2.clone())
    }
}

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
/// How often the aggregator drains its queue (a deadline, not a sleep after the work: a tick
/// that ran late is followed by the next one at once, then on the timer again).
const DRAIN_EVERY: Duration = Duration::from_millis(5);
/// How often the figures that reports changed are written whole (a checkpoint). Between
/// checkpoints a group commit appends only what it acknowledges to the feedback log
/// ([`LogEntry`]), so a commit costs what its reports weigh, not what the figures they touch
/// weigh; the checkpoint drops the log entries it covers in the same transaction.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The first byte of an encoded [`LogEntry`]: the encoding's version.
const LOG_V1: u8 = 1;

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
    /// Changed by reports since the last checkpoint: written whole at the next one (until
    /// then the reports are in the feedback log).
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

/// One group commit's reports as the feedback log stores them: what the aggregator counted,
/// after the network caps (which live in memory only), so that replaying the log reproduces
/// the figures exactly. The store's own type, encoded with postcard behind [`LOG_V1`].
#[derive(Debug, Default, Serialize, Deserialize)]
struct LogEntry {
    reports: Vec<Logged>,
}

/// One report's counted events and metric reports.
#[derive(Debug, Serialize, Deserialize)]
struct Logged {
    app: AppId,
    events: Vec<LoggedEvent>,
    metrics: Vec<LoggedMetric>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LoggedEvent {
    #[serde(serialize_with = "version_text")]
    version: Version,
    channel: ChannelName,
    kind: EventKind,
    device: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct LoggedMetric {
    #[serde(serialize_with = "version_text")]
    version: Version,
    channel: ChannelName,
    device: u64,
    values: Vec<(MetricName, Vec<MetricValue>)>,
    counts: Vec<(MetricName, u64)>,
}

/// Serializes a version as its text, formatted once into a buffer on the stack: the same
/// bytes as `Version`'s own `Serialize`, which postcard formats twice (once to learn the
/// text's length, then to write it), allocating nothing. Every logged event pays it.
fn version_text<S: serde::Serializer>(version: &Version, s: S) -> Result<S::Ok, S::Error> {
    use std::fmt::Write as _;
    let mut text = VersionText { bytes: [0; VersionText::CAPACITY], len: 0 };
    match write!(text, "{version}") {
        Ok(()) => s.serialize_str(text.as_str()),
        // Longer than any version `Version::parse` accepts: formatted twice, as before.
        Err(_) => version.serialize(s),
    }
}

/// A version's text, on the stack.
struct VersionText {
    bytes: [u8; VersionText::CAPACITY],
    len: usize,
}

impl VersionText {
    /// `Version::parse` accepts at most 128 characters.
    const CAPACITY: usize = 128;

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.len]).expect("only whole strs are written")
    }
}

impl std::fmt::Write for VersionText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.bytes.get_mut(self.len..end).ok_or(std::fmt::Error)?.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl LogEntry {
    /// The entry behind its encoding's byte, serialized straight after it (no second buffer).
    fn encode(&self) -> Vec<u8> {
        postcard::to_extend(self, vec![LOG_V1]).expect("log entries serialize")
    }

    fn decode(bytes: &[u8]) -> anyhow::Result<LogEntry> {
        match bytes.split_first() {
            Some((&LOG_V1, rest)) => Ok(postcard::from_bytes(rest)?),
            _ => anyhow::bail!("a feedback log entry of an unknown encoding"),
        }
    }
}

/// The figures of `key`, created if new, and `key` marked in `dirty`; the key is cloned only
/// when either is new to it.
fn counters_of<'m>(
    releases: &'m mut HashMap<ReleaseKey, Counters>,
    dirty: &mut HashSet<ReleaseKey>,
    key: ReleaseRef<'_>,
) -> &'m mut Counters {
    if !dirty.contains(&key) {
        dirty.insert(key.to_key());
    }
    releases.raw_entry_mut().from_key(&key).or_insert_with(|| (key.to_key(), Counters::default())).1
}

/// Counts one admitted event of `app`.
fn count_event(
    releases: &mut HashMap<ReleaseKey, Counters>,
    dirty: &mut HashSet<ReleaseKey>,
    app: &AppId,
    e: &LoggedEvent,
) {
    let key = ReleaseRef(app, &e.version, &e.channel);
    counters_of(releases, dirty, key).devices.entry(e.kind).or_default().insert(&e.device);
}

/// Counts one admitted metric report of `app`.
fn count_metric(
    releases: &mut HashMap<ReleaseKey, Counters>,
    dirty: &mut HashSet<ReleaseKey>,
    app: &AppId,
    m: &LoggedMetric,
) {
    let c = counters_of(releases, dirty, ReleaseRef(app, &m.version, &m.channel));
    for (name, values) in &m.values {
        let d = c.values.entry(name.clone()).or_default();
        values.iter().for_each(|v| d.add(*v));
    }
    for (name, n) in &m.counts {
        let t = c.counts.entry(name.clone()).or_default();
        t.sum = t.sum.saturating_add(*n);
        t.devices.insert(&m.device);
        t.per_report.add(*n as f64);
    }
}

/// Replays a stored log entry into `releases`.
fn replay(releases: &mut HashMap<ReleaseKey, Counters>, dirty: &mut HashSet<ReleaseKey>, entry: LogEntry) {
    for r in entry.reports {
        for m in &r.metrics {
            count_metric(releases, dirty, &r.app, m);
        }
        for e in &r.events {
            count_event(releases, dirty, &r.app, e);
        }
    }
}

/// The aggregator's place in its feedback log.
struct LogState {
    /// The sequence number of the next entry.
    next: u64,
    /// The oldest entry not yet covered by a checkpoint, if any.
    first: Option<u64>,
    /// Reports counted since the last commit, waiting to be logged.
    pending: Vec<Logged>,
    /// When the figures were last written whole (`None`: a checkpoint is due now).
    checkpointed: Option<Instant>,
    /// How often they are ([`CHECKPOINT_EVERY`]).
    every: Duration,
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

/// An event report the aggregator takes in at its next tick: it gets the report to count from
/// [`Intake::take`] (which may parse and check a request's body there, on the aggregator's
/// thread: a report then costs no wake-up of a thread of its own, nor of the HTTP worker, until
/// its answer), counts it, and calls [`Intake::done`] once what it counted is stored.
pub trait Intake: Send + 'static {
    /// The report to count, or `None` when there is nothing to count (a refused body: the
    /// intake keeps the refusal and tells it in `done`).
    fn take(&mut self) -> Option<Report>;
    /// What was counted is durably stored (`Ok`), or could not be; called at once when
    /// `take` left nothing to store.
    fn done(self: Box<Self>, stored: Result<(), FeedbackError>);
}

/// A report already parsed ([`Feedback::report`]).
struct Parsed {
    report: Option<Report>,
    ack: oneshot::Sender<Result<(), FeedbackError>>,
}

impl Intake for Parsed {
    fn take(&mut self) -> Option<Report> {
        self.report.take()
    }

    fn done(self: Box<Self>, stored: Result<(), FeedbackError>) {
        let _ = self.ack.send(stored);
    }
}

/// Who waits for the next commit.
enum Waiter {
    Call(oneshot::Sender<Result<(), FeedbackError>>),
    Report(Box<dyn Intake>),
}

impl Waiter {
    fn answer(self, stored: Result<(), FeedbackError>) {
        match self {
            Waiter::Call(ack) => {
                let _ = ack.send(stored);
            }
            Waiter::Report(intake) => intake.done(stored),
        }
    }
}

enum Msg {
    Events(AppId, Network, Box<dyn Intake>),
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
        Feedback::start_with(store, per_network, CHECKPOINT_EVERY).await
    }

    /// [`Feedback::start`] with checkpoints every `checkpoint_every`.
    async fn start_with(store: Arc<Store>, per_network: u32, checkpoint_every: Duration) -> anyhow::Result<Feedback> {
        let mut agg = Aggregates::default();
        let mut log = LogState {
            next: 0,
            first: None,
            pending: Vec::new(),
            checkpointed: Some(Instant::now()),
            every: checkpoint_every,
        };
        if store.is_shared() {
            // Every stored row is another replica's (this process writes under a new id).
            (agg.others, agg.others_adoption) = others(&store).await?;
        } else {
            let load = store.load_feedback_and_log().await?;
            for ((app, version, channel), bytes) in load.figures {
                agg.releases.insert((app, version, channel), serde_json::from_slice(&bytes)?);
            }
            // Reports acknowledged after the last checkpoint: counted again, and written whole
            // at the first tick (which drops these entries).
            for (seq, bytes) in load.log {
                replay(&mut agg.releases, &mut agg.dirty_events, LogEntry::decode(&bytes)?);
                log.first.get_or_insert(seq);
            }
            log.next = load.next;
            if log.first.is_some() {
                log.checkpointed = None;
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
        // The aggregator is a thread of its own (see `aggregate`); what it does not do itself
        // (a checkpoint's transaction, a PostgreSQL commit) it runs on this runtime.
        let runtime = tokio::runtime::Handle::current();
        let figures_for = figures.clone();
        std::thread::Builder::new().name("feedback".into()).spawn(move || {
            crate::background::lower_this_thread();
            aggregate(rx, figures_for, store, per_network as usize, log, runtime)
        })?;
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
        self.take_in(app, network, Box::new(Parsed { report: Some(report), ack })).await?;
        done.await.map_err(|_| FeedbackError::Failed("the aggregator stopped".into()))?
    }

    /// Hands the aggregator a report of `app` from a client in `network` to take in at its
    /// next tick ([`Intake`]); it answers through the intake's `done`. An error here: the
    /// aggregator stopped, and `done` is never called.
    pub async fn take_in(&self, app: AppId, network: Network, intake: Box<dyn Intake>) -> Result<(), FeedbackError> {
        self.tx
            .send(Msg::Events(app, network, intake))
            .await
            .map_err(|_| FeedbackError::Failed("the aggregator stopped".into()))
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

/// The other replicas' stored figures with their feedback logs replayed, merged per key.
async fn others(store: &Store) -> anyhow::Result<(HashMap<ReleaseKey, Counters>, HashMap<AdoptionKey, Sketch>)> {
    let mut releases: HashMap<ReleaseKey, Counters> = HashMap::default();
    let load = store.load_feedback_and_log().await?;
    for (key, bytes) in load.figures {
        releases.entry(key).or_default().merge(&serde_json::from_slice(&bytes)?);
    }
    let mut unused = HashSet::default();
    for (_, bytes) in load.log {
        replay(&mut releases, &mut unused, LogEntry::decode(&bytes)?);
    }
    let mut adoption: HashMap<AdoptionKey, Sketch> = HashMap::default();
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

/// The aggregator: a thread of its own, at the background's priority, that wakes every
/// [`DRAIN_EVERY`] to take in what its queue holds, counts it, commits it and answers.
///
/// Not a task on the runtime: each tick would then cost a wake-up of a runtime thread (whichever
/// was parked on the timer), a hop to a blocking thread for the feedback log's append and a hop
/// back, each a context switch taken from the CPU the check-ins run on; and the task moved
/// between the runtime's threads, so that memory allocated on one was freed on another. Here a
/// tick is one wake-up, and the embedded store's append (write and fdatasync) runs on this
/// thread ([`Store::commit_blocking`]).
fn aggregate(
    mut rx: mpsc::Receiver<Msg>,
    figures: Arc<Mutex<Aggregates>>,
    store: Arc<Store>,
    per_network: usize,
    mut log: LogState,
    runtime: tokio::runtime::Handle,
) {
    let mut acks: Vec<Waiter> = Vec::new();
    // The devices counted per network, per release (every channel): in memory only.
    let mut caps: HashMap<AppId, HashMap<Version, NetworkCap>> = HashMap::default();
    // The aggregator drains its queue on a timer rather than waiting on it: a check-in then
    // never has to wake a parked thread, which would cost it a futex call and two context
    // switches.
    let mut next_tick = Instant::now();
    let mut last_sweep = Instant::now();
    let mut sweep: Vec<Swept> = Vec::new();
    let mut newest_ms = 0u64;
    loop {
        next_tick += DRAIN_EVERY;
        match next_tick.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None => next_tick = Instant::now(),
        }
        let (mut commit_now, mut stop) = (false, false);
        // Who asked the aggregator to stop: answered once it has let go of the store.
        let mut closing = None;
        loop {
            match rx.try_recv() {
                Ok(Msg::Events(app, network, mut intake)) => {
                    // Parsed and checked here, before the figures are locked.
                    let Some(report) = intake.take().filter(|r| !r.events.is_empty() || !r.metrics.is_empty()) else {
                        intake.done(Ok(()));
                        continue;
                    };
                    let mut a = figures.lock().unwrap_or_else(|p| p.into_inner());
                    let a = &mut *a;
                    let mut logged = Logged {
                        app,
                        events: Vec::with_capacity(report.events.len()),
                        metrics: Vec::with_capacity(report.metrics.len()),
                    };
                    let app = &logged.app;
                    // The app's network caps, looked up once for the whole report.
                    let caps =
                        caps.raw_entry_mut().from_key(app).or_insert_with(|| (app.clone(), HashMap::default())).1;
                    for m in report.metrics {
                        let device = device_hash(m.device_id.as_str());
                        if admit(caps, &m.version, network, device, per_network) == Admission::OverCap {
                            metrics::counter!("halftone_metric_reports_capped_total").increment(1);
                            continue;
                        }
                        let m = LoggedMetric {
                            version: m.version,
                            channel: m.channel,
                            device,
                            values: m.values.into_iter().collect(),
                            counts: m.counts.into_iter().collect(),
                        };
                        count_metric(&mut a.releases, &mut a.dirty_events, app, &m);
                        logged.metrics.push(m);
                    }
                    for e in report.events {
                        let device = device_hash(e.device_id.as_str());
                        match admit(caps, &e.version, network, device, per_network) {
                            Admission::Counted => {}
                            Admission::OverCap => {
                                metrics::counter!("halftone_events_capped_total").increment(1);
                                continue;
                            }
                            Admission::Untracked => {
                                metrics::counter!("halftone_events_untracked_total").increment(1);
                            }
                        }
                        let e = LoggedEvent { version: e.version, channel: e.channel, kind: e.kind, device };
                        count_event(&mut a.releases, &mut a.dirty_events, app, &e);
                        logged.events.push(e);
                    }
                    if !logged.events.is_empty() || !logged.metrics.is_empty() {
                        log.pending.push(logged);
                    }
                    acks.push(Waiter::Report(intake));
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
                    acks.push(Waiter::Call(ack));
                    commit_now = true;
                }
                Ok(Msg::Close(ack)) => {
                    closing = Some(Waiter::Call(ack));
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
            last_sweep = Instant::now();
        }
        let all = stop || commit_now;
        let checkpoint = all
            || (log.first.is_some() || !log.pending.is_empty())
                && log.checkpointed.is_none_or(|t| t.elapsed() >= log.every);
        let stored = match checkpoint || !sweep.is_empty() || !acks.is_empty() {
            true => persist(&figures, &store, &runtime, &mut acks, &mut sweep, all, checkpoint, &mut log),
            false => Ok(()),
        };
        if stop {
            // Whoever closed the aggregator may open the data dir again at once (a restart):
            // the store is let go of before the answer.
            drop(store);
            if let Some(closing) = closing {
                closing.answer(stored);
            }
            return;
        }
    }
}

/// Whether `network` may count `device` for the `version` of the app whose caps are `caps`
/// (see [`NetworkCap`]); the version is cloned only for a release seen for the first time.
fn admit(
    caps: &mut HashMap<Version, NetworkCap>,
    version: &Version,
    network: Network,
    device: u64,
    per_network: usize,
) -> Admission {
    let cap = caps.raw_entry_mut().from_key(version).or_insert_with(|| (version.clone(), NetworkCap::default())).1;
    cap.admit(network, device, per_network)
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

/// Commits, in one transaction, what reports changed and the next chunk of the sweep (the
/// whole sweep and everything changed when `all`), then acknowledges the reports. At a
/// `checkpoint` what reports changed is written whole and the log entries it covers are
/// dropped; otherwise the reports counted since the last commit are appended to the log.
/// Returns what the reports were answered.
#[allow(clippy::too_many_arguments)]
fn persist(
    figures: &Mutex<Aggregates>,
    store: &Store,
    runtime: &tokio::runtime::Handle,
    acks: &mut Vec<Waiter>,
    sweep: &mut Vec<Swept>,
    all: bool,
    checkpoint: bool,
    log: &mut LogState,
) -> Result<(), FeedbackError> {
    let (change, written) = {
        let mut a = figures.lock().unwrap_or_else(|p| p.into_inner());
        let a = &mut *a;
        if all {
            sweep.extend(std::mem::take(&mut a.dirty_releases).into_iter().map(Swept::Release));
            sweep.extend(std::mem::take(&mut a.dirty_adoption).into_iter().map(Swept::Adoption));
        }
        let n = if all { sweep.len() } else { sweep.len().min(SWEEP_CHUNK) };
        if !checkpoint && log.pending.is_empty() && n == 0 && acks.is_empty() {
            return Ok(());
        }
        let mut change = Change::default();
        let put_release = |change: &mut Change, key: &ReleaseKey| {
            if let Some(c) = a.releases.get(key) {
                change.put_feedback(&key.0, &key.1, &key.2, serde_json::to_vec(c).expect("sketches serialize"));
            }
        };
        let written = if checkpoint {
            let written = std::mem::take(&mut a.dirty_events);
            for key in &written {
                put_release(&mut change, key);
            }
            if let Some(first) = log.first {
                change.remove_feedback_log(first, log.next - 1);
            }
            log.pending.clear();
            written
        } else {
            if !log.pending.is_empty() {
                let entry = LogEntry { reports: std::mem::take(&mut log.pending) };
                change.append_feedback_log(log.next, entry.encode());
                log.first.get_or_insert(log.next);
                log.next += 1;
            }
            HashSet::default()
        };
        for swept in sweep.drain(sweep.len() - n..) {
            match swept {
                Swept::Release(key) if !written.contains(&key) => put_release(&mut change, &key),
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
        (change, written)
    };
    let result = store.commit_blocking(change, runtime).map_err(|e| {
        tracing::error!(error = format!("{e:#}"), "storing feedback failed");
        match crate::store::is_unavailable(&e) {
            true => FeedbackError::Unavailable(format!("{e:#}")),
            false => FeedbackError::Failed(format!("{e:#}")),
        }
    });
    if checkpoint {
        match result {
            Ok(()) => {
                log.first = None;
                log.checkpointed = Some(Instant::now());
            }
            // The log entries stay; the figures they touched are written at the next one.
            Err(_) => figures.lock().unwrap_or_else(|p| p.into_inner()).dirty_events.extend(written),
        }
    }
    for waiter in acks.drain(..) {
        waiter.answer(result.clone());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::DeviceId;

    fn report(device: &str, kind: EventKind, session_s: f64) -> Report {
        let (version, channel) = (Version::parse("1.0.0").unwrap(), ChannelName::parse("stable").unwrap());
        let device_id = DeviceId::parse(device).unwrap();
        let event = Event {
            device_id: device_id.clone(),
            kind,
            version: version.clone(),
            channel: channel.clone(),
            detail: None,
            token: None,
        };
        let values =
            BTreeMap::from([(MetricName::parse("session_s").unwrap(), vec![MetricValue::new(session_s).unwrap()])]);
        let metric = MetricReport { device_id, version, channel, token: None, values, counts: BTreeMap::new() };
        Report { events: vec![event], metrics: vec![metric] }
    }

    /// (install failures, sessions counted, their sum) of notes 1.0.0.
    fn figures(f: &Feedback) -> (u64, u64, f64) {
        let (app, version) = (AppId::parse("notes").unwrap(), Version::parse("1.0.0").unwrap());
        let metrics = f.metrics(&app, &version);
        let Some(MetricFigures::Value(d)) = metrics.get(&MetricName::parse("session_s").unwrap()) else {
            return (f.health(&app, &version).install_failures, 0, 0.0);
        };
        let s = d.summary();
        (f.health(&app, &version).install_failures, s.count(), s.mean() * s.count() as f64)
    }

    #[tokio::test]
    async fn acknowledged_reports_are_logged_replayed_once_and_dropped_from_the_log_by_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_sled(dir.path()).unwrap());
        let app = AppId::parse("notes").unwrap();
        let network = Network::of(None);
        let hour = Duration::from_secs(3600);
        let first = Feedback::start_with(store.clone(), 20, hour).await.unwrap();
        first.report(app.clone(), report("d-1", EventKind::InstallFailed, 10.0), network).await.unwrap();
        first.report(app.clone(), report("d-2", EventKind::InstallFailed, 20.0), network).await.unwrap();
        assert_eq!(figures(&first), (2, 2, 30.0));

        // Acknowledged, not yet checkpointed: in the log only (one entry per group commit).
        let stored = store.load_feedback_and_log().await.unwrap();
        assert!(stored.figures.is_empty(), "no checkpoint within the hour");
        let entries = stored.log.len();
        assert!((1..=2).contains(&entries), "{entries} log entries");

        // A process starting on this store (as after kill -9) counts them, once.
        let second = Feedback::start_with(store.clone(), 20, hour).await.unwrap();
        assert_eq!(figures(&second), (2, 2, 30.0));
        // ...and its first tick checkpoints them: figures written whole, the log emptied.
        second.flush().await.unwrap();
        let stored = store.load_feedback_and_log().await.unwrap();
        assert_eq!((stored.figures.len(), stored.log.len()), (1, 0));

        // Reports after a checkpoint are logged again, and the next start adds them to the
        // checkpointed figures without counting the old ones twice.
        second.report(app.clone(), report("d-3", EventKind::InstallFailed, 30.0), network).await.unwrap();
        assert_eq!(store.load_feedback_and_log().await.unwrap().log.len(), 1);
        let third = Feedback::start_with(store.clone(), 20, hour).await.unwrap();
        assert_eq!(figures(&third), (3, 3, 60.0));
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn the_aggregator_is_a_thread_of_its_own_at_the_background_priority_and_lets_go_of_the_store_on_close() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_sled(dir.path()).unwrap());
        let feedback = Feedback::start(store.clone(), 20).await.unwrap();
        let nice = |tid: i32| rustix::process::getpriority_process(rustix::process::Pid::from_raw(tid)).unwrap();
        let before = rustix::process::getpriority_process(None).unwrap();
        // Other tests' aggregators may be running too: every one is lowered the same way.
        let mut seen = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap();
            let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else { continue };
            if comm.trim() == "feedback" {
                seen.push(nice(task.file_name().to_str().unwrap().parse().unwrap()));
            }
        }
        assert!(!seen.is_empty(), "no thread named feedback");
        assert!(seen.iter().all(|n| *n == crate::background::NICE.max(before)), "{seen:?}");
        // ...and it still answers reports, and lets go of the store before it answers a close:
        // a restart opens the data dir again at once (sled holds a lock on it while open).
        let app = AppId::parse("notes").unwrap();
        feedback.report(app, report("d-1", EventKind::InstallFailed, 1.0), Network::of(None)).await.unwrap();
        feedback.close().await.unwrap();
        assert_eq!(Arc::strong_count(&store), 1, "the aggregator still holds the store");
    }

    /// An intake that refuses its body (or keeps nothing of it) is answered at its tick, with
    /// nothing counted or logged; one that takes a report is answered once it is logged.
    #[tokio::test]
    async fn an_intake_is_answered_after_its_report_is_logged_and_at_once_when_it_keeps_nothing() {
        struct Once(Option<Report>, oneshot::Sender<(bool, Result<(), FeedbackError>)>);
        impl Intake for Once {
            fn take(&mut self) -> Option<Report> {
                self.0.take()
            }
            fn done(self: Box<Self>, stored: Result<(), FeedbackError>) {
                let _ = self.1.send((self.0.is_none(), stored));
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_sled(dir.path()).unwrap());
        let feedback = Feedback::start_with(store.clone(), 20, Duration::from_secs(3600)).await.unwrap();
        let app = AppId::parse("notes").unwrap();
        for report in [None, Some(Report::default())] {
            let (tx, rx) = oneshot::channel();
            feedback.take_in(app.clone(), Network::of(None), Box::new(Once(report, tx))).await.unwrap();
            assert!(matches!(rx.await.unwrap(), (true, Ok(()))));
            assert!(store.load_feedback_and_log().await.unwrap().log.is_empty(), "nothing logged");
        }
        assert_eq!(figures(&feedback), (0, 0, 0.0));
        let (tx, rx) = oneshot::channel();
        let report = report("d-1", EventKind::InstallFailed, 10.0);
        feedback.take_in(app.clone(), Network::of(None), Box::new(Once(Some(report), tx))).await.unwrap();
        assert!(matches!(rx.await.unwrap(), (true, Ok(()))));
        assert_eq!(store.load_feedback_and_log().await.unwrap().log.len(), 1, "logged before the answer");
        assert_eq!(figures(&feedback), (1, 1, 10.0));
    }

    #[test]
    fn a_logged_version_is_stored_as_versions_own_serialization_stores_it() {
        #[derive(Serialize)]
        struct Once(#[serde(serialize_with = "version_text")] Version);
        let long = format!("1.2.3-{}", "a".repeat(122));
        for v in ["0.0.0", "1.2.3", "10.200.3000-beta.1", "2.0.0-rc.1.x-y", long.as_str()] {
            let v = Version::parse(v).unwrap();
            assert_eq!(postcard::to_stdvec(&Once(v.clone())).unwrap(), postcard::to_stdvec(&v).unwrap(), "{v}");
        }
    }

    #[test]
    fn a_borrowed_release_key_finds_the_owned_one_and_only_it() {
        let key = |app: &str, v: &str, ch: &str| -> ReleaseKey {
            (AppId::parse(app).unwrap(), Version::parse(v).unwrap(), ChannelName::parse(ch).unwrap())
        };
        let mut releases: HashMap<ReleaseKey, Counters> = HashMap::default();
        let mut dirty: HashSet<ReleaseKey> = HashSet::default();
        let stored =
            [key("notes", "1.0.0", "stable"), key("notes", "1.0.0-beta.1", "beta"), key("notesx", "1.0.0", "stable")];
        for (i, k) in stored.iter().enumerate() {
            releases.insert(k.clone(), Counters { offers: i as u64 + 1, ..Counters::default() });
        }
        // Each borrowed form reaches its owned key: no second entry, the right figures.
        for (i, k) in stored.iter().enumerate() {
            let c = counters_of(&mut releases, &mut dirty, ReleaseRef(&k.0, &k.1, &k.2));
            assert_eq!(c.offers, i as u64 + 1);
        }
        assert_eq!((releases.len(), dirty.len()), (3, 3));
        // A key that differs in any part is a new entry.
        let new = key("notes", "1.0.0", "beta");
        assert_eq!(counters_of(&mut releases, &mut dirty, ReleaseRef(&new.0, &new.1, &new.2)).offers, 0);
        assert_eq!((releases.len(), dirty.len()), (4, 4));
        assert!(releases.contains_key(&new) && dirty.contains(&new));
    }

    #[test]
    fn a_log_entry_round_trips_and_an_unknown_encoding_is_refused() {
        let entry = LogEntry {
            reports: vec![Logged {
                app: AppId::parse("notes").unwrap(),
                events: vec![LoggedEvent {
                    version: Version::parse("1.2.0-beta.1").unwrap(),
                    channel: ChannelName::parse("beta").unwrap(),
                    kind: EventKind::Crash,
                    device: 42,
                }],
                metrics: Vec::new(),
            }],
        };
        let bytes = entry.encode();
        let back = LogEntry::decode(&bytes).unwrap();
        assert_eq!(format!("{back:?}"), format!("{entry:?}"));
        let mut other = bytes.clone();
        other[0] = 2;
        assert!(LogEntry::decode(&other).is_err());
        assert!(LogEntry::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
