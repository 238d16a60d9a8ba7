//! The directory backend: a file lives at `<data>/artifacts/<sha256>`. An upload streams into
//! a temp file while hashing, and is renamed into place only when complete and its hash is the
//! one the uploader claimed; so a file under a digest's name always has that digest.

use std::path::{Path, PathBuf};

use actix_web::web::Bytes;
use anyhow::Context as _;
use futures_util::{Stream, StreamExt as _};
use halftone_channels::Sha256;
use tokio::io::AsyncWriteExt as _;

use super::{Received, Stored, UploadError};

/// The artifact directory.
pub struct DirStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl DirStore {
    /// Opens (creates) the directory and removes temp files left by a crash.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        let tmp = dir.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).with_context(|| format!("cleaning {}", tmp.display()))?;
        }
        std::fs::create_dir_all(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(DirStore { dir: dir.to_owned(), tmp })
    }

    /// The directory.
    pub fn path_of_dir(&self) -> &Path {
        &self.dir
    }

    /// Where the file of `sha` lives (whether or not it exists).
    pub fn path(&self, sha: &Sha256) -> PathBuf {
        self.dir.join(sha.to_string())
    }

    /// Every stored artifact with its size (temp files are not artifacts).
    pub fn list(&self) -> anyhow::Result<Vec<(Sha256, u64)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir).with_context(|| format!("listing {}", self.dir.display()))? {
            let entry = entry?;
            let name = entry.file_name();
            if let Some(sha) = name.to_str().and_then(|n| Sha256::parse(n).ok())
                && entry.file_type()?.is_file()
            {
                out.push((sha, entry.metadata()?.len()));
            }
        }
        out.sort();
        Ok(out)
    }

    /// The size of the stored file of `sha`, if stored.
    pub async fn size(&self, sha: &Sha256) -> Option<u64> {
        tokio::fs::metadata(self.path(sha)).await.ok().map(|m| m.len())
    }

    /// Streams `body` into the store under `claimed`, refusing more than `limit` bytes or
    /// bytes with another digest. A second upload of stored bytes is a no-op.
    pub async fn put<E: std::fmt::Display + 'static>(
        &self,
        claimed: Sha256,
        mut body: impl Stream<Item = Result<Bytes, E>> + Unpin,
        limit: u64,
    ) -> Result<Stored, UploadError> {
        let target = self.path(&claimed);
        if let Some(size) = self.size(&claimed).await {
            return Ok(Stored { size, created: false });
        }
        let tmp = self.tmp.join(format!("{claimed}.{}", uuid::Uuid::new_v4()));
        let result = async {
            let file = tokio::fs::File::create(&tmp).await.context("creating a temp file")?;
            let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
            let mut received = Received::new(limit);
            while let Some(chunk) = body.next().await {
                let chunk = received.take(chunk)?;
                out.write_all(&chunk).await.context("writing the temp file")?;
            }
            let size = received.check(claimed)?;
            out.flush().await.context("writing the temp file")?;
            let file = out.into_inner();
            file.sync_all().await.context("syncing the temp file")?;
            tokio::fs::rename(&tmp, &target).await.context("moving the artifact into place")?;
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || std::fs::File::open(dir)?.sync_all())
                .await
                .context("syncing the artifact directory")?
                .context("syncing the artifact directory")?;
            Ok(Stored { size, created: true })
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(&tmp).await;
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(parts: &[&'static [u8]]) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        futures_util::stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>())
    }

    #[tokio::test]
    async fn stores_only_bytes_with_the_claimed_digest() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::open(dir.path()).unwrap();
        let sha = Sha256::digest(b"hello world");
        let s = store.put(sha, body(&[b"hello ", b"world"]), 100).await.unwrap();
        assert_eq!((s.size, s.created), (11, true));
        assert_eq!(std::fs::read(store.path(&sha)).unwrap(), b"hello world");
        let again = store.put(sha, body(&[b"ignored"]), 100).await.unwrap();
        assert!(!again.created);

        let other = Sha256::digest(b"other");
        let e = store.put(other, body(&[b"not other"]), 100).await.unwrap_err();
        assert!(matches!(e, UploadError::HashMismatch { .. }));
        assert!(!store.path(&other).exists());
        let e = store.put(other, body(&[b"other"]), 3).await.unwrap_err();
        assert!(matches!(e, UploadError::TooLarge(3)));
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0, "temp files are removed");
    }
}
