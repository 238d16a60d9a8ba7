//! API tokens: create, revoke, and the first admin token of an empty data dir. Each enters
//! the server-wide audit log (never its secret).

use std::sync::Arc;

use halftone_channels::wire::{Role, TokenCreated, TokenRequest};
use halftone_channels::{AppId, TokenName};

use super::{audit, json};
use crate::auth::Token;
use crate::auth::{Principal, new_token};
use crate::problem::ApiError;
use crate::scheduler::{HEALTH_GATE, SCHEDULER};
use crate::state::State;
use crate::store::{Change, Scope};
use crate::views::token_view;

/// The actor named in the audit log for the first admin token, which the server makes itself.
pub const BOOTSTRAP: &str = "bootstrap";
/// The actor named in the audit log for an admin token made by `halftone token recover`.
pub const RECOVERY: &str = "recovery";

impl State {
    /// Creates a token (admins only); the secret is in the answer and nowhere else.
    pub async fn create_token(&self, who: &Principal, req: TokenRequest) -> Result<TokenCreated, ApiError> {
        if [SCHEDULER, HEALTH_GATE, BOOTSTRAP, RECOVERY].contains(&req.name.as_str()) {
            return Err(ApiError::BadRequest(format!("{} is reserved for the server's own changes", req.name)));
        }
        let created = self.add_token(&who.name, req.name, req.role, req.apps).await?;
        tracing::info!(actor = %who.name, token = %created.view.id, role = ?created.view.role, "token created");
        Ok(created)
    }

    /// Makes a token and commits it with its audit entry (actor `actor`); the secret is in the
    /// answer and nowhere else.
    async fn add_token(
        &self,
        actor: &str,
        name: TokenName,
        role: Role,
        apps: Vec<AppId>,
    ) -> Result<TokenCreated, ApiError> {
        let t = new_token();
        let record = Token { name, role, apps, secret_sha256: t.secret_sha256 };
        let mut w = self.writer().await;
        w.fresh(&Scope::Tokens).await?;
        let mut entry = audit(self.clock.now_ms(), actor, "token.create", None, t.id.clone());
        entry.after = json(&token_view(&t.id, &record));
        let mut change = Change::default();
        change.put_token(&t.id, &record).audit(entry);
        w.commit_tokens(change, |tokens| {
            tokens.insert(t.id.clone(), Arc::new(record.clone()));
        })
        .await?;
        Ok(TokenCreated { view: token_view(&t.id, &record), token: t.bearer })
    }

    /// Revokes a token (admins only).
    pub async fn revoke_token(&self, who: &Principal, id: &str) -> Result<(), ApiError> {
        let mut w = self.writer().await;
        w.fresh(&Scope::Tokens).await?;
        let snapshot = w.snapshot();
        let Some(token) = snapshot.tokens.get(id) else {
            return Err(ApiError::NotFound(format!("there is no token {id}")));
        };
        let admins = snapshot.tokens.values().filter(|t| t.role == Role::Admin).count();
        if token.role == Role::Admin && admins == 1 {
            return Err(ApiError::Conflict("this is the last admin token; create another admin token first".into()));
        }
        let mut entry = audit(self.clock.now_ms(), &who.name, "token.revoke", None, id.to_owned());
        entry.before = json(&token_view(id, token));
        let mut change = Change::default();
        change.remove_token(id).audit(entry);
        w.commit_tokens(change, |tokens| {
            tokens.remove(id);
        })
        .await?;
        tracing::info!(actor = %who.name, token = %id, "token revoked");
        Ok(())
    }

    /// Makes a new admin token for someone who has access to the store but no token
    /// (`halftone token recover`); returns it with its bearer string. The audit log names the
    /// actor `recovery`.
    pub async fn recover_admin_token(&self) -> Result<TokenCreated, ApiError> {
        self.add_token(RECOVERY, "recovered-admin".parse()?, Role::Admin, vec![]).await
    }

    /// Creates the first admin token of an empty data dir; returns its bearer string.
    pub async fn bootstrap_token(&self) -> anyhow::Result<Option<String>> {
        let mut w = self.writer().await;
        if self.store.is_bootstrapped().await? {
            return Ok(None);
        }
        if !w.snapshot().tokens.is_empty() {
            // A data dir from before the flag existed: it was bootstrapped; record it.
            let mut change = Change::default();
            change.mark_bootstrapped();
            w.commit(change).await?;
            return Ok(None);
        }
        let t = new_token();
        let record =
            Token { name: "bootstrap-admin".parse()?, role: Role::Admin, apps: vec![], secret_sha256: t.secret_sha256 };
        let mut entry = audit(self.clock.now_ms(), BOOTSTRAP, "token.create", None, t.id.clone());
        entry.after = json(&token_view(&t.id, &record));
        let mut change = Change::default();
        change.put_token(&t.id, &record).mark_bootstrapped().audit(entry);
        w.commit_tokens(change, |tokens| {
            tokens.insert(t.id.clone(), Arc::new(record));
        })
        .await?;
        Ok(Some(t.bearer))
    }
}
