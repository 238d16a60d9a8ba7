//! Content-addressed artifacts: [`ArtifactStore`], over the backend the [`Config`] names:
//! a directory in the data dir (`dir`, the default) or an S3-compatible bucket (`bucket`,
//! through `object_store`).
//!
//! Either way, an upload streams while it is hashed and becomes visible under its digest only
//! when it is complete and the bytes have that digest; so the bytes under a digest's name
//! always have that digest, and a refused or cut upload leaves nothing. A download is
//! answered as the operator chose ([`DownloadMode`]): streamed by this server, or a redirect
//! to a pre-signed URL or a CDN; the store says how ([`Delivery`]), the handler only speaks
//! HTTP.

mod bucket;
mod delivery;
mod dir;
mod location;

use std::path::Path;

use actix_web::web::Bytes;
use anyhow::Context as _;
use futures_util::Stream;
use halftone_channels::Sha256;

pub use delivery::{CdnBase, Delivery, DownloadMode, Fetch, StoredObject};
pub use location::{ArtifactLocation, S3Credentials, S3Location, Secret};

use crate::config::Config;
use bucket::BucketStore;
use dir::DirStore;

/// What an upload has received so far: its size (refused past the limit) and its digest. Both
/// backends count and hash the body through it on the way to their storage.
pub(crate) struct Received {
    hasher: sha2::Sha256,
    size: u64,
    limit: u64,
}

impl Received {
    /// Nothing received yet, at most `limit` bytes allowed.
    pub(crate) fn new(limit: u64) -> Self {
        Received { hasher: sha2::Digest::new(), size: 0, limit }
    }

    /// Counts and hashes the next piece of the body; a broken body or one past the limit is
    /// refused.
    pub(crate) fn take<E: std::fmt::Display + 'static>(
        &mut self,
        chunk: Result<Bytes, E>,
    ) -> Result<Bytes, UploadError> {
        let chunk = chunk.map_err(|e| {
            let payload = (&e as &dyn std::any::Any).downcast_ref::<actix_web::error::PayloadError>();
            match payload.is_some_and(crate::http::body::is_deadline) {
                true => UploadError::TimedOut(e.to_string()),
                false => UploadError::Interrupted(e.to_string()),
            }
        })?;
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(UploadError::TooLarge(self.limit));
        }
        sha2::Digest::update(&mut self.hasher, &chunk);
        Ok(chunk)
    }

    /// The size received, if the bytes hash to `claimed`.
    pub(crate) fn check(self, claimed: Sha256) -> Result<u64, UploadError> {
        let actual = Sha256::from_bytes(sha2::Digest::finalize(self.hasher).into());
        if actual != claimed {
            return Err(UploadError::HashMismatch { claimed, actual });
        }
        Ok(self.size)
    }
}

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    /// The bytes hash to something else.
    #[error("the uploaded bytes have SHA-256 {actual}, not {claimed}")]
    HashMismatch {
        /// What the path said.
        claimed: Sha256,
        /// What the bytes are.
        actual: Sha256,
    },
    /// More bytes than allowed.
    #[error("the upload exceeds the limit of {0} bytes")]
    TooLarge(u64),
    /// The client's stream broke.
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// The client paused longer than the body deadline allows.
    #[error("the upload stalled: {0}")]
    TimedOut(String),
    /// The object store did not answer or refused us.
    #[error(transparent)]
    Unavailable(anyhow::Error),
    /// Our side failed.
    #[error(transparent)]
    Io(#[from] anyhow::Error),
}

/// The result of an upload.
#[derive(Debug)]
pub struct Stored {
    /// Bytes stored.
    pub size: u64,
    /// False when the file was already there.
    pub created: bool,
}

/// The artifact store of this server.
pub struct ArtifactStore {
    backend: Backend,
    downloads: DownloadMode,
}

enum Backend {
    Dir(DirStore),
    Bucket(BucketStore),
}

impl ArtifactStore {
    /// Opens the configured backend: creates the directory (and removes temp files left by a
    /// crash), or builds the S3 client (no request yet: [`check`](Self::check) asks).
    pub fn open(config: &Config) -> anyhow::Result<Self> {
        Self::at(&config.artifacts, &config.data_dir, config.artifact_downloads.clone())
    }

    /// The store at `location` (`<data_dir>/artifacts` for the data dir).
    pub fn at(location: &ArtifactLocation, data_dir: &Path, downloads: DownloadMode) -> anyhow::Result<Self> {
        let backend = match location {
            ArtifactLocation::DataDir => Backend::Dir(DirStore::open(&data_dir.join("artifacts"))?),
            ArtifactLocation::S3(location) => Backend::Bucket(BucketStore::open(location)?),
        };
        Ok(ArtifactStore { backend, downloads })
    }

    /// Copies every artifact of the data dir `from` into this store, each streamed and checked
    /// against its digest on the way in, then checks each is there with its size. Returns how
    /// many artifacts and bytes were copied.
    pub async fn copy_from_dir(&self, from: &Path) -> anyhow::Result<(usize, u64)> {
        let source = DirStore::open(&from.join("artifacts"))?;
        let files = source.list()?;
        for (sha, size) in &files {
            let file = tokio::fs::File::open(source.path(sha)).await?;
            let chunks = futures_util::stream::unfold(file, |mut file| async move {
                use tokio::io::AsyncReadExt as _;
                let mut buf = vec![0u8; 1 << 20];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(n) => {
                        buf.truncate(n);
                        Some((Ok::<_, std::io::Error>(Bytes::from(buf)), file))
                    }
                    Err(e) => Some((Err(e), file)),
                }
            });
            self.put(*sha, Box::pin(chunks), *size).await.with_context(|| format!("copying artifact {sha}"))?;
            let copied = self.size(sha).await?;
            anyhow::ensure!(copied == Some(*size), "artifact {sha} is not in {} after copying it", self.describe());
        }
        Ok((files.len(), files.iter().map(|(_, size)| size).sum()))
    }

    /// Where artifacts are, for messages: a directory or `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        match &self.backend {
            Backend::Dir(d) => d.path_of_dir().display().to_string(),
            Backend::Bucket(b) => b.url().to_owned(),
        }
    }

    /// The size of the stored artifact `sha`, if stored; an error when a bucket does not
    /// answer (the caller says 503, not "not uploaded").
    pub async fn size(&self, sha: &Sha256) -> anyhow::Result<Option<u64>> {
        match &self.backend {
            Backend::Dir(d) => Ok(d.size(sha).await),
            Backend::Bucket(b) => b.stat(sha).await,
        }
    }

    /// Streams `body` into the store under `claimed`, refusing more than `limit` bytes or
    /// bytes with another digest. A second upload of stored bytes is a no-op.
    pub async fn put<E: std::fmt::Display + 'static>(
        &self,
        claimed: Sha256,
        body: impl Stream<Item = Result<Bytes, E>> + Unpin,
        limit: u64,
    ) -> Result<Stored, UploadError> {
        match &self.backend {
            Backend::Dir(d) => d.put(claimed, body, limit).await,
            Backend::Bucket(b) => b.put(claimed, body, limit).await,
        }
    }

    /// How to answer a `GET` or `HEAD` of `sha`; an error when the object store does not
    /// answer.
    pub async fn deliver(&self, sha: &Sha256, fetch: Fetch) -> anyhow::Result<Delivery> {
        match &self.backend {
            Backend::Dir(d) => Ok(match d.size(sha).await {
                Some(_) => Delivery::File(d.path(sha)),
                None => Delivery::Missing,
            }),
            Backend::Bucket(b) => b.deliver(sha, fetch, &self.downloads).await,
        }
    }

    /// Every byte of the stored artifact `sha`, streamed (for checks at publish, not for
    /// devices); `None` when it is not stored.
    pub async fn read_all(
        &self,
        sha: &Sha256,
    ) -> anyhow::Result<Option<futures_util::stream::BoxStream<'static, anyhow::Result<Bytes>>>> {
        use futures_util::{StreamExt as _, TryStreamExt as _};
        match &self.backend {
            Backend::Dir(d) => {
                let file = match tokio::fs::File::open(d.path(sha)).await {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(e) => return Err(anyhow::Error::new(e).context(format!("opening artifact {sha}"))),
                };
                let chunks = futures_util::stream::try_unfold(file, |mut file| async move {
                    use tokio::io::AsyncReadExt as _;
                    let mut buf = vec![0u8; 256 * 1024];
                    let n = file.read(&mut buf).await?;
                    buf.truncate(n);
                    Ok::<_, anyhow::Error>((n > 0).then(|| (Bytes::from(buf), file)))
                });
                Ok(Some(chunks.boxed()))
            }
            Backend::Bucket(b) => match b.deliver(sha, Fetch::Head, &DownloadMode::Stream).await? {
                Delivery::Object(object) => {
                    Ok(Some(object.read(0..object.size()).await?.map_err(anyhow::Error::from).boxed()))
                }
                _ => Ok(None),
            },
        }
    }

    /// Whether the backend answers: the directory always does (the database shares its disk);
    /// a bucket must answer a listing within seconds.
    pub async fn check(&self) -> anyhow::Result<()> {
        match &self.backend {
            Backend::Dir(_) => Ok(()),
            Backend::Bucket(b) => b.check().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_data_dir_s_artifacts_are_copied_and_checked() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let source = ArtifactStore::at(&ArtifactLocation::DataDir, from.path(), DownloadMode::Stream).unwrap();
        let blobs: Vec<Vec<u8>> = vec![b"first build".to_vec(), vec![7u8; 3 << 20]];
        for b in &blobs {
            let body = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(b.clone()))]);
            source.put(Sha256::digest(b), body, u64::MAX).await.unwrap();
        }
        let target = ArtifactStore::at(&ArtifactLocation::DataDir, to.path(), DownloadMode::Stream).unwrap();
        let (files, bytes) = target.copy_from_dir(from.path()).await.unwrap();
        assert_eq!((files, bytes), (2, blobs.iter().map(|b| b.len() as u64).sum()));
        for b in &blobs {
            let copied = std::fs::read(to.path().join("artifacts").join(Sha256::digest(b).to_string())).unwrap();
            assert_eq!(&copied, b);
        }
        // A file whose bytes do not match its name is refused, not copied.
        std::fs::write(from.path().join("artifacts").join(Sha256::digest(b"x").to_string()), b"not x").unwrap();
        let e = target.copy_from_dir(from.path()).await.unwrap_err();
        assert!(format!("{e:#}").contains("copying artifact"), "{e:#}");
    }
}
