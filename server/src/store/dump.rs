//! [`Dump`]: everything a store holds, record for record, for moving house
//! (`halftone migrate`): read from one backend, written to another, and read back to verify.

use halftone_channels::{AppId, ChannelName, Version};

use super::records::{AppRecord, AuditRecord, ReleaseRecord, RolloutRecord, TokenRecord};
use super::{AdoptionKey, FeedbackKey};

/// Every record of a store, in a stable order (so two dumps compare equal when the stores hold
/// the same data).
#[derive(Debug, Default, PartialEq)]
pub struct Dump {
    pub(super) apps: Vec<(AppId, AppRecord)>,
    pub(super) releases: Vec<(AppId, Version, ReleaseRecord)>,
    pub(super) rollouts: Vec<(AppId, Version, ChannelName, RolloutRecord)>,
    pub(super) tokens: Vec<(String, TokenRecord)>,
    /// Every audit entry, app and server-wide, by sequence number.
    pub(super) audit: Vec<(u64, AuditRecord)>,
    pub(super) bootstrapped: bool,
    /// Release figures (JSON), merged per key.
    pub(super) feedback: Vec<(FeedbackKey, Vec<u8>)>,
    /// Adoption sketches (JSON), per key.
    pub(super) adoption: Vec<(AdoptionKey, Vec<u8>)>,
    /// Feedback log entries (reports acknowledged since the figures were last written whole)
    /// by sequence number.
    pub(super) feedback_log: Vec<(u64, Vec<u8>)>,
    /// The server's own secrets (the answer-signing keys, ...) by name.
    pub(super) secrets: Vec<(String, Vec<u8>)>,
}

impl Dump {
    /// Sorts every list, so that equal contents compare equal.
    pub(super) fn sorted(mut self) -> Self {
        self.apps.sort_by(|a, b| a.0.cmp(&b.0));
        self.releases.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        self.rollouts.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        self.tokens.sort_by(|a, b| a.0.cmp(&b.0));
        self.audit.sort_by_key(|(seq, _)| *seq);
        self.feedback.sort_by(|a, b| a.0.cmp(&b.0));
        self.adoption.sort_by(|a, b| a.0.cmp(&b.0));
        self.secrets.sort_by(|a, b| a.0.cmp(&b.0));
        self.feedback_log.sort_by_key(|(seq, _)| *seq);
        self
    }

    /// What it holds, for people: `2 apps, 14 releases, ...`.
    pub fn summary(&self) -> String {
        format!(
            "{} apps, {} releases, {} rollouts, {} tokens, {} audit entries, {} release figures, {} adoption windows, {} secrets, {} feedback log entries",
            self.apps.len(),
            self.releases.len(),
            self.rollouts.len(),
            self.tokens.len(),
            self.audit.len(),
            self.feedback.len(),
            self.adoption.len(),
            self.secrets.len(),
            self.feedback_log.len()
        )
    }
}
