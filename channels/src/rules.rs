//! Targeting rules over a device's traits: [`Rule`] and [`TraitCondition`].
//!
//! A rollout's rules are ANDed. A rule about something the device did not report (no os
//! version, no locale, no such trait, no IP) does not match: targeting is conservative, so an
//! unknown device is never pulled into an audience it might not belong to.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{ParseError, What};
use crate::wire::{RuleKind, RuleSpec, TraitOp};
use crate::{Arch, CheckIn, Locale, Os, OsVersion, Range, TraitName, TraitValue, Version};

/// The most values one rule may list.
pub const MAX_RULE_VALUES: usize = 1000;

/// One targeting condition on a check-in.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "RuleSpec", into = "RuleSpec")]
pub enum Rule {
    /// The device's os is one of these.
    OsIn(Vec<Os>),
    /// The device's arch is one of these.
    ArchIn(Vec<Arch>),
    /// The device's os version is in the range.
    OsVersion(Range<OsVersion>),
    /// The app version the device runs now is in the range.
    AppVersion(Range<Version>),
    /// The device's locale starts with one of these (by subtag: `zh` matches `zh-CN`).
    LocaleIn(Vec<Locale>),
    /// A condition on one of the app-reported traits.
    Trait {
        /// The trait.
        name: TraitName,
        /// What it must satisfy.
        condition: TraitCondition,
    },
    /// The client IP is in one of these networks.
    IpIn(Vec<IpNet>),
}

/// A condition on one trait's value.
#[derive(Debug, Clone, PartialEq)]
pub enum TraitCondition {
    /// Equal to the value (same type and value).
    Eq(TraitValue),
    /// Present and not equal to the value.
    Ne(TraitValue),
    /// Equal to one of the values.
    In(Vec<TraitValue>),
    /// Present and equal to none of the values.
    NotIn(Vec<TraitValue>),
    /// Present, whatever its value.
    Exists,
    /// A number below the bound.
    Lt(f64),
    /// A number at or below the bound.
    Le(f64),
    /// A number above the bound.
    Gt(f64),
    /// A number at or above the bound.
    Ge(f64),
}

impl TraitCondition {
    fn holds(&self, value: Option<&TraitValue>) -> bool {
        let Some(v) = value else { return false };
        let num = match v {
            TraitValue::Num(n) => Some(*n),
            _ => None,
        };
        match self {
            TraitCondition::Eq(x) => v == x,
            TraitCondition::Ne(x) => v != x,
            TraitCondition::In(xs) => xs.contains(v),
            TraitCondition::NotIn(xs) => !xs.contains(v),
            TraitCondition::Exists => true,
            TraitCondition::Lt(b) => num.is_some_and(|n| n < *b),
            TraitCondition::Le(b) => num.is_some_and(|n| n <= *b),
            TraitCondition::Gt(b) => num.is_some_and(|n| n > *b),
            TraitCondition::Ge(b) => num.is_some_and(|n| n >= *b),
        }
    }
}

impl Rule {
    /// True iff the check-in satisfies the rule.
    pub fn matches(&self, c: &CheckIn) -> bool {
        match self {
            Rule::OsIn(v) => v.contains(&c.platform.target.os),
            Rule::ArchIn(v) => v.contains(&c.platform.target.arch),
            Rule::OsVersion(r) => c.platform.os_version.as_ref().is_some_and(|v| r.contains(v)),
            Rule::AppVersion(r) => r.contains(&c.current_version),
            Rule::LocaleIn(v) => c.locale.as_ref().is_some_and(|l| v.iter().any(|p| l.has_prefix(p))),
            Rule::Trait { name, condition } => condition.holds(c.traits.get(name.as_str())),
            Rule::IpIn(nets) => c.ip.is_some_and(|ip| nets.iter().any(|n| n.contains(&canonical(ip)))),
        }
    }

    /// What the device reported for the thing this rule looks at, for explanations.
    pub fn observed(&self, c: &CheckIn) -> String {
        fn or_unknown<T: fmt::Display>(v: Option<&T>) -> String {
            v.map_or_else(|| "not reported".to_owned(), |v| v.to_string())
        }
        match self {
            Rule::OsIn(_) => c.platform.target.os.to_string(),
            Rule::ArchIn(_) => c.platform.target.arch.to_string(),
            Rule::OsVersion(_) => or_unknown(c.platform.os_version.as_ref()),
            Rule::AppVersion(_) => c.current_version.to_string(),
            Rule::LocaleIn(_) => or_unknown(c.locale.as_ref()),
            Rule::Trait { name, .. } => or_unknown(c.traits.get(name.as_str())),
            Rule::IpIn(_) => or_unknown(c.ip.as_ref()),
        }
    }
}

/// An IPv4 address that arrives mapped into IPv6 (`::ffff:10.0.0.1`) is matched as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `::ffff:10.0.0.0/104` is the IPv4 network 10.0.0.0/8: client addresses are matched as
/// IPv4 when they are IPv4-mapped, so networks must be too.
fn canonical_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        other => other,
    }
}

fn list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T]) -> fmt::Result {
    f.write_str("[")?;
    for (i, x) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{x}")?;
    }
    f.write_str("]")
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rule::OsIn(v) => {
                f.write_str("os in ")?;
                list(f, v)
            }
            Rule::ArchIn(v) => {
                f.write_str("arch in ")?;
                list(f, v)
            }
            Rule::OsVersion(r) => write!(f, "os_version {r}"),
            Rule::AppVersion(r) => write!(f, "app_version {r}"),
            Rule::LocaleIn(v) => {
                f.write_str("locale in ")?;
                list(f, v)
            }
            Rule::IpIn(v) => {
                f.write_str("ip in ")?;
                list(f, v)
            }
            Rule::Trait { name, condition } => {
                write!(f, "trait {name} ")?;
                match condition {
                    TraitCondition::Eq(x) => write!(f, "= {x}"),
                    TraitCondition::Ne(x) => write!(f, "!= {x}"),
                    TraitCondition::In(xs) => {
                        f.write_str("in ")?;
                        list(f, xs)
                    }
                    TraitCondition::NotIn(xs) => {
                        f.write_str("not in ")?;
                        list(f, xs)
                    }
                    TraitCondition::Exists => f.write_str("exists"),
                    TraitCondition::Lt(b) => write!(f, "< {b}"),
                    TraitCondition::Le(b) => write!(f, "<= {b}"),
                    TraitCondition::Gt(b) => write!(f, "> {b}"),
                    TraitCondition::Ge(b) => write!(f, ">= {b}"),
                }
            }
        }
    }
}

fn rule_err(reason: impl Into<std::borrow::Cow<'static, str>>, kind: RuleKind) -> ParseError {
    ParseError::new(What::Rule, kind.as_str(), reason)
}

fn strings<T>(
    kind: RuleKind,
    values: Option<Vec<TraitValue>>,
    parse: fn(&str) -> Result<T, ParseError>,
) -> Result<Vec<T>, ParseError> {
    let values = values.ok_or_else(|| rule_err("needs \"values\": a non-empty list", kind))?;
    if values.is_empty() || values.len() > MAX_RULE_VALUES {
        return Err(rule_err(format!("\"values\" must hold 1 to {MAX_RULE_VALUES} entries"), kind));
    }
    values
        .iter()
        .map(|v| match v {
            TraitValue::Str(s) => parse(s).map_err(|e| rule_err(e.to_string(), kind)),
            other => Err(rule_err(format!("\"values\" must be strings, found {other}"), kind)),
        })
        .collect()
}

impl TryFrom<RuleSpec> for Rule {
    type Error = ParseError;
    fn try_from(w: RuleSpec) -> Result<Self, ParseError> {
        let kind = w.kind;
        let range = |r: Option<String>| r.ok_or_else(|| rule_err("needs \"range\", like \">=1.2.0, <2.0.0\"", kind));
        let expect_none = |present: bool, field: &str| {
            if present { Err(rule_err(format!("\"{field}\" does not apply to this kind"), kind)) } else { Ok(()) }
        };
        if !matches!(kind, RuleKind::OsVersion | RuleKind::AppVersion | RuleKind::Trait) {
            expect_none(w.range.is_some(), "range")?;
        }
        if kind != RuleKind::Trait {
            expect_none(w.name.is_some(), "name")?;
            expect_none(w.op.is_some(), "op")?;
            expect_none(w.value.is_some(), "value")?;
        }
        let rule = match kind {
            RuleKind::OsIn => Rule::OsIn(strings(kind, w.values, Os::parse)?),
            RuleKind::ArchIn => Rule::ArchIn(strings(kind, w.values, Arch::parse)?),
            RuleKind::LocaleIn => Rule::LocaleIn(strings(kind, w.values, Locale::parse)?),
            RuleKind::IpIn => Rule::IpIn(strings(kind, w.values, |s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| canonical_net(n).trunc())
                    .map_err(|_| ParseError::new(What::Rule, s, "expected a CIDR like 10.0.0.0/8 or an IP address"))
            })?),
            RuleKind::OsVersion => {
                expect_none(w.values.is_some(), "values")?;
                Rule::OsVersion(range(w.range)?.parse().map_err(|e: ParseError| rule_err(e.to_string(), kind))?)
            }
            RuleKind::AppVersion => {
                expect_none(w.values.is_some(), "values")?;
                Rule::AppVersion(range(w.range)?.parse().map_err(|e: ParseError| rule_err(e.to_string(), kind))?)
            }
            RuleKind::Trait => {
                expect_none(w.range.is_some(), "range")?;
                let name = w.name.ok_or_else(|| rule_err("needs \"name\"", kind))?;
                let op =
                    w.op.ok_or_else(|| rule_err("needs \"op\": eq, ne, in, not_in, exists, lt, le, gt or ge", kind))?;
                let number = |v: Option<TraitValue>| match v {
                    Some(TraitValue::Num(n)) => Ok(n),
                    _ => Err(rule_err(format!("op {} needs a numeric \"value\"", op.as_str()), kind)),
                };
                let one = |v: Option<TraitValue>| {
                    v.ok_or_else(|| rule_err(format!("op {} needs \"value\"", op.as_str()), kind))
                };
                let many = |v: Option<Vec<TraitValue>>| match v {
                    Some(v) if !v.is_empty() && v.len() <= MAX_RULE_VALUES => Ok(v),
                    _ => Err(rule_err(
                        format!("op {} needs \"values\": 1 to {MAX_RULE_VALUES} entries", op.as_str()),
                        kind,
                    )),
                };
                let single =
                    matches!(op, TraitOp::Eq | TraitOp::Ne | TraitOp::Lt | TraitOp::Le | TraitOp::Gt | TraitOp::Ge);
                expect_none(single && w.values.is_some(), "values")?;
                expect_none(!single && w.value.is_some(), "value")?;
                let condition = match op {
                    TraitOp::Eq => TraitCondition::Eq(one(w.value)?),
                    TraitOp::Ne => TraitCondition::Ne(one(w.value)?),
                    TraitOp::In => TraitCondition::In(many(w.values)?),
                    TraitOp::NotIn => TraitCondition::NotIn(many(w.values)?),
                    TraitOp::Exists => {
                        expect_none(w.values.is_some(), "values")?;
                        TraitCondition::Exists
                    }
                    TraitOp::Lt => TraitCondition::Lt(number(w.value)?),
                    TraitOp::Le => TraitCondition::Le(number(w.value)?),
                    TraitOp::Gt => TraitCondition::Gt(number(w.value)?),
                    TraitOp::Ge => TraitCondition::Ge(number(w.value)?),
                };
                return Ok(Rule::Trait { name, condition });
            }
        };
        Ok(rule)
    }
}

impl From<Rule> for RuleSpec {
    fn from(r: Rule) -> Self {
        let strs = |v: Vec<String>| Some(v.into_iter().map(|s| TraitValue::Str(s.into())).collect());
        let mut w = RuleSpec { kind: RuleKind::OsIn, values: None, range: None, name: None, op: None, value: None };
        match r {
            Rule::OsIn(v) => w.values = strs(v.into_iter().map(String::from).collect()),
            Rule::ArchIn(v) => {
                w.kind = RuleKind::ArchIn;
                w.values = strs(v.into_iter().map(String::from).collect())
            }
            Rule::LocaleIn(v) => {
                w.kind = RuleKind::LocaleIn;
                w.values = strs(v.into_iter().map(String::from).collect())
            }
            Rule::IpIn(v) => {
                w.kind = RuleKind::IpIn;
                w.values = strs(v.iter().map(ToString::to_string).collect())
            }
            Rule::OsVersion(r) => {
                w.kind = RuleKind::OsVersion;
                w.range = Some(r.to_string())
            }
            Rule::AppVersion(r) => {
                w.kind = RuleKind::AppVersion;
                w.range = Some(r.to_string())
            }
            Rule::Trait { name, condition } => {
                w.kind = RuleKind::Trait;
                w.name = Some(name);
                let (op, value, values) = match condition {
                    TraitCondition::Eq(x) => (TraitOp::Eq, Some(x), None),
                    TraitCondition::Ne(x) => (TraitOp::Ne, Some(x), None),
                    TraitCondition::In(xs) => (TraitOp::In, None, Some(xs)),
                    TraitCondition::NotIn(xs) => (TraitOp::NotIn, None, Some(xs)),
                    TraitCondition::Exists => (TraitOp::Exists, None, None),
                    TraitCondition::Lt(b) => (TraitOp::Lt, Some(TraitValue::Num(b)), None),
                    TraitCondition::Le(b) => (TraitOp::Le, Some(TraitValue::Num(b)), None),
                    TraitCondition::Gt(b) => (TraitOp::Gt, Some(TraitValue::Num(b)), None),
                    TraitCondition::Ge(b) => (TraitOp::Ge, Some(TraitValue::Num(b)), None),
                };
                w.op = Some(op);
                w.value = value;
                w.values = values;
            }
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::checkin;

    fn rule(json: &str) -> Rule {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn check(json: &str, edit: impl FnOnce(&mut CheckIn), expected: bool) {
        let mut c = checkin("dev-1", "1.0.0");
        edit(&mut c);
        assert_eq!(rule(json).matches(&c), expected, "{json} on {c:?}");
    }

    #[test]
    fn os_and_arch() {
        check(r#"{"kind":"os_in","values":["windows","linux"]}"#, |_| {}, true);
        check(r#"{"kind":"os_in","values":["macos"]}"#, |_| {}, false);
        check(r#"{"kind":"arch_in","values":["x86_64"]}"#, |_| {}, true);
        check(r#"{"kind":"arch_in","values":["aarch64"]}"#, |_| {}, false);
    }

    #[test]
    fn os_version() {
        let r = r#"{"kind":"os_version","range":">=10.0.19041"}"#;
        check(r, |c| c.platform.os_version = Some("10.0.19045".parse().unwrap()), true);
        check(r, |c| c.platform.os_version = Some("10.0.17763".parse().unwrap()), false);
        check(r, |c| c.platform.os_version = None, false);
    }

    #[test]
    fn app_version() {
        let r = r#"{"kind":"app_version","range":">1.0.0, <2.0.0"}"#;
        check(r, |c| c.current_version = "1.5.0-beta.1".parse().unwrap(), true);
        check(r, |c| c.current_version = "1.0.0".parse().unwrap(), false);
        check(r, |c| c.current_version = "2.0.0".parse().unwrap(), false);
    }

    #[test]
    fn locale() {
        let r = r#"{"kind":"locale_in","values":["zh","en-US"]}"#;
        check(r, |c| c.locale = Some("zh-CN".parse().unwrap()), true);
        check(r, |c| c.locale = Some("en-us".parse().unwrap()), true);
        check(r, |c| c.locale = Some("en-GB".parse().unwrap()), false);
        check(r, |c| c.locale = None, false);
    }

    #[test]
    fn ip() {
        let mapped = r#"{"kind":"ip_in","values":["::ffff:10.0.0.0/104"]}"#;
        check(mapped, |c| c.ip = Some("10.1.2.3".parse().unwrap()), true);
        check(mapped, |c| c.ip = Some("11.1.2.3".parse().unwrap()), false);
        let r = r#"{"kind":"ip_in","values":["10.0.0.0/8","2001:db8::/32","192.0.2.7"]}"#;
        check(r, |c| c.ip = Some("10.1.2.3".parse().unwrap()), true);
        check(r, |c| c.ip = Some("::ffff:10.1.2.3".parse().unwrap()), true);
        check(r, |c| c.ip = Some("2001:db8::1".parse().unwrap()), true);
        check(r, |c| c.ip = Some("192.0.2.7".parse().unwrap()), true);
        check(r, |c| c.ip = Some("192.0.2.8".parse().unwrap()), false);
        check(r, |c| c.ip = None, false);
    }

    #[test]
    fn traits() {
        let with = |json: &'static str| move |c: &mut CheckIn| c.traits = serde_json::from_str(json).unwrap();
        let t = r#"{"tier":"gold","ram":8,"beta":true}"#;
        check(r#"{"kind":"trait","name":"tier","op":"eq","value":"gold"}"#, with(t), true);
        check(r#"{"kind":"trait","name":"tier","op":"eq","value":"free"}"#, with(t), false);
        check(r#"{"kind":"trait","name":"tier","op":"ne","value":"free"}"#, with(t), true);
        check(r#"{"kind":"trait","name":"tier","op":"ne","value":"free"}"#, with("{}"), false);
        check(r#"{"kind":"trait","name":"tier","op":"in","values":["gold","silver"]}"#, with(t), true);
        check(r#"{"kind":"trait","name":"tier","op":"not_in","values":["gold"]}"#, with(t), false);
        check(r#"{"kind":"trait","name":"tier","op":"not_in","values":["free"]}"#, with(t), true);
        check(r#"{"kind":"trait","name":"beta","op":"exists"}"#, with(t), true);
        check(r#"{"kind":"trait","name":"beta","op":"exists"}"#, with("{}"), false);
        check(r#"{"kind":"trait","name":"beta","op":"eq","value":true}"#, with(t), true);
        check(r#"{"kind":"trait","name":"ram","op":"eq","value":8}"#, with(t), true);
        check(r#"{"kind":"trait","name":"ram","op":"lt","value":8}"#, with(t), false);
        check(r#"{"kind":"trait","name":"ram","op":"le","value":8}"#, with(t), true);
        check(r#"{"kind":"trait","name":"ram","op":"gt","value":4}"#, with(t), true);
        check(r#"{"kind":"trait","name":"ram","op":"ge","value":8.5}"#, with(t), false);
        check(r#"{"kind":"trait","name":"tier","op":"gt","value":1}"#, with(t), false);
    }

    #[test]
    fn rules_round_trip_through_json() {
        for json in [
            r#"{"kind":"os_in","values":["windows"]}"#,
            r#"{"kind":"app_version","range":">=1.2.0, <2.0.0"}"#,
            r#"{"kind":"trait","name":"ram","op":"ge","value":8.0}"#,
            r#"{"kind":"trait","name":"tier","op":"in","values":["gold",1,true]}"#,
            r#"{"kind":"ip_in","values":["10.0.0.0/8"]}"#,
        ] {
            let r = rule(json);
            let back: Rule = serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
            assert_eq!(r, back);
        }
        assert_eq!(rule(r#"{"kind":"trait","name":"ram","op":"ge","value":8}"#).to_string(), "trait ram >= 8");
    }

    #[test]
    fn bad_rules_say_why() {
        for (json, msg) in [
            (r#"{"kind":"os_in"}"#, "needs \"values\""),
            (r#"{"kind":"os_in","values":[]}"#, "1 to 1000"),
            (r#"{"kind":"os_in","values":[1]}"#, "must be strings"),
            (r#"{"kind":"os_in","values":["Windows"]}"#, "is not allowed"),
            (r#"{"kind":"os_version"}"#, "needs \"range\""),
            (r#"{"kind":"app_version","range":"~1"}"#, "invalid range"),
            (r#"{"kind":"trait","op":"eq","value":1}"#, "needs \"name\""),
            (r#"{"kind":"trait","name":"x","op":"lt","value":"a"}"#, "numeric"),
            (r#"{"kind":"trait","name":"x","op":"in","value":"a"}"#, "does not apply"),
            (r#"{"kind":"ip_in","values":["10.0.0.0/33"]}"#, "CIDR"),
            (r#"{"kind":"nope"}"#, "unknown variant"),
            (r#"{"kind":"os_in","values":["linux"],"extra":1}"#, "unknown field"),
            (r#"{"kind":"os_in","values":["linux"],"range":">1"}"#, "does not apply"),
        ] {
            let e = serde_json::from_str::<Rule>(json).unwrap_err().to_string();
            assert!(e.contains(msg), "{json}: {e}");
        }
    }
}
