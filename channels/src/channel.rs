//! Channels and their order of stability: [`ChannelName`], [`Ladder`].
//!
//! Every app has the built-in channels `stable`, `beta` and `unstable`, and may add its own
//! with an explicit rank. A lower rank is more stable. A device on a channel sees releases
//! rolled out on that channel and on every more stable one, so an unstable device is offered
//! a newer stable build too.

use std::collections::BTreeMap;

use crate::error::{ParseError, What, check_slug, string_newtype};

/// A channel's name: 1–32 characters of `[a-z0-9_-]`, starting with a letter or digit.
/// Shared (`Arc`): a clone allocates nothing, and [`Ladder::name`] hands out the app's own.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(std::sync::Arc<str>);

impl ChannelName {
    /// Parses a channel name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        check_slug(
            What::Channel,
            s,
            32,
            |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
            |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'),
            "lowercase letters, digits, '_' and '-'",
        )?;
        Ok(ChannelName(s.into()))
    }

    /// The built-in `stable` channel.
    pub fn stable() -> Self {
        ChannelName("stable".into())
    }

    /// The built-in `beta` channel.
    pub fn beta() -> Self {
        ChannelName("beta".into())
    }

    /// The built-in `unstable` channel.
    pub fn unstable() -> Self {
        ChannelName("unstable".into())
    }
}
string_newtype!(ChannelName);

/// A channel's stability rank: lower is more stable.
pub type Rank = u16;

/// The built-in channels and their ranks. Custom ranks may sit anywhere around them.
pub const BUILT_IN: [(&str, Rank); 3] = [("stable", 100), ("beta", 200), ("unstable", 300)];

/// Why a set of custom channels was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LadderError {
    /// A custom channel reuses a built-in name.
    #[error("channel {0} is built in and cannot be redefined")]
    BuiltIn(ChannelName),
    /// Two channels share a name.
    #[error("channel {0} is defined twice")]
    DuplicateName(ChannelName),
    /// Two channels share a rank, so their order would be ambiguous.
    #[error("channels {0} and {1} both have rank {2}; ranks must differ")]
    DuplicateRank(ChannelName, ChannelName, Rank),
    /// More channels than [`MAX_CHANNELS`](crate::MAX_CHANNELS) in all.
    #[error("an app has at most {} channels", crate::MAX_CHANNELS)]
    TooMany,
}

/// An app's channels ordered by stability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ladder {
    ranks: BTreeMap<ChannelName, Rank>,
}

impl Default for Ladder {
    fn default() -> Self {
        Ladder { ranks: BUILT_IN.iter().map(|&(n, r)| (ChannelName(n.into()), r)).collect() }
    }
}

/// Which channel a device is served as: [`Ladder::serving`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serving<'l> {
    /// The app has the channel the device named.
    Own(&'l ChannelName),
    /// The app has no channel of that name: the device is served as on this one (`stable`).
    Fallback(&'l ChannelName),
}

impl Ladder {
    /// The built-in channels plus `custom` ones, each with its rank.
    pub fn with_custom(custom: impl IntoIterator<Item = (ChannelName, Rank)>) -> Result<Self, LadderError> {
        let mut ladder = Ladder::default();
        for (name, rank) in custom {
            if BUILT_IN.iter().any(|(n, _)| *n == name.as_str()) {
                return Err(LadderError::BuiltIn(name));
            }
            if ladder.ranks.contains_key(&name) {
                return Err(LadderError::DuplicateName(name));
            }
            if let Some((other, _)) = ladder.ranks.iter().find(|(_, r)| **r == rank) {
                return Err(LadderError::DuplicateRank(other.clone(), name, rank));
            }
            ladder.ranks.insert(name, rank);
            if ladder.ranks.len() > crate::MAX_CHANNELS {
                return Err(LadderError::TooMany);
            }
        }
        Ok(ladder)
    }

    /// The app's own name of `channel` (cloning it shares it), or `None` if there is none.
    pub fn name(&self, channel: &str) -> Option<&ChannelName> {
        self.ranks.get_key_value(channel).map(|(name, _)| name)
    }

    /// The rank of `channel`, or `None` if the app has no such channel.
    pub fn rank(&self, channel: &str) -> Option<Rank> {
        self.ranks.get(channel).copied()
    }

    /// The channel a device that names `channel` is served as: the app's own channel of that
    /// name, or, when the app has none (a custom channel was removed, or the app never had it),
    /// the built-in `stable`, which every app has and which is at least as stable as any
    /// channel a release engineer would remove for being experimental. Such a device is never
    /// stranded.
    pub fn serving(&self, channel: &str) -> Serving<'_> {
        match self.name(channel) {
            Some(own) => Serving::Own(own),
            None => Serving::Fallback(self.name(BUILT_IN[0].0).expect("every ladder has the built-in stable channel")),
        }
    }

    /// True if the channel exists for this app.
    pub fn contains(&self, channel: &str) -> bool {
        self.ranks.contains_key(channel)
    }

    /// Whether a device on `device` sees releases rolled out on `release`: iff `release` is as
    /// stable as `device` or more. `None` if either channel is unknown.
    pub fn sees(&self, device: &str, release: &str) -> Option<bool> {
        Some(self.rank(release)? <= self.rank(device)?)
    }

    /// The channels a device on `device` sees, the device's own first, then ever more stable.
    pub fn visible_from(&self, device: &str) -> Vec<&ChannelName> {
        let Some(own) = self.rank(device) else {
            return Vec::new();
        };
        let mut seen: Vec<(&ChannelName, Rank)> =
            self.ranks.iter().filter(|(_, r)| **r <= own).map(|(n, r)| (n, *r)).collect();
        seen.sort_by_key(|(_, r)| std::cmp::Reverse(*r));
        seen.into_iter().map(|(n, _)| n).collect()
    }

    /// Every channel, most stable first.
    pub fn channels(&self) -> Vec<(&ChannelName, Rank)> {
        let mut all: Vec<_> = self.ranks.iter().map(|(n, r)| (n, *r)).collect();
        all.sort_by_key(|(_, r)| *r);
        all
    }

    /// The channels that are not built in, with their ranks.
    pub fn custom(&self) -> Vec<(ChannelName, Rank)> {
        self.channels()
            .into_iter()
            .filter(|(n, _)| !BUILT_IN.iter().any(|(b, _)| *b == n.as_str()))
            .map(|(n, r)| (n.clone(), r))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(s: &str) -> ChannelName {
        ChannelName::parse(s).unwrap()
    }

    #[test]
    fn visibility_follows_stability() {
        let l = Ladder::default();
        for (device, release, sees) in [
            ("stable", "stable", true),
            ("stable", "beta", false),
            ("stable", "unstable", false),
            ("beta", "stable", true),
            ("beta", "beta", true),
            ("beta", "unstable", false),
            ("unstable", "stable", true),
            ("unstable", "beta", true),
            ("unstable", "unstable", true),
        ] {
            assert_eq!(l.sees(device, release), Some(sees), "{device} sees {release}");
        }
        assert_eq!(l.sees("nightly", "stable"), None);
        let names: Vec<_> = l.visible_from("beta").iter().map(|c| c.as_str()).collect();
        assert_eq!(names, ["beta", "stable"]);
    }

    #[test]
    fn custom_channels_slot_in_by_rank() {
        let l = Ladder::with_custom([(ch("internal"), 250), (ch("lts"), 50)]).unwrap();
        assert_eq!(l.sees("internal", "beta"), Some(true));
        assert_eq!(l.sees("beta", "internal"), Some(false));
        assert_eq!(l.sees("stable", "lts"), Some(true));
        assert_eq!(l.sees("lts", "stable"), Some(false));
        let names: Vec<_> = l.channels().iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["lts", "stable", "beta", "internal", "unstable"]);
        assert_eq!(l.custom().len(), 2);
    }

    #[test]
    fn custom_channels_are_checked() {
        assert_eq!(Ladder::with_custom([(ch("beta"), 7)]), Err(LadderError::BuiltIn(ch("beta"))));
        assert_eq!(Ladder::with_custom([(ch("x"), 1), (ch("x"), 2)]), Err(LadderError::DuplicateName(ch("x"))));
        assert!(matches!(Ladder::with_custom([(ch("x"), 200)]), Err(LadderError::DuplicateRank(..))));
    }

    #[test]
    fn names_are_slugs() {
        assert!(ChannelName::parse("Beta").is_err());
        assert!(ChannelName::parse("").is_err());
        assert!(ChannelName::parse("canary-2").is_ok());
        assert!(ChannelName::parse(&"c".repeat(33)).is_err());
    }
}
