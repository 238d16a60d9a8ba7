//! The JSON wire types of Halftone's HTTP protocol (`/v1`). Both the server and the SDK speak
//! exactly these. By side: `device.rs` (check-in, offers, events), `admin.rs` (apps, releases,
//! rollouts, tokens, audit, explanations), `status.rs` (status, figures, adoption) and
//! `problem.rs` (the RFC 9457 [`Problem`] body of every error); their types are plain data with
//! serde derives and no logic.
//!
//! Leaf values are domain types (an `AppId` in JSON is already a valid `AppId`). Composite
//! values convert explicitly to and from domain types (`Release::try_from(ReleaseSpec)`,
//! `RolloutSpec::into_rollout`, `HealthGate::try_from(GateSpec)`,
//! `CheckRequest::into_checkin`, `ExplainResponse::from(&Explanation)`), and every such
//! conversion lives in `convert.rs`: this module depends on the domain, never the reverse.
//!
//! Request bodies of the admin side refuse unknown fields, so a typo is an error rather than
//! a silently ignored setting. The device side ignores unknown fields, so older servers accept
//! newer SDKs.

mod admin;
mod convert;
pub use convert::{extra_signatures, metric_set, metric_specs, signatures};
mod device;
mod experiment;
mod keys;
mod problem;
mod status;

pub use admin::{
    AppList, AppSpec, AppView, ArtifactSpec, ArtifactStored, AuditEntry, AuditLog, ChannelSpec, ClientSignaturesSpec,
    CodePushKeyList, CodePushKeyRequest, CodePushKeyView, CompareSpec, ExplainRequest, ExplainResponse, GateSpec,
    KeySpec, MetricGateSpec, MetricKindSpec, MetricSpec, PatchSpec, PromoteRequest, PublishRequest, Reason,
    ReleaseList, ReleaseSpec, ReleaseVerdict, ReleaseView, Role, RollbackRequest, RolloutPatch, RolloutSpec,
    RolloutView, RuleKind, RuleSpec, ScheduleSpec, TokenCreated, TokenList, TokenRequest, TokenView, TraitOp,
};
pub use device::{
    AnswerKeyView, AnswerKeys, ArtifactOffer, CheckRequest, CheckResponse, Event, EventBatch, EventKind,
    EventsAccepted, MetricReport, PatchOffer, Rejections, UpdateOffer,
};
pub use experiment::{
    ArmRequest, ArmSlotSpec, ArmValue, ArmView, ExperimentRequest, ExperimentView, FigureView, PromoteWinnerRequest,
    WinnerPromoted,
};
pub use keys::{KeyDocumentSpec, KeyDocuments, SignatureSpec};
pub use problem::Problem;
pub use status::{
    AdoptionHistory, ChannelAdoption, ChannelHistory, EvidenceView, ExhaustionView, Figures, LastLookTakenView,
    LastLookView, MetricEvidenceView, MetricFiguresView, MetricStepView, MetricView, ReleaseStatus, RolloutStatus,
    ScheduleStatus, StatusView, TrendPoint, TrendView, VersionAdoption, VersionHistory, WindowCount,
};

#[cfg(test)]
mod tests;
