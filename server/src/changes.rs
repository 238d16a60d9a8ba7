//! Every change an admin can make: create/update an app, publish, change a rollout, promote,
//! halt, roll back by rebuild, create/revoke tokens.
//!
//! Callers (the HTTP handlers) have authorised the principal before; it is passed here as
//! the actor of the audit entry. Each change runs under the writer lock: validate against the current snapshot, build the
//! new app snapshot (so an invalid catalog is refused before anything is written), commit the
//! records and an audit entry to sled and flush, then publish the new snapshot. A refused
//! change writes nothing.

use std::sync::Arc;

use halftone_channels::wire::{
    AppSpec, AppView, AuditEntry, ChannelSpec, PromoteRequest, PublishRequest, ReleaseSpec, ReleaseView,
    RollbackRequest, RolloutPatch, RolloutSpec, RolloutView, TokenCreated, TokenRequest, TokenView,
};
use halftone_channels::{
    AppId, ChannelName, IdList, Percent, Range, Release, Rollout, RolloutState, Rule, ScheduleClock, SignedFields,
    Version, signed_message,
};
use serde::Serialize;

use crate::auth::{Principal, new_token};
use crate::problem::ApiError;
use crate::snapshot::{AppParts, AppSnapshot, RolloutMeta, etag, ladder_of};
use crate::state::State;
use crate::store::{AppRecord, Change, ReleaseRecord, RolloutRecord, TokenRecord};

fn json<T: Serialize>(v: &T) -> Option<serde_json::Value> {
    serde_json::to_value(v).ok()
}

fn audit(at_ms: u64, actor: &str, action: &str, app: &AppId, subject: String) -> AuditEntry {
    AuditEntry {
        seq: 0,
        at_ms,
        actor: actor.to_owned(),
        action: action.into(),
        app: app.clone(),
        subject,
        before: None,
        after: None,
    }
}

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

impl State {
    fn app(&self, id: &AppId) -> Result<Arc<AppSnapshot>, ApiError> {
        self.snapshot().apps.get(id).cloned().ok_or_else(|| ApiError::NotFound(format!("there is no app {id}")))
    }

    /// Indexes `parts`, commits `change`, and publishes the app's new snapshot.
    async fn apply(&self, parts: AppParts, change: Change) -> Result<Arc<AppSnapshot>, ApiError> {
        let id = parts.id.clone();
        let built = Arc::new(AppSnapshot::build(parts).map_err(|e| ApiError::Unprocessable(format!("{e:#}")))?);
        self.store.commit(change).await?;
        let mut snapshot = (**self.snapshot()).clone();
        snapshot.apps.insert(id, built.clone());
        self.publish_snapshot(snapshot);
        Ok(built)
    }

    /// Creates or updates an app. Creating needs an admin: checked here because only the
    /// locked snapshot tells creation from update.
    pub async fn upsert_app(&self, who: &Principal, id: AppId, spec: AppSpec) -> Result<(AppView, Outcome), ApiError> {
        let name = spec.display_name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(ApiError::BadRequest("display_name must be 1 to 200 printable characters".into()));
        }
        if spec.keys.len() > 32 {
            return Err(ApiError::BadRequest("an app trusts at most 32 keys".into()));
        }
        let mut ids: Vec<_> = spec.keys.iter().map(|k| &k.id).collect();
        ids.sort();
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(ApiError::BadRequest(format!("key id {} is listed twice", w[0])));
        }
        ladder_of(&spec.channels).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let record = AppRecord { display_name: name.to_owned(), keys: spec.keys, channels: spec.channels };

        let _w = self.writer.lock().await;
        let previous = self.snapshot().apps.get(&id).cloned();
        let (parts, outcome) = match &previous {
            None => {
                who.must_be_admin()?;
                (
                    AppParts { id: id.clone(), record: record.clone(), releases: vec![], rollouts: vec![] },
                    Outcome::Created,
                )
            }
            Some(p) => {
                if p.record == record {
                    return Ok((app_view(p), Outcome::Unchanged));
                }
                if p.record.keys != record.keys {
                    // Whoever controls the keys controls what devices install: admins only.
                    who.must_be_admin()?;
                }
                (AppParts { record: record.clone(), ..p.to_parts() }, Outcome::Updated)
            }
        };
        let mut change = Change::default();
        let mut entry = audit(
            self.clock.now_ms(),
            &who.name,
            if previous.is_some() { "app.update" } else { "app.create" },
            &id,
            id.to_string(),
        );
        entry.before = previous.as_ref().and_then(|p| json(&p.record));
        entry.after = json(&record);
        change.put_app(&id, &record).audit(entry);
        let built = self.apply(parts, change).await?;
        Ok((app_view(&built), outcome))
    }

    async fn check_artifacts(&self, app: &AppSnapshot, release: &Release) -> Result<(), ApiError> {
        for (target, a) in release.artifacts() {
            let message = signed_message(SignedFields {
                app: &app.id,
                version: release.version(),
                target,
                sha256: &a.sha256,
                size: a.size,
            });
            app.keys
                .verify(&a.key_id, message.as_bytes(), &a.signature)
                .map_err(|e| ApiError::Unprocessable(format!("artifact for {target} of {}: {e}", release.version())))?;
            if a.url.is_none() {
                match self.artifacts.size(&a.sha256).await {
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
        let release = Release::try_from(req.release).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let version = release.version().clone();

        let _w = self.writer.lock().await;
        let app = self.app(&id)?;
        if !app.catalog.ladder().contains(req.channel.as_str()) {
            return Err(ApiError::Unprocessable(format!("app {id} has no channel {}", req.channel)));
        }
        let rollout = req
            .rollout
            .into_rollout(&id, version.clone(), req.channel.clone())
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        rollout.check_start().map_err(|e| ApiError::Unprocessable(e.to_string()))?;
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

        let mut parts = app.to_parts();
        let spec = ReleaseSpec::from(&release);
        parts.releases.push(Arc::new(release));
        parts.rollouts.push((Arc::new(rollout.clone()), self.new_meta(&rollout)));
        let mut change = Change::default();
        let mut entry =
            audit(self.clock.now_ms(), &who.name, "release.publish", &id, format!("{version}/{}", rollout.channel));
        entry.after = json(&serde_json::json!({ "release": &spec, "rollout": RolloutSpec::from(&rollout) }));
        change
            .put_release(&id, &ReleaseRecord { spec, published_at_ms: self.clock.now_ms() })
            .put_rollout(&id, &version, &rollout.channel, &self.new_record(&rollout))
            .audit(entry);
        let built = self.apply(parts, change).await?;
        Ok((self.release_view(&built, &version).expect("just published"), Outcome::Created))
    }

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
        let _w = self.writer.lock().await;
        let app = self.app(&id)?;
        let current = find_rollout(&app, &version, &channel)?;
        let revision = app.revision(&version, &channel);
        if if_match.trim() != etag(revision) {
            return Err(ApiError::PreconditionFailed(format!(
                "the rollout changed since you read it (now {}, you sent {if_match}); read it again",
                etag(revision)
            )));
        }
        let mut next = current.clone();
        if let Some(p) = patch.basis_points {
            next.percent = p;
        }
        let refused = |e: halftone_channels::ParseError| ApiError::Unprocessable(e.to_string());
        if let Some(a) = patch.allow {
            next.allow = IdList::new(a).map_err(refused)?;
        }
        if let Some(d) = patch.deny {
            next.deny = IdList::new(d).map_err(refused)?;
        }
        if let Some(r) = patch.rules {
            if r.len() > halftone_channels::MAX_RULES {
                let max = halftone_channels::MAX_RULES;
                return Err(ApiError::Unprocessable(format!("invalid rollout: at most {max} rules")));
            }
            next.rules = r;
        }
        if let Some(s) = patch.state {
            next.state = s;
        }
        if let Some(b) = patch.interactive_bypass {
            next.interactive_bypass = b;
        }
        if let Some(s) = patch.schedule {
            next.schedule = Some(halftone_channels::Schedule::try_from(s).map_err(refused)?);
        }
        if let Some(g) = patch.gate {
            next.gate = Some(halftone_channels::HealthGate::try_from(g).map_err(refused)?);
        }
        if next == *current {
            // Nothing changes: no write, no audit entry, the same ETag.
            return Ok(app.rollout_view(current));
        }
        let built =
            self.replace_rollouts(&who.name, &app, "rollout.update", vec![(current.clone(), next)], &[]).await?;
        let (_, rollouts) = built.catalog.release(&version).expect("release exists");
        Ok(built.rollout_view(rollouts.iter().find(|r| r.channel == channel).expect("rollout exists")))
    }

    /// Replaces rollouts (each `(before, after)` on the same release and channel) and commits.
    /// `reasons`, when given, holds one reason per pair for the audit log. Callers hold the
    /// writer lock.
    pub(crate) async fn replace_rollouts(
        &self,
        actor: &str,
        app: &AppSnapshot,
        action: &str,
        pairs: Vec<(Rollout, Rollout)>,
        reasons: &[String],
    ) -> Result<Arc<AppSnapshot>, ApiError> {
        let mut parts = app.to_parts();
        let mut change = Change::default();
        self.stage_replacements(actor, app, action, pairs, &mut parts, &mut change);
        if !reasons.is_empty() {
            change.annotate_audit(reasons);
        }
        self.apply(parts, change).await
    }

    /// Stages rollout replacements into `parts` and `change`: each bumps its revision, moves its
    /// schedule clock (a new percentage starts a new hold; pausing stops the clock, resuming
    /// continues it), and gets an audit entry with before and after.
    fn stage_replacements(
        &self,
        actor: &str,
        app: &AppSnapshot,
        action: &str,
        pairs: Vec<(Rollout, Rollout)>,
        parts: &mut AppParts,
        change: &mut Change,
    ) {
        let now = self.clock.now_ms();
        for (before, after) in pairs {
            let old = app.meta_of(&before.release, &before.channel);
            let mut clock = old.clock;
            if after.percent != before.percent {
                clock = ScheduleClock::start(now).on_state(RolloutState::Active, before.state, now);
            }
            let meta =
                RolloutMeta { revision: old.revision + 1, clock: clock.on_state(before.state, after.state, now) };
            let slot = parts
                .rollouts
                .iter_mut()
                .find(|(r, _)| r.release == before.release && r.channel == before.channel)
                .expect("the rollout exists");
            *slot = (Arc::new(after.clone()), meta);
            let mut entry = audit(now, actor, action, &app.id, format!("{}/{}", after.release, after.channel));
            entry.before = json(&RolloutSpec::from(&before));
            entry.after = json(&RolloutSpec::from(&after));
            let record = RolloutRecord { spec: RolloutSpec::from(&after), revision: meta.revision, clock: meta.clock };
            change.put_rollout(&app.id, &after.release, &after.channel, &record).audit(entry);
        }
    }

    fn new_meta(&self, r: &Rollout) -> RolloutMeta {
        let now = self.clock.now_ms();
        let clock = ScheduleClock::start(now).on_state(RolloutState::Active, r.state, now);
        RolloutMeta { revision: 1, clock }
    }

    fn new_record(&self, r: &Rollout) -> RolloutRecord {
        let meta = self.new_meta(r);
        RolloutRecord { spec: RolloutSpec::from(r), revision: meta.revision, clock: meta.clock }
    }

    /// A release's wire view with its offer count from the feedback figures.
    pub fn release_view(&self, app: &AppSnapshot, version: &Version) -> Option<ReleaseView> {
        app.release_view(version, self.feedback.offers(&app.id, version))
    }

    /// Rolls a release out on a more stable channel than any it is on.
    pub async fn promote(
        &self,
        who: &Principal,
        id: AppId,
        version: Version,
        req: PromoteRequest,
    ) -> Result<ReleaseView, ApiError> {
        let _w = self.writer.lock().await;
        let app = self.app(&id)?;
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
        let rollout = req
            .rollout
            .into_rollout(&id, version.clone(), req.channel.clone())
            .map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        rollout.check_start().map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let mut parts = app.to_parts();
        parts.rollouts.push((Arc::new(rollout.clone()), self.new_meta(&rollout)));
        let mut change = Change::default();
        let mut entry =
            audit(self.clock.now_ms(), &who.name, "release.promote", &id, format!("{version}/{}", req.channel));
        entry.after = json(&RolloutSpec::from(&rollout));
        change.put_rollout(&id, &version, &req.channel, &self.new_record(&rollout)).audit(entry);
        let built = self.apply(parts, change).await?;
        Ok(self.release_view(&built, &version).expect("release exists"))
    }

    /// Halts every rollout of a release.
    pub async fn halt(&self, who: &Principal, id: AppId, version: Version) -> Result<ReleaseView, ApiError> {
        let _w = self.writer.lock().await;
        let app = self.app(&id)?;
        let (_, rollouts) = app.catalog.release(&version).ok_or_else(|| no_release(&id, &version))?;
        let pairs = halted(rollouts);
        if pairs.is_empty() {
            return Ok(self.release_view(&app, &version).expect("release exists"));
        }
        let built = self.replace_rollouts(&who.name, &app, "release.halt", pairs, &[]).await?;
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
        let release = Release::try_from(spec).map_err(|e| ApiError::Unprocessable(e.to_string()))?;
        let version = release.version().clone();
        let good = release.rebuild_of().cloned().ok_or_else(|| {
            ApiError::Unprocessable("a rollback release must name the good version it re-issues in rebuild_of".into())
        })?;

        let _w = self.writer.lock().await;
        let app = self.app(&id)?;
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
        self.check_artifacts(&app, &release).await?;

        // Devices above the good version up to and including the bad one: those that got the
        // bad build or passed the good one on the way to it. Devices on newer builds (a later
        // prerelease on a less stable channel) are not pushed back to old code.
        let above_good = Rule::AppVersion(
            Range::parse(&format!(">{good}, <={}", req.bad_version))
                .map_err(|e| ApiError::Unprocessable(e.to_string()))?,
        );
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

        let mut parts = app.to_parts();
        let mut change = Change::default();
        self.stage_replacements(&who.name, &app, "rollback.halt", halted(bad_rollouts), &mut parts, &mut change);
        let spec = ReleaseSpec::from(&release);
        change.put_release(&id, &ReleaseRecord { spec: spec.clone(), published_at_ms: self.clock.now_ms() });
        for r in &rebuilds {
            change.put_rollout(&id, &version, &r.channel, &self.new_record(r));
        }
        let mut entry = audit(
            self.clock.now_ms(),
            &who.name,
            "rollback.publish",
            &id,
            format!("{version} (rebuild of {good}, replaces {})", req.bad_version),
        );
        entry.after = json(&serde_json::json!({
            "release": spec,
            "channels": rebuilds.iter().map(|r| r.channel.to_string()).collect::<Vec<_>>(),
        }));
        change.audit(entry);
        parts.releases.push(Arc::new(release));
        parts.rollouts.extend(rebuilds.into_iter().map(|r| {
            let meta = self.new_meta(&r);
            (Arc::new(r), meta)
        }));
        let built = self.apply(parts, change).await?;
        Ok((self.release_view(&built, &version).expect("just published"), Outcome::Created))
    }

    /// Creates a token (admins only); the secret is in the answer and nowhere else.
    pub async fn create_token(&self, who: &Principal, req: TokenRequest) -> Result<TokenCreated, ApiError> {
        let name = req.name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(ApiError::BadRequest("name must be 1 to 100 printable characters".into()));
        }
        if [crate::scheduler::SCHEDULER, crate::scheduler::HEALTH_GATE].contains(&name) {
            return Err(ApiError::BadRequest(format!("{name} is reserved for the server's own changes")));
        }
        let t = new_token();
        let record =
            TokenRecord { name: name.to_owned(), role: req.role, apps: req.apps, secret_sha256: t.secret_sha256 };
        let _w = self.writer.lock().await;
        let mut change = Change::default();
        change.put_token(&t.id, &record);
        self.store.commit(change).await?;
        let mut snapshot = (**self.snapshot()).clone();
        snapshot.tokens.insert(t.id.clone(), Arc::new(record.clone()));
        self.publish_snapshot(snapshot);
        tracing::info!(actor = %who.name, token = %t.id, role = ?record.role, "token created");
        Ok(TokenCreated { view: token_view(&t.id, &record), token: t.bearer })
    }

    /// Revokes a token (admins only).
    pub async fn revoke_token(&self, who: &Principal, id: &str) -> Result<(), ApiError> {
        let _w = self.writer.lock().await;
        let snapshot = self.snapshot();
        let Some(token) = snapshot.tokens.get(id) else {
            return Err(ApiError::NotFound(format!("there is no token {id}")));
        };
        let admins = snapshot.tokens.values().filter(|t| t.role == halftone_channels::wire::Role::Admin).count();
        if token.role == halftone_channels::wire::Role::Admin && admins == 1 {
            return Err(ApiError::Conflict("this is the last admin token; create another admin token first".into()));
        }
        let mut change = Change::default();
        change.remove_token(id);
        self.store.commit(change).await?;
        let mut snapshot = (**self.snapshot()).clone();
        snapshot.tokens.remove(id);
        self.publish_snapshot(snapshot);
        tracing::info!(actor = %who.name, token = %id, "token revoked");
        Ok(())
    }

    /// Creates the first admin token of an empty data dir; returns its bearer string.
    pub async fn bootstrap_token(&self) -> anyhow::Result<Option<String>> {
        let _w = self.writer.lock().await;
        if self.store.is_bootstrapped()? {
            return Ok(None);
        }
        if !self.snapshot().tokens.is_empty() {
            // A data dir from before the flag existed: it was bootstrapped; record it.
            let mut change = Change::default();
            change.mark_bootstrapped();
            self.store.commit(change).await?;
            return Ok(None);
        }
        let t = new_token();
        let record = TokenRecord {
            name: "bootstrap-admin".into(),
            role: halftone_channels::wire::Role::Admin,
            apps: vec![],
            secret_sha256: t.secret_sha256,
        };
        let mut change = Change::default();
        change.put_token(&t.id, &record).mark_bootstrapped();
        self.store.commit(change).await?;
        let mut snapshot = (**self.snapshot()).clone();
        snapshot.tokens.insert(t.id.clone(), Arc::new(record));
        self.publish_snapshot(snapshot);
        Ok(Some(t.bearer))
    }
}

fn halted(rollouts: &[Arc<Rollout>]) -> Vec<(Rollout, Rollout)> {
    rollouts
        .iter()
        .filter(|r| r.state != RolloutState::Halted)
        .map(|r| ((**r).clone(), Rollout { state: RolloutState::Halted, ..(**r).clone() }))
        .collect()
}

fn no_release(app: &AppId, v: &Version) -> ApiError {
    ApiError::NotFound(format!("app {app} has no release {v}"))
}

/// The rollout of `version` on `channel`, or a 404 that says which part is missing.
pub fn find_rollout<'a>(
    app: &'a AppSnapshot,
    version: &Version,
    channel: &ChannelName,
) -> Result<&'a Rollout, ApiError> {
    let (_, rollouts) = app.catalog.release(version).ok_or_else(|| no_release(&app.id, version))?;
    rollouts
        .iter()
        .find(|r| r.channel == *channel)
        .map(|r| &**r)
        .ok_or_else(|| ApiError::NotFound(format!("release {version} of {} is not rolled out on {channel}", app.id)))
}

/// The wire view of an app.
pub fn app_view(app: &AppSnapshot) -> AppView {
    AppView {
        id: app.id.clone(),
        display_name: app.record.display_name.clone(),
        keys: app.record.keys.clone(),
        channels: app
            .catalog
            .ladder()
            .channels()
            .into_iter()
            .map(|(n, r)| ChannelSpec { name: n.clone(), rank: r })
            .collect(),
    }
}

/// The wire view of a token.
pub fn token_view(id: &str, t: &TokenRecord) -> TokenView {
    TokenView { id: id.to_owned(), name: t.name.clone(), role: t.role, apps: t.apps.clone() }
}
