//! Every change an admin (or the scheduler) can make, one module per thing changed:
//! [`apps`] (create, update), [`releases`] (publish, promote, halt, roll back by rebuild),
//! [`rollouts`] (patch, and the replacement the scheduler and health gates use), [`tokens`]
//! (create, revoke, bootstrap), [`answer_keys`] (rotate, retire), [`keys`] (release key
//! rotation), [`codepush_keys`] (CodePush deployment keys: create, revoke).
//!
//! This module is orchestration only. Whether a value or a whole is valid is the domain's
//! call (`channels`); which HTTP status a refusal gets is `problem`'s; how a change is made
//! durable and visible is the [`Writer`](crate::writer::Writer)'s. A change here takes the
//! writer, validates against the snapshot it holds, builds the new app snapshot (so an invalid
//! catalog is refused before anything is written), and commits the records with an audit
//! entry. A refused change writes nothing.
//!
//! Callers (the HTTP handlers) have authorised the principal before; it is passed here as the
//! actor of the audit entry.

mod answer_keys;
mod apps;
pub mod codepush_keys;
mod experiments;
mod keys;
mod releases;
mod rollouts;
mod tokens;

use halftone_channels::AppId;
use halftone_channels::wire::AuditEntry;
use serde::Serialize;

/// Whether a change created something or found it already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Newly created (201).
    Created,
    /// Already there, identical (200).
    Unchanged,
    /// Updated (200).
    Updated,
}

/// A value as the audit log shows it before or after a change.
fn json<T: Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

/// An audit entry of `action` on `subject` of `app` (`None`: a server-wide change, such as a
/// token's), without before or after yet.
fn audit(at_ms: u64, actor: &str, action: &str, app: Option<&AppId>, subject: String) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at_ms,
        actor: actor.to_owned(),
        action: action.into(),
        app: app.cloned(),
        subject,
        before: None,
        after: None,
    }
}
