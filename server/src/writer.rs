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
use crate::store::{Change, Scope, Stale};
use anyhow::Context as _;

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
    /// The snapshot as published; nobody else in this process can replace it while this
    /// writer lives.
    pub(crate) fn snapshot(&self) -> Arc<Snapshot> {
        self.state.published.snapshot.load_full()
    }

    /// The server state this writer changes.
    pub(crate) fn state(&self) -> &'a State {
        self.state
    }

    /// One app, brought up to date with the store first, or a 404.
    pub(crate) async fn app(&mut self, id: &AppId) -> Result<Arc<AppSnapshot>, ApiError> {
        self.find_app(id).await?.ok_or_else(|| crate::views::no_app(id))
    }

    /// One app, brought up to date with the store first, if it exists.
    pub(crate) async fn find_app(&mut self, id: &AppId) -> Result<Option<Arc<AppSnapshot>>, ApiError> {
        self.fresh(&Scope::App(id.clone())).await?;
        Ok(self.snapshot().apps.get(id).cloned())
    }

    /// Brings `scope` up to date with the store when another replica may have changed it, so
    /// that a change is checked against what is stored, not against an older picture.
    pub(crate) async fn fresh(&mut self, scope: &Scope) -> Result<(), ApiError> {
        let Some(stored) = self.state.store.revision(scope).await? else { return Ok(()) };
        if stored != self.revision_of(scope) {
            self.reload(scope).await?;
        }
        Ok(())
    }

    /// The revision of `scope` in the published snapshot (0 for an app it does not have).
    pub(crate) fn revision_of(&self, scope: &Scope) -> u64 {
        let snapshot = self.snapshot();
        match scope {
            Scope::App(id) => snapshot.apps.get(id).map_or(0, |a| a.revision),
            Scope::Tokens => snapshot.tokens_revision,
        }
    }

    /// Reads `scope` from the store and publishes it.
    pub(crate) async fn reload(&mut self, scope: &Scope) -> anyhow::Result<()> {
        let mut next = (*self.snapshot()).clone();
        match scope {
            Scope::App(id) => {
                let Some(loaded) = self.state.store.load_app(id).await? else { return Ok(()) };
                let parts = AppParts {
                    id: id.clone(),
                    settings: loaded.settings,
                    releases: loaded.releases.into_iter().map(Arc::new).collect(),
                    rollouts: loaded.rollouts.into_iter().map(|(r, m)| (Arc::new(r), m)).collect(),
                    revision: loaded.revision,
                };
                let built = AppSnapshot::build(parts).with_context(|| format!("indexing app {id} as stored"))?;
                next.apps.insert(id.clone(), Arc::new(built));
            }
            Scope::Tokens => {
                let (tokens, revision) = self.state.store.load_tokens().await?;
                next.tokens = tokens.into_iter().map(|(id, t)| (id, Arc::new(t))).collect();
                next.tokens_revision = revision;
            }
        }
        tracing::debug!(scope = scope.key(), "reloaded from the store");
        self.publish(next);
        Ok(())
    }

    /// Reloads every scope whose stored revision differs from the snapshot's (the safety net
    /// beside notifications, and the check that the store is reachable).
    pub(crate) async fn sync(&mut self) -> anyhow::Result<()> {
        let stored = self.state.store.revisions().await?;
        for (scope, revision) in stored {
            if revision != self.revision_of(&scope) {
                self.reload(&scope).await?;
            }
        }
        Ok(())
    }

    /// Indexes `parts` (an invalid catalog is refused before anything is written), commits
    /// `change` guarded by the revision the parts were read at, and publishes the app's new
    /// snapshot. If another replica changed the app meanwhile, nothing is written, the app is
    /// reloaded, and the answer is a 409.
    pub(crate) async fn commit_app(
        &mut self,
        parts: AppParts,
        mut change: Change,
    ) -> Result<Arc<AppSnapshot>, ApiError> {
        let id = parts.id.clone();
        let scope = Scope::App(id.clone());
        let expected = parts.revision;
        let built = Arc::new(AppSnapshot::build(AppParts { revision: expected + 1, ..parts })?);
        change.guard(scope.clone(), expected);
        self.commit_guarded(&scope, change).await?;
        let mut next = (*self.snapshot()).clone();
        next.apps.insert(id, built.clone());
        self.publish(next);
        Ok(built)
    }

    /// Commits `change` guarded by the token table's revision and publishes the table as `edit`
    /// leaves it.
    pub(crate) async fn commit_tokens(
        &mut self,
        mut change: Change,
        edit: impl FnOnce(&mut HashMap<String, Arc<Token>>),
    ) -> Result<(), ApiError> {
        let expected = self.snapshot().tokens_revision;
        change.guard(Scope::Tokens, expected);
        self.commit_guarded(&Scope::Tokens, change).await?;
        let mut next = (*self.snapshot()).clone();
        edit(&mut next.tokens);
        next.tokens_revision = expected + 1;
        self.publish(next);
        Ok(())
    }

    async fn commit_guarded(&mut self, scope: &Scope, change: Change) -> Result<(), ApiError> {
        match self.state.store.commit(change).await {
            Ok(()) => Ok(()),
            Err(e) if e.is::<Stale>() => {
                self.reload(scope).await?;
                Err(ApiError::Conflict(format!(
                    "{} changed on another replica while this change was being made; nothing was written: read \
                     it again and retry",
                    match scope {
                        Scope::App(id) => format!("app {id}"),
                        Scope::Tokens => "the token table".to_owned(),
                    }
                )))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Commits a change that the snapshot does not show (bookkeeping such as the bootstrap mark).
    pub(crate) async fn commit(&mut self, change: Change) -> anyhow::Result<()> {
        self.state.store.commit(change).await
    }

    fn publish(&mut self, next: Snapshot) {
        self.state.published.snapshot.store(Arc::new(next));
    }
}
