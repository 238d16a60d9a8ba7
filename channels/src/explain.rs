//! Why a device was or was not offered each release: [`Explanation`], [`ReleaseTrace`],
//! [`Verdict`] and the precise, human-readable [`Skip`] reasons.

use std::fmt;

use crate::{Admission, ArmSlot, Bucket, ChannelName, Percent, Target, Version};

/// Every release of the app with its verdict for one check-in, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    /// The offered version, if any (the same answer as `select`).
    pub offered: Option<Version>,
    /// Whether the offer is critical.
    pub critical: bool,
    /// One trace per release, newest first.
    pub releases: Vec<ReleaseTrace>,
}

/// One release's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseTrace {
    /// The release.
    pub version: Version,
    /// Offered or skipped, and why.
    pub verdict: Verdict,
}

/// Offered (through which channel's rollout, and how) or skipped (why, per visible rollout).
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// This release is the offer.
    Offered {
        /// The channel whose rollout admitted the device.
        channel: ChannelName,
        /// How the device got in.
        admission: Admission,
    },
    /// Not offered; one reason, or one per visible rollout that refused the device.
    Skipped(Vec<Skip>),
}

/// Why a release was not offered.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Skip {
    /// The device already runs this version or a newer one.
    NotNewer {
        /// What the device runs.
        current: Version,
    },
    /// A newer release is offered instead.
    NewerOffered {
        /// The offered version.
        offered: Version,
    },
    /// The release has no build for the device's os and arch.
    NoArtifact {
        /// The device's target.
        target: Target,
    },
    /// The release is not rolled out on the device's channel or a more stable one.
    NotOnVisibleChannel {
        /// The device's channel.
        device_channel: ChannelName,
        /// Where it is rolled out.
        rolled_out_on: Vec<ChannelName>,
    },
    /// The release needs a newer starting version; the device must take an older one first.
    SteppingStone {
        /// The lowest version that may update to this release.
        min_from: Version,
        /// What the device runs.
        current: Version,
    },
    /// The rollout is halted.
    Halted {
        /// The rollout's channel.
        channel: ChannelName,
    },
    /// The device or user is on the rollout's deny list.
    Denied {
        /// The rollout's channel.
        channel: ChannelName,
    },
    /// A targeting rule did not match.
    RuleFailed {
        /// The rollout's channel.
        channel: ChannelName,
        /// The rule, as written.
        rule: String,
        /// What the device reported for it.
        observed: String,
    },
    /// The device's bucket is at or above the rollout's percentage.
    OutsideRollout {
        /// The rollout's channel.
        channel: ChannelName,
        /// The device's bucket.
        bucket: Bucket,
        /// The rollout's percentage.
        percent: Percent,
    },
    /// The rollout is an arm of an experiment whose share the device's bucket is not in.
    OutsideArm {
        /// The rollout's channel.
        channel: ChannelName,
        /// The device's bucket under the experiment's salt.
        bucket: Bucket,
        /// The arm's slot.
        slot: ArmSlot,
        /// The arm's share.
        percent: Percent,
    },
}

impl Skip {
    /// A stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Skip::NotNewer { .. } => "not_newer",
            Skip::NewerOffered { .. } => "newer_offered",
            Skip::NoArtifact { .. } => "no_artifact",
            Skip::NotOnVisibleChannel { .. } => "not_on_channel",
            Skip::SteppingStone { .. } => "stepping_stone",
            Skip::Halted { .. } => "halted",
            Skip::Denied { .. } => "denied",
            Skip::RuleFailed { .. } => "rule_failed",
            Skip::OutsideRollout { .. } => "outside_rollout",
            Skip::OutsideArm { .. } => "outside_arm",
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Skip::NotNewer { current } => write!(f, "not newer than the running version {current}"),
            Skip::NewerOffered { offered } => write!(f, "a newer release, {offered}, is offered instead"),
            Skip::NoArtifact { target } => write!(f, "no build for {target}"),
            Skip::NotOnVisibleChannel { device_channel, rolled_out_on } => {
                write!(f, "not rolled out on {device_channel} or a more stable channel (rolled out on: ")?;
                if rolled_out_on.is_empty() {
                    f.write_str("none")?;
                }
                for (i, c) in rolled_out_on.iter().enumerate() {
                    write!(f, "{}{c}", if i > 0 { ", " } else { "" })?;
                }
                f.write_str(")")
            }
            Skip::SteppingStone { min_from, current } => {
                write!(f, "stepping stone: needs {min_from} or newer first, device runs {current}")
            }
            Skip::Halted { channel } => write!(f, "the {channel} rollout is halted"),
            Skip::Denied { channel } => write!(f, "the device or user is on the {channel} rollout's deny list"),
            Skip::RuleFailed { channel, rule, observed } => {
                write!(f, "the {channel} rollout requires {rule}; the device has {observed}")
            }
            Skip::OutsideRollout { channel, bucket, percent } => write!(
                f,
                "outside the {channel} rollout: bucket {} is not below {} ({percent})",
                bucket.get(),
                percent.basis_points()
            ),
            Skip::OutsideArm { channel, bucket, slot, percent } => write!(
                f,
                "outside this arm of the {channel} experiment: bucket {} is not in the arm's {percent} of {slot}",
                bucket.get()
            ),
        }
    }
}
