//! The server's configuration: one typed [`Config`], loaded once from defaults, flags and
//! environment ([`ServeArgs`]), then passed down. Nothing below `main` reads the environment.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use ipnet::IpNet;

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
    /// Where apps, releases, rollouts, tokens, the audit log and feedback live: `embedded`
    /// (sled in the data dir, the default) or a PostgreSQL URL (`postgres://user:pass@host/db`),
    /// which several replicas can share.
    #[arg(long, env = "HALFTONE_STORE", default_value = "embedded")]
    pub store: String,
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
}

impl Config {
    /// A configuration for tests: loopback on a free port, data in `data_dir`, two workers, no
    /// background scheduler.
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
        }
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
        })
    }
}
