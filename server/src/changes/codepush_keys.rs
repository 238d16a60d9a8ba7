//! CodePush deployment keys: create and revoke (each with its audit entry), and the list. A
//! key lives in the app's settings, so it is in the app's snapshot (the CodePush check-in finds
//! it without the store) and in both store backends with the app's record.

use halftone_channels::wire::{CodePushKeyList, CodePushKeyRequest, CodePushKeyView};
use halftone_channels::{AppId, DeploymentKey, Target};
use rand::RngExt as _;

use super::{Outcome, audit, json};
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::snapshot::{AppParts, CodePushKey};
use crate::state::State;
use crate::store::Change;
use crate::views::no_app;

/// A new deployment key: 24 random bytes in URL-safe base64 (32 characters).
fn new_key() -> DeploymentKey {
    use base64::Engine as _;
    let bytes = rand::rng().random::<[u8; 24]>();
    DeploymentKey::parse(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
        .expect("URL-safe base64 of 24 bytes is a deployment key")
}

/// The wire view of a deployment key.
pub fn codepush_key_view(k: &CodePushKey) -> CodePushKeyView {
    CodePushKeyView {
        key: k.key.clone(),
        name: k.name.clone(),
        channel: k.channel.clone(),
        os: k.target.os.clone(),
        arch: k.target.arch.clone(),
    }
}

impl State {
    /// Makes a deployment key of `id` for a channel the app has (422 otherwise). A name or key
    /// the app already has is a 409, unless the request is the same key again (idempotent).
    pub async fn create_codepush_key(
        &self,
        who: &Principal,
        id: AppId,
        req: CodePushKeyRequest,
    ) -> Result<(CodePushKeyView, Outcome), ApiError> {
        let mut w = self.writer().await;
        let app = w.find_app(&id).await?.ok_or_else(|| no_app(&id))?;
        if app.catalog.ladder().name(req.channel.as_str()).is_none() {
            return Err(ApiError::Unprocessable(format!("app {id} has no channel {}", req.channel)));
        }
        let target = Target { os: req.os, arch: req.arch };
        let existing = app.settings.codepush_keys.iter().find(|k| k.name == req.name);
        if let Some(k) = existing
            && req.key.as_ref().is_none_or(|key| *key == k.key)
            && k.channel == req.channel
            && k.target == target
        {
            return Ok((codepush_key_view(k), Outcome::Unchanged));
        }
        if existing.is_some() {
            return Err(ApiError::Conflict(format!(
                "app {id} already has a deployment key named {}: revoke it first",
                req.name
            )));
        }
        let key = req.key.unwrap_or_else(new_key);
        if app.codepush_key(key.as_str()).is_some() {
            return Err(ApiError::Conflict(format!("app {id} already has this deployment key")));
        }
        let record = CodePushKey { key, name: req.name, channel: req.channel, target };
        let view = codepush_key_view(&record);
        let mut settings = app.settings.clone();
        settings.codepush_keys.push(record);
        let mut entry = audit(self.clock.now_ms(), &who.name, "codepush_key.create", Some(&id), view.name.to_string());
        entry.after = json(&view);
        let mut change = Change::default();
        change.put_app(&id, &settings).audit(entry);
        w.commit_app(AppParts { settings, ..app.to_parts() }, change).await?;
        tracing::info!(actor = %who.name, app = %id, key = %view.name, "codepush deployment key created");
        Ok((view, Outcome::Created))
    }

    /// Revokes the deployment key named `name` of `id`: its devices' checks are refused (404)
    /// from now on.
    pub async fn revoke_codepush_key(&self, who: &Principal, id: AppId, name: &str) -> Result<(), ApiError> {
        let mut w = self.writer().await;
        let app = w.find_app(&id).await?.ok_or_else(|| no_app(&id))?;
        let Some(k) = app.settings.codepush_keys.iter().find(|k| k.name.as_str() == name) else {
            return Err(ApiError::NotFound(format!(
                "app {id} has no deployment key named {}",
                name.chars().take(80).collect::<String>()
            )));
        };
        let mut entry = audit(self.clock.now_ms(), &who.name, "codepush_key.revoke", Some(&id), k.name.to_string());
        entry.before = json(&codepush_key_view(k));
        let mut settings = app.settings.clone();
        settings.codepush_keys.retain(|x| x.name.as_str() != name);
        let mut change = Change::default();
        change.put_app(&id, &settings).audit(entry);
        w.commit_app(AppParts { settings, ..app.to_parts() }, change).await?;
        tracing::info!(actor = %who.name, app = %id, key = %name, "codepush deployment key revoked");
        Ok(())
    }

    /// The deployment keys of `id`, by name.
    pub fn codepush_keys(&self, id: &AppId) -> Result<CodePushKeyList, ApiError> {
        let app = self.app(id)?;
        let mut keys: Vec<_> = app.settings.codepush_keys.iter().map(codepush_key_view).collect();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(CodePushKeyList { keys })
    }
}
