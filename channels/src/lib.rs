//! # halftone-channels
//!
//! The pure decision core of Halftone: for every device that checks in, which build should it
//! run? This crate owns the domain and nothing else: it reads no clock, disk, network,
//! environment or global random source. Stored state and the request come in as arguments; a
//! decision comes out.
//!
//! Main types:
//! - values that cannot be invalid: [`AppId`], [`Version`], [`ChannelName`], [`Os`], [`Arch`],
//!   [`OsVersion`], [`DeviceId`], [`Locale`], [`Percent`], [`Sha256`], [`Signature`], ...
//! - [`Ladder`]: an app's channels ordered by stability (a device sees its channel and every
//!   more stable one);
//! - [`Release`] with its signed [`Artifact`]s; [`Rollout`] with percentage, [`Rule`]s, lists
//!   and [`RolloutState`];
//! - [`bucket()`]: the documented, deterministic bucketing function;
//! - [`Catalog`]: an app's releases indexed for [`Catalog::select`] (a [`Decision`]) and
//!   [`Catalog::explain`] (an [`Explanation`]);
//! - [`signed_message`] and [`TrustedKeys`]: what an artifact signature covers and its check;
//! - [`Patch`] and [`patch_message`]: a signed delta from one earlier build to an artifact,
//!   bound to both by its signed message;
//! - [`KeyDocument`] and [`KeyChain`]: an app's release keys as versioned documents, each
//!   signed by its predecessor's keys (rotation), with a [`Threshold`] (k-of-n);
//! - [`HealthGate`] with its sequential [`Comparison`] against the baseline build, and
//!   [`MeanTest`] comparing builds on an app metric's [`Summary`];
//! - app metrics: [`MetricName`], [`MetricSet`] (an app's declared metrics), a build's
//!   [`Distribution`] (count, mean, variance, quantiles in bounded memory) and
//!   [`CounterFigures`]; [`MetricGate`] judges a value metric (or a counter's counts per
//!   report) against the baseline, on a window of [`Summary`]s ([`Summary::since`]);
//! - [`wire`]: the JSON types of the HTTP protocol and their conversions to and from the
//!   domain (the domain modules never import `wire`).
//!
//! Invariants: a [`Decision::Available`] offer is always strictly newer than the running
//! version; raising a rollout's percentage only adds devices; the same inputs give the same
//! answer.

#![deny(missing_docs)]

mod answer;
mod app;
mod arm_comparison;
mod arms;
mod bucket;
mod catalog;
mod channel;
mod checkin;
mod client_signatures;
mod deployment_key;
mod distribution;
mod error;
mod exhaustion;
mod experiment;
mod explain;
mod health;
mod key_document;
mod label;
mod metric;
mod metric_gate;
mod patch;
mod platform;
mod range;
mod release;
mod report_token;
mod rollout;
mod rules;
mod schedule;
mod sequential;
mod settling;
mod signing;
mod version;
pub mod wire;

#[cfg(test)]
mod test_support;

pub use answer::{
    AnswerError, AnswerFields, Batch, MAX_BATCH, Node, Nonce, PROOF_HEADER, Proof, answer_key_id, leaf, leaf_message,
    root_message,
};
pub use app::AppId;
pub use arm_comparison::{ARM_TEST, Figure, FigureComparison, METRIC_EFFECT, compare_arms, metric_test};
pub use arms::{ArmShare, ArmSlot, Experiment, MAX_ARMS, check_arm, is_live_arm};
pub use bucket::{Bucket, bucket};
pub use catalog::{Catalog, CatalogError, Decision, MAX_CHANNELS, Offer, SelectError, Selection};
pub use channel::{BUILT_IN, ChannelName, Ladder, LadderError, Rank, Serving};
pub use checkin::{CheckIn, CheckKind, DeviceId, Locale, MAX_TRAITS, Served, TraitName, TraitValue, Traits, UserId};
pub use client_signatures::{
    BindingError, ClientSignatures, Minisign, Sha512, minisign_key_number, minisign_public_key, sparkle_public_key,
    trusted_comment,
};
pub use deployment_key::{DeploymentKey, MIN_DEPLOYMENT_KEY};
pub use distribution::{Distribution, DistributionFigures, MAX_BINS, RELATIVE_ERROR};
pub use error::{ParseError, What};
pub use exhaustion::{ExhaustedStep, ReportsSeen, StepExhaustion};
pub use experiment::{Better, MeanComparison, MeanTest, Summary};
pub use explain::{Explanation, ReleaseTrace, Skip, Verdict};
pub use health::{
    Breach, GateAction, GateFigures, Health, HealthGate, Limit, Metric, MetricSample, StepShort, Verdict as GateVerdict,
};
pub use key_document::{KeyChain, KeyChainError, KeyDocument, SignedKeyDocument, Signers, Threshold};
pub use label::{DisplayName, MAX_DISPLAY_NAME, MAX_TOKEN_NAME, TokenName};
pub use metric::{
    CounterFigures, Direction, MAX_COUNT, MAX_METRIC_MAGNITUDE, MAX_METRIC_NAME, MAX_METRICS, MetricKind, MetricName,
    MetricSet, MetricValue,
};
pub use metric_gate::{Measure, MetricEvidence, MetricGate, defaults as metric_gate_defaults};
pub use patch::{Blob, MAX_PATCHES, Patch, PatchFields, PatchFormat, Patches, patch_message, zstd_window_log};
pub use platform::{Arch, Os, OsVersion, Platform, Target};
pub use range::{Comparator, Op, Range};
pub use release::{Artifact, ExternalUrl, MAX_NOTES, Release, ReleaseParts};
pub use report_token::{REPORT_TOKEN_BYTES, ReportToken};
pub use rollout::{
    Admission, Exclusion, IdList, ListedId, MAX_LIST, MAX_RULES, Percent, Rollout, RolloutEdit, RolloutState, Rules,
    Salt, Stickiness,
};
pub use rules::{MAX_RULE_VALUES, Rule, TraitCondition};
pub use schedule::{MAX_STEPS, Schedule, ScheduleClock, SchedulePreset, Share, Step, Tick};
pub use sequential::{
    Call, Comparison, DEFAULT_CRASH_WINDOW_S, DEFAULT_CRASHES_PROVEN_FROM, DEFAULT_EXHAUSTED_AFTER_S,
    DEFAULT_LAST_LOOK, Evidence, LastLook, MAX_EXHAUSTED_AFTER_S, MIN_EXHAUSTED_AFTER_S, Proportion,
};
pub use settling::Settling;
pub use signing::{
    KeyId, KeySignature, MAX_SIGNATURES, MAX_TRUSTED_KEYS, PublicKey, Sha256, Signature, SignatureError, Signatures,
    SignedFields, TrustedKeys, signed_message,
};
pub use version::Version;
