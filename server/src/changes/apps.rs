//! Creating and updating an app: its display name, trusted release keys and custom channels.

use halftone_channels::wire::{AppSpec, AppView};
use halftone_channels::{AppId, TrustedKeys};

use super::{Outcome, audit, json};
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::snapshot::{AppParts, ladder_of};
use crate::state::State;
use crate::store::{AppRecord, Change};
use crate::views::app_view;

impl State {
    /// Creates or updates an app. Creating needs an admin: checked here because only the
    /// locked snapshot tells creation from update.
    pub async fn upsert_app(&self, who: &Principal, id: AppId, spec: AppSpec) -> Result<(AppView, Outcome), ApiError> {
        // Values are valid once parsed (the body's names, keys and ids); what is checked here
        // is the whole: the key set and the channel ladder.
        TrustedKeys::new(spec.keys.iter().map(|k| (k.id.clone(), k.public_key)))?;
        ladder_of(&spec.channels)?;
        let record = AppRecord { display_name: spec.display_name, keys: spec.keys, channels: spec.channels };

        let mut w = self.writer().await;
        let previous = w.snapshot().apps.get(&id).cloned();
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
        let action = if previous.is_some() { "app.update" } else { "app.create" };
        let mut entry = audit(self.clock.now_ms(), &who.name, action, Some(&id), id.to_string());
        entry.before = previous.as_ref().and_then(|p| json(&p.record));
        entry.after = json(&record);
        let mut change = Change::default();
        change.put_app(&id, &record).audit(entry);
        let built = w.commit_app(parts, change).await?;
        Ok((app_view(&built), outcome))
    }
}
