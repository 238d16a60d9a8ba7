//! The JSON wire types of Halftone's HTTP protocol (`/v1`): plain data with serde derives and
//! no logic. Both the server and the SDK speak exactly these. Leaf values are domain types
//! (an `AppId` in JSON is already a valid `AppId`); composite values convert explicitly to
//! domain types (`Release::try_from(ReleaseSpec)`, `RolloutSpec::into_rollout`,
//! `CheckRequest::into_checkin`), and every such conversion lives in `convert.rs`: the domain
//! modules do not know this module.
//!
//! By side: `device.rs` (check-in, offers, events), `admin.rs` (apps, releases, rollouts,
//! tokens, audit, explanations), `status.rs` (status, figures, adoption), `problem.rs` (the
//! RFC 9457 [`Problem`] body of every error).
//!
//! Request bodies of the admin side refuse unknown fields, so a typo is an error rather than
//! a silently ignored setting. The device side ignores unknown fields, so older servers accept
//! newer SDKs.

mod admin;
mod convert;
mod device;
mod problem;
mod status;

pub use admin::{
    AppList, AppSpec, AppView, ArtifactSpec, ArtifactStored, AuditEntry, AuditLog, ChannelSpec, ExplainRequest,
    ExplainResponse, GateSpec, KeySpec, PromoteRequest, PublishRequest, Reason, ReleaseList, ReleaseSpec,
    ReleaseVerdict, ReleaseView, Role, RollbackRequest, RolloutPatch, RolloutSpec, RolloutView, RuleKind, RuleSpec,
    ScheduleSpec, TokenCreated, TokenList, TokenRequest, TokenView, TraitOp,
};
pub use device::{
    ArtifactOffer, CheckRequest, CheckResponse, Event, EventBatch, EventKind, EventsAccepted, UpdateOffer,
};
pub use problem::Problem;
pub use status::{ChannelAdoption, Figures, ReleaseStatus, RolloutStatus, ScheduleStatus, StatusView, VersionAdoption};

#[cfg(test)]
mod tests;
