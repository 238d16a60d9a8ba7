//! An app's release key documents: `GET /v1/apps/{app}/keys[?after=N]` (devices, no token)
//! and `POST /v1/apps/{app}/keys` (the next signed document; admins and the app's publishers,
//! since the document carries its own authority: the signatures of the current keys).

use actix_web::{HttpResponse, web};
use halftone_channels::wire::KeyDocumentSpec;
use halftone_channels::{AppId, SignedKeyDocument};

use crate::auth::Principal;
use crate::changes::Outcome;
use crate::http::body;
use crate::problem::ApiError;
use crate::state::State;

/// The query of `GET /v1/apps/{app}/keys`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysQuery {
    /// Only versions above this one.
    pub after: Option<String>,
}

/// `GET /v1/apps/{app}/keys[?after=N]`
pub async fn list(
    path: web::Path<String>,
    query: web::Query<KeysQuery>,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = AppId::parse(&path)?;
    let after = match query.after.as_deref() {
        None => 0,
        Some(n) => n
            .parse::<u64>()
            .map_err(|_| ApiError::BadRequest(format!("after must be a key document version, not {n:?}")))?,
    };
    Ok(HttpResponse::Ok().json(state.key_documents(&id, after)?))
}

/// `POST /v1/apps/{app}/keys`: 201 with the document when it chains, 200 when it is already
/// the newest, 422 when it does not chain.
pub async fn rotate(
    who: Principal,
    path: web::Path<String>,
    payload: web::Payload,
    state: web::Data<State>,
) -> Result<HttpResponse, ApiError> {
    let id = AppId::parse(&path)?;
    who.may_change(&id)?;
    let spec: KeyDocumentSpec = body::json(payload, state.config.max_json_bytes).await?;
    let next = SignedKeyDocument::try_from(spec)?;
    let (view, outcome) = state.rotate_keys(&who, id, next).await?;
    let mut answer = match outcome {
        Outcome::Created => HttpResponse::Created(),
        Outcome::Unchanged | Outcome::Updated => HttpResponse::Ok(),
    };
    Ok(answer.json(view))
}
