//! [`State`]: the store, the artifact files and the current `Snapshot`, shared by every
//! request. Reads load the snapshot lock-free; changes (in `changes/`) go through the one
//! `Writer`, which commits and flushes them to the store and then
//! publishes a new snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use halftone_channels::AppId;

use crate::artifacts::ArtifactStore;
use crate::clock::Clock;
use crate::config::Config;
use crate::feedback::Feedback;
use crate::report_key::ReportKey;
use crate::signer::Signer;
use crate::snapshot::{AppParts, AppSnapshot, Snapshot};
use crate::store::{Scope, Store};
use crate::writer::Published;

/// Shared server state.
pub struct State {
    /// Settings.
    pub config: Config,
    /// The database.
    pub store: Arc<Store>,
    /// Install feedback and adoption figures.
    pub feedback: Feedback,
    /// Time for schedules, audit entries and adoption windows.
    pub clock: Arc<dyn Clock>,
    /// Artifact files.
    pub artifacts: ArtifactStore,
    /// Signs check-in answers with the server's answer keys.
    pub signer: Signer,
    /// Makes and checks the report tokens of check-in answers.
    pub report_key: ReportKey,
    /// Each rollout's figures over time, for the dashboard's charts.
    pub trend: crate::trend::Trend,
    /// When each rollout's step reports last grew, as this replica's scheduler saw them.
    pub(crate) reports_seen: crate::reports_seen::ReportsWatch,
    /// Each gated rollout's first runs over its crash window, as this replica saw them.
    pub(crate) first_runs_seen: crate::first_runs_seen::FirstRunsWatch,
    /// When this replica last saw the shared store's revisions (see `replica`).
    pub(crate) freshness: crate::replica::Freshness,
    /// The snapshot readers load, replaced only through a [`Writer`](crate::writer::Writer).
    pub(crate) published: Published,
}

impl State {
    /// Opens the data dir, rebuilds the snapshot from disk and starts the feedback
    /// aggregator (on the current tokio runtime).
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&config.data_dir)
            .with_context(|| format!("creating the data dir {}", config.data_dir.display()))?;
        let store = Arc::new(Store::open(&config).await?);
        let artifacts = ArtifactStore::open(&config)?;
        let snapshot = rebuild(&store).await?;
        let feedback = Feedback::start(store.clone(), config.max_devices_per_network).await?;
        let signer = Signer::start(&store, clock.now_ms(), config.answer_signing, config.answer_ttl_s).await?;
        let report_key = ReportKey::start(&store, clock.now_ms()).await?;
        Ok(State {
            config,
            store,
            feedback,
            clock,
            artifacts,
            signer,
            report_key,
            trend: crate::trend::Trend::default(),
            reports_seen: crate::reports_seen::ReportsWatch::default(),
            first_runs_seen: crate::first_runs_seen::FirstRunsWatch::default(),
            freshness: Default::default(),
            published: Published::new(snapshot),
        })
    }

    /// The current snapshot (lock-free).
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.published.load()
    }
}

async fn rebuild(store: &Store) -> anyhow::Result<Snapshot> {
    let loaded = store.load().await?;
    let mut parts: HashMap<AppId, AppParts> = loaded
        .apps
        .into_iter()
        .map(|(id, settings)| {
            let revision = loaded.revisions.get(&Scope::App(id.clone())).copied().unwrap_or(0);
            (id.clone(), AppParts { id, settings, releases: Vec::new(), rollouts: Vec::new(), revision })
        })
        .collect();
    for (app, release) in loaded.releases {
        let p = parts.get_mut(&app).with_context(|| format!("release of unknown app {app}"))?;
        p.releases.push(Arc::new(release));
    }
    for (app, rollout, meta) in loaded.rollouts {
        let p = parts.get_mut(&app).with_context(|| format!("rollout of unknown app {app}"))?;
        p.rollouts.push((Arc::new(rollout), meta));
    }
    let mut apps = HashMap::new();
    for (id, p) in parts {
        apps.insert(id.clone(), Arc::new(AppSnapshot::build(p).with_context(|| format!("indexing app {id}"))?));
    }
    let tokens = loaded.tokens.into_iter().map(|(id, t)| (id, Arc::new(t))).collect();
    let tokens_revision = loaded.revisions.get(&Scope::Tokens).copied().unwrap_or(0);
    Ok(Snapshot { apps, tokens, tokens_revision })
}

impl State {
    /// Samples every rollout's figures into [`trend`](State::trend) when a sample is due by the
    /// clock (every 5 minutes); every replica does, for its own view. Returns whether it did.
    pub fn sample_trend(&self) -> bool {
        if !self.trend.due(self.clock.now_ms()) {
            return false;
        }
        self.sample_trend_now();
        true
    }

    /// Samples every rollout's figures into [`trend`](State::trend) now, whether due or not.
    pub fn sample_trend_now(&self) {
        let now = self.clock.now_ms();
        let snapshot = self.snapshot();
        for app in snapshot.apps.values() {
            for (release, rollouts) in app.catalog.releases() {
                for r in rollouts.iter() {
                    let figures = self.feedback.figures(&app.id, release.version(), &r.channel);
                    self.trend.record((app.id.clone(), release.version().clone(), r.channel.clone()), now, &figures);
                }
            }
        }
    }
}
