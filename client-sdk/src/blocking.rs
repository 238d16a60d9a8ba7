//! A blocking facade for apps without a tokio runtime (feature `blocking`).
//!
//! [`Client`] owns a small runtime (one worker thread, named `halftone-client`) on which the
//! event sender and the poller run; every method blocks the calling thread until done. Do not
//! call it from inside an async runtime (use [`crate::Client`] there), and do not drop the last
//! handle inside one either: a runtime cannot be shut down from within another.
//!
//! ```no_run
//! use halftone_client::CheckOutcome;
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = halftone_client::Client::builder()
//!     .server("https://updates.example.com")
//!     .app("notes")
//!     .version("1.4.2")
//!     .trusted_key("release-2026", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
//!     .state_dir("/var/lib/notes/updates")
//!     .build_blocking()?;
//! if let CheckOutcome::Available(update) = client.check()? {
//!     let file = client.download(&update, "/tmp/notes-update.pkg", |_, _| {})?;
//!     println!("verified {}", file.path().display());
//! }
//! # Ok(())
//! # }
//! ```

use std::path::Path;
use std::sync::Arc;

use tokio::runtime::Runtime;

use crate::{
    BuildError, ChannelName, CheckOutcome, ClientBuilder, Confirmation, DeviceId, Error, EventKind, Installation,
    Installed, PollPolicy, Progress, ReportStats, TraitName, TraitValue, Update, UserId, VerifiedFile, Version,
};

impl ClientBuilder {
    /// Builds a [`blocking::Client`](Client) with its own runtime.
    pub fn build_blocking(self) -> Result<Client, BuildError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("halftone-client")
            .enable_all()
            .build()
            .map_err(|e| BuildError::Startup(format!("runtime: {e}")))?;
        let inner = runtime.block_on(self.build())?;
        Ok(Client { inner, runtime: Arc::new(runtime) })
    }
}

/// The blocking counterpart of [`crate::Client`]; see there for each method. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    // Declared before the runtime so the client (and its event sender) goes first.
    inner: crate::Client,
    runtime: Arc<Runtime>,
}

impl Client {
    /// See [`crate::Client::check`].
    pub fn check(&self) -> Result<CheckOutcome, Error> {
        self.runtime.block_on(self.inner.check())
    }

    /// See [`crate::Client::check_interactive`].
    pub fn check_interactive(&self) -> Result<CheckOutcome, Error> {
        self.runtime.block_on(self.inner.check_interactive())
    }

    /// See [`crate::Client::download`].
    pub fn download(
        &self,
        update: &Update,
        dest: impl AsRef<Path>,
        progress: impl Progress,
    ) -> Result<VerifiedFile, Error> {
        self.runtime.block_on(self.inner.download(update, dest, progress))
    }

    /// See [`crate::Client::install`].
    pub fn install(&self, installation: &Installation, file: &VerifiedFile) -> Result<Installed, Error> {
        self.runtime.block_on(self.inner.install(installation, file))
    }

    /// See [`crate::Client::confirm`].
    pub fn confirm(&self, installation: &Installation) -> Result<Confirmation, Error> {
        self.runtime.block_on(self.inner.confirm(installation))
    }

    /// See [`crate::Client::installed`].
    pub fn installed(&self, file: &VerifiedFile) -> Result<(), Error> {
        self.runtime.block_on(self.inner.installed(file))
    }

    /// See [`crate::Client::report`]; never blocks.
    pub fn report(&self, kind: EventKind, version: &Version) {
        self.inner.report(kind, version);
    }

    /// See [`crate::Client::report_with_detail`]; never blocks.
    pub fn report_with_detail(&self, kind: EventKind, version: &Version, detail: &str) {
        self.inner.report_with_detail(kind, version, detail);
    }

    /// See [`crate::Client::flush`].
    pub fn flush(&self) -> Result<(), Error> {
        self.runtime.block_on(self.inner.flush())
    }

    /// See [`crate::Client::report_stats`].
    pub fn report_stats(&self) -> ReportStats {
        self.inner.report_stats()
    }

    /// Starts a background poller; `on_outcome` runs on the SDK's thread. See
    /// [`crate::Client::start_poller`].
    pub fn start_poller(
        &self,
        policy: PollPolicy,
        on_outcome: impl FnMut(Result<CheckOutcome, Error>) + Send + 'static,
    ) -> Poller {
        let _entered = self.runtime.enter();
        Poller { inner: Some(self.inner.start_poller(policy, on_outcome)), runtime: self.runtime.clone() }
    }

    /// See [`crate::Client::channel`].
    pub fn channel(&self) -> ChannelName {
        self.inner.channel()
    }

    /// See [`crate::Client::set_channel`].
    pub fn set_channel(&self, channel: ChannelName) -> Result<(), Error> {
        self.inner.set_channel(channel)
    }

    /// See [`crate::Client::set_user`].
    pub fn set_user(&self, user: UserId) {
        self.inner.set_user(user);
    }

    /// See [`crate::Client::clear_user`].
    pub fn clear_user(&self) {
        self.inner.clear_user();
    }

    /// See [`crate::Client::set_trait`].
    pub fn set_trait(&self, name: TraitName, value: TraitValue) -> Result<(), Error> {
        self.inner.set_trait(name, value)
    }

    /// See [`crate::Client::device_id`].
    pub fn device_id(&self) -> &DeviceId {
        self.inner.device_id()
    }

    /// The async client inside, for code that has a runtime after all.
    pub fn as_async(&self) -> &crate::Client {
        &self.inner
    }
}

/// A running background poller of a [`blocking::Client`](Client); dropping it stops it.
#[derive(Debug)]
pub struct Poller {
    inner: Option<crate::Poller>,
    runtime: Arc<Runtime>,
}

impl Poller {
    /// Stops the poller and waits until the callback can no longer be called.
    pub fn stop(mut self) {
        if let Some(poller) = self.inner.take() {
            self.runtime.block_on(poller.stop());
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::test_support::{Scenario, builder_for};

    #[test]
    fn works_without_a_runtime() {
        // The fake server needs a runtime of its own that runs while the test thread blocks.
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let scenario = runtime.block_on(Scenario::genuine("1.1.0"));
        let dir = tempfile::tempdir().unwrap();
        let client = builder_for(&scenario.server.url, dir.path(), "1.0.0").build_blocking().unwrap();
        let CheckOutcome::Available(update) = client.check().unwrap() else { panic!("expected an update") };
        let dest = dir.path().join("app.bin");
        let file = client.download(&update, &dest, |_, _| {}).unwrap();
        assert_eq!(std::fs::read(file.path()).unwrap(), scenario.bytes);
        client.report(EventKind::InstallSucceeded, file.version());
        client.flush().unwrap();
        assert_eq!(client.report_stats().queued, 0);

        let (tx, rx) = mpsc::channel();
        let poller = client.start_poller(PollPolicy::default(), move |outcome| {
            let _ = tx.send(outcome.is_ok());
        });
        assert_eq!(rx.recv_timeout(Duration::from_secs(30)), Ok(true));
        poller.stop();
        drop(client);
        drop(runtime);
    }
}
