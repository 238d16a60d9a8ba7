//! Changing a rollout: an engineer's patch (guarded by its ETag), and the replacement of
//! rollouts that halting, rolling back, the scheduler and health gates share.

use std::sync::Arc;

use halftone_channels::wire::{RolloutPatch, RolloutSpec, RolloutView};
use halftone_channels::{AppId, ChannelName, Rollout, RolloutEdit, RolloutState, ScheduleClock, Version};

use super::audit;
use crate::auth::Principal;
use crate::feedback::Feedback;
use crate::problem::ApiError;
use crate::snapshot::{AppParts, AppSnapshot, GateMarks, Looked, Reading, RolloutMeta, etag};
use crate::state::State;
use crate::store::Change;
use crate::views::find_rollout;
use crate::writer::Writer;

impl State {
    /// Changes a rollout, if `if_match` names its current revision.
    pub async fn patch_rollout(
        &self,
        who: &Principal,
        id: AppId,
        version: Version,
        channel: ChannelName,
        if_match: Option<&str>,
        patch: RolloutPatch,
    ) -> Result<RolloutView, ApiError> {
        let if_match = if_match.ok_or_else(|| {
            ApiError::PreconditionRequired(
                "send If-Match with the rollout's ETag (GET it first) so concurrent changes are not lost".into(),
            )
        })?;
        let mut w = self.writer().await;
        let app = w.app(&id).await?;
        let current = find_rollout(&app, &version, &channel)?;
        let revision = app.revision(&version, &channel);
        if if_match.trim() != etag(revision) {
            return Err(ApiError::PreconditionFailed(format!(
                "the rollout changed since you read it (now {}, you sent {if_match}); read it again",
                etag(revision)
            )));
        }
        let resume_rolled_back = patch.resume_rolled_back;
        let next = current.edited(RolloutEdit::try_from(patch)?);
        halftone_channels::check_arm(&next)?;
        if let Some(g) = &next.gate {
            g.check_metrics_declared(&app.settings.metrics)?;
        }
        let widens = next.percent > current.percent
            || (next.state == RolloutState::Active && current.state != RolloutState::Active);
        if widens
            && !resume_rolled_back
            && let Some(rebuild) = app.catalog.rolled_back_by(&version)
        {
            return Err(ApiError::Conflict(format!(
                "{version} was rolled back by {rebuild}: resuming or widening it offers the bad build again; \
                 set resume_rolled_back (CLI: --resume-rolled-back) if that is really meant"
            )));
        }
        if next == *current {
            // Nothing changes: no write, no audit entry, the same ETag.
            return Ok(app.rollout_view(current));
        }
        let pairs = vec![(current.clone(), next)];
        let built = w
            .replace_rollouts(self.clock.now_ms(), &who.name, &app, "rollout.update", pairs, &[])
            .await
            .map_err(|e| match e {
                // Another replica changed the app between our read and our write: for this
                // request, the precondition (the ETag it read) no longer holds.
                ApiError::Conflict(why) => ApiError::PreconditionFailed(why),
                other => other,
            })?;
        let (_, rollouts) = built.catalog.release(&version).expect("release exists");
        Ok(built.rollout_view(rollouts.iter().find(|r| r.channel == channel).expect("rollout exists")))
    }
}

impl Writer<'_> {
    /// Replaces rollouts (each `(before, after)` on the same release and channel) at `now` and
    /// commits. `reasons`, when given, holds one reason per pair for the audit log.
    pub(crate) async fn replace_rollouts(
        &mut self,
        now: u64,
        actor: &str,
        app: &AppSnapshot,
        action: &str,
        pairs: Vec<(Rollout, Rollout)>,
        reasons: &[String],
    ) -> Result<Arc<AppSnapshot>, ApiError> {
        self.replace_rollouts_looked(now, actor, app, action, pairs, reasons, &[]).await
    }

    /// [`Writer::replace_rollouts`], recording with each pair the last look it follows from
    /// (`looks`: one per pair, or empty), kept in the rollout's gate marks for the rest of
    /// its window.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn replace_rollouts_looked(
        &mut self,
        now: u64,
        actor: &str,
        app: &AppSnapshot,
        action: &str,
        pairs: Vec<(Rollout, Rollout)>,
        reasons: &[String],
        looks: &[Option<Looked>],
    ) -> Result<Arc<AppSnapshot>, ApiError> {
        let mut parts = app.to_parts();
        let mut change = Change::default();
        let feedback = &self.state().feedback;
        let read = |v: &Version| reading(feedback, &app.id, v);
        stage_replacements(now, actor, app, action, pairs, looks, &read, &mut parts, &mut change);
        if !reasons.is_empty() {
            change.annotate_audit(reasons);
        }
        self.commit_app(parts, change).await
    }
}

/// Stages rollout replacements into `parts` and `change`: each bumps its revision, moves its
/// schedule clock (a new percentage starts a new hold, except a fit of a step of devices; pausing stops the clock, resuming
/// continues it) and its gate marks (a new percentage starts a new step sample; resuming
/// starts a new window, from `read`, the release's figures now, and its baseline's; a pair
/// with a last look in `looks`, one per pair or none, keeps it in its marks), and gets an
/// audit entry with before and after.
#[allow(clippy::too_many_arguments)]
pub(super) fn stage_replacements(
    now: u64,
    actor: &str,
    app: &AppSnapshot,
    action: &str,
    pairs: Vec<(Rollout, Rollout)>,
    looks: &[Option<Looked>],
    read: &dyn Fn(&Version) -> Reading,
    parts: &mut AppParts,
    change: &mut Change,
) {
    for (i, (before, after)) in pairs.into_iter().enumerate() {
        let old = app.meta_of(&before.release, &before.channel);
        let mut clock = old.clock;
        let mut marks = old.marks;
        // A step of devices fitted to its audience stays the same step.
        if after.percent != before.percent && action != crate::scheduler::FIT {
            clock = ScheduleClock::start(now).on_state(RolloutState::Active, before.state, now);
            marks = marks.next_step(read(&after.release));
        }
        if after.state == RolloutState::Active && before.state != RolloutState::Active {
            // A resumed rollout is judged afresh: what halted it is not held against it again,
            // and its baseline's metrics are read from now on too.
            marks = begin_marks(app, &after, read);
        }
        if let Some(look) = looks.get(i).copied().flatten() {
            marks.look = Some(look);
        }
        let meta =
            RolloutMeta { revision: old.revision + 1, clock: clock.on_state(before.state, after.state, now), marks };
        change.put_rollout(&app.id, &after, meta.clone());
        let slot = parts
            .rollouts
            .iter_mut()
            .find(|(r, _)| r.release == before.release && r.channel == before.channel)
            .expect("the rollout exists");
        *slot = (Arc::new(after.clone()), meta);
        let mut entry = audit(now, actor, action, Some(&app.id), format!("{}/{}", after.release, after.channel));
        entry.before = super::json(&RolloutSpec::from(&before));
        entry.after = super::json(&RolloutSpec::from(&after));
        change.audit(entry);
    }
}

/// The metadata of a rollout that starts at `now` in `app` (before it is added): revision 1,
/// its clock running unless it starts paused or halted, its gate window beginning now (the
/// release's figures from `read`, zeros for a new release, and its baseline's).
pub(super) fn new_meta(now: u64, app: &AppSnapshot, r: &Rollout, read: &dyn Fn(&Version) -> Reading) -> RolloutMeta {
    let clock = ScheduleClock::start(now).on_state(RolloutState::Active, r.state, now);
    RolloutMeta { revision: 1, clock, marks: begin_marks(app, r, read) }
}

/// The marks of a gate window of `r` that begins now: the release's figures and, when `app`
/// names a baseline for it, the baseline's with its version.
fn begin_marks(app: &AppSnapshot, r: &Rollout, read: &dyn Fn(&Version) -> Reading) -> GateMarks {
    let baseline = app.catalog.baseline(&r.release, &r.channel).map(|b| (b.clone(), read(b)));
    GateMarks::begin(read(&r.release), baseline)
}

/// A release's cumulative figures now: its distinct-device figures and, per app metric, what
/// a metric gate judges (`MetricFigures::gated`).
pub(crate) fn reading(feedback: &Feedback, app: &AppId, v: &Version) -> Reading {
    let metrics = feedback.metrics(app, v).into_iter().map(|(name, f)| (name, *f.gated())).collect();
    Reading { health: feedback.health(app, v), metrics }
}

/// The halted form of every rollout that is not halted yet, as `(before, after)` pairs.
pub(super) fn halted(rollouts: &[Arc<Rollout>]) -> Vec<(Rollout, Rollout)> {
    rollouts
        .iter()
        .filter(|r| r.state != RolloutState::Halted)
        .map(|r| ((**r).clone(), Rollout { state: RolloutState::Halted, ..(**r).clone() }))
        .collect()
}
