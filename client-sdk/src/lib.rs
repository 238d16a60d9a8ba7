//! # halftone-client
//!
//! The SDK that apps embed to get updates from a Halftone server. It speaks only the device
//! routes (check-in, artifact download, events); release engineers' tools use
//! `halftone-admin` instead.
//!
//! An app builds one [`Client`] at start-up and then:
//! - [`Client::check`] asks whether an update is available: [`CheckOutcome::UpToDate`] or
//!   [`CheckOutcome::Available`] with an [`Update`] (version, notes, critical flag, size);
//! - [`Client::download`] fetches it (resuming interrupted downloads), verifies size, SHA-256
//!   and the ed25519 signature against the keys compiled into the app, and returns a
//!   [`VerifiedFile`], the only way to get a file out of the SDK;
//! - [`Client::install`] installs a [`VerifiedFile`] into the app's [`Installation`] (one
//!   executable replaced by a rename, or an archive unpacked into a new version directory and
//!   switched to by a link), and the app restarts; at every start
//!   [`Installation::launch`] says what to run, and the new build calls [`Client::confirm`]
//!   once it works. A build that does not confirm within its limit, or crashes first, is
//!   reverted at the next start, reported as `install_failed`, and refused until a newer one
//!   comes ([`Refusal::Reverted`]). An installer the platform runs is handed over with
//!   [`PlatformInstaller`] instead (then [`Client::installed`]);
//! - [`Client::report`] queues events (install succeeded, first run, crash...) that a
//!   background task sends in batches;
//! - [`Client::record_metric`] and [`Client::count`] report the app's own figures (a
//!   session's length, a business counter) for the running build, held in memory (bounded)
//!   and sent with the events once a check-in gave the build's report token; gates can judge
//!   a build on them (the server's docs/gates.md);
//! - [`Client::start_poller`] checks in the background on the server's schedule;
//! - [`Client::set_channel`] records the user's channel choice (stable, beta, unstable, or
//!   an app's own).
//!
//! With the `blocking` feature, `blocking::Client` (built by `ClientBuilder::build_blocking`)
//! offers the same for apps without a tokio runtime.
//!
//! `examples/check.rs` is a small command-line program that checks (and downloads from) a
//! local server; start there to try a release. `examples/update.rs` runs the whole cycle:
//! launch, check, download, install, restart, confirm, report.
//!
//! ```no_run
//! use halftone_client::{CheckOutcome, Client};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder()
//!     .server("https://updates.example.com")
//!     .app("notes")
//!     .version(env!("CARGO_PKG_VERSION"))
//!     .trusted_key("release-2026", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
//!     // The server's answer key (`halftone answer-key list`): only fresh signed answers count.
//!     .answer_key("8a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c")
//!     .state_dir("/var/lib/notes/updates")
//!     .build()
//!     .await?;
//!
//! if let CheckOutcome::Available(update) = client.check().await? {
//!     println!("{} is available: {}", update.version(), update.notes());
//!     let file = client
//!         .download(&update, "/tmp/notes-update.pkg", |done, total| println!("{done}/{total}"))
//!         .await?;
//!     // Either let the SDK install it, then restart (the new build, once it works, calls
//!     // `client.confirm(&installation)`; see `Installation`):
//!     let installation = halftone_client::Installation::directory("/opt/notes", "bin/notes", "/var/lib/notes/updates")?;
//!     client.install(&installation, &file).await?;
//!     // or install `file.path()` the platform's way, then, once it worked (this raises the
//!     // watermark and reports install_succeeded): `client.installed(&file).await?`.
//! }
//! client.flush().await?;
//! # Ok(())
//! # }
//! ```
//!
//! Downloads are bounded in every dimension: in size (the signed size, at most
//! [`ClientBuilder::max_download_size`]), in time (a [stall
//! timeout](ClientBuilder::stall_timeout) per read, a [minimum
//! rate](ClientBuilder::min_download_rate) over a sliding window, an overall
//! [deadline](ClientBuilder::download_deadline)) and in where they come from: the server's own
//! origin, or the hosts the app names with [`ClientBuilder::allow_download_host`] (the bucket
//! or CDN host when the server redirects downloads there, the host of external artifact URLs).
//! A download that stops early keeps its partial file, `<dest>.<sha256>.part`, and the next
//! call for the same build resumes it.
//!
//! With an answer key pinned ([`ClientBuilder::answer_key`]), every check-in sends a fresh
//! nonce and believes only an answer signed for this device and nonce that has not expired:
//! a replayed, withheld or altered answer is [`Error::Unverified`], never "up to date".
//!
//! Invariants:
//! - an [`Update`] is never older than, or equal to, the running version, nor below the
//!   highest version this device has installed or run (the watermark, raised by
//!   [`Client::installed`] and at start-up, never by a download), nor for another os or
//!   arch, nor from a channel less stable than the device's; the SDK checks this itself rather
//!   than trusting the server;
//! - a [`VerifiedFile`] exists only for bytes whose size, digest and signature (over this
//!   app, that version, this platform) were checked; anything that fails is deleted;
//! - a download never writes more than the signed size, and never resumes a partial file of
//!   another build (partial files are named after the build's digest);
//! - no request goes to a host other than the server's origin and the hosts the app allows,
//!   not even by a redirect, and an https server's downloads are never plain http;
//! - an install writes only inside the app's directory, switches with one rename, and records
//!   each step in the state directory's journal before taking it, so a process killed at any
//!   point leaves one whole build live, old or new; archive entries that would land outside
//!   the version directory (`..`, absolute names, links pointing out) refuse the archive;
//! - the state directory is written only with atomic renames, and a corrupt file is an error,
//!   never silently replaced (the device id is created only when absent).

#![deny(missing_docs)]

mod answer;
mod api;
mod archive;
mod backoff;
#[cfg(feature = "blocking")]
pub mod blocking;
mod builder;
mod client;
mod delta;
mod download;
mod error;
mod host;
mod install;
mod journal;
mod keys;
mod origin;
mod pace;
mod poller;
mod progress;
mod reporter;
mod state;
mod update;
mod verify;
mod watermark;

#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod test_support;

pub use answer::Unverified;
pub use archive::UnsafeEntry;
pub use builder::ClientBuilder;
pub use client::Client;
pub use delta::{Delivery, PatchFailure, apply_patch};
pub use error::{BuildError, Error, Refusal, Rejection, StateError};
pub use install::{
    Confirmation, InstallError, InstallStep, Installation, Installed, Launch, LaunchOutcome, Layout, PlatformInstaller,
};
pub use poller::{PollPolicy, Poller};
pub use progress::Progress;
pub use reporter::ReportStats;
pub use update::{CheckOutcome, Update};
pub use verify::VerifiedFile;

/// The protocol's value types, re-exported so an app needs no other dependency.
pub use halftone_channels::wire::{EventKind, Problem};
pub use halftone_channels::{
    AppId, Arch, ChannelName, DeviceId, KeyId, Locale, MAX_TRAITS, MetricName, MetricValue, Os, OsVersion, ParseError,
    Sha256, Target, TraitName, TraitValue, UserId, Version,
};
