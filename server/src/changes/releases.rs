//! Releases: publish with a first rollout, promote to a more stable channel, halt everywhere,
//! and roll back by rebuild.

use std::sync::Arc;

use halftone_channels::wire::{PromoteRequest, PublishRequest, ReleaseSpec, ReleaseView, RollbackRequest, RolloutSpec};
use halftone_channels::{
    AppId, Percent, Range, Release, Rollout, RolloutState, Rule, SignedFields, Version, signed_message,
};

use super::rollouts::{halted, new_meta, reading, stage_replacements};
use super::{Outcome, audit, json};
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::snapshot::AppSnapshot;
use crate::state::State;
use crate::store::Change;
use crate::views::no_release;

impl State {
    /// Refuses a release whose artifacts a trusted key did not sign, or whose files are not
    /// uploaded (or not of the signed size) when the server is to serve them.
    async fn check_artifacts(&self, app: &AppSnapshot, release: &Release) -> Result<(), ApiError> {
        for (target, a) in release.artifacts() {
            let fields =
                SignedFields { app: &app.id, version: release.version(), target, sha256: &a.sha256, size: a.size };
            let message = signed_message(fields);
            app.keys
                .verify_threshold(app.threshold, message.as_bytes(), &a.signatures)
                .map_err(|e| ApiError::Unprocessable(format!("artifact for {target} of {}: {e}", release.version())))?;
            if a.url.is_none() {
                match self.artifacts.size(&a.sha256).await.map_err(ApiError::object_store_unavailable)? {
                    None => {
                        return Err(ApiError::Unprocessable(format!(
                            "artifact {} for {target} is not uploaded: PUT /v1/artifacts/{} first, or give a url",
                            a.sha256, a.sha256
                        )));
                    }
                    Some(size) if size != a.size => {
                        return Err(ApiError::Unprocessable(format!(
                            "artifact {} for {target} is {size} bytes on the server, not {}",
                            a.sha256, a.size
                        )));
                    }
                    Some(_) => {}
                }
            }
            crate::client_signatures::check_key(app, fields, a)?;
            for patch in a.patches.iter() {
                let message = patch.message(fields);
                app.keys.verify_threshold(app.threshold, message.as_bytes(), &patch.signatures).map_err(|e| {
                    ApiError::Unprocessable(format!(
                        "patch from {} for {target} of {}: {e}",
                        patch.base.sha256,
                        release.version()
                    ))
                })?;
                self.check_stored(&patch.file.sha256, patch.file.size, &format!("patch {}", patch.file.sha256)).await?;
            }
        }
        Ok(())
    }

    /// Refuses a file the server must serve that is not uploaded, or not of the signed size.
    async fn check_stored(&self, sha256: &halftone_channels::Sha256, size: u64, what: &str) -> Result<(), ApiError> {
        match self.artifacts.size(sha256).await.map_err(ApiError::object_store_unavailable)? {
            None => Err(ApiError::Unprocessable(format!("{what} is not uploaded: PUT /v1/artifacts/{sha256} first"))),
            Some(stored) if stored != size => {
                Err(ApiError::Unprocessable(format!("{what} is {stored} bytes on the server, not {size}")))
            }
            Some(_) => Ok(()),
        }
    }

    /// The other updaters' checks over the stored bytes of `release`'s artifacts, against the
    /// current snapshot, before any writer is taken (reading a large build must not hold other
    /// changes); an unknown app is left to the checks under the writer.
    async fn check_client_bytes(&self, id: &AppId, release: &Release) -> Result<(), ApiError> {
        let snapshot = self.snapshot();
        let Some(app) = snapshot.apps.get(id).cloned() else { return Ok(()) };
        drop(snapshot);
        for (target, a) in release.artifacts() {
            let fields =
                SignedFields { app: &app.id, version: release.version(), target, sha256: &a.sha256, size: a.size };
            crate::client_signatures::check(&self.artifacts, &app, fields, a).await?;
        }
        Ok(())
    }

    /// Publishes a release with its first rollout. Publishing the identical release on a
    /// channel it is already rolled out on is an idempotent success.
    pub async fn publish(
        &self,
        who: &Principal,
        id: AppId,
        req: PublishRequest,
    ) -> Result<(ReleaseView, Outcome), ApiError> {
        let release = Release::try_from(req.release)?;
        let version = release.version().clone();
        self.check_client_bytes(&id, &release).await?;

        let mut w = self.writer().await;
        let app = w.app(&id).await?;
        if !app.catalog.ladder().contains(req.channel.as_str()) {
            return Err(ApiError::Unprocessable(format!("app {id} has no channel {}", req.channel)));
        }
        let rollout = req.rollout.into_rollout(&id, version.clone(), req.channel.clone())?;
        rollout.check_start()?;
        if let Some(g) = &rollout.gate {
            g.check_metrics_declared(&app.settings.metrics)?;
        }
        if let Some((existing, rollouts)) = app.catalog.release(&version) {
            if *existing != release {
                return Err(ApiError::Conflict(format!(
                    "release {version} already exists with different content; versions are immutable, publish a higher one"
                )));
            }
            if !rollouts.iter().any(|r| r.channel == req.channel) {
                return Err(ApiError::Conflict(format!(
                    "release {version} already exists and is not on {}; promote it instead",
                    req.channel
                )));
            }
            return Ok((self.release_view(&app, &version).expect("release exists"), Outcome::Unchanged));
        }
        self.check_artifacts(&app, &release).await?;

        let now = self.clock.now_ms();
        let mut parts = app.to_parts();
        let spec = ReleaseSpec::from(&release);
        let mut change = Change::default();
        let meta = new_meta(now, &app, &rollout, &|v| reading(&self.feedback, &id, v));
        change.put_release(&id, &release, now).put_rollout(&id, &rollout, meta.clone());
        parts.releases.push(Arc::new(release));
        parts.rollouts.push((Arc::new(rollout.clone()), meta));
        let subject = format!("{version}/{}", rollout.channel);
        let mut entry = audit(now, &who.name, "release.publish", Some(&id), subject);
        entry.after = json(&serde_json::json!({ "release": &spec, "rollout": RolloutSpec::from(&rollout) }));
        change.audit(entry);
        let built = w.commit_app(parts, change).await?;
        Ok((self.release_view(&built, &version).expect("just published"), Outcome::Created))
    }

    /// Rolls a release out on a more stable channel than any it is on.
    pub async fn promote(
        &self,
        who: &Principal,
        id: AppId,
        version: Version,
        req: PromoteRequest,
    ) -> Result<ReleaseView, ApiError> {
        let mut w = self.writer().await;
        let app = w.app(&id).await?;
        let (_, rollouts) = app.catalog.release(&version).ok_or_else(|| no_release(&id, &version))?;
        let ladder = app.catalog.ladder();
        let rank = ladder
            .rank(req.channel.as_str())
            .ok_or_else(|| ApiError::Unprocessable(format!("app {id} has no channel {}", req.channel)))?;
        if rollouts.iter().any(|r| r.channel == req.channel) {
            return Err(ApiError::Conflict(format!(
                "release {version} is already rolled out on {}; change that rollout instead",
                req.channel
            )));
        }
        let most_stable = rollouts.iter().min_by_key(|r| ladder.rank(r.channel.as_str()));
        if let Some(most_stable) = most_stable.filter(|r| ladder.rank(r.channel.as_str()).is_some_and(|r| rank > r)) {
            return Err(ApiError::Unprocessable(format!(
                "promotion goes to a more stable channel: {version} is already on {}, which is more stable than {}",
                most_stable.channel, req.channel
            )));
        }
        let rollout = req.rollout.into_rollout(&id, version.clone(), req.channel.clone())?;
        rollout.check_start()?;
        if let Some(g) = &rollout.gate {
            g.check_metrics_declared(&app.settings.metrics)?;
        }
        let now = self.clock.now_ms();
        let mut parts = app.to_parts();
        let meta = new_meta(now, &app, &rollout, &|v| reading(&self.feedback, &id, v));
        parts.rollouts.push((Arc::new(rollout.clone()), meta.clone()));
        let subject = format!("{version}/{}", req.channel);
        let mut entry = audit(now, &who.name, "release.promote", Some(&id), subject);
        entry.after = json(&RolloutSpec::from(&rollout));
        let mut change = Change::default();
        change.put_rollout(&id, &rollout, meta).audit(entry);
        let built = w.commit_app(parts, change).await?;
        Ok(self.release_view(&built, &version).expect("release exists"))
    }

    /// Halts every rollout of a release.
    pub async fn halt(&self, who: &Principal, id: AppId, version: Version) -> Result<ReleaseView, ApiError> {
        let mut w = self.writer().await;
        let app = w.app(&id).await?;
        let (_, rollouts) = app.catalog.release(&version).ok_or_else(|| no_release(&id, &version))?;
        let pairs = halted(rollouts);
        if pairs.is_empty() {
            return Ok(self.release_view(&app, &version).expect("release exists"));
        }
        let built = w.replace_rollouts(self.clock.now_ms(), &who.name, &app, "release.halt", pairs, &[]).await?;
        Ok(self.release_view(&built, &version).expect("release exists"))
    }

    /// Rolls back by rebuild, atomically: halts `bad_version` everywhere and publishes the
    /// rebuild (critical, at 100%, to devices above the good version) on every channel where
    /// the bad one was rolled out.
    pub async fn rollback(
        &self,
        who: &Principal,
        id: AppId,
        req: RollbackRequest,
    ) -> Result<(ReleaseView, Outcome), ApiError> {
        let mut spec = req.release;
        spec.critical = true;
        let release = Release::try_from(spec)?;
        let version = release.version().clone();
        let good = release.rebuild_of().cloned().ok_or_else(|| {
            ApiError::Unprocessable("a rollback release must name the good version it re-issues in rebuild_of".into())
        })?;
        self.check_client_bytes(&id, &release).await?;

        let mut w = self.writer().await;
        let app = w.app(&id).await?;
        let (_, bad_rollouts) =
            app.catalog.release(&req.bad_version).ok_or_else(|| no_release(&id, &req.bad_version))?;
        if let Some((existing, _)) = app.catalog.release(&version) {
            if *existing == release && !app.is_live(&req.bad_version) {
                return Ok((self.release_view(&app, &version).expect("exists"), Outcome::Unchanged));
            }
            return Err(ApiError::Conflict(format!("release {version} already exists")));
        }
        if let Some(newest) = app.catalog.newest().filter(|n| version <= **n) {
            return Err(ApiError::Unprocessable(format!(
                "a rollback release must be higher than every version of {id}: {version} is not above {newest}"
            )));
        }
        if app.catalog.release(&good).is_none() {
            return Err(ApiError::Unprocessable(format!("rebuild_of names {good}, which is not a release of {id}")));
        }
        if good >= req.bad_version {
            return Err(ApiError::Unprocessable(format!(
                "rebuild_of {good} must be older than the bad version {}",
                req.bad_version
            )));
        }
        if !req.leave_uncovered {
            let (bad, _) = app.catalog.release(&req.bad_version).expect("looked up above");
            let uncovered: Vec<String> =
                bad.artifacts().keys().filter(|t| release.artifact(t).is_none()).map(ToString::to_string).collect();
            if !uncovered.is_empty() {
                return Err(ApiError::Unprocessable(format!(
                    "the rebuild has no build for {}, which {} has: devices there would stay on the bad build; add \
                     those builds, or set leave_uncovered (CLI: --leave-uncovered) to accept that",
                    uncovered.join(", "),
                    req.bad_version
                )));
            }
        }
        self.check_artifacts(&app, &release).await?;

        // Devices above the good version up to and including the bad one: those that got the
        // bad build or passed the good one on the way to it. Devices on newer builds (a later
        // prerelease on a less stable channel) are not pushed back to old code. Both ends are
        // valid versions, so the range always parses.
        let above_good =
            Rule::AppVersion(Range::parse(&format!(">{good}, <={}", req.bad_version)).map_err(anyhow::Error::from)?);
        let rebuilds: Vec<Rollout> = bad_rollouts
            .iter()
            .map(|bad| {
                RolloutSpec {
                    basis_points: Percent::FULL,
                    salt: None,
                    stickiness: bad.stickiness,
                    allow: vec![],
                    deny: vec![],
                    rules: vec![above_good.clone()],
                    state: RolloutState::Active,
                    interactive_bypass: false,
                    schedule: None,
                    gate: None,
                }
                .into_rollout(&id, version.clone(), bad.channel.clone())
            })
            .collect::<Result<_, _>>()?;

        let now = self.clock.now_ms();
        let mut parts = app.to_parts();
        let mut change = Change::default();
        let read = |v: &Version| reading(&self.feedback, &id, v);
        let halting = halted(bad_rollouts);
        stage_replacements(now, &who.name, &app, "rollback.halt", halting, &[], &read, &mut parts, &mut change);
        let spec = ReleaseSpec::from(&release);
        change.put_release(&id, &release, now);
        let rebuilds: Vec<_> = rebuilds
            .into_iter()
            .map(|r| {
                let meta = new_meta(now, &app, &r, &read);
                (r, meta)
            })
            .collect();
        for (r, meta) in &rebuilds {
            change.put_rollout(&id, r, meta.clone());
        }
        let subject = format!("{version} (rebuild of {good}, replaces {})", req.bad_version);
        let mut entry = audit(now, &who.name, "rollback.publish", Some(&id), subject);
        entry.after = json(&serde_json::json!({
            "release": spec,
            "channels": rebuilds.iter().map(|(r, _)| r.channel.to_string()).collect::<Vec<_>>(),
        }));
        change.audit(entry);
        parts.releases.push(Arc::new(release));
        parts.rollouts.extend(rebuilds.into_iter().map(|(r, meta)| (Arc::new(r), meta)));
        let built = w.commit_app(parts, change).await?;
        Ok((self.release_view(&built, &version).expect("just published"), Outcome::Created))
    }
}
