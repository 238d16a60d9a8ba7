//! The server's answer keys: rotate (a new key signs from now on) and retire (an old key
//! no longer signs). Each change enters the server-wide audit log with the public keys after it
//! (never a secret).

use halftone_channels::KeyId;
use halftone_channels::wire::AnswerKeys;

use super::{audit, json};
use crate::auth::Principal;
use crate::problem::ApiError;
use crate::signer::MAX_ANSWER_KEYS;
use crate::state::State;
use crate::store::{AnswerKeysRecord, Change};

impl State {
    /// Adds a new answer key, which signs from now on; the older ones stay for devices that pin
    /// them (at most `MAX_ANSWER_KEYS` in all: retire one first).
    pub async fn rotate_answer_key(&self, who: &Principal) -> Result<AnswerKeys, ApiError> {
        self.change_answer_keys(who, "answer-key.rotate", |record, now_ms| {
            if record.keys.len() >= MAX_ANSWER_KEYS {
                return Err(ApiError::Conflict(format!(
                    "the server already holds {MAX_ANSWER_KEYS} answer keys: retire one first"
                )));
            }
            Ok(AnswerKeysRecord::with_new_key(record, now_ms))
        })
        .await
    }

    /// Removes answer key `id`; devices that pin only it can no longer verify answers. The
    /// current (newest) key cannot be retired.
    pub async fn retire_answer_key(&self, who: &Principal, id: &KeyId) -> Result<AnswerKeys, ApiError> {
        let view = self.signer.view();
        let Some(pos) = view.keys.iter().position(|k| &k.key_id == id) else {
            return Err(ApiError::NotFound(format!("there is no answer key {id}")));
        };
        if view.keys[pos].current {
            return Err(ApiError::Conflict(format!("{id} is the current answer key: rotate first, then retire it")));
        }
        self.change_answer_keys(who, "answer-key.retire", move |record, _| {
            let mut next = record.clone();
            next.keys.remove(pos);
            Ok(next)
        })
        .await
    }

    async fn change_answer_keys(
        &self,
        who: &Principal,
        action: &str,
        change: impl FnOnce(&AnswerKeysRecord, u64) -> Result<AnswerKeysRecord, ApiError>,
    ) -> Result<AnswerKeys, ApiError> {
        let mut w = self.writer().await;
        let now_ms = self.clock.now_ms();
        let before = self.store.answer_keys().await?.ok_or_else(|| anyhow::anyhow!("no answer keys are stored"))?;
        let after = change(&before, now_ms)?;
        if !self.store.swap_answer_keys(Some(&before), &after).await? {
            return Err(ApiError::Conflict("the answer keys changed meanwhile (on another replica?): retry".into()));
        }
        self.signer.reload(&self.store).await?;
        let view = self.signer.view();
        let mut entry = audit(now_ms, &who.name, action, None, "answer-keys".to_owned());
        entry.after = json(&view);
        let mut change = Change::default();
        change.audit(entry);
        w.commit(change).await?;
        tracing::info!(actor = %who.name, action, "answer keys changed");
        Ok(view)
    }
}
