//! # halftone-admin
//!
//! The release engineer's side of Halftone: a typed client of the server's admin API
//! ([`AdminClient`]) and the release signing key ([`ReleaseKey`]). The `halftone` CLI is built
//! on it, and so are the benchmark seeder and the tests that publish releases. Apps never need
//! it: they embed `halftone-client`, which knows only the device routes.
//!
//! What it owns:
//! - [`AdminClient`]: one method per admin route, returning the
//!   [`wire`](halftone_channels::wire) types the server sends. Every failure is an
//!   [`AdminError`] whose `Display` is one sentence a release engineer can act on; when the
//!   server refused a request, that sentence carries the status and the server's own
//!   explanation (the `detail` of its problem body).
//! - [`ReleaseKey`]: an ed25519 private key and its id; it signs an artifact's signed message
//!   ([`ReleaseKey::sign`], [`ReleaseKey::sign_artifact`]), exactly what the server checks on
//!   publish and the SDK checks again before it hands a file to the app.
//! - [`LocalArtifact`]: a build file hashed before it is signed and uploaded.
//!
//! Three things need more than one call, and the types make them explicit:
//! - **artifacts** are hashed locally first ([`LocalArtifact::hash`]) because the digest names
//!   the upload and is part of the signed message; [`AdminClient::upload_artifact`] then
//!   streams the file and reports progress;
//! - **rollout changes** are optimistic: [`AdminClient::get_rollout`] returns the rollout with
//!   its [`ETag`], and [`AdminClient::patch_rollout`] sends it back in `If-Match`, so a change
//!   made by someone else in between is refused (412) rather than silently overwritten;
//! - **idempotent writes** ([`AdminClient::put_app`], [`AdminClient::publish`]) say whether
//!   they created something or found it already there ([`Written`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use halftone_admin::AdminClient;
//! use halftone_channels::{AppId, ChannelName, Percent, Version};
//! use halftone_channels::wire::RolloutPatch;
//!
//! let admin = AdminClient::new("http://127.0.0.1:8080", "my-admin-token")?;
//! let (app, version, beta) = (AppId::parse("notes")?, Version::parse("1.2.0")?, ChannelName::beta());
//! let (rollout, etag) = admin.get_rollout(&app, &version, &beta).await?;
//! println!("beta is at {}", rollout.rollout.basis_points);
//! let patch = RolloutPatch { basis_points: Some(Percent::parse("25%")?), ..RolloutPatch::default() };
//! admin.patch_rollout(&app, &version, &beta, &etag, &patch).await?;
//! # Ok(()) }
//! ```
//!
//! **Key files stay with the CLI.** A [`ReleaseKey`] is made at random or from its seed and
//! can hand its seed back ([`ReleaseKey::secret_seed`]); this crate never reads or writes a
//! key file. The file format (`#` comments and 64 hex digits), its policy (mode 0600, never
//! overwritten, a warning when others can read it) and its messages are the `halftone` CLI's
//! (`halftone keygen`, `--key-file`), and the CLI is their only user: tests and the seeder make
//! keys from fixed seeds. Keeping files out keeps this crate free of terminal output and of
//! file-format errors that one caller would handle, and lets a CI system keep its key
//! elsewhere (a secret store) and still sign with the same type.
//!
//! Invariants:
//! - the admin token and the private key are never printed: `Debug` redacts them;
//! - a [`LocalArtifact`]'s digest and size are those of the file as it was read;
//! - ids and versions sent in a path are percent-encoded as one segment each, so a value can
//!   never add a segment or a query.

#![deny(missing_docs)]

mod artifact;
mod client;
mod client_signing;
mod error;
mod etag;
mod patch_builder;
mod release_key;
mod written;

pub use artifact::LocalArtifact;
pub use client::AdminClient;
pub use error::AdminError;
pub use etag::ETag;
pub use patch_builder::{PATCH_LEVEL, build_patch, window_log, worth_keeping};
pub use release_key::ReleaseKey;
pub use written::Written;
