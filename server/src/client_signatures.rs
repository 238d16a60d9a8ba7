//! Checking, at publish, what other updaters verify of an artifact (`ClientSignatures`):
//! made by a key the app trusts, bound to this build (minisign's trusted comment), and, when
//! the server holds the file, true of its bytes: the SHA-512 electron-updater compares, the
//! minisign signature (checked with `minisign-verify`, the code Tauri and cargo-packager run)
//! and Sparkle's Ed25519 signature over the bytes. The file is streamed once, never held whole.
//!
//! An artifact served from an external URL is checked without its bytes (key and binding
//! only): the server never sees them; the devices' own clients check the bytes.

use base64::Engine as _;
use futures_util::TryStreamExt as _;
use halftone_channels::{Artifact, SignedFields, minisign_public_key};
use sha2::Digest as _;

use crate::artifacts::ArtifactStore;
use crate::problem::ApiError;
use crate::snapshot::AppSnapshot;

/// Refuses client signatures that a key of `app` did not make for the artifact `fields`
/// describe (422). Cheap (no bytes are read): the publish runs it under the writer.
pub fn check_key(app: &AppSnapshot, fields: SignedFields<'_>, artifact: &Artifact) -> Result<(), ApiError> {
    let Some(c) = &artifact.clients else { return Ok(()) };
    let refuse = |why: String| ApiError::Unprocessable(format!("client signatures for {}: {why}", fields.target));
    let key = app
        .keys
        .get(&c.key_id)
        .ok_or_else(|| refuse(format!("they name key {}, which the app does not trust", c.key_id)))?;
    c.check_binding(fields, key).map_err(|e| refuse(e.to_string()))
}

/// [`check_key`], then, for an artifact the server stores, the checks over its bytes (422).
/// The publish runs it before it takes the writer, against the snapshot's keys, so reading a
/// large build never holds other changes; [`check_key`] under the writer then confirms the key
/// (its minisign key number is that key's, so the bytes were checked with the same key).
pub async fn check(
    store: &ArtifactStore,
    app: &AppSnapshot,
    fields: SignedFields<'_>,
    artifact: &Artifact,
) -> Result<(), ApiError> {
    let Some(c) = &artifact.clients else { return Ok(()) };
    check_key(app, fields, artifact)?;
    if artifact.url.is_some() {
        return Ok(());
    }
    let refuse = |why: String| ApiError::Unprocessable(format!("client signatures for {}: {why}", fields.target));
    let key = app.keys.get(&c.key_id).expect("check_key found it");
    let Some(mut bytes) = store.read_all(fields.sha256).await.map_err(ApiError::object_store_unavailable)? else {
        return Err(ApiError::Unprocessable(format!(
            "artifact {} for {} is not uploaded: PUT /v1/artifacts/{} first, or give a url",
            fields.sha256, fields.target, fields.sha256
        )));
    };
    let minisign_key = minisign_verify::PublicKey::decode(&minisign_public_key(key))
        .map_err(|e| refuse(format!("the key does not read as minisign: {e}")))?;
    let minisign_sig = minisign_verify::Signature::decode(&c.minisign.to_string())
        .map_err(|e| refuse(format!("the minisign signature does not read: {e}")))?;
    let mut minisign =
        minisign_key.verify_stream(&minisign_sig).map_err(|e| refuse(format!("the minisign signature: {e}")))?;
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&key.to_bytes()).map_err(|e| refuse(e.to_string()))?;
    let mut sparkle = verifying
        .verify_stream(&ed25519_dalek::Signature::from_bytes(&c.ed_signature.to_bytes()))
        .map_err(|_| refuse("the Sparkle signature is not a valid ed25519 signature".into()))?;
    let mut sha512 = sha2::Sha512::new();
    while let Some(chunk) = bytes.try_next().await.map_err(ApiError::object_store_unavailable)? {
        sha512.update(&chunk);
        minisign.update(&chunk);
        sparkle.update(&chunk);
    }
    let sha512: [u8; 64] = sha512.finalize().into();
    if &sha512 != c.sha512.as_bytes() {
        return Err(refuse(format!(
            "sha512 {} is not the file's ({})",
            c.sha512,
            base64::engine::general_purpose::STANDARD.encode(sha512)
        )));
    }
    minisign.finalize().map_err(|e| refuse(format!("the minisign signature does not verify over the file: {e}")))?;
    sparkle.finalize_and_verify().map_err(|_| refuse("the Sparkle signature does not verify over the file".into()))
}
