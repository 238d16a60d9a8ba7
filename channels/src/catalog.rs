//! An app's releases and rollouts, indexed for selection: [`Catalog`], and the decision it
//! makes for one check-in: [`Catalog::select`] → [`Decision`].
//!
//! At build time every release is filed, newest first, into one *lane* per (device channel,
//! target) in which it could ever be offered: it has an artifact for the target and a rollout
//! on a channel the device channel sees. Selection then looks up one lane, skips by binary
//! search to the releases newer than the device's version, and walks down until one admits
//! the device. The cost depends on the releases newer than the device that it is not in, not
//! on the size of the catalog.

use std::collections::HashMap;

use crate::explain::{Explanation, ReleaseTrace, Skip, Verdict};
use crate::{
    Admission, AppId, Artifact, ChannelName, CheckIn, Exclusion, Ladder, Release, Rollout, RolloutState, Target,
    Version,
};

/// The most channels (built-in and custom) an app may have.
pub const MAX_CHANNELS: usize = 32;

/// Why a set of releases and rollouts cannot form a catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// Two releases share a version.
    #[error("release {0} appears twice")]
    DuplicateRelease(Version),
    /// A rollout names a release that does not exist.
    #[error("rollout of unknown release {0}")]
    UnknownRelease(Version),
    /// A rollout names a channel the app does not have.
    #[error("release {0} is rolled out on unknown channel {1}")]
    UnknownChannel(Version, ChannelName),
    /// Two rollouts of one release on one channel.
    #[error("release {0} has two rollouts on channel {1}")]
    DuplicateRollout(Version, ChannelName),
    /// More than [`MAX_CHANNELS`] channels.
    #[error("an app has at most {MAX_CHANNELS} channels")]
    TooManyChannels,
}

/// Why a check-in could not be decided at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SelectError {
    /// The device says it is on a channel this app does not have.
    #[error("app {app} has no channel {channel}")]
    UnknownChannel {
        /// The app.
        app: AppId,
        /// The channel the device named.
        channel: ChannelName,
    },
}

/// The answer for one check-in.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision<'c> {
    /// Nothing newer is offered.
    UpToDate,
    /// This update is offered.
    Available(Offer<'c>),
}

/// An offered update.
#[derive(Debug, Clone, PartialEq)]
pub struct Offer<'c> {
    /// The offered release.
    pub release: &'c Release,
    /// Its artifact for the device's target.
    pub artifact: &'c Artifact,
    /// The rollout that let the device in.
    pub rollout: &'c Rollout,
    /// How the device got in.
    pub admission: Admission,
    /// True when this release, or a newer-than-current release the device skips over, is
    /// critical.
    pub critical: bool,
}

struct Entry {
    release: Release,
    /// This release's rollouts, least stable channel first.
    rollouts: Vec<Rollout>,
}

struct Candidate {
    /// Index into `Catalog::entries`.
    entry: u32,
    /// Bit i set: `rollouts[i]` of the entry is on a channel the lane's device channel sees.
    visible: u32,
}

#[derive(Default)]
struct Lane {
    /// Newest first.
    candidates: Vec<Candidate>,
    /// `next_critical[i]`: the first index >= i of a critical release that is still live
    /// (some visible rollout not halted); `candidates.len()` when none. One longer than
    /// `candidates`.
    next_critical: Vec<u32>,
}

/// An app's releases and rollouts, immutable and indexed for [`select`](Catalog::select).
pub struct Catalog {
    app: AppId,
    ladder: Ladder,
    /// Newest first.
    entries: Vec<Entry>,
    lanes: HashMap<ChannelName, HashMap<Target, Lane>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("app", &self.app).field("releases", &self.entries.len()).finish()
    }
}

impl Catalog {
    /// Indexes `releases` and `rollouts` of `app` with channels `ladder`.
    pub fn new(
        app: AppId,
        ladder: Ladder,
        releases: Vec<Release>,
        rollouts: Vec<Rollout>,
    ) -> Result<Self, CatalogError> {
        if ladder.channels().len() > MAX_CHANNELS {
            return Err(CatalogError::TooManyChannels);
        }
        let mut entries: Vec<Entry> =
            releases.into_iter().map(|release| Entry { release, rollouts: Vec::new() }).collect();
        entries.sort_by(|a, b| b.release.version().cmp(a.release.version()));
        if let Some(w) = entries.windows(2).find(|w| w[0].release.version() == w[1].release.version()) {
            return Err(CatalogError::DuplicateRelease(w[0].release.version().clone()));
        }
        for r in rollouts {
            let Some(rank) = ladder.rank(r.channel.as_str()) else {
                return Err(CatalogError::UnknownChannel(r.release, r.channel));
            };
            let i = entries
                .binary_search_by(|e| r.release.cmp(e.release.version()))
                .map_err(|_| CatalogError::UnknownRelease(r.release.clone()))?;
            let e = &mut entries[i];
            if e.rollouts.iter().any(|x| x.channel == r.channel) {
                return Err(CatalogError::DuplicateRollout(r.release, r.channel));
            }
            let at = e.rollouts.partition_point(|x| ladder.rank(x.channel.as_str()).unwrap_or(0) > rank);
            e.rollouts.insert(at, r);
        }

        let mut lanes: HashMap<ChannelName, HashMap<Target, Lane>> = HashMap::new();
        for (device_channel, _) in ladder.channels() {
            let by_target = lanes.entry(device_channel.clone()).or_default();
            for (i, e) in entries.iter().enumerate() {
                let mut visible = 0u32;
                let mut live = false;
                for (j, r) in e.rollouts.iter().enumerate() {
                    if ladder.sees(device_channel.as_str(), r.channel.as_str()) == Some(true) {
                        visible |= 1 << j;
                        live |= r.state != RolloutState::Halted;
                    }
                }
                if visible == 0 {
                    continue;
                }
                for target in e.release.artifacts().keys() {
                    let lane = by_target.entry(target.clone()).or_default();
                    lane.candidates.push(Candidate { entry: i as u32, visible });
                    lane.next_critical.push(u32::from(live && e.release.is_critical()));
                }
            }
            for lane in by_target.values_mut() {
                // Turn the 0/1 flags into "first critical index at or after i".
                let n = lane.candidates.len() as u32;
                lane.next_critical.push(n);
                for i in (0..lane.candidates.len()).rev() {
                    lane.next_critical[i] =
                        if lane.next_critical[i] == 1 { i as u32 } else { lane.next_critical[i + 1] };
                }
            }
        }
        Ok(Catalog { app, ladder, entries, lanes })
    }

    /// The app.
    pub fn app(&self) -> &AppId {
        &self.app
    }

    /// The app's channels.
    pub fn ladder(&self) -> &Ladder {
        &self.ladder
    }

    /// Every release with its rollouts (least stable channel first), newest first.
    pub fn releases(&self) -> impl ExactSizeIterator<Item = (&Release, &[Rollout])> {
        self.entries.iter().map(|e| (&e.release, e.rollouts.as_slice()))
    }

    /// One release with its rollouts.
    pub fn release(&self, version: &Version) -> Option<(&Release, &[Rollout])> {
        let i = self.entries.binary_search_by(|e| version.cmp(e.release.version())).ok()?;
        let e = &self.entries[i];
        Some((&e.release, &e.rollouts))
    }

    /// The highest version in the catalog.
    pub fn newest(&self) -> Option<&Version> {
        self.entries.first().map(|e| e.release.version())
    }

    /// Decides what `c` should be offered: the newest release that is strictly newer than
    /// what it runs, visible on its channel, built for its target, not a stepping stone it
    /// cannot take yet, and in one of its visible rollouts. Pure and deterministic.
    pub fn select(&self, c: &CheckIn) -> Result<Decision<'_>, SelectError> {
        let lanes = self
            .lanes
            .get(c.channel.as_str())
            .ok_or_else(|| SelectError::UnknownChannel { app: self.app.clone(), channel: c.channel.clone() })?;
        let Some(lane) = lanes.get(&c.platform.target) else {
            return Ok(Decision::UpToDate);
        };
        let newer = lane
            .candidates
            .partition_point(|cand| self.entries[cand.entry as usize].release.version() > &c.current_version);
        for (i, cand) in lane.candidates[..newer].iter().enumerate() {
            let e = &self.entries[cand.entry as usize];
            if e.release.min_from_version().is_some_and(|m| c.current_version < *m) {
                continue;
            }
            for (j, rollout) in e.rollouts.iter().enumerate() {
                if cand.visible & (1 << j) == 0 {
                    continue;
                }
                if let Ok(admission) = rollout.evaluate(c) {
                    let skipped_critical = (lane.next_critical[i + 1] as usize) < newer;
                    return Ok(Decision::Available(Offer {
                        release: &e.release,
                        artifact: e
                            .release
                            .artifact(&c.platform.target)
                            .expect("lanes hold releases built for their target"),
                        rollout,
                        admission,
                        critical: e.release.is_critical() || skipped_critical,
                    }));
                }
            }
        }
        Ok(Decision::UpToDate)
    }

    /// The same evaluation as [`select`](Catalog::select), with every release's verdict:
    /// why it was offered or skipped.
    pub fn explain(&self, c: &CheckIn) -> Result<Explanation, SelectError> {
        let decision = self.select(c)?;
        let offered = match &decision {
            Decision::Available(o) => Some((o.release.version().clone(), o.critical)),
            Decision::UpToDate => None,
        };
        let visible = self.ladder.visible_from(c.channel.as_str());
        let mut traces = Vec::with_capacity(self.entries.len());
        for e in &self.entries {
            let v = e.release.version();
            let verdict = self.verdict(e, c, &visible, offered.as_ref().map(|(o, _)| o));
            traces.push(ReleaseTrace { version: v.clone(), verdict });
        }
        Ok(Explanation {
            offered: offered.as_ref().map(|(v, _)| v.clone()),
            critical: offered.is_some_and(|(_, c)| c),
            releases: traces,
        })
    }

    fn verdict(&self, e: &Entry, c: &CheckIn, visible: &[&ChannelName], offered: Option<&Version>) -> Verdict {
        let v = e.release.version();
        if *v <= c.current_version {
            return Verdict::Skipped(vec![Skip::NotNewer { current: c.current_version.clone() }]);
        }
        if let Some(o) = offered.filter(|o| *o > v) {
            return Verdict::Skipped(vec![Skip::NewerOffered { offered: o.clone() }]);
        }
        if e.release.artifact(&c.platform.target).is_none() {
            return Verdict::Skipped(vec![Skip::NoArtifact { target: c.platform.target.clone() }]);
        }
        let on_visible: Vec<&Rollout> = e.rollouts.iter().filter(|r| visible.contains(&&r.channel)).collect();
        if on_visible.is_empty() {
            return Verdict::Skipped(vec![Skip::NotOnVisibleChannel {
                device_channel: c.channel.clone(),
                rolled_out_on: e.rollouts.iter().map(|r| r.channel.clone()).collect(),
            }]);
        }
        if let Some(m) = e.release.min_from_version().filter(|m| c.current_version < **m) {
            return Verdict::Skipped(vec![Skip::SteppingStone {
                min_from: m.clone(),
                current: c.current_version.clone(),
            }]);
        }
        let mut skips = Vec::new();
        for r in on_visible {
            match r.evaluate(c) {
                Ok(admission) => return Verdict::Offered { channel: r.channel.clone(), admission },
                Err(x) => skips.push(match x {
                    Exclusion::Halted => Skip::Halted { channel: r.channel.clone() },
                    Exclusion::Denied => Skip::Denied { channel: r.channel.clone() },
                    Exclusion::Rule(i) => Skip::RuleFailed {
                        channel: r.channel.clone(),
                        rule: r.rules[i].to_string(),
                        observed: r.rules[i].observed(c),
                    },
                    Exclusion::Outside { bucket, percent } => {
                        Skip::OutsideRollout { channel: r.channel.clone(), bucket, percent }
                    }
                }),
            }
        }
        Verdict::Skipped(skips)
    }
}
