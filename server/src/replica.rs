//! What a replica does to stay one of many: follow the revisions other replicas commit, and
//! hold the scheduler's lease. Only for a shared store (PostgreSQL); with the embedded store
//! this process is the only writer and none of this runs.
//!
//! Following: each commit announces `scope=revision` with NOTIFY; [`follow`] reloads just that
//! app (or the token table) into a new snapshot. Every [`SYNC_EVERY`] it also compares every
//! stored revision with the snapshot's, which covers notifications lost while the listener
//! reconnects, and proves the database is reachable: `/readyz` reports a replica that has not
//! synced for [`STALE_AFTER`]. The check-in path is untouched: it keeps reading the last
//! snapshot whatever the database does.
//!
//! The lease: the scheduler ticks only on the replica holding a PostgreSQL session advisory
//! lock; when that replica dies its session ends, the lock is free, and another replica takes
//! it at its next tick. A step is never taken twice either way: a tick first brings every app up
//! to date, and its writes are guarded by the app's revision.

use std::sync::Weak;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use tokio::sync::mpsc;

use crate::config::{Config, StoreLocation};
use crate::state::State;
use crate::store::Store;

/// How often a replica compares every stored revision with its snapshot.
pub const SYNC_EVERY: Duration = Duration::from_secs(2);
/// A replica that has not synced for this long reports itself not ready.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// When this replica last saw the store's revisions (ms on the server clock).
#[derive(Debug, Default)]
pub struct Freshness(AtomicU64);

impl Freshness {
    /// Records a successful sync at `now_ms`.
    pub fn synced(&self, now_ms: u64) {
        self.0.store(now_ms, Ordering::Relaxed);
    }

    /// True when the last sync is older than [`STALE_AFTER`] at `now_ms`.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        now_ms.saturating_sub(self.0.load(Ordering::Relaxed)) > STALE_AFTER.as_millis() as u64
    }
}

/// Keeps the snapshot of `state` in step with the shared store until the state is gone.
pub async fn follow(state: Weak<State>, config: Config) {
    let (tx, mut rx) = mpsc::channel(1024);
    let listener = tokio::spawn(async move {
        loop {
            if let Err(e) = Store::listen(&config, tx.clone()).await {
                tracing::warn!(error = format!("{e:#}"), "the change listener stopped; reconnecting");
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut every = tokio::time::interval(SYNC_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            update = rx.recv() => {
                let Some((scope, revision)) = update else { break };
                let Some(state) = state.upgrade() else { break };
                let mut w = state.writer().await;
                if revision > w.revision_of(&scope)
                    && let Err(e) = w.reload(&scope).await
                {
                    tracing::warn!(error = format!("{e:#}"), scope = scope.key(), "reloading a changed scope failed");
                }
            }
            _ = every.tick() => {
                let Some(state) = state.upgrade() else { break };
                let mut result = state.writer().await.sync().await;
                if result.is_ok() {
                    // Answer keys rotated on another replica sign here too within a sync.
                    result = state.signer.reload(&state.store).await;
                }
                match result {
                    Ok(()) => state.freshness.synced(state.clock.now_ms()),
                    Err(e) => tracing::warn!(error = format!("{e:#}"), "checking the store's revisions failed"),
                }
            }
        }
    }
    listener.abort();
}

/// The scheduler's lease: a session advisory lock on a connection of its own.
pub struct Lease {
    url: Option<String>,
    session: Option<tokio_postgres::Client>,
    held: bool,
}

/// The advisory lock key of the scheduler's lease ("schedule" in ASCII).
const LEASE_KEY: i64 = 0x7363_6865_6475_6c65;

impl Lease {
    /// The lease for the store `config` names; with the embedded store it is always held.
    pub fn new(config: &Config) -> Lease {
        match &config.store {
            StoreLocation::Embedded => Lease { url: None, session: None, held: true },
            StoreLocation::Postgres(url) => Lease { url: Some(url.clone()), session: None, held: false },
        }
    }

    /// True when this replica holds the lease now (taking it if it is free). A lost session
    /// loses the lease; the next call tries again on a new one.
    pub async fn hold(&mut self) -> bool {
        let Some(url) = &self.url else { return true };
        if self.session.as_ref().is_some_and(|s| s.is_closed()) {
            self.session = None;
            if self.held {
                tracing::warn!("lost the scheduler lease with its database session");
            }
            self.held = false;
        }
        if self.held {
            return true;
        }
        match try_lock(url, &mut self.session).await {
            Ok(true) => {
                tracing::info!("this replica holds the scheduler lease");
                self.held = true;
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = format!("{e:#}"), "could not ask for the scheduler lease");
                self.session = None;
            }
        }
        self.held
    }
}

async fn try_lock(url: &str, session: &mut Option<tokio_postgres::Client>) -> anyhow::Result<bool> {
    if session.is_none() {
        let (client, connection) =
            tokio_postgres::connect(url, tokio_postgres::NoTls).await.context("connecting the lease session")?;
        tokio::spawn(connection);
        *session = Some(client);
    }
    let client = session.as_ref().expect("connected above");
    let row = client.query_one("SELECT pg_try_advisory_lock($1)", &[&LEASE_KEY]).await?;
    Ok(row.get(0))
}
