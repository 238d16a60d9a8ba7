//! The embedded backend: sled trees in the data dir, one transaction per [`Change`], flushed
//! before the caller acknowledges it.
//!
//! Every value is one format byte ([`FORMAT_V1`]) followed by JSON of a record of
//! `records.rs`. Keys: `apps`: app id; `releases`: app ‖ 0 ‖ version; `rollouts`: app ‖ 0 ‖
//! version ‖ 0 ‖ channel; `tokens`: token id; `audit`: app ‖ 0 ‖ sequence (u64 big-endian),
//! and 0 ‖ sequence for server-wide entries (tokens); `meta`: `format`, `bootstrapped`,
//! `feedback_log_start` (the first feedback log entry no checkpoint covers yet).
//!
//! The feedback log is not a tree but a file beside them (`feedback_log.rs`): its appends,
//! one per group commit of event reports, skip sled's transaction and flush. Data dirs of
//! store format 3 kept it in the `feedback_log` tree, which is still read and emptied.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use halftone_channels::wire::AuditEntry;
use halftone_channels::{AppId, ChannelName, Release, Version};
use serde::{Serialize, de::DeserializeOwned};
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

use super::change::{Change, Op};
use super::dump::Dump;
use super::feedback_log::{self, FeedbackLog};
use super::records::{AppRecord, AuditRecord, ReleaseRecord, RolloutRecord, TokenRecord};
use super::{AdoptionKey, FORMAT, FeedbackKey, Loaded};

/// The format byte in front of every stored value.
const FORMAT_V1: u8 = 1;

fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    let mut out = vec![FORMAT_V1];
    serde_json::to_writer(&mut out, v).expect("records serialize");
    out
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> anyhow::Result<T> {
    match bytes.split_first() {
        Some((&FORMAT_V1, json)) => Ok(serde_json::from_slice(json)?),
        Some((b, _)) => anyhow::bail!("unknown storage format {b}"),
        None => anyhow::bail!("empty stored value"),
    }
}

fn framed(json: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 1);
    out.push(FORMAT_V1);
    out.extend(json);
    out
}

fn unframed(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    match bytes.split_first() {
        Some((&FORMAT_V1, json)) => Ok(json.to_vec()),
        _ => anyhow::bail!("unknown storage format"),
    }
}

fn adoption_key(app: &AppId, ch: &ChannelName, v: &Version, window: u64) -> Vec<u8> {
    key(&[app.as_str(), ch.as_str(), &v.to_string(), &format!("{window:020}")])
}

/// The key prefix of an app's audit entries: `app ‖ 0`; the server-wide log's is `0` alone
/// (an app id is never empty).
fn audit_prefix(app: Option<&AppId>) -> Vec<u8> {
    let mut k = app.map_or_else(Vec::new, |a| a.as_str().as_bytes().to_vec());
    k.push(0);
    k
}

fn key(parts: &[&str]) -> Vec<u8> {
    parts.join("\0").into_bytes()
}

#[derive(Clone, Copy)]
enum Tree {
    Apps = 0,
    Releases = 1,
    Rollouts = 2,
    Tokens = 3,
    Audit = 4,
    Meta = 5,
    Feedback = 6,
    Adoption = 7,
    Secrets = 8,
    /// The feedback log of store format 3: read and emptied, never written.
    FeedbackLog = 9,
}

type Puts = Vec<(Tree, Vec<u8>, Vec<u8>)>;
type Removes = Vec<(Tree, Vec<u8>)>;

/// The keys and values `ops` write in sled (feedback log appends go to the file); `legacy_log`:
/// whether the format-3 log tree still holds entries, which a checkpoint then removes.
fn writes(ops: &[Op], legacy_log: bool) -> (Puts, Removes) {
    let (mut puts, mut removes) = (Vec::new(), Vec::new());
    for op in ops {
        match op {
            Op::App(app, r) => puts.push((Tree::Apps, key(&[app.as_str()]), encode(r))),
            Op::Release(app, v, r) => puts.push((Tree::Releases, key(&[app.as_str(), &v.to_string()]), encode(r))),
            Op::Rollout(app, v, ch, r) => {
                puts.push((Tree::Rollouts, key(&[app.as_str(), &v.to_string(), ch.as_str()]), encode(r)));
            }
            Op::Token(id, r) => puts.push((Tree::Tokens, key(&[id]), encode(r))),
            Op::RemoveToken(id) => removes.push((Tree::Tokens, key(&[id]))),
            Op::Bootstrapped => puts.push((Tree::Meta, key(&["bootstrapped"]), encode(&true))),
            Op::Feedback((app, v, ch), json) => {
                puts.push((Tree::Feedback, key(&[app.as_str(), &v.to_string(), ch.as_str()]), framed(json.clone())));
            }
            Op::Adoption((app, ch, v, w), json) => {
                puts.push((Tree::Adoption, adoption_key(app, ch, v, *w), framed(json.clone())));
            }
            Op::RemoveAdoption((app, ch, v, w)) => removes.push((Tree::Adoption, adoption_key(app, ch, v, *w))),
            Op::FeedbackLog(..) => {}
            Op::RemoveFeedbackLog(from, to) => {
                puts.push((Tree::Meta, key(&[LOG_START]), encode(&(to + 1))));
                if legacy_log {
                    removes.extend((*from..=*to).map(|seq| (Tree::FeedbackLog, seq.to_be_bytes().to_vec())));
                }
            }
        }
    }
    (puts, removes)
}

/// Makes sled's I/O pool now, from the calling thread, if it is not made yet: the pool is
/// made at the first job handed to it, and an asynchronous flush always hands it one.
fn start_io_pool(db: &sled::Db) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().build()?;
    runtime.block_on(db.flush_async()).context("flushing the database")?;
    Ok(())
}

/// The `meta` key of the first feedback log entry no checkpoint covers.
const LOG_START: &str = "feedback_log_start";

/// The embedded store: a sled database in the data dir, and its feedback log file.
pub struct SledStore {
    db: sled::Db,
    trees: [sled::Tree; 10],
    log: Arc<FeedbackLog>,
}

impl SledStore {
    /// Opens (or creates) the database under `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let config = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::LowSpace)
            // sled caches up to 1 GiB by default; the snapshot already holds what the
            // server reads, so the cache only serves writes and start-up.
            .cache_capacity(8 << 20);
        // sled's threads inherit the priority of the thread that makes them: its log flusher
        // is made as it opens, and its I/O pool (seven threads that stay, process-wide) at
        // the first job handed to it. Both are made here, from a background thread, so that
        // they are the background too (crate::background) and sled's writes and flushes yield
        // the CPU to check-ins. (Left to chance, the pool was made by whichever thread handed
        // it the first job: on a new data dir, the main thread's format check raced sled's
        // log flusher, and a release server's seven pool threads, which every flush wakes, ran
        // at full priority.)
        let store = std::thread::scope(|s| {
            s.spawn(|| {
                crate::background::lower_this_thread();
                let db = config.open().with_context(|| format!("opening the database in {}", dir.display()))?;
                start_io_pool(&db)?;
                let t = |n: &str| db.open_tree(n);
                let trees = [
                    t("apps")?,
                    t("releases")?,
                    t("rollouts")?,
                    t("tokens")?,
                    t("audit")?,
                    t("meta")?,
                    t("feedback")?,
                    t("adoption")?,
                    t("secrets")?,
                    t("feedback_log")?,
                ];
                SledStore::check_format(&db, &trees[Tree::Meta as usize])?;
                // Opened once the format is known to be ours: it may cut a torn entry off.
                let log = Arc::new(FeedbackLog::open(dir)?);
                let store = SledStore { db, trees, log };
                anyhow::Ok(store)
            })
            .join()
        })
        .map_err(|_| anyhow::anyhow!("opening the database panicked"))??;
        Ok(store)
    }

    /// Refuses data of a newer store format; marks a new, pre-marker or older data dir with
    /// ours (so that an older binary refuses it from now on).
    fn check_format(db: &sled::Db, meta: &sled::Tree) -> anyhow::Result<()> {
        let k = key(&["format"]);
        if let Some(v) = meta.get(&k)? {
            let found: u64 = decode(&v).context("reading the store format")?;
            anyhow::ensure!(
                found <= FORMAT,
                "this data dir was written by a newer Halftone (store format {found}; this binary reads formats \
                 up to {FORMAT}): run that version or newer, or restore a backup made by this one"
            );
            if found == FORMAT {
                return Ok(());
            }
        }
        meta.insert(k, encode(&FORMAT))?;
        db.flush().context("flushing the database")?;
        Ok(())
    }

    fn tree(&self, t: Tree) -> &sled::Tree {
        &self.trees[t as usize]
    }

    /// Reads every app, release, rollout and token.
    pub fn load(&self) -> anyhow::Result<Loaded> {
        let mut out = Loaded::default();
        let split = |k: &[u8]| -> anyhow::Result<Vec<String>> {
            Ok(std::str::from_utf8(k)?.split('\0').map(str::to_owned).collect())
        };
        for kv in self.tree(Tree::Apps).iter() {
            let (k, v) = kv?;
            out.apps.push((AppId::parse(std::str::from_utf8(&k)?)?, decode::<AppRecord>(&v)?.try_into()?));
        }
        for kv in self.tree(Tree::Releases).iter() {
            let (k, v) = kv?;
            let parts = split(&k)?;
            out.releases.push((AppId::parse(&parts[0])?, Release::try_from(decode::<ReleaseRecord>(&v)?)?));
        }
        for kv in self.tree(Tree::Rollouts).iter() {
            let (k, v) = kv?;
            let p = split(&k)?;
            anyhow::ensure!(p.len() == 3, "malformed rollout key");
            let record: RolloutRecord = decode(&v)?;
            let (rollout, meta) = record.into_rollout(Version::parse(&p[1])?, ChannelName::parse(&p[2])?)?;
            out.rollouts.push((AppId::parse(&p[0])?, rollout, meta));
        }
        for kv in self.tree(Tree::Tokens).iter() {
            let (k, v) = kv?;
            out.tokens.push((String::from_utf8(k.to_vec())?, decode::<TokenRecord>(&v)?.into()));
        }
        Ok(out)
    }

    /// Every stored release figure (JSON) by app, version and channel.
    pub fn load_feedback(&self) -> anyhow::Result<Vec<(FeedbackKey, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.tree(Tree::Feedback).iter() {
            let (k, v) = kv?;
            let p: Vec<&str> = std::str::from_utf8(&k)?.split('\0').collect();
            anyhow::ensure!(p.len() == 3, "malformed feedback key");
            out.push(((AppId::parse(p[0])?, Version::parse(p[1])?, ChannelName::parse(p[2])?), unframed(&v)?));
        }
        Ok(out)
    }

    /// The feedback log's entries no checkpoint covers, oldest first, with their sequence
    /// numbers; and the sequence number the next entry takes.
    pub fn load_feedback_log(&self) -> anyhow::Result<(feedback_log::Entries, u64)> {
        let start: u64 = match self.tree(Tree::Meta).get(key(&[LOG_START]))? {
            Some(v) => decode(&v).context("reading where the feedback log starts")?,
            None => 0,
        };
        let mut out = Vec::new();
        for kv in self.tree(Tree::FeedbackLog).iter() {
            let (k, v) = kv?;
            let seq = u64::from_be_bytes(k.as_ref().try_into().context("malformed feedback log key")?);
            out.push((seq, unframed(&v)?));
        }
        out.extend(self.log.entries()?);
        out.retain(|(seq, _)| *seq >= start);
        out.sort_by_key(|(seq, _)| *seq);
        let next = out.last().map_or(start, |(seq, _)| (seq + 1).max(start));
        Ok((out, next))
    }

    /// Every stored adoption window (JSON) by app, channel, version and window.
    pub fn load_adoption(&self) -> anyhow::Result<Vec<(AdoptionKey, Vec<u8>)>> {
        let mut out = Vec::new();
        for kv in self.tree(Tree::Adoption).iter() {
            let (k, v) = kv?;
            let p: Vec<&str> = std::str::from_utf8(&k)?.split('\0').collect();
            anyhow::ensure!(p.len() == 4, "malformed adoption key");
            let key = (AppId::parse(p[0])?, ChannelName::parse(p[1])?, Version::parse(p[2])?, p[3].parse()?);
            out.push((key, unframed(&v)?));
        }
        Ok(out)
    }

    /// The audit log of `app`, oldest first.
    pub fn audit(&self, app: &AppId) -> anyhow::Result<Vec<AuditEntry>> {
        self.read_audit(audit_prefix(Some(app)))
    }

    /// The server-wide audit log (changes to no app, such as tokens'), oldest first.
    pub fn server_audit(&self) -> anyhow::Result<Vec<AuditEntry>> {
        self.read_audit(audit_prefix(None))
    }

    fn read_audit(&self, prefix: Vec<u8>) -> anyhow::Result<Vec<AuditEntry>> {
        let values = self.tree(Tree::Audit).scan_prefix(prefix).values();
        values.map(|v| Ok(decode::<AuditRecord>(&v?)?.into())).collect()
    }

    /// Writes `change` atomically and flushes it to disk. Only after this returns may the
    /// change be acknowledged. The feedback log's file is written on a blocking thread.
    pub async fn commit(&self, change: Change) -> anyhow::Result<()> {
        let (change, log) = split_log(change);
        if !change.ops.is_empty() || !change.audit.is_empty() {
            self.commit_trees(&change).await?;
        }
        if log.checkpoint || !log.appends.is_empty() {
            let file = self.log.clone();
            tokio::task::spawn_blocking(move || log.write(&file)).await??;
        }
        Ok(())
    }

    /// [`SledStore::commit`] on the calling thread, which may block: the feedback log's file is
    /// written here, sled's transaction runs on `runtime`.
    pub fn commit_blocking(&self, change: Change, runtime: &tokio::runtime::Handle) -> anyhow::Result<()> {
        let (change, log) = split_log(change);
        if !change.ops.is_empty() || !change.audit.is_empty() {
            runtime.block_on(self.commit_trees(&change))?;
        }
        log.write(&self.log)
    }

    /// Writes what `change` stores in sled in one transaction, and flushes it.
    async fn commit_trees(&self, change: &Change) -> anyhow::Result<()> {
        let legacy_log = !self.tree(Tree::FeedbackLog).is_empty();
        let (puts, removes) = writes(&change.ops, legacy_log);
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        let result: Result<(), TransactionError<()>> = trees[..].transaction(|tx| {
            for (t, k, v) in &puts {
                tx[*t as usize].insert(k.as_slice(), v.as_slice())?;
            }
            for (t, k) in &removes {
                tx[*t as usize].remove(k.as_slice())?;
            }
            for e in &change.audit {
                let audit = &tx[Tree::Audit as usize];
                let seq = audit.generate_id()?;
                let mut k = audit_prefix(e.app.as_ref());
                k.extend_from_slice(&seq.to_be_bytes());
                audit.insert(k, encode(&AuditRecord::new(e, seq)))?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        result.map_err(|e| anyhow::anyhow!("database transaction failed: {e:?}"))?;
        self.db.flush_async().await.context("flushing the database")?;
        Ok(())
    }

    /// Every record, for `halftone migrate`.
    pub fn dump(&self) -> anyhow::Result<Dump> {
        let mut d = Dump::default();
        let split = |k: &[u8]| -> anyhow::Result<Vec<String>> {
            Ok(std::str::from_utf8(k)?.split('\0').map(str::to_owned).collect())
        };
        for kv in self.tree(Tree::Apps).iter() {
            let (k, v) = kv?;
            d.apps.push((AppId::parse(std::str::from_utf8(&k)?)?, decode(&v)?));
        }
        for kv in self.tree(Tree::Releases).iter() {
            let (k, v) = kv?;
            let p = split(&k)?;
            anyhow::ensure!(p.len() == 2, "malformed release key");
            d.releases.push((AppId::parse(&p[0])?, Version::parse(&p[1])?, decode(&v)?));
        }
        for kv in self.tree(Tree::Rollouts).iter() {
            let (k, v) = kv?;
            let p = split(&k)?;
            anyhow::ensure!(p.len() == 3, "malformed rollout key");
            d.rollouts.push((AppId::parse(&p[0])?, Version::parse(&p[1])?, ChannelName::parse(&p[2])?, decode(&v)?));
        }
        for kv in self.tree(Tree::Tokens).iter() {
            let (k, v) = kv?;
            d.tokens.push((String::from_utf8(k.to_vec())?, decode(&v)?));
        }
        for v in self.tree(Tree::Audit).iter().values() {
            let record: AuditRecord = decode(&v?)?;
            d.audit.push((record.seq(), record));
        }
        d.bootstrapped = self.is_bootstrapped()?;
        d.feedback = self.load_feedback()?;
        d.adoption = self.load_adoption()?;
        d.feedback_log = self.load_feedback_log()?.0;
        for kv in self.tree(Tree::Secrets).iter() {
            let (k, v) = kv?;
            d.secrets.push((String::from_utf8(k.to_vec())?, unframed(&v)?));
        }
        Ok(d.sorted())
    }

    /// The secret stored under `name`, if any.
    pub fn secret(&self, name: &str) -> anyhow::Result<Option<Vec<u8>>> {
        self.tree(Tree::Secrets).get(name)?.map(|v| unframed(&v)).transpose()
    }

    /// Stores `value` under `name` if `expected` is what is stored now (`None`: nothing), and
    /// flushes; answers whether it was stored.
    pub async fn swap_secret(&self, name: &str, expected: Option<&[u8]>, value: &[u8]) -> anyhow::Result<bool> {
        let tree = self.tree(Tree::Secrets);
        let old = expected.map(|e| framed(e.to_vec()));
        let swapped = tree.compare_and_swap(name, old, Some(framed(value.to_vec())))?.is_ok();
        self.db.flush_async().await.context("flushing the database")?;
        Ok(swapped)
    }

    /// True once the first admin token was made. Revoking every token later does not make
    /// the data dir fresh again: nobody gets a new admin token by deleting the others.
    pub fn is_bootstrapped(&self) -> anyhow::Result<bool> {
        Ok(self.tree(Tree::Meta).contains_key(key(&["bootstrapped"]))?)
    }
}

/// What a change does to the feedback log's file, taken out of the change (sled's transaction
/// writes the rest).
struct LogWrites {
    /// Entries to append.
    appends: Vec<(u64, Vec<u8>)>,
    /// The change is a checkpoint: once sled's transaction (which records where the log now
    /// starts) is stored, the file is emptied.
    checkpoint: bool,
}

impl LogWrites {
    /// Empties the file after a checkpoint, then appends (write and fdatasync).
    fn write(&self, file: &FeedbackLog) -> anyhow::Result<()> {
        if self.checkpoint {
            // What the file holds is covered (a crash before it is emptied only leaves
            // entries that are skipped).
            if let Err(e) = file.clear() {
                tracing::warn!(error = format!("{e:#}"), "the feedback log was not emptied; its entries are skipped");
            }
        }
        if self.appends.is_empty() {
            return Ok(());
        }
        let entries: Vec<(u64, &[u8])> = self.appends.iter().map(|(seq, e)| (*seq, e.as_slice())).collect();
        file.append(&entries)
    }
}

/// Takes the feedback log's appends out of `change`.
fn split_log(mut change: Change) -> (Change, LogWrites) {
    let mut appends = Vec::new();
    change.ops.retain_mut(|op| match op {
        Op::FeedbackLog(seq, entry) => {
            appends.push((*seq, std::mem::take(entry)));
            false
        }
        _ => true,
    });
    let checkpoint = change.ops.iter().any(|op| matches!(op, Op::RemoveFeedbackLog(..)));
    (change, LogWrites { appends, checkpoint })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Token;
    use crate::snapshot::AppSettings;
    use halftone_channels::wire::Role;

    /// Opens a data dir again right after a handle on it was dropped: sled lets go of its
    /// file lock only once its own threads are done with their last job, which on a busy
    /// machine can come after the drop returns.
    fn again<T, E: std::fmt::Display>(open: impl Fn() -> Result<T, E>) -> Result<T, E> {
        for _ in 0..200 {
            match open() {
                Err(e) if format!("{e:#}").contains("could not acquire lock") => {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                }
                other => return other,
            }
        }
        open()
    }

    fn token() -> Token {
        Token { name: "a".parse().unwrap(), role: Role::Admin, apps: vec![], secret_sha256: "x".into() }
    }

    #[test]
    fn values_carry_a_format_byte() {
        let r = TokenRecord::from(&token());
        let bytes = encode(&r);
        assert_eq!(bytes[0], FORMAT_V1);
        assert_eq!(decode::<TokenRecord>(&bytes).unwrap(), r);
        let mut wrong = bytes.clone();
        wrong[0] = 9;
        assert!(decode::<TokenRecord>(&wrong).unwrap_err().to_string().contains("unknown storage format 9"));
    }

    #[tokio::test]
    async fn committed_changes_are_read_back_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let app = AppId::parse("notes").unwrap();
        let settings = AppSettings {
            display_name: "Notes".parse().unwrap(),
            keys: vec![],
            channels: vec![],
            key_documents: vec![],
            codepush_keys: vec![],
            metrics: Default::default(),
        };
        {
            let store = again(|| SledStore::open(dir.path())).unwrap();
            assert!(!store.is_bootstrapped().unwrap());
            let mut c = Change::default();
            c.put_app(&app, &settings);
            c.put_token("t1", &token());
            c.audit(AuditEntry {
                seq: 0,
                at_ms: 1,
                actor: "a".into(),
                action: "app.create".into(),
                app: Some(app.clone()),
                subject: "notes".into(),
                before: None,
                after: None,
            });
            store.commit(c).await.unwrap();
        }
        let store = again(|| SledStore::open(dir.path())).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.apps, [(app.clone(), settings)]);
        assert_eq!(loaded.tokens, [("t1".to_owned(), token())]);
        assert_eq!(store.audit(&app).unwrap().len(), 1);
        let mut c = Change::default();
        c.remove_token("t1").mark_bootstrapped();
        store.commit(c).await.unwrap();
        assert!(store.load().unwrap().tokens.is_empty());
        assert!(store.is_bootstrapped().unwrap());
    }

    fn log_change(seqs: &[u64]) -> Change {
        let mut c = Change::default();
        for seq in seqs {
            c.append_feedback_log(*seq, format!("entry {seq}").into_bytes());
        }
        c
    }

    fn logged(store: &SledStore) -> (Vec<u64>, u64) {
        let (entries, next) = store.load_feedback_log().unwrap();
        for (seq, bytes) in &entries {
            assert_eq!(bytes, format!("entry {seq}").as_bytes());
        }
        (entries.into_iter().map(|(seq, _)| seq).collect(), next)
    }

    /// The log is a file beside sled: appended entries are read back after reopening; a
    /// checkpoint stores where the log starts, so entries it covers never count again, even
    /// when the file was not emptied (a crash right after the checkpoint), and the numbering
    /// goes on above them.
    #[tokio::test]
    async fn a_checkpoint_covers_the_logged_entries_and_numbering_goes_on_above_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = again(|| SledStore::open(dir.path())).unwrap();
        assert_eq!(logged(&store), (vec![], 0));
        store.commit(log_change(&[0])).await.unwrap();
        store.commit(log_change(&[1, 2])).await.unwrap();
        drop(store);
        let store = again(|| SledStore::open(dir.path())).unwrap();
        assert_eq!(logged(&store), (vec![0, 1, 2], 3));

        let mut checkpoint = Change::default();
        checkpoint.remove_feedback_log(0, 2);
        store.commit(checkpoint).await.unwrap();
        assert_eq!(logged(&store), (vec![], 3));
        assert_eq!(std::fs::metadata(FeedbackLog::path_in(dir.path())).unwrap().len(), 0, "emptied");
        // As if the file had not been emptied: the covered entries are skipped.
        store.log.append(&[(1, b"entry 1"), (2, b"entry 2")]).unwrap();
        store.commit(log_change(&[3])).await.unwrap();
        drop(store);
        let store = again(|| SledStore::open(dir.path())).unwrap();
        assert_eq!(logged(&store), (vec![3], 4));
    }

    /// Store format 3 kept the log in a sled tree: a data dir upgraded with entries in it
    /// replays them, numbers new entries above them, and the first checkpoint removes them.
    #[tokio::test]
    async fn the_log_a_format_3_data_dir_kept_in_sled_is_read_and_emptied_by_a_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        drop(again(|| SledStore::open(dir.path())).unwrap());
        {
            let db = again(|| sled::open(dir.path())).unwrap();
            db.open_tree("meta").unwrap().insert(key(&["format"]), encode(&3u64)).unwrap();
            let tree = db.open_tree("feedback_log").unwrap();
            for seq in [0u64, 1] {
                tree.insert(seq.to_be_bytes(), framed(format!("entry {seq}").into_bytes())).unwrap();
            }
            db.flush().unwrap();
        }
        let store = again(|| SledStore::open(dir.path())).unwrap();
        assert_eq!(logged(&store), (vec![0, 1], 2));
        store.commit(log_change(&[2])).await.unwrap();
        assert_eq!(logged(&store), (vec![0, 1, 2], 3));
        let mut checkpoint = Change::default();
        checkpoint.remove_feedback_log(0, 2);
        store.commit(checkpoint).await.unwrap();
        assert!(store.tree(Tree::FeedbackLog).is_empty());
        assert_eq!(logged(&store), (vec![], 3));
    }

    #[test]
    fn a_data_dir_of_a_newer_store_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        drop(again(|| SledStore::open(dir.path())).unwrap());
        {
            let db = again(|| sled::open(dir.path())).unwrap();
            db.open_tree("meta").unwrap().insert(key(&["format"]), encode(&(FORMAT + 1))).unwrap();
            db.flush().unwrap();
        }
        let e = again(|| SledStore::open(dir.path())).err().expect("a newer format is refused").to_string();
        assert!(e.contains(&format!("store format {}", FORMAT + 1)) && e.contains("newer Halftone"), "{e}");
    }

    #[test]
    fn an_older_data_dir_is_marked_with_this_format_so_older_binaries_refuse_it() {
        let dir = tempfile::tempdir().unwrap();
        drop(again(|| SledStore::open(dir.path())).unwrap());
        let format = |dir: &Path| -> u64 {
            let db = again(|| sled::open(dir)).unwrap();
            decode(&db.open_tree("meta").unwrap().get(key(&["format"])).unwrap().unwrap()).unwrap()
        };
        {
            let db = again(|| sled::open(dir.path())).unwrap();
            db.open_tree("meta").unwrap().insert(key(&["format"]), encode(&1u64)).unwrap();
            db.flush().unwrap();
        }
        assert_eq!(format(dir.path()), 1);
        drop(again(|| SledStore::open(dir.path())).unwrap());
        assert_eq!(format(dir.path()), FORMAT);
    }

    /// Data dirs written before the store had its own record types hold the same JSON: they
    /// load unchanged.
    #[test]
    fn records_read_what_earlier_releases_wrote() {
        let rollout = r#"{"spec":{"basis_points":500,"salt":"notes:1.1.0","stickiness":"device","allow":["qa-1"],
            "deny":[],"rules":[{"kind":"os_in","values":["linux"]}],"state":"active","interactive_bypass":false,
            "schedule":{"steps":[{"basis_points":500,"hold_s":60},{"basis_points":10000,"hold_s":0}]},
            "gate":{"max_install_failure_rate":0.05,"min_sample":50,"action":"halt"}},"revision":3,
            "clock":{"since_ms":7}}"#;
        let record: RolloutRecord = serde_json::from_str(rollout).unwrap();
        let (r, meta) = record.clone().into_rollout("1.1.0".parse().unwrap(), "stable".parse().unwrap()).unwrap();
        assert_eq!((r.percent.basis_points(), r.rules.len(), r.allow.iter().count()), (500, 1, 1));
        assert_eq!((meta.revision, meta.clock.since_ms), (3, 7));
        assert_eq!(r.schedule.as_ref().unwrap().steps().len(), 2);
        assert_eq!(r.gate.as_ref().unwrap().min_sample, 50);
        // Written back, it is the same record (so an older binary reads it too).
        assert_eq!(RolloutRecord::new(&r, meta), record);

        let app = r#"{"display_name":"Notes","keys":[{"id":"k1","public_key":"ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c"}],
            "channels":[{"name":"canary","rank":400}]}"#;
        let settings: AppSettings = serde_json::from_str::<AppRecord>(app).unwrap().try_into().unwrap();
        assert_eq!((settings.keys.len(), settings.channels[0].1), (1, 400));
        assert_eq!(
            serde_json::to_value(AppRecord::from(&settings)).unwrap(),
            serde_json::from_str::<serde_json::Value>(app).unwrap()
        );
        let sig = "f0229755b3b18e316f943b8a283a7f69655b5b96ecd6c06a0104481af677e65077b4fe1fdde5d84e9ec8650bf5384d2d3ec31070cb65138487185571e28d1707";
        let release = format!(
            r#"{{"spec":{{"version":"1.2.3","notes":"n","critical":false,"artifacts":[{{"os":"windows","arch":"x86_64",
            "sha256":"2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824","size":5,"signature":"{sig}",
            "key_id":"k1"}}]}},"published_at_ms":9}}"#
        );
        let record: ReleaseRecord = serde_json::from_str(&release).unwrap();
        let r = Release::try_from(record.clone()).unwrap();
        assert_eq!((r.version().to_string(), r.artifacts().len()), ("1.2.3".to_owned(), 1));
        assert_eq!(ReleaseRecord::new(&r, 9), record);

        let token = r#"{"name":"ci","role":"publisher","apps":["notes"],"secret_sha256":"ab","added_later":1}"#;
        let t: Token = serde_json::from_str::<TokenRecord>(token).unwrap().into();
        assert_eq!((t.name.as_str(), t.role, t.apps.len()), ("ci", Role::Publisher, 1));
    }

    /// sled's own threads (its log flusher, and the seven threads of its I/O pool, which stay
    /// for the life of the process) are the background, whichever thread opens the store. The
    /// pool is made once per process, so the store is opened in a process of its own (this
    /// test binary again, running [`sled_threads_of_a_fresh_process`]) from a thread at full
    /// priority, and its first commit comes from one too, as an HTTP worker's would.
    #[cfg(target_os = "linux")]
    #[test]
    fn sleds_threads_run_at_the_background_priority() {
        let dir = tempfile::tempdir().unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "store::sled::tests::sled_threads_of_a_fresh_process", "--ignored", "--nocapture"])
            .env(CHILD, dir.path().join("db"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
    }

    /// Where [`sleds_threads_run_at_the_background_priority`]'s child opens the store.
    #[cfg(target_os = "linux")]
    const CHILD: &str = "HALFTONE_TEST_SLED_THREADS_DIR";

    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "run by sleds_threads_run_at_the_background_priority in a process of its own"]
    fn sled_threads_of_a_fresh_process() {
        let Some(dir) = std::env::var_os(CHILD) else { return };
        let store = SledStore::open(Path::new(&dir)).unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut c = Change::default();
        c.put_token("t1", &token());
        runtime.block_on(store.commit(c)).unwrap();
        let nice = |tid: i32| rustix::process::getpriority_process(rustix::process::Pid::from_raw(tid)).unwrap();
        let me = nice(rustix::thread::gettid().as_raw_nonzero().get());
        // The pool starts its threads one after another: on a busy machine the last may not be
        // running yet when the commit returns.
        let started = std::time::Instant::now();
        let seen = loop {
            let mut seen = Vec::new();
            for task in std::fs::read_dir("/proc/self/task").unwrap() {
                let task = task.unwrap();
                let Ok(comm) = std::fs::read_to_string(task.path().join("comm")) else { continue };
                let comm = comm.trim().to_owned();
                // The pool's first seven are its lasting ones; later ones come and go with load.
                let lasting = (0..7).any(|i| comm == format!("sled-io-{i}"));
                if lasting || comm == "log flusher" {
                    let tid: i32 = task.file_name().to_str().unwrap().parse().unwrap();
                    seen.push((comm, nice(tid)));
                }
            }
            let pool = seen.iter().filter(|(c, _)| c.starts_with("sled-io-")).count();
            if pool == 7 || started.elapsed() > std::time::Duration::from_secs(10) {
                break seen;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        assert!(seen.iter().filter(|(c, _)| c.starts_with("sled-io-")).count() == 7, "{seen:?}");
        let want = crate::background::NICE.max(me);
        assert!(seen.iter().all(|(_, n)| *n == want), "every one at nice {want}: {seen:?}");
    }
}
