//! The `halftone` binary as users run it: [`Server`] spawns `halftone serve` on a loopback
//! port with a data dir, learns its address and bootstrap token from stderr, and kills it on
//! drop; [`Cli`] runs the release engineer's subcommands against it; [`Http`] is a raw HTTP
//! client for what devices (and scripts) do, statuses and headers included; [`Signer`] signs
//! and uploads artifacts with `halftone-admin`, as `publish` does.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halftone_admin::{AdminClient, ReleaseKey};
use halftone_channels::wire::{AppSpec, ReleaseSpec};
use halftone_channels::{AppId, Sha256, SignedFields, Target, Version};
use serde_json::{Value, json};

/// The binary under test.
pub const HALFTONE: &str = env!("CARGO_BIN_EXE_halftone");

/// How long a server may take to start (a debug build opening sled); generous for a loaded
/// machine, and only ever waited out when something is broken.
const STARTUP: Duration = Duration::from_secs(30);

/// The prefix of the line `serve` prints the first admin token on (see `cli/serve.rs`).
const TOKEN_LINE: &str = "bootstrap admin token (shown only now): ";

/// Environment variables the binary reads; removed so the caller's shell cannot change a test.
const HALFTONE_ENV: &[&str] = &[
    "HALFTONE_SERVER",
    "HALFTONE_TOKEN",
    "HALFTONE_CONFIG",
    "HALFTONE_PROFILE",
    "HALFTONE_BIND",
    "HALFTONE_DATA_DIR",
    "HALFTONE_MAX_JSON_BYTES",
    "HALFTONE_MAX_ARTIFACT_BYTES",
    "HALFTONE_LOG_FORMAT",
    "HALFTONE_TRUSTED_PROXIES",
    "HALFTONE_WORKERS",
    "HALFTONE_POLL_INTERVAL_S",
    "HALFTONE_MAX_CONNECTIONS",
    "HALFTONE_MAX_CONNECTIONS_PER_ADDRESS",
    "HALFTONE_KEEP_ALIVE_S",
    "HALFTONE_HEAD_TIMEOUT_S",
    "HALFTONE_BODY_TIMEOUT_S",
    "HALFTONE_DEVICE_RATE_PER_ADDRESS",
    "HALFTONE_DEVICE_RATE",
    "HALFTONE_ADMIN_RATE_PER_ADDRESS",
    "HALFTONE_ADMIN_RATE",
    "HALFTONE_STORE",
];

fn command() -> Command {
    let mut cmd = Command::new(HALFTONE);
    for var in HALFTONE_ENV {
        cmd.env_remove(var);
    }
    cmd
}

/// A `halftone serve` child process, killed (SIGKILL) when dropped.
pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The bootstrap admin token, on the first start of an empty data dir.
    pub bootstrap: Option<String>,
    child: Child,
    /// Every stderr line so far (JSON log lines and plain `eprintln!` lines).
    stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `halftone serve --bind 127.0.0.1:0 --data-dir <data_dir>` and waits until it
    /// answers `/healthz`. The real port comes from the "halftone listening" log line (JSON
    /// logs, so it parses without guessing). On a fresh data dir it also waits for the
    /// bootstrap token, which `serve` prints right after binding.
    pub async fn start(data_dir: &Path, fresh: bool) -> Server {
        Self::start_with(data_dir, fresh, &[]).await
    }

    /// [`start`](Self::start) with more flags (`--store postgres://…`).
    pub async fn start_with(data_dir: &Path, fresh: bool, flags: &[String]) -> Server {
        let mut child = command()
            .args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json", "--workers", "2", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn halftone serve");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let lines = stderr.clone();
        // Drains stderr for the whole life of the process (a full pipe would block the
        // server's logging) and forwards each line to the start-up wait below.
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                lines.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + STARTUP;
        let (mut addr, mut bootstrap) = (None, None);
        while addr.is_none() || (fresh && bootstrap.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("halftone serve did not start ({e}); stderr:\n{}", stderr.lock().unwrap().join("\n"));
                }
            };
            if let Some(token) = line.strip_prefix(TOKEN_LINE) {
                bootstrap = Some(token.trim().to_owned());
            } else if let Ok(log) = serde_json::from_str::<Value>(&line)
                && log["fields"]["message"] == "halftone listening"
            {
                addr = log["fields"]["addr"].as_str().map(str::to_owned);
            }
        }
        let server =
            Server { base: format!("http://{}", addr.unwrap()), bootstrap, child, stderr, reader: Some(reader) };
        server.wait_healthy(deadline).await;
        server
    }

    /// Polls `/healthz` until it answers 200 (bounded by `deadline`).
    async fn wait_healthy(&self, deadline: Instant) {
        let client = reqwest::Client::new();
        let url = format!("{}/healthz", self.base);
        loop {
            match client.get(&url).timeout(Duration::from_secs(2)).send().await {
                Ok(r) if r.status() == 200 => return,
                other if Instant::now() >= deadline => {
                    panic!("{url} never answered 200: {other:?}; stderr:\n{}", self.stderr_text())
                }
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// `kill -9`: no graceful shutdown, no chance to flush anything. Returns what the process
    /// wrote on stderr over its life.
    pub fn kill9(mut self) -> String {
        self.child.kill().expect("SIGKILL");
        self.child.wait().unwrap();
        // The pipe closes with the process, so the reader ends.
        self.reader.take().unwrap().join().unwrap();
        self.stderr_text()
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// A raw HTTP client with `token` (or none, as a device).
    pub fn http(&self, token: Option<&str>) -> Http {
        Http { base: self.base.clone(), token: token.map(str::to_owned), client: reqwest::Client::new() }
    }

    /// The admin client with `token`, as the CLI uses it.
    pub fn admin(&self, token: &str) -> AdminClient {
        AdminClient::new(&self.base, token).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The result of one CLI run.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn success(self) -> Run {
        assert_eq!(self.code, Some(0), "{self:#?}");
        self
    }

    /// Stdout as JSON (what `--json` promises: JSON and nothing else).
    #[track_caller]
    pub fn json(self) -> Value {
        let run = self.success();
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {run:#?}"))
    }

    /// Asserts the CLI's failure contract: exit status 1, nothing on stdout, and exactly one
    /// line `error: <sentence>` on stderr; returns the sentence.
    #[track_caller]
    pub fn failure(self) -> String {
        self.failure_with(1)
    }

    /// The one-line error of a run that failed with exit status `code` (see `cli::failure`:
    /// 3 auth, 4 not found, 5 conflict, 6 unreachable, 1 anything else).
    pub fn failure_with(self, code: i32) -> String {
        assert_eq!(self.code, Some(code), "{self:#?}");
        assert_eq!(self.stdout, "", "{self:#?}");
        let line = self.stderr.strip_suffix('\n').unwrap_or(&self.stderr);
        assert!(!line.contains('\n'), "one line of error, got {:?}", self.stderr);
        line.strip_prefix("error: ")
            .unwrap_or_else(|| panic!("stderr should start with `error: `: {line:?}"))
            .to_owned()
    }
}

/// The `halftone` CLI pointed at one server with one token. Its `HOME` is an empty temp dir,
/// so no config file of the machine's user is read.
pub struct Cli {
    pub server: String,
    pub token: String,
    home: tempfile::TempDir,
}

impl Cli {
    pub fn new(server: &Server, token: &str) -> Cli {
        Cli { server: server.base.clone(), token: token.to_owned(), home: tempfile::tempdir().unwrap() }
    }

    pub fn with_token(&self, token: &str) -> Cli {
        Cli { server: self.server.clone(), token: token.to_owned(), home: tempfile::tempdir().unwrap() }
    }

    /// Runs `halftone <args> --server <url> --token <token>`.
    pub fn run(&self, args: &[&str]) -> Run {
        let mut cmd = command();
        cmd.args(args).args(["--server", &self.server, "--token", &self.token]);
        self.run_in_home(cmd)
    }

    /// Runs `halftone <args>` without `--server` or `--token`: what the config file in this
    /// CLI's home says is used.
    pub fn run_configured(&self, args: &[&str]) -> Run {
        let mut cmd = command();
        for var in HALFTONE_ENV {
            cmd.env_remove(var);
        }
        cmd.args(args);
        self.run_in_home(cmd)
    }

    fn run_in_home(&self, mut cmd: Command) -> Run {
        let out = cmd
            .env("HOME", self.home.path())
            .env("XDG_CONFIG_HOME", self.home.path())
            .stdin(Stdio::null())
            .output()
            .expect("run halftone");
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }

    /// The config file this CLI's commands read.
    pub fn config_file(&self) -> std::path::PathBuf {
        self.home.path().join("halftone").join("config.toml")
    }

    /// Runs with `--json` and parses stdout.
    #[track_caller]
    pub fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        self.run(&args).json()
    }

    /// Runs for people and returns stdout.
    #[track_caller]
    pub fn text(&self, args: &[&str]) -> String {
        self.run(args).success().stdout
    }
}

/// Runs `halftone <args>` with no server or token (for `keygen`), under umask 000 so that
/// file modes are the binary's own choice, not the inherited umask's.
pub fn offline(args: &[&str]) -> Run {
    let mut sh = Command::new("sh");
    sh.args(["-c", r#"umask 000 && exec "$0" "$@""#, HALFTONE]).args(args);
    for var in HALFTONE_ENV {
        sh.env_remove(var);
    }
    let out = sh.stdin(Stdio::null()).output().expect("run halftone");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

/// A raw HTTP client: status, ETag and JSON body.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub etag: Option<String>,
    pub body: Value,
}

impl Reply {
    #[track_caller]
    pub fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "{self:?}");
        self.body
    }
}

impl Http {
    pub async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.client.request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = req.send().await.unwrap();
        let status = res.status().as_u16();
        let etag = res.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let bytes = res.bytes().await.unwrap();
        Reply { status, etag, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[]).await
    }

    pub async fn bytes(&self, path: &str) -> (u16, Vec<u8>) {
        let res = self.client.get(format!("{}{path}", self.base)).send().await.unwrap();
        (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
    }

    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        let json = Some(serde_json::to_vec(body).unwrap());
        self.send("POST", path, json, &[("content-type", "application/json")]).await
    }

    pub async fn patch(&self, path: &str, body: &Value, if_match: &str) -> Reply {
        let json = Some(serde_json::to_vec(body).unwrap());
        self.send("PATCH", path, json, &[("content-type", "application/json"), ("if-match", if_match)]).await
    }

    /// A device's check-in; answers the offered `(version, critical)`, if any.
    pub async fn check(&self, app: &str, device: &str, version: &str, channel: &str) -> Option<(String, bool)> {
        let body = json!({"device_id": device, "current_version": version, "channel": channel,
                          "os": "linux", "arch": "x86_64"});
        let answer = self.post(&format!("/v1/apps/{app}/check"), &body).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        let update = &answer.body["update"];
        (!update.is_null()).then(|| (update["version"].as_str().unwrap().to_owned(), update["critical"] == true))
    }

    /// The report token a check-in answer gives `device`, running released `version` on
    /// `channel`, for events about that version.
    pub async fn report_token(&self, app: &str, device: &str, version: &str, channel: &str) -> String {
        let body = json!({"device_id": device, "current_version": version, "channel": channel,
                          "os": "linux", "arch": "x86_64"});
        let answer = self.post(&format!("/v1/apps/{app}/check"), &body).await;
        assert_eq!(answer.status, 200, "{answer:?}");
        answer.body["report_token"].as_str().expect("a released version gets a token").to_owned()
    }
}

/// An app's signing key on the test's side, for publishing without the CLI.
pub struct Signer {
    pub app: AppId,
    key: ReleaseKey,
}

impl Signer {
    pub fn new(app: &str, seed: u8) -> Signer {
        Signer { app: AppId::parse(app).unwrap(), key: ReleaseKey::from_seed([seed; 32]) }
    }

    /// The `PUT /v1/apps/{app}` body that trusts this key.
    pub fn app_spec(&self) -> AppSpec {
        AppSpec {
            display_name: self.app.as_str().parse().unwrap(),
            keys: vec![self.key.spec()],
            channels: vec![],
            metrics: vec![],
        }
    }

    /// Uploads a linux/x86_64 build of `version` and answers its release spec.
    pub async fn upload(&self, admin: &AdminClient, version: &str) -> ReleaseSpec {
        let bytes = format!("{} {version} for linux/x86_64\n", self.app).repeat(40).into_bytes();
        let (sha256, size) = (Sha256::digest(&bytes), bytes.len() as u64);
        admin.upload_bytes(bytes).await.unwrap();
        let target = Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
        let version: Version = version.parse().unwrap();
        let artifact = self.key.sign_artifact(SignedFields {
            app: &self.app,
            version: &version,
            target: &target,
            sha256: &sha256,
            size,
        });
        ReleaseSpec {
            notes: format!("release {version}"),
            version,
            critical: false,
            min_from_version: None,
            rebuild_of: None,
            artifacts: vec![artifact],
        }
    }
}

/// A fresh temp dir with a `data` subdirectory path for the server (created by `serve`).
pub fn data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    (dir, data)
}
