//! [`LocalArtifact`]: a build file, hashed before it is signed and uploaded.

use std::path::{Path, PathBuf};

use halftone_channels::Sha256;
use sha2::Digest as _;
use tokio::io::AsyncReadExt as _;

use crate::AdminError;

/// Read and upload files in chunks of this size: big enough to keep the link busy, small
/// enough to report progress smoothly.
pub(crate) const CHUNK: usize = 64 * 1024;

/// A local file with its SHA-256 and size, ready to sign and upload. Only [`LocalArtifact::hash`]
/// builds one, so the digest always belongs to the file as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalArtifact {
    path: PathBuf,
    sha256: Sha256,
    size: u64,
}

impl LocalArtifact {
    /// Reads the file once, streaming, to compute its digest and size.
    pub async fn hash(path: impl Into<PathBuf>) -> Result<Self, AdminError> {
        let path = path.into();
        let file_error = |error| AdminError::File { path: path.clone(), error };
        let mut file = tokio::fs::File::open(&path).await.map_err(file_error)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let mut size = 0u64;
        loop {
            let n = file.read(&mut buf).await.map_err(file_error)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            size += n as u64;
        }
        let sha256 = Sha256::from_bytes(hasher.finalize().into());
        Ok(LocalArtifact { path, sha256, size })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its SHA-256.
    pub fn sha256(&self) -> &Sha256 {
        &self.sha256
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashing_streams_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.bin");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let a = LocalArtifact::hash(&path).await.unwrap();
        assert_eq!(a.sha256(), &Sha256::digest(&data));
        assert_eq!(a.size(), 200_000);
        let e = LocalArtifact::hash(dir.path().join("missing")).await.unwrap_err();
        assert!(e.to_string().starts_with("could not read "), "{e}");
    }
}
