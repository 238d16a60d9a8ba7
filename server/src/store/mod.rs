//! Durable state: apps, releases, rollouts, tokens, the audit log, feedback figures and the
//! server's own secrets (its answer keys), behind one [`Store`] with two backends. sled in the
//! data dir is the embedded default (`sled.rs`); PostgreSQL lets several replicas share one
//! truth (`postgres.rs`). Both keep the same records (`records.rs`, the store's own
//! types) and make the same promise: [`Store::commit`] returns only once the change is
//! durable, so what was answered with a 2xx survives `kill -9`.

mod change;
mod dump;
mod feedback_log;
mod postgres;
mod records;
mod sled;

use std::collections::HashMap;

use anyhow::Context as _;

use halftone_channels::wire::AuditEntry;
use halftone_channels::{AppId, ChannelName, Release, Rollout, Version};

pub use change::{Change, Scope};
pub use dump::Dump;
pub use records::{AnswerKeysRecord, ReportKeyRecord};

use crate::auth::Token;
use crate::config::{Config, StoreLocation};
use crate::snapshot::{AppSettings, RolloutMeta};

/// The secret that holds the answer keys.
const ANSWER_KEYS: &str = "answer-keys";
/// The secret that holds the key of report tokens.
const REPORT_KEY: &str = "report-key";

/// The store format this binary writes and the newest it reads. Data of a newer format is
/// refused at start-up (an older binary must not misread it); see `records.rs`. Opening older
/// data raises its mark to this format (there is no way back to an older binary after that).
///
/// - 1: the first format.
/// - 2: apps' release key documents (rotations) and the server's answer keys. A format-1
///   binary would ignore a rotation and trust the keys it replaced, so it must refuse this data.
/// - 3: the feedback log (reports acknowledged since the figures were last written whole). A
///   format-2 binary would ignore it and lose those reports, so it must refuse this data.
/// - 4: the embedded store's feedback log in a file of its own (`db/feedback.log`, see
///   `feedback_log.rs`). A format-3 binary would not read it and lose those reports. Nothing
///   changed in PostgreSQL's tables; the mark moves there too (one format per binary).
pub const FORMAT: u64 = 4;

/// Everything stored, read at start-up, converted from the records.
#[derive(Default)]
pub struct Loaded {
    /// Apps.
    pub apps: Vec<(AppId, AppSettings)>,
    /// Releases by app.
    pub releases: Vec<(AppId, Release)>,
    /// Rollouts by app, with their metadata.
    pub rollouts: Vec<(AppId, Rollout, RolloutMeta)>,
    /// Tokens by id.
    pub tokens: Vec<(String, Token)>,
    /// The revision of each scope (empty for the embedded store, where one process is the
    /// only writer and every revision starts at 0).
    pub revisions: HashMap<Scope, u64>,
}

/// One app as stored, with the revision it is at.
pub struct LoadedApp {
    /// Its settings.
    pub settings: AppSettings,
    /// Its releases.
    pub releases: Vec<Release>,
    /// Its rollouts with their metadata.
    pub rollouts: Vec<(Rollout, RolloutMeta)>,
    /// The revision of its scope.
    pub revision: u64,
}

/// The key of a release's figures on a channel: app, version, channel.
pub type FeedbackKey = (AppId, Version, ChannelName);
/// What [`Store::load_feedback_and_log`] reads.
#[derive(Debug, Default)]
pub struct FeedbackLoad {
    /// Release figures (JSON) by app, version and channel; one entry per replica that wrote.
    pub figures: Vec<(FeedbackKey, Vec<u8>)>,
    /// Feedback log entries with their sequence numbers, in the order each replica wrote
    /// them (sequence numbers are a replica's own: on PostgreSQL several may repeat one).
    pub log: Vec<(u64, Vec<u8>)>,
    /// The sequence number this process's next log entry takes (embedded store): above every
    /// entry stored and every one a checkpoint covered. 0 on PostgreSQL, where every process
    /// logs under a replica id of its own.
    pub next: u64,
}

/// The key of an adoption window: app, channel, version, window number.
pub type AdoptionKey = (AppId, ChannelName, Version, u64);

/// The store cannot be reached (the database is down or unreachable): the request may succeed
/// when retried, and nothing was written. Carried inside the `anyhow::Error` a store method
/// returns; the HTTP layer answers it with 503 and `Retry-After`.
#[derive(Debug, thiserror::Error)]
#[error("the store is unavailable: {0}")]
pub struct Unavailable(pub String);

/// The guarded scope moved on since the change was checked: another replica changed it. Nothing
/// was written; the caller reloads and decides again.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} changed on another replica (now at revision {1}) since it was read")]
pub struct Stale(pub Scope, pub u64);

/// True when `e` says the store could not be reached.
pub fn is_unavailable(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.is::<Unavailable>())
}

/// Copies the embedded store in `data_dir` into the (empty) PostgreSQL database at `url`, then
/// reads the copy back and checks it holds exactly what the source does. Returns the source's
/// dump (what was copied).
pub async fn migrate(data_dir: &std::path::Path, url: &str) -> anyhow::Result<Dump> {
    let db = data_dir.join("db");
    anyhow::ensure!(db.is_dir(), "{} holds no Halftone database (no db/ directory)", data_dir.display());
    let source =
        sled::SledStore::open(&db).context("opening the source (stop the server that uses it first)")?.dump()?;
    let target = postgres::PgStore::open(url).await?;
    target.restore(&source).await?;
    let copy = target.dump().await?;
    anyhow::ensure!(copy == source, "the copy read back from PostgreSQL differs from the source");
    Ok(source)
}

/// The store: one of the two backends.
pub enum Store {
    /// sled in the data dir.
    Sled(sled::SledStore),
    /// A PostgreSQL database.
    Postgres(postgres::PgStore),
}

impl Store {
    /// Opens the store `config` names (creating, or migrating, what is missing).
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        Ok(match &config.store {
            StoreLocation::Embedded => Store::Sled(sled::SledStore::open(&config.data_dir.join("db"))?),
            StoreLocation::Postgres(url) => Store::Postgres(postgres::PgStore::open(url).await?),
        })
    }

    /// The embedded store in `dir` (tests).
    #[cfg(test)]
    pub fn open_sled(dir: &std::path::Path) -> anyhow::Result<Self> {
        Ok(Store::Sled(sled::SledStore::open(dir)?))
    }

    /// Reads every app, release, rollout and token.
    pub async fn load(&self) -> anyhow::Result<Loaded> {
        match self {
            Store::Sled(s) => s.load(),
            Store::Postgres(p) => p.load().await,
        }
    }

    /// The stored release figures and feedback log entries, read together (on PostgreSQL in
    /// one snapshot, so that no entry is both in the figures and in the log, or in neither):
    /// on sled all of them, on PostgreSQL the other replicas' (this process writes under a new
    /// id, so every stored row is another replica's, live or gone).
    pub async fn load_feedback_and_log(&self) -> anyhow::Result<FeedbackLoad> {
        match self {
            Store::Sled(s) => {
                let (log, next) = s.load_feedback_log()?;
                Ok(FeedbackLoad { figures: s.load_feedback()?, log, next })
            }
            Store::Postgres(p) => p.load_feedback_and_log().await,
        }
    }

    /// Every stored adoption window (JSON) by app, channel, version and window.
    pub async fn load_adoption(&self) -> anyhow::Result<Vec<(AdoptionKey, Vec<u8>)>> {
        match self {
            Store::Sled(s) => s.load_adoption(),
            Store::Postgres(p) => p.load_adoption().await,
        }
    }

    /// The audit log of `app`, oldest first.
    pub async fn audit(&self, app: &AppId) -> anyhow::Result<Vec<AuditEntry>> {
        match self {
            Store::Sled(s) => s.audit(app),
            Store::Postgres(p) => p.audit(Some(app)).await,
        }
    }

    /// The server-wide audit log (changes to no app, such as tokens'), oldest first.
    pub async fn server_audit(&self) -> anyhow::Result<Vec<AuditEntry>> {
        match self {
            Store::Sled(s) => s.server_audit(),
            Store::Postgres(p) => p.audit(None).await,
        }
    }

    /// Writes `change` atomically and durably. Only after this returns may the change be
    /// acknowledged.
    pub async fn commit(&self, change: Change) -> anyhow::Result<()> {
        match self {
            Store::Sled(s) => s.commit(change).await,
            Store::Postgres(p) => p.commit(change).await,
        }
    }

    /// [`Store::commit`] from a thread of its own that may block (the feedback aggregator's,
    /// outside the runtime): the embedded store appends feedback-log entries and empties the
    /// log on it (write and fdatasync), without a hop to a blocking thread and back; the rest
    /// (sled's transaction, a PostgreSQL commit) runs on `runtime`, this thread waiting.
    pub fn commit_blocking(&self, change: Change, runtime: &tokio::runtime::Handle) -> anyhow::Result<()> {
        match self {
            Store::Sled(s) => s.commit_blocking(change, runtime),
            Store::Postgres(p) => runtime.block_on(p.commit(change)),
        }
    }

    /// True when other processes may change the store (PostgreSQL): this replica must follow
    /// their revisions. The embedded store has one writer, this process.
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    /// The stored revision of `scope` (`None` for the embedded store, which this process alone
    /// writes).
    pub async fn revision(&self, scope: &Scope) -> anyhow::Result<Option<u64>> {
        match self {
            Store::Sled(_) => Ok(None),
            Store::Postgres(p) => p.revision(scope).await.map(Some),
        }
    }

    /// The stored revision of every scope (empty for the embedded store).
    pub async fn revisions(&self) -> anyhow::Result<HashMap<Scope, u64>> {
        match self {
            Store::Sled(_) => Ok(HashMap::new()),
            Store::Postgres(p) => p.revisions().await,
        }
    }

    /// One app as stored now, or `None` if there is no such app.
    pub async fn load_app(&self, id: &AppId) -> anyhow::Result<Option<LoadedApp>> {
        match self {
            Store::Sled(s) => {
                let all = s.load()?;
                let Some((_, settings)) = all.apps.into_iter().find(|(a, _)| a == id) else { return Ok(None) };
                let releases = all.releases.into_iter().filter(|(a, _)| a == id).map(|(_, r)| r).collect();
                let rollouts = all.rollouts.into_iter().filter(|(a, ..)| a == id).map(|(_, r, m)| (r, m)).collect();
                Ok(Some(LoadedApp { settings, releases, rollouts, revision: 0 }))
            }
            Store::Postgres(p) => p.load_app(id).await,
        }
    }

    /// The token table as stored now, and its revision.
    pub async fn load_tokens(&self) -> anyhow::Result<(Vec<(String, Token)>, u64)> {
        match self {
            Store::Sled(s) => Ok((s.load()?.tokens, 0)),
            Store::Postgres(p) => p.load_tokens().await,
        }
    }

    /// Sends every revision another process commits, as `(scope, revision)`, until the
    /// connection is lost or `tx` is closed; returns at once for the embedded store.
    pub async fn listen(config: &Config, tx: tokio::sync::mpsc::Sender<(Scope, u64)>) -> anyhow::Result<()> {
        match &config.store {
            StoreLocation::Embedded => Ok(()),
            StoreLocation::Postgres(url) => postgres::PgStore::listen(url, tx).await,
        }
    }

    /// The server's secret `name` (an answer-signing key, ...), if one was stored.
    pub async fn secret(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        match self {
            Store::Sled(s) => s.secret(name),
            Store::Postgres(p) => p.secret(name).await,
        }
    }

    /// Stores `value` as secret `name` if `expected` is what is stored now (`None`: nothing),
    /// durably; answers whether it was stored. With several replicas, one of two racing
    /// writers wins and the other reads the winner's value.
    pub async fn swap_secret(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> anyhow::Result<bool> {
        match self {
            Store::Sled(s) => s.swap_secret(name, expected, value).await,
            Store::Postgres(p) => p.swap_secret(name, expected, value).await,
        }
    }

    /// The answer keys, if any were made.
    pub async fn answer_keys(&self) -> anyhow::Result<Option<AnswerKeysRecord>> {
        let Some(bytes) = self.secret(ANSWER_KEYS).await? else { return Ok(None) };
        Ok(Some(serde_json::from_slice(&bytes).context("reading the stored answer keys")?))
    }

    /// Replaces the answer keys if `expected` is what is stored (`None`: nothing); answers
    /// whether it did.
    pub async fn swap_answer_keys(
        &self,
        expected: Option<&AnswerKeysRecord>,
        keys: &AnswerKeysRecord,
    ) -> anyhow::Result<bool> {
        let encode = |r: &AnswerKeysRecord| serde_json::to_vec(r).expect("records serialize");
        let expected = expected.map(encode);
        self.swap_secret(ANSWER_KEYS, expected.as_deref(), &encode(keys)).await
    }

    /// The key of device report tokens, if one was made.
    pub async fn report_key(&self) -> anyhow::Result<Option<ReportKeyRecord>> {
        let Some(bytes) = self.secret(REPORT_KEY).await? else { return Ok(None) };
        Ok(Some(serde_json::from_slice(&bytes).context("reading the stored report key")?))
    }

    /// Stores the report key if none is stored yet; answers whether it did (another replica
    /// may have stored its own first: read that one).
    pub async fn put_first_report_key(&self, key: &ReportKeyRecord) -> anyhow::Result<bool> {
        self.swap_secret(REPORT_KEY, None, &serde_json::to_vec(key).expect("records serialize")).await
    }

    /// True once the first admin token was made. Revoking every token later does not make
    /// the store fresh again: nobody gets a new admin token by deleting the others.
    pub async fn is_bootstrapped(&self) -> anyhow::Result<bool> {
        match self {
            Store::Sled(s) => s.is_bootstrapped(),
            Store::Postgres(p) => p.is_bootstrapped().await,
        }
    }
}
