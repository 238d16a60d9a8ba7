//! Release versions, [`Version`]: semver 2.0 with full precedence (prereleases included).

use std::fmt;
use std::str::FromStr;

use crate::error::{ParseError, What};

/// A semantic version (semver 2.0) of an app build.
///
/// Ordering is semver precedence, prereleases included: `2.0.0-beta.3 < 2.0.0-rc.1 < 2.0.0`.
/// Build metadata (`+build.7`) is rejected: semver gives two versions that differ only in
/// build metadata the same precedence, so they could not be told apart by "newer than".
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(semver::Version);

impl Version {
    /// Parses `MAJOR.MINOR.PATCH[-PRERELEASE]`.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() > 128 {
            return Err(ParseError::new(What::Version, s, "must be at most 128 characters"));
        }
        let v = semver::Version::parse(s).map_err(|e| {
            ParseError::new(
                What::Version,
                s,
                format!("{e} (expected MAJOR.MINOR.PATCH[-PRERELEASE], e.g. 1.4.2 or 2.0.0-beta.3)"),
            )
        })?;
        if !v.build.is_empty() {
            return Err(ParseError::new(
                What::Version,
                s,
                "build metadata (+...) is not allowed: it does not order versions",
            ));
        }
        Ok(Version(v))
    }

    /// Builds a release version from its three numbers.
    pub const fn new(major: u64, minor: u64, patch: u64) -> Self {
        Version(semver::Version::new(major, minor, patch))
    }

    /// The underlying `semver` value.
    pub fn as_semver(&self) -> &semver::Version {
        &self.0
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Version({})", self.0)
    }
}

impl FromStr for Version {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}

impl serde::Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn prerelease_ordering_follows_semver() {
        let ordered = [
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.10.0",
            "2.0.0-beta.3",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            assert!(v(pair[0]) < v(pair[1]), "{} < {}", pair[0], pair[1]);
        }
    }

    #[test]
    fn parse_errors_say_why() {
        for (input, msg) in [
            ("", "expected MAJOR.MINOR.PATCH"),
            ("1.2", "expected MAJOR.MINOR.PATCH"),
            ("v1.2.3", "expected MAJOR.MINOR.PATCH"),
            ("1.2.3 ", "expected MAJOR.MINOR.PATCH"),
            ("01.2.3", "leading zero"),
            ("1.2.3+build.5", "build metadata"),
        ] {
            let e = Version::parse(input).unwrap_err();
            assert!(e.to_string().contains(msg), "{input:?}: {e}");
        }
        let long = format!("1.2.3-{}", "a".repeat(200));
        assert!(Version::parse(&long).unwrap_err().to_string().contains("at most 128"));
    }

    #[test]
    fn round_trips_through_display_and_serde() {
        let x = v("2.0.0-beta.3");
        assert_eq!(x.to_string(), "2.0.0-beta.3");
        let json = serde_json::to_string(&x).unwrap();
        assert_eq!(json, "\"2.0.0-beta.3\"");
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), x);
        assert!(serde_json::from_str::<Version>("\"1.x\"").is_err());
    }
}
