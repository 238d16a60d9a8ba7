//! The immutable in-memory picture of the catalog that every check-in reads: [`Snapshot`]
//! (all apps and tokens) and [`AppSnapshot`] (one app's settings, keys and indexed
//! [`Catalog`]). A committed change builds a new snapshot and swaps it in atomically
//! (arc-swap); readers never lock and never touch disk.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use halftone_channels::wire::{ChannelSpec, ReleaseSpec, ReleaseView, RolloutView};
use halftone_channels::{AppId, Catalog, ChannelName, Ladder, Release, Rollout, RolloutState, TrustedKeys, Version};

use crate::store::{AppRecord, TokenRecord};

/// One app, ready to answer check-ins.
pub struct AppSnapshot {
    /// The app's id.
    pub id: AppId,
    /// Its stored settings.
    pub record: AppRecord,
    /// Its trusted keys.
    pub keys: TrustedKeys,
    /// Its releases and rollouts, indexed.
    pub catalog: Catalog,
    /// The revision of each rollout, by (version, channel): the ETag.
    pub revisions: HashMap<(Version, ChannelName), u64>,
    /// Offers made since start, by release; carried over from snapshot to snapshot.
    pub offers: HashMap<Version, Arc<AtomicU64>>,
}

/// The inputs of an [`AppSnapshot`] before indexing.
pub struct AppParts {
    /// The app's id.
    pub id: AppId,
    /// Its settings.
    pub record: AppRecord,
    /// Its releases.
    pub releases: Vec<Release>,
    /// Its rollouts with their revisions.
    pub rollouts: Vec<(Rollout, u64)>,
}

impl AppSnapshot {
    /// Indexes an app. `previous` lends its offer counters so counts survive changes.
    pub fn build(parts: AppParts, previous: Option<&AppSnapshot>) -> anyhow::Result<Self> {
        let ladder = ladder_of(&parts.record.channels)?;
        let keys = TrustedKeys::new(parts.record.keys.iter().map(|k| (k.id.clone(), k.public_key)));
        let offers = parts
            .releases
            .iter()
            .map(|r| {
                let v = r.version().clone();
                let counter = previous.and_then(|p| p.offers.get(&v).cloned()).unwrap_or_default();
                (v, counter)
            })
            .collect();
        let revisions = parts.rollouts.iter().map(|(r, rev)| ((r.release.clone(), r.channel.clone()), *rev)).collect();
        let catalog = Catalog::new(
            parts.id.clone(),
            ladder,
            parts.releases,
            parts.rollouts.into_iter().map(|(r, _)| r).collect(),
        )?;
        Ok(AppSnapshot { id: parts.id, record: parts.record, keys, catalog, revisions, offers })
    }

    /// This app's parts, to be changed and rebuilt.
    pub fn to_parts(&self) -> AppParts {
        let mut releases = Vec::new();
        let mut rollouts = Vec::new();
        for (release, rs) in self.catalog.releases() {
            releases.push(release.clone());
            for r in rs {
                rollouts.push((r.clone(), self.revision(&r.release, &r.channel)));
            }
        }
        AppParts { id: self.id.clone(), record: self.record.clone(), releases, rollouts }
    }

    /// The revision of a rollout (0 if unknown).
    pub fn revision(&self, v: &Version, ch: &ChannelName) -> u64 {
        self.revisions.get(&(v.clone(), ch.clone())).copied().unwrap_or(0)
    }

    /// The wire view of a release with its rollouts and offer count.
    pub fn release_view(&self, v: &Version) -> Option<ReleaseView> {
        let (release, rollouts) = self.catalog.release(v)?;
        Some(ReleaseView {
            release: ReleaseSpec::from(release),
            rollouts: rollouts.iter().map(|r| self.rollout_view(r)).collect(),
            offers: self.offers.get(v).map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed)),
        })
    }

    /// The wire view of a rollout.
    pub fn rollout_view(&self, r: &Rollout) -> RolloutView {
        RolloutView {
            channel: r.channel.clone(),
            etag: etag(self.revision(&r.release, &r.channel)),
            rollout: r.to_spec(),
        }
    }

    /// True when the release has at least one rollout that is not halted.
    pub fn is_live(&self, v: &Version) -> bool {
        self.catalog.release(v).is_some_and(|(_, rs)| rs.iter().any(|r| r.state != RolloutState::Halted))
    }
}

/// The ETag of a rollout revision.
pub fn etag(revision: u64) -> String {
    format!("\"r{revision}\"")
}

/// The ladder of an app's custom channels.
pub fn ladder_of(custom: &[ChannelSpec]) -> anyhow::Result<Ladder> {
    Ok(Ladder::with_custom(custom.iter().map(|c| (c.name.clone(), c.rank)))?)
}

/// Everything the request path reads.
#[derive(Default, Clone)]
pub struct Snapshot {
    /// Apps by id.
    pub apps: HashMap<AppId, Arc<AppSnapshot>>,
    /// Tokens by id.
    pub tokens: HashMap<String, Arc<TokenRecord>>,
}
