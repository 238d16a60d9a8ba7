//! The one parse error every domain value type returns when its input breaks its rules.

use std::borrow::Cow;
use std::fmt;

/// What kind of value failed to parse; part of every [`ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum What {
    /// An [`AppId`](crate::AppId).
    AppId,
    /// A [`Version`](crate::Version).
    Version,
    /// A [`ChannelName`](crate::ChannelName).
    Channel,
    /// An [`Os`](crate::Os).
    Os,
    /// An [`Arch`](crate::Arch).
    Arch,
    /// An [`OsVersion`](crate::OsVersion).
    OsVersion,
    /// A [`DeviceId`](crate::DeviceId).
    DeviceId,
    /// A [`UserId`](crate::UserId).
    UserId,
    /// A [`Locale`](crate::Locale).
    Locale,
    /// A [`TraitName`](crate::TraitName).
    TraitName,
    /// A [`TraitValue`](crate::TraitValue).
    TraitValue,
    /// A [`Percent`](crate::Percent).
    Percent,
    /// A [`Salt`](crate::Salt).
    Salt,
    /// An entry of an allow or deny list ([`ListedId`](crate::ListedId)).
    ListedId,
    /// A range of versions ([`Range`](crate::Range)).
    Range,
    /// A targeting [`Rule`](crate::Rule).
    Rule,
    /// A [`Sha256`](crate::Sha256).
    Sha256,
    /// A [`Signature`](crate::Signature).
    Signature,
    /// A [`PublicKey`](crate::PublicKey).
    PublicKey,
    /// A [`KeyId`](crate::KeyId).
    KeyId,
    /// An [`ExternalUrl`](crate::ExternalUrl).
    Url,
    /// A [`Release`](crate::Release) as a whole.
    Release,
    /// A [`Rollout`](crate::Rollout) as a whole.
    Rollout,
    /// A [`CheckIn`](crate::CheckIn) as a whole.
    CheckIn,
    /// Release notes.
    Notes,
    /// An app's display name.
    DisplayName,
    /// A token's name.
    TokenName,
    /// An app's set of trusted keys.
    TrustedKeys,
    /// A check-in's [`Nonce`](crate::Nonce).
    Nonce,
    /// An app's [`KeyDocument`](crate::KeyDocument) as a whole (version, threshold, keys).
    KeyDocument,
    /// A list of signatures ([`Signatures`](crate::Signatures)) as a whole.
    Signatures,
    /// An event's [`ReportToken`](crate::ReportToken).
    ReportToken,
    /// A [`Sha512`](crate::Sha512).
    Sha512,
    /// A [`Minisign`](crate::Minisign) signature.
    Minisign,
    /// An A/B/N experiment as a whole (its arms and shares, [`Experiment`](crate::Experiment)).
    Experiment,
    /// A CodePush [`DeploymentKey`](crate::DeploymentKey).
    DeploymentKey,
    /// A [`MetricName`](crate::MetricName).
    MetricName,
    /// A [`MetricValue`](crate::MetricValue).
    MetricValue,
    /// An app's [`MetricSet`](crate::MetricSet) as a whole.
    MetricSet,
    /// A [`MetricGate`](crate::MetricGate).
    MetricGate,
    /// A [`Patch`](crate::Patch) or an artifact's [`Patches`](crate::Patches).
    Patch,
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            What::AppId => "app id",
            What::Version => "version",
            What::Channel => "channel",
            What::Os => "os",
            What::Arch => "arch",
            What::OsVersion => "os version",
            What::DeviceId => "device id",
            What::UserId => "user id",
            What::Locale => "locale",
            What::TraitName => "trait name",
            What::TraitValue => "trait value",
            What::Percent => "percent",
            What::Salt => "salt",
            What::ListedId => "listed id",
            What::Range => "range",
            What::Rule => "rule",
            What::Sha256 => "sha256",
            What::Signature => "signature",
            What::PublicKey => "public key",
            What::KeyId => "key id",
            What::Url => "url",
            What::Release => "release",
            What::Rollout => "rollout",
            What::CheckIn => "check-in",
            What::Notes => "notes",
            What::DisplayName => "display name",
            What::TokenName => "token name",
            What::TrustedKeys => "trusted keys",
            What::Patch => "patch",
            What::Nonce => "nonce",
            What::KeyDocument => "key document",
            What::Signatures => "signatures",
            What::Sha512 => "SHA-512",
            What::Minisign => "minisign signature",
            What::ReportToken => "report token",
            What::Experiment => "experiment",
            What::DeploymentKey => "deployment key",
            What::MetricName => "metric name",
            What::MetricValue => "metric value",
            What::MetricSet => "metric set",
            What::MetricGate => "metric gate",
        })
    }
}

/// A value was rejected: says what it was meant to be, echoes (a bounded prefix of) the
/// input, and says why in one sentence a support engineer can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {input:?}: {reason}")]
pub struct ParseError {
    what: What,
    input: String,
    reason: Cow<'static, str>,
}

/// Inputs are echoed back in errors; an attacker's megabyte of garbage is not.
const MAX_ECHO: usize = 80;

impl ParseError {
    /// A rejection of `input` as a `what`, because of `reason`.
    pub fn new(what: What, input: &str, reason: impl Into<Cow<'static, str>>) -> Self {
        let input = match input.char_indices().nth(MAX_ECHO) {
            Some((cut, _)) => format!("{}…", &input[..cut]),
            None => input.to_owned(),
        };
        ParseError { what, input, reason: reason.into() }
    }

    /// What kind of value was rejected.
    pub fn what(&self) -> What {
        self.what
    }

    /// The rejected input (cut to 80 characters).
    pub fn input(&self) -> &str {
        &self.input
    }

    /// Why it was rejected.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Implements `Display`, `FromStr`, `TryFrom<String>`, `From<T> for String`, `AsRef<str>`,
/// `Borrow<str>` and the serde string form for a string newtype with a
/// `fn parse(&str) -> Result<Self, ParseError>`. Keeps the dozen id types uniform.
macro_rules! string_newtype {
    ($ty:ident) => {
        impl $ty {
            /// The value as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl ::std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{}({:?})", stringify!($ty), &*self.0)
            }
        }
        impl ::std::str::FromStr for $ty {
            type Err = $crate::ParseError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }
        impl TryFrom<String> for $ty {
            type Error = $crate::ParseError;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
        impl From<$ty> for String {
            fn from(v: $ty) -> String {
                String::from(&*v.0)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl ::std::borrow::Borrow<str> for $ty {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
        impl ::serde::Serialize for $ty {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }
        impl<'de> ::serde::Deserialize<'de> for $ty {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                Self::parse(&s).map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_newtype;

/// Checks a slug: `len` in `min..=max`, every char allowed by `body`, the first by `first`.
pub(crate) fn check_slug(
    what: What,
    input: &str,
    max: usize,
    first: fn(char) -> bool,
    body: fn(char) -> bool,
    alphabet: &'static str,
) -> Result<(), ParseError> {
    if input.is_empty() {
        return Err(ParseError::new(what, input, "must not be empty"));
    }
    if input.len() > max {
        return Err(ParseError::new(what, input, format!("must be at most {max} characters")));
    }
    // Report the first fault in reading order: a leading character that is allowed inside the
    // name but not at its start (`../etc`, `-x`) is the problem to name, even when a later
    // character is not allowed at all.
    let not_allowed = |c: char| ParseError::new(what, input, format!("character {c:?} is not allowed; use {alphabet}"));
    let mut chars = input.chars();
    if let Some(c) = chars.next() {
        if !body(c) {
            return Err(not_allowed(c));
        }
        if !first(c) {
            return Err(ParseError::new(what, input, "must start with a letter or digit"));
        }
    }
    if let Some(c) = chars.find(|&c| !body(c)) {
        return Err(not_allowed(c));
    }
    Ok(())
}

/// Checks a free-form identifier: 1..=max printable characters, no control characters and no
/// leading or trailing whitespace.
pub(crate) fn check_printable(what: What, input: &str, max: usize) -> Result<(), ParseError> {
    if input.is_empty() {
        return Err(ParseError::new(what, input, "must not be empty"));
    }
    if input.chars().count() > max {
        return Err(ParseError::new(what, input, format!("must be at most {max} characters")));
    }
    if input.chars().any(char::is_control) {
        return Err(ParseError::new(what, input, "must not contain control characters"));
    }
    if input.trim() != input {
        return Err(ParseError::new(what, input, "must not start or end with whitespace"));
    }
    Ok(())
}
