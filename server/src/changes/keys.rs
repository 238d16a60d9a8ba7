//! Rotating an app's release keys: the next signed key document, verified against the newest
//! one (docs/api.md §8, "Key documents"), and the documents devices fetch.

use halftone_channels::wire::{KeyDocumentSpec, KeyDocuments};
use halftone_channels::{AppId, KeyChain, SignedKeyDocument};

use super::{Outcome, audit, json};
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::snapshot::AppParts;
use crate::state::State;
use crate::store::Change;
use crate::views::no_app;

impl State {
    /// Appends the next key document of `id` when it chains onto the newest (422 otherwise).
    /// Posting the newest document again is an idempotent success.
    pub async fn rotate_keys(
        &self,
        who: &Principal,
        id: AppId,
        next: SignedKeyDocument,
    ) -> Result<(KeyDocumentSpec, Outcome), ApiError> {
        let mut w = self.writer().await;
        let app = w.find_app(&id).await?.ok_or_else(|| no_app(&id))?;
        if app.settings.key_documents.last() == Some(&next) {
            return Ok((KeyDocumentSpec::from(&next), Outcome::Unchanged));
        }
        let Some(current) = &app.key_document else {
            return Err(ApiError::Unprocessable(format!(
                "app {id} trusts no release key yet: set its first keys with PUT /v1/apps/{id}"
            )));
        };
        KeyChain::trust(current.clone())
            .advance(&next)
            .map_err(|e| ApiError::Unprocessable(format!("the key document does not chain: {e}")))?;

        let mut settings = app.settings.clone();
        settings.key_documents.push(next.clone());
        let view = KeyDocumentSpec::from(&next);
        let subject = format!("keys version {}", next.document.version());
        let mut entry = audit(self.clock.now_ms(), &who.name, "keys.rotate", Some(&id), subject);
        entry.after = json(&view);
        let mut change = Change::default();
        change.put_app(&id, &settings).audit(entry);
        w.commit_app(AppParts { settings, ..app.to_parts() }, change).await?;
        Ok((view, Outcome::Created))
    }

    /// The signed key documents of `id` above version `after` (0: all), oldest first.
    pub fn key_documents(&self, id: &AppId, after: u64) -> Result<KeyDocuments, ApiError> {
        let app = self.app(id)?;
        let documents = app
            .settings
            .key_documents
            .iter()
            .filter(|d| d.document.version() > after)
            .map(KeyDocumentSpec::from)
            .collect();
        Ok(KeyDocuments { documents })
    }
}
