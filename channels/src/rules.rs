//! Targeting rules over a device's traits: [`Rule`] and [`TraitCondition`].
//!
//! A rollout's rules are ANDed. A rule about something the device did not report (no os
//! version, no locale, no such trait, no IP) does not match: targeting is conservative, so an
//! unknown device is never pulled into an audience it might not belong to.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::error::{ParseError, What};
use crate::{Arch, CheckIn, Locale, Os, OsVersion, Range, TraitName, TraitValue, Version};

/// The most values one rule may list.
pub const MAX_RULE_VALUES: usize = 1000;

/// One targeting condition on a check-in.
///
/// Its JSON form is `wire::RuleSpec`; the wire module converts both ways.
#[derive(Debug, Clone, PartialEq)]
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

/// Parses a network of an `ip_in` rule: a CIDR, or one address. An IPv4-mapped network is
/// kept as IPv4 (as client addresses are matched) and host bits are cleared.
pub(crate) fn parse_network(s: &str) -> Result<IpNet, ParseError> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map(|n| canonical_net(n).trunc())
        .map_err(|_| ParseError::new(What::Rule, s, "expected a CIDR like 10.0.0.0/8 or an IP address"))
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
}
