//! The immutable in-memory picture of the catalog that every check-in reads: [`Snapshot`]
//! (all apps and tokens) and [`AppSnapshot`] (one app's settings, keys and indexed
//! [`Catalog`]). A committed change builds a new snapshot and swaps it in atomically
//! (arc-swap); readers never lock and never touch disk.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use halftone_channels::wire::{ReleaseSpec, ReleaseView, RolloutSpec, RolloutView};
use halftone_channels::{
    AppId, Call, Catalog, CatalogError, ChannelName, DeploymentKey, DisplayName, GateFigures, Health, KeyDocument,
    KeyId, Ladder, LadderError, MetricName, MetricSet, Percent, PublicKey, Rank, Release, Rollout, RolloutState,
    ScheduleClock, SignedKeyDocument, Summary, Target, Threshold, TokenName, TrustedKeys, Version,
};

use crate::auth::Token;

/// One app, ready to answer check-ins.
pub struct AppSnapshot {
    /// The app's id.
    pub id: AppId,
    /// Its settings.
    pub settings: AppSettings,
    /// Its trusted keys: those of the newest key document (version 1: the settings' keys).
    pub keys: TrustedKeys,
    /// How many distinct keys of `keys` must sign a build.
    pub threshold: Threshold,
    /// The newest key document (none while the app trusts no key).
    pub key_document: Option<KeyDocument>,
    /// Its releases and rollouts, indexed.
    pub catalog: Catalog,
    /// The store revision this snapshot shows (see `store::Scope`).
    pub revision: u64,
    /// Every rollout with its revision (its ETag) and schedule clock, ordered by (version,
    /// channel) for lookup by binary search; a change clones it (pointers and numbers) instead
    /// of rehashing every rollout.
    rollouts: Vec<(Arc<Rollout>, RolloutMeta)>,
}

/// What the server keeps about a rollout beside its settings.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RolloutMeta {
    /// Bumped on every change; the ETag.
    pub revision: u64,
    /// When the current step began.
    pub clock: ScheduleClock,
    /// Where its gate's window and current step began.
    pub marks: GateMarks,
}

/// The release's cumulative figures (`Feedback::health`, and its metric summaries) when the
/// rollout's gate window began (publish, or the last resume) and when its current step
/// began: a gate judges the figures gathered since, so each step needs its own sample and a
/// resumed rollout starts afresh. Zeros count from publish.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GateMarks {
    /// At the start of the gate's window.
    pub window: Health,
    /// At the start of the current step.
    pub step: Health,
    /// The metric summaries at the same moments, and the baseline's at the window's start
    /// (shared: snapshots clone rollouts' metadata on every change).
    pub metrics: Arc<MetricMarks>,
    /// The last look at an exhausted proving step, once taken in this window: at most one per
    /// window (its error rates hold only then); a resume begins a window without one.
    pub look: Option<Looked>,
}

/// A last look the scheduler took (`ExhaustedStep`): when, at which share, on which figures
/// and what it said. Its per-rate figures are recomputed from these with the rollout's gate
/// (`Comparison::last_looks` is a pure function of them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Looked {
    /// When it was taken.
    pub at_ms: u64,
    /// The step's share then.
    pub percent: Percent,
    /// The candidate's figures in the gate's window then.
    pub window: Health,
    /// The baseline's figures then.
    pub baseline: Option<Health>,
    /// The window's settled first runs then (`GateFigures::settled_first_runs`).
    pub settled_first_runs: u64,
    /// What it said: `Worse` (tripped), `NoWorse` (widened) or `Undecided` (paused).
    pub call: Call,
}

impl Looked {
    /// The figures the look judged, as a gate judges them.
    pub fn figures(&self) -> GateFigures {
        GateFigures {
            window: self.window,
            step: self.window,
            baseline: self.baseline,
            percent: self.percent,
            settled_first_runs: self.settled_first_runs,
        }
    }
}

/// What the release (and its baseline) had of each app metric when a gate's window and step
/// began: a value metric's values, a counter's amounts per report (`MetricFigures::gated`).
/// A metric absent from a mark had no values then.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetricMarks {
    /// The release's, at the start of the gate's window.
    pub window: BTreeMap<MetricName, Summary>,
    /// The release's, at the start of the current step.
    pub step: BTreeMap<MetricName, Summary>,
    /// The baseline's, at the start of the gate's window, when it had one.
    pub baseline: Option<BaselineMark>,
}

/// The baseline build and its metric summaries when a gate's window began: a metric gate
/// judges the baseline's values since then, in the same time window as the candidate's, as
/// long as the baseline is still that build (docs/gates.md).
#[derive(Debug, Clone, PartialEq)]
pub struct BaselineMark {
    /// The baseline's version then.
    pub release: Version,
    /// Its summaries then.
    pub metrics: BTreeMap<MetricName, Summary>,
}

/// A release's cumulative figures at one moment: what marks are made of.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    /// Its distinct-device figures.
    pub health: Health,
    /// Its metric summaries.
    pub metrics: BTreeMap<MetricName, Summary>,
}

impl GateMarks {
    /// Marks of a window (and step) that begins now: the release's figures `now`, and the
    /// baseline's, if it has one, with its version.
    pub fn begin(now: Reading, baseline: Option<(Version, Reading)>) -> GateMarks {
        let baseline = baseline.map(|(release, r)| BaselineMark { release, metrics: r.metrics });
        GateMarks {
            window: now.health,
            step: now.health,
            metrics: Arc::new(MetricMarks { window: now.metrics.clone(), step: now.metrics, baseline }),
            look: None,
        }
    }

    /// The same window with a step that begins now.
    pub fn next_step(&self, now: Reading) -> GateMarks {
        let metrics = MetricMarks { step: now.metrics, ..(*self.metrics).clone() };
        GateMarks { window: self.window, step: now.health, metrics: Arc::new(metrics), look: self.look }
    }
}

/// The inputs of an [`AppSnapshot`] before indexing. Releases and rollouts are shared with
/// the snapshot they came from, so a change copies only what it replaces.
pub struct AppParts {
    /// The app's id.
    pub id: AppId,
    /// Its settings.
    pub settings: AppSettings,
    /// Its releases.
    pub releases: Vec<Arc<Release>>,
    /// Its rollouts with their metadata.
    pub rollouts: Vec<(Arc<Rollout>, RolloutMeta)>,
    /// The store revision these parts were read at.
    pub revision: u64,
}

impl AppSnapshot {
    /// Indexes an app; refuses a ladder or catalog that does not hold together.
    pub fn build(parts: AppParts) -> Result<Self, SnapshotError> {
        let ladder = ladder_of(&parts.settings.channels)?;
        // The newest document was verified against its predecessor when it was uploaded; the
        // store is trusted, so it is not verified again on every rebuild.
        let key_document = match parts.settings.key_documents.last() {
            Some(signed) => Some(signed.document.clone()),
            None => {
                let first = TrustedKeys::new(parts.settings.keys.iter().cloned())?;
                (!first.is_empty()).then(|| KeyDocument::first(parts.id.clone(), first)).transpose()?
            }
        };
        let (keys, threshold) = match &key_document {
            Some(d) => (d.keys().clone(), d.threshold()),
            None => (TrustedKeys::default(), Threshold::ONE),
        };
        let mut rollouts = parts.rollouts;
        // Nearly sorted already (the previous snapshot's order plus what changed): one pass.
        rollouts.sort_by(|(a, _), (b, _)| key(a).cmp(&key(b)));
        let catalog =
            Catalog::new(parts.id.clone(), ladder, parts.releases, rollouts.iter().map(|(r, _)| Arc::clone(r)))?;
        Ok(AppSnapshot {
            id: parts.id,
            settings: parts.settings,
            keys,
            threshold,
            key_document,
            catalog,
            rollouts,
            revision: parts.revision,
        })
    }

    /// This app's parts, to be changed and rebuilt.
    pub fn to_parts(&self) -> AppParts {
        AppParts {
            id: self.id.clone(),
            settings: self.settings.clone(),
            releases: self.catalog.shared().map(|(release, _)| Arc::clone(release)).collect(),
            rollouts: self.rollouts.clone(),
            revision: self.revision,
        }
    }

    /// The metadata of a rollout (defaults if unknown).
    pub fn meta_of(&self, v: &Version, ch: &ChannelName) -> RolloutMeta {
        self.rollouts
            .binary_search_by(|(r, _)| key(r).cmp(&(v, ch.as_str())))
            .map_or_else(|_| RolloutMeta::default(), |i| self.rollouts[i].1.clone())
    }

    /// The revision of a rollout (0 if unknown).
    pub fn revision(&self, v: &Version, ch: &ChannelName) -> u64 {
        self.meta_of(v, ch).revision
    }

    /// The wire view of a release with its rollouts and its offer count (from `offers`).
    pub fn release_view(&self, v: &Version, offers: u64) -> Option<ReleaseView> {
        let (release, rollouts) = self.catalog.release(v)?;
        Some(ReleaseView {
            release: ReleaseSpec::from(release),
            rollouts: rollouts.iter().map(|r| self.rollout_view(r)).collect(),
            offers,
        })
    }

    /// The wire view of a rollout.
    pub fn rollout_view(&self, r: &Rollout) -> RolloutView {
        RolloutView {
            channel: r.channel.clone(),
            etag: etag(self.revision(&r.release, &r.channel)),
            rollout: RolloutSpec::from(r),
            arm: r.arm.map(|a| halftone_channels::wire::ArmSlotSpec { start: a.start(), width: a.width() }),
        }
    }

    /// True when the release has at least one rollout that is not halted.
    pub fn is_live(&self, v: &Version) -> bool {
        self.catalog.release(v).is_some_and(|(_, rs)| rs.iter().any(|r| r.state != RolloutState::Halted))
    }
}

/// The order of [`AppSnapshot`]'s rollouts.
fn key(r: &Rollout) -> (&Version, &str) {
    (&r.release, r.channel.as_str())
}

/// The ETag of a rollout revision.
pub fn etag(revision: u64) -> String {
    format!("\"r{revision}\"")
}

/// The ladder of an app's custom channels.
pub fn ladder_of(custom: &[(ChannelName, Rank)]) -> Result<Ladder, LadderError> {
    Ladder::with_custom(custom.iter().cloned())
}

/// What an engineer sets about an app: its name, the release keys it trusts (in the order
/// given) and its custom channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSettings {
    /// The name people read.
    pub display_name: DisplayName,
    /// Trusted release keys, by id.
    pub keys: Vec<(KeyId, PublicKey)>,
    /// Custom channels with their ranks.
    pub channels: Vec<(ChannelName, Rank)>,
    /// Key documents from version 2 on, in order, each verified against its predecessor when
    /// uploaded (`POST /v1/apps/{app}/keys`); version 1 is `keys` with threshold 1.
    pub key_documents: Vec<SignedKeyDocument>,
    /// The app metrics devices may report.
    pub metrics: MetricSet,
    /// CodePush deployment keys, in the order made; changed only through
    /// `/v1/apps/{app}/codepush-keys`, never by an update of the app's body.
    pub codepush_keys: Vec<CodePushKey>,
}

/// A CodePush deployment key and where it routes: a CodePush device that sends it checks in
/// on `channel` as a device of `target` (docs/clients.md, "CodePush").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodePushKey {
    /// The key the app compiles in.
    pub key: DeploymentKey,
    /// A label for people.
    pub name: TokenName,
    /// The channel its devices follow.
    pub channel: ChannelName,
    /// The target its devices are served as (the bundle is published for it).
    pub target: Target,
}

impl AppSnapshot {
    /// The deployment key `key` of this app, if it has it (a scan: an app has a few).
    pub fn codepush_key(&self, key: &str) -> Option<&CodePushKey> {
        self.settings.codepush_keys.iter().find(|k| k.key.as_str() == key)
    }
}

/// Why an app's parts do not make a snapshot.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The custom channels do not make a ladder.
    #[error(transparent)]
    Ladder(#[from] LadderError),
    /// The keys do not make a trusted key set.
    #[error(transparent)]
    Keys(#[from] halftone_channels::ParseError),
    /// The releases and rollouts do not make a catalog.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Everything the request path reads.
#[derive(Default, Clone)]
pub struct Snapshot {
    /// Apps by id.
    pub apps: HashMap<AppId, Arc<AppSnapshot>>,
    /// Tokens by id.
    pub tokens: HashMap<String, Arc<Token>>,
    /// The store revision of the token table.
    pub tokens_revision: u64,
}
