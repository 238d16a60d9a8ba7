//! [`Change`]: a set of writes that a backend commits atomically, as records, with the audit
//! entries that describe it. Backends translate each [`Op`] into their own keys or rows.

use halftone_channels::wire::AuditEntry;
use halftone_channels::{AppId, ChannelName, Release, Rollout, Version};

use super::records::{AppRecord, ReleaseRecord, RolloutRecord, TokenRecord};
use super::{AdoptionKey, FeedbackKey};
use crate::auth::Token;
use crate::snapshot::{AppSettings, RolloutMeta};

/// One write of a [`Change`].
#[derive(Debug, Clone)]
pub(super) enum Op {
    App(AppId, AppRecord),
    Release(AppId, Version, ReleaseRecord),
    Rollout(AppId, Version, ChannelName, Box<RolloutRecord>),
    Token(String, TokenRecord),
    RemoveToken(String),
    Bootstrapped,
    /// A release's figures on a channel, already encoded (JSON).
    Feedback(FeedbackKey, Vec<u8>),
    /// One adoption window's sketch, already encoded (JSON).
    Adoption(AdoptionKey, Vec<u8>),
    RemoveAdoption(AdoptionKey),
    /// An entry of the feedback log (reports acknowledged since the last checkpoint of the
    /// figures), already encoded, under its sequence number.
    FeedbackLog(u64, Vec<u8>),
    /// Drops the feedback log's entries `from..=to`: the figures written beside it hold them.
    RemoveFeedbackLog(u64, u64),
}

/// What a change is about, for the revision that guards it: one app, or the token table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// An app's settings, releases and rollouts.
    App(AppId),
    /// The token table.
    Tokens,
}

impl Scope {
    /// The scope's key in the store (`app:<id>`, `tokens`).
    pub fn key(&self) -> String {
        match self {
            Scope::App(id) => format!("app:{id}"),
            Scope::Tokens => "tokens".to_owned(),
        }
    }

    /// The scope a key names.
    pub fn parse(key: &str) -> Option<Scope> {
        match key.split_once(':') {
            Some(("app", id)) => AppId::parse(id).ok().map(Scope::App),
            None if key == "tokens" => Some(Scope::Tokens),
            _ => None,
        }
    }
}

/// A set of writes committed atomically by [`Store::commit`](super::Store::commit).
#[derive(Debug, Default)]
pub struct Change {
    pub(super) ops: Vec<Op>,
    pub(super) audit: Vec<AuditEntry>,
    /// Commit only if the scope's stored revision is still this one, and bump it.
    pub(super) guard: Option<(Scope, u64)>,
}

impl Change {
    /// Commits only if `scope` is still at revision `expected` in the store (no other replica
    /// changed it since it was read), and moves it to `expected + 1`.
    pub fn guard(&mut self, scope: Scope, expected: u64) -> &mut Self {
        self.guard = Some((scope, expected));
        self
    }

    /// Stores an app's settings.
    pub fn put_app(&mut self, app: &AppId, settings: &AppSettings) -> &mut Self {
        self.ops.push(Op::App(app.clone(), AppRecord::from(settings)));
        self
    }
    /// Stores a release published at `published_at_ms`.
    pub fn put_release(&mut self, app: &AppId, release: &Release, published_at_ms: u64) -> &mut Self {
        let r = ReleaseRecord::new(release, published_at_ms);
        self.ops.push(Op::Release(app.clone(), release.version().clone(), r));
        self
    }
    /// Stores a rollout with its revision and schedule clock.
    pub fn put_rollout(&mut self, app: &AppId, r: &Rollout, meta: RolloutMeta) -> &mut Self {
        let record = RolloutRecord::new(r, meta);
        self.ops.push(Op::Rollout(app.clone(), r.release.clone(), r.channel.clone(), Box::new(record)));
        self
    }
    /// Stores a token.
    pub fn put_token(&mut self, id: &str, t: &Token) -> &mut Self {
        self.ops.push(Op::Token(id.to_owned(), TokenRecord::from(t)));
        self
    }
    /// Deletes a token.
    pub fn remove_token(&mut self, id: &str) -> &mut Self {
        self.ops.push(Op::RemoveToken(id.to_owned()));
        self
    }
    /// Records that the first admin token was made (it is made only once).
    pub fn mark_bootstrapped(&mut self) -> &mut Self {
        self.ops.push(Op::Bootstrapped);
        self
    }
    /// Stores the (already encoded) figures of a release on a channel.
    pub fn put_feedback(&mut self, app: &AppId, v: &Version, ch: &ChannelName, json: Vec<u8>) -> &mut Self {
        self.ops.push(Op::Feedback((app.clone(), v.clone(), ch.clone()), json));
        self
    }
    /// Stores the (already encoded) adoption sketch of one window.
    pub fn put_adoption(
        &mut self,
        app: &AppId,
        ch: &ChannelName,
        v: &Version,
        window: u64,
        json: Vec<u8>,
    ) -> &mut Self {
        self.ops.push(Op::Adoption((app.clone(), ch.clone(), v.clone(), window), json));
        self
    }
    /// Deletes an adoption window.
    pub fn remove_adoption(&mut self, app: &AppId, ch: &ChannelName, v: &Version, window: u64) -> &mut Self {
        self.ops.push(Op::RemoveAdoption((app.clone(), ch.clone(), v.clone(), window)));
        self
    }
    /// Appends an (already encoded) entry to the feedback log under `seq`.
    pub fn append_feedback_log(&mut self, seq: u64, entry: Vec<u8>) -> &mut Self {
        self.ops.push(Op::FeedbackLog(seq, entry));
        self
    }
    /// Drops this process's feedback log entries `from..=to`.
    pub fn remove_feedback_log(&mut self, from: u64, to: u64) -> &mut Self {
        self.ops.push(Op::RemoveFeedbackLog(from, to));
        self
    }
    /// Adds `reasons[i]` as `reason` to the `after` of the i-th audit entry (why a change was
    /// made: a tripped gate's figures).
    pub fn annotate_audit(&mut self, reasons: &[String]) -> &mut Self {
        for (e, why) in self.audit.iter_mut().zip(reasons) {
            e.after = Some(serde_json::json!({ "rollout": e.after.take(), "reason": why }));
        }
        self
    }
    /// Appends an audit entry (its `seq` is assigned at commit).
    pub fn audit(&mut self, e: AuditEntry) -> &mut Self {
        self.audit.push(e);
        self
    }
}
