//! What a device sends when it asks what to run: [`CheckIn`], with its identity
//! ([`DeviceId`], [`UserId`]), [`Locale`] and [`Traits`].

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use crate::error::{ParseError, What, check_printable, check_slug, string_newtype};
use crate::{ChannelName, Platform, Version};

/// A device's stable random id (the SDK makes one of 128 bits): 1–128 printable characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeviceId(Box<str>);

impl DeviceId {
    /// Parses a device id.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_printable(What::DeviceId, s, 128)?;
        Ok(DeviceId(s.into()))
    }
}
string_newtype!(DeviceId);

/// The signed-in user's id, set by the app so a rollout follows a person across devices:
/// 1–128 printable characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(Box<str>);

impl UserId {
    /// Parses a user id.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_printable(What::UserId, s, 128)?;
        Ok(UserId(s.into()))
    }
}
string_newtype!(UserId);

/// A BCP 47-style locale such as `zh-CN`, `en`, `pt-BR`. Kept in lowercase with `-` separators
/// (`zh_CN` is read as `zh-cn`), so matching is case-insensitive.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Locale(Box<str>);

impl Locale {
    /// Parses a locale: a 2–8 letter language, then `-`-separated subtags of 1–8 letters or
    /// digits; 35 characters at most.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() > 35 {
            return Err(ParseError::new(What::Locale, s, "must be at most 35 characters"));
        }
        let norm = s.replace('_', "-").to_ascii_lowercase();
        let mut subtags = norm.split('-');
        let lang = subtags.next().unwrap_or_default();
        if !(2..=8).contains(&lang.len()) || !lang.chars().all(|c| c.is_ascii_lowercase()) {
            return Err(ParseError::new(
                What::Locale,
                s,
                "must start with a 2-8 letter language code, like zh or en-US",
            ));
        }
        if !subtags.all(|t| (1..=8).contains(&t.len()) && t.chars().all(|c| c.is_ascii_alphanumeric())) {
            return Err(ParseError::new(
                What::Locale,
                s,
                "subtags after the language must be 1-8 letters or digits, like zh-CN",
            ));
        }
        Ok(Locale(norm.into()))
    }

    /// True if `self` is `prefix` or starts with `prefix` followed by a subtag:
    /// `zh-cn` matches `zh` and `zh-cn`, but not `zh-c`.
    pub fn has_prefix(&self, prefix: &Locale) -> bool {
        self.0.strip_prefix(&*prefix.0).is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
    }
}
string_newtype!(Locale);

/// A device trait's name: 1–64 characters of `[a-z0-9_.-]`, starting with a letter or digit.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraitName(Box<str>);

impl TraitName {
    /// Parses a trait name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_slug(
            What::TraitName,
            s,
            64,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'),
            "lowercase letters, digits, '_', '.' and '-'",
        )?;
        Ok(TraitName(s.into()))
    }
}
string_newtype!(TraitName);

/// A device trait's value: a string (up to 256 characters), a finite number, or a boolean.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum TraitValue {
    /// A string, compared exactly.
    Str(Box<str>),
    /// A finite number.
    Num(f64),
    /// A boolean.
    Bool(bool),
}

impl TraitValue {
    /// A string value, if it is at most 256 characters without control characters.
    pub fn string(s: &str) -> Result<Self, ParseError> {
        if s.chars().count() > 256 || s.chars().any(char::is_control) {
            return Err(ParseError::new(
                What::TraitValue,
                s,
                "strings are at most 256 characters without control characters",
            ));
        }
        Ok(TraitValue::Str(s.into()))
    }

    /// A number value, if it is finite.
    pub fn number(n: f64) -> Result<Self, ParseError> {
        if !n.is_finite() {
            return Err(ParseError::new(What::TraitValue, &n.to_string(), "must be finite"));
        }
        Ok(TraitValue::Num(n))
    }
}

impl fmt::Display for TraitValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TraitValue::Str(s) => write!(f, "{s:?}"),
            TraitValue::Num(n) => write!(f, "{n}"),
            TraitValue::Bool(b) => write!(f, "{b}"),
        }
    }
}

impl<'de> serde::Deserialize<'de> for TraitValue {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = TraitValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, a number or a boolean")
            }
            fn visit_bool<E: serde::de::Error>(self, b: bool) -> Result<TraitValue, E> {
                Ok(TraitValue::Bool(b))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<TraitValue, E> {
                Ok(TraitValue::Num(n as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<TraitValue, E> {
                Ok(TraitValue::Num(n as f64))
            }
            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<TraitValue, E> {
                TraitValue::number(n).map_err(E::custom)
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<TraitValue, E> {
                TraitValue::string(s).map_err(E::custom)
            }
        }
        d.deserialize_any(V)
    }
}

/// A device's traits: up to 64 named values the app reports (tier, RAM, region, ...).
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct Traits(BTreeMap<TraitName, TraitValue>);

/// The most traits one check-in may carry.
pub const MAX_TRAITS: usize = 64;

impl Traits {
    /// Traits from name/value pairs; more than [`MAX_TRAITS`] is an error.
    pub fn new(map: BTreeMap<TraitName, TraitValue>) -> Result<Self, ParseError> {
        if map.len() > MAX_TRAITS {
            return Err(ParseError::new(
                What::CheckIn,
                &format!("{} traits", map.len()),
                format!("at most {MAX_TRAITS} traits"),
            ));
        }
        Ok(Traits(map))
    }

    /// The value of trait `name`, if the device reported it.
    pub fn get(&self, name: &str) -> Option<&TraitValue> {
        self.0.get(name)
    }

    /// All traits, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&TraitName, &TraitValue)> {
        self.0.iter()
    }
}

impl<'de> serde::Deserialize<'de> for Traits {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<TraitName, TraitValue>::deserialize(d)?;
        Traits::new(map).map_err(serde::de::Error::custom)
    }
}

/// Whether a person asked for this check ("Check for updates" pressed) or the app polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CheckKind {
    /// A periodic poll in the background.
    #[default]
    Background,
    /// The user asked; rollouts that opt in let such checks bypass their percentage.
    Interactive,
}

/// One device asking what it should run. Built by the server from the request body and the
/// connection's client address.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckIn {
    /// The device's stable id.
    pub device_id: DeviceId,
    /// The signed-in user, if any.
    pub user_id: Option<UserId>,
    /// The version the device runs now.
    pub current_version: Version,
    /// The channel chosen in the app's settings.
    pub channel: ChannelName,
    /// Os, arch and os version.
    pub platform: Platform,
    /// The device's locale, if reported.
    pub locale: Option<Locale>,
    /// App-reported traits.
    pub traits: Traits,
    /// The client's IP address as the server sees it (after trusted proxies).
    pub ip: Option<IpAddr>,
    /// Background poll or user-initiated check.
    pub kind: CheckKind,
}

impl CheckIn {
    /// This check-in on the channel it is served as ([`Ladder::serving`](crate::Ladder::serving)):
    /// unchanged when the app has the channel it names, else moved to `stable`, with the
    /// channel it named kept in [`Served::named`] (its events and report tokens name that one).
    pub fn served_on(mut self, ladder: &crate::Ladder) -> Served {
        let named = match ladder.serving(self.channel.as_str()) {
            crate::Serving::Own(_) => None,
            crate::Serving::Fallback(to) => Some(std::mem::replace(&mut self.channel, to.clone())),
        };
        Served { checkin: self, named }
    }
}

/// A check-in on the channel it is served as: [`CheckIn::served_on`].
#[derive(Debug, Clone, PartialEq)]
pub struct Served {
    /// The check-in, its channel one the app has.
    pub checkin: CheckIn,
    /// The channel the device named, when the app has no such channel.
    pub named: Option<ChannelName>,
}

impl Served {
    /// The channel the device named: its events and report tokens use this one.
    pub fn named_channel(&self) -> &ChannelName {
        self.named.as_ref().unwrap_or(&self.checkin.channel)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_normalise_and_match_by_subtag() {
        let zh_cn = Locale::parse("zh_CN").unwrap();
        assert_eq!(zh_cn.as_str(), "zh-cn");
        assert!(zh_cn.has_prefix(&Locale::parse("zh").unwrap()));
        assert!(zh_cn.has_prefix(&Locale::parse("zh-CN").unwrap()));
        assert!(!zh_cn.has_prefix(&Locale::parse("zh-TW").unwrap()));
        assert!(!Locale::parse("zhx").unwrap().has_prefix(&Locale::parse("zh").unwrap()));
        for bad in ["", "z", "12", "zh-", "zh--cn", "zh-toolongsubtag"] {
            assert!(Locale::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ids_are_printable() {
        assert!(DeviceId::parse("3f2a9c4e-device").is_ok());
        assert!(DeviceId::parse("设备-1").is_ok());
        assert!(DeviceId::parse("").unwrap_err().to_string().contains("empty"));
        assert!(DeviceId::parse("a\nb").unwrap_err().to_string().contains("control"));
        assert!(DeviceId::parse(" a").unwrap_err().to_string().contains("whitespace"));
        assert!(DeviceId::parse(&"d".repeat(129)).unwrap_err().to_string().contains("at most 128"));
        assert!(UserId::parse(&"u".repeat(128)).is_ok());
    }

    #[test]
    fn traits_parse_from_json() {
        let t: Traits = serde_json::from_str(r#"{"tier":"gold","ram_gb":8,"beta":true}"#).unwrap();
        assert_eq!(t.get("tier"), Some(&TraitValue::Str("gold".into())));
        assert_eq!(t.get("ram_gb"), Some(&TraitValue::Num(8.0)));
        assert_eq!(t.get("beta"), Some(&TraitValue::Bool(true)));
        assert!(serde_json::from_str::<Traits>(r#"{"Tier":"x"}"#).is_err());
        assert!(serde_json::from_str::<Traits>(r#"{"t":[1]}"#).is_err());
        assert!(serde_json::from_str::<Traits>(r#"{"t":null}"#).is_err());
        let many: String = (0..65).map(|i| format!("\"t{i}\":1")).collect::<Vec<_>>().join(",");
        let e = serde_json::from_str::<Traits>(&format!("{{{many}}}")).unwrap_err();
        assert!(e.to_string().contains("at most 64"), "{e}");
    }
}
