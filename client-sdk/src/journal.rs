//! The install journal: the one record, file `install` in the state directory, that says where
//! an install stands, so that a start after a crash at any step knows what to finish or undo.
//!
//! An install goes through these phases, each written (atomically, by rename) before the step
//! it announces:
//!
//! 1. [`Phase::Switching`]: the new build is complete on disk (staged), and the switch to it
//!    may or may not have happened. The next start looks at the disk to tell which.
//! 2. [`Phase::Trial`]: the new build is live and is started on trial; `started_at` is set by
//!    the first start. A second start of an unconfirmed trial (the first one crashed or exited
//!    without confirming), or a confirmation later than the limit, reverts it.
//! 3. Confirmed: the record is deleted (and `install_succeeded` reported), or
//!    [`Phase::Reverted`]: the previous build is live again; the record stays, so the SDK
//!    refuses this build and anything not newer ([`Refusal::Reverted`](crate::Refusal)), and
//!    so the failure is reported once (`reported`).
//!
//! The file is one line of JSON with a `format` number; anything else is
//! [`StateError::Corrupt`](crate::StateError), never a default. An SDK too old to know this
//! file ignores it: a reverted build may run an older SDK, and must still start.

use halftone_channels::{Sha256, Version};
use serde::{Deserialize, Serialize};

/// The journal's format; a file with another number is refused.
const FORMAT: u32 = 1;

/// One build in the journal: its version and digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Build {
    pub(crate) version: Version,
    pub(crate) sha256: Sha256,
}

/// The record of the one install in progress or last reverted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Journal {
    /// The build being installed.
    pub(crate) build: Build,
    /// Where the build was staged, relative to the app's directory: the new executable before
    /// its rename, or the new version directory.
    pub(crate) staged: String,
    /// What the switch replaced, relative to the app's directory: the saved copy of the old
    /// executable, or the version directory `current` pointed to (its link target as read).
    pub(crate) previous: String,
    /// How long the new build has, from its first start, to confirm.
    pub(crate) confirm_within_s: u64,
    pub(crate) phase: Phase,
}

/// Where an install stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub(crate) enum Phase {
    /// Staged; the switch may or may not have happened.
    Switching,
    /// Live, on trial until confirmed.
    Trial {
        /// Unix seconds of the first start; `None` until the new build was started.
        started_at: Option<u64>,
        /// The build confirmed after its limit: the next start reverts it.
        #[serde(default)]
        expired: bool,
    },
    /// The previous build is live again.
    Reverted {
        /// Why, for the report.
        reason: String,
        /// Whether the failed install was queued for reporting.
        reported: bool,
    },
}

/// The file form.
#[derive(Serialize, Deserialize)]
struct JournalFile {
    format: u32,
    version: Version,
    sha256: String,
    staged: String,
    previous: String,
    confirm_within_s: u64,
    #[serde(flatten)]
    phase: Phase,
}

impl Journal {
    /// One line of JSON.
    pub(crate) fn encode(&self) -> String {
        let file = JournalFile {
            format: FORMAT,
            version: self.build.version.clone(),
            sha256: self.build.sha256.to_string(),
            staged: self.staged.clone(),
            previous: self.previous.clone(),
            confirm_within_s: self.confirm_within_s,
            phase: self.phase.clone(),
        };
        format!("{}\n", serde_json::to_string(&file).expect("a journal serialises"))
    }

    /// Parses [`Journal::encode`]'s form; anything else is an error.
    pub(crate) fn decode(text: &str) -> Result<Self, String> {
        let line = text.strip_suffix('\n').ok_or("expected one line")?;
        let file: JournalFile = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if file.format != FORMAT {
            return Err(format!("unknown format {}", file.format));
        }
        let sha256 = Sha256::parse(&file.sha256).map_err(|e| e.to_string())?;
        Ok(Journal {
            build: Build { version: file.version, sha256 },
            staged: file.staged,
            previous: file.previous,
            confirm_within_s: file.confirm_within_s,
            phase: file.phase,
        })
    }

    /// The version this device reverted, which the SDK refuses from now on (with anything not
    /// newer).
    pub(crate) fn reverted(&self) -> Option<&Version> {
        matches!(self.phase, Phase::Reverted { .. }).then_some(&self.build.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn journal(phase: Phase) -> Journal {
        Journal {
            build: Build { version: "2.0.0".parse().unwrap(), sha256: Sha256::digest(b"x") },
            staged: "versions/2.0.0-2d711642b726".into(),
            previous: "versions/1.0.0".into(),
            confirm_within_s: 600,
            phase,
        }
    }

    #[test]
    fn round_trips_every_phase_and_refuses_garbage() {
        for phase in [
            Phase::Switching,
            Phase::Trial { started_at: None, expired: false },
            Phase::Trial { started_at: Some(1_800_000_000), expired: true },
            Phase::Reverted { reason: "did not confirm".into(), reported: false },
        ] {
            let j = journal(phase);
            assert_eq!(Journal::decode(&j.encode()), Ok(j.clone()));
            assert_eq!(j.reverted().is_some(), matches!(j.phase, Phase::Reverted { .. }));
        }
        let good = journal(Phase::Switching).encode();
        assert!(good.starts_with("{\"format\":1,\"version\":\"2.0.0\""), "{good}");
        for bad in [
            "".to_owned(),
            good.trim_end().to_owned(),
            good.replace("\"format\":1", "\"format\":2"),
            good.replace("switching", "flying"),
            good.replace("2.0.0\"", "two\""),
            good.replace(&Sha256::digest(b"x").to_string(), "abc"),
            good.replace("\"staged\"", "\"stage\""),
        ] {
            assert!(Journal::decode(&bad).is_err(), "{bad:?}");
        }
    }
}
