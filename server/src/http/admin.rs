//! The admin side (bearer token): thin handlers that parse the path, check the caller's role
//! (before reading the body, so a refused caller learns nothing about its body), parse the
//! body, and call the change or read they name.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use halftone_channels::wire::{
    AppList, AppSpec, ArtifactStored, AuditLog, CodePushKeyRequest, ExperimentRequest, ExplainRequest, ExplainResponse,
    PromoteRequest, PromoteWinnerRequest, PublishRequest, ReleaseList, RollbackRequest, RolloutPatch, TokenList,
    TokenRequest,
};
use halftone_channels::{AppId, ChannelName, Sha256, Version};

use crate::auth::Principal;
use crate::changes::Outcome;
use crate::http::body;
use crate::problem::ApiError;
use crate::state::State;
use crate::views::{app_view, find_rollout, no_release, token_view};

type Res = Result<HttpResponse, ApiError>;

fn answer(o: Outcome) -> actix_web::HttpResponseBuilder {
    match o {
        Outcome::Created => HttpResponse::Created(),
        Outcome::Unchanged | Outcome::Updated => HttpResponse::Ok(),
    }
}

/// `GET /v1/apps`
pub async fn list_apps(_who: Principal, state: web::Data<State>) -> Res {
    let snapshot = state.snapshot();
    let mut apps: Vec<_> = snapshot.apps.values().map(|a| app_view(a)).collect();
    apps.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(HttpResponse::Ok().json(AppList { apps }))
}

/// `PUT /v1/apps/{app}`
pub async fn put_app(who: Principal, path: web::Path<String>, payload: web::Payload, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path)?;
    match state.snapshot().apps.contains_key(&id) {
        true => who.may_change(&id)?,
        false => who.must_be_admin()?,
    }
    let spec: AppSpec = body::json(payload, state.config.max_json_bytes).await?;
    let (view, outcome) = state.upsert_app(&who, id, spec).await?;
    Ok(answer(outcome).json(view))
}

/// `GET /v1/apps/{app}`
pub async fn get_app(_who: Principal, path: web::Path<String>, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path)?;
    Ok(HttpResponse::Ok().json(app_view(&*state.app(&id)?)))
}

/// `PUT /v1/artifacts/{sha256}`: streamed to disk while hashing.
pub async fn upload(who: Principal, path: web::Path<String>, payload: web::Payload, state: web::Data<State>) -> Res {
    who.may_upload()?;
    let sha = Sha256::parse(&path)?;
    let limit = state.config.max_artifact_bytes;
    let stored = state.artifacts.put(sha, payload, limit).await?;
    let outcome = if stored.created { Outcome::Created } else { Outcome::Unchanged };
    Ok(answer(outcome).json(ArtifactStored { sha256: sha, size: stored.size, created: stored.created }))
}

/// `POST /v1/apps/{app}/releases`
pub async fn publish(who: Principal, path: web::Path<String>, payload: web::Payload, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path)?;
    who.may_change(&id)?;
    let req: PublishRequest = body::json(payload, state.config.max_json_bytes).await?;
    let (view, outcome) = state.publish(&who, id, req).await?;
    Ok(answer(outcome).json(view))
}

/// `GET /v1/apps/{app}/releases`
pub async fn list_releases(_who: Principal, path: web::Path<String>, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path)?;
    let app = state.app(&id)?;
    let releases = app.catalog.releases().filter_map(|(r, _)| state.release_view(&app, r.version())).collect();
    Ok(HttpResponse::Ok().json(ReleaseList { releases }))
}

/// `GET /v1/apps/{app}/releases/{version}`
pub async fn get_release(_who: Principal, path: web::Path<(String, String)>, state: web::Data<State>) -> Res {
    let (id, version) = (AppId::parse(&path.0)?, Version::parse(&path.1)?);
    let app = state.app(&id)?;
    let view = state.release_view(&app, &version).ok_or_else(|| no_release(&id, &version))?;
    Ok(HttpResponse::Ok().json(view))
}

/// `GET /v1/apps/{app}/releases/{version}/rollouts/{channel}`
pub async fn get_rollout(_who: Principal, path: web::Path<(String, String, String)>, state: web::Data<State>) -> Res {
    let (id, version, channel) = (AppId::parse(&path.0)?, Version::parse(&path.1)?, ChannelName::parse(&path.2)?);
    let app = state.app(&id)?;
    let view = app.rollout_view(find_rollout(&app, &version, &channel)?);
    Ok(HttpResponse::Ok().insert_header((header::ETAG, view.etag.clone())).json(view))
}

/// `GET /v1/apps/{app}/releases/{version}/rollouts/{channel}/trend`: the rollout's install
/// figures over time (the dashboard's rate chart), from this replica's memory.
pub async fn rollout_trend(_who: Principal, path: web::Path<(String, String, String)>, state: web::Data<State>) -> Res {
    let (id, version, channel) = (AppId::parse(&path.0)?, Version::parse(&path.1)?, ChannelName::parse(&path.2)?);
    let app = state.app(&id)?;
    find_rollout(&app, &version, &channel)?;
    let points = state.trend.series(&(id, version, channel));
    Ok(HttpResponse::Ok().json(halftone_channels::wire::TrendView { points }))
}

/// `PATCH /v1/apps/{app}/releases/{version}/rollouts/{channel}` with `If-Match`.
pub async fn patch_rollout(
    who: Principal,
    req: HttpRequest,
    path: web::Path<(String, String, String)>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Res {
    let (id, version, channel) = (AppId::parse(&path.0)?, Version::parse(&path.1)?, ChannelName::parse(&path.2)?);
    who.may_change(&id)?;
    let patch: RolloutPatch = body::json(payload, state.config.max_json_bytes).await?;
    let if_match = req.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    let view = state.patch_rollout(&who, id, version, channel, if_match, patch).await?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, view.etag.clone())).json(view))
}

/// `POST /v1/apps/{app}/releases/{version}/promote`
pub async fn promote(
    who: Principal,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Res {
    let (id, version) = (AppId::parse(&path.0)?, Version::parse(&path.1)?);
    who.may_change(&id)?;
    let req: PromoteRequest = body::json(payload, state.config.max_json_bytes).await?;
    Ok(HttpResponse::Created().json(state.promote(&who, id, version, req).await?))
}

/// `POST /v1/apps/{app}/channels/{channel}/experiment`: starts an A/B/N experiment.
pub async fn start_experiment(
    who: Principal,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Res {
    let (id, channel) = (AppId::parse(&path.0)?, ChannelName::parse(&path.1)?);
    who.may_change(&id)?;
    let req: ExperimentRequest = body::json(payload, state.config.max_json_bytes).await?;
    let view = state.start_experiment(&who, id, channel, req).await?;
    Ok(HttpResponse::Created().insert_header((header::ETAG, view.etag.clone())).json(view))
}

/// `GET /v1/apps/{app}/channels/{channel}/experiment`: the arms side by side.
pub async fn get_experiment(_who: Principal, path: web::Path<(String, String)>, state: web::Data<State>) -> Res {
    let (id, channel) = (AppId::parse(&path.0)?, ChannelName::parse(&path.1)?);
    let view = state.experiment_view(&id, &channel)?;
    Ok(HttpResponse::Ok().insert_header((header::ETAG, view.etag.clone())).json(view))
}

/// `POST /v1/apps/{app}/channels/{channel}/experiment/promote` (with `If-Match`).
pub async fn promote_winner(
    who: Principal,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Res {
    let (id, channel) = (AppId::parse(&path.0)?, ChannelName::parse(&path.1)?);
    who.may_change(&id)?;
    let body: PromoteWinnerRequest = body::json(payload, state.config.max_json_bytes).await?;
    let if_match = req.headers().get(header::IF_MATCH).and_then(|v| v.to_str().ok());
    Ok(HttpResponse::Ok().json(state.promote_winner(&who, id, channel, if_match, body).await?))
}

/// `POST /v1/apps/{app}/releases/{version}/halt`
pub async fn halt(who: Principal, path: web::Path<(String, String)>, state: web::Data<State>) -> Res {
    let (id, version) = (AppId::parse(&path.0)?, Version::parse(&path.1)?);
    who.may_change(&id)?;
    Ok(HttpResponse::Ok().json(state.halt(&who, id, version).await?))
}

/// `POST /v1/apps/{app}/rollback`
pub async fn rollback(who: Principal, path: web::Path<String>, payload: web::Payload, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path)?;
    who.may_change(&id)?;
    let req: RollbackRequest = body::json(payload, state.config.max_json_bytes).await?;
    let (view, outcome) = state.rollback(&who, id, req).await?;
    Ok(answer(outcome).json(view))
}

/// `GET /v1/apps/{app}/audit`
pub async fn audit(_who: Principal, path: web::Path<String>, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path)?;
    state.app(&id)?;
    let entries = state.store.audit(&id).await?;
    Ok(HttpResponse::Ok().json(AuditLog { entries }))
}

/// `GET /v1/audit`: the server-wide audit log (token creation and revocation); admins only.
pub async fn server_audit(who: Principal, state: web::Data<State>) -> Res {
    who.must_be_admin()?;
    let entries = state.store.server_audit().await?;
    Ok(HttpResponse::Ok().json(AuditLog { entries }))
}

/// `POST /v1/apps/{app}/explain`: the decision trace for a check-in body (with the device's
/// IP in `ip`, if IP rules matter; never the caller's own address).
pub async fn explain(_who: Principal, path: web::Path<String>, payload: web::Payload, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path)?;
    let request: ExplainRequest = body::json(payload, state.config.max_json_bytes).await?;
    let app = state.app(&id)?;
    let served = request.check.into_checkin(request.ip).served_on(app.catalog.ladder());
    let explanation = app.catalog.explain(&served.checkin)?;
    let served_channel = served.named.is_some().then(|| served.checkin.channel.clone());
    let identity = crate::http::clients::identity::describe(&served.checkin.device_id);
    Ok(HttpResponse::Ok().json(ExplainResponse { served_channel, identity, ..ExplainResponse::from(&explanation) }))
}

/// `POST /v1/tokens`
pub async fn create_token(who: Principal, payload: web::Payload, state: web::Data<State>) -> Res {
    who.must_be_admin()?;
    let req: TokenRequest = body::json(payload, state.config.max_json_bytes).await?;
    Ok(HttpResponse::Created().json(state.create_token(&who, req).await?))
}

/// `GET /v1/tokens`
pub async fn list_tokens(who: Principal, state: web::Data<State>) -> Res {
    who.must_be_admin()?;
    let snapshot = state.snapshot();
    let mut tokens: Vec<_> = snapshot.tokens.iter().map(|(id, t)| token_view(id, t)).collect();
    tokens.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(HttpResponse::Ok().json(TokenList { tokens }))
}

/// `GET /v1/whoami`: the calling token's own view (any role).
pub async fn whoami(who: Principal, state: web::Data<State>) -> Res {
    let snapshot = state.snapshot();
    let token =
        snapshot.tokens.get(&who.token_id).ok_or_else(|| ApiError::Unauthorized("this token was revoked".into()))?;
    Ok(HttpResponse::Ok().json(token_view(&who.token_id, token)))
}

/// `DELETE /v1/tokens/{id}`
pub async fn revoke_token(who: Principal, path: web::Path<String>, state: web::Data<State>) -> Res {
    who.must_be_admin()?;
    state.revoke_token(&who, &path).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `POST /v1/answer-keys`: a new answer key signs from now on (admins only).
pub async fn rotate_answer_key(who: Principal, state: web::Data<State>) -> Res {
    who.must_be_admin()?;
    Ok(HttpResponse::Created().json(state.rotate_answer_key(&who).await?))
}

/// `DELETE /v1/answer-keys/{id}`: an old answer key no longer signs (admins only).
pub async fn retire_answer_key(who: Principal, path: web::Path<String>, state: web::Data<State>) -> Res {
    who.must_be_admin()?;
    let id = halftone_channels::KeyId::parse(&path)?;
    Ok(HttpResponse::Ok().json(state.retire_answer_key(&who, &id).await?))
}

/// `GET /v1/apps/{app}/status[?version=V]`: rollout states, schedules, gates, feedback
/// figures and history per release and channel, and adoption by version.
pub async fn status(
    _who: Principal,
    path: web::Path<String>,
    query: web::Query<StatusQuery>,
    state: web::Data<State>,
) -> Res {
    let id = AppId::parse(&path)?;
    let only = query.version.as_deref().map(Version::parse).transpose()?;
    Ok(HttpResponse::Ok().json(state.status_view(&id, only.as_ref()).await?))
}

/// `GET /v1/apps/{app}/adoption`: distinct devices per channel, version and 4-hour window over
/// the last 8 days (the dashboard's adoption chart). Read-only, from memory.
pub async fn adoption(_who: Principal, path: web::Path<String>, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path)?;
    Ok(HttpResponse::Ok().json(state.adoption_history(&id)?))
}

/// The query of `GET /v1/apps/{app}/status`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusQuery {
    /// Only this release.
    pub version: Option<String>,
}

/// `GET /v1/apps/{app}/codepush-keys`: the app's CodePush deployment keys (any role: a key is
/// not a secret, every copy of the app carries it).
pub async fn list_codepush_keys(_who: Principal, path: web::Path<String>, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path)?;
    Ok(HttpResponse::Ok().json(state.codepush_keys(&id)?))
}

/// `POST /v1/apps/{app}/codepush-keys`: a deployment key for a channel and target (admins and
/// the app's publishers).
pub async fn create_codepush_key(
    who: Principal,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Res {
    let id = AppId::parse(&path)?;
    who.may_change(&id)?;
    let req: CodePushKeyRequest = body::json(payload, state.config.max_json_bytes).await?;
    let (view, outcome) = state.create_codepush_key(&who, id, req).await?;
    Ok(answer(outcome).json(view))
}

/// `DELETE /v1/apps/{app}/codepush-keys/{name}`: revokes a deployment key (admins and the
/// app's publishers).
pub async fn revoke_codepush_key(who: Principal, path: web::Path<(String, String)>, state: web::Data<State>) -> Res {
    let id = AppId::parse(&path.0)?;
    who.may_change(&id)?;
    state.revoke_codepush_key(&who, id, &path.1).await?;
    Ok(HttpResponse::NoContent().finish())
}
