//! Verification of a downloaded build, and [`VerifiedFile`], the proof that it passed.
//!
//! A complete download is checked for its signed size, its SHA-256 and the ed25519 signatures
//! (at least the threshold of distinct keys of the newest trusted key document) over the
//! signed message, which the SDK rebuilds from its own app id and the offered
//! version, os and arch: a genuine signature for another app, version or platform does not
//! verify. Then, against the watermark on disk, the version must still be admitted (newer than
//! the running version, not below the watermark). Only then is the file renamed into place.
//! Whatever fails is deleted. Verification does not raise the watermark: installing does
//! ([`Client::installed`](crate::Client::installed)).

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use halftone_channels::{AppId, KeyDocument, SignatureError, SignedFields, Version, signed_message};
use sha2::Digest;

use crate::delta::Delivery;
use crate::state::StateDir;
use crate::watermark::{Watermark, admit};
use crate::{Error, Rejection, Sha256, Update};

/// A downloaded build that passed every check: size, SHA-256, signature, version. Only
/// [`Client::download`](crate::Client::download) makes one, so holding a `VerifiedFile` means
/// the file at [`path`](Self::path) is the signed build (as long as nothing else writes there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedFile {
    path: PathBuf,
    version: Version,
    sha256: Sha256,
    delivery: Delivery,
}

impl VerifiedFile {
    /// Where the verified build is (the `dest` given to `download`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The build's version.
    pub fn version(&self) -> &Version {
        &self.version
    }

    /// The build's SHA-256.
    pub fn sha256(&self) -> &Sha256 {
        &self.sha256
    }

    /// How it came: whole, or patched from the running build, or whole after a patch failed
    /// (with why). The checks it passed are the same either way.
    pub fn delivery(&self) -> &Delivery {
        &self.delivery
    }

    /// The same file, noting how it came.
    pub(crate) fn delivered(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// The path, taking ownership.
    pub fn into_path(self) -> PathBuf {
        self.path
    }

    /// A file taken as verified, for the install tests.
    #[cfg(test)]
    pub(crate) fn for_tests(path: &Path, version: &str) -> Self {
        let sha256 = digest_file(path).expect("the test file is readable");
        VerifiedFile { path: path.to_owned(), version: version.parse().unwrap(), sha256, delivery: Delivery::Full }
    }
}

/// What a download is verified against. Borrowed from the client for one verification.
pub(crate) struct Verifier<'a> {
    pub(crate) app: &'a AppId,
    /// The newest key document the SDK verified: `threshold` of its keys must have signed.
    pub(crate) keys: &'a KeyDocument,
    pub(crate) running: &'a Version,
    pub(crate) state: &'a StateDir,
    /// The in-memory copy of the watermark; its lock serialises raises within the process.
    pub(crate) watermark: &'a Mutex<Option<Watermark>>,
}

impl Verifier<'_> {
    /// Verifies the complete download in `part` and moves it to `dest`. On any failure the
    /// part file is deleted and nothing is at `dest` from this call. Blocking: reads the file.
    pub(crate) fn finish(&self, part: &Path, dest: &Path, update: &Update) -> Result<VerifiedFile, Error> {
        let result = self.check_bytes(part, update).and_then(|()| self.promote(part, dest, update));
        if result.is_err() {
            let _ = fs::remove_file(part);
        }
        result
    }

    fn check_bytes(&self, part: &Path, update: &Update) -> Result<(), Error> {
        let io_error = |source| Error::Io { path: part.to_owned(), source };
        let actual = fs::metadata(part).map_err(io_error)?.len();
        if actual != update.size {
            return Err(Rejection::SizeMismatch { expected: update.size, actual }.into());
        }
        let digest = digest_file(part).map_err(io_error)?;
        if digest != update.sha256 {
            return Err(Rejection::HashMismatch { expected: update.sha256, actual: digest }.into());
        }
        let message = signed_message(SignedFields {
            app: self.app,
            version: update.version(),
            target: update.target(),
            sha256: &digest,
            size: actual,
        });
        self.keys.verify(message.as_bytes(), &update.signatures).map_err(|e| match e {
            SignatureError::UnknownKey(id) => Rejection::UnknownKey(id),
            SignatureError::Invalid(id) => Rejection::BadSignature(id),
            SignatureError::TooFew { valid, needed } => Rejection::TooFewSignatures { valid, needed },
            _ => Rejection::BadSignature(update.signatures.first().key_id.clone()),
        })?;
        Ok(())
    }

    /// Re-admits the version against the watermark on disk (another process, or an install
    /// in this one, may have raised it), then renames.
    fn promote(&self, part: &Path, dest: &Path, update: &Update) -> Result<VerifiedFile, Error> {
        let mut cached = self.watermark.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.state.watermark()?;
        cached.clone_from(&current);
        let journal = self.state.journal()?;
        admit(
            update.version(),
            &update.sha256,
            self.running,
            current.as_ref(),
            journal.as_ref().and_then(|j| j.reverted()),
        )?;
        fs::rename(part, dest).map_err(|source| Error::Io { path: dest.to_owned(), source })?;
        Ok(VerifiedFile {
            path: dest.to_owned(),
            version: update.version().clone(),
            sha256: update.sha256,
            delivery: Delivery::Full,
        })
    }
}

fn digest_file(path: &Path) -> io::Result<Sha256> {
    copy_hashing(File::open(path)?, &mut io::sink())
}

/// Copies `from` into `to` (`io::sink()` to only hash it) and returns the SHA-256 of what
/// passed.
pub(crate) fn copy_hashing(mut from: impl Read, to: &mut impl io::Write) -> io::Result<Sha256> {
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = from.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        to.write_all(&buf[..n])?;
    }
    Ok(Sha256::from_bytes(hasher.finalize().into()))
}
