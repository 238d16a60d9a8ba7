//! Admin authentication and roles: a [`Principal`] is a request whose bearer token was found
//! and matched; only this module can build one. Tokens look like `htk_<id>_<secret>`; the
//! server stores the SHA-256 of the secret and compares it in constant time.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, http::header, web};
use halftone_channels::wire::Role;
use halftone_channels::{AppId, TokenName};
use rand::RngExt as _;
use sha2::Digest as _;
use subtle::ConstantTimeEq as _;

use crate::problem::ApiError;
use crate::state::State;

/// An API token as the server holds it: the secret only as a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// The label people gave it; the actor in the audit log.
    pub name: TokenName,
    /// What it may do.
    pub role: Role,
    /// The apps a publisher may change.
    pub apps: Vec<AppId>,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
}

/// A caller who presented a valid token.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The token's id.
    pub token_id: String,
    /// The token's label (recorded as the actor in the audit log).
    pub name: String,
    role: Role,
    apps: Vec<AppId>,
}

impl Principal {
    /// Allows changes to `app`: admins, and publishers listed for it.
    pub fn may_change(&self, app: &AppId) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Publisher if self.apps.contains(app) => Ok(()),
            Role::Publisher => Err(ApiError::Forbidden(format!("token {} may not change app {app}", self.name))),
            Role::Viewer => Err(ApiError::Forbidden(format!("token {} is read-only (viewer)", self.name))),
        }
    }

    /// Allows uploads: admins and publishers.
    pub fn may_upload(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin | Role::Publisher => Ok(()),
            Role::Viewer => Err(ApiError::Forbidden(format!("token {} is read-only (viewer)", self.name))),
        }
    }

    /// Allows token management and app creation: admins only.
    pub fn must_be_admin(&self) -> Result<(), ApiError> {
        match self.role {
            Role::Admin => Ok(()),
            _ => Err(ApiError::Forbidden(format!("token {} is not an admin token", self.name))),
        }
    }
}

/// A new token: its id, the full bearer string (shown once) and the digest to store.
pub struct NewToken {
    /// The id.
    pub id: String,
    /// `htk_<id>_<secret>`.
    pub bearer: String,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
}

/// Makes a random token.
pub fn new_token() -> NewToken {
    let mut rng = rand::rng();
    let id = hex::encode(rng.random::<[u8; 8]>());
    let secret = hex::encode(rng.random::<[u8; 32]>());
    NewToken { bearer: format!("htk_{id}_{secret}"), secret_sha256: hex::encode(sha2::Sha256::digest(&secret)), id }
}

fn authenticate(req: &HttpRequest) -> Result<Principal, ApiError> {
    let state = req.app_data::<web::Data<State>>().expect("state is registered");
    let value = req
        .headers()
        .get(header::AUTHORIZATION)
        .ok_or_else(|| ApiError::Unauthorized("this route needs an Authorization: Bearer <token> header".into()))?;
    let bearer = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token)
        .ok_or_else(|| ApiError::Unauthorized("the Authorization header must be Bearer <token>".into()))?;
    let invalid = || ApiError::Unauthorized("the token is not valid (unknown, revoked or mistyped)".into());
    let (id, secret) = bearer.trim().strip_prefix("htk_").and_then(|t| t.split_once('_')).ok_or_else(invalid)?;
    let snapshot = state.snapshot();
    let record = snapshot.tokens.get(id).ok_or_else(invalid)?;
    let presented = hex::encode(sha2::Sha256::digest(secret.as_bytes()));
    if !bool::from(presented.as_bytes().ct_eq(record.secret_sha256.as_bytes())) {
        return Err(invalid());
    }
    Ok(Principal {
        token_id: id.to_owned(),
        name: record.name.to_string(),
        role: record.role,
        apps: record.apps.clone(),
    })
}

impl FromRequest for Principal {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a.bearer, b.bearer);
        assert!(a.bearer.starts_with(&format!("htk_{}_", a.id)));
        let secret = a.bearer.rsplit('_').next().unwrap();
        assert_eq!(a.secret_sha256, hex::encode(sha2::Sha256::digest(secret.as_bytes())));
        assert!(!a.secret_sha256.contains(secret));
    }

    #[test]
    fn roles() {
        let app = AppId::parse("notes").unwrap();
        let other = AppId::parse("other").unwrap();
        let p = |role, apps: Vec<AppId>| Principal { token_id: "i".into(), name: "n".into(), role, apps };
        assert!(p(Role::Admin, vec![]).may_change(&other).is_ok());
        assert!(p(Role::Publisher, vec![app.clone()]).may_change(&app).is_ok());
        assert!(p(Role::Publisher, vec![app.clone()]).may_change(&other).is_err());
        assert!(p(Role::Publisher, vec![]).must_be_admin().is_err());
        assert!(p(Role::Viewer, vec![app.clone()]).may_change(&app).is_err());
        assert!(p(Role::Viewer, vec![]).may_upload().is_err());
    }
}
