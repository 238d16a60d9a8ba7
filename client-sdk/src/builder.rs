//! [`ClientBuilder`]: the settings an app gives the SDK once, at start-up.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use halftone_channels::wire::KeyDocumentSpec;
use halftone_channels::{
    AppId, ChannelName, KeyDocument, KeyId, Ladder, Locale, MAX_TRAITS, OsVersion, PublicKey, SignedKeyDocument,
    Target, Threshold, TraitName, TraitValue, TrustedKeys, UserId, Version,
};

use crate::answer::AnswerCheck;
use crate::api::{Api, Timeouts};
use crate::client::{Client, Parts};
use crate::delta::RunningBuild;
use crate::host;
use crate::journal::Phase;
use crate::keys::KeyTrust;
use crate::origin::AllowedHost;
use crate::pace::DownloadLimits;
use crate::state::StateDir;
use crate::watermark::Watermark;
use crate::{BuildError, client};

/// Settings for a [`Client`]; start with [`Client::builder`].
///
/// Required: [`server`](Self::server), [`app`](Self::app), [`version`](Self::version), at
/// least one [`trusted_key`](Self::trusted_key) and [`state_dir`](Self::state_dir). The
/// platform, OS version and locale are detected unless given.
#[derive(Debug, Clone)]
#[must_use]
pub struct ClientBuilder {
    server: Option<String>,
    app: Option<String>,
    version: Option<String>,
    platform: Option<(String, String)>,
    os_version: Option<String>,
    locale: Option<String>,
    keys: Vec<(String, String)>,
    key_threshold: u64,
    key_document: Option<String>,
    answer_keys: Vec<String>,
    answer_skew: Duration,
    custom_channels: Vec<(String, u16)>,
    state_dir: Option<PathBuf>,
    default_channel: Option<String>,
    user: Option<String>,
    traits: Vec<(String, TraitValue)>,
    timeouts: Timeouts,
    event_queue: usize,
    max_download_size: u64,
    running_build: Option<PathBuf>,
    download_hosts: Vec<String>,
    download_limits: DownloadLimits,
}

/// The default [`ClientBuilder::max_download_size`]: 8 GiB.
const DEFAULT_MAX_DOWNLOAD: u64 = 8 << 30;

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            server: None,
            app: None,
            version: None,
            platform: None,
            os_version: None,
            locale: None,
            keys: Vec::new(),
            key_threshold: 1,
            key_document: None,
            answer_keys: Vec::new(),
            answer_skew: Duration::from_secs(300),
            custom_channels: Vec::new(),
            state_dir: None,
            default_channel: None,
            user: None,
            traits: Vec::new(),
            timeouts: Timeouts {
                connect: Duration::from_secs(10),
                request: Duration::from_secs(30),
                stall: Duration::from_secs(30),
            },
            event_queue: 1000,
            max_download_size: DEFAULT_MAX_DOWNLOAD,
            running_build: None,
            download_hosts: Vec::new(),
            download_limits: DownloadLimits::default(),
        }
    }
}

impl ClientBuilder {
    /// The server's base URL, e.g. `https://updates.example.com` (a path prefix is kept).
    pub fn server(mut self, url: &str) -> Self {
        self.server = Some(url.to_owned());
        self
    }

    /// The app's id on the server, e.g. `notes`.
    pub fn app(mut self, id: &str) -> Self {
        self.app = Some(id.to_owned());
        self
    }

    /// The version of the running app, e.g. `1.4.2` (usually `env!("CARGO_PKG_VERSION")`).
    pub fn version(mut self, version: &str) -> Self {
        self.version = Some(version.to_owned());
        self
    }

    /// Overrides the detected os and arch (Halftone names: `windows`, `macos`, `linux`,
    /// `android`, `ios`; `x86_64`, `aarch64`, ...).
    pub fn platform(mut self, os: &str, arch: &str) -> Self {
        self.platform = Some((os.to_owned(), arch.to_owned()));
        self
    }

    /// Overrides the detected OS version, e.g. `14.2`.
    pub fn os_version(mut self, version: &str) -> Self {
        self.os_version = Some(version.to_owned());
        self
    }

    /// Overrides the locale read from the environment, e.g. `zh-CN`.
    pub fn locale(mut self, locale: &str) -> Self {
        self.locale = Some(locale.to_owned());
        self
    }

    /// Trusts the ed25519 key `public_key_hex` (64 hex digits) under `id`. These are the keys
    /// compiled into the app; a download verifies only if one of them signed it. Call once
    /// per key. Together they are the app's key document version 1; later versions, signed
    /// by these keys, are fetched from the server and verified (docs/api.md §8, "Key
    /// documents"), and the newest verified one is kept in the state directory.
    pub fn trusted_key(mut self, id: &str, public_key_hex: &str) -> Self {
        self.keys.push((id.to_owned(), public_key_hex.to_owned()));
        self
    }

    /// Declares one of the app's custom channels with its rank (as the server's app settings
    /// have it; `stable` 100, `beta` 200 and `unstable` 300 are built in). The SDK takes a
    /// build only through the device's channel or a more stable one, so a device on a channel
    /// the SDK knows never takes a less stable channel's build.
    pub fn custom_channel(mut self, name: &str, rank: u16) -> Self {
        self.custom_channels.push((name.to_owned(), rank));
        self
    }

    /// Trusts the signed key document `json` (a `KeyDocumentSpec`: an entry of `halftone keys
    /// list --json`, or of `GET /v1/apps/{app}/keys`) instead of
    /// [`trusted_key`](Self::trusted_key) calls: for apps built after a rotation, which compile
    /// in the newest document at its true version so that devices walk on from it. It is
    /// trusted as compiled in (its signatures are not checked); newer ones still are.
    pub fn trusted_keys_document(mut self, json: &str) -> Self {
        self.key_document = Some(json.to_owned());
        self
    }

    /// How many distinct [`trusted_key`](Self::trusted_key)s must sign a build (k-of-n), and
    /// the next key document: 1 (the default) up to the number of keys.
    pub fn key_threshold(mut self, k: u64) -> Self {
        self.key_threshold = k;
        self
    }

    /// Pins the server's answer key `public_key_hex` (64 hex digits, from `halftone
    /// answer-key list` or `GET /v1/answer-keys`). With at least one pinned, every check-in
    /// sends a fresh nonce and believes only an answer whose proof this key (or another pinned
    /// one) signed for this device and nonce, and that has not expired; any other answer is
    /// [`Error::Unverified`](crate::Error::Unverified), never "up to date". Call once per key;
    /// the last one pinned is the one the server is asked to sign with (pin the next key
    /// before the server rotates to it).
    pub fn answer_key(mut self, public_key_hex: &str) -> Self {
        self.answer_keys.push(public_key_hex.to_owned());
        self
    }

    /// How far the device's clock may be behind the server's before a fresh signed answer
    /// looks expired (default 5 minutes). The nonce already makes every recorded answer
    /// useless; the expiry only bounds how long an answer may be held back.
    pub fn answer_clock_skew(mut self, skew: Duration) -> Self {
        self.answer_skew = skew;
        self
    }

    /// Where the SDK keeps its state (device id, channel choice, version watermark); created
    /// if missing. Use the app's persistent data directory, not a cache directory: clearing it
    /// makes the device a new one to the server's rollouts.
    pub fn state_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.state_dir = Some(dir.into());
        self
    }

    /// The channel used until the user chooses one with [`Client::set_channel`]. Default:
    /// `stable`.
    pub fn default_channel(mut self, channel: &str) -> Self {
        self.default_channel = Some(channel.to_owned());
        self
    }

    /// The signed-in user at start-up (see [`Client::set_user`]).
    pub fn user(mut self, id: &str) -> Self {
        self.user = Some(id.to_owned());
        self
    }

    /// A device trait the server's targeting rules can use (see [`Client::set_trait`]).
    pub fn device_trait(mut self, name: &str, value: TraitValue) -> Self {
        self.traits.push((name.to_owned(), value));
        self
    }

    /// The longest wait to connect to the server. Default: 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// The longest a check-in or an event batch may take, answer included. Default: 30 s.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.request = timeout;
        self
    }

    /// During a download, the longest wait for the server to start answering or to send more
    /// bytes; a download that stalls longer fails with [`Error::Timeout`](crate::Error::Timeout)
    /// and resumes on the next call. Default: 30 s.
    pub fn stall_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.stall = timeout;
        self
    }

    /// The longest one [`download`](crate::Client::download) call may take, whatever the
    /// rate; past it the call fails with
    /// [`Error::DeadlineExceeded`](crate::Error::DeadlineExceeded), keeps the partial file and
    /// the next call resumes it. Default: derived from the build's size, 10 minutes plus the
    /// time to transfer it at 16 KiB/s (about 1 h 50 min for 100 MiB). More than zero, at
    /// most 7 days.
    pub fn download_deadline(mut self, deadline: Duration) -> Self {
        self.download_limits.deadline = Some(deadline);
        self
    }

    /// The slowest a download may be: on average at least `bytes_per_second` over the last
    /// `window`, judged once a whole window has passed. A server that trickles (a byte now
    /// and then, each just within the [stall timeout](Self::stall_timeout)) fails with
    /// [`Error::TooSlow`](crate::Error::TooSlow) within about one window; the partial file is
    /// kept and the next call resumes it. Default: 1 KiB/s over 30 s. The rate must be 1 byte/s
    /// to 100 MiB/s, the window 100 ms to 1 hour.
    pub fn min_download_rate(mut self, bytes_per_second: u64, window: Duration) -> Self {
        self.download_limits.min_rate = bytes_per_second;
        self.download_limits.window = window;
        self
    }

    /// Also downloads from `host` (`cdn.example.com`, or `cdn.example.com:8443` for a port
    /// other than the scheme's default). By default a download may only come from the
    /// server's own origin (scheme, host and port): an offer naming another host is refused
    /// at check time with [`Refusal::HostNotAllowed`](crate::Refusal::HostNotAllowed), and so
    /// is a redirect to one during a download, before any request to it. Allow the hosts
    /// your server hands downloads to: its bucket's host when it redirects to pre-signed URLs
    /// (`--artifact-downloads redirect`), its CDN's (`cdn=`), and those of external artifact
    /// URLs. When the server is `https`, downloads are `https` too, from any host
    /// ([`Refusal::InsecureUrl`](crate::Refusal::InsecureUrl)). Call once per host; no
    /// wildcards.
    pub fn allow_download_host(mut self, host: &str) -> Self {
        self.download_hosts.push(host.to_owned());
        self
    }

    /// The largest build the app accepts, in bytes; larger offers are refused at check time.
    /// Default: 8 GiB.
    pub fn max_download_size(mut self, bytes: u64) -> Self {
        self.max_download_size = bytes;
        self
    }

    /// The file of the build that runs now, exactly as it was downloaded (for
    /// [`Layout::Executable`](crate::Layout::Executable), the executable). The client hashes it
    /// once when it is built and sends its digest with each check-in, so the server can offer
    /// a patch from it (delta update), which [`Client::download`](crate::Client::download)
    /// applies, falling back to the full file on any failure. A file that cannot be read
    /// means no patches, never an error.
    pub fn running_build(mut self, file: impl Into<PathBuf>) -> Self {
        self.running_build = Some(file.into());
        self
    }

    /// How many events may wait to be sent before the oldest are dropped. Default: 1000.
    pub fn event_queue_capacity(mut self, capacity: usize) -> Self {
        self.event_queue = capacity;
        self
    }

    /// Builds the client: checks the settings, opens the state directory (creating the device
    /// id on first use), detects what was not given, and starts the background event sender
    /// on the current tokio runtime.
    pub async fn build(self) -> Result<Client, BuildError> {
        let settings = self.parse()?;
        let parts = client::off_runtime(move || settings.prepare()).await?;
        Ok(Client::start(parts))
    }

    /// Checks every setting; no I/O.
    fn parse(self) -> Result<Settings, BuildError> {
        fn invalid(setting: &'static str) -> impl Fn(halftone_channels::ParseError) -> BuildError {
            move |e| BuildError::Invalid { setting, reason: e.to_string() }
        }
        let app = AppId::parse(&self.app.ok_or(BuildError::Missing("app"))?).map_err(invalid("app"))?;
        let running =
            Version::parse(&self.version.ok_or(BuildError::Missing("version"))?).map_err(invalid("version"))?;
        let server = self.server.ok_or(BuildError::Missing("server"))?;
        let state_dir = self.state_dir.ok_or(BuildError::Missing("state_dir"))?;
        let mut keys = Vec::new();
        for (id, hex) in &self.keys {
            let id = KeyId::parse(id).map_err(invalid("trusted_key"))?;
            keys.push((id, PublicKey::parse(hex).map_err(invalid("trusted_key"))?));
        }
        if keys.is_empty() && self.key_document.is_none() {
            return Err(BuildError::NoTrustedKeys);
        }
        let mut custom = Vec::new();
        for (name, rank) in &self.custom_channels {
            custom.push((ChannelName::parse(name).map_err(invalid("custom_channel"))?, *rank));
        }
        let ladder = Ladder::with_custom(custom)
            .map_err(|e| BuildError::Invalid { setting: "custom_channel", reason: e.to_string() })?;
        let mut pinned = Vec::new();
        for hex in &self.answer_keys {
            let key = PublicKey::parse(hex).map_err(invalid("answer_key"))?;
            pinned.push((halftone_channels::answer_key_id(&key), key));
        }
        let answers = match pinned.last() {
            Some((preferred, _)) => Some(AnswerCheck::new(
                TrustedKeys::new(pinned.clone()).map_err(invalid("answer_key"))?,
                preferred.clone(),
                self.answer_skew,
            )),
            None => None,
        };
        let target = match &self.platform {
            Some((os, arch)) => Some(Target {
                os: os.parse().map_err(invalid("platform"))?,
                arch: arch.parse().map_err(invalid("platform"))?,
            }),
            None => None,
        };
        let mut traits = BTreeMap::new();
        for (name, value) in self.traits {
            let name = TraitName::parse(&name).map_err(invalid("device_trait"))?;
            client::check_trait(&value).map_err(|reason| BuildError::Invalid { setting: "device_trait", reason })?;
            traits.insert(name, value);
        }
        if traits.len() > MAX_TRAITS {
            return Err(BuildError::Invalid {
                setting: "device_trait",
                reason: format!("at most {MAX_TRAITS} traits"),
            });
        }
        let mut download_hosts = Vec::new();
        for host in &self.download_hosts {
            download_hosts.push(
                AllowedHost::parse(host)
                    .map_err(|reason| BuildError::Invalid { setting: "allow_download_host", reason })?,
            );
        }
        self.download_limits.check()?;
        let document = match &self.key_document {
            Some(json) => compiled_document(json, &app, &keys)?,
            None => KeyDocument::new(
                app.clone(),
                1,
                Threshold::new(self.key_threshold).map_err(invalid("key_threshold"))?,
                TrustedKeys::new(keys).map_err(invalid("trusted_key"))?,
            )
            .map_err(invalid("key_threshold"))?,
        };
        Ok(Settings {
            api: Api::new(&server, app.clone(), self.timeouts, download_hosts, self.download_limits)?,
            app,
            running,
            target,
            os_version: self.os_version.as_deref().map(OsVersion::parse).transpose().map_err(invalid("os_version"))?,
            locale: self.locale.as_deref().map(Locale::parse).transpose().map_err(invalid("locale"))?,
            keys: document,
            answers,
            ladder,
            state_dir,
            default_channel: match &self.default_channel {
                Some(c) => ChannelName::parse(c).map_err(invalid("default_channel"))?,
                None => ChannelName::stable(),
            },
            user: self.user.as_deref().map(UserId::parse).transpose().map_err(invalid("user"))?,
            traits,
            event_queue: self.event_queue,
            max_download_size: self.max_download_size,
            running_build: self.running_build,
        })
    }
}

/// The watermark, raised to `running` first when the app runs a version above it: the device
/// demonstrably installed that version, whoever installed it.
fn raised_to_running(state: &StateDir, running: &Version) -> Result<Option<Watermark>, BuildError> {
    let current = state.watermark()?;
    let ran = Watermark { version: running.clone(), sha256: None };
    if ran.raises(current.as_ref()) {
        state.set_watermark(&ran)?;
        return Ok(Some(ran));
    }
    Ok(current)
}

/// A revert to report: the version and why.
type Unreported = (Version, String);

/// The version this device reverted, if the journal says so, and the revert to report if no
/// client reported it yet (the client reports it after its first check-in, which brings the
/// report token the event needs).
fn reverted(state: &StateDir) -> Result<(Option<Version>, Option<Unreported>), BuildError> {
    let Some(journal) = state.journal()? else { return Ok((None, None)) };
    let Phase::Reverted { reason, reported } = &journal.phase else { return Ok((None, None)) };
    let version = journal.build.version.clone();
    let unreported = (!reported).then(|| (version.clone(), reason.clone()));
    Ok((Some(version), unreported))
}

/// The key document an app compiles in as JSON: for this app, and instead of `trusted_key`s.
fn compiled_document(json: &str, app: &AppId, keys: &[(KeyId, PublicKey)]) -> Result<KeyDocument, BuildError> {
    let invalid = |reason: String| BuildError::Invalid { setting: "trusted_keys_document", reason };
    if !keys.is_empty() {
        return Err(invalid("give either trusted_key calls or a key document, not both".into()));
    }
    let spec: KeyDocumentSpec = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
    let signed = SignedKeyDocument::try_from(spec).map_err(|e| invalid(e.to_string()))?;
    if signed.document.app() != app {
        return Err(invalid(format!("the document is for app {}, not {app}", signed.document.app())));
    }
    Ok(signed.document)
}

/// Checked settings, before the I/O of start-up.
struct Settings {
    api: Api,
    app: AppId,
    running: Version,
    target: Option<Target>,
    os_version: Option<OsVersion>,
    locale: Option<Locale>,
    keys: KeyDocument,
    answers: Option<AnswerCheck>,
    ladder: Ladder,
    state_dir: PathBuf,
    default_channel: ChannelName,
    user: Option<UserId>,
    traits: BTreeMap<TraitName, TraitValue>,
    event_queue: usize,
    max_download_size: u64,
    running_build: Option<PathBuf>,
}

impl Settings {
    /// Opens the state and detects the host. Blocking: file reads and, for the OS version, a
    /// short command (`sw_vers`, `uname`).
    fn prepare(self) -> Result<Parts, BuildError> {
        let target = match self.target {
            Some(t) => t,
            None => host::compiled_target()
                .map_err(|e| BuildError::Invalid { setting: "platform", reason: format!("cannot detect: {e}") })?,
        };
        let os_version = self.os_version.or_else(|| host::detect_os_version(&target.os));
        let state = StateDir::open(&self.state_dir)?;
        let keys = KeyTrust::load(self.keys, &state)?;
        let (reverted, unreported_revert) = reverted(&state)?;
        Ok(Parts {
            reverted,
            unreported_revert,
            device_id: state.device_id()?,
            channel: state.channel()?.unwrap_or(self.default_channel),
            watermark: raised_to_running(&state, &self.running)?,
            state,
            api: Arc::new(self.api),
            app: self.app,
            running: self.running,
            target,
            os_version,
            locale: self.locale.or_else(host::env_locale),
            keys,
            answers: self.answers,
            ladder: self.ladder,
            user: self.user,
            traits: self.traits,
            event_queue: self.event_queue,
            max_download_size: self.max_download_size,
            running_build: self.running_build.and_then(RunningBuild::hash),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::BuildError;
    use crate::test_support::builder_for;

    #[tokio::test]
    async fn download_bounds_and_hosts_are_checked_when_building() {
        let dir = tempfile::tempdir().unwrap();
        let base = || builder_for("https://updates.example.com", dir.path(), "1.0.0");
        let refused = |b: super::ClientBuilder| async move {
            match b.build().await {
                Err(BuildError::Invalid { setting, .. }) => setting,
                other => panic!("expected an invalid setting, got {other:?}"),
            }
        };
        assert_eq!(refused(base().download_deadline(Duration::ZERO)).await, "download_deadline");
        assert_eq!(refused(base().download_deadline(Duration::from_secs(30 * 24 * 3600))).await, "download_deadline");
        assert_eq!(refused(base().min_download_rate(0, Duration::from_secs(30))).await, "min_download_rate");
        assert_eq!(refused(base().min_download_rate(1 << 40, Duration::from_secs(30))).await, "min_download_rate");
        assert_eq!(refused(base().min_download_rate(1024, Duration::ZERO)).await, "min_download_rate");
        for host in ["", "https://cdn.example.com", "*.example.com", "cdn.example.com/builds"] {
            assert_eq!(refused(base().allow_download_host(host)).await, "allow_download_host", "{host:?}");
        }
        base()
            .download_deadline(Duration::from_secs(3600))
            .min_download_rate(4096, Duration::from_secs(10))
            .allow_download_host("cdn.example.com")
            .allow_download_host("builds.s3.eu-west-1.amazonaws.com:443")
            .build()
            .await
            .unwrap();
    }
}
