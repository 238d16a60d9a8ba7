//! The PostgreSQL backend: several replicas share one database. One SQL transaction per
//! [`Change`]; PostgreSQL's commit is durable (`synchronous_commit` on) before it returns, so a
//! 2xx means committed. The schema is versioned: migrations in `migrations/` run at start-up
//! under an advisory lock (two replicas starting at once apply each migration once), and a
//! database whose schema is newer than this binary is refused with a clear error.

use anyhow::Context as _;
use std::collections::HashMap;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::StreamExt as _;
use halftone_channels::wire::AuditEntry;
use halftone_channels::{AppId, ChannelName, Release, Rollout, Version};
use tokio_postgres::types::Json;
use tokio_postgres::{GenericClient, IsolationLevel, NoTls};

use super::change::{Change, Op};
use super::dump::Dump;
use super::records::{AppRecord, AuditRecord, ReleaseRecord, RolloutRecord, TokenRecord};
use super::{AdoptionKey, FORMAT, FeedbackLoad, Loaded, LoadedApp, Scope, Stale, Unavailable};
use crate::auth::Token;
use crate::snapshot::RolloutMeta;

/// The schema migrations, in order; each runs once, in its own transaction.
const MIGRATIONS: &[(i32, &str)] = &[
    (1, include_str!("migrations/0001_catalog.sql")),
    (2, include_str!("migrations/0002_secrets.sql")),
    (3, include_str!("migrations/0003_feedback_log.sql")),
];

/// The advisory lock that serialises migrations between replicas ("halftone" in ASCII).
const MIGRATION_LOCK: i64 = 0x68616c66746f6e65;

/// The notification channel on which committed revisions are announced.
const CHANNEL: &str = "halftone";

/// A rollout row (app, version, channel, record) as domain values.
fn rollout_row(row: &tokio_postgres::Row) -> anyhow::Result<(AppId, Rollout, RolloutMeta)> {
    let Json(r): Json<RolloutRecord> = row.get(3);
    let (rollout, meta) = r.into_rollout(Version::parse(row.get(1))?, ChannelName::parse(row.get(2))?)?;
    Ok((AppId::parse(row.get(0))?, rollout, meta))
}

async fn tokens(client: &impl GenericClient) -> anyhow::Result<Vec<(String, Token)>> {
    let rows = client.query("SELECT id, record FROM tokens", &[]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let Json(r): Json<TokenRecord> = row.get(1);
            (row.get(0), r.into())
        })
        .collect())
}

async fn revisions(client: &impl GenericClient) -> anyhow::Result<HashMap<Scope, u64>> {
    let rows = client.query("SELECT scope, revision FROM halftone_revisions", &[]).await?;
    let mut out = HashMap::new();
    for row in rows {
        let revision: i64 = row.get(1);
        if let Some(scope) = Scope::parse(row.get(0)) {
            out.insert(scope, u64::try_from(revision)?);
        }
    }
    Ok(out)
}

async fn revision_of(client: &impl GenericClient, scope: &Scope) -> anyhow::Result<u64> {
    let row = client.query_opt("SELECT revision FROM halftone_revisions WHERE scope = $1", &[&scope.key()]).await?;
    Ok(row.map_or(Ok(0), |r| u64::try_from(r.get::<_, i64>(0)))?)
}

/// The PostgreSQL store: a connection pool.
pub struct PgStore {
    pool: Pool,
    /// This process's id in the feedback tables, new at every start.
    replica: String,
}

impl PgStore {
    /// Connects, migrates the schema and checks the store format.
    pub async fn open(url: &str) -> anyhow::Result<Self> {
        let config: tokio_postgres::Config = url.parse().context("parsing the PostgreSQL URL")?;
        let manager = Manager::from_config(config, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
        // A database that does not answer must not hold requests forever: they fail after a few
        // seconds as unavailable (503), and the check-in path never waits on it at all.
        let timeout = Some(std::time::Duration::from_secs(5));
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(timeout)
            .create_timeout(timeout)
            .recycle_timeout(timeout)
            .build()
            .context("building the PostgreSQL pool")?;
        let store = PgStore { pool, replica: uuid::Uuid::new_v4().to_string() };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> anyhow::Result<deadpool_postgres::Object> {
        self.pool.get().await.map_err(|e| Unavailable(format!("connecting to PostgreSQL: {e}")).into())
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await?;
        tx.batch_execute(
            "CREATE TABLE IF NOT EXISTS halftone_schema (
                version integer PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await?;
        let current: i32 = tx.query_one("SELECT coalesce(max(version), 0) FROM halftone_schema", &[]).await?.get(0);
        let latest = MIGRATIONS.last().map_or(0, |(v, _)| *v);
        anyhow::ensure!(
            current <= latest,
            "the database schema is at version {current}, newer than this binary knows ({latest}): run a newer \
             Halftone against it"
        );
        for (version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > current) {
            tx.batch_execute(sql).await.with_context(|| format!("applying schema migration {version}"))?;
            tx.execute("INSERT INTO halftone_schema (version) VALUES ($1)", &[version]).await?;
            tracing::info!(version, "applied schema migration");
        }
        let format = tx.query_opt("SELECT value FROM halftone_meta WHERE key = 'format'", &[]).await?;
        match format {
            Some(row) => {
                let Json(found): Json<u64> = row.get(0);
                anyhow::ensure!(
                    found <= FORMAT,
                    "this database was written by a newer Halftone (store format {found}; this binary reads \
                     formats up to {FORMAT}): run that version or newer"
                );
                if found < FORMAT {
                    // Older binaries refuse it from now on (see `FORMAT`).
                    tx.execute("UPDATE halftone_meta SET value = $1 WHERE key = 'format'", &[&Json(FORMAT)]).await?;
                }
            }
            None => {
                tx.execute("INSERT INTO halftone_meta (key, value) VALUES ('format', $1)", &[&Json(FORMAT)]).await?;
            }
        }
        tx.commit().await.context("committing the schema migration")?;
        Ok(())
    }

    /// Reads every app, release, rollout and token, with the revisions they are at.
    pub async fn load(&self) -> anyhow::Result<Loaded> {
        let client = self.client().await?;
        let mut out = Loaded::default();
        for row in client.query("SELECT app, record FROM apps", &[]).await? {
            let Json(r): Json<AppRecord> = row.get(1);
            out.apps.push((AppId::parse(row.get(0))?, r.try_into()?));
        }
        for row in client.query("SELECT app, record FROM releases", &[]).await? {
            let Json(r): Json<ReleaseRecord> = row.get(1);
            out.releases.push((AppId::parse(row.get(0))?, Release::try_from(r)?));
        }
        for row in client.query("SELECT app, version, channel, record FROM rollouts", &[]).await? {
            out.rollouts.push(rollout_row(&row)?);
        }
        out.tokens = tokens(&**client).await?;
        out.revisions = revisions(&**client).await?;
        Ok(out)
    }

    /// One app with its releases, rollouts and revision, read in one snapshot of the database.
    pub async fn load_app(&self, id: &AppId) -> anyhow::Result<Option<LoadedApp>> {
        let mut client = self.client().await?;
        let tx =
            client.build_transaction().read_only(true).isolation_level(IsolationLevel::RepeatableRead).start().await?;
        let Some(row) = tx.query_opt("SELECT record FROM apps WHERE app = $1", &[&id.as_str()]).await? else {
            return Ok(None);
        };
        let Json(settings): Json<AppRecord> = row.get(0);
        let mut releases = Vec::new();
        for row in tx.query("SELECT record FROM releases WHERE app = $1", &[&id.as_str()]).await? {
            let Json(r): Json<ReleaseRecord> = row.get(0);
            releases.push(Release::try_from(r)?);
        }
        let mut rollouts = Vec::new();
        for row in
            tx.query("SELECT app, version, channel, record FROM rollouts WHERE app = $1", &[&id.as_str()]).await?
        {
            let (_, rollout, meta) = rollout_row(&row)?;
            rollouts.push((rollout, meta));
        }
        let revision = revision_of(&*tx, &Scope::App(id.clone())).await?;
        tx.commit().await?;
        Ok(Some(LoadedApp { settings: settings.try_into()?, releases, rollouts, revision }))
    }

    /// The token table and its revision.
    pub async fn load_tokens(&self) -> anyhow::Result<(Vec<(String, Token)>, u64)> {
        let mut client = self.client().await?;
        let tx =
            client.build_transaction().read_only(true).isolation_level(IsolationLevel::RepeatableRead).start().await?;
        let out = (tokens(&*tx).await?, revision_of(&*tx, &Scope::Tokens).await?);
        tx.commit().await?;
        Ok(out)
    }

    /// The revision of one scope.
    pub async fn revision(&self, scope: &Scope) -> anyhow::Result<u64> {
        let client = self.client().await?;
        revision_of(&**client, scope).await
    }

    /// The revision of every scope.
    pub async fn revisions(&self) -> anyhow::Result<HashMap<Scope, u64>> {
        let client = self.client().await?;
        revisions(&**client).await
    }

    /// The release figures (JSON) and feedback log entries other replicas stored, read in one
    /// snapshot (a replica moves entries from its log into its figures in one transaction: read
    /// apart, an entry could be seen in both or in neither).
    pub async fn load_feedback_and_log(&self) -> anyhow::Result<FeedbackLoad> {
        let mut client = self.client().await?;
        let tx =
            client.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?;
        let rows = tx
            .query("SELECT app, version, channel, sketch FROM feedback WHERE replica <> $1", &[&self.replica])
            .await?;
        let figures = rows
            .iter()
            .map(|r| {
                let key = (AppId::parse(r.get(0))?, Version::parse(r.get(1))?, ChannelName::parse(r.get(2))?);
                Ok((key, r.get(3)))
            })
            .collect::<anyhow::Result<_>>()?;
        let rows = tx
            .query("SELECT seq, entry FROM feedback_log WHERE replica <> $1 ORDER BY replica, seq", &[&self.replica])
            .await?;
        let log =
            rows.iter().map(|r| Ok((u64::try_from(r.get::<_, i64>(0))?, r.get(1)))).collect::<anyhow::Result<_>>()?;
        tx.commit().await?;
        Ok(FeedbackLoad { figures, log, next: 0 })
    }

    /// The adoption windows (JSON) other replicas stored, by app, channel, version and window
    /// (one entry per replica).
    pub async fn load_adoption(&self) -> anyhow::Result<Vec<(AdoptionKey, Vec<u8>)>> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT app, channel, version, window_start, sketch FROM adoption WHERE replica <> $1",
                &[&self.replica],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let window: i64 = r.get(3);
                let key = (
                    AppId::parse(r.get(0))?,
                    ChannelName::parse(r.get(1))?,
                    Version::parse(r.get(2))?,
                    u64::try_from(window)?,
                );
                Ok((key, r.get(4)))
            })
            .collect()
    }

    /// The audit log of `app` (`None`: the server-wide log), oldest first.
    pub async fn audit(&self, app: Option<&AppId>) -> anyhow::Result<Vec<AuditEntry>> {
        let client = self.client().await?;
        let rows = match app {
            Some(app) => {
                client.query("SELECT seq, record FROM audit WHERE app = $1 ORDER BY seq", &[&app.as_str()]).await?
            }
            None => client.query("SELECT seq, record FROM audit WHERE app IS NULL ORDER BY seq", &[]).await?,
        };
        rows.iter()
            .map(|r| {
                let seq: i64 = r.get(0);
                let Json(record): Json<AuditRecord> = r.get(1);
                Ok(AuditEntry { seq: u64::try_from(seq)?, ..record.into() })
            })
            .collect()
    }

    /// Writes `change` in one transaction; returns once PostgreSQL has committed it. A lost
    /// connection is [`Unavailable`]: the transaction was not committed (a commit whose answer
    /// was lost may have been, which a retry of the same change sees as already applied).
    pub async fn commit(&self, change: Change) -> anyhow::Result<()> {
        self.write(change).await.map_err(|e| match e.downcast_ref::<tokio_postgres::Error>() {
            Some(pg) if pg.code().is_none() => Unavailable(format!("PostgreSQL: {pg}")).into(),
            _ => e,
        })
    }

    async fn write(&self, change: Change) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        if let Some((scope, expected)) = &change.guard {
            let key = scope.key();
            tx.execute(
                "INSERT INTO halftone_revisions (scope, revision) VALUES ($1, 0) ON CONFLICT (scope) DO NOTHING",
                &[&key],
            )
            .await?;
            let expected = i64::try_from(*expected)?;
            let moved = tx
                .execute(
                    "UPDATE halftone_revisions SET revision = revision + 1 WHERE scope = $1 AND revision = $2",
                    &[&key, &expected],
                )
                .await?;
            if moved == 0 {
                let now = revision_of(&*tx, scope).await?;
                return Err(Stale(scope.clone(), now).into());
            }
            // Delivered to every replica's listener when (and only if) this transaction commits.
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &format!("{key}={}", expected + 1)]).await?;
        }
        for op in &change.ops {
            match op {
                Op::App(app, r) => {
                    tx.execute(
                        "INSERT INTO apps (app, record) VALUES ($1, $2)
                         ON CONFLICT (app) DO UPDATE SET record = EXCLUDED.record",
                        &[&app.as_str(), &Json(r)],
                    )
                    .await?
                }
                Op::Release(app, v, r) => {
                    tx.execute(
                        "INSERT INTO releases (app, version, record) VALUES ($1, $2, $3)
                         ON CONFLICT (app, version) DO UPDATE SET record = EXCLUDED.record",
                        &[&app.as_str(), &v.to_string(), &Json(r)],
                    )
                    .await?
                }
                Op::Rollout(app, v, ch, r) => {
                    tx.execute(
                        "INSERT INTO rollouts (app, version, channel, record) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (app, version, channel) DO UPDATE SET record = EXCLUDED.record",
                        &[&app.as_str(), &v.to_string(), &ch.as_str(), &Json(r)],
                    )
                    .await?
                }
                Op::Token(id, r) => {
                    tx.execute(
                        "INSERT INTO tokens (id, record) VALUES ($1, $2)
                         ON CONFLICT (id) DO UPDATE SET record = EXCLUDED.record",
                        &[id, &Json(r)],
                    )
                    .await?
                }
                Op::RemoveToken(id) => tx.execute("DELETE FROM tokens WHERE id = $1", &[id]).await?,
                Op::Bootstrapped => {
                    tx.execute(
                        "INSERT INTO halftone_meta (key, value) VALUES ('bootstrapped', 'true')
                         ON CONFLICT (key) DO NOTHING",
                        &[],
                    )
                    .await?
                }
                Op::Feedback((app, v, ch), sketch) => {
                    tx.execute(
                        "INSERT INTO feedback (app, version, channel, replica, sketch) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (app, version, channel, replica) DO UPDATE SET sketch = EXCLUDED.sketch",
                        &[&app.as_str(), &v.to_string(), &ch.as_str(), &self.replica, sketch],
                    )
                    .await?
                }
                Op::Adoption((app, ch, v, w), sketch) => {
                    tx.execute(
                        "INSERT INTO adoption (app, channel, version, window_start, replica, sketch)
                         VALUES ($1, $2, $3, $4, $5, $6)
                         ON CONFLICT (app, channel, version, window_start, replica) DO UPDATE SET sketch = EXCLUDED.sketch",
                        &[&app.as_str(), &ch.as_str(), &v.to_string(), &i64::try_from(*w)?, &self.replica, sketch],
                    )
                    .await?
                }
                Op::FeedbackLog(seq, entry) => {
                    tx.execute(
                        "INSERT INTO feedback_log (replica, seq, entry) VALUES ($1, $2, $3)",
                        &[&self.replica, &i64::try_from(*seq)?, entry],
                    )
                    .await?
                }
                Op::RemoveFeedbackLog(from, to) => {
                    tx.execute(
                        "DELETE FROM feedback_log WHERE replica = $1 AND seq BETWEEN $2 AND $3",
                        &[&self.replica, &i64::try_from(*from)?, &i64::try_from(*to)?],
                    )
                    .await?
                }
                Op::RemoveAdoption((app, ch, v, w)) => {
                    tx.execute(
                        // An expired window expires for every replica, live or gone.
                        "DELETE FROM adoption WHERE app = $1 AND channel = $2 AND version = $3 AND window_start = $4",
                        &[&app.as_str(), &ch.as_str(), &v.to_string(), &i64::try_from(*w)?],
                    )
                    .await?
                }
            };
        }
        for e in &change.audit {
            // The sequence number is the row's; the record's own is not read back.
            let record = AuditRecord::new(e, 0);
            tx.execute(
                "INSERT INTO audit (app, record) VALUES ($1, $2)",
                &[&e.app.as_ref().map(AppId::as_str), &Json(&record)],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Listens for the revisions other replicas commit: each notification is `scope=revision`.
    /// Returns when the connection is lost (the caller reconnects; its periodic revision check
    /// covers the gap).
    pub async fn listen(url: &str, tx: tokio::sync::mpsc::Sender<(Scope, u64)>) -> anyhow::Result<()> {
        let (client, mut connection) = tokio_postgres::connect(url, NoTls).await.context("connecting the listener")?;
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let statement = format!("LISTEN {CHANNEL}");
        let listen = client.batch_execute(&statement);
        let mut listen = std::pin::pin!(listen);
        // The LISTEN completes only while the connection is polled.
        loop {
            tokio::select! {
                done = &mut listen => { done?; break; }
                message = messages.next() => {
                    if message.transpose()?.is_none() {
                        anyhow::bail!("the listener connection closed");
                    }
                }
            }
        }
        while let Some(message) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message? {
                let parsed = n.payload().split_once('=').and_then(|(k, v)| Some((Scope::parse(k)?, v.parse().ok()?)));
                if let Some(update) = parsed
                    && tx.send(update).await.is_err()
                {
                    return Ok(());
                }
            }
        }
        anyhow::bail!("the listener connection closed")
    }

    /// Every record, for `halftone migrate` to verify a copy (figures: one entry per row, so
    /// several per key where several replicas wrote).
    pub async fn dump(&self) -> anyhow::Result<Dump> {
        let client = self.client().await?;
        let mut d = Dump::default();
        for row in client.query("SELECT app, record FROM apps", &[]).await? {
            let Json(r): Json<AppRecord> = row.get(1);
            d.apps.push((AppId::parse(row.get(0))?, r));
        }
        for row in client.query("SELECT app, version, record FROM releases", &[]).await? {
            let Json(r): Json<ReleaseRecord> = row.get(2);
            d.releases.push((AppId::parse(row.get(0))?, Version::parse(row.get(1))?, r));
        }
        for row in client.query("SELECT app, version, channel, record FROM rollouts", &[]).await? {
            let Json(r): Json<RolloutRecord> = row.get(3);
            d.rollouts.push((
                AppId::parse(row.get(0))?,
                Version::parse(row.get(1))?,
                ChannelName::parse(row.get(2))?,
                r,
            ));
        }
        for row in client.query("SELECT id, record FROM tokens", &[]).await? {
            let Json(r): Json<TokenRecord> = row.get(1);
            d.tokens.push((row.get(0), r));
        }
        for row in client.query("SELECT seq, record FROM audit ORDER BY seq", &[]).await? {
            let Json(r): Json<AuditRecord> = row.get(1);
            d.audit.push((u64::try_from(row.get::<_, i64>(0))?, r));
        }
        d.bootstrapped = self.is_bootstrapped().await?;
        let rows = client.query("SELECT app, version, channel, sketch FROM feedback", &[]).await?;
        for r in rows {
            d.feedback
                .push(((AppId::parse(r.get(0))?, Version::parse(r.get(1))?, ChannelName::parse(r.get(2))?), r.get(3)));
        }
        let rows = client.query("SELECT app, channel, version, window_start, sketch FROM adoption", &[]).await?;
        for r in rows {
            let window = u64::try_from(r.get::<_, i64>(3))?;
            d.adoption.push((
                (AppId::parse(r.get(0))?, ChannelName::parse(r.get(1))?, Version::parse(r.get(2))?, window),
                r.get(4),
            ));
        }
        for r in client.query("SELECT name, value FROM halftone_secrets", &[]).await? {
            d.secrets.push((r.get(0), r.get(1)));
        }
        for r in client.query("SELECT seq, entry FROM feedback_log", &[]).await? {
            d.feedback_log.push((u64::try_from(r.get::<_, i64>(0))?, r.get(1)));
        }
        Ok(d.sorted())
    }

    /// Writes `dump` into this database in one transaction, keeping audit sequence numbers;
    /// refuses a database that already holds apps or tokens (a copy never merges). Figures are
    /// stored as one replica's, `migrated`.
    pub async fn restore(&self, dump: &Dump) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let held: i64 =
            tx.query_one("SELECT (SELECT count(*) FROM apps) + (SELECT count(*) FROM tokens)", &[]).await?.get(0);
        anyhow::ensure!(
            held == 0,
            "the target database already holds apps or tokens: a migration copies into an empty one"
        );
        for (app, r) in &dump.apps {
            tx.execute("INSERT INTO apps (app, record) VALUES ($1, $2)", &[&app.as_str(), &Json(r)]).await?;
        }
        for (app, v, r) in &dump.releases {
            tx.execute(
                "INSERT INTO releases (app, version, record) VALUES ($1, $2, $3)",
                &[&app.as_str(), &v.to_string(), &Json(r)],
            )
            .await?;
        }
        for (app, v, ch, r) in &dump.rollouts {
            tx.execute(
                "INSERT INTO rollouts (app, version, channel, record) VALUES ($1, $2, $3, $4)",
                &[&app.as_str(), &v.to_string(), &ch.as_str(), &Json(r)],
            )
            .await?;
        }
        for (id, r) in &dump.tokens {
            tx.execute("INSERT INTO tokens (id, record) VALUES ($1, $2)", &[id, &Json(r)]).await?;
        }
        for (seq, r) in &dump.audit {
            let app = r.app().map(AppId::as_str);
            tx.execute(
                "INSERT INTO audit (seq, app, record) VALUES ($1, $2, $3)",
                &[&i64::try_from(*seq)?, &app, &Json(r)],
            )
            .await?;
        }
        tx.execute("SELECT setval(pg_get_serial_sequence('audit', 'seq'), coalesce((SELECT max(seq) FROM audit), 0) + 1, false)", &[])
            .await?;
        if dump.bootstrapped {
            tx.execute(
                "INSERT INTO halftone_meta (key, value) VALUES ('bootstrapped', 'true') ON CONFLICT (key) DO NOTHING",
                &[],
            )
            .await?;
        }
        for ((app, v, ch), sketch) in &dump.feedback {
            tx.execute(
                "INSERT INTO feedback (app, version, channel, replica, sketch) VALUES ($1, $2, $3, 'migrated', $4)",
                &[&app.as_str(), &v.to_string(), &ch.as_str(), sketch],
            )
            .await?;
        }
        for ((app, ch, v, w), sketch) in &dump.adoption {
            tx.execute(
                "INSERT INTO adoption (app, channel, version, window_start, replica, sketch)
                 VALUES ($1, $2, $3, $4, 'migrated', $5)",
                &[&app.as_str(), &ch.as_str(), &v.to_string(), &i64::try_from(*w)?, sketch],
            )
            .await?;
        }
        for (name, value) in &dump.secrets {
            tx.execute("INSERT INTO halftone_secrets (name, value) VALUES ($1, $2)", &[name, value]).await?;
        }
        for (seq, entry) in &dump.feedback_log {
            tx.execute(
                "INSERT INTO feedback_log (replica, seq, entry) VALUES ('migrated', $1, $2)",
                &[&i64::try_from(*seq)?, entry],
            )
            .await?;
        }
        tx.commit().await.context("committing the copy")?;
        Ok(())
    }

    /// The secret stored under `name`, if any.
    pub async fn secret(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let client = self.client().await?;
        let row = client.query_opt("SELECT value FROM halftone_secrets WHERE name = $1", &[&name]).await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// Stores `value` under `name` if `expected` is what is stored now (`None`: nothing);
    /// answers whether it was stored. Two replicas racing: one wins, the other reads its value.
    pub async fn swap_secret(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> anyhow::Result<bool> {
        let client = self.client().await?;
        let n = match expected {
            None => {
                client
                    .execute(
                        "INSERT INTO halftone_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                        &[&name, &value],
                    )
                    .await?
            }
            Some(old) => {
                client
                    .execute(
                        "UPDATE halftone_secrets SET value = $3 WHERE name = $1 AND value = $2",
                        &[&name, &old, &value],
                    )
                    .await?
            }
        };
        Ok(n == 1)
    }

    /// True once the first admin token was made.
    pub async fn is_bootstrapped(&self) -> anyhow::Result<bool> {
        let client = self.client().await?;
        let row =
            client.query_one("SELECT EXISTS (SELECT 1 FROM halftone_meta WHERE key = 'bootstrapped')", &[]).await?;
        Ok(row.get(0))
    }
}
