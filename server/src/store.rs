//! Durable state in sled: apps, releases, rollouts, tokens and the audit log.
//!
//! The on-disk encoding is private to this module: every value is one format byte
//! ([`FORMAT_V1`]) followed by JSON of a record type defined here. A [`Change`] is written
//! in one sled transaction across all trees and then flushed (`flush_async`) before the
//! caller acknowledges it, so what was answered with a 2xx survives `kill -9`.
//!
//! Keys: `apps`: app id; `releases`: app ‖ 0 ‖ version; `rollouts`: app ‖ 0 ‖ version ‖ 0 ‖
//! channel; `tokens`: token id; `audit`: app ‖ 0 ‖ sequence (u64 big-endian), and 0 ‖ sequence
//! for server-wide entries (tokens).

use std::path::Path;

use anyhow::Context as _;
use halftone_channels::wire::{AuditEntry, ChannelSpec, KeySpec, ReleaseSpec, Role, RolloutSpec};
use halftone_channels::{AppId, ChannelName, DisplayName, ScheduleClock, TokenName, Version};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use sled::Transactional as _;
use sled::transaction::{ConflictableTransactionError, TransactionError};

/// The format byte in front of every stored value.
const FORMAT_V1: u8 = 1;

/// An app's settings as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Human name.
    pub display_name: DisplayName,
    /// Trusted keys.
    pub keys: Vec<KeySpec>,
    /// Custom channels.
    pub channels: Vec<ChannelSpec>,
}

/// A release as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// Its content, exactly as published.
    pub spec: ReleaseSpec,
    /// When it was published (ms since the epoch).
    pub published_at_ms: u64,
}

/// A rollout as stored, with the revision its ETag is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutRecord {
    /// Its settings.
    pub spec: RolloutSpec,
    /// Bumped on every change; the ETag is `"r<revision>"`.
    pub revision: u64,
    /// When the current step began (schedules hold from here).
    #[serde(default)]
    pub clock: ScheduleClock,
}

/// An admin token as stored: the secret only as a SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Label.
    pub name: TokenName,
    /// Role.
    pub role: Role,
    /// Apps, for publishers.
    pub apps: Vec<AppId>,
    /// SHA-256 of the secret, hex.
    pub secret_sha256: String,
}

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
}

/// A set of writes committed atomically by [`Store::commit`].
#[derive(Default)]
pub struct Change {
    puts: Vec<(Tree, Vec<u8>, Vec<u8>)>,
    removes: Vec<(Tree, Vec<u8>)>,
    audit: Vec<AuditEntry>,
}

impl Change {
    /// Stores an app.
    pub fn put_app(&mut self, app: &AppId, r: &AppRecord) -> &mut Self {
        self.puts.push((Tree::Apps, key(&[app.as_str()]), encode(r)));
        self
    }
    /// Stores a release.
    pub fn put_release(&mut self, app: &AppId, r: &ReleaseRecord) -> &mut Self {
        self.puts.push((Tree::Releases, key(&[app.as_str(), &r.spec.version.to_string()]), encode(r)));
        self
    }
    /// Stores a rollout.
    pub fn put_rollout(&mut self, app: &AppId, v: &Version, ch: &ChannelName, r: &RolloutRecord) -> &mut Self {
        self.puts.push((Tree::Rollouts, key(&[app.as_str(), &v.to_string(), ch.as_str()]), encode(r)));
        self
    }
    /// Stores a token.
    pub fn put_token(&mut self, id: &str, r: &TokenRecord) -> &mut Self {
        self.puts.push((Tree::Tokens, key(&[id]), encode(r)));
        self
    }
    /// Deletes a token.
    pub fn remove_token(&mut self, id: &str) -> &mut Self {
        self.removes.push((Tree::Tokens, key(&[id])));
        self
    }
    /// Records that the data dir's first admin token was made (it is made only once).
    pub fn mark_bootstrapped(&mut self) -> &mut Self {
        self.puts.push((Tree::Meta, key(&["bootstrapped"]), encode(&true)));
        self
    }
    /// Stores the (already encoded) figures of a release on a channel.
    pub fn put_feedback(&mut self, app: &AppId, v: &Version, ch: &ChannelName, json: Vec<u8>) -> &mut Self {
        self.puts.push((Tree::Feedback, key(&[app.as_str(), &v.to_string(), ch.as_str()]), framed(json)));
        self
    }
    /// Stores the (already encoded) adoption sketch of one window.
    pub fn put_adoption(
        &mut self,
        app: &AppId,
        ch: &ChannelName,
        v: &Version,
        window: u64,
        json: Vec<u8>,
    ) -> &mut Self {
        self.puts.push((Tree::Adoption, adoption_key(app, ch, v, window), framed(json)));
        self
    }
    /// Deletes an adoption window.
    pub fn remove_adoption(&mut self, app: &AppId, ch: &ChannelName, v: &Version, window: u64) -> &mut Self {
        self.removes.push((Tree::Adoption, adoption_key(app, ch, v, window)));
        self
    }
    /// Adds `reasons[i]` as `reason` to the `after` of the i-th audit entry (why a change was
    /// made: a tripped gate's figures).
    pub fn annotate_audit(&mut self, reasons: &[String]) -> &mut Self {
        for (e, why) in self.audit.iter_mut().zip(reasons) {
            e.after = Some(serde_json::json!({ "rollout": e.after.take(), "reason": why }));
        }
        self
    }
    /// Appends an audit entry (its `seq` is assigned at commit).
    pub fn audit(&mut self, e: AuditEntry) -> &mut Self {
        self.audit.push(e);
        self
    }
}

/// Everything stored, read at start-up.
#[derive(Default)]
pub struct Loaded {
    /// Apps.
    pub apps: Vec<(AppId, AppRecord)>,
    /// Releases by app.
    pub releases: Vec<(AppId, ReleaseRecord)>,
    /// Rollouts by app, version and channel.
    pub rollouts: Vec<(AppId, Version, ChannelName, RolloutRecord)>,
    /// Tokens by id.
    pub tokens: Vec<(String, TokenRecord)>,
}

/// The key of a release's figures on a channel: app, version, channel.
pub type FeedbackKey = (AppId, Version, ChannelName);
/// The key of an adoption window: app, channel, version, window number.
pub type AdoptionKey = (AppId, ChannelName, Version, u64);

/// The sled database.
pub struct Store {
    db: sled::Db,
    trees: [sled::Tree; 8],
}

impl Store {
    /// Opens (or creates) the database under `dir`.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let db = sled::Config::new()
            .path(dir)
            .mode(sled::Mode::LowSpace)
            // sled caches up to 1 GiB by default; the snapshot already holds what the
            // server reads, so the cache only serves writes and start-up.
            .cache_capacity(8 << 20)
            .open()
            .with_context(|| format!("opening the database in {}", dir.display()))?;
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
        ];
        Ok(Store { db, trees })
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
            out.apps.push((AppId::parse(std::str::from_utf8(&k)?)?, decode(&v)?));
        }
        for kv in self.tree(Tree::Releases).iter() {
            let (k, v) = kv?;
            let parts = split(&k)?;
            out.releases.push((AppId::parse(&parts[0])?, decode(&v)?));
        }
        for kv in self.tree(Tree::Rollouts).iter() {
            let (k, v) = kv?;
            let p = split(&k)?;
            anyhow::ensure!(p.len() == 3, "malformed rollout key");
            out.rollouts.push((AppId::parse(&p[0])?, Version::parse(&p[1])?, ChannelName::parse(&p[2])?, decode(&v)?));
        }
        for kv in self.tree(Tree::Tokens).iter() {
            let (k, v) = kv?;
            out.tokens.push((String::from_utf8(k.to_vec())?, decode(&v)?));
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
        self.tree(Tree::Audit).scan_prefix(audit_prefix(Some(app))).values().map(|v| decode(&v?)).collect()
    }

    /// The server-wide audit log (changes to no app, such as tokens'), oldest first.
    pub fn server_audit(&self) -> anyhow::Result<Vec<AuditEntry>> {
        self.tree(Tree::Audit).scan_prefix(audit_prefix(None)).values().map(|v| decode(&v?)).collect()
    }

    /// Writes `change` atomically and flushes it to disk. Only after this returns may the
    /// change be acknowledged.
    pub async fn commit(&self, change: Change) -> anyhow::Result<()> {
        let trees: Vec<&sled::Tree> = self.trees.iter().collect();
        let result: Result<(), TransactionError<()>> = trees[..].transaction(|tx| {
            for (t, k, v) in &change.puts {
                tx[*t as usize].insert(k.as_slice(), v.as_slice())?;
            }
            for (t, k) in &change.removes {
                tx[*t as usize].remove(k.as_slice())?;
            }
            for e in &change.audit {
                let audit = &tx[Tree::Audit as usize];
                let seq = audit.generate_id()?;
                let mut e = e.clone();
                e.seq = seq;
                let mut k = audit_prefix(e.app.as_ref());
                k.extend_from_slice(&seq.to_be_bytes());
                audit.insert(k, encode(&e))?;
            }
            Ok::<(), ConflictableTransactionError<()>>(())
        });
        result.map_err(|e| anyhow::anyhow!("database transaction failed: {e:?}"))?;
        self.db.flush_async().await.context("flushing the database")?;
        Ok(())
    }

    /// True once the first admin token was made. Revoking every token later does not make
    /// the data dir fresh again: nobody gets a new admin token by deleting the others.
    pub fn is_bootstrapped(&self) -> anyhow::Result<bool> {
        Ok(self.tree(Tree::Meta).contains_key(key(&["bootstrapped"]))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_carry_a_format_byte() {
        let r =
            TokenRecord { name: "n".parse().unwrap(), role: Role::Viewer, apps: vec![], secret_sha256: "00".into() };
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
        {
            let store = Store::open(dir.path()).unwrap();
            assert!(!store.is_bootstrapped().unwrap());
            let mut c = Change::default();
            c.put_app(&app, &AppRecord { display_name: "Notes".parse().unwrap(), keys: vec![], channels: vec![] });
            c.put_token(
                "t1",
                &TokenRecord { name: "a".parse().unwrap(), role: Role::Admin, apps: vec![], secret_sha256: "x".into() },
            );
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
        let store = Store::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.apps.len(), 1);
        assert_eq!(loaded.tokens[0].0, "t1");
        assert_eq!(store.audit(&app).unwrap().len(), 1);
        let mut c = Change::default();
        c.remove_token("t1").mark_bootstrapped();
        store.commit(c).await.unwrap();
        assert!(store.load().unwrap().tokens.is_empty());
        assert!(store.is_bootstrapped().unwrap());
    }
}
