//! A published build: [`Release`] (version, notes, criticality, stepping stone, rebuild
//! origin) and its signed [`Artifact`]s, one per [`Target`].

use std::collections::BTreeMap;

use crate::error::{ParseError, What, string_newtype};
use crate::{ClientSignatures, Patches, Sha256, Signatures, Target, Version};

/// Where an artifact can be fetched instead of the server's own store: an `http://` or
/// `https://` URL of at most 2048 characters, without whitespace.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExternalUrl(Box<str>);

impl ExternalUrl {
    /// Parses an external URL.
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        if s.len() > 2048 {
            return Err(ParseError::new(What::Url, s, "must be at most 2048 characters"));
        }
        let rest = s
            .strip_prefix("https://")
            .or_else(|| s.strip_prefix("http://"))
            .ok_or_else(|| ParseError::new(What::Url, s, "must start with https:// or http://"))?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(ParseError::new(What::Url, s, "must name a host"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(ParseError::new(What::Url, s, "must not contain whitespace"));
        }
        Ok(ExternalUrl(s.into()))
    }
}
string_newtype!(ExternalUrl);

/// One platform's build of a release, with its signatures (one, or several for k-of-n).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// SHA-256 of the file.
    pub sha256: Sha256,
    /// Size of the file in bytes.
    pub size: u64,
    /// ed25519 signatures over the signed message (see [`crate::signed_message`]), each
    /// naming the app key that made it.
    pub signatures: Signatures,
    /// Where to fetch it, when it is not stored on the server.
    pub url: Option<ExternalUrl>,
    /// What other updaters verify (Tauri, electron-updater, Sparkle), when published with them.
    pub clients: Option<ClientSignatures>,
    /// Signed patches from earlier builds to this one, at most one per base (delta updates).
    pub patches: Patches,
}

/// The most bytes of release notes.
pub const MAX_NOTES: usize = 64 * 1024;

/// A release: one version of an app with an artifact per platform. Immutable once published.
///
/// Invariants (checked by [`Release::new`]): at least one artifact; a stepping stone and a
/// rebuild origin, when present, are lower than the version; notes are at most 64 KiB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    version: Version,
    notes: String,
    critical: bool,
    min_from_version: Option<Version>,
    rebuild_of: Option<Version>,
    artifacts: BTreeMap<Target, Artifact>,
}

/// The parts of a release, before its invariants are checked.
#[derive(Debug, Clone)]
pub struct ReleaseParts {
    /// The version.
    pub version: Version,
    /// Release notes shown to users.
    pub notes: String,
    /// Whether the update must be taken.
    pub critical: bool,
    /// Devices older than this must first take an older release.
    pub min_from_version: Option<Version>,
    /// The version whose code this build re-issues (a rollback by rebuild).
    pub rebuild_of: Option<Version>,
    /// One artifact per target.
    pub artifacts: BTreeMap<Target, Artifact>,
}

impl Release {
    /// Checks the invariants and builds the release.
    pub fn new(p: ReleaseParts) -> Result<Self, ParseError> {
        let fail = |why: String| Err(ParseError::new(What::Release, &p.version.to_string(), why));
        if p.artifacts.is_empty() {
            return fail("needs at least one artifact".into());
        }
        if p.notes.len() > MAX_NOTES {
            return fail(format!("notes must be at most {MAX_NOTES} bytes"));
        }
        if let Some(m) = &p.min_from_version
            && *m >= p.version
        {
            return fail(format!("min_from_version {m} must be lower than the release"));
        }
        if let Some(r) = &p.rebuild_of
            && *r >= p.version
        {
            return fail(format!("rebuild_of {r} must be lower than the release"));
        }
        Ok(Release {
            version: p.version,
            notes: p.notes,
            critical: p.critical,
            min_from_version: p.min_from_version,
            rebuild_of: p.rebuild_of,
            artifacts: p.artifacts,
        })
    }

    /// The version.
    pub fn version(&self) -> &Version {
        &self.version
    }
    /// Release notes.
    pub fn notes(&self) -> &str {
        &self.notes
    }
    /// Whether the update must be taken.
    pub fn is_critical(&self) -> bool {
        self.critical
    }
    /// The stepping stone: devices below it must first take an older release.
    pub fn min_from_version(&self) -> Option<&Version> {
        self.min_from_version.as_ref()
    }
    /// The version whose code this build re-issues.
    pub fn rebuild_of(&self) -> Option<&Version> {
        self.rebuild_of.as_ref()
    }
    /// The artifact for `target`, if built.
    pub fn artifact(&self, target: &Target) -> Option<&Artifact> {
        self.artifacts.get(target)
    }
    /// All artifacts by target.
    pub fn artifacts(&self) -> &BTreeMap<Target, Artifact> {
        &self.artifacts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts() -> ReleaseParts {
        let mut artifacts = BTreeMap::new();
        artifacts.insert(
            Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() },
            Artifact {
                sha256: Sha256::digest(b"x"),
                size: 1,
                signatures: Signatures::one(crate::KeyId::parse("k").unwrap(), crate::Signature::from_bytes([0; 64])),
                url: None,
                clients: None,
                patches: Default::default(),
            },
        );
        ReleaseParts {
            version: "2.0.0".parse().unwrap(),
            notes: String::new(),
            critical: false,
            min_from_version: None,
            rebuild_of: None,
            artifacts,
        }
    }

    #[test]
    fn invariants_are_checked() {
        assert!(Release::new(parts()).is_ok());
        let e = Release::new(ReleaseParts { artifacts: BTreeMap::new(), ..parts() }).unwrap_err();
        assert!(e.to_string().contains("at least one artifact"));
        let e = Release::new(ReleaseParts { min_from_version: Some("2.0.0".parse().unwrap()), ..parts() }).unwrap_err();
        assert!(e.to_string().contains("min_from_version 2.0.0 must be lower"));
        let e = Release::new(ReleaseParts { rebuild_of: Some("3.0.0".parse().unwrap()), ..parts() }).unwrap_err();
        assert!(e.to_string().contains("rebuild_of 3.0.0 must be lower"));
        let e = Release::new(ReleaseParts { notes: "n".repeat(MAX_NOTES + 1), ..parts() }).unwrap_err();
        assert!(e.to_string().contains("notes must be at most"));
    }

    #[test]
    fn urls() {
        assert!(ExternalUrl::parse("https://cdn.example.com/a.zip").is_ok());
        assert!(ExternalUrl::parse("ftp://x").is_err());
        assert!(ExternalUrl::parse("https://").is_err());
        assert!(ExternalUrl::parse("https://a b").is_err());
    }
}
