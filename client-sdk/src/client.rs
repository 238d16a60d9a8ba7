//! [`Client`]: what an app holds to check for, download and report on updates.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};

use halftone_channels::wire::{CheckRequest, Event, EventKind};
use halftone_channels::{
    AppId, ChannelName, CheckKind, DeviceId, Ladder, Locale, MAX_TRAITS, MetricName, MetricValue, OsVersion, Target,
    TraitName, TraitValue, Traits, UserId, Version,
};

use crate::answer::AnswerCheck;
use crate::api::Api;
use crate::delta::{Delivery, OfferedPatch, PatchFailure, Patched, RunningBuild};
use crate::download;
use crate::journal::Phase;
use crate::keys::KeyTrust;
use crate::poller::{PollPolicy, Poller};
use crate::reporter::{MAX_DETAIL, Reporter};
use crate::state::StateDir;
use crate::update::{Checked, Device};
use crate::verify::Verifier;
use crate::watermark::{Watermark, admit};
use crate::{
    CheckOutcome, ClientBuilder, Confirmation, Error, InstallError, Installation, Installed, Progress, Refusal,
    ReportStats, StateError, Update, VerifiedFile,
};

/// The SDK's handle: checks for updates, downloads and verifies them, reports events, and
/// keeps the user's channel choice. Cheap to clone (clones share everything); build one with
/// [`Client::builder`].
///
/// The client starts a background task that sends events; it ends when the last clone (and
/// the last [`Poller`]) is dropped. Events still queued then are lost: call
/// [`flush`](Self::flush) before the app exits.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    app: AppId,
    running: Version,
    target: Target,
    os_version: Option<OsVersion>,
    locale: Option<Locale>,
    keys: KeyTrust,
    ladder: Ladder,
    answers: Option<AnswerCheck>,
    device_id: DeviceId,
    state: StateDir,
    channel: RwLock<ChannelName>,
    user: RwLock<Option<UserId>>,
    traits: RwLock<BTreeMap<TraitName, TraitValue>>,
    watermark: Mutex<Option<Watermark>>,
    /// The version this device installed and reverted, as the journal said at start-up (a
    /// revert happens only at a launch, before a client exists).
    reverted: Option<Version>,
    /// A revert to report as `install_failed` after the next check-in (which brings the
    /// token for the reverted version, when the server still offers it).
    unreported_revert: Mutex<Option<(Version, String)>>,
    /// Events held until the next check-in brings their report token.
    after_check: Mutex<Vec<(EventKind, Version)>>,
    api: Arc<Api>,
    reporter: Reporter,
    max_download_size: u64,
    /// The running build's file and digest, when the app named it: patches apply to it.
    running_build: Option<RunningBuild>,
    /// Offers refused for their keys that were already reported: each once per process.
    key_refusals_reported: Mutex<HashSet<(Version, String)>>,
}

/// Everything [`ClientBuilder::build`] prepared.
pub(crate) struct Parts {
    pub(crate) api: Arc<Api>,
    pub(crate) app: AppId,
    pub(crate) running: Version,
    pub(crate) target: Target,
    pub(crate) os_version: Option<OsVersion>,
    pub(crate) locale: Option<Locale>,
    pub(crate) keys: KeyTrust,
    pub(crate) ladder: Ladder,
    pub(crate) answers: Option<AnswerCheck>,
    pub(crate) state: StateDir,
    pub(crate) device_id: DeviceId,
    pub(crate) channel: ChannelName,
    pub(crate) watermark: Option<Watermark>,
    pub(crate) reverted: Option<Version>,
    /// A revert not reported yet: its version and reason.
    pub(crate) unreported_revert: Option<(Version, String)>,
    pub(crate) user: Option<UserId>,
    pub(crate) traits: BTreeMap<TraitName, TraitValue>,
    pub(crate) event_queue: usize,
    pub(crate) max_download_size: u64,
    /// The running build's file and digest, when the app named it.
    pub(crate) running_build: Option<RunningBuild>,
}

impl Client {
    /// Starts the settings of a client.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// Starts the background event sender; must run on a tokio runtime.
    pub(crate) fn start(parts: Parts) -> Self {
        let reporter = Reporter::start(parts.api.clone(), parts.event_queue, parts.device_id.clone());
        Client {
            inner: Arc::new(Inner {
                app: parts.app,
                running: parts.running,
                target: parts.target,
                os_version: parts.os_version,
                locale: parts.locale,
                keys: parts.keys,
                ladder: parts.ladder,
                answers: parts.answers,
                device_id: parts.device_id,
                state: parts.state,
                channel: RwLock::new(parts.channel),
                user: RwLock::new(parts.user),
                traits: RwLock::new(parts.traits),
                watermark: Mutex::new(parts.watermark),
                reverted: parts.reverted,
                unreported_revert: Mutex::new(parts.unreported_revert),
                after_check: Mutex::default(),
                api: parts.api,
                reporter,
                max_download_size: parts.max_download_size,
                running_build: parts.running_build,
                key_refusals_reported: Mutex::default(),
            }),
        }
    }

    // ---------- checking ----------

    /// Asks the server whether an update is available, as a background check.
    ///
    /// An offer is accepted only if it is for this device's os and arch and newer than both
    /// the running version and the highest version this device ever verified; otherwise the
    /// answer is [`Error::Refused`].
    pub async fn check(&self) -> Result<CheckOutcome, Error> {
        self.checked(CheckKind::Background).await?.outcome
    }

    /// Like [`check`](Self::check), for when a person asked ("Check for updates"): rollouts
    /// that allow it let such checks past their percentage.
    pub async fn check_interactive(&self) -> Result<CheckOutcome, Error> {
        self.checked(CheckKind::Interactive).await?.outcome
    }

    pub(crate) async fn checked(&self, kind: CheckKind) -> Result<Checked, Error> {
        let mut request = self.check_request(kind);
        let nonce = self.inner.answers.as_ref().map(|pins| {
            let nonce = AnswerCheck::nonce();
            request.nonce = Some(nonce.clone());
            request.answer_key = Some(pins.preferred().clone());
            nonce
        });
        let answer = self.inner.api.check(&request).await?;
        if let (Some(pins), Some(nonce)) = (&self.inner.answers, &nonce) {
            pins.verify(&self.inner.app, &self.inner.device_id, nonce, &answer.body, answer.proof.as_deref())?;
        }
        let response = answer.parse()?;
        // With an offer, newer key documents first: it is judged by the newest keys (a
        // rotated-out key no longer counts). Without one there is nothing to judge, and no
        // extra request.
        if response.update.is_some() {
            self.refresh_keys().await?;
        }
        let keys = self.inner.keys.current();
        self.inner.reporter.remember(&request.current_version, &request.channel, &response);
        let held = std::mem::take(&mut *self.inner.after_check.lock().unwrap_or_else(PoisonError::into_inner));
        for (kind, version) in held {
            self.report(kind, &version);
        }
        self.report_revert().await;
        let watermark = self.inner.cached_watermark().clone();
        let channel = self.channel();
        let device = Device {
            channel: &channel,
            ladder: &self.inner.ladder,
            running: &self.inner.running,
            target: &self.inner.target,
            watermark: watermark.as_ref(),
            reverted: self.inner.reverted.as_ref(),
            max_size: self.inner.max_download_size,
            keys: &keys,
        };
        let offered = response.update.as_ref().map(|o| o.version.clone());
        let checked = Checked::from_response(response, &device, |url| self.inner.api.resolve(url));
        if let (Some(version), Err(Error::Refused(refusal))) = (offered, &checked.outcome) {
            self.report_key_refusal(version, refusal);
        }
        Ok(checked)
    }

    /// Queues the revert found at start-up as `install_failed`, once: the journal records that
    /// it was reported. Runs after a check-in, whose answer brought the report token the event
    /// needs (the server offers the reverted version until it stops it). If the record cannot
    /// be written, a later client reports it again, which the server counts once.
    async fn report_revert(&self) {
        let pending = self.inner.unreported_revert.lock().unwrap_or_else(PoisonError::into_inner).take();
        let Some((version, reason)) = pending else { return };
        self.report_with_detail(EventKind::InstallFailed, &version, &format!("reverted: {reason}"));
        let inner = self.inner.clone();
        let marked = off_runtime(move || -> Result<(), StateError> {
            let Some(mut journal) = inner.state.journal()? else { return Ok(()) };
            if let Phase::Reverted { reason, .. } = journal.phase {
                journal.phase = Phase::Reverted { reason, reported: true };
                inner.state.set_journal(&journal)?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = marked {
            tracing::warn!(error = %e, "could not record that the revert was reported");
        }
    }

    /// Reports an offer refused because of its signing keys, once per version and reason: the
    /// release engineer learns that the build can never install here (a key the app does not
    /// trust), without an event at every poll.
    fn report_key_refusal(&self, version: Version, refusal: &Refusal) {
        if !matches!(refusal, Refusal::UntrustedKey { .. } | Refusal::TooFewTrustedKeys { .. }) {
            return;
        }
        let detail = format!("refused before download: {refusal}");
        let first = {
            let mut reported = self.inner.key_refusals_reported.lock().unwrap_or_else(PoisonError::into_inner);
            if reported.len() >= 64 {
                reported.clear();
            }
            reported.insert((version.clone(), detail.clone()))
        };
        if first {
            self.report_with_detail(EventKind::DownloadFailed, &version, &detail);
        }
    }

    /// Fetches the app's release key documents newer than the one this device trusts and
    /// walks them (each signed by enough of the previous keys and of its own); the version
    /// trusted afterwards. [`check`](Self::check) does this whenever it is offered an update,
    /// before judging the offer. A chain that does not hold
    /// is an [`Error::KeyChain`], and the device keeps trusting what it trusted.
    pub async fn refresh_keys(&self) -> Result<u64, Error> {
        self.inner.keys.refresh(&self.inner.api, &self.inner.state).await
    }

    /// The version of the newest release key document this device trusts (1: the keys
    /// compiled into the app).
    pub fn key_version(&self) -> u64 {
        self.inner.keys.current().version()
    }

    fn check_request(&self, kind: CheckKind) -> CheckRequest {
        let traits = self.inner.traits.read().unwrap_or_else(PoisonError::into_inner).clone();
        CheckRequest {
            device_id: self.inner.device_id.clone(),
            user_id: self.user(),
            current_version: self.inner.running.clone(),
            channel: self.channel(),
            os: self.inner.target.os.clone(),
            arch: self.inner.target.arch.clone(),
            os_version: self.inner.os_version.clone(),
            locale: self.inner.locale.clone(),
            traits: Traits::new(traits).expect("set_trait keeps at most MAX_TRAITS"),
            interactive: kind == CheckKind::Interactive,
            nonce: None,
            answer_key: None,
            current_sha256: self.inner.running_build.as_ref().map(|b| b.blob().sha256),
        }
    }

    /// Starts a [`Poller`] that checks now and then on the server's schedule, calling
    /// `on_outcome` with every result (on a runtime thread; keep it quick). Must be called on
    /// a tokio runtime. The poller stops when the returned handle is dropped.
    pub fn start_poller(
        &self,
        policy: PollPolicy,
        on_outcome: impl FnMut(Result<CheckOutcome, Error>) + Send + 'static,
    ) -> Poller {
        let client = self.clone();
        Poller::spawn(
            policy,
            move || {
                let client = client.clone();
                async move { client.checked(CheckKind::Background).await }
            },
            on_outcome,
            rand::random::<f64>,
        )
    }

    // ---------- downloading ----------

    /// Downloads `update` to `dest` and verifies it; the only way to get a [`VerifiedFile`].
    ///
    /// Bytes go to `<dest>.<sha256>.part` first (partial files of other builds for `dest` are
    /// removed); an interrupted download (stall, broken connection, a rate below
    /// [`min_download_rate`](crate::ClientBuilder::min_download_rate), the
    /// [`download_deadline`](crate::ClientBuilder::download_deadline)) keeps that file and the
    /// next call for the same build resumes it with a `Range` request. Once the signed
    /// size is reached, the file's SHA-256 and ed25519 signature are checked, and the version
    /// must still be newer than the running one and not below the watermark. Only then is the
    /// watermark raised and the file renamed to `dest` (replacing what was there). A file that
    /// fails verification, or a server that sends more than the signed size, gets the part
    /// file deleted and an [`Error::Rejected`]. Reports `download_started`, and
    /// `download_failed` with the error, as events.
    ///
    /// Give each concurrent download its own `dest`: two downloads into one part file would
    /// mix their bytes (and then fail verification).
    pub async fn download(
        &self,
        update: &Update,
        dest: impl AsRef<Path>,
        mut progress: impl Progress,
    ) -> Result<VerifiedFile, Error> {
        let dest = dest.as_ref();
        // Refuse before spending bandwidth; verification checks again against the disk.
        if *update.target() != self.inner.target {
            let refusal = Refusal::WrongTarget { offered: update.target().clone(), device: self.inner.target.clone() };
            return Err(refusal.into());
        }
        let watermark = self.inner.cached_watermark().clone();
        admit(
            update.version(),
            update.sha256(),
            &self.inner.running,
            watermark.as_ref(),
            self.inner.reverted.as_ref(),
        )?;
        self.report(EventKind::DownloadStarted, update.version());
        let result = match (&update.patch, &self.inner.running_build) {
            (Some(patch), Some(base)) => match self.fetch_patched(update, patch, base, dest, &mut progress).await {
                Ok(file) => Ok(file),
                Err(reason) => {
                    // Said in the report (the download's event carries it) and in the file's
                    // `delivery`; the full file then goes through every usual check.
                    tracing::warn!(version = %update.version(), %reason, "delta update failed; downloading the full file");
                    let detail = format!("delta_fallback: {reason}");
                    self.report_with_detail(EventKind::DownloadStarted, update.version(), &detail);
                    self.fetch_and_verify(update, dest, &mut progress)
                        .await
                        .map(|f| f.delivered(Delivery::FullAfterPatch { reason }))
                }
            },
            _ => self.fetch_and_verify(update, dest, &mut progress).await,
        };
        if let Err(e) = &result {
            self.report_with_detail(EventKind::DownloadFailed, update.version(), &event_detail(e));
        }
        result
    }

    /// Downloads `patch`, checks it and the base, applies it into the build's part file and
    /// verifies the result as a full download ([`Patched`]).
    async fn fetch_patched(
        &self,
        update: &Update,
        patch: &OfferedPatch,
        base: &RunningBuild,
        dest: &Path,
        progress: &mut dyn Progress,
    ) -> Result<VerifiedFile, PatchFailure> {
        let source = download::Source { url: &patch.url, sha256: &patch.file.sha256, size: patch.file.size };
        let patch_part = download::fetch(&self.inner.api, source, dest, progress)
            .await
            .map_err(|e| PatchFailure::Download(event_detail(&e)))?;
        let (inner, update, patch, base, dest) =
            (self.inner.clone(), update.clone(), patch.clone(), base.clone(), dest.to_owned());
        off_runtime(move || {
            let keys = inner.keys.current();
            let patched = Patched { app: &inner.app, keys: &keys, update: &update, patch: &patch, base: &base };
            let part = download::part_path(&dest, &update.sha256);
            let applied = patched.apply(&patch_part, &part);
            let _ = std::fs::remove_file(&patch_part);
            applied?;
            let verifier = Verifier {
                app: &inner.app,
                keys: &keys,
                running: &inner.running,
                state: &inner.state,
                watermark: &inner.watermark,
            };
            verifier
                .finish(&part, &dest, &update)
                .map(|f| f.delivered(Delivery::Patch { patch_size: patch.file.size }))
                .map_err(|e| PatchFailure::Result(event_detail(&e)))
        })
        .await
    }

    async fn fetch_and_verify(
        &self,
        update: &Update,
        dest: &Path,
        progress: &mut dyn Progress,
    ) -> Result<VerifiedFile, Error> {
        let part = download::fetch(&self.inner.api, update.into(), dest, progress).await?;
        let (inner, update, dest) = (self.inner.clone(), update.clone(), dest.to_owned());
        off_runtime(move || {
            let keys = inner.keys.current();
            let verifier = Verifier {
                app: &inner.app,
                keys: &keys,
                running: &inner.running,
                state: &inner.state,
                watermark: &inner.watermark,
            };
            verifier.finish(&part, &dest, &update)
        })
        .await
    }

    /// Records that `file` was installed by other means (the platform's installer, see
    /// [`PlatformInstaller`](crate::PlatformInstaller)): the device's watermark rises to its
    /// version, so no older build (a replay of a genuine one) is taken from now on, and
    /// `install_succeeded` is reported. Call it once the build is in place, before restarting
    /// into it. (A client built with a version above the watermark raises it too: running a
    /// version proves it was installed.) Downloading and verifying alone never raise the
    /// watermark. Apps that let the SDK install use [`install`](Self::install) and
    /// [`confirm`](Self::confirm) instead.
    pub async fn installed(&self, file: &VerifiedFile) -> Result<(), Error> {
        self.raise_watermark(file).await?;
        self.report(EventKind::InstallSucceeded, file.version());
        Ok(())
    }

    async fn raise_watermark(&self, file: &VerifiedFile) -> Result<(), Error> {
        let inner = self.inner.clone();
        let new = Watermark { version: file.version().clone(), sha256: Some(*file.sha256()) };
        off_runtime(move || -> Result<(), Error> {
            let mut cached = inner.cached_watermark();
            let current = inner.state.watermark()?;
            if new.raises(current.as_ref()) {
                inner.state.set_watermark(&new)?;
                *cached = Some(new);
            } else {
                *cached = current;
            }
            Ok(())
        })
        .await
    }

    /// Installs `file` into `installation` and switches to it atomically (see
    /// [`Installation`]): the app then restarts, and the next
    /// [`Installation::launch`](crate::Installation::launch) starts the new build on trial.
    ///
    /// Only a [`VerifiedFile`] installs, and only while its version is still admitted (newer
    /// than the running one, not below the watermark, not reverted here); its bytes are
    /// hashed again as they are copied or unpacked. The watermark rises to its version once
    /// the switch is done (never for a build that failed to stage). A failure leaves the live
    /// build as it was and is reported as `install_failed`; success is reported when the new
    /// build [confirms](Self::confirm).
    pub async fn install(&self, installation: &Installation, file: &VerifiedFile) -> Result<Installed, Error> {
        if installation.state_dir() != self.inner.state.dir() {
            return Err(InstallError::OtherStateDir.into());
        }
        let watermark = self.inner.state_watermark().await?;
        let journal = {
            let inner = self.inner.clone();
            off_runtime(move || inner.state.journal()).await?
        };
        admit(
            file.version(),
            file.sha256(),
            &self.inner.running,
            watermark.as_ref(),
            journal.as_ref().and_then(|j| j.reverted()),
        )?;
        let (installation, owned) = (installation.clone(), file.clone());
        let installed = match off_runtime(move || installation.install(&owned)).await {
            Ok(installed) => installed,
            Err(e) => {
                self.report_with_detail(EventKind::InstallFailed, file.version(), &install_detail(&e));
                return Err(e.into());
            }
        };
        // After the switch: a build that failed to stage raises nothing. A crash between the
        // switch and here is covered too: the new build raises the mark when it starts, and a
        // revert is refused by the journal whatever the mark says.
        self.raise_watermark(file).await?;
        Ok(installed)
    }

    /// Confirms that the running build started well: call it once, when the app is known to
    /// work (like CodePush's `notifyAppReady`). If the running version is on trial, the
    /// install is recorded as done, the previous build deleted, and `install_succeeded`
    /// reported (after the next check-in if none brought its report token yet); otherwise
    /// nothing changes. A confirmation after the build's limit is
    /// [`InstallError::TooLate`] and the next launch reverts the build.
    pub async fn confirm(&self, installation: &Installation) -> Result<Confirmation, Error> {
        if installation.state_dir() != self.inner.state.dir() {
            return Err(InstallError::OtherStateDir.into());
        }
        let (installation, running) = (installation.clone(), self.inner.running.clone());
        let confirmation = off_runtime(move || installation.confirm(&running)).await?;
        if let Confirmation::Confirmed(version) = &confirmation {
            // A new build confirms early, often before its first check-in: without a report
            // token the event would not count, so it waits for the check-in that brings one.
            if self.inner.reporter.has_token(version, &self.channel()) {
                self.report(EventKind::InstallSucceeded, version);
            } else {
                self.inner
                    .after_check
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((EventKind::InstallSucceeded, version.clone()));
            }
        }
        Ok(confirmation)
    }

    // ---------- reporting ----------

    /// Reports an event about `version` (install succeeded or failed, first run, crash...).
    /// Never waits: the event is queued and sent in the background, in batches, with retries.
    pub fn report(&self, kind: EventKind, version: &Version) {
        self.push_event(kind, version, None);
    }

    /// Like [`report`](Self::report), with a short detail such as an error message (cut to
    /// 1024 characters).
    pub fn report_with_detail(&self, kind: EventKind, version: &Version, detail: &str) {
        self.push_event(kind, version, Some(detail.chars().take(MAX_DETAIL).collect()));
    }

    fn push_event(&self, kind: EventKind, version: &Version, detail: Option<String>) {
        self.inner.reporter.push(Event {
            device_id: self.inner.device_id.clone(),
            kind,
            version: version.clone(),
            channel: self.channel(),
            detail,
            token: None,
        });
    }

    /// Records a value of an app metric the app declared (`halftone app update APP --metric
    /// session_s=higher`) for the running build: a session's length, the time to the first
    /// frame, a business figure. Never waits: values are held in memory (at most 1,000, then
    /// dropped and counted in [`ReportStats::metrics_dropped`]) and sent with the next batch
    /// of events once a check-in has given the running build's report token.
    ///
    /// ```no_run
    /// # async fn f(client: halftone_client::Client) -> Result<(), halftone_client::ParseError> {
    /// use halftone_client::{MetricName, MetricValue};
    /// let session = MetricName::parse("session_s")?;
    /// client.record_metric(&session, MetricValue::new(312.5)?);
    /// client.count(&MetricName::parse("purchases")?, 1);
    /// # Ok(()) }
    /// ```
    pub fn record_metric(&self, name: &MetricName, value: MetricValue) {
        self.inner.reporter.record(&self.inner.running, &self.channel(), name, value);
    }

    /// Adds `n` to a counter metric the app declared (`--metric purchases=counter`) for the
    /// running build; like [`record_metric`](Self::record_metric), it never waits. The server
    /// keeps the sum and how many devices reported it.
    pub fn count(&self, name: &MetricName, n: u64) {
        self.inner.reporter.count(&self.inner.running, &self.channel(), name, n);
    }

    /// Sends the queued events now; for shutdown and tests. Stops at the first failure, which
    /// it returns; unsent events stay queued.
    pub async fn flush(&self) -> Result<(), Error> {
        self.inner.reporter.flush().await
    }

    /// The event queue's counters.
    pub fn report_stats(&self) -> ReportStats {
        self.inner.reporter.stats()
    }

    // ---------- the device and its settings ----------

    /// The channel in use: the user's choice, or the builder's default until there is one.
    pub fn channel(&self) -> ChannelName {
        self.inner.channel.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Records the user's channel choice (what an app's settings screen calls); it is kept in
    /// the state directory and used by every later check.
    ///
    /// Switching to a more stable channel never downgrades: the server offers only versions
    /// newer than the running one, and the SDK refuses anything else. A device that moves from
    /// `beta` 2.0.0-beta.3 to `stable` stays on its version until stable passes it.
    pub fn set_channel(&self, channel: ChannelName) -> Result<(), Error> {
        let mut current = self.inner.channel.write().unwrap_or_else(PoisonError::into_inner);
        self.inner.state.set_channel(&channel)?;
        *current = channel;
        Ok(())
    }

    /// The signed-in user, if the app set one.
    pub fn user(&self) -> Option<UserId> {
        self.inner.user.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Sets the signed-in user, so rollouts that follow people (rather than devices) put this
    /// device where the user's other devices are. Kept in memory only: call it at start-up
    /// and on each sign-in. Use an opaque id, not an email address.
    pub fn set_user(&self, user: UserId) {
        *self.inner.user.write().unwrap_or_else(PoisonError::into_inner) = Some(user);
    }

    /// Forgets the signed-in user (on sign-out).
    pub fn clear_user(&self) {
        *self.inner.user.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Sets a device trait for targeting rules (a tier, the RAM size, ...), kept in memory.
    /// Fails for a string over 256 characters or with control characters, a non-finite number,
    /// or a trait beyond the 64th.
    pub fn set_trait(&self, name: TraitName, value: TraitValue) -> Result<(), Error> {
        check_trait(&value).map_err(|reason| Error::InvalidTrait { reason })?;
        let mut traits = self.inner.traits.write().unwrap_or_else(PoisonError::into_inner);
        if traits.len() >= MAX_TRAITS && !traits.contains_key(&name) {
            return Err(Error::InvalidTrait { reason: format!("at most {MAX_TRAITS} traits") });
        }
        traits.insert(name, value);
        Ok(())
    }

    /// Removes a device trait.
    pub fn remove_trait(&self, name: &str) {
        self.inner.traits.write().unwrap_or_else(PoisonError::into_inner).remove(name);
    }

    /// This device's stable random id.
    pub fn device_id(&self) -> &DeviceId {
        &self.inner.device_id
    }

    /// The app's id.
    pub fn app(&self) -> &AppId {
        &self.inner.app
    }

    /// The running version.
    pub fn version(&self) -> &Version {
        &self.inner.running
    }

    /// The device's os and arch.
    pub fn target(&self) -> &Target {
        &self.inner.target
    }

    /// The device's OS version, if known.
    pub fn os_version(&self) -> Option<&OsVersion> {
        self.inner.os_version.as_ref()
    }

    /// The device's locale, if known.
    pub fn locale(&self) -> Option<&Locale> {
        self.inner.locale.as_ref()
    }
}

impl Inner {
    /// The watermark on disk (another process may have raised it), refreshing the cache.
    async fn state_watermark(self: &Arc<Self>) -> Result<Option<Watermark>, Error> {
        let inner = self.clone();
        off_runtime(move || {
            let mut cached = inner.cached_watermark();
            let current = inner.state.watermark()?;
            cached.clone_from(&current);
            Ok(current)
        })
        .await
    }

    fn cached_watermark(&self) -> MutexGuard<'_, Option<Watermark>> {
        self.watermark.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("app", &self.inner.app)
            .field("version", &self.inner.running)
            .field("target", &self.inner.target)
            .field("device_id", &self.inner.device_id)
            .field("channel", &self.channel())
            .finish_non_exhaustive()
    }
}

/// An error as reported to the server: without local file paths, which may name the user.
fn event_detail(e: &Error) -> String {
    match e {
        Error::Io { source, .. } | Error::State(StateError::Io { source, .. }) => format!("file error: {source}"),
        Error::State(StateError::Corrupt { reason, .. }) => format!("corrupt state file: {reason}"),
        other => other.to_string(),
    }
}

/// An install error as reported to the server: without local file paths.
fn install_detail(e: &InstallError) -> String {
    match e {
        InstallError::Io { source, .. } | InstallError::State(StateError::Io { source, .. }) => {
            format!("install: file error: {source}")
        }
        InstallError::State(StateError::Corrupt { reason, .. }) => format!("install: corrupt state file: {reason}"),
        InstallError::NotInstalled { .. } => "install: no installed build to replace".into(),
        other => format!("install: {other}"),
    }
}

/// Checks a trait value built by hand (its variants are public).
pub(crate) fn check_trait(value: &TraitValue) -> Result<(), String> {
    match value {
        TraitValue::Str(s) => TraitValue::string(s).map(drop).map_err(|e| e.to_string()),
        TraitValue::Num(n) => TraitValue::number(*n).map(drop).map_err(|e| e.to_string()),
        TraitValue::Bool(_) => Ok(()),
    }
}

/// Runs blocking work (file hashing, state files) on tokio's blocking pool, re-raising its
/// panic if it panics.
pub(crate) async fn off_runtime<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        // Cancellation only happens when the runtime shuts down, and then nobody awaits this.
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use halftone_channels::wire::{CheckRequest, EventKind};

    use super::*;
    use crate::BuildError;
    use crate::test_support::{Scenario, Serve, Signed, build_bytes, builder_for, offer};

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    fn sent_checks(scenario: &Scenario) -> Vec<CheckRequest> {
        let requests = scenario.server.requests_to("/v1/apps/notes/check");
        assert!(requests.iter().all(|r| r.method == "POST"));
        requests.iter().map(|r| serde_json::from_slice(&r.body).unwrap()).collect()
    }

    #[tokio::test]
    async fn a_check_sends_the_device_and_its_settings() {
        let scenario = Scenario::empty().await;
        let dir = tempfile::tempdir().unwrap();
        let client = builder_for(&scenario.server.url, dir.path(), "1.0.0")
            .user("user-42")
            .device_trait("tier", TraitValue::Str("gold".into()))
            .build()
            .await
            .unwrap();
        client.set_trait("ram_gb".parse().unwrap(), TraitValue::Num(16.0)).unwrap();
        assert_eq!(client.check().await.unwrap(), CheckOutcome::UpToDate);
        client.clear_user();
        client.check_interactive().await.unwrap();

        let [first, second] = &sent_checks(&scenario)[..] else { panic!("expected two checks") };
        assert_eq!(&first.device_id, client.device_id());
        assert_eq!(first.user_id.as_ref().map(UserId::as_str), Some("user-42"));
        assert_eq!(first.current_version, v("1.0.0"));
        assert_eq!(first.channel, ChannelName::stable());
        assert_eq!((first.os.as_str(), first.arch.as_str()), ("linux", "x86_64"));
        assert_eq!(first.os_version.as_ref().map(OsVersion::as_str), Some("6.1"));
        assert_eq!(first.locale.as_ref().map(Locale::as_str), Some("en-us"));
        assert_eq!(first.traits.get("tier"), Some(&TraitValue::Str("gold".into())));
        assert_eq!(first.traits.get("ram_gb"), Some(&TraitValue::Num(16.0)));
        assert!(!first.interactive);
        assert!(second.interactive);
        assert_eq!(second.user_id, None);
    }

    #[tokio::test]
    async fn a_check_refuses_offers_that_are_not_newer() {
        for (running, offered) in [("1.1.0", "1.1.0"), ("1.1.0", "1.0.9"), ("2.0.0", "2.0.0-rc.1")] {
            let scenario = Scenario::genuine(offered).await;
            let dir = tempfile::tempdir().unwrap();
            let result = scenario.client(dir.path(), running).await.check().await;
            let expected = Refusal::NotNewer { offered: v(offered), running: v(running) };
            assert!(matches!(&result, Err(Error::Refused(r)) if *r == expected), "{running} {offered}: {result:?}");
        }
    }

    #[tokio::test]
    async fn a_check_refuses_offers_for_another_platform() {
        let scenario = Scenario::empty().await;
        let bytes = build_bytes("1.1.0");
        let mut windows = offer("1.1.0", &bytes, &Signed { os: "windows", ..Signed::genuine("1.1.0") });
        windows.artifact.os = "windows".parse().unwrap();
        scenario.offer(windows, &bytes);
        let dir = tempfile::tempdir().unwrap();
        let result = scenario.client(dir.path(), "1.0.0").await.check().await;
        assert!(matches!(result, Err(Error::Refused(Refusal::WrongTarget { .. }))), "{result:?}");
    }

    #[tokio::test]
    async fn server_errors_carry_the_problem_and_retry_after() {
        let scenario = Scenario::empty().await;
        scenario.world().check_failure = Some((429, Some(7)));
        let dir = tempfile::tempdir().unwrap();
        let err = scenario.client(dir.path(), "1.0.0").await.check().await.unwrap_err();
        let Error::Server { status: 429, problem: Some(problem), retry_after } = &err else { panic!("{err:?}") };
        assert_eq!(problem.status, 429);
        assert_eq!(*retry_after, Some(Duration::from_secs(7)));
        assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
        assert!(err.to_string().contains("the fake server answers 429"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_network_error() {
        // A port that was just free: nothing listens there, so the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let client = builder_for(&format!("http://127.0.0.1:{port}"), dir.path(), "1.0.0").build().await.unwrap();
        let err = client.check().await.unwrap_err();
        assert!(matches!(err, Error::Network { .. }), "{err:?}");
    }

    #[tokio::test]
    async fn the_device_id_is_stable_across_restarts() {
        let scenario = Scenario::empty().await;
        let dir = tempfile::tempdir().unwrap();
        let first = scenario.client(dir.path(), "1.0.0").await;
        let again = scenario.client(dir.path(), "1.1.0").await;
        assert_eq!(first.device_id(), again.device_id());
        assert_eq!(first.device_id().as_str().len(), 32);
        let other_dir = tempfile::tempdir().unwrap();
        assert_ne!(first.device_id(), scenario.client(other_dir.path(), "1.0.0").await.device_id());
    }

    #[tokio::test]
    async fn the_channel_choice_persists() {
        let scenario = Scenario::empty().await;
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        assert_eq!(client.channel(), ChannelName::stable());
        client.set_channel(ChannelName::beta()).unwrap();
        drop(client);
        let restarted = scenario.client(dir.path(), "1.0.0").await;
        assert_eq!(restarted.channel(), ChannelName::beta());
        restarted.check().await.unwrap();
        assert_eq!(sent_checks(&scenario).last().unwrap().channel, ChannelName::beta());
        // The builder's default applies only until the user chooses.
        let defaulted = builder_for(&scenario.server.url, dir.path(), "1.0.0").default_channel("unstable");
        assert_eq!(defaulted.build().await.unwrap().channel(), ChannelName::beta());
    }

    #[tokio::test]
    async fn corrupt_state_is_a_build_error() {
        let scenario = Scenario::empty().await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("watermark"), "3.0.0\n").unwrap();
        let err = builder_for(&scenario.server.url, dir.path(), "1.0.0").build().await.unwrap_err();
        assert!(matches!(err, BuildError::State(StateError::Corrupt { .. })), "{err:?}");
        assert_eq!(std::fs::read_to_string(dir.path().join("watermark")).unwrap(), "3.0.0\n", "left as found");
    }

    #[tokio::test]
    async fn settings_are_checked_when_building() {
        let dir = tempfile::tempdir().unwrap();
        let base = || builder_for("http://127.0.0.1:1", dir.path(), "1.0.0");
        let err = |b: ClientBuilder| async move { b.build().await.unwrap_err().to_string() };
        assert!(err(Client::builder()).await.contains("ClientBuilder::app"));
        assert!(err(base().version("1.0")).await.contains("invalid version"));
        assert!(err(base().trusted_key("k2", "00")).await.contains("invalid trusted_key"));
        assert!(err(base().server("ftp://x")).await.contains("invalid server"));
        assert!(err(base().platform("Linux", "x86_64")).await.contains("invalid platform"));
        assert!(err(base().device_trait("t", TraitValue::Num(f64::NAN))).await.contains("invalid device_trait"));
        let keyless =
            Client::builder().server("http://127.0.0.1:1").app("notes").version("1.0.0").state_dir(dir.path());
        assert!(matches!(keyless.build().await, Err(BuildError::NoTrustedKeys)));
    }

    #[tokio::test]
    async fn traits_are_validated() {
        let scenario = Scenario::empty().await;
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        let long = TraitValue::Str("x".repeat(300).into());
        assert!(matches!(client.set_trait("t".parse().unwrap(), long), Err(Error::InvalidTrait { .. })));
        for i in 0..MAX_TRAITS {
            client.set_trait(format!("t{i}").parse().unwrap(), TraitValue::Bool(true)).unwrap();
        }
        let err = client.set_trait("one-more".parse().unwrap(), TraitValue::Bool(true)).unwrap_err();
        assert!(err.to_string().contains("at most 64"), "{err}");
        client.set_trait("t0".parse().unwrap(), TraitValue::Bool(false)).unwrap();
        client.remove_trait("t1");
        client.set_trait("one-more".parse().unwrap(), TraitValue::Bool(true)).unwrap();
        client.check().await.unwrap();
    }

    #[tokio::test]
    async fn events_are_sent_in_batches_of_at_most_100() {
        let scenario = Scenario::empty().await;
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.1.0").await;
        client.set_channel(ChannelName::beta()).unwrap();
        for _ in 0..249 {
            client.report(EventKind::FirstRun, &v("1.1.0"));
        }
        client.report_with_detail(EventKind::Crash, &v("1.1.0"), &"e".repeat(5000));
        client.flush().await.unwrap();
        let batches = scenario.world().batches.clone();
        let sizes: Vec<usize> = batches.iter().map(|b| b.events.len()).collect();
        assert_eq!(sizes, [100, 100, 50]);
        let last = batches[2].events.last().unwrap();
        assert_eq!((last.kind, last.detail.as_ref().map(|d| d.len())), (EventKind::Crash, Some(1024)));
        assert_eq!((&last.device_id, &last.channel), (client.device_id(), &ChannelName::beta()));
        let stats = client.report_stats();
        assert_eq!((stats.queued, stats.sent, stats.dropped), (0, 250, 0));
    }

    #[tokio::test]
    async fn a_full_queue_drops_the_oldest_and_failed_batches_wait() {
        let scenario = Scenario::empty().await;
        scenario.world().events_failure = Some(503);
        let dir = tempfile::tempdir().unwrap();
        let client =
            builder_for(&scenario.server.url, dir.path(), "1.0.0").event_queue_capacity(10).build().await.unwrap();
        for patch in 0..15 {
            client.report(EventKind::FirstRun, &Version::new(1, 0, patch));
        }
        assert_eq!((client.report_stats().queued, client.report_stats().dropped), (10, 5));
        let err = client.flush().await.unwrap_err();
        assert!(matches!(err, Error::Server { status: 503, .. }), "{err:?}");
        assert_eq!(client.report_stats().queued, 10, "a failed batch is kept");

        scenario.world().events_failure = None;
        client.flush().await.unwrap();
        let patches: Vec<u64> =
            scenario.world().batches.iter().flat_map(|b| &b.events).map(|e| e.version.as_semver().patch).collect();
        assert_eq!(patches, (5..15).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn refused_batches_are_counted_not_retried() {
        let scenario = Scenario::empty().await;
        scenario.world().events_failure = Some(400);
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        client.report(EventKind::FirstRun, &v("1.0.0"));
        assert!(client.flush().await.is_err());
        let stats = client.report_stats();
        assert_eq!((stats.queued, stats.rejected), (0, 1));
    }

    #[tokio::test]
    async fn events_are_sent_in_the_background() {
        let scenario = Scenario::empty().await;
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        client.report(EventKind::InstallSucceeded, &v("1.0.0"));
        tokio::time::timeout(Duration::from_secs(30), async {
            while client.report_stats().sent == 0 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("the background sender delivers");
        assert_eq!(scenario.world().batches[0].events[0].kind, EventKind::InstallSucceeded);
    }

    #[tokio::test]
    async fn downloads_report_started_and_failed() {
        let scenario = Scenario::genuine("1.1.0").await;
        scenario.serve_next(Serve::Replace(vec![0; 100_000]));
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!() };
        assert!(client.download(&update, dir.path().join("u.bin"), |_, _| {}).await.is_err());
        client.flush().await.unwrap();
        let events: Vec<_> = scenario.world().batches.iter().flat_map(|b| b.events.clone()).collect();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [EventKind::DownloadStarted, EventKind::DownloadFailed]);
        assert!(events[1].detail.as_deref().unwrap().contains("sha256"), "{:?}", events[1].detail);
        assert!(events.iter().all(|e| e.version == v("1.1.0")));
    }

    #[tokio::test]
    async fn the_poller_delivers_outcomes_until_stopped() {
        let scenario = Scenario::genuine("1.1.0").await;
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let poller = client.start_poller(PollPolicy::default(), move |outcome| {
            let _ = tx.send(outcome);
        });
        let first = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.unwrap().unwrap();
        assert!(matches!(first, Ok(CheckOutcome::Available(u)) if *u.version() == v("1.1.0")));
        poller.stop().await;
        assert!(rx.recv().await.is_none(), "the callback (and its sender) is gone once stopped");
    }

    #[tokio::test]
    async fn handles_and_futures_cross_threads() {
        fn send_sync<T: Send + Sync>(_: &T) {}
        fn send<T: Send>(_: T) {}
        let scenario = Scenario::genuine("1.1.0").await;
        let dir = tempfile::tempdir().unwrap();
        let client = scenario.client(dir.path(), "1.0.0").await;
        let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!() };
        send_sync(&client);
        send_sync(&update);
        send_sync(&Error::Timeout { after: Duration::ZERO });
        send_sync(&BuildError::NoTrustedKeys);
        send_sync(&client.start_poller(PollPolicy::default(), |_| {}));
        // Futures do nothing until polled: these are only built, to prove they can be spawned.
        send(client.check());
        send(client.download(&update, dir.path().join("x"), |_, _| {}));
        send(client.flush());
        send(Client::builder().build());
    }

    #[tokio::test]
    async fn offers_larger_than_the_app_allows_are_refused() {
        let scenario = Scenario::genuine("1.1.0").await;
        let dir = tempfile::tempdir().unwrap();
        let client =
            builder_for(&scenario.server.url, dir.path(), "1.0.0").max_download_size(99_999).build().await.unwrap();
        let result = client.check().await;
        assert!(matches!(result, Err(Error::Refused(Refusal::TooLarge { size: 100_000, limit: 99_999 }))));
    }

    #[tokio::test]
    async fn an_install_that_never_confirms_is_reverted_reported_once_and_refused() {
        use crate::{Installation, LaunchOutcome};
        let scenario = Scenario::genuine("1.1.0").await;
        let dir = tempfile::tempdir().unwrap();
        let (state, app) = (dir.path().join("state"), dir.path().join("app"));
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("notes"), "1.0.0").unwrap();
        let installation = Installation::executable(&app, "notes", &state).unwrap();

        let client = scenario.client(&state, "1.0.0").await;
        let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!() };
        let file = client.download(&update, dir.path().join("dl"), |_, _| {}).await.unwrap();
        let elsewhere = Installation::executable(&app, "notes", dir.path().join("other")).unwrap();
        assert!(matches!(client.install(&elsewhere, &file).await, Err(Error::Install(InstallError::OtherStateDir))));
        client.install(&installation, &file).await.unwrap();
        assert_eq!(std::fs::read(app.join("notes")).unwrap(), build_bytes("1.1.0"));
        client.flush().await.unwrap();
        drop(client);

        // The new build starts, crashes before confirming; the next start reverts it.
        assert!(matches!(installation.launch().unwrap().outcome(), LaunchOutcome::Trial { .. }));
        assert!(matches!(installation.launch().unwrap().outcome(), LaunchOutcome::Reverted { .. }));
        assert_eq!(std::fs::read_to_string(app.join("notes")).unwrap(), "1.0.0");

        // The old build's client reports the failed install once, and refuses the build.
        for _ in 0..2 {
            let client = scenario.client(&state, "1.0.0").await;
            let refused = client.check().await;
            let expected = Refusal::Reverted { offered: v("1.1.0"), reverted: v("1.1.0") };
            assert!(matches!(&refused, Err(Error::Refused(r)) if *r == expected), "{refused:?}");
            assert!(matches!(
                client.download(&update, dir.path().join("dl2"), |_, _| {}).await,
                Err(Error::Refused(_))
            ));
            assert!(matches!(client.install(&installation, &file).await, Err(Error::Refused(_))));
            client.flush().await.unwrap();
        }
        let events: Vec<_> = scenario.world().batches.iter().flat_map(|b| b.events.clone()).collect();
        let failed: Vec<_> = events.iter().filter(|e| e.kind == EventKind::InstallFailed).collect();
        assert_eq!(failed.len(), 1, "{events:?}");
        assert_eq!(failed[0].version, v("1.1.0"));
        assert!(failed[0].detail.as_deref().unwrap().starts_with("reverted: did not confirm"), "{:?}", failed[0]);
        assert!(!events.iter().any(|e| e.kind == EventKind::InstallSucceeded));
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_build_that_fails_to_stage_raises_nothing_and_is_reported() {
        use crate::Installation;
        let scenario = Scenario::genuine("1.1.0").await;
        let dir = tempfile::tempdir().unwrap();
        let (state, app) = (dir.path().join("state"), dir.path().join("app"));
        std::fs::create_dir_all(app.join("versions/1.0.0/bin")).unwrap();
        std::fs::write(app.join("versions/1.0.0/bin/notes"), "1.0.0").unwrap();
        std::os::unix::fs::symlink("versions/1.0.0", app.join("current")).unwrap();
        let installation = Installation::directory(&app, "bin/notes", &state).unwrap();
        let client = scenario.client(&state, "1.0.0").await;
        let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!() };
        let file = client.download(&update, dir.path().join("dl"), |_, _| {}).await.unwrap();
        // The fake server's build is not an archive: the directory layout cannot stage it.
        let err = client.install(&installation, &file).await.unwrap_err();
        assert!(matches!(err, Error::Install(InstallError::UnknownFormat)), "{err:?}");
        assert_eq!(std::fs::read_link(app.join("current")).unwrap(), std::path::Path::new("versions/1.0.0"));
        let mark = crate::state::StateDir::open(&state).unwrap().watermark().unwrap().unwrap();
        assert_eq!((mark.version, mark.sha256), (v("1.0.0"), None), "the running version's mark, not 1.1.0's");
        client.flush().await.unwrap();
        let events: Vec<_> = scenario.world().batches.iter().flat_map(|b| b.events.clone()).collect();
        let failed = events.iter().find(|e| e.kind == EventKind::InstallFailed).expect("reported");
        assert_eq!(failed.detail.as_deref(), Some("install: the build is not a tar.gz or zip archive"));
    }

    #[tokio::test]
    async fn a_confirmed_install_reports_success() {
        use crate::{Confirmation, Installation, LaunchOutcome};
        let scenario = Scenario::genuine("1.1.0").await;
        let dir = tempfile::tempdir().unwrap();
        let (state, app) = (dir.path().join("state"), dir.path().join("app"));
        std::fs::create_dir_all(&app).unwrap();
        std::fs::write(app.join("notes"), "1.0.0").unwrap();
        let installation = Installation::executable(&app, "notes", &state).unwrap();
        let client = scenario.client(&state, "1.0.0").await;
        let CheckOutcome::Available(update) = client.check().await.unwrap() else { panic!() };
        let file = client.download(&update, dir.path().join("dl"), |_, _| {}).await.unwrap();
        client.install(&installation, &file).await.unwrap();
        assert!(matches!(installation.launch().unwrap().outcome(), LaunchOutcome::Trial { .. }));
        let restarted = scenario.client(&state, "1.1.0").await;
        assert_eq!(restarted.confirm(&installation).await.unwrap(), Confirmation::Confirmed(v("1.1.0")));
        assert_eq!(restarted.confirm(&installation).await.unwrap(), Confirmation::NothingPending);
        restarted.flush().await.unwrap();
        let sent = |s: &Scenario| {
            s.world()
                .batches
                .iter()
                .flat_map(|b| b.events.clone())
                .filter(|e| e.kind == EventKind::InstallSucceeded)
                .count()
        };
        assert_eq!(sent(&scenario), 0, "held until a check-in brings the report token");
        // The fake server offers 1.1.0 again, which the SDK refuses; the check-in still happened.
        let _ = restarted.check().await;
        restarted.flush().await.unwrap();
        assert_eq!(sent(&scenario), 1);
        let kinds: Vec<_> =
            scenario.world().batches.iter().flat_map(|b| b.events.clone()).map(|e| (e.kind, e.version)).collect();
        assert!(kinds.contains(&(EventKind::InstallSucceeded, v("1.1.0"))), "{kinds:?}");
        assert_eq!(installation.launch().unwrap().outcome(), &LaunchOutcome::Settled);
    }

    #[test]
    fn reported_errors_name_no_local_paths() {
        let io = || std::io::Error::new(std::io::ErrorKind::StorageFull, "disk full");
        let e = Error::Io { path: "/home/alice/Downloads/x.part".into(), source: io() };
        assert_eq!(event_detail(&e), "file error: disk full");
        let e = Error::State(StateError::Corrupt { path: "/home/alice/s/watermark".into(), reason: "bad".into() });
        assert!(!event_detail(&e).contains("alice"));
    }
}
