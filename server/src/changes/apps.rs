//! Creating and updating an app: its display name, trusted release keys and custom channels.

use halftone_channels::wire::{AppSpec, AppView};
use halftone_channels::{AppId, TrustedKeys};

use super::{Outcome, audit, json};
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::snapshot::{AppParts, AppSettings, ladder_of};
use crate::state::State;
use crate::store::Change;
use crate::views::app_view;

impl State {
    /// Creates or updates an app. Creating needs an admin: checked here because only the
    /// locked snapshot tells creation from update.
    pub async fn upsert_app(&self, who: &Principal, id: AppId, spec: AppSpec) -> Result<(AppView, Outcome), ApiError> {
        // Values are valid once parsed (the body's names, keys and ids); what is checked here
        // is the whole: the key set and the channel ladder.
        let mut settings = AppSettings::try_from(spec)?;
        TrustedKeys::new(settings.keys.iter().cloned())?;
        ladder_of(&settings.channels)?;

        let mut w = self.writer().await;
        let previous = w.find_app(&id).await?;
        let (parts, outcome) = match &previous {
            None => {
                who.must_be_admin()?;
                (
                    AppParts {
                        id: id.clone(),
                        settings: settings.clone(),
                        releases: vec![],
                        rollouts: vec![],
                        revision: 0,
                    },
                    Outcome::Created,
                )
            }
            Some(p) => {
                // Key documents are changed only by rotation; an update keeps them.
                settings.key_documents.clone_from(&p.settings.key_documents);
                // So are CodePush deployment keys, by their own routes.
                settings.codepush_keys.clone_from(&p.settings.codepush_keys);
                if p.settings == settings {
                    return Ok((app_view(p), Outcome::Unchanged));
                }
                if p.settings.keys != settings.keys {
                    // Whoever controls the keys controls what devices install: admins only.
                    who.must_be_admin()?;
                    if !p.settings.key_documents.is_empty() {
                        // Version 1 is what apps compile in; the documents after it chain from
                        // it, so once rotated it cannot change beneath them.
                        return Err(ApiError::Unprocessable(format!(
                            "app {id} has rotated its keys (version {}): change them with POST /v1/apps/{id}/keys",
                            p.settings.key_documents.len() + 1
                        )));
                    }
                }
                (AppParts { settings: settings.clone(), ..p.to_parts() }, Outcome::Updated)
            }
        };
        let action = if previous.is_some() { "app.update" } else { "app.create" };
        let mut entry = audit(self.clock.now_ms(), &who.name, action, Some(&id), id.to_string());
        entry.before = previous.as_ref().and_then(|p| json(&AppSpec::from(&p.settings)));
        entry.after = json(&AppSpec::from(&settings));
        let mut change = Change::default();
        change.put_app(&id, &settings).audit(entry);
        let built = w.commit_app(parts, change).await?;
        Ok((app_view(&built), outcome))
    }
}
