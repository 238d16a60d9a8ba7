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
use std::sync::Arc;

use crate::explain::{Explanation, ReleaseTrace, Skip, Verdict};
use crate::{
    Admission, AppId, Artifact, ChannelName, CheckIn, Exclusion, Experiment, Ladder, Percent, Rank, Release, Rollout,
    RolloutState, Target, Version,
};

/// The most channels (built-in and custom) an app may have.
pub const MAX_CHANNELS: usize = 32;

/// One bit per rollout of a release, and a release has at most one rollout per channel.
type ChannelMask = u32;
const _: () = assert!(
    MAX_CHANNELS <= ChannelMask::BITS as usize,
    "a release's rollouts are indexed by a ChannelMask: widen it before raising MAX_CHANNELS"
);

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
    /// Arms on one channel that cannot run together (two experiments, overlapping slots).
    #[error("{0}")]
    Arms(String),
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

/// What [`Catalog::select_noting_release`] found for one check-in.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection<'c> {
    /// The answer.
    pub decision: Decision<'c>,
    /// The catalog's own copy of the version the device runs, when that version is one of its
    /// releases (adoption counts only released versions); `None` for a build it never had.
    pub running: Option<&'c Version>,
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

/// Releases and rollouts are shared (`Arc`) so that a change to one rollout re-indexes the
/// app without copying every other release: [`Catalog::shared`] hands them back as they are.
struct Entry {
    release: Arc<Release>,
    /// This release's rollouts, least stable channel first.
    rollouts: Vec<Arc<Rollout>>,
}

struct Candidate {
    /// Index into `Catalog::entries`.
    entry: u32,
    /// Bit i set: `rollouts[i]` of the entry is on a channel the lane's device channel sees.
    visible: ChannelMask,
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
    /// `entries[i]`'s version, contiguous: the binary search for "newer than the device"
    /// reads this array only, instead of following a pointer per probe.
    versions: Vec<Version>,
    lanes: HashMap<ChannelName, HashMap<Target, Lane>>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("app", &self.app).field("releases", &self.entries.len()).finish()
    }
}

impl Catalog {
    /// Indexes `releases` and `rollouts` of `app` with channels `ladder`. Both may be given
    /// owned or already shared (`Arc`), as [`shared`](Catalog::shared) returns them.
    pub fn new(
        app: AppId,
        ladder: Ladder,
        releases: impl IntoIterator<Item = impl Into<Arc<Release>>>,
        rollouts: impl IntoIterator<Item = impl Into<Arc<Rollout>>>,
    ) -> Result<Self, CatalogError> {
        if ladder.channels().len() > MAX_CHANNELS {
            return Err(CatalogError::TooManyChannels);
        }
        let mut entries: Vec<Entry> =
            releases.into_iter().map(|release| Entry { release: release.into(), rollouts: Vec::new() }).collect();
        // Usually already in order (from `shared`), which the sort checks in one pass.
        entries.sort_by(|a, b| b.release.version().cmp(a.release.version()));
        if let Some(w) = entries.windows(2).find(|w| w[0].release.version() == w[1].release.version()) {
            return Err(CatalogError::DuplicateRelease(w[0].release.version().clone()));
        }
        for r in rollouts {
            let r: Arc<Rollout> = r.into();
            let Some(rank) = ladder.rank(r.channel.as_str()) else {
                return Err(CatalogError::UnknownChannel(r.release.clone(), r.channel.clone()));
            };
            let i = entries
                .binary_search_by(|e| r.release.cmp(e.release.version()))
                .map_err(|_| CatalogError::UnknownRelease(r.release.clone()))?;
            let e = &mut entries[i];
            if e.rollouts.iter().any(|x| x.channel == r.channel) {
                return Err(CatalogError::DuplicateRollout(r.release.clone(), r.channel.clone()));
            }
            let at = e.rollouts.partition_point(|x| ladder.rank(x.channel.as_str()).unwrap_or(0) > rank);
            e.rollouts.insert(at, r);
        }

        for (channel, _) in ladder.channels() {
            let arms = crate::arms::running_arms(entries.iter().flat_map(|e| e.rollouts.iter().map(|r| &**r)), channel);
            crate::arms::check_arms(&arms).map_err(CatalogError::Arms)?;
        }

        // Lanes are built in vectors indexed by device channel and target (an app has a few
        // of each), so filing a release costs no hashing; they become maps once filled.
        let channels: Vec<(&ChannelName, Rank)> = ladder.channels();
        let mut targets: Vec<&Target> = Vec::new();
        let mut filling: Vec<Vec<Lane>> = channels.iter().map(|_| Vec::new()).collect();
        let mut at: Vec<usize> = Vec::new();
        let mut before: Vec<usize> = Vec::new();
        let mut ranks: Vec<Rank> = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            // Releases are usually built for the same targets as the one before: try its
            // target at the same position first.
            std::mem::swap(&mut at, &mut before);
            at.clear();
            for (k, target) in e.release.artifacts().keys().enumerate() {
                let guess = before.get(k).copied().filter(|&t| targets[t] == target);
                let t = match guess.or_else(|| targets.iter().position(|t| *t == target)) {
                    Some(t) => t,
                    None => {
                        targets.push(target);
                        filling.iter_mut().for_each(|lanes| lanes.push(Lane::default()));
                        targets.len() - 1
                    }
                };
                at.push(t);
            }
            ranks.clear();
            ranks.extend(e.rollouts.iter().map(|r| ladder.rank(r.channel.as_str()).expect("checked above")));
            let critical = e.release.is_critical();
            for ((_, device_rank), lanes) in channels.iter().zip(&mut filling) {
                let mut visible: ChannelMask = 0;
                let mut live = false;
                for (j, (r, rank)) in e.rollouts.iter().zip(&ranks).enumerate() {
                    if rank <= device_rank {
                        visible |= 1 << j;
                        live |= r.state != RolloutState::Halted;
                    }
                }
                if visible == 0 {
                    continue;
                }
                for &t in &at {
                    lanes[t].candidates.push(Candidate { entry: i as u32, visible });
                    lanes[t].next_critical.push(u32::from(live && critical));
                }
            }
        }
        let mut lanes: HashMap<ChannelName, HashMap<Target, Lane>> = HashMap::with_capacity(channels.len());
        for ((channel, _), filled) in channels.iter().zip(filling) {
            let mut by_target = HashMap::with_capacity(targets.len());
            for (target, mut lane) in targets.iter().zip(filled) {
                if lane.candidates.is_empty() {
                    continue;
                }
                // Turn the 0/1 flags into "first critical index at or after i".
                let n = lane.candidates.len() as u32;
                lane.next_critical.push(n);
                for i in (0..lane.candidates.len()).rev() {
                    lane.next_critical[i] =
                        if lane.next_critical[i] == 1 { i as u32 } else { lane.next_critical[i + 1] };
                }
                by_target.insert((*target).clone(), lane);
            }
            lanes.insert((*channel).clone(), by_target);
        }
        let versions = entries.iter().map(|e| e.release.version().clone()).collect();
        Ok(Catalog { app, ladder, entries, versions, lanes })
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
    pub fn releases(&self) -> impl ExactSizeIterator<Item = (&Release, &[Arc<Rollout>])> {
        self.entries.iter().map(|e| (&*e.release, e.rollouts.as_slice()))
    }

    /// Every release with its rollouts, newest first, as shared handles: the inputs of a new
    /// catalog that differs from this one in a few places, without copying the rest.
    pub fn shared(&self) -> impl ExactSizeIterator<Item = (&Arc<Release>, &[Arc<Rollout>])> {
        self.entries.iter().map(|e| (&e.release, e.rollouts.as_slice()))
    }

    /// One release with its rollouts.
    pub fn release(&self, version: &Version) -> Option<(&Release, &[Arc<Rollout>])> {
        let i = self.versions.binary_search_by(|v| version.cmp(v)).ok()?;
        let e = &self.entries[i];
        Some((&*e.release, &e.rollouts))
    }

    /// True when `version` is a release of the app.
    pub fn contains(&self, version: &Version) -> bool {
        self.versions.binary_search_by(|v| version.cmp(v)).is_ok()
    }

    /// The rebuild that rolled `version` back, if one did: a release whose `rebuild_of` is
    /// below `version` while it is above it (a rollback re-issues older code under a higher
    /// version). Widening or resuming a rolled-back release offers the bad build again.
    pub fn rolled_back_by(&self, version: &Version) -> Option<&Version> {
        self.entries.iter().map(|e| &e.release).find_map(|r| {
            let good = r.rebuild_of()?;
            (good < version && version < r.version()).then(|| r.version())
        })
    }

    /// The build the audience of `version`'s rollout on `channel` runs now, which a comparing
    /// gate judges it against: the newest older release whose rollout on the same channel
    /// is not halted and serves everybody; failing that, the newest older release with a
    /// rollout on that channel that is not halted. `None` for a channel's first release.
    pub fn baseline(&self, version: &Version, channel: &ChannelName) -> Option<&Version> {
        let older = || {
            self.entries.iter().filter(|e| e.release.version() < version).filter_map(|e| {
                let r = e.rollouts.iter().find(|r| &r.channel == channel && r.state != RolloutState::Halted)?;
                Some((e.release.version(), r))
            })
        };
        older().find(|(_, r)| r.percent == Percent::FULL).or_else(|| older().next()).map(|(v, _)| v)
    }

    /// The running A/B/N experiment on `channel`, if any: its arms (rollouts with a slot that
    /// is not promoted, halted ones included), by slot. [`Catalog::new`] made sure they share
    /// one salt and their slots do not overlap.
    pub fn experiment(&self, channel: &ChannelName) -> Option<Experiment<'_>> {
        let arms =
            crate::arms::running_arms(self.entries.iter().flat_map(|e| e.rollouts.iter().map(|r| &**r)), channel);
        let (first, _) = arms.first()?;
        Some(Experiment { channel: channel.clone(), salt: &first.salt, arms: arms.iter().map(|(r, _)| *r).collect() })
    }

    /// The highest version in the catalog.
    pub fn newest(&self) -> Option<&Version> {
        self.entries.first().map(|e| e.release.version())
    }

    /// Decides what `c` should be offered: the newest release that is strictly newer than
    /// what it runs, visible on its channel, built for its target, not a stepping stone it
    /// cannot take yet, and in one of its visible rollouts. Pure and deterministic.
    pub fn select(&self, c: &CheckIn) -> Result<Decision<'_>, SelectError> {
        self.select_noting_release(c).map(|s| s.decision)
    }

    /// [`select`](Catalog::select), and which release of this catalog the device runs, if
    /// any (one search answers both).
    pub fn select_noting_release(&self, c: &CheckIn) -> Result<Selection<'_>, SelectError> {
        let lanes = self
            .lanes
            .get(c.channel.as_str())
            .ok_or_else(|| SelectError::UnknownChannel { app: self.app.clone(), channel: c.channel.clone() })?;
        // Entries are newest first and lanes keep their order, so the candidates newer than the
        // device are those whose entry comes before the first entry at or below its version.
        let first_not_newer = self.versions.partition_point(|v| *v > c.current_version);
        let running = self.versions.get(first_not_newer).filter(|v| **v == c.current_version);
        let Some(lane) = lanes.get(&c.platform.target) else {
            return Ok(Selection { decision: Decision::UpToDate, running });
        };
        let first_not_newer = first_not_newer as u32;
        let newer = lane.candidates.partition_point(|cand| cand.entry < first_not_newer);
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
                    let offer = Decision::Available(Offer {
                        release: &e.release,
                        artifact: e
                            .release
                            .artifact(&c.platform.target)
                            .expect("lanes hold releases built for their target"),
                        rollout,
                        admission,
                        critical: e.release.is_critical() || skipped_critical,
                    });
                    return Ok(Selection { decision: offer, running });
                }
            }
        }
        Ok(Selection { decision: Decision::UpToDate, running })
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
        let on_visible: Vec<&Arc<Rollout>> = e.rollouts.iter().filter(|r| visible.contains(&&r.channel)).collect();
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
                    Exclusion::OutsideArm { bucket, slot, percent } => {
                        Skip::OutsideArm { channel: r.channel.clone(), bucket, slot, percent }
                    }
                }),
            }
        }
        Verdict::Skipped(skips)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{app, catalog, checkin, offered, release, rollout};
    use crate::{CheckKind, IdList, ListedId, Platform, Rank, ReleaseParts, Rule, UserId, bucket};

    /// Each release's reasons as (code, sentence), newest first: a skip as the domain words it;
    /// an offer as `offered` and its channel (the typed `Admission` is checked on its own, and
    /// its sentence belongs to the wire, tested there).
    fn reasons(x: &Explanation) -> Vec<(String, Vec<(String, String)>)> {
        let reasons = |v: &Verdict| match v {
            Verdict::Offered { channel, .. } => vec![("offered".to_owned(), format!("on {channel}"))],
            Verdict::Skipped(skips) => skips.iter().map(|s| (s.code().to_owned(), s.to_string())).collect(),
        };
        x.releases.iter().map(|t| (t.version.to_string(), reasons(&t.verdict))).collect()
    }

    /// Selects for `c` and compares the answer with `expected`: `"none"`, `"1.2.0"` or
    /// `"1.2.0 critical"`. Every answer must also keep the invariants: `explain` agrees, exactly
    /// one release is marked offered (the same one), the offer is newer than what the device
    /// runs, and its artifact and rollout belong to it and to the device.
    #[track_caller]
    fn check(cat: &Catalog, c: &CheckIn, expected: &str) {
        let got = match cat.select(c).unwrap() {
            Decision::UpToDate => "none".to_owned(),
            Decision::Available(o) => {
                assert!(*o.release.version() > c.current_version, "offer {o:?} is not newer than {c:?}");
                assert_eq!(Some(o.artifact), o.release.artifact(&c.platform.target));
                assert_eq!(o.rollout.release, *o.release.version());
                assert_eq!(cat.ladder().sees(c.channel.as_str(), o.rollout.channel.as_str()), Some(true));
                format!("{}{}", o.release.version(), if o.critical { " critical" } else { "" })
            }
        };
        assert_eq!(got, expected, "select for {} at {} on {}", c.device_id, c.current_version, c.channel);
        assert_eq!(offered(cat, c), expected.trim_end_matches(" critical"));
        let x = cat.explain(c).unwrap();
        let explained = match &x.offered {
            None => "none".to_owned(),
            Some(v) => format!("{v}{}", if x.critical { " critical" } else { "" }),
        };
        assert_eq!(explained, expected, "explain disagrees with select: {x:#?}");
        let marked: Vec<&Version> =
            x.releases.iter().filter(|t| matches!(t.verdict, Verdict::Offered { .. })).map(|t| &t.version).collect();
        assert_eq!(marked, x.offered.iter().collect::<Vec<_>>(), "{x:#?}");
        assert_eq!(x.releases.len(), cat.releases().len());
    }

    /// Check-in edits, so a table row reads as one line.
    trait Edit: Sized {
        fn on(self, channel: &str) -> Self;
        fn target(self, os: &str, arch: &str) -> Self;
        fn interactive(self) -> Self;
        fn user(self, id: &str) -> Self;
        fn os_version(self, v: &str) -> Self;
    }

    impl Edit for CheckIn {
        fn on(mut self, channel: &str) -> Self {
            self.channel = channel.parse().unwrap();
            self
        }
        fn target(mut self, os: &str, arch: &str) -> Self {
            self.platform = Platform { target: crate::test_support::target(os, arch), ..self.platform };
            self
        }
        fn interactive(mut self) -> Self {
            self.kind = CheckKind::Interactive;
            self
        }
        fn user(mut self, id: &str) -> Self {
            self.user_id = Some(UserId::parse(id).unwrap());
            self
        }
        fn os_version(mut self, v: &str) -> Self {
            self.platform.os_version = Some(v.parse().unwrap());
            self
        }
    }

    /// The bucket of `key` in a rollout of `version` with the default salt.
    fn bucket_in(version: &str, key: &str) -> u16 {
        bucket(&format!("notes:{version}"), key).get()
    }

    /// The first device id `dev-N` that satisfies `pred`.
    fn device(pred: impl Fn(&str) -> bool) -> String {
        (0..100_000).map(|n| format!("dev-{n}")).find(|d| pred(d)).expect("some device matches")
    }

    fn critical(p: ReleaseParts) -> ReleaseParts {
        ReleaseParts { critical: true, ..p }
    }

    fn min_from(p: ReleaseParts, v: &str) -> ReleaseParts {
        ReleaseParts { min_from_version: Some(v.parse().unwrap()), ..p }
    }

    fn with(mut r: Rollout, edit: impl FnOnce(&mut Rollout)) -> Rollout {
        edit(&mut r);
        r
    }

    fn ids(ids: &[&str]) -> IdList {
        IdList::new(ids.iter().map(|s| ListedId::parse(s).unwrap())).unwrap()
    }

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap()
    }

    fn ch(s: &str) -> ChannelName {
        s.parse().unwrap()
    }

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn pct(bp: u16) -> crate::Percent {
        crate::Percent::from_basis_points(bp).unwrap()
    }

    fn releases(parts: Vec<ReleaseParts>) -> Vec<Release> {
        parts.into_iter().map(|p| Release::new(p).unwrap()).collect()
    }

    #[test]
    fn selection_notes_whether_the_device_runs_a_release() {
        let cat = catalog(
            vec![release("1.1.0", &[]), release("1.2.0", &[]), release("1.3.0", &[("windows", "x86_64")])],
            vec![rollout("1.1.0", "stable", 10_000), rollout("1.2.0", "stable", 0), rollout("1.3.0", "stable", 10_000)],
        );
        let noted = |version: &str, target: (&str, &str)| {
            let c = checkin("dev-1", version).target(target.0, target.1);
            let selection = cat.select_noting_release(&c).unwrap();
            assert_eq!(selection.decision, cat.select(&c).unwrap());
            if let Some(running) = selection.running {
                assert_eq!(running.to_string(), version);
            }
            (selection.running.is_some(), cat.contains(&version.parse().unwrap()))
        };
        for (version, target, expected) in [
            ("1.1.0", ("linux", "x86_64"), true),
            ("1.2.0", ("linux", "x86_64"), true),
            ("1.3.0", ("linux", "x86_64"), true),
            // No lane for this target at all: still known.
            ("1.1.0", ("macos", "aarch64"), true),
            ("1.0.0", ("linux", "x86_64"), false),
            ("1.1.5", ("linux", "x86_64"), false),
            ("1.3.0-rc.1", ("linux", "x86_64"), false),
            ("9.0.0", ("windows", "x86_64"), false),
        ] {
            assert_eq!(noted(version, target), (expected, expected), "{version} on {target:?}");
        }
    }

    #[test]
    fn a_channel_sees_itself_and_every_more_stable_channel() {
        let cat = catalog(
            vec![release("1.1.0", &[]), release("1.2.0", &[]), release("1.3.0", &[])],
            vec![
                rollout("1.1.0", "stable", 10_000),
                rollout("1.2.0", "beta", 10_000),
                rollout("1.3.0", "unstable", 10_000),
            ],
        );
        for (channel, current, expected) in [
            ("stable", "1.0.0", "1.1.0"),
            ("beta", "1.0.0", "1.2.0"),
            ("unstable", "1.0.0", "1.3.0"),
            // Ahead of stable, a beta device still gets the beta release.
            ("beta", "1.1.5", "1.2.0"),
            ("stable", "1.1.0", "none"),
            ("beta", "1.2.0", "none"),
            ("unstable", "1.3.0", "none"),
        ] {
            check(&cat, &checkin("d1", current).on(channel), expected);
        }
        // An unstable device takes a stable build that is newer than every unstable one.
        let cat = catalog(
            vec![release("2.0.0-beta.1", &[]), release("2.0.0", &[])],
            vec![rollout("2.0.0-beta.1", "unstable", 10_000), rollout("2.0.0", "stable", 10_000)],
        );
        check(&cat, &checkin("d1", "1.0.0").on("unstable"), "2.0.0");
        check(&cat, &checkin("d1", "2.0.0-beta.1").on("unstable"), "2.0.0");
        check(&cat, &checkin("d1", "2.0.0-beta.1").on("stable"), "2.0.0");
    }

    #[test]
    fn custom_channels_see_by_rank() {
        let ladder = Ladder::with_custom([(ch("lts"), 50 as Rank), (ch("internal"), 250)]).unwrap();
        let cat = Catalog::new(
            app(),
            ladder,
            releases(vec![
                release("1.0.5", &[]),
                release("1.1.0", &[]),
                release("1.2.0", &[]),
                release("1.4.0", &[]),
                release("1.5.0", &[]),
            ]),
            vec![
                rollout("1.0.5", "lts", 10_000),
                rollout("1.1.0", "stable", 10_000),
                rollout("1.2.0", "beta", 10_000),
                rollout("1.4.0", "internal", 10_000),
                rollout("1.5.0", "unstable", 10_000),
            ],
        )
        .unwrap();
        for (channel, expected) in
            [("lts", "1.0.5"), ("stable", "1.1.0"), ("beta", "1.2.0"), ("internal", "1.4.0"), ("unstable", "1.5.0")]
        {
            check(&cat, &checkin("d1", "1.0.0").on(channel), expected);
        }
        // Below the newest, a custom channel still sees what is more stable than it.
        check(&cat, &checkin("d1", "1.4.0").on("unstable"), "1.5.0");
        check(&cat, &checkin("d1", "1.2.0").on("internal"), "1.4.0");
        check(&cat, &checkin("d1", "1.1.0").on("lts"), "none");
        check(&cat, &checkin("d1", "1.0.5").on("stable"), "1.1.0");
    }

    #[test]
    fn only_releases_built_for_the_device_are_offered() {
        let cat = catalog(
            vec![
                release("1.1.0", &[("linux", "x86_64"), ("linux", "aarch64")]),
                release("1.2.0", &[("windows", "x86_64")]),
                release("1.3.0", &[("linux", "aarch64")]),
            ],
            vec![
                rollout("1.1.0", "stable", 10_000),
                rollout("1.2.0", "stable", 10_000),
                rollout("1.3.0", "stable", 10_000),
            ],
        );
        for (os, arch, expected) in [
            ("linux", "x86_64", "1.1.0"),
            ("linux", "aarch64", "1.3.0"),
            ("windows", "x86_64", "1.2.0"),
            ("windows", "aarch64", "none"),
            ("macos", "aarch64", "none"),
        ] {
            let c = checkin("d1", "1.0.0").target(os, arch);
            check(&cat, &c, expected);
            // The offer carries the artifact for exactly this target.
            if let Decision::Available(o) = cat.select(&c).unwrap() {
                assert_eq!(o.release.artifacts().iter().find(|(_, a)| *a == o.artifact).unwrap().0, &c.platform.target);
            }
        }
    }

    #[test]
    fn stepping_stones_make_older_devices_take_an_older_release_first() {
        let cat = catalog(
            vec![release("1.5.0", &[]), min_from(release("2.0.0", &[]), "1.5.0"), release("1.2.0", &[])],
            vec![
                rollout("1.2.0", "stable", 10_000),
                rollout("1.5.0", "stable", 10_000),
                rollout("2.0.0", "stable", 10_000),
            ],
        );
        for (current, expected) in [
            ("1.0.0", "1.5.0"),
            ("1.2.0", "1.5.0"),
            ("1.4.9", "1.5.0"),
            ("1.5.0", "2.0.0"),
            ("1.5.0-rc.1", "1.5.0"),
            ("1.7.0", "2.0.0"),
            ("2.0.0", "none"),
        ] {
            check(&cat, &checkin("d1", current), expected);
        }
        // With no older release to step through, the device is up to date rather than jumping.
        let cat = catalog(vec![min_from(release("2.0.0", &[]), "1.5.0")], vec![rollout("2.0.0", "stable", 10_000)]);
        check(&cat, &checkin("d1", "1.0.0"), "none");
        check(&cat, &checkin("d1", "1.5.0"), "2.0.0");
    }

    #[test]
    fn an_offer_is_critical_when_it_or_a_release_it_skips_over_is() {
        let cat = catalog(
            vec![
                critical(release("1.1.0", &[])),
                release("1.2.0", &[]),
                critical(release("1.3.0", &[])),
                release("1.4.0", &[]),
            ],
            vec![
                rollout("1.1.0", "stable", 10_000),
                rollout("1.2.0", "stable", 10_000),
                rollout("1.3.0", "stable", 10_000),
                rollout("1.4.0", "stable", 10_000),
            ],
        );
        for (current, expected) in [
            ("1.0.0", "1.4.0 critical"),
            ("1.1.0", "1.4.0 critical"),
            ("1.2.0", "1.4.0 critical"),
            ("1.3.0", "1.4.0"),
            ("1.4.0", "none"),
        ] {
            check(&cat, &checkin("d1", current), expected);
        }

        // Only releases between the running and the offered version count: a newer critical
        // release the device is not offered does not make the offer critical.
        let d = device(|d| bucket_in("1.3.0", d) >= 1000);
        let cat = catalog(
            vec![release("1.2.0", &[]), critical(release("1.3.0", &[]))],
            vec![rollout("1.2.0", "stable", 10_000), rollout("1.3.0", "stable", 1000)],
        );
        check(&cat, &checkin(&d, "1.0.0"), "1.2.0");
        let inside = device(|d| bucket_in("1.3.0", d) < 1000);
        check(&cat, &checkin(&inside, "1.0.0"), "1.3.0 critical");

        // A critical release the device skips over counts even when the device was outside its
        // rollout or could not take it (stepping stone): the offer contains its fix.
        let cat = catalog(
            vec![critical(min_from(release("1.1.0", &[]), "1.0.5")), release("1.2.0", &[])],
            vec![rollout("1.1.0", "stable", 0), rollout("1.2.0", "stable", 10_000)],
        );
        check(&cat, &checkin("d1", "1.0.0"), "1.2.0 critical");

        // A critical release the device could never have seen does not count: another channel,
        // another platform, or halted everywhere the device looks.
        let cat = catalog(
            vec![
                critical(release("1.1.0", &[])),
                critical(release("1.2.0", &[("windows", "x86_64")])),
                critical(release("1.3.0", &[])),
                release("1.4.0", &[]),
            ],
            vec![
                rollout("1.1.0", "beta", 10_000),
                rollout("1.2.0", "stable", 10_000),
                with(rollout("1.3.0", "stable", 10_000), |r| r.state = RolloutState::Halted),
                rollout("1.4.0", "stable", 10_000),
            ],
        );
        check(&cat, &checkin("d1", "1.0.0"), "1.4.0");
        check(&cat, &checkin("d1", "1.0.0").on("beta"), "1.4.0 critical");
        // The windows-only critical release is the offer itself on windows.
        check(&cat, &checkin("d1", "1.0.0").target("windows", "x86_64"), "1.2.0 critical");
        check(&cat, &checkin("d1", "1.2.0").target("windows", "x86_64"), "none");
    }

    #[test]
    fn halted_rollouts_are_offered_to_nobody_and_paused_ones_keep_serving() {
        let allowed = "tester-1";
        let build = |state| {
            catalog(
                vec![release("1.1.0", &[]), release("1.2.0", &[])],
                vec![
                    rollout("1.1.0", "stable", 10_000),
                    with(rollout("1.2.0", "stable", 10_000), |r| {
                        r.state = state;
                        r.allow = ids(&[allowed]);
                        r.interactive_bypass = true;
                    }),
                ],
            )
        };
        let (active, paused, halted) =
            (build(RolloutState::Active), build(RolloutState::Paused), build(RolloutState::Halted));
        for c in [checkin("d1", "1.0.0"), checkin(allowed, "1.0.0"), checkin("d1", "1.0.0").interactive()] {
            check(&active, &c, "1.2.0");
            check(&paused, &c, "1.2.0");
            check(&halted, &c, "1.1.0");
        }
        check(&halted, &checkin("d1", "1.1.0"), "none");
    }

    #[test]
    fn allow_list_skips_the_percentage_and_deny_list_wins() {
        let outside = device(|d| bucket_in("1.2.0", d) >= 1000);
        let inside = device(|d| bucket_in("1.2.0", d) < 1000);
        let cat = catalog(
            vec![release("1.1.0", &[]), release("1.2.0", &[])],
            vec![
                rollout("1.1.0", "stable", 10_000),
                with(rollout("1.2.0", "stable", 1000), |r| {
                    r.allow = ids(&[&outside, "alice", "both"]);
                    r.deny = ids(&[&inside, "mallory", "both"]);
                }),
            ],
        );
        for (c, expected) in [
            (checkin(&outside, "1.0.0"), "1.2.0"),
            (checkin(&inside, "1.0.0"), "1.1.0"),
            (checkin("both", "1.0.0"), "1.1.0"),
            // Lists match user ids as well as device ids.
            (checkin("someone", "1.0.0").user("alice"), "1.2.0"),
            (checkin(&outside, "1.0.0").user("mallory"), "1.1.0"),
        ] {
            check(&cat, &c, expected);
        }
        let Decision::Available(o) = cat.select(&checkin(&outside, "1.0.0")).unwrap() else { panic!() };
        assert_eq!(o.admission, Admission::AllowList);
        // Nothing else is in: the percentage still holds for everybody not listed.
        let Decision::Available(o) = cat.select(&checkin("someone", "1.0.0")).unwrap() else { panic!() };
        let want = if bucket_in("1.2.0", "someone") < 1000 { v("1.2.0") } else { v("1.1.0") };
        assert_eq!(o.release.version(), &want);
    }

    #[test]
    fn an_allow_listed_device_is_still_subject_to_every_rule() {
        let cat = catalog(
            vec![
                release("1.1.0", &[("linux", "x86_64"), ("windows", "x86_64")]),
                release("1.2.0", &[("linux", "x86_64"), ("windows", "x86_64")]),
            ],
            vec![
                rollout("1.1.0", "stable", 10_000),
                with(rollout("1.2.0", "stable", 0), |r| {
                    r.allow = ids(&["tester"]);
                    r.rules = crate::Rules::new(vec![
                        rule(r#"{"kind":"os_in","values":["windows"]}"#),
                        rule(r#"{"kind":"os_version","range":">=10"}"#),
                    ])
                    .unwrap();
                }),
            ],
        );
        for (c, expected) in [
            (checkin("tester", "1.0.0").target("windows", "x86_64").os_version("10.0.19045"), "1.2.0"),
            (checkin("tester", "1.0.0").target("windows", "x86_64").os_version("6.1"), "1.1.0"),
            (checkin("tester", "1.0.0").os_version("11"), "1.1.0"),
            (checkin("other", "1.0.0").target("windows", "x86_64").os_version("11"), "1.1.0"),
        ] {
            check(&cat, &c, expected);
        }
        let x = cat.explain(&checkin("tester", "1.0.0").os_version("11")).unwrap();
        assert_eq!(
            x.releases[0].verdict,
            Verdict::Skipped(vec![Skip::RuleFailed {
                channel: ch("stable"),
                rule: "os in [windows]".into(),
                observed: "linux".into()
            }])
        );
    }

    #[test]
    fn interactive_checks_bypass_the_percentage_only_when_the_rollout_opts_in() {
        let build = |bypass: bool| {
            catalog(
                vec![release("1.1.0", &[]), release("1.2.0", &[])],
                vec![
                    rollout("1.1.0", "stable", 10_000),
                    with(rollout("1.2.0", "stable", 0), |r| {
                        r.interactive_bypass = bypass;
                        r.deny = ids(&["denied"]);
                        r.rules = crate::Rules::new(vec![rule(r#"{"kind":"locale_in","values":["zh"]}"#)]).unwrap();
                    }),
                ],
            )
        };
        let (opted_in, opted_out) = (build(true), build(false));
        let zh = |id: &str| {
            let mut c = checkin(id, "1.0.0");
            c.locale = Some("zh-CN".parse().unwrap());
            c
        };
        for (cat, c, expected) in [
            (&opted_in, zh("d1").interactive(), "1.2.0"),
            (&opted_in, zh("d1"), "1.1.0"),
            (&opted_out, zh("d1").interactive(), "1.1.0"),
            (&opted_out, zh("d1"), "1.1.0"),
            // The bypass skips the percentage only: rules and the deny list still apply.
            (&opted_in, checkin("d1", "1.0.0").interactive(), "1.1.0"),
            (&opted_in, zh("denied").interactive(), "1.1.0"),
        ] {
            check(cat, &c, expected);
        }
        let Decision::Available(o) = opted_in.select(&zh("d1").interactive()).unwrap() else { panic!() };
        assert_eq!(o.admission, Admission::Interactive);
    }

    #[test]
    fn a_device_outside_the_newest_rollout_gets_the_newest_release_it_is_in() {
        let cat = catalog(
            vec![release("1.8.0", &[]), release("1.9.0", &[]), release("2.0.0", &[])],
            vec![
                rollout("1.8.0", "stable", 10_000),
                rollout("1.9.0", "stable", 5000),
                rollout("2.0.0", "stable", 1000),
            ],
        );
        let in_2 = device(|d| bucket_in("2.0.0", d) < 1000);
        let in_19_only = device(|d| bucket_in("2.0.0", d) >= 1000 && bucket_in("1.9.0", d) < 5000);
        let in_neither = device(|d| bucket_in("2.0.0", d) >= 1000 && bucket_in("1.9.0", d) >= 5000);
        for (d, current, expected) in [
            (&in_2, "1.0.0", "2.0.0"),
            (&in_19_only, "1.0.0", "1.9.0"),
            (&in_neither, "1.0.0", "1.8.0"),
            (&in_neither, "1.8.0", "none"),
            (&in_19_only, "1.9.0", "none"),
            (&in_2, "1.9.0", "2.0.0"),
        ] {
            check(&cat, &checkin(d, current), expected);
        }
        // The bucket figures in the offer are the device's own.
        let Decision::Available(o) = cat.select(&checkin(&in_19_only, "1.0.0")).unwrap() else { panic!() };
        assert_eq!(o.admission, Admission::Bucket { bucket: bucket("notes:1.9.0", &in_19_only), percent: pct(5000) });
    }

    #[test]
    fn a_hotfix_reaches_everybody_while_the_next_release_is_at_ten_percent() {
        let cat = catalog(
            vec![release("1.0.0", &[]), release("1.1.0", &[]), critical(release("1.0.1", &[]))],
            vec![
                rollout("1.0.0", "stable", 10_000),
                rollout("1.1.0", "stable", 1000),
                rollout("1.0.1", "stable", 10_000),
            ],
        );
        let early = device(|d| bucket_in("1.1.0", d) < 1000);
        let late = device(|d| bucket_in("1.1.0", d) >= 1000);
        for (d, current, expected) in [
            // The 10% take 1.1.0 and must: it skips over the critical hotfix.
            (&early, "1.0.0", "1.1.0 critical"),
            (&late, "1.0.0", "1.0.1 critical"),
            (&late, "1.0.1", "none"),
            // Devices already on 1.1.0 are never sent back to the lower hotfix.
            (&early, "1.1.0", "none"),
            (&late, "1.1.0", "none"),
            (&early, "1.0.1", "1.1.0"),
        ] {
            check(&cat, &checkin(d, current), expected);
        }
        // Over many devices: everybody on 1.0.0 is offered something, about 10% of them 1.1.0.
        let n = 2000;
        let on_new = (0..n)
            .filter(|i| match cat.select(&checkin(&format!("fleet-{i}"), "1.0.0")).unwrap() {
                Decision::Available(o) => o.release.version() == &v("1.1.0"),
                Decision::UpToDate => panic!("device fleet-{i} stranded"),
            })
            .count();
        assert!((140..=260).contains(&on_new), "{on_new} of {n} on 1.1.0");
    }

    #[test]
    fn several_rollouts_of_one_release_admit_through_any_visible_one() {
        let cat = catalog(
            vec![release("1.1.0", &[]), release("1.2.0", &[])],
            vec![
                rollout("1.1.0", "stable", 10_000),
                rollout("1.2.0", "beta", 10_000),
                with(rollout("1.2.0", "stable", 0), |r| r.allow = ids(&["vip"])),
            ],
        );
        for (c, expected) in [
            (checkin("d1", "1.0.0").on("beta"), "1.2.0"),
            (checkin("d1", "1.0.0"), "1.1.0"),
            (checkin("vip", "1.0.0"), "1.2.0"),
            (checkin("vip", "1.0.0").on("unstable"), "1.2.0"),
        ] {
            check(&cat, &c, expected);
        }
        // The least stable visible rollout is tried first.
        let Decision::Available(o) = cat.select(&checkin("vip", "1.0.0").on("beta")).unwrap() else { panic!() };
        assert_eq!(o.rollout.channel, ch("beta"));
        // Rollouts of one release share the default salt: promotion keeps the same devices in.
        let (beta, stable) = (rollout("1.2.0", "beta", 10), rollout("1.2.0", "stable", 10));
        for i in 0..100 {
            let c = checkin(&format!("d{i}"), "1.0.0");
            assert_eq!(beta.bucket_of(&c), stable.bucket_of(&c));
        }
    }

    #[test]
    fn user_stickiness_follows_the_person_across_devices() {
        let user = "user-42";
        // The percentage lets the user in and keeps the device (by its own id) out.
        let b = bucket_in("1.2.0", user);
        let dev = device(|d| bucket_in("1.2.0", d) > b);
        let cat = catalog(
            vec![release("1.2.0", &[])],
            vec![with(rollout("1.2.0", "stable", b + 1), |r| r.stickiness = crate::Stickiness::User)],
        );
        check(&cat, &checkin(&dev, "1.0.0").user(user), "1.2.0");
        check(&cat, &checkin("another-device", "1.0.0").user(user), "1.2.0");
        check(&cat, &checkin(&dev, "1.0.0"), "none");
        let Decision::Available(o) = cat.select(&checkin(&dev, "1.0.0").user(user)).unwrap() else { panic!() };
        assert_eq!(o.admission, Admission::Bucket { bucket: bucket("notes:1.2.0", user), percent: pct(b + 1) });
    }

    #[test]
    fn never_a_downgrade_nor_the_running_version() {
        let cat = catalog(
            vec![release("1.0.0", &[]), release("2.0.0-rc.1", &[]), release("2.0.0", &[])],
            vec![
                rollout("1.0.0", "stable", 10_000),
                rollout("2.0.0-rc.1", "beta", 10_000),
                rollout("2.0.0", "stable", 10_000),
            ],
        );
        for (current, channel, expected) in [
            ("0.9.0", "stable", "2.0.0"),
            ("2.0.0-beta.1", "beta", "2.0.0"),
            ("2.0.0", "beta", "none"),
            ("2.0.1", "stable", "none"),
            ("3.0.0-alpha", "beta", "none"),
        ] {
            check(&cat, &checkin("d1", current).on(channel), expected);
        }
    }

    #[test]
    fn an_unknown_channel_is_an_error_not_an_answer() {
        let cat = catalog(vec![release("1.1.0", &[])], vec![rollout("1.1.0", "stable", 10_000)]);
        let c = checkin("d1", "1.0.0").on("nightly");
        let want = SelectError::UnknownChannel { app: app(), channel: ch("nightly") };
        assert_eq!(cat.select(&c), Err(want.clone()));
        assert_eq!(cat.explain(&c), Err(want.clone()));
        assert_eq!(want.to_string(), "app notes has no channel nightly");
        // A known channel without any release is not an error.
        check(&cat, &checkin("d1", "1.0.0").on("unstable"), "1.1.0");
    }

    #[test]
    fn a_device_on_a_channel_the_app_lacks_is_served_as_on_stable() {
        let cat = catalog(
            vec![release("1.1.0", &[]), release("1.2.0-beta.1", &[])],
            vec![rollout("1.1.0", "stable", 10_000), rollout("1.2.0-beta.1", "beta", 10_000)],
        );
        // `canary` was removed from the app: its devices get what stable devices get, never
        // the beta build, and the channel they named is kept for their events.
        let served = checkin("d1", "1.0.0").on("canary").served_on(cat.ladder());
        assert_eq!((served.checkin.channel.as_str(), served.named_channel().as_str()), ("stable", "canary"));
        check(&cat, &served.checkin, "1.1.0");
        assert_eq!(cat.explain(&served.checkin).unwrap().offered, Some(v("1.1.0")));
        // A channel the app has is served as itself.
        let beta = checkin("d1", "1.0.0").on("beta").served_on(cat.ladder());
        assert_eq!((beta.named, beta.checkin.channel.as_str()), (None, "beta"));
        check(&cat, &beta.checkin, "1.2.0-beta.1");
    }

    #[test]
    fn explain_gives_every_release_its_reason() {
        let d = device(|d| bucket_in("2.4.0", d) >= 1000 && bucket_in("2.3.0", d) < 9000);
        let cat = catalog(
            vec![
                release("0.9.0", &[]),
                release("1.0.0", &[]),
                release("2.0.0", &[]),
                release("2.3.0", &[]),
                release("2.4.0", &[]),
                release("2.5.0", &[]),
                release("2.6.0", &[]),
                release("2.7.0", &[]),
                min_from(release("2.8.0", &[]), "1.5.0"),
                release("2.9.0", &[]),
                release("3.0.0", &[("windows", "x86_64")]),
            ],
            vec![
                rollout("0.9.0", "stable", 10_000),
                rollout("1.0.0", "stable", 10_000),
                rollout("2.0.0", "stable", 10_000),
                rollout("2.3.0", "beta", 9000),
                rollout("2.4.0", "beta", 1000),
                rollout("2.4.0", "stable", 550),
                with(rollout("2.5.0", "beta", 10_000), |r| {
                    r.rules = crate::Rules::new(vec![
                        rule(r#"{"kind":"locale_in","values":["en"]}"#),
                        rule(r#"{"kind":"os_version","range":">=10"}"#),
                    ])
                    .unwrap()
                }),
                with(rollout("2.6.0", "beta", 10_000), |r| r.deny = ids(&[&d])),
                with(rollout("2.7.0", "beta", 10_000), |r| r.state = RolloutState::Halted),
                rollout("2.8.0", "beta", 10_000),
                rollout("2.9.0", "unstable", 10_000),
                rollout("3.0.0", "beta", 10_000),
            ],
        );
        let c = checkin(&d, "1.0.0").on("beta");
        check(&cat, &c, "2.3.0");
        let x = cat.explain(&c).unwrap();
        let b24 = bucket_in("2.4.0", &d);
        let expected: Vec<(&str, Vec<(&str, String)>)> = vec![
            ("3.0.0", vec![("no_artifact", "no build for linux/x86_64".into())]),
            (
                "2.9.0",
                vec![(
                    "not_on_channel",
                    "not rolled out on beta or a more stable channel (rolled out on: unstable)".into(),
                )],
            ),
            ("2.8.0", vec![("stepping_stone", "stepping stone: needs 1.5.0 or newer first, device runs 1.0.0".into())]),
            ("2.7.0", vec![("halted", "the beta rollout is halted".into())]),
            ("2.6.0", vec![("denied", "the device or user is on the beta rollout's deny list".into())]),
            ("2.5.0", vec![("rule_failed", "the beta rollout requires os_version >=10; the device has 6.1".into())]),
            (
                "2.4.0",
                vec![
                    ("outside_rollout", format!("outside the beta rollout: bucket {b24} is not below 1000 (10%)")),
                    ("outside_rollout", format!("outside the stable rollout: bucket {b24} is not below 550 (5.5%)")),
                ],
            ),
            ("2.3.0", vec![("offered", "on beta".into())]),
            ("2.0.0", vec![("newer_offered", "a newer release, 2.3.0, is offered instead".into())]),
            ("1.0.0", vec![("not_newer", "not newer than the running version 1.0.0".into())]),
            ("0.9.0", vec![("not_newer", "not newer than the running version 1.0.0".into())]),
        ];
        assert_eq!(x.offered, Some(v("2.3.0")));
        assert!(!x.critical);
        let got = reasons(&x);
        let want: Vec<(String, Vec<(String, String)>)> = expected
            .into_iter()
            .map(|(v, rs)| (v.to_owned(), rs.into_iter().map(|(c, d)| (c.to_owned(), d)).collect()))
            .collect();
        assert_eq!(got, want);

        // The typed form carries the same figures.
        let by_version = |ver: &str| &x.releases.iter().find(|t| t.version == v(ver)).unwrap().verdict;
        assert_eq!(
            by_version("2.4.0"),
            &Verdict::Skipped(vec![
                Skip::OutsideRollout { channel: ch("beta"), bucket: bucket("notes:2.4.0", &d), percent: pct(1000) },
                Skip::OutsideRollout { channel: ch("stable"), bucket: bucket("notes:2.4.0", &d), percent: pct(550) },
            ])
        );
        assert_eq!(
            by_version("2.9.0"),
            &Verdict::Skipped(vec![Skip::NotOnVisibleChannel {
                device_channel: ch("beta"),
                rolled_out_on: vec![ch("unstable")]
            }])
        );
        assert_eq!(
            by_version("2.3.0"),
            &Verdict::Offered {
                channel: ch("beta"),
                admission: Admission::Bucket { bucket: bucket("notes:2.3.0", &d), percent: pct(9000) }
            }
        );
    }

    #[test]
    fn explain_names_how_an_offered_device_got_in() {
        let cat = catalog(
            vec![release("1.1.0", &[]), release("1.2.0", &[])],
            vec![
                with(rollout("1.1.0", "stable", 0), |r| r.interactive_bypass = true),
                with(rollout("1.2.0", "stable", 0), |r| r.allow = ids(&["tester"])),
            ],
        );
        for (c, version, admission) in [
            (checkin("tester", "1.0.0"), "1.2.0", Admission::AllowList),
            (checkin("d1", "1.0.0").interactive(), "1.1.0", Admission::Interactive),
        ] {
            let x = cat.explain(&c).unwrap();
            let t = x.releases.iter().find(|t| matches!(t.verdict, Verdict::Offered { .. })).unwrap();
            assert_eq!(t.version, v(version));
            assert_eq!(t.verdict, Verdict::Offered { channel: ch("stable"), admission });
        }
        // A release nobody is in: zero percent names the device's bucket and "0".
        let c = checkin("d1", "1.0.0");
        let x = cat.explain(&c).unwrap();
        assert_eq!(x.offered, None);
        let b = bucket_in("1.1.0", "d1");
        assert_eq!(reasons(&x)[1].1[0].1, format!("outside the stable rollout: bucket {b} is not below 0 (0%)"));
    }

    #[test]
    fn explain_reasons_when_there_is_no_build_or_no_rollout_at_all() {
        let cat = catalog(vec![release("1.1.0", &[]), release("1.2.0", &[])], vec![rollout("1.1.0", "beta", 10_000)]);
        let x = cat.explain(&checkin("d1", "1.0.0")).unwrap();
        let details: Vec<String> = reasons(&x).into_iter().map(|(_, r)| r[0].1.clone()).collect();
        assert_eq!(
            details,
            [
                "not rolled out on stable or a more stable channel (rolled out on: none)",
                "not rolled out on stable or a more stable channel (rolled out on: beta)",
            ]
        );
        let x = cat.explain(&checkin("d1", "1.0.0").target("macos", "aarch64").on("beta")).unwrap();
        assert_eq!(x.offered, None);
        assert!(x.releases.iter().all(|t| matches!(&t.verdict, Verdict::Skipped(s) if s[0].code() == "no_artifact")));
    }

    #[test]
    fn catalogs_refuse_inconsistent_input() {
        let build = |rs: Vec<ReleaseParts>, ro: Vec<Rollout>| Catalog::new(app(), Ladder::default(), releases(rs), ro);
        for (result, expected, message) in [
            (
                build(
                    vec![release("1.0.0", &[]), release("1.1.0", &[]), release("1.0.0", &[("windows", "x86_64")])],
                    vec![],
                ),
                CatalogError::DuplicateRelease(v("1.0.0")),
                "release 1.0.0 appears twice",
            ),
            (
                build(vec![release("1.0.0", &[])], vec![rollout("1.0.1", "stable", 1)]),
                CatalogError::UnknownRelease(v("1.0.1")),
                "rollout of unknown release 1.0.1",
            ),
            (
                build(vec![release("1.0.0", &[])], vec![rollout("1.0.0", "nightly", 1)]),
                CatalogError::UnknownChannel(v("1.0.0"), ch("nightly")),
                "release 1.0.0 is rolled out on unknown channel nightly",
            ),
            (
                build(
                    vec![release("1.0.0", &[])],
                    vec![rollout("1.0.0", "beta", 1), rollout("1.0.0", "stable", 1), rollout("1.0.0", "beta", 5)],
                ),
                CatalogError::DuplicateRollout(v("1.0.0"), ch("beta")),
                "release 1.0.0 has two rollouts on channel beta",
            ),
        ] {
            let e = result.unwrap_err();
            assert_eq!(e, expected);
            assert_eq!(e.to_string(), message);
        }
        // A custom channel is known only to a ladder that has it.
        let ladder = Ladder::with_custom([(ch("nightly"), 400)]).unwrap();
        assert!(
            Catalog::new(app(), ladder, releases(vec![release("1.0.0", &[])]), vec![rollout("1.0.0", "nightly", 1)])
                .is_ok()
        );
    }

    #[test]
    fn catalogs_list_releases_newest_first_with_rollouts_least_stable_first() {
        let cat = catalog(
            vec![release("1.0.0", &[]), release("1.2.0", &[]), release("1.1.0", &[])],
            vec![rollout("1.1.0", "stable", 1), rollout("1.1.0", "unstable", 2), rollout("1.1.0", "beta", 3)],
        );
        let listed: Vec<String> = cat.releases().map(|(r, _)| r.version().to_string()).collect();
        assert_eq!(listed, ["1.2.0", "1.1.0", "1.0.0"]);
        assert_eq!(cat.newest(), Some(&v("1.2.0")));
        let (r, rollouts) = cat.release(&v("1.1.0")).unwrap();
        assert_eq!(r.version(), &v("1.1.0"));
        let chans: Vec<&str> = rollouts.iter().map(|r| r.channel.as_str()).collect();
        assert_eq!(chans, ["unstable", "beta", "stable"]);
        assert!(cat.release(&v("1.1.1")).is_none());
        assert_eq!(format!("{cat:?}"), "Catalog { app: AppId(\"notes\"), releases: 3 }");
        let empty = catalog(vec![], vec![]);
        assert_eq!(empty.newest(), None);
        check(&empty, &checkin("d1", "1.0.0"), "none");
    }

    #[test]
    fn the_baseline_is_what_the_channel_runs_below_the_candidate() {
        let halted = |mut r: Rollout| {
            r.state = RolloutState::Halted;
            r
        };
        let cat = catalog(
            ["1.0.0", "1.1.0", "1.2.0", "1.3.0", "2.0.0"].iter().map(|v| release(v, &[])).collect(),
            vec![
                rollout("1.0.0", "stable", 10_000),
                rollout("1.1.0", "stable", 10_000),
                halted(rollout("1.2.0", "stable", 10_000)),
                rollout("1.3.0", "stable", 2_000),
                rollout("2.0.0", "stable", 100),
                rollout("2.0.0", "beta", 100),
            ],
        );
        let base = |version: &str, channel: &str| cat.baseline(&v(version), &ch(channel)).map(ToString::to_string);
        // Serving everybody beats newer but partial; a halted release is never the baseline.
        assert_eq!(base("2.0.0", "stable").as_deref(), Some("1.1.0"));
        assert_eq!(base("1.3.0", "stable").as_deref(), Some("1.1.0"));
        assert_eq!(base("1.1.0", "stable").as_deref(), Some("1.0.0"));
        assert_eq!(base("1.0.0", "stable"), None, "a channel's first release");
        assert_eq!(base("2.0.0", "beta"), None, "nothing older on beta");
        // Without a full rollout below, the newest partial one that is not halted.
        let partial = catalog(
            vec![release("1.0.0", &[]), release("1.1.0", &[])],
            vec![rollout("1.0.0", "stable", 5_000), rollout("1.1.0", "stable", 100)],
        );
        assert_eq!(partial.baseline(&v("1.1.0"), &ch("stable")), Some(&v("1.0.0")));
    }
}
