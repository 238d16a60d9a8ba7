//! What a device runs on: [`Os`], [`Arch`], [`Target`] (os + arch, the key of an artifact),
//! [`OsVersion`] (compared leniently as dotted numbers) and [`Platform`].

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use crate::error::{ParseError, What, check_slug, string_newtype};

fn lower_slug(what: What, s: &str) -> Result<(), ParseError> {
    check_slug(
        what,
        s,
        32,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
        "lowercase letters, digits and '_'",
    )
}

/// Other tools' names for an OS or an architecture, and the name devices report instead. A
/// release published for `darwin` or `amd64` would reach no device (the SDK reports `macos`,
/// `x86_64`), so these are refused with the right name rather than stored.
const ALIASES: [(&str, &str); 11] = [
    ("darwin", "macos"),
    ("osx", "macos"),
    ("mac", "macos"),
    ("win", "windows"),
    ("win32", "windows"),
    ("win64", "windows"),
    ("amd64", "x86_64"),
    ("x64", "x86_64"),
    ("arm64", "aarch64"),
    ("i386", "x86"),
    ("i686", "x86"),
];

/// Refuses a known alias, naming the spelling devices report.
fn not_an_alias(what: What, s: &str) -> Result<(), ParseError> {
    match ALIASES.iter().find(|(alias, _)| *alias == s) {
        Some((_, name)) => Err(ParseError::new(what, s, format!("devices report this as {name:?}; use {name}"))),
        None => Ok(()),
    }
}

/// An operating system: `windows`, `macos`, `linux`, `android`, `ios`, or another lowercase name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Os(Box<str>);

impl Os {
    /// Parses an os name (lowercase `[a-z0-9_]`, up to 32 characters).
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        lower_slug(What::Os, s)?;
        not_an_alias(What::Os, s)?;
        Ok(Os(s.into()))
    }
}
string_newtype!(Os);

/// A CPU architecture: `x86_64`, `aarch64`, `x86`, `armv7`, ... (lowercase `[a-z0-9_]`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Arch(Box<str>);

impl Arch {
    /// Parses an architecture name.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        lower_slug(What::Arch, s)?;
        not_an_alias(What::Arch, s)?;
        Ok(Arch(s.into()))
    }
}
string_newtype!(Arch);

/// What a build runs on: an os and an architecture. A release has at most one artifact per
/// target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// The operating system.
    pub os: Os,
    /// The CPU architecture.
    pub arch: Arch,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.arch)
    }
}

/// An OS version compared leniently as dotted numbers: `10.0.19045`, `14.2`, `13`.
///
/// Missing components count as zero (`14` == `14.0` < `14.0.1`). Anything after the leading
/// dotted numbers is kept for display but ignored in comparisons (`13.1 (22C65)`).
#[derive(Clone)]
pub struct OsVersion {
    parts: Vec<u32>,
    text: Box<str>,
}

impl OsVersion {
    /// Parses an OS version: at least one number, up to 8 dotted numbers, 64 characters.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() > 64 {
            return Err(ParseError::new(What::OsVersion, s, "must be at most 64 characters"));
        }
        if s.chars().any(char::is_control) {
            return Err(ParseError::new(What::OsVersion, s, "must not contain control characters"));
        }
        let numeric_end = s.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(s.len());
        let head = s[..numeric_end].trim_end_matches('.');
        if head.is_empty() {
            return Err(ParseError::new(What::OsVersion, s, "must start with a number, like 14.2 or 10.0.19045"));
        }
        let mut parts = Vec::new();
        for p in head.split('.') {
            let n = p
                .parse::<u32>()
                .map_err(|_| ParseError::new(What::OsVersion, s, "expected dotted numbers like 10.0.19045"))?;
            parts.push(n);
        }
        if parts.len() > 8 {
            return Err(ParseError::new(What::OsVersion, s, "at most 8 numbers"));
        }
        while parts.last() == Some(&0) && parts.len() > 1 {
            parts.pop();
        }
        Ok(OsVersion { parts, text: s.into() })
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl PartialEq for OsVersion {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}
impl Eq for OsVersion {}
impl Hash for OsVersion {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.parts.hash(h);
    }
}
impl Ord for OsVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        // Trailing zeros were trimmed at parse time, so comparing the vectors pads with zeros.
        self.parts.cmp(&other.parts)
    }
}
impl PartialOrd for OsVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl fmt::Display for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}
impl fmt::Debug for OsVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OsVersion({:?})", &*self.text)
    }
}
impl FromStr for OsVersion {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::parse(s)
    }
}
impl serde::Serialize for OsVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}
impl<'de> serde::Deserialize<'de> for OsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A device's platform: its target and, when known, its OS version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// Os and arch.
    pub target: Target,
    /// The OS version, if the device reported one.
    pub os_version: Option<OsVersion>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn other_tools_names_are_refused_with_the_name_devices_report() {
        for (alias, name) in [("darwin", "macos"), ("win64", "windows")] {
            let e = Os::parse(alias).unwrap_err().to_string();
            assert!(e.contains(&format!("use {name}")), "{e}");
        }
        for (alias, name) in [("amd64", "x86_64"), ("arm64", "aarch64"), ("i686", "x86")] {
            let e = Arch::parse(alias).unwrap_err().to_string();
            assert!(e.contains(&format!("use {name}")), "{e}");
        }
        for ok in ["macos", "windows", "linux", "android", "ios", "freebsd"] {
            assert_eq!(Os::parse(ok).unwrap().as_str(), ok);
        }
        for ok in ["x86_64", "aarch64", "x86", "armv7", "riscv64"] {
            assert_eq!(Arch::parse(ok).unwrap().as_str(), ok);
        }
    }

    fn ov(s: &str) -> OsVersion {
        OsVersion::parse(s).unwrap()
    }

    #[test]
    fn os_versions_compare_as_dotted_numbers() {
        assert!(ov("10.0.19045") > ov("10.0.19041"));
        assert!(ov("14.2") > ov("14.1.2"));
        assert!(ov("13") < ov("13.0.1"));
        assert_eq!(ov("14"), ov("14.0.0"));
        assert!(ov("9") < ov("10"));
        assert_eq!(ov("13.1 (22C65)"), ov("13.1"));
        assert_eq!(ov("13.1 (22C65)").to_string(), "13.1 (22C65)");
        assert_eq!(ov("11-rc2"), ov("11"));
    }

    #[test]
    fn os_version_errors() {
        for (s, msg) in [
            ("", "must start with a number"),
            ("abc", "must start with a number"),
            ("1..2", "dotted numbers"),
            ("99999999999", "dotted numbers"),
            ("1.2.3.4.5.6.7.8.9", "at most 8"),
        ] {
            let e = OsVersion::parse(s).unwrap_err();
            assert!(e.to_string().contains(msg), "{s:?}: {e}");
        }
    }

    #[test]
    fn os_and_arch_are_lowercase_names() {
        assert!(Os::parse("windows").is_ok());
        assert!(Os::parse("harmonyos").is_ok());
        assert!(Os::parse("Windows").is_err());
        assert!(Arch::parse("x86_64").is_ok());
        assert!(Arch::parse("arm-v7").is_err());
        assert!(Arch::parse("").is_err());
    }
}
