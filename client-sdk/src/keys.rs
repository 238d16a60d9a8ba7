//! The release keys the SDK trusts: [`KeyTrust`], the newest key document it verified.
//!
//! It starts from the document compiled into the app (its `trusted_key` calls: version 1), or
//! the newer one the state directory holds from an earlier run. Each check first fetches the
//! documents above that version and walks them (`KeyChain::walk`): each must be the next
//! version, for this app, signed by the threshold of the previous keys and of its own. Only a
//! walk that succeeds replaces the trusted document, on disk first and then in memory; a walk
//! that fails changes nothing and is an [`Error::KeyChain`]. The version never goes down, so
//! a server that rolls its documents back is refused.

use std::sync::{PoisonError, RwLock};

use halftone_channels::{KeyChain, KeyDocument, SignedKeyDocument};

use crate::api::Api;
use crate::state::StateDir;
use crate::{Error, StateError};

/// The newest key document this device verified.
#[derive(Debug)]
pub(crate) struct KeyTrust {
    chain: RwLock<KeyChain>,
    /// Serialises walks, so two checks never persist documents out of order.
    walking: tokio::sync::Mutex<()>,
}

impl KeyTrust {
    /// Trusts `compiled`, or the newer document of the same app stored in `state`.
    pub(crate) fn load(compiled: KeyDocument, state: &StateDir) -> Result<Self, StateError> {
        let stored = state.key_document()?.map(|s| s.document);
        let start = match stored {
            Some(d) if d.app() == compiled.app() && d.version() > compiled.version() => d,
            _ => compiled,
        };
        Ok(KeyTrust { chain: RwLock::new(KeyChain::trust(start)), walking: tokio::sync::Mutex::new(()) })
    }

    /// The newest trusted document.
    pub(crate) fn current(&self) -> KeyDocument {
        self.chain.read().unwrap_or_else(PoisonError::into_inner).current().clone()
    }

    /// Fetches the documents above the trusted version and walks them; the trusted version
    /// afterwards. On any failure the trust is unchanged.
    pub(crate) async fn refresh(&self, api: &Api, state: &StateDir) -> Result<u64, Error> {
        let _walk = self.walking.lock().await;
        let start = KeyChain::trust(self.current());
        let fetched = api.key_documents(start.current().version()).await?;
        if fetched.documents.is_empty() {
            return Ok(start.current().version());
        }
        let documents = fetched
            .documents
            .into_iter()
            .map(SignedKeyDocument::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| Error::Protocol { detail: format!("keys: {e}") })?;
        let walked = start.walk(&documents)?;
        let newest = documents.last().expect("not empty");
        state.set_key_document(newest)?;
        let version = walked.current().version();
        *self.chain.write().unwrap_or_else(PoisonError::into_inner) = walked;
        Ok(version)
    }
}
