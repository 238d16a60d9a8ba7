//! The bucket backend: objects `[<prefix>/]<sha256>` in an S3-compatible bucket, through the
//! `object_store` crate.
//!
//! An upload is an S3 multipart upload straight to the final key, hashed on the way. S3 shows
//! nothing under a key until the upload is *completed*, and it is completed only once every
//! byte has arrived and hashes to the claimed digest; otherwise it is aborted and its parts are
//! deleted. So there is no temporary key, no copy, and nothing a device could download before
//! it is whole and verified. (An upload cut by a crash of this server stays invisible; the
//! bucket's lifecycle rule for incomplete multipart uploads removes its parts.)
//!
//! Memory stays flat whatever the size: at most [`PARTS_IN_FLIGHT`] parts of
//! [`PART_BYTES`] are buffered at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::web::Bytes;
use anyhow::Context as _;
use futures_util::{Stream, StreamExt as _};
use halftone_channels::Sha256;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as ObjectPath;
use object_store::signer::{Method, Signer as _};
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt as _, RetryConfig, WriteMultipart};

use super::delivery::{Delivery, DownloadMode, Fetch, Redirect, StoredObject};
use super::location::S3Location;
use super::{Received, Stored, UploadError};

/// The size of one uploaded part (S3 wants at least 5 MiB for every part but the last).
pub const PART_BYTES: usize = 8 * 1024 * 1024;
/// Parts uploading at once; with the one being filled, the most an upload buffers.
pub const PARTS_IN_FLIGHT: usize = 2;
/// Sizes of objects known to exist. Content-addressed objects never change, so a size once
/// seen stays true; the map saves a `HEAD` per download. Cleared when it grows past this.
const KNOWN_MAX: usize = 100_000;

/// An S3-compatible bucket.
pub struct BucketStore {
    store: Arc<AmazonS3>,
    /// The same bucket with no retries and short timeouts, so that `/readyz` answers fast.
    probe: AmazonS3,
    prefix: Option<ObjectPath>,
    url: String,
    known: Known,
}

/// Sizes of objects seen, shared with the [`StoredObject`]s handed out (a read that finds the
/// object gone forgets it).
pub type Known = Arc<Mutex<HashMap<Sha256, u64>>>;

impl BucketStore {
    /// Builds the clients (no request is sent: see [`check`](Self::check)).
    pub fn open(location: &S3Location) -> anyhow::Result<Self> {
        let builder = || {
            let mut b = AmazonS3Builder::new().with_bucket_name(&location.bucket).with_region(&location.region);
            if let Some(endpoint) = &location.endpoint {
                b = b.with_endpoint(endpoint);
            }
            if let Some(c) = &location.credentials {
                b = b.with_access_key_id(&c.access_key_id).with_secret_access_key(c.secret_access_key.expose());
            }
            b
        };
        // No overall timeout: a download streamed to a slow device may take an hour. A read
        // that waits a minute for the store is a stall, though.
        // Plain http only when the endpoint says so (a local S3, a test).
        let http = location.endpoint.as_ref().is_some_and(|e| e.starts_with("http://"));
        let options = ClientOptions::new()
            .with_allow_http(http)
            .with_timeout_disabled()
            .with_connect_timeout(Duration::from_secs(5))
            .with_read_timeout(Duration::from_secs(60));
        let retry = RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(15), ..RetryConfig::default() };
        let store = builder().with_client_options(options).with_retry(retry).build().context("configuring S3")?;
        let probe_options = ClientOptions::new()
            .with_allow_http(http)
            .with_timeout(Duration::from_secs(3))
            .with_connect_timeout(Duration::from_secs(2));
        let no_retry = RetryConfig { max_retries: 0, retry_timeout: Duration::from_secs(3), ..RetryConfig::default() };
        let probe =
            builder().with_client_options(probe_options).with_retry(no_retry).build().context("configuring S3")?;
        let prefix = (!location.prefix.is_empty())
            .then(|| ObjectPath::parse(&location.prefix))
            .transpose()
            .context("the key prefix")?;
        Ok(BucketStore { store: Arc::new(store), probe, prefix, url: location.url(), known: Known::default() })
    }

    /// `s3://bucket/prefix`.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn key(&self, sha: &Sha256) -> ObjectPath {
        match &self.prefix {
            Some(p) => p.clone().join(sha.to_string()),
            None => ObjectPath::from(sha.to_string()),
        }
    }

    fn remember(&self, sha: Sha256, size: u64) {
        let mut known = self.known.lock().expect("no panic while holding the lock");
        if known.len() >= KNOWN_MAX {
            known.clear();
        }
        known.insert(sha, size);
    }

    /// The size of the object of `sha`: `None` when there is none, an error when the store did
    /// not answer.
    pub async fn stat(&self, sha: &Sha256) -> anyhow::Result<Option<u64>> {
        if let Some(size) = self.known.lock().expect("no panic while holding the lock").get(sha) {
            return Ok(Some(*size));
        }
        self.head(sha).await
    }

    /// [`stat`](Self::stat) asking the store itself.
    async fn head(&self, sha: &Sha256) -> anyhow::Result<Option<u64>> {
        match self.store.head(&self.key(sha)).await {
            Ok(meta) => {
                self.remember(*sha, meta.size);
                Ok(Some(meta.size))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context(format!("looking up {sha} in {}", self.url))),
        }
    }

    /// Lists a prefix that holds nothing: answered only when the bucket exists and the
    /// credentials are good.
    pub async fn check(&self) -> anyhow::Result<()> {
        let probe = match &self.prefix {
            Some(p) => p.clone().join("readyz-probe"),
            None => ObjectPath::from("readyz-probe"),
        };
        self.probe
            .list_with_delimiter(Some(&probe))
            .await
            .with_context(|| format!("the object store {} does not answer", self.url))?;
        Ok(())
    }

    /// How to answer a download of `sha`.
    pub async fn deliver(&self, sha: &Sha256, fetch: Fetch, mode: &DownloadMode) -> anyhow::Result<Delivery> {
        let Some(size) = self.stat(sha).await? else {
            return Ok(Delivery::Missing);
        };
        let key = self.key(sha);
        Ok(match (mode, fetch) {
            (DownloadMode::Stream, _) | (_, Fetch::Head) => {
                Delivery::Object(StoredObject::new(self.store.clone(), key, *sha, size, self.known.clone()))
            }
            (DownloadMode::Redirect { ttl }, Fetch::Get) => {
                let url = self
                    .store
                    .signed_url(Method::GET, &key, *ttl)
                    .await
                    .with_context(|| format!("signing a URL for {sha}"))?;
                Delivery::Redirect(Redirect { location: url.to_string(), cache_control: "no-store" })
            }
            (DownloadMode::Cdn(base), Fetch::Get) => Delivery::Redirect(Redirect {
                location: format!("{}/{sha}", base.as_str()),
                cache_control: "public, max-age=3600",
            }),
        })
    }

    /// Streams `body` into a multipart upload to the final key, completed only when the bytes
    /// hash to `claimed` and fit in `limit`, aborted otherwise. A stored digest is a no-op.
    pub async fn put<E: std::fmt::Display + 'static>(
        &self,
        claimed: Sha256,
        mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
        limit: u64,
    ) -> Result<Stored, UploadError> {
        let unavailable = |e: object_store::Error, doing: &str| {
            UploadError::Unavailable(anyhow::Error::new(e).context(format!("{doing} {claimed} in {}", self.url)))
        };
        // The store itself is asked, not the sizes seen: an upload must not be skipped for an
        // object that someone has since deleted from the bucket.
        if let Some(size) = self.head(&claimed).await.map_err(UploadError::Unavailable)? {
            return Ok(Stored { size, created: false });
        }
        let upload = self.store.put_multipart(&self.key(&claimed)).await.map_err(|e| unavailable(e, "starting"))?;
        let mut parts = WriteMultipart::new_with_chunk_size(upload, PART_BYTES);
        let received = async {
            let mut received = Received::new(limit);
            while let Some(chunk) = body.next().await {
                let chunk = received.take(chunk)?;
                parts.wait_for_capacity(PARTS_IN_FLIGHT).await.map_err(|e| unavailable(e, "uploading"))?;
                parts.put(chunk);
            }
            received.check(claimed)
        }
        .await;
        match received {
            Ok(size) => {
                // Completing is what makes the object visible, all at once.
                parts.finish().await.map_err(|e| unavailable(e, "completing"))?;
                self.remember(claimed, size);
                Ok(Stored { size, created: true })
            }
            Err(refused) => {
                if let Err(e) = parts.abort().await {
                    // Invisible either way; the lifecycle rule removes the parts.
                    tracing::warn!(error = %e, sha256 = %claimed, "aborting a refused upload failed");
                }
                Err(refused)
            }
        }
    }
}
