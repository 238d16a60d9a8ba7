//! The server's configuration: one typed [`Config`], loaded once from defaults, flags and
//! environment ([`ServeArgs`]), then passed down. Nothing below `main` reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use ipnet::IpNet;

use crate::artifacts::{ArtifactLocation, DownloadMode, S3Credentials, S3Location, Secret};

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Flags of `halftone serve`; every flag also reads an environment variable.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (HOST:PORT; port 0 picks a free one).
    #[arg(long, env = "HALFTONE_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// Directory for the database and artifact files (created if missing).
    #[arg(long, env = "HALFTONE_DATA_DIR", default_value = "./halftone-data")]
    pub data_dir: PathBuf,
    /// Largest accepted JSON request body, in bytes.
    #[arg(long, env = "HALFTONE_MAX_JSON_BYTES", default_value_t = 1024 * 1024)]
    pub max_json_bytes: usize,
    /// Largest accepted artifact upload, in bytes.
    #[arg(long, env = "HALFTONE_MAX_ARTIFACT_BYTES", default_value_t = 2 * 1024 * 1024 * 1024)]
    pub max_artifact_bytes: u64,
    /// Log format.
    #[arg(long, env = "HALFTONE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
    /// Proxies whose X-Forwarded-For is believed (CIDR or address; repeat or comma-separate).
    #[arg(long = "trusted-proxy", env = "HALFTONE_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "HALFTONE_WORKERS")]
    pub workers: Option<usize>,
    /// Base poll interval told to devices, in seconds (the answer adds ±10% jitter).
    #[arg(long, env = "HALFTONE_POLL_INTERVAL_S", default_value_t = 3600)]
    pub poll_interval_s: u32,
    /// Where artifacts are kept.
    #[command(flatten)]
    pub storage: ArtifactArgs,
    /// How artifact downloads are answered: stream (this server sends the bytes: Range, ETag,
    /// If-Range, HEAD), redirect (307 to a pre-signed object-store URL) or cdn=BASE_URL (307 to
    /// BASE_URL/SHA256). redirect and cdn need --artifacts s3://...; HEAD is always answered here.
    #[arg(
        long,
        env = "HALFTONE_ARTIFACT_DOWNLOADS",
        default_value = "stream",
        value_name = "stream|redirect|cdn=BASE_URL"
    )]
    pub artifact_downloads: String,
    /// How long a pre-signed download URL works, in seconds (with --artifact-downloads redirect).
    #[arg(long, env = "HALFTONE_PRESIGN_TTL_S", default_value_t = 900)]
    pub presign_ttl_s: u64,
    /// Where apps, releases, rollouts, tokens, the audit log and feedback live: `embedded`
    /// (sled in the data dir, the default) or a PostgreSQL URL (`postgres://user:pass@host/db`),
    /// which several replicas can share.
    #[arg(long, env = "HALFTONE_STORE", default_value = "embedded")]
    pub store: String,
    /// Whether check-in answers carry a signed proof (`Halftone-Answer-Proof`): on, or off
    /// only to measure what signing costs (apps that pin an answer key then refuse answers).
    #[arg(long, env = "HALFTONE_ANSWER_SIGNING", value_enum, default_value_t = Toggle::On)]
    pub answer_signing: Toggle,
    /// How long a signed answer stays valid, in seconds (a device refuses it afterwards).
    #[arg(long, env = "HALFTONE_ANSWER_TTL_S", default_value_t = 300)]
    pub answer_ttl_s: u64,
    /// The most distinct devices one client network (an IPv4 /24, an IPv6 /56) counts for in a
    /// release's install figures, which health gates read (1 to 100000).
    #[arg(long, env = "HALFTONE_MAX_DEVICES_PER_NETWORK", default_value_t = 20)]
    pub max_devices_per_network: u32,
    /// Connection limits, body deadlines and request rates.
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Connection limits, body deadlines and request rates of `halftone serve` (docs/api.md,
/// "Connection limits and load shedding"). A rate of 0 turns that limit off.
#[derive(Debug, Clone, clap::Args)]
pub struct LimitArgs {
    /// Most open connections in all, shared among the workers; past it the server stops
    /// accepting until some close (new ones wait in the listen backlog).
    #[arg(long, env = "HALFTONE_MAX_CONNECTIONS", default_value_t = 25_000)]
    pub max_connections: usize,
    /// Most open connections from one client address (an IPv6 /64 counts as one); more are
    /// answered 429 and closed at once. Trusted proxies are exempt. 0: no cap.
    #[arg(long, env = "HALFTONE_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256)]
    pub max_connections_per_address: u32,
    /// Seconds an idle keep-alive connection stays open.
    #[arg(long, env = "HALFTONE_KEEP_ALIVE_S", default_value_t = 5)]
    pub keep_alive_s: u64,
    /// Seconds a client has to send a request's head (line and headers); then 408.
    #[arg(long, env = "HALFTONE_HEAD_TIMEOUT_S", default_value_t = 5)]
    pub head_timeout_s: u64,
    /// Seconds a client has to send a whole JSON body, and the longest pause between two
    /// pieces of an artifact upload; then 408 and the connection is closed.
    #[arg(long, env = "HALFTONE_BODY_TIMEOUT_S", default_value_t = 10)]
    pub body_timeout_s: u64,
    /// Device requests (check-ins, events, downloads) per second from one client address,
    /// with bursts of twice as many; over it, 429 with Retry-After. 0: no limit.
    #[arg(long, env = "HALFTONE_DEVICE_RATE_PER_ADDRESS", default_value_t = 1_000)]
    pub device_rate_per_address: u32,
    /// Device requests per second in all (bursts of twice as many); over it, 429. 0: no limit.
    #[arg(long, env = "HALFTONE_DEVICE_RATE", default_value_t = 0)]
    pub device_rate: u32,
    /// Admin requests per second from one client address (bursts of twice as many). 0: no limit.
    #[arg(long, env = "HALFTONE_ADMIN_RATE_PER_ADDRESS", default_value_t = 100)]
    pub admin_rate_per_address: u32,
    /// Admin requests per second in all (bursts of twice as many). 0: no limit.
    #[arg(long, env = "HALFTONE_ADMIN_RATE", default_value_t = 0)]
    pub admin_rate: u32,
}

/// Connection limits, body deadlines and request rates, checked; see [`LimitArgs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most open connections in all.
    pub max_connections: usize,
    /// Most open connections per client address; `None`: no cap.
    pub max_connections_per_address: Option<u32>,
    /// How long an idle keep-alive connection stays open.
    pub keep_alive: std::time::Duration,
    /// How long a client has to send a request's head.
    pub head_timeout: std::time::Duration,
    /// How long a client has to send a JSON body, or may pause in an upload.
    pub body_timeout: std::time::Duration,
    /// Device requests per second per client address; `None`: no limit.
    pub device_rate_per_address: Option<u32>,
    /// Device requests per second in all; `None`: no limit.
    pub device_rate: Option<u32>,
    /// Admin requests per second per client address; `None`: no limit.
    pub admin_rate_per_address: Option<u32>,
    /// Admin requests per second in all; `None`: no limit.
    pub admin_rate: Option<u32>,
}

impl Limits {
    /// No caps and no rates, the timeouts of `halftone serve`: what tests start from, so
    /// that a test that sends thousands of check-ins from 127.0.0.1 is not throttled.
    pub fn unlimited() -> Self {
        Limits {
            max_connections: 25_000,
            max_connections_per_address: None,
            keep_alive: std::time::Duration::from_secs(5),
            head_timeout: std::time::Duration::from_secs(5),
            body_timeout: std::time::Duration::from_secs(10),
            device_rate_per_address: None,
            device_rate: None,
            admin_rate_per_address: None,
            admin_rate: None,
        }
    }
}

impl TryFrom<&LimitArgs> for Limits {
    type Error = anyhow::Error;
    fn try_from(a: &LimitArgs) -> anyhow::Result<Self> {
        let on = |n: u32| (n > 0).then_some(n);
        anyhow::ensure!(a.max_connections >= 1, "--max-connections must be at least 1");
        anyhow::ensure!(a.keep_alive_s <= 3600, "--keep-alive-s must be at most 3600");
        anyhow::ensure!((1..=3600).contains(&a.head_timeout_s), "--head-timeout-s must be between 1 and 3600");
        anyhow::ensure!((1..=3600).contains(&a.body_timeout_s), "--body-timeout-s must be between 1 and 3600");
        Ok(Limits {
            max_connections: a.max_connections,
            max_connections_per_address: on(a.max_connections_per_address),
            keep_alive: std::time::Duration::from_secs(a.keep_alive_s),
            head_timeout: std::time::Duration::from_secs(a.head_timeout_s),
            body_timeout: std::time::Duration::from_secs(a.body_timeout_s),
            device_rate_per_address: on(a.device_rate_per_address),
            device_rate: on(a.device_rate),
            admin_rate_per_address: on(a.admin_rate_per_address),
            admin_rate: on(a.admin_rate),
        })
    }
}

/// A setting that is on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Toggle {
    /// On.
    On,
    /// Off.
    Off,
}

/// Where artifacts are kept (`halftone serve`, `halftone migrate`).
#[derive(Debug, Clone, clap::Args)]
pub struct ArtifactArgs {
    /// Where artifacts are kept: unset for DATA_DIR/artifacts, or s3://BUCKET[/PREFIX] for an
    /// S3-compatible object store (objects [PREFIX/]SHA256).
    #[arg(long, env = "HALFTONE_ARTIFACTS", value_name = "s3://BUCKET[/PREFIX]")]
    pub artifacts: Option<String>,
    /// The S3 service's URL, http(s)://HOST or http(s)://HOST:PORT (path-style requests); unset for AWS itself.
    #[arg(long, env = "HALFTONE_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The region S3 requests are signed for.
    #[arg(long, env = "HALFTONE_S3_REGION", default_value = "us-east-1")]
    pub s3_region: String,
    /// S3 access key id; unset (with the secret) to use the instance's role.
    #[arg(long, env = "HALFTONE_S3_ACCESS_KEY_ID")]
    pub s3_access_key_id: Option<String>,
    /// S3 secret access key (prefer the environment variable: flags show in ps). Never printed.
    #[arg(long, env = "HALFTONE_S3_SECRET_ACCESS_KEY", hide_env_values = true)]
    pub s3_secret_access_key: Option<Secret>,
}

impl ArtifactArgs {
    /// The artifact location these flags name; S3 settings without an S3 location are a mistake.
    pub fn location(&self) -> anyhow::Result<ArtifactLocation> {
        let a = self;
        let Some(url) = a.artifacts.as_deref().filter(|s| !s.trim().is_empty()) else {
            anyhow::ensure!(
                a.s3_endpoint.is_none() && a.s3_access_key_id.is_none() && a.s3_secret_access_key.is_none(),
                "--s3-endpoint and the S3 credentials need --artifacts s3://BUCKET"
            );
            return Ok(ArtifactLocation::DataDir);
        };
        let (bucket, prefix) = S3Location::parse_url(url.trim())?;
        if let Some(endpoint) = &a.s3_endpoint {
            anyhow::ensure!(
                (endpoint.starts_with("http://") || endpoint.starts_with("https://")) && !endpoint.contains(['?', '#']),
                "--s3-endpoint {endpoint:?}: expected http(s)://HOST[:PORT]"
            );
        }
        anyhow::ensure!(!a.s3_region.trim().is_empty(), "--s3-region must not be empty");
        let credentials = match (&a.s3_access_key_id, &a.s3_secret_access_key) {
            (Some(id), Some(secret)) => {
                Some(S3Credentials { access_key_id: id.clone(), secret_access_key: secret.clone() })
            }
            (None, None) => None,
            _ => anyhow::bail!("--s3-access-key-id and --s3-secret-access-key go together"),
        };
        Ok(ArtifactLocation::S3(S3Location {
            bucket,
            prefix,
            endpoint: a.s3_endpoint.as_ref().map(|e| e.trim_end_matches('/').to_owned()),
            region: a.s3_region.trim().to_owned(),
            credentials,
        }))
    }
}

/// Where the store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// sled, in `<data dir>/db`.
    Embedded,
    /// A PostgreSQL database, by connection URL.
    Postgres(String),
}

impl StoreLocation {
    /// Parses `embedded` or a `postgres://` / `postgresql://` URL.
    pub fn parse(s: &str) -> anyhow::Result<Self> {
        let s = s.trim();
        if s == "embedded" {
            return Ok(StoreLocation::Embedded);
        }
        anyhow::ensure!(
            s.starts_with("postgres://") || s.starts_with("postgresql://"),
            "--store must be `embedded` or a postgres:// URL"
        );
        Ok(StoreLocation::Postgres(s.to_owned()))
    }
}

impl std::fmt::Debug for StoreLocation {
    /// Never prints a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Embedded => f.write_str("Embedded"),
            StoreLocation::Postgres(url) => match url.split_once('@') {
                Some((auth, host)) if auth.contains(':') && auth.rfind(':') > auth.find("//").map(|i| i + 1) => {
                    let user_end = auth.rfind(':').expect("checked");
                    write!(f, "Postgres({}:***@{host})", &auth[..user_end])
                }
                _ => write!(f, "Postgres({url})"),
            },
        }
    }
}

/// Everything the server needs to run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub bind: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Largest JSON body.
    pub max_json_bytes: usize,
    /// Largest artifact.
    pub max_artifact_bytes: u64,
    /// Log format.
    pub log_format: LogFormat,
    /// Trusted proxies.
    pub trusted_proxies: Vec<IpNet>,
    /// HTTP workers.
    pub workers: usize,
    /// Base poll interval in seconds.
    pub poll_interval_s: u32,
    /// Where the store lives.
    pub store: StoreLocation,
    /// How often the scheduler advances schedules and checks health gates; `None` runs no
    /// background scheduler (tests call `State::tick` themselves, on a clock they control).
    pub scheduler_every: Option<std::time::Duration>,
    /// Where artifacts are kept.
    pub artifacts: ArtifactLocation,
    /// How artifact downloads are answered.
    pub artifact_downloads: DownloadMode,
    /// Whether check-in answers are signed.
    pub answer_signing: bool,
    /// How long a signed answer stays valid, in seconds.
    pub answer_ttl_s: u64,
    /// Connection limits, body deadlines and request rates.
    pub limits: Limits,
    /// The most distinct devices one client network counts for in a release's figures.
    pub max_devices_per_network: u32,
}

impl Config {
    /// A configuration for tests: loopback on a free port, data in `data_dir`, two workers, no
    /// background scheduler, no connection caps nor request rates ([`Limits::unlimited`]).
    pub fn for_tests(data_dir: impl Into<PathBuf>) -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            max_json_bytes: 1024 * 1024,
            max_artifact_bytes: 64 * 1024 * 1024,
            log_format: LogFormat::Pretty,
            trusted_proxies: Vec::new(),
            workers: 2,
            poll_interval_s: 3600,
            store: StoreLocation::Embedded,
            scheduler_every: None,
            artifacts: ArtifactLocation::DataDir,
            artifact_downloads: DownloadMode::Stream,
            answer_signing: true,
            answer_ttl_s: 300,
            limits: Limits::unlimited(),
            max_devices_per_network: 20,
        }
    }
}

impl Config {
    /// The configuration of an offline maintenance command (`halftone token recover`): the
    /// store and artifacts of `data_dir` (and `store`); nothing is served, no scheduler runs.
    pub fn offline(data_dir: impl Into<PathBuf>, store: StoreLocation) -> Self {
        Config { store, ..Self::for_tests(data_dir) }
    }
}

impl TryFrom<ServeArgs> for Config {
    type Error = anyhow::Error;
    fn try_from(a: ServeArgs) -> anyhow::Result<Self> {
        use std::net::ToSocketAddrs as _;
        let bind = a
            .bind
            .to_socket_addrs()
            .with_context(|| format!("--bind {:?}: expected HOST:PORT", a.bind))?
            .next()
            .with_context(|| format!("--bind {:?} resolves to no address", a.bind))?;
        let trusted_proxies = a
            .trusted_proxies
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                    .with_context(|| format!("--trusted-proxy {s:?}: expected a CIDR or an IP address"))
            })
            .collect::<anyhow::Result<_>>()?;
        anyhow::ensure!(a.max_json_bytes >= 1024, "--max-json-bytes must be at least 1024");
        anyhow::ensure!(a.poll_interval_s >= 10, "--poll-interval-s must be at least 10");
        let workers = a.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        anyhow::ensure!(workers >= 1, "--workers must be at least 1");
        let (artifacts, artifact_downloads) = artifact_settings(&a)?;
        anyhow::ensure!((10..=86_400).contains(&a.answer_ttl_s), "--answer-ttl-s must be between 10 and 86400");
        let limits = Limits::try_from(&a.limits)?;
        anyhow::ensure!(
            (1..=100_000).contains(&a.max_devices_per_network),
            "--max-devices-per-network must be between 1 and 100000"
        );
        Ok(Config {
            bind,
            data_dir: a.data_dir,
            max_json_bytes: a.max_json_bytes,
            max_artifact_bytes: a.max_artifact_bytes,
            log_format: a.log_format,
            trusted_proxies,
            workers,
            poll_interval_s: a.poll_interval_s,
            store: StoreLocation::parse(&a.store)?,
            scheduler_every: Some(std::time::Duration::from_secs(1)),
            artifacts,
            artifact_downloads,
            answer_signing: a.answer_signing == Toggle::On,
            answer_ttl_s: a.answer_ttl_s,
            limits,
            max_devices_per_network: a.max_devices_per_network,
        })
    }
}

/// `--artifacts`, the `--s3-*` settings and `--artifact-downloads`, checked together: S3
/// settings without an S3 location, or a redirect without a bucket, are mistakes.
fn artifact_settings(a: &ServeArgs) -> anyhow::Result<(ArtifactLocation, DownloadMode)> {
    anyhow::ensure!(
        (1..=7 * 24 * 3600).contains(&a.presign_ttl_s),
        "--presign-ttl-s must be between 1 and 604800 (a week, the most S3 signs for)"
    );
    let downloads = DownloadMode::parse(&a.artifact_downloads, std::time::Duration::from_secs(a.presign_ttl_s))?;
    let location = a.storage.location()?;
    anyhow::ensure!(
        location != ArtifactLocation::DataDir || downloads == DownloadMode::Stream,
        "--artifact-downloads {} needs --artifacts s3://BUCKET (files in the data dir are streamed)",
        a.artifact_downloads
    );
    Ok((location, downloads))
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;
    use crate::artifacts::CdnBase;

    #[derive(clap::Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }

    /// The config of `halftone serve <flags>` (no environment: every flag is given here).
    fn config(flags: &[&str]) -> anyhow::Result<Config> {
        let args = Serve::try_parse_from(std::iter::once("serve").chain(flags.iter().copied()))?.args;
        Config::try_from(args)
    }

    #[track_caller]
    fn refused(flags: &[&str], needle: &str) {
        let e = format!("{:#}", config(flags).unwrap_err());
        assert!(e.contains(needle), "{flags:?}: {e:?} should contain {needle:?}");
    }

    #[test]
    fn limits_have_documented_defaults_and_zero_turns_a_rate_off() {
        let l = config(&[]).unwrap().limits;
        assert_eq!(
            (l.max_connections, l.max_connections_per_address, l.keep_alive.as_secs(), l.head_timeout.as_secs()),
            (25_000, Some(256), 5, 5)
        );
        assert_eq!((l.body_timeout.as_secs(), l.device_rate_per_address, l.device_rate), (10, Some(1_000), None));
        assert_eq!((l.admin_rate_per_address, l.admin_rate), (Some(100), None));
        let l = config(&["--device-rate-per-address", "0", "--max-connections-per-address", "0", "--admin-rate", "7"])
            .unwrap()
            .limits;
        assert_eq!((l.device_rate_per_address, l.max_connections_per_address, l.admin_rate), (None, None, Some(7)));
        refused(&["--body-timeout-s", "0"], "--body-timeout-s");
        refused(&["--max-connections", "0"], "--max-connections");
    }

    #[test]
    fn artifacts_stay_in_the_data_dir_by_default() {
        let c = config(&[]).unwrap();
        assert_eq!((c.artifacts, c.artifact_downloads), (ArtifactLocation::DataDir, DownloadMode::Stream));
        refused(&["--artifact-downloads", "redirect"], "needs --artifacts s3://BUCKET");
        refused(&["--artifact-downloads", "cdn=https://cdn.example.com"], "needs --artifacts s3://BUCKET");
        refused(&["--s3-endpoint", "http://127.0.0.1:9000"], "need --artifacts s3://BUCKET");
    }

    #[test]
    fn an_s3_bucket_with_its_settings_and_download_modes() {
        let s3 = [
            "--artifacts",
            "s3://builds/halftone/",
            "--s3-endpoint",
            "http://127.0.0.1:9000/",
            "--s3-region",
            "eu-west-1",
            "--s3-access-key-id",
            "AKIA1",
            "--s3-secret-access-key",
            "hunter2",
        ];
        let c = config(&s3).unwrap();
        let expected = S3Location {
            bucket: "builds".into(),
            prefix: "halftone".into(),
            endpoint: Some("http://127.0.0.1:9000".into()),
            region: "eu-west-1".into(),
            credentials: Some(S3Credentials {
                access_key_id: "AKIA1".into(),
                secret_access_key: Secret::new("hunter2"),
            }),
        };
        assert_eq!(c.artifacts, ArtifactLocation::S3(expected));
        assert!(!format!("{c:?}").contains("hunter2"), "the secret never prints");
        let with = |more: &[&'static str]| config(&[&s3[..], more].concat());
        let ttl = std::time::Duration::from_secs(60);
        let c = with(&["--artifact-downloads", "redirect", "--presign-ttl-s", "60"]).unwrap();
        assert_eq!(c.artifact_downloads, DownloadMode::Redirect { ttl });
        let c = with(&["--artifact-downloads", "cdn=https://cdn.example.com/builds/"]).unwrap();
        let cdn = CdnBase::parse("https://cdn.example.com/builds").unwrap();
        assert_eq!(
            (c.artifact_downloads, cdn.as_str()),
            (DownloadMode::Cdn(cdn.clone()), "https://cdn.example.com/builds")
        );

        refused(&["--artifacts", "/srv/artifacts"], "expected s3://BUCKET[/PREFIX]");
        refused(&["--artifacts", "s3://No_Such"], "bucket name");
        refused(&["--artifacts", "s3://builds", "--s3-access-key-id", "AKIA1"], "go together");
        refused(&["--artifacts", "s3://builds", "--s3-endpoint", "ftp://x"], "expected http(s)://HOST[:PORT]");
        refused(&["--artifacts", "s3://builds", "--artifact-downloads", "mirror"], "expected stream, redirect or cdn=");
        refused(&["--artifacts", "s3://builds", "--artifact-downloads", "cdn=https://cdn/x?y=1"], "no query");
        refused(&["--artifacts", "s3://builds", "--presign-ttl-s", "0"], "--presign-ttl-s");
    }
}
