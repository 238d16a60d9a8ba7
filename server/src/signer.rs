//! The online answer keys and the batch signer: every check-in answer leaves with a proof
//! (`Halftone-Answer-Proof`) that binds its exact bytes to the app, the device, the request's
//! nonce and an expiry (`channels::answer` defines the messages).
//!
//! One ed25519 signature costs more CPU than a whole check-in, so answers are not signed one by
//! one: a check-in adds its leaf to its HTTP worker's pending batch and waits. The first leaf of
//! a batch spawns the flush on the same worker, which yields once: every check-in the worker's
//! event loop has ready in that turn adds its leaf first. Then it builds one Merkle tree per
//! key, signs each root once and hands every answer its proof header. Like a group commit, the
//! batch grows with the load (one turn: tens of microseconds, never a timer), no thread is
//! woken across cores, and nothing here touches disk or the store.
//!
//! The keys are the server's own (secret `answer-keys` in the store, made at first start,
//! shared by every replica), never release keys: a stolen answer key can at most withhold
//! updates until its answers expire. The newest key signs unless the device pins an older one
//! the server still holds, so a key can be rotated while apps that pin the old one are out.

use std::cell::RefCell;
use std::sync::Arc;

use arc_swap::ArcSwap;
use ed25519_dalek::SigningKey;
use halftone_channels::wire::{AnswerKeyView, AnswerKeys};
use halftone_channels::{AnswerFields, AppId, Batch, DeviceId, KeyId, MAX_BATCH, Node, Nonce, PublicKey};

use crate::store::{AnswerKeysRecord, Store};

/// The most keys held at once (the current one and those still pinned by apps in the field).
pub const MAX_ANSWER_KEYS: usize = 4;

/// One answer key.
struct AnswerKey {
    id: KeyId,
    signing: SigningKey,
    public: PublicKey,
    created_ms: u64,
}

impl AnswerKey {
    fn new(seed: [u8; 32], created_ms: u64) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let public = PublicKey::from_bytes(signing.verifying_key().to_bytes()).expect("a fresh key is valid");
        AnswerKey { id: halftone_channels::answer_key_id(&public), signing, public, created_ms }
    }
}

/// The keys held, oldest first: the last one signs unless a device pins another.
struct KeySet(Vec<Arc<AnswerKey>>);

impl KeySet {
    fn from_record(record: &AnswerKeysRecord) -> anyhow::Result<Self> {
        anyhow::ensure!(!record.keys.is_empty(), "the stored answer keys are empty");
        Ok(KeySet(record.keys.iter().map(|k| Arc::new(AnswerKey::new(k.seed, k.created_ms))).collect()))
    }

    fn pick(&self, pinned: Option<&KeyId>) -> &Arc<AnswerKey> {
        pinned.and_then(|id| self.0.iter().find(|k| &k.id == id)).unwrap_or_else(|| self.0.last().expect("not empty"))
    }

    fn view(&self) -> AnswerKeys {
        let current = self.0.last().map(|k| k.id.clone());
        AnswerKeys {
            keys: self
                .0
                .iter()
                .map(|k| AnswerKeyView {
                    key_id: k.id.clone(),
                    public_key: k.public,
                    created_ms: k.created_ms,
                    current: Some(&k.id) == current.as_ref(),
                })
                .collect(),
        }
    }
}

/// A leaf waiting for its batch.
struct Job {
    leaf: Node,
    key: Arc<AnswerKey>,
    expires_s: u64,
    reply: tokio::sync::oneshot::Sender<String>,
}

/// Signs check-in answers in batches (see the module documentation).
pub struct Signer {
    keys: ArcSwap<KeySet>,
    /// False when answers go unsigned (`--answer-signing off`).
    enabled: bool,
    ttl_s: u64,
}

/// The batch was dropped before it was signed (the worker is shutting down).
#[derive(Debug, thiserror::Error)]
#[error("the answer signer stopped")]
pub struct SignerStopped;

thread_local! {
    /// This HTTP worker's leaves waiting for the flush of the current turn.
    static PENDING: RefCell<Vec<Job>> = const { RefCell::new(Vec::new()) };
}

impl Signer {
    /// Loads the answer keys (making the first one if the store has none); answers are signed
    /// when `enabled`.
    pub async fn start(store: &Store, now_ms: u64, enabled: bool, ttl_s: u64) -> anyhow::Result<Self> {
        let record = match store.answer_keys().await? {
            Some(r) => r,
            None => {
                let first = AnswerKeysRecord::with_new_key(&AnswerKeysRecord::default(), now_ms);
                store.swap_answer_keys(None, &first).await?;
                // Another replica may have won the race: read what is stored.
                store.answer_keys().await?.ok_or_else(|| anyhow::anyhow!("the answer keys vanished"))?
            }
        };
        let keys = ArcSwap::from_pointee(KeySet::from_record(&record)?);
        Ok(Signer { keys, enabled, ttl_s })
    }

    /// The public keys, for `GET /v1/answer-keys`.
    pub fn view(&self) -> AnswerKeys {
        self.keys.load().view()
    }

    /// Re-reads the stored keys (after a rotation here or on another replica).
    pub async fn reload(&self, store: &Store) -> anyhow::Result<()> {
        if let Some(record) = store.answer_keys().await? {
            let fresh = KeySet::from_record(&record)?;
            let same = {
                let now = self.keys.load();
                now.0.len() == fresh.0.len() && now.0.iter().zip(&fresh.0).all(|(a, b)| a.id == b.id)
            };
            if !same {
                self.keys.store(Arc::new(fresh));
            }
        }
        Ok(())
    }

    /// The proof header for one answer, once its batch is signed; `None` when signing is off.
    /// Must run on an HTTP worker (a tokio `LocalSet`): the batch is the worker's own.
    pub async fn sign(&self, answer: Unsigned<'_>, now_s: u64) -> Result<Option<String>, SignerStopped> {
        if !self.enabled {
            return Ok(None);
        }
        let key = self.keys.load().pick(answer.pinned).clone();
        let expires_s = now_s + self.ttl_s;
        let leaf = halftone_channels::leaf(AnswerFields {
            app: answer.app,
            device: answer.device,
            nonce: answer.nonce,
            expires_s,
            body: answer.body,
        });
        let (reply, proof) = tokio::sync::oneshot::channel();
        let first = PENDING.with_borrow_mut(|pending| {
            pending.push(Job { leaf, key, expires_s, reply });
            pending.len() == 1
        });
        if first {
            tokio::task::spawn_local(flush());
        }
        proof.await.map(Some).map_err(|_| SignerStopped)
    }
}

/// What the signer needs of one answer.
#[derive(Debug, Clone, Copy)]
pub struct Unsigned<'a> {
    /// The app.
    pub app: &'a AppId,
    /// The device that asked.
    pub device: &'a DeviceId,
    /// Its nonce, if it sent one.
    pub nonce: Option<&'a Nonce>,
    /// The key it pins, if it named one.
    pub pinned: Option<&'a KeyId>,
    /// The answer's exact bytes.
    pub body: &'a [u8],
}

/// Signs the worker's pending batch once every check-in ready in this turn has joined it:
/// one tree and one signature per key in it.
async fn flush() {
    tokio::task::yield_now().await;
    let mut batch = PENDING.with_borrow_mut(std::mem::take);
    thread_local! {
        static BATCH_SIZE: metrics::Histogram = metrics::histogram!("halftone_answer_batch_size");
    }
    BATCH_SIZE.with(|h| h.record(batch.len() as f64));
    while !batch.is_empty() {
        let key = batch[0].key.clone();
        let (mut mine, rest): (Vec<Job>, Vec<Job>) = batch.into_iter().partition(|j| Arc::ptr_eq(&j.key, &key));
        batch = rest;
        while !mine.is_empty() {
            let later = mine.split_off(mine.len().min(MAX_BATCH));
            let signed = Batch::sign(mine.iter().map(|j| j.leaf).collect(), &key.signing);
            for (i, job) in mine.into_iter().enumerate() {
                // A check-in that gave up (its client went away) no longer listens: fine.
                let _ = job.reply.send(signed.proof_header(i, &key.id, job.expires_s));
            }
            mine = later;
        }
    }
}
