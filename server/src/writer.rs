//! [`Writer`]: the one way to change the catalog the server serves.
//!
//! Every admin change and every scheduler tick validates against the current snapshot, commits
//! to the store and then publishes a new snapshot. Two changes must never interleave between
//! validation and publication, or the second would be checked against a picture the first has
//! already replaced. A [`Writer`] holds the writer lock for as long as it lives, and it alone
//! can commit a catalog change and publish the snapshot that follows: code without one cannot
//! publish, so "callers hold the writer lock" is a fact of the types, not a comment.
//!
//! The check-in path never takes the lock: it only loads the published snapshot.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use halftone_channels::AppId;
use tokio::sync::{Mutex, MutexGuard};

use crate::auth::Token;
use crate::problem::ApiError;
use crate::snapshot::{AppParts, AppSnapshot, Snapshot};
use crate::state::State;
use crate::store::Change;

/// The snapshot every reader loads, and the lock that serialises its writers. Only this module
/// can replace the snapshot, and only through a [`Writer`].
pub(crate) struct Published {
    snapshot: ArcSwap<Snapshot>,
    lock: Mutex<()>,
}

impl Published {
    /// The first snapshot, rebuilt from the store at start-up.
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        Published { snapshot: ArcSwap::from_pointee(snapshot), lock: Mutex::new(()) }
    }

    /// The current snapshot (lock-free).
    pub(crate) fn load(&self) -> arc_swap::Guard<Arc<Snapshot>> {
        self.snapshot.load()
    }
}

/// The right to change the catalog: the writer lock, held until this is dropped.
pub(crate) struct Writer<'a> {
    state: &'a State,
    _guard: MutexGuard<'a, ()>,
}

impl State {
    /// Waits for the writer lock. Hold the [`Writer`] from the first read that a change is
    /// validated against until it is published.
    pub(crate) async fn writer(&self) -> Writer<'_> {
        let guard = self.published.lock.lock().await;
        Writer { state: self, _guard: guard }
    }
}

impl<'a> Writer<'a> {
    /// The snapshot as published; nobody else can replace it while this writer lives.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.state.published.snapshot.load_full()
    }

    /// One app of the current snapshot, or a 404.
    pub(crate) fn app(&self, id: &AppId) -> Result<Arc<AppSnapshot>, ApiError> {
        self.snapshot().apps.get(id).cloned().ok_or_else(|| crate::views::no_app(id))
    }

    /// Indexes `parts` (an invalid catalog is refused before anything is written), commits
    /// `change`, and publishes the app's new snapshot.
    pub(crate) async fn commit_app(&mut self, parts: AppParts, change: Change) -> Result<Arc<AppSnapshot>, ApiError> {
        let id = parts.id.clone();
        let built = Arc::new(AppSnapshot::build(parts)?);
        self.state.store.commit(change).await?;
        let mut next = (*self.snapshot()).clone();
        next.apps.insert(id, built.clone());
        self.publish(next);
        Ok(built)
    }

    /// Commits `change` and publishes the token table as `edit` leaves it.
    pub(crate) async fn commit_tokens(
        &mut self,
        change: Change,
        edit: impl FnOnce(&mut HashMap<String, Arc<Token>>),
    ) -> Result<(), ApiError> {
        self.state.store.commit(change).await?;
        let mut next = (*self.snapshot()).clone();
        edit(&mut next.tokens);
        self.publish(next);
        Ok(())
    }

    /// Commits a change that the snapshot does not show (bookkeeping such as the bootstrap mark).
    pub(crate) async fn commit(&mut self, change: Change) -> anyhow::Result<()> {
        self.state.store.commit(change).await
    }

    fn publish(&mut self, next: Snapshot) {
        self.state.published.snapshot.store(Arc::new(next));
    }
}
