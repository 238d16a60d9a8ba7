//! Read-side views: the wire form of what the snapshot and the feedback figures hold (apps,
//! tokens, releases, rollouts, an app's status, adoption over time), and the lookups that name what is missing.
//! Nothing here changes anything.

use std::sync::Arc;

use halftone_channels::wire::{
    AdoptionHistory, AppSpec, AppView, ChannelSpec, EvidenceView, ExhaustionView, GateSpec, KeySpec, LastLookTakenView,
    MetricEvidenceView, MetricFiguresView, MetricKindSpec, MetricStepView, MetricView, ReleaseStatus, ReleaseView,
    RolloutStatus, ScheduleStatus, StatusView, TokenView, metric_set, metric_specs,
};
use halftone_channels::{
    AppId, ChannelName, CounterFigures, Distribution, ExhaustedStep, MetricKind, ReportsSeen, Rollout, RolloutState,
    StepExhaustion, Tick, Version,
};

use crate::auth::Token;
use crate::feedback::MetricFigures;
use crate::problem::ApiError;
use crate::snapshot::{AppSettings, AppSnapshot, RolloutMeta};
use crate::state::State;

impl State {
    /// One app of the current snapshot, or a 404.
    pub fn app(&self, id: &AppId) -> Result<Arc<AppSnapshot>, ApiError> {
        self.snapshot().apps.get(id).cloned().ok_or_else(|| no_app(id))
    }

    /// A release's wire view with its offer count from the feedback figures.
    pub fn release_view(&self, app: &AppSnapshot, version: &Version) -> Option<ReleaseView> {
        app.release_view(version, self.feedback.offers(&app.id, version))
    }

    /// Adoption by channel and version over time: the adoption windows the feedback figures
    /// hold in memory (no store read, no per-device rows).
    pub fn adoption_history(&self, id: &AppId) -> Result<AdoptionHistory, ApiError> {
        self.app(id)?;
        Ok(AdoptionHistory {
            app: id.clone(),
            window_ms: crate::feedback::ADOPTION_WINDOW_MS,
            channels: self.feedback.adoption_history(id, self.clock.now_ms()),
        })
    }

    /// Rollout states, schedules, gates, feedback figures and history per release and channel
    /// (only release `only`, if given), and adoption by version.
    pub async fn status_view(&self, id: &AppId, only: Option<&Version>) -> Result<StatusView, ApiError> {
        let app = self.app(id)?;
        if let Some(v) = only.filter(|v| app.catalog.release(v).is_none()) {
            return Err(no_release(id, v));
        }
        let audit = self.store.audit(id).await?;
        let now = self.clock.now_ms();
        let releases = app
            .catalog
            .releases()
            .filter(|(r, _)| only.is_none_or(|v| v == r.version()))
            .map(|(release, rollouts)| ReleaseStatus {
                version: release.version().clone(),
                critical: release.is_critical(),
                rebuild_of: release.rebuild_of().cloned(),
                rollouts: rollouts
                    .iter()
                    .map(|r| {
                        let subject = format!("{}/{}", r.release, r.channel);
                        let meta = app.meta_of(&r.release, &r.channel);
                        let clock = meta.clock;
                        let evidence = r
                            .gate
                            .as_ref()
                            .map_or_else(Vec::new, |g| g.evidence(&self.gate_figures(&app, r, &meta.marks)));
                        let baseline = r
                            .gate
                            .as_ref()
                            .filter(|g| g.compare.is_some() || !g.metrics.is_empty())
                            .and_then(|_| app.catalog.baseline(&r.release, &r.channel).cloned());
                        RolloutStatus {
                            channel: r.channel.clone(),
                            state: r.state,
                            basis_points: r.percent,
                            schedule: r.schedule.as_ref().map(|s| ScheduleStatus {
                                steps: s.steps().to_vec(),
                                step: s.step_of(r.percent),
                                since_ms: clock.since_ms,
                                next_at_ms: match s.next(r.percent, r.state, &clock, now) {
                                    Tick::Hold { remaining_ms } => Some(now + remaining_ms),
                                    Tick::Advance { .. } => Some(now),
                                    Tick::Done | Tick::Stopped(_) => None,
                                },
                            }),
                            gate: r.gate.clone().map(GateSpec::from),
                            figures: self.feedback.figures(id, &r.release, &r.channel),
                            baseline,
                            evidence: evidence.iter().map(EvidenceView::from).collect(),
                            metrics: self.metric_views(&app, &r.release, &r.channel),
                            metric_evidence: self
                                .metric_evidence(&app, r, &meta.marks)
                                .iter()
                                .map(MetricEvidenceView::from)
                                .collect(),
                            metric_step_waits: self
                                .metric_steps_short(&app, r, &meta.marks)
                                .into_iter()
                                .map(|s| MetricStepView { metric: s.name, new_values: s.have, needed: s.need })
                                .collect(),
                            exhaustion: self.exhaustion_view(&app, r, &meta, now),
                            last_look: meta.marks.look.as_ref().zip(r.gate.as_ref().and_then(|g| g.compare)).map(
                                |(l, c)| {
                                    LastLookTakenView::new(l.at_ms, l.percent, &ExhaustedStep::judge(&c, &l.figures()))
                                },
                            ),
                            history: audit.iter().filter(|e| e.subject == subject).cloned().collect(),
                        }
                    })
                    .collect(),
            })
            .collect();
        let experiments = self.experiment_views(&app);
        Ok(StatusView { app: id.clone(), releases, adoption: self.feedback.adoption(id, now), experiments })
    }
}

impl State {
    /// When `r`, on a comparing gate's proving step held for evidence, counts as exhausted if
    /// no new install reports come: from this replica's watch (the scheduler's, on the replica
    /// holding its lease), or counting from now where this replica has not watched it.
    fn exhaustion_view(&self, app: &AppSnapshot, r: &Rollout, meta: &RolloutMeta, now: u64) -> Option<ExhaustionView> {
        if r.state != RolloutState::Active {
            return None;
        }
        let (gate, schedule) = (r.gate.as_ref()?, r.schedule.as_ref()?);
        let f = self.gate_figures(app, r, &meta.marks);
        let reports = ReportsSeen::reports_of(&f);
        let key = (app.id.clone(), r.release.clone(), r.channel.clone());
        let seen = self
            .reports_seen
            .get(&key, meta.revision)
            .filter(|s| s.reports() == reports)
            .unwrap_or_else(|| ReportsSeen::new(reports, now));
        let tick = schedule.next(r.percent, r.state, &meta.clock, now);
        let exhausted_at_ms = match StepExhaustion::of(gate.compare.as_ref(), &f, gate.check(&f), tick, seen, now) {
            StepExhaustion::NotWaiting => return None,
            StepExhaustion::Waiting { at_ms } => at_ms,
            StepExhaustion::Exhausted => now,
        };
        Some(ExhaustionView { step_reports: reports, reports_grew_at_ms: seen.grew_at_ms(), exhausted_at_ms })
    }

    /// Every declared metric of `version` (on every channel) beside the baseline's on
    /// `channel` (empty when the app declares none).
    fn metric_views(&self, app: &AppSnapshot, version: &Version, channel: &ChannelName) -> Vec<MetricView> {
        if app.settings.metrics.is_empty() {
            return Vec::new();
        }
        let build = self.feedback.metrics(&app.id, version);
        let baseline = app.catalog.baseline(version, channel).map(|b| self.feedback.metrics(&app.id, b));
        let view = |m: Option<&MetricFigures>, kind: MetricKind| match (m, kind) {
            (Some(MetricFigures::Value(d)), _) => MetricFiguresView::from(d),
            (Some(MetricFigures::Counter(c, _)), _) => MetricFiguresView::from(c),
            (None, MetricKind::Value(_)) => MetricFiguresView::from(&Distribution::default()),
            (None, MetricKind::Counter) => MetricFiguresView::from(&CounterFigures::default()),
        };
        app.settings
            .metrics
            .iter()
            .map(|(name, kind)| MetricView {
                name: name.clone(),
                kind: match kind {
                    MetricKind::Value(_) => MetricKindSpec::Value,
                    MetricKind::Counter => MetricKindSpec::Counter,
                },
                better: match kind {
                    MetricKind::Value(d) => Some(d),
                    MetricKind::Counter => None,
                },
                build: view(build.get(name), kind),
                baseline: baseline.as_ref().map(|b| view(b.get(name), kind)),
            })
            .collect()
    }
}

/// The 404 for an app that does not exist.
pub(crate) fn no_app(id: &AppId) -> ApiError {
    ApiError::NotFound(format!("there is no app {id}"))
}

/// The 404 for a release that does not exist.
pub(crate) fn no_release(app: &AppId, v: &Version) -> ApiError {
    ApiError::NotFound(format!("app {app} has no release {v}"))
}

/// The rollout of `version` on `channel`, or a 404 that says which part is missing.
pub fn find_rollout<'a>(
    app: &'a AppSnapshot,
    version: &Version,
    channel: &ChannelName,
) -> Result<&'a Rollout, ApiError> {
    let (_, rollouts) = app.catalog.release(version).ok_or_else(|| no_release(&app.id, version))?;
    rollouts
        .iter()
        .find(|r| r.channel == *channel)
        .map(|r| &**r)
        .ok_or_else(|| ApiError::NotFound(format!("release {version} of {} is not rolled out on {channel}", app.id)))
}

/// The wire view of an app.
pub fn app_view(app: &AppSnapshot) -> AppView {
    AppView {
        id: app.id.clone(),
        display_name: app.settings.display_name.clone(),
        keys: app
            .settings
            .keys
            .iter()
            .map(|(id, public_key)| KeySpec { id: id.clone(), public_key: *public_key })
            .collect(),
        channels: app
            .catalog
            .ladder()
            .channels()
            .into_iter()
            .map(|(n, r)| ChannelSpec { name: n.clone(), rank: r })
            .collect(),
        metrics: metric_specs(&app.settings.metrics),
    }
}

/// The wire form of an app's settings (as the audit log shows them).
impl From<&AppSettings> for AppSpec {
    fn from(s: &AppSettings) -> Self {
        AppSpec {
            display_name: s.display_name.clone(),
            keys: s.keys.iter().map(|(id, public_key)| KeySpec { id: id.clone(), public_key: *public_key }).collect(),
            channels: s.channels.iter().map(|(name, rank)| ChannelSpec { name: name.clone(), rank: *rank }).collect(),
            metrics: metric_specs(&s.metrics),
        }
    }
}

/// An app's settings from the wire (the metric declarations are checked as a whole).
impl TryFrom<AppSpec> for AppSettings {
    type Error = halftone_channels::ParseError;
    fn try_from(s: AppSpec) -> Result<Self, Self::Error> {
        Ok(AppSettings {
            metrics: metric_set(&s.metrics)?,
            display_name: s.display_name,
            keys: s.keys.into_iter().map(|k| (k.id, k.public_key)).collect(),
            channels: s.channels.into_iter().map(|c| (c.name, c.rank)).collect(),
            // Not part of the app's body: documents come only through `POST .../keys`.
            key_documents: Vec::new(),
            // Nor are deployment keys: only through `/v1/apps/{app}/codepush-keys`.
            codepush_keys: Vec::new(),
        })
    }
}

/// The wire view of a token.
pub fn token_view(id: &str, t: &Token) -> TokenView {
    TokenView { id: id.to_owned(), name: t.name.clone(), role: t.role, apps: t.apps.clone() }
}
