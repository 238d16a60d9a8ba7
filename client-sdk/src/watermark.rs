//! The version watermark: the highest version this device has installed or run, and the rule
//! that admits an update ([`admit`]). It lives in the state directory, so a replayed genuine old
//! build is refused even after the app's cache, or the app itself, was reinstalled.
//!
//! It rises only when a build is installed ([`Client::installed`](crate::Client::installed))
//! or runs (a client built with a version above it), never at download: a genuine build that
//! was only downloaded (say, a prerelease of another channel, replayed) cannot lock the device
//! out of the hotfixes of its own channel.

use halftone_channels::{Sha256, Version};

use crate::Refusal;

/// The highest installed or running version and, when known, the digest of its build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Watermark {
    pub(crate) version: Version,
    /// The build's digest: known for an installed download, not for a version the app runs.
    pub(crate) sha256: Option<Sha256>,
}

const HEADER: &str = "halftone-watermark-v1";

impl Watermark {
    /// The file form: a header line, then `version=` and `sha256=` lines.
    pub(crate) fn encode(&self) -> String {
        let sha = self.sha256.map(|s| s.to_string()).unwrap_or_default();
        format!("{HEADER}\nversion={}\nsha256={sha}\n", self.version)
    }

    /// Parses [`Watermark::encode`]'s form; anything else is an error, never a default.
    pub(crate) fn decode(text: &str) -> Result<Self, String> {
        let mut lines = text.lines();
        if lines.next() != Some(HEADER) {
            return Err(format!("expected a first line {HEADER:?}"));
        }
        let mut field = |name: &str| {
            lines
                .next()
                .and_then(|l| l.strip_prefix(name))
                .and_then(|l| l.strip_prefix('='))
                .ok_or_else(|| format!("expected a line {name}=..."))
        };
        let version = Version::parse(field("version")?).map_err(|e| e.to_string())?;
        let sha256 = match field("sha256")? {
            "" => None,
            hex => Some(Sha256::parse(hex).map_err(|e| e.to_string())?),
        };
        if lines.next().is_some() {
            return Err("unexpected lines after sha256".into());
        }
        Ok(Watermark { version, sha256 })
    }

    /// True when `self` is above `current` (or there is none), so writing it raises the mark.
    pub(crate) fn raises(&self, current: Option<&Watermark>) -> bool {
        current.is_none_or(|c| self.version > c.version)
    }
}

/// Whether a device running `running`, with `watermark`, may take build `sha256` of `version`.
///
/// The version must be newer than the running one (never a downgrade) and not below the
/// watermark. The watermark version itself is admitted again only with the same digest: that
/// is the same signed build downloaded a second time (say, after a failed install), not a
/// replay; a watermark set by a running version (no digest) admits only newer versions.
/// A version this device installed and reverted (`reverted`, from the install journal) is
/// refused, with everything not newer, until a newer build comes.
pub(crate) fn admit(
    version: &Version,
    sha256: &Sha256,
    running: &Version,
    watermark: Option<&Watermark>,
    reverted: Option<&Version>,
) -> Result<(), Refusal> {
    if version <= running {
        return Err(Refusal::NotNewer { offered: version.clone(), running: running.clone() });
    }
    if let Some(reverted) = reverted.filter(|r| version <= *r) {
        return Err(Refusal::Reverted { offered: version.clone(), reverted: reverted.clone() });
    }
    match watermark {
        Some(w) if *version < w.version || (*version == w.version && Some(*sha256) != w.sha256) => {
            Err(Refusal::BelowWatermark { offered: version.clone(), watermark: w.version.clone() })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    fn wm(version: &str, bytes: &[u8]) -> Watermark {
        Watermark { version: v(version), sha256: Some(Sha256::digest(bytes)) }
    }

    fn check(offered: &str, bytes: &[u8], running: &str, watermark: Option<Watermark>, ok: bool) {
        let got = admit(&v(offered), &Sha256::digest(bytes), &v(running), watermark.as_ref(), None);
        assert_eq!(got.is_ok(), ok, "{offered} on {running} with {watermark:?}: {got:?}");
    }

    #[test]
    fn admits_only_newer_than_running_and_not_below_the_mark() {
        check("1.1.0", b"a", "1.0.0", None, true);
        check("1.0.0", b"a", "1.0.0", None, false);
        check("0.9.0", b"a", "1.0.0", None, false);
        check("2.0.0-beta.1", b"a", "1.9.0", None, true);
        check("2.0.0-beta.1", b"a", "2.0.0", None, false);
        check("1.5.0", b"a", "1.0.0", Some(wm("2.0.0", b"x")), false);
        check("2.0.0", b"x", "1.0.0", Some(wm("2.0.0", b"x")), true);
        check("2.0.0", b"y", "1.0.0", Some(wm("2.0.0", b"x")), false);
        check("2.0.1", b"y", "1.0.0", Some(wm("2.0.0", b"x")), true);
        let ran = Watermark { version: v("2.0.0"), sha256: None };
        check("2.0.0", b"x", "1.0.0", Some(ran.clone()), false);
        check("2.0.1", b"x", "1.0.0", Some(ran), true);
    }

    #[test]
    fn refusals_name_the_reason() {
        let e = admit(&v("1.5.0"), &Sha256::digest(b"a"), &v("1.0.0"), Some(&wm("2.0.0", b"x")), None).unwrap_err();
        assert_eq!(e, Refusal::BelowWatermark { offered: v("1.5.0"), watermark: v("2.0.0") });
        let e = admit(&v("1.0.0"), &Sha256::digest(b"a"), &v("1.0.0"), None, None).unwrap_err();
        assert_eq!(e, Refusal::NotNewer { offered: v("1.0.0"), running: v("1.0.0") });
    }

    #[test]
    fn a_reverted_build_is_refused_until_a_newer_one() {
        // Installed (the mark rose to 2.0.0 with its digest), then reverted to 1.0.0.
        let mark = wm("2.0.0", b"x");
        let reverted = v("2.0.0");
        let admitted = |offered: &str, bytes: &[u8]| {
            admit(&v(offered), &Sha256::digest(bytes), &v("1.0.0"), Some(&mark), Some(&reverted))
        };
        assert_eq!(admitted("2.0.0", b"x"), Err(Refusal::Reverted { offered: v("2.0.0"), reverted: v("2.0.0") }));
        assert!(matches!(admitted("2.0.0-rc.9", b"y"), Err(Refusal::Reverted { .. })));
        assert!(matches!(admitted("1.5.0", b"y"), Err(Refusal::Reverted { .. })));
        assert_eq!(admitted("2.0.1", b"y"), Ok(()));
        // Without the revert, the same signed build is taken again (a failed download or copy).
        assert_eq!(admit(&v("2.0.0"), &Sha256::digest(b"x"), &v("1.0.0"), Some(&mark), None), Ok(()));
    }

    #[test]
    fn round_trips_and_refuses_garbage() {
        let w = wm("2.0.0-rc.1", b"x");
        assert_eq!(Watermark::decode(&w.encode()), Ok(w.clone()));
        for bad in ["", "2.0.0", "halftone-watermark-v1\nversion=2.0.0\n", &w.encode().replace("2.0.0", "x")] {
            assert!(Watermark::decode(bad).is_err(), "{bad:?}");
        }
        assert!(Watermark::decode(&format!("{}extra\n", w.encode())).is_err());
        let ran = Watermark { version: v("3.0.0"), sha256: None };
        assert_eq!(ran.encode(), "halftone-watermark-v1\nversion=3.0.0\nsha256=\n");
        assert_eq!(Watermark::decode(&ran.encode()), Ok(ran));
        assert!(wm("2.0.0", b"x").raises(None));
        assert!(wm("2.0.1", b"x").raises(Some(&w)));
        assert!(!wm("2.0.0-rc.1", b"y").raises(Some(&w)));
        assert!(!wm("1.0.0", b"x").raises(Some(&w)));
    }
}
