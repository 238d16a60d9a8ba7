//! A/B/N experiments: [`ArmSlot`] (where one arm sits in its experiment's buckets),
//! [`Experiment::lay_out`] (the only place arms are placed) and [`Experiment`] (the running
//! experiment of a channel, read from a catalog).
//!
//! An arm is an ordinary [`Rollout`] of a release on the channel whose admission is a bucket
//! range of the *experiment's* salt instead of `[0, percent)` of its own: it admits a device
//! iff `(bucket - start) mod 10000 < min(percent, width)`. Every arm of one experiment has the
//! same salt, so a device has one bucket for all of them, and [`Experiment::lay_out`] gives the
//! arms disjoint slots `[start, start + width)`: each arm's share starts at its slot's start,
//! and the space the shares leave free is split evenly between the slots, so an arm can widen
//! (only adding devices, since a share is a prefix of its slot) up to its slot and never into
//! another arm. A running arm admits by its range only (allow lists and the interactive bypass
//! do not apply), so a device is in at most one arm; [`Catalog::new`](crate::Catalog::new)
//! refuses two running arms on a channel with different salts or overlapping slots.
//!
//! Promoting a winner gives its slot the full width ([`ArmSlot::promoted`]): its share keeps
//! its devices and widens from its start round the circle of buckets, so widening it to 100%
//! only ever adds devices. The losers stop being arms and are halted: nobody new is offered
//! them, and `select` never offers anyone a version at or below what it runs, so a device on a
//! loser newer than the winner keeps it until a release above it (a rebuild of the winner's
//! code under a higher version) is rolled out.

use std::fmt;

use crate::error::{ParseError, What};
use crate::{AppId, Bucket, ChannelName, Percent, Rollout, RolloutState, Salt, Version};

/// The most arms an experiment may have.
pub const MAX_ARMS: usize = 8;

/// One arm's place in its experiment's buckets: the slot `[start, start + width)`, within which
/// its share is the prefix of `percent` basis points. A promoted winner's slot is the whole
/// circle from `start` (width 100%).
#[derive(Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub struct ArmSlot {
    start: u16,
    width: Percent,
}

impl ArmSlot {
    /// A slot: `start` in 0..10000 and, unless the slot is a promoted winner's (width 100%),
    /// `start + width` at most 10000 and `width` above 0.
    pub fn new(start: u16, width: Percent) -> Result<Self, ParseError> {
        let bad = |why: &'static str| Err(ParseError::new(What::Experiment, &format!("{start}+{width}"), why));
        if start >= 10_000 {
            return bad("an arm starts at a bucket from 0 to 9999");
        }
        if width == Percent::NONE {
            return bad("an arm's slot is not empty");
        }
        if width != Percent::FULL && u32::from(start) + u32::from(width.basis_points()) > 10_000 {
            return bad("an arm's slot ends at bucket 10000 at the latest");
        }
        Ok(ArmSlot { start, width })
    }

    /// The first bucket of the slot.
    pub fn start(self) -> u16 {
        self.start
    }

    /// The slot's width: the most the arm's share can widen to.
    pub fn width(self) -> Percent {
        self.width
    }

    /// True for a promoted winner's slot (the whole circle from its start).
    pub fn is_promoted(self) -> bool {
        self.width == Percent::FULL
    }

    /// The winner's slot after promotion: the same start, the whole circle.
    pub fn promoted(self) -> ArmSlot {
        ArmSlot { start: self.start, width: Percent::FULL }
    }

    /// True iff a device in `bucket` is in an arm of this slot with share `percent`: within
    /// the first `min(percent, width)` buckets from `start`, going round past 9999 to 0.
    pub fn admits(self, percent: Percent, bucket: Bucket) -> bool {
        let offset = (u32::from(bucket.get()) + 10_000 - u32::from(self.start)) % 10_000;
        offset < u32::from(percent.min(self.width).basis_points())
    }

    /// True when the two slots share a bucket (a promoted slot shares every bucket).
    pub fn overlaps(self, other: ArmSlot) -> bool {
        let end = |s: ArmSlot| u32::from(s.start) + u32::from(s.width.basis_points());
        u32::from(self.start) < end(other) && u32::from(other.start) < end(self)
            || self.is_promoted()
            || other.is_promoted()
    }
}

impl fmt::Debug for ArmSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArmSlot({}+{})", self.start, self.width.basis_points())
    }
}

impl fmt::Display for ArmSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_promoted() {
            write!(f, "buckets from {} round (promoted)", self.start)
        } else {
            write!(f, "buckets {}..{}", self.start, u32::from(self.start) + u32::from(self.width.basis_points()))
        }
    }
}

/// An arm asked for: a release and its share of the channel's devices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmShare {
    /// The arm's release.
    pub release: Version,
    /// Its share.
    pub share: Percent,
}

/// The running experiment of one channel: its salt and its arms (rollouts whose slot is not
/// promoted), in the order of their slots. Read with [`Catalog::experiment`](crate::Catalog::experiment).
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment<'c> {
    /// The channel.
    pub channel: ChannelName,
    /// The salt every arm buckets by.
    pub salt: &'c Salt,
    /// The arms, by slot.
    pub arms: Vec<&'c Rollout>,
}

impl Experiment<'_> {
    /// The salt of an experiment with these arms on `channel` of `app`:
    /// `app:channel:experiment:v1+v2+…`, so that the buckets are independent of every
    /// release's own and of any other experiment's. Refused when longer than a salt may be.
    pub fn salt_for(app: &AppId, channel: &ChannelName, arms: &[ArmShare]) -> Result<Salt, ParseError> {
        let versions: Vec<String> = arms.iter().map(|a| a.release.to_string()).collect();
        Salt::parse(&format!("{app}:{channel}:experiment:{}", versions.join("+"))).map_err(|_| {
            ParseError::new(
                What::Experiment,
                &versions.join("+"),
                "the arms' versions are too long together for the experiment's salt (128 characters)",
            )
        })
    }

    /// Places arms: each arm gets a slot that starts where the previous one ends and is its
    /// share plus an even part of the share left free, so slots never overlap and each arm can
    /// widen by that part. Refuses fewer than two or more than [`MAX_ARMS`] arms, a release
    /// twice, an empty share and shares over 100% together.
    pub fn lay_out(arms: &[ArmShare]) -> Result<Vec<(Version, ArmSlot)>, ParseError> {
        let all = || arms.iter().map(|a| format!("{}={}", a.release, a.share)).collect::<Vec<_>>().join(",");
        let bad = |why: String| Err(ParseError::new(What::Experiment, &all(), why));
        if arms.len() < 2 {
            return bad("an experiment compares at least two arms (releases)".into());
        }
        if arms.len() > MAX_ARMS {
            return bad(format!("an experiment has at most {MAX_ARMS} arms"));
        }
        for (i, a) in arms.iter().enumerate() {
            if arms[..i].iter().any(|b| b.release == a.release) {
                return bad(format!("release {} is in two arms: arms must not overlap", a.release));
            }
            if a.share == Percent::NONE {
                return bad(format!("the arm of {} has an empty share", a.release));
            }
        }
        let total: u32 = arms.iter().map(|a| u32::from(a.share.basis_points())).sum();
        if total > 10_000 {
            return bad(format!("the shares add up to {}.{:02}%, over 100%", total / 100, total % 100));
        }
        let spare = (10_000 - total) / arms.len() as u32;
        let mut start = 0u32;
        let mut out = Vec::with_capacity(arms.len());
        for a in arms {
            let width = u32::from(a.share.basis_points()) + spare;
            let slot = ArmSlot::new(start as u16, Percent::from_basis_points(width as u16)?)?;
            out.push((a.release.clone(), slot));
            start += width;
        }
        Ok(out)
    }

    /// The arm `c`'s bucket `bucket` falls in, if any (its share, not its slot).
    pub fn arm_of(&self, bucket: Bucket) -> Option<&Rollout> {
        self.arms.iter().copied().find(|r| r.arm.is_some_and(|s| s.admits(r.percent, bucket)))
    }
}

/// Why an arm's settings cannot stand: checked on every edit of a rollout that is an arm.
pub fn check_arm(r: &Rollout) -> Result<(), ParseError> {
    let Some(slot) = r.arm.filter(|s| !s.is_promoted()) else { return Ok(()) };
    let bad = |why: String| Err(ParseError::new(What::Rollout, &r.release.to_string(), why));
    if r.percent > slot.width() {
        return bad(format!(
            "{} is an arm of an experiment on {}: its share can widen to {} at most (promote a winner to go further)",
            r.release,
            r.channel,
            slot.width()
        ));
    }
    if r.schedule.is_some() {
        return bad(format!("{} is an arm of an experiment on {}: arms do not follow schedules", r.release, r.channel));
    }
    Ok(())
}

/// The running arms of `rollouts` on `channel` (not promoted), by slot. Halted arms are
/// still arms: a gate may stop one.
pub(crate) fn running_arms<'c>(
    rollouts: impl Iterator<Item = &'c Rollout>,
    channel: &ChannelName,
) -> Vec<(&'c Rollout, ArmSlot)> {
    let mut arms: Vec<(&Rollout, ArmSlot)> = rollouts
        .filter(|r| &r.channel == channel)
        .filter_map(|r| r.arm.filter(|s| !s.is_promoted()).map(|s| (r, s)))
        .collect();
    arms.sort_by_key(|(_, s)| s.start());
    arms
}

/// Why arms on one channel cannot run together: two salts (two experiments at once) or two
/// slots that overlap.
pub(crate) fn check_arms(arms: &[(&Rollout, ArmSlot)]) -> Result<(), String> {
    for (i, (a, sa)) in arms.iter().enumerate() {
        for (b, sb) in &arms[..i] {
            if a.salt != b.salt {
                return Err(format!(
                    "{} and {} are arms of two experiments at once on {}",
                    b.release, a.release, a.channel
                ));
            }
            if sa.overlaps(*sb) {
                return Err(format!("the arms {} and {} overlap on {}", b.release, a.release, a.channel));
            }
        }
    }
    Ok(())
}

/// True when `r` is a running arm (in an experiment that has not been promoted) and is
/// not halted.
pub fn is_live_arm(r: &Rollout) -> bool {
    r.arm.is_some_and(|s| !s.is_promoted()) && r.state != RolloutState::Halted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bucket;
    use proptest::prelude::*;

    fn pct(bp: u16) -> Percent {
        Percent::from_basis_points(bp).unwrap()
    }

    fn shares(bps: &[u16]) -> Vec<ArmShare> {
        bps.iter()
            .enumerate()
            .map(|(i, bp)| ArmShare { release: format!("1.{i}.0").parse().unwrap(), share: pct(*bp) })
            .collect()
    }

    #[test]
    fn arms_are_laid_out_side_by_side_with_the_free_space_shared() {
        let laid = Experiment::lay_out(&shares(&[1_000, 1_000])).unwrap();
        let slots: Vec<(u16, u16)> = laid.iter().map(|(_, s)| (s.start(), s.width().basis_points())).collect();
        assert_eq!(slots, [(0, 5_000), (5_000, 5_000)]);
        let laid = Experiment::lay_out(&shares(&[7_000, 2_000, 1_000])).unwrap();
        let slots: Vec<(u16, u16)> = laid.iter().map(|(_, s)| (s.start(), s.width().basis_points())).collect();
        assert_eq!(slots, [(0, 7_000), (7_000, 2_000), (9_000, 1_000)]);
    }

    #[test]
    fn bad_layouts_are_refused_with_their_reason() {
        for (bps, why) in [
            (&[1_000][..], "at least two arms"),
            (&[6_000, 5_000][..], "add up to 110.00%, over 100%"),
            (&[1_000, 0][..], "empty share"),
            (&[1_000; 9][..], "at most 8 arms"),
        ] {
            let e = Experiment::lay_out(&shares(bps)).unwrap_err().to_string();
            assert!(e.contains(why), "{bps:?}: {e}");
        }
        let mut twice = shares(&[1_000, 1_000]);
        twice[1].release = twice[0].release.clone();
        assert!(Experiment::lay_out(&twice).unwrap_err().to_string().contains("in two arms"));
    }

    #[test]
    fn a_slot_admits_its_prefix_and_a_promoted_slot_goes_round() {
        let slot = ArmSlot::new(5_000, pct(5_000)).unwrap();
        assert!(!slot.admits(pct(1_000), Bucket::at(4_999)));
        assert!(slot.admits(pct(1_000), Bucket::at(5_000)));
        assert!(slot.admits(pct(1_000), Bucket::at(5_999)));
        assert!(!slot.admits(pct(1_000), Bucket::at(6_000)));
        // A share wider than the slot is held to the slot.
        assert!(slot.admits(Percent::FULL, Bucket::at(9_999)));
        assert!(!slot.admits(Percent::FULL, Bucket::at(0)));
        let won = slot.promoted();
        assert!(won.admits(pct(6_000), Bucket::at(9_999)) && won.admits(pct(6_000), Bucket::at(0)));
        assert!(won.admits(pct(6_000), Bucket::at(999)) && !won.admits(pct(6_000), Bucket::at(1_000)));
        assert!(won.admits(Percent::FULL, Bucket::at(4_999)));
        assert!(ArmSlot::new(9_000, pct(2_000)).is_err() && ArmSlot::new(10_000, pct(1)).is_err());
        assert!(ArmSlot::new(0, Percent::NONE).is_err());
    }

    /// A catalog with 1.0.0 on stable for everybody and two arms, 1.1.0 and 1.2.0, at 10% each.
    fn two_arms() -> (crate::Catalog, Vec<Rollout>) {
        use crate::test_support::{app, catalog, release, rollout};
        let arms = shares(&[1_000, 1_000]);
        let arms: Vec<ArmShare> = arms
            .into_iter()
            .enumerate()
            .map(|(i, a)| ArmShare { release: format!("1.{}.0", i + 1).parse().unwrap(), ..a })
            .collect();
        let salt = Experiment::salt_for(&app(), &"stable".parse().unwrap(), &arms).unwrap();
        let rollouts: Vec<Rollout> = Experiment::lay_out(&arms)
            .unwrap()
            .into_iter()
            .map(|(v, slot)| Rollout {
                salt: salt.clone(),
                arm: Some(slot),
                // Arms ignore allow lists and the interactive bypass.
                allow: crate::IdList::new([crate::ListedId::parse("dev-1").unwrap()]).unwrap(),
                interactive_bypass: true,
                ..rollout(&v.to_string(), "stable", 1_000)
            })
            .collect();
        let mut all = rollouts.clone();
        all.push(rollout("1.0.0", "stable", 10_000));
        (catalog(vec![release("1.0.0", &[]), release("1.1.0", &[]), release("1.2.0", &[])], all), rollouts)
    }

    #[test]
    fn select_offers_each_device_the_arm_its_bucket_is_in_and_explain_says_so() {
        use crate::test_support::{checkin, offered};
        let (cat, _) = two_arms();
        let x = cat.experiment(&"stable".parse().unwrap()).expect("an experiment runs");
        assert_eq!(x.arms.iter().map(|r| r.release.to_string()).collect::<Vec<_>>(), ["1.1.0", "1.2.0"]);
        assert!(x.salt.as_str().ends_with("stable:experiment:1.1.0+1.2.0"));
        let mut counts = std::collections::BTreeMap::<String, u32>::new();
        for n in 0..20_000 {
            let id = format!("dev-{n}");
            let mut c = checkin(&id, "0.9.0");
            c.kind = crate::CheckKind::Interactive;
            let got = offered(&cat, &c);
            let b = bucket(x.salt.as_str(), &id);
            let expected = x.arm_of(b).map_or("1.0.0".to_owned(), |r| r.release.to_string());
            assert_eq!(got, expected, "{id} in bucket {b:?}");
            *counts.entry(got.clone()).or_default() += 1;
            // Once on its arm, a device is offered nothing: not the other arm, nothing lower.
            if got != "1.0.0" {
                assert_eq!(offered(&cat, &checkin(&id, &got)), "none", "{id} stays in its arm");
            }
        }
        for arm in ["1.1.0", "1.2.0"] {
            let n = counts[arm];
            assert!((1_800..2_200).contains(&n), "{arm} got {n} of 20000 (about 10% each)");
        }
        let explained = cat.explain(&checkin("dev-1", "0.9.0")).unwrap();
        let codes: Vec<String> = explained
            .releases
            .iter()
            .map(|t| match &t.verdict {
                crate::Verdict::Offered { admission, .. } => format!("{}:{admission:?}", t.version),
                crate::Verdict::Skipped(s) => {
                    format!("{}:{}", t.version, s.iter().map(|s| s.code()).collect::<Vec<_>>().join(","))
                }
            })
            .collect();
        let b = bucket(x.salt.as_str(), "dev-1");
        match x.arm_of(b) {
            None => assert!(codes[0].ends_with("outside_arm") && codes[1].ends_with("outside_arm"), "{codes:?}"),
            Some(r) => {
                assert!(codes.iter().any(|c| c.starts_with(&r.release.to_string()) && c.contains("Arm {")), "{codes:?}")
            }
        }
    }

    #[test]
    fn a_catalog_refuses_overlapping_arms_and_two_experiments_on_a_channel() {
        use crate::test_support::{app, release};
        let (_, arms) = two_arms();
        let releases = || ["1.0.0", "1.1.0", "1.2.0"].map(|v| crate::Release::new(release(v, &[])).unwrap());
        let build = |rollouts: Vec<Rollout>| crate::Catalog::new(app(), crate::Ladder::default(), releases(), rollouts);
        let mut overlapping = arms.clone();
        overlapping[1].arm = Some(ArmSlot::new(4_000, pct(5_000)).unwrap());
        let e = build(overlapping).unwrap_err().to_string();
        assert!(e.contains("overlap"), "{e}");
        let mut two = arms.clone();
        two[1].salt = Salt::parse("other").unwrap();
        assert!(build(two).unwrap_err().to_string().contains("two experiments"));
        // A promoted winner overlaps nobody: the losers are no longer arms.
        let mut won = arms.clone();
        won[0].arm = Some(won[0].arm.unwrap().promoted());
        won[1].arm = None;
        assert!(build(won).is_ok());
        assert!(build(arms).is_ok());
    }

    /// Shares of 2..=MAX_ARMS arms that add up to at most 100%.
    fn arm_shares() -> impl Strategy<Value = Vec<u16>> {
        prop::collection::vec(1u16..=5_000, 2..=MAX_ARMS)
            .prop_filter("at most 100%", |v| v.iter().map(|&b| u32::from(b)).sum::<u32>() <= 10_000)
    }

    proptest! {
        #[test]
        fn arms_never_overlap_and_every_device_is_in_at_most_one(bps in arm_shares(), keys in prop::collection::vec("[a-z0-9-]{1,16}", 1..200)) {
            let laid = Experiment::lay_out(&shares(&bps)).unwrap();
            let total: u32 = laid.iter().map(|(_, s)| u32::from(s.width().basis_points())).sum();
            prop_assert!(total <= 10_000, "slots fit in the buckets");
            for (i, (_, a)) in laid.iter().enumerate() {
                for (_, b) in &laid[..i] {
                    prop_assert!(!a.overlaps(*b), "{a:?} and {b:?}");
                }
            }
            for key in &keys {
                let b = bucket("notes:stable:experiment:x", key);
                let within = laid.iter().zip(&bps).filter(|((_, s), bp)| s.admits(pct(**bp), b)).count();
                prop_assert!(within <= 1, "{key} is in {within} arms");
            }
            // Shares add up: every bucket is in exactly as many arms as the shares say.
            let covered = (0..10_000u16).filter(|b| laid.iter().zip(&bps).any(|((_, s), bp)| s.admits(pct(*bp), Bucket::at(*b)))).count();
            prop_assert_eq!(covered as u32, bps.iter().map(|&b| u32::from(b)).sum::<u32>());
        }

        #[test]
        fn a_device_stays_in_its_arm_as_shares_grow(bps in arm_shares(), grow in prop::collection::vec(0u16..=5_000, MAX_ARMS), b in 0u16..10_000) {
            let laid = Experiment::lay_out(&shares(&bps)).unwrap();
            let b = Bucket::at(b);
            for (((_, slot), &bp), &more) in laid.iter().zip(&bps).zip(&grow) {
                let wider = pct((bp + more).min(slot.width().basis_points()));
                if slot.admits(pct(bp), b) {
                    prop_assert!(slot.admits(wider, b), "widening drops nobody");
                    prop_assert!(slot.promoted().admits(wider, b), "promotion drops nobody");
                }
            }
            // After any growth within their slots, still at most one arm.
            let within = laid.iter().zip(&bps).zip(&grow).filter(|(((_, s), bp), more)| s.admits(pct((**bp + **more).min(s.width().basis_points())), b)).count();
            prop_assert!(within <= 1);
        }
    }
}
