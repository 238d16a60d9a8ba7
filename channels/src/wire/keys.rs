//! An app's release key documents on the wire: `POST /v1/apps/{app}/keys` (the next version,
//! signed) and `GET /v1/apps/{app}/keys` (every signed version, or those after `?after=N`),
//! and a signature as artifacts and documents list it.

use serde::{Deserialize, Serialize};

use super::KeySpec;
use crate::{AppId, KeyId, Signature};

/// One signature and the key that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignatureSpec {
    /// The signing key's id.
    pub key_id: KeyId,
    /// The ed25519 signature, hex.
    pub signature: Signature,
}

/// A signed key document (docs/api.md §8, "Key documents").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyDocumentSpec {
    /// The app it is for.
    pub app: AppId,
    /// Its version: the trusted one plus one.
    pub version: u64,
    /// How many distinct keys of it must sign a build (and the next document).
    pub threshold: u64,
    /// The keys, any order (signed sorted by id).
    pub keys: Vec<KeySpec>,
    /// Signatures over its message: enough of the previous version's keys and of its own.
    pub signatures: Vec<SignatureSpec>,
}

/// `GET /v1/apps/{app}/keys`: the signed key documents, oldest first (version 1 is compiled
/// into apps and is not listed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyDocuments {
    /// Versions 2 and up (after `?after=N`: above N), in order.
    pub documents: Vec<KeyDocumentSpec>,
}
