//! A release's exposure on one channel: [`Rollout`], with its [`Percent`], [`Salt`],
//! [`Stickiness`], allow and deny lists ([`IdList`]), rules and [`RolloutState`], and the
//! evaluation of one check-in against it ([`Rollout::evaluate`]).

use std::collections::BTreeSet;
use std::fmt;

use crate::bucket::{Bucket, bucket};
use crate::error::{ParseError, What, check_printable, string_newtype};
use crate::{AppId, ArmSlot, ChannelName, CheckIn, CheckKind, HealthGate, Op, OsVersion, Rule, Schedule, Version};

/// A share of devices in basis points: 0 is nobody, 10000 is everybody, 1 is 0.01%.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Percent(u16);

impl Percent {
    /// Everybody.
    pub const FULL: Percent = Percent(10_000);
    /// Nobody.
    pub const NONE: Percent = Percent(0);
    /// The smallest share above none: one basis point, 0.01%.
    pub const SMALLEST: Percent = Percent(1);
    /// A tenth of the devices.
    pub const TENTH: Percent = Percent(1_000);

    /// A share in basis points (0..=10000).
    pub fn from_basis_points(bp: u16) -> Result<Self, ParseError> {
        if bp > 10_000 {
            return Err(ParseError::new(What::Percent, &bp.to_string(), "basis points go from 0 to 10000 (100%)"));
        }
        Ok(Percent(bp))
    }

    /// Parses `12.5%`, `12.5` (percent) or `0.01%`; at most two decimals.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let body = s.trim().trim_end_matches('%');
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let bad = || ParseError::new(What::Percent, s, "expected a percentage like 5%, 12.5% or 0.01%");
        if int.is_empty()
            || int.len() > 3
            || frac.len() > 2
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let frac = format!("{frac:0<2}");
        let bp = int.parse::<u32>().map_err(|_| bad())? * 100 + frac.parse::<u32>().map_err(|_| bad())?;
        match u16::try_from(bp) {
            Ok(bp) if bp <= 10_000 => Ok(Percent(bp)),
            _ => Err(ParseError::new(What::Percent, s, "a percentage goes from 0% to 100%")),
        }
    }

    /// The share in basis points.
    pub fn basis_points(self) -> u16 {
        self.0
    }

    /// True iff a device in `bucket` is inside this share: `bucket < self`.
    pub fn admits(self, bucket: Bucket) -> bool {
        bucket.get() < self.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, r) = (self.0 / 100, self.0 % 100);
        match r {
            0 => write!(f, "{i}%"),
            r if r % 10 == 0 => write!(f, "{i}.{}%", r / 10),
            r => write!(f, "{i}.{r:02}%"),
        }
    }
}
impl fmt::Debug for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Percent({self})")
    }
}
impl serde::Serialize for Percent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u16(self.0)
    }
}
impl<'de> serde::Deserialize<'de> for Percent {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bp = u16::deserialize(d)?;
        Percent::from_basis_points(bp).map_err(serde::de::Error::custom)
    }
}

/// The salt that makes one rollout's buckets independent of another's: 1–128 printable
/// characters. Defaults to `app:version`, so the same device falls in the same bucket on
/// every channel of one release (promoting 10% to stable keeps the same 10%).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Salt(Box<str>);

impl Salt {
    /// Parses a salt.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_printable(What::Salt, s, 128)?;
        Ok(Salt(s.into()))
    }

    /// The default salt of a release: `app:version`.
    pub fn default_for(app: &AppId, version: &Version) -> Self {
        Salt(format!("{app}:{version}").into())
    }
}
string_newtype!(Salt);

/// An entry of an allow or deny list: a device id or a user id (1–128 printable characters).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListedId(Box<str>);

impl ListedId {
    /// Parses a list entry.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_printable(What::ListedId, s, 128)?;
        Ok(ListedId(s.into()))
    }
}
string_newtype!(ListedId);

/// The most entries an allow or deny list may hold.
pub const MAX_LIST: usize = 10_000;
/// The most rules a rollout may hold.
pub const MAX_RULES: usize = 32;

/// A set of device or user ids; a check-in is listed when its device id or its user id is in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdList(BTreeSet<ListedId>);

impl IdList {
    /// A list from entries; more than [`MAX_LIST`] is an error.
    pub fn new(ids: impl IntoIterator<Item = ListedId>) -> Result<Self, ParseError> {
        let set: BTreeSet<_> = ids.into_iter().collect();
        if set.len() > MAX_LIST {
            return Err(ParseError::new(What::Rollout, "allow/deny", format!("lists hold at most {MAX_LIST} ids")));
        }
        Ok(IdList(set))
    }

    /// True when the check-in's device id or user id is listed.
    pub fn lists(&self, c: &CheckIn) -> bool {
        !self.0.is_empty()
            && (self.0.contains(c.device_id.as_str())
                || c.user_id.as_ref().is_some_and(|u| self.0.contains(u.as_str())))
    }

    /// The entries.
    pub fn iter(&self) -> impl Iterator<Item = &ListedId> {
        self.0.iter()
    }
}

/// A rollout's conditions, all of which must hold: at most [`MAX_RULES`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules(Vec<Rule>);

impl Rules {
    /// Rules from a list; more than [`MAX_RULES`] is an error.
    pub fn new(rules: Vec<Rule>) -> Result<Self, ParseError> {
        if rules.len() > MAX_RULES {
            return Err(ParseError::new(What::Rollout, "rules", format!("at most {MAX_RULES} rules")));
        }
        Ok(Rules(rules))
    }

    /// The lowest OS version these rules admit, when they set one inclusively: the highest
    /// `>=` (or `=`) bound of their `os_version` rules. A device must satisfy every rule, so
    /// the highest bound is the floor; a strict `>` has no inclusive floor and is left out.
    /// What Sparkle's `sparkle:minimumSystemVersion` says.
    pub fn os_version_floor(&self) -> Option<&OsVersion> {
        self.0
            .iter()
            .filter_map(|r| match r {
                Rule::OsVersion(range) => Some(range.comparators()),
                _ => None,
            })
            .flatten()
            .filter(|c| matches!(c.op, Op::Ge | Op::Eq))
            .map(|c| &c.value)
            .max()
    }
}

impl std::ops::Deref for Rules {
    type Target = [Rule];
    fn deref(&self) -> &[Rule] {
        &self.0
    }
}

/// Whose id positions a check-in in the rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stickiness {
    /// The device id: each device decides on its own.
    #[default]
    Device,
    /// The user id when the app reported one, else the device id: a signed-in person gets the
    /// same answer on all their devices.
    User,
}

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Serving and (under a schedule) advancing.
    #[default]
    Active,
    /// Serving at its current percentage, not advancing.
    Paused,
    /// Offered to nobody new.
    Halted,
}

impl fmt::Display for RolloutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RolloutState::Active => "active",
            RolloutState::Paused => "paused",
            RolloutState::Halted => "halted",
        })
    }
}

/// Why a check-in is inside a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum Admission {
    /// The device or user is on the allow list (the percentage is skipped; rules still apply).
    AllowList,
    /// The check was interactive and the rollout lets such checks skip the percentage.
    Interactive,
    /// The device's bucket is below the percentage.
    Bucket {
        /// The device's bucket.
        bucket: Bucket,
        /// The rollout's percentage.
        percent: Percent,
    },
    /// The rollout is an arm of an experiment and the device's bucket (under the experiment's
    /// salt) is in the arm's share of its slot.
    Arm {
        /// The device's bucket under the experiment's salt.
        bucket: Bucket,
        /// The arm's slot.
        slot: ArmSlot,
        /// The arm's share.
        percent: Percent,
    },
}

/// Why a check-in is outside a rollout: the first check that failed, in evaluation order
/// (state, deny list, rules, percentage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclusion {
    /// The rollout is halted.
    Halted,
    /// The device or user is on the deny list.
    Denied,
    /// The rule at this index (in the rollout's rules) did not match.
    Rule(usize),
    /// The device's bucket is at or above the percentage.
    Outside {
        /// The device's bucket.
        bucket: Bucket,
        /// The rollout's percentage.
        percent: Percent,
    },
    /// The rollout is an arm of an experiment and the device's bucket is not in its share.
    OutsideArm {
        /// The device's bucket under the experiment's salt.
        bucket: Bucket,
        /// The arm's slot.
        slot: ArmSlot,
        /// The arm's share.
        percent: Percent,
    },
}

/// A release's exposure on one channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Rollout {
    /// The release this rollout exposes.
    pub release: Version,
    /// The channel it is rolled out on.
    pub channel: ChannelName,
    /// The share of devices (that pass the rules) who are offered the release.
    pub percent: Percent,
    /// The bucketing salt.
    pub salt: Salt,
    /// Device or user stickiness.
    pub stickiness: Stickiness,
    /// Always included when the rules pass (internal testers).
    pub allow: IdList,
    /// Never included.
    pub deny: IdList,
    /// Conditions that must all hold.
    pub rules: Rules,
    /// Active, paused or halted.
    pub state: RolloutState,
    /// Whether a user-initiated check skips the percentage.
    pub interactive_bypass: bool,
    /// Steps the server advances by itself, if any.
    pub schedule: Option<Schedule>,
    /// Feedback limits that stop the rollout by themselves, if any.
    pub gate: Option<HealthGate>,
    /// Set when this rollout is an arm of an A/B/N experiment (or its promoted winner): it
    /// admits the buckets of its slot under `salt`, the experiment's, instead of `[0,
    /// percent)` (see the `arms` module).
    pub arm: Option<ArmSlot>,
}

/// A change to a rollout's settings, each part valid on its own: absent parts keep their value.
/// What a release engineer's patch, the CLI or the dashboard asks for; [`Rollout::edited`]
/// applies it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutEdit {
    /// A new share.
    pub percent: Option<Percent>,
    /// A new allow list.
    pub allow: Option<IdList>,
    /// A new deny list.
    pub deny: Option<IdList>,
    /// New rules.
    pub rules: Option<Rules>,
    /// A new state.
    pub state: Option<RolloutState>,
    /// A new interactive bypass.
    pub interactive_bypass: Option<bool>,
    /// A new schedule (the rollout continues from the step at or below its percentage).
    pub schedule: Option<Schedule>,
    /// A new health gate.
    pub gate: Option<HealthGate>,
}

impl Rollout {
    /// This rollout with `edit` applied. Equal to `self` when the edit changes nothing.
    pub fn edited(&self, edit: RolloutEdit) -> Rollout {
        let mut next = self.clone();
        let RolloutEdit { percent, allow, deny, rules, state, interactive_bypass, schedule, gate } = edit;
        next.percent = percent.unwrap_or(next.percent);
        next.allow = allow.unwrap_or(next.allow);
        next.deny = deny.unwrap_or(next.deny);
        next.rules = rules.unwrap_or(next.rules);
        next.state = state.unwrap_or(next.state);
        next.interactive_bypass = interactive_bypass.unwrap_or(next.interactive_bypass);
        next.schedule = schedule.or(next.schedule);
        next.gate = gate.or(next.gate);
        next
    }

    /// Checks that a new scheduled rollout starts at its schedule's first step. (Only new
    /// rollouts: a stored one has moved along its schedule.)
    pub fn check_start(&self) -> Result<(), ParseError> {
        match &self.schedule {
            Some(s) if s.first() != self.percent => Err(ParseError::new(
                What::Rollout,
                &self.release.to_string(),
                format!(
                    "a scheduled rollout starts at its first step: basis_points must be {}",
                    s.first().basis_points()
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The key that positions `c` in this rollout's buckets.
    pub fn stickiness_key<'c>(&self, c: &'c CheckIn) -> &'c str {
        match (self.stickiness, &c.user_id) {
            (Stickiness::User, Some(u)) => u.as_str(),
            _ => c.device_id.as_str(),
        }
    }

    /// The bucket of `c` in this rollout.
    pub fn bucket_of(&self, c: &CheckIn) -> Bucket {
        bucket(self.salt.as_str(), self.stickiness_key(c))
    }

    /// Decides whether `c` is inside this rollout. Order: halted, deny list, rules (every rule
    /// applies to allow-listed devices too), then allow list, interactive bypass, percentage.
    pub fn evaluate(&self, c: &CheckIn) -> Result<Admission, Exclusion> {
        if self.state == RolloutState::Halted {
            return Err(Exclusion::Halted);
        }
        if self.deny.lists(c) {
            return Err(Exclusion::Denied);
        }
        if let Some(i) = self.rules.iter().position(|r| !r.matches(c)) {
            return Err(Exclusion::Rule(i));
        }
        if let Some(slot) = self.arm {
            // An arm admits by its range only, so that a device is in at most one arm of an
            // experiment; a promoted winner is an ordinary rollout again, with a range.
            let b = self.bucket_of(c);
            let listed = slot.is_promoted() && self.allow.lists(c);
            return if listed {
                Ok(Admission::AllowList)
            } else if slot.admits(self.percent, b) {
                Ok(Admission::Arm { bucket: b, slot, percent: self.percent })
            } else {
                Err(Exclusion::OutsideArm { bucket: b, slot, percent: self.percent })
            };
        }
        if self.allow.lists(c) {
            return Ok(Admission::AllowList);
        }
        if self.interactive_bypass && c.kind == CheckKind::Interactive {
            return Ok(Admission::Interactive);
        }
        match self.percent {
            Percent::NONE => Err(Exclusion::Outside { bucket: self.bucket_of(c), percent: self.percent }),
            Percent::FULL => Ok(Admission::Bucket { bucket: self.bucket_of(c), percent: self.percent }),
            p => {
                let b = self.bucket_of(c);
                if p.admits(b) {
                    Ok(Admission::Bucket { bucket: b, percent: p })
                } else {
                    Err(Exclusion::Outside { bucket: b, percent: p })
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_os_version_floor_is_the_highest_inclusive_bound() {
        // Each string is the range of an os_version rule; "os" is a rule on something else.
        fn check(ranges: &[&str], expected: Option<&str>) {
            let rule = |r: &&str| match *r {
                "os" => Rule::OsIn(vec![crate::Os::parse("macos").unwrap()]),
                range => Rule::OsVersion(crate::Range::parse(range).unwrap()),
            };
            let rules = Rules::new(ranges.iter().map(rule).collect()).unwrap();
            assert_eq!(rules.os_version_floor().map(OsVersion::as_str), expected, "{rules:?}");
        }
        check(&[], None);
        check(&["os"], None);
        check(&[">=13.0"], Some("13.0"));
        check(&["os", ">=12, <15", ">=13.5"], Some("13.5"));
        check(&[">13"], None);
        check(&["<15"], None);
        check(&["=14.2"], Some("14.2"));
    }

    #[test]
    fn percents_parse_and_print() {
        for (s, bp, shown) in [
            ("5%", 500, "5%"),
            ("12.5", 1250, "12.5%"),
            ("0.01%", 1, "0.01%"),
            ("100%", 10_000, "100%"),
            ("0", 0, "0%"),
        ] {
            let p = Percent::parse(s).unwrap();
            assert_eq!(p.basis_points(), bp, "{s}");
            assert_eq!(p.to_string(), shown);
        }
        for bad in ["", "%", "101%", "1.234%", "-1", "abc", "1e2"] {
            assert!(Percent::parse(bad).is_err(), "{bad:?}");
        }
        for over in ["150%", "999.99%", "100.5"] {
            let e = Percent::parse(over).unwrap_err().to_string();
            assert!(e.contains(&format!("{over:?}")) && e.contains("0% to 100%"), "{e}");
        }
        assert!(Percent::from_basis_points(10_001).unwrap_err().to_string().contains("0 to 10000"));
        assert!(serde_json::from_str::<Percent>("10001").is_err());
    }

    #[test]
    fn an_edit_changes_what_it_names_and_nothing_else() {
        let r = crate::test_support::rollout("1.2.0", "stable", 100);
        assert_eq!(r.edited(RolloutEdit::default()), r, "an empty edit changes nothing");
        let half = Percent::from_basis_points(5_000).unwrap();
        let edited =
            r.edited(RolloutEdit { percent: Some(half), state: Some(RolloutState::Paused), ..Default::default() });
        assert_eq!(edited, Rollout { percent: half, state: RolloutState::Paused, ..r.clone() });
        let cleared = edited.edited(RolloutEdit { rules: Some(Rules::default()), ..Default::default() });
        assert!(cleared.rules.is_empty());
        let many = vec![serde_json::from_str(r#"{"kind":"os_in","values":["linux"]}"#).unwrap(); MAX_RULES + 1];
        let e = Rules::new(many).unwrap_err();
        assert_eq!(e.to_string(), r#"invalid rollout "rules": at most 32 rules"#);
        assert_eq!(Rules::new(vec![]).unwrap().len(), 0);
    }

    #[test]
    fn a_share_admits_exactly_the_buckets_below_it() {
        use crate::Bucket;
        // The edges: nobody, the lowest and highest bucket, and each side of every boundary.
        assert!(!Percent::NONE.admits(Bucket::at(0)), "0% admits nobody, not even bucket 0");
        assert!(Percent::FULL.admits(Bucket::at(0)));
        assert!(Percent::FULL.admits(Bucket::at(9_999)), "100% admits the last bucket");
        for bp in [1u16, 100, 5_000, 9_999] {
            let p = Percent::from_basis_points(bp).unwrap();
            assert!(p.admits(Bucket::at(bp - 1)), "{p} admits bucket {}", bp - 1);
            assert!(!p.admits(Bucket::at(bp)), "{p} does not admit bucket {bp}");
        }
    }
}
