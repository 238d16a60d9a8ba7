//! An app's release keys as a versioned, signed document (TUF's root rotation):
//! [`KeyDocument`] (app, version, [`Threshold`], keys), its canonical signed bytes
//! ([`KeyDocument::message`]), [`SignedKeyDocument`] (a document and its signatures, not yet
//! checked) and [`KeyChain`], which walks from a trusted document to newer ones.
//!
//! The signed bytes of a document are these UTF-8 lines, each ending in `\n`, keys sorted by
//! id (byte order), and nothing else:
//!
//! ```text
//! halftone-keys-v1
//! app=<app id>
//! version=<decimal, from 1>
//! threshold=<decimal, 1..=number of keys>
//! key=<key id> <64 lowercase hex digits>
//! ...
//! ```
//!
//! Version 1 is the document the app compiles in (its trusted keys, threshold 1 unless it says
//! otherwise). Version n+1 is trusted only when at least `threshold` distinct keys of version n
//! AND at least `threshold` distinct keys of version n+1 itself signed it: the old keys
//! authorise the change, the new ones prove that whoever wrote the document holds them (so a
//! document cannot name keys nobody controls, which would lock every device out).

use std::fmt;
use std::num::NonZeroU8;

use crate::error::{ParseError, What};
use crate::{AppId, MAX_TRUSTED_KEYS, SignatureError, Signatures, TrustedKeys};

/// How many distinct keys must sign: at least 1, at most [`MAX_TRUSTED_KEYS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Threshold(NonZeroU8);

impl Threshold {
    /// One key suffices (the default of the compiled-in document).
    pub const ONE: Threshold = Threshold(NonZeroU8::MIN);

    /// A threshold of `k` keys, 1 to [`MAX_TRUSTED_KEYS`].
    pub fn new(k: u64) -> Result<Self, ParseError> {
        u8::try_from(k)
            .ok()
            .filter(|k| usize::from(*k) <= MAX_TRUSTED_KEYS)
            .and_then(NonZeroU8::new)
            .map(Threshold)
            .ok_or_else(|| {
                ParseError::new(What::KeyDocument, &k.to_string(), format!("threshold must be 1 to {MAX_TRUSTED_KEYS}"))
            })
    }

    /// The number of keys.
    pub fn get(self) -> usize {
        usize::from(self.0.get())
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// An app's trusted release keys at one version: at least `threshold` of them must sign a
/// build, and the next version of this document.
///
/// Invariants (checked by [`KeyDocument::new`]): version at least 1; at least one key;
/// `threshold` at most the number of keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDocument {
    app: AppId,
    version: u64,
    threshold: Threshold,
    keys: TrustedKeys,
}

impl KeyDocument {
    /// Checks the invariants and builds the document.
    pub fn new(app: AppId, version: u64, threshold: Threshold, keys: TrustedKeys) -> Result<Self, ParseError> {
        let fail = |why: String| Err(ParseError::new(What::KeyDocument, &format!("{app} version {version}"), why));
        if version == 0 {
            return fail("versions start at 1".into());
        }
        if keys.is_empty() {
            return fail("needs at least one key".into());
        }
        if threshold.get() > keys.len() {
            return fail(format!("threshold {threshold} is more than its {} keys", keys.len()));
        }
        Ok(KeyDocument { app, version, threshold, keys })
    }

    /// Version 1: the keys an app compiles in, any one of which suffices.
    pub fn first(app: AppId, keys: TrustedKeys) -> Result<Self, ParseError> {
        KeyDocument::new(app, 1, Threshold::ONE, keys)
    }

    /// The app.
    pub fn app(&self) -> &AppId {
        &self.app
    }
    /// The version, from 1.
    pub fn version(&self) -> u64 {
        self.version
    }
    /// How many distinct keys must sign.
    pub fn threshold(&self) -> Threshold {
        self.threshold
    }
    /// The keys.
    pub fn keys(&self) -> &TrustedKeys {
        &self.keys
    }

    /// The exact bytes that are signed (see the module documentation).
    pub fn message(&self) -> String {
        use std::fmt::Write;
        let mut out =
            format!("halftone-keys-v1\napp={}\nversion={}\nthreshold={}\n", self.app, self.version, self.threshold);
        for (id, key) in self.keys.iter() {
            writeln!(out, "key={id} {key}").expect("writing to a String");
        }
        out
    }

    /// Verifies that at least `threshold` distinct keys of this document signed `message`
    /// (a build's signed message, or the next document's).
    pub fn verify(&self, message: &[u8], signatures: &Signatures) -> Result<(), SignatureError> {
        self.keys.verify_threshold(self.threshold, message, signatures)
    }
}

/// A key document with its signatures, as received: nothing about it is checked but its shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedKeyDocument {
    /// The document.
    pub document: KeyDocument,
    /// Signatures over [`KeyDocument::message`].
    pub signatures: Signatures,
}

/// Which keys failed to sign a document enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signers {
    /// The keys of the trusted (previous) version.
    Previous,
    /// The document's own new keys.
    Own,
}

impl fmt::Display for Signers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Signers::Previous => "the previous version's keys",
            Signers::Own => "its own keys",
        })
    }
}

/// Why a key document does not chain onto the trusted one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyChainError {
    /// The document is for another app.
    #[error("key document is for app {found}, not {expected}")]
    OtherApp {
        /// The trusted document's app.
        expected: AppId,
        /// The document's app.
        found: AppId,
    },
    /// The document is not newer than the trusted one (a rollback or a replay).
    #[error("key document version {found} is not newer than the trusted version {trusted}")]
    NotNewer {
        /// The trusted version.
        trusted: u64,
        /// The document's version.
        found: u64,
    },
    /// The document skips versions: each must be signed by its predecessor.
    #[error("key document version {found} does not follow the trusted version {trusted}")]
    Gap {
        /// The trusted version.
        trusted: u64,
        /// The document's version.
        found: u64,
    },
    /// Too few distinct keys signed it.
    #[error("key document version {version} is not signed by enough of {by}: {source}")]
    UnderSigned {
        /// The document's version.
        version: u64,
        /// Whose signatures were too few.
        by: Signers,
        /// The count.
        source: SignatureError,
    },
}

/// The newest key document a verifier trusts. Built from a document trusted as it is (the one
/// compiled in, or one verified earlier and stored) and advanced only by documents that chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChain {
    trusted: KeyDocument,
}

impl KeyChain {
    /// Trusts `document` without checking signatures: only for the compiled-in document or
    /// one this verifier checked itself before.
    pub fn trust(document: KeyDocument) -> Self {
        KeyChain { trusted: document }
    }

    /// The newest trusted document.
    pub fn current(&self) -> &KeyDocument {
        &self.trusted
    }

    /// The chain advanced by `next`, which must be the next version of the same app, signed
    /// by `threshold` distinct keys of the trusted document and `threshold` of its own.
    pub fn advance(&self, next: &SignedKeyDocument) -> Result<KeyChain, KeyChainError> {
        let (old, new) = (&self.trusted, &next.document);
        if new.app != old.app {
            return Err(KeyChainError::OtherApp { expected: old.app.clone(), found: new.app.clone() });
        }
        if new.version <= old.version {
            return Err(KeyChainError::NotNewer { trusted: old.version, found: new.version });
        }
        if new.version != old.version + 1 {
            return Err(KeyChainError::Gap { trusted: old.version, found: new.version });
        }
        let message = new.message();
        let under = |by| move |source| KeyChainError::UnderSigned { version: new.version, by, source };
        old.verify(message.as_bytes(), &next.signatures).map_err(under(Signers::Previous))?;
        new.verify(message.as_bytes(), &next.signatures).map_err(under(Signers::Own))?;
        Ok(KeyChain { trusted: new.clone() })
    }

    /// The chain advanced by each of `documents` in turn; on the first that does not chain,
    /// the error (and `self` is unchanged: the caller keeps trusting what it trusted).
    pub fn walk<'d>(
        &self,
        documents: impl IntoIterator<Item = &'d SignedKeyDocument>,
    ) -> Result<KeyChain, KeyChainError> {
        let mut chain = self.clone();
        for next in documents {
            chain = chain.advance(next)?;
        }
        Ok(chain)
    }
}

#[cfg(test)]
mod tests;
