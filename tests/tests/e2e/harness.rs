//! The test harness: start a real server on a loopback port in a temp dir, the admin client
//! and release key of `halftone-admin` (as the CLI uses them), a raw HTTP client for tests
//! that check the protocol itself, and helpers to publish signed releases and simulate devices.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use halftone_server::clock::{Clock, ManualClock, SystemClock};
use halftone_server::{ArtifactLocation, DownloadMode, S3Location};

use futures_util::StreamExt as _;
use halftone_admin::{AdminClient, AdminError, ReleaseKey, Written};
use halftone_channels::wire::{
    AppSpec, CheckRequest, CheckResponse, PublishRequest, ReleaseSpec, ReleaseView, RolloutPatch, RolloutView,
};
use halftone_channels::{AppId, Percent, Sha256, SignedFields, Target, Version};
use serde_json::{Value, json};

pub use crate::s3_server::S3Server;

/// A running server in its own thread and runtime, stopped when dropped.
pub struct TestServer {
    pub base: String,
    pub token: String,
    data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
    state: Weak<halftone_server::state::State>,
}

impl TestServer {
    /// A fresh server with an empty data dir.
    pub fn start() -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::start_in(dir.path(), None);
        s._dir = Some(dir);
        s
    }

    /// A fresh server whose clock moves only when the test says (schedules, adoption).
    pub fn start_with_clock(clock: Arc<ManualClock>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Self::launch(dir.path(), None, clock);
        s._dir = Some(dir);
        s
    }

    /// A fresh server on a clock the test moves, which believes `X-Forwarded-For` from
    /// 127.0.0.1 (`--trusted-proxy 127.0.0.1`): tests set that header to play devices on many
    /// networks.
    pub fn start_behind_proxy(clock: Arc<ManualClock>) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = halftone_server::Config::for_tests(dir.path());
        config.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        let mut s = Self::launch_with(config, None, clock);
        s._dir = Some(dir);
        s
    }

    /// A server on an existing data dir (a restart); `token` is the admin token it had.
    pub fn start_in(data_dir: &Path, token: Option<String>) -> TestServer {
        Self::launch(data_dir, token, Arc::new(SystemClock))
    }

    /// A server whose store is the PostgreSQL database at `url` (artifacts in a temp dir);
    /// `token` is the admin token, when the database has one already.
    pub fn start_on_postgres(url: &str, token: Option<String>) -> TestServer {
        Self::replica(url, token, None)
    }

    /// One of several replicas on the PostgreSQL database at `url`, with its scheduler ticking
    /// every `scheduler` (none when `None`).
    pub fn replica(url: &str, token: Option<String>, scheduler: Option<std::time::Duration>) -> TestServer {
        Self::replica_with_bucket(url, token, scheduler, None)
    }

    /// [`replica`](Self::replica) with its artifacts in `bucket` (shared by the replicas).
    pub fn replica_with_bucket(
        url: &str,
        token: Option<String>,
        scheduler: Option<std::time::Duration>,
        bucket: Option<S3Location>,
    ) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = halftone_server::Config::for_tests(dir.path());
        config.store = halftone_server::StoreLocation::Postgres(url.to_owned());
        config.scheduler_every = scheduler;
        if let Some(bucket) = bucket {
            config.artifacts = ArtifactLocation::S3(bucket);
        }
        let mut s = Self::launch_with(config, token, Arc::new(SystemClock));
        s._dir = Some(dir);
        s
    }

    /// A fresh server whose artifacts are in `bucket` (see [`S3Server`]), downloads answered
    /// as `downloads` says.
    pub fn start_with_bucket(bucket: S3Location, downloads: DownloadMode) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = halftone_server::Config::for_tests(dir.path());
        config.artifacts = ArtifactLocation::S3(bucket);
        config.artifact_downloads = downloads;
        let mut s = Self::launch_with(config, None, Arc::new(SystemClock));
        s._dir = Some(dir);
        s
    }

    /// A fresh server with `limits` (connection caps, deadlines, request rates) instead of the
    /// tests' unlimited ones.
    pub fn start_with_limits(limits: halftone_server::Limits) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        let mut config = halftone_server::Config::for_tests(dir.path());
        config.limits = limits;
        let mut s = Self::launch_with(config, None, Arc::new(SystemClock));
        s._dir = Some(dir);
        s
    }

    /// The server's address, for tests that speak raw TCP.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.base.trim_start_matches("http://").parse().unwrap()
    }

    /// The server's state, to drive the scheduler (`tick`) and read figures.
    pub fn state(&self) -> Arc<halftone_server::state::State> {
        self.state.upgrade().expect("the server runs")
    }

    fn launch(data_dir: &Path, token: Option<String>, clock: Arc<dyn Clock>) -> TestServer {
        Self::launch_with(halftone_server::Config::for_tests(data_dir), token, clock)
    }

    fn launch_with(config: halftone_server::Config, token: Option<String>, clock: Arc<dyn Clock>) -> TestServer {
        let data_dir = config.data_dir.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
            rt.block_on(async move {
                // A restart in the same process: the server before let go of the data dir when
                // it stopped, but sled releases its file lock only once its own threads finish
                // their last job (a new process never sees that: the old one has exited).
                let started = std::time::Instant::now();
                let server = loop {
                    match halftone_server::build_with(config.clone(), clock.clone()).await {
                        Err(e)
                            if format!("{e:#}").contains("could not acquire lock")
                                && started.elapsed() < std::time::Duration::from_secs(5) =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
                        }
                        built => break built.unwrap(),
                    }
                };
                let state = Arc::downgrade(&server.state());
                tx.send((server.addr(), server.bootstrap_token().map(str::to_owned), server.handle(), state)).unwrap();
                server.run().await.unwrap();
            });
        });
        let (addr, bootstrap, handle, state) = rx.recv().unwrap();
        TestServer {
            base: format!("http://{addr}"),
            token: bootstrap.or(token).expect("a fresh data dir prints a bootstrap token"),
            data_dir,
            _dir: None,
            handle,
            thread: Some(thread),
            state,
        }
    }

    /// Stops gracefully and waits (in-flight requests finish).
    pub fn stop(mut self) -> (Option<tempfile::TempDir>, String) {
        self.shutdown();
        (self._dir.take(), self.token.clone())
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            // Stopping awaits a future; do it on a plain thread so that this also works when
            // called (or dropped) inside a test's async runtime.
            let handle = self.handle.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(handle.stop(true));
            })
            .join()
            .unwrap();
            t.join().unwrap();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The server's data dir (the database and `artifacts/<sha256>` files).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The admin client with this server's admin token, as the CLI uses it.
    pub fn admin(&self) -> AdminClient {
        AdminClient::new(&self.base, self.token.as_str()).unwrap()
    }

    /// A raw HTTP client with this server's admin token, for tests of the protocol itself
    /// (statuses, headers, malformed requests).
    pub fn raw_admin(&self) -> Http {
        Http { base: self.base.clone(), token: Some(self.token.clone()), client: reqwest::Client::new() }
    }

    /// An HTTP client without a token (devices).
    pub fn anonymous(&self) -> Http {
        Http { base: self.base.clone(), token: None, client: reqwest::Client::new() }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// A raw HTTP client: returns status and JSON body, so tests can assert both.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub token: Option<String>,
    pub client: reqwest::Client,
}

/// A response: status, content type and body as JSON (Null if not JSON).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub etag: Option<String>,
    pub retry_after: Option<String>,
    pub body: Value,
    /// Every header (lowercase names; the last value of a repeated one).
    pub headers: std::collections::BTreeMap<String, String>,
    /// The body as text (for the feeds that are not JSON).
    pub text: String,
}

impl Reply {
    /// Asserts a problem+json answer with this status whose detail contains `needle`.
    #[track_caller]
    pub fn assert_problem(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "{self:?}");
        assert_eq!(self.content_type, "application/problem+json", "{self:?}");
        assert_eq!(self.body["status"], status, "{self:?}");
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(needle), "detail {detail:?} should contain {needle:?}");
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert!((200..300).contains(&self.status), "{self:?}");
        self.body
    }
}

impl Http {
    pub fn with_token(&self, token: &str) -> Http {
        Http { token: Some(token.to_owned()), ..self.clone() }
    }

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
        let content_type =
            res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let etag = res.headers().get("etag").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let headers = res
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        Reply { status, content_type, etag, retry_after, body, headers, text }
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, None, &[]).await
    }
    pub async fn patch(&self, path: &str, body: &Value, if_match: &str) -> Reply {
        let body = Some(serde_json::to_vec(body).unwrap());
        self.send("PATCH", path, body, &[("content-type", "application/json"), ("if-match", if_match)]).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Reply {
        self.send("PUT", path, Some(serde_json::to_vec(body).unwrap()), &[("content-type", "application/json")]).await
    }
    pub async fn post(&self, path: &str, body: &Value) -> Reply {
        self.send("POST", path, Some(serde_json::to_vec(body).unwrap()), &[("content-type", "application/json")]).await
    }
}

/// The release engineer's side of a test: an app with a signing key.
pub struct Publisher {
    /// The admin client, as the CLI uses it.
    pub admin: AdminClient,
    /// A raw HTTP client with the admin token, for assertions on statuses and headers.
    pub http: Http,
    pub app: AppId,
    pub key: ReleaseKey,
}

/// Test signing key number `n`; key 7 is the one [`Publisher`]s sign with.
pub fn signing_key(n: u8) -> ReleaseKey {
    ReleaseKey::from_seed([n; 32])
}

/// A release being prepared: its spec and the artifact bytes to upload.
pub struct Draft {
    pub spec: ReleaseSpec,
    pub files: Vec<Vec<u8>>,
}

impl Publisher {
    /// Creates `app` with one trusted key and the default channels.
    pub async fn create(server: &TestServer, app: &str) -> Publisher {
        Self::create_with(server, app, json!([])).await
    }

    pub async fn create_with(server: &TestServer, app: &str, channels: Value) -> Publisher {
        let key = signing_key(7);
        let admin = server.admin();
        let id = AppId::parse(app).unwrap();
        let spec = AppSpec {
            display_name: app.parse().unwrap(),
            keys: vec![key.spec()],
            channels: serde_json::from_value(channels).unwrap(),
            metrics: vec![],
        };
        admin.put_app(&id, &spec).await.unwrap();
        Publisher { admin, http: server.raw_admin(), app: id, key }
    }

    /// A signed draft of `version` with an artifact per target (`"linux/x86_64"`).
    pub fn draft(&self, version: &str, targets: &[&str]) -> Draft {
        let targets: Vec<&str> = if targets.is_empty() { vec!["linux/x86_64"] } else { targets.to_vec() };
        let version_v: Version = version.parse().unwrap();
        let mut artifacts = Vec::new();
        let mut files = Vec::new();
        for t in targets {
            let (os, arch) = t.split_once('/').unwrap();
            let bytes = format!("{} {version} build for {t}", self.app).repeat(50).into_bytes();
            let target = Target { os: os.parse().unwrap(), arch: arch.parse().unwrap() };
            artifacts.push(self.key.sign_artifact(SignedFields {
                app: &self.app,
                version: &version_v,
                target: &target,
                sha256: &Sha256::digest(&bytes),
                size: bytes.len() as u64,
            }));
            files.push(bytes);
        }
        Draft {
            spec: ReleaseSpec {
                version: version_v,
                notes: format!("release {version}"),
                critical: false,
                min_from_version: None,
                rebuild_of: None,
                artifacts,
            },
            files,
        }
    }

    /// [`Self::draft`] with the other updaters' signatures, as `halftone publish` makes them.
    pub fn client_draft(&self, version: &str, targets: &[&str]) -> Draft {
        let mut d = self.draft(version, targets);
        for (a, bytes) in d.spec.artifacts.iter_mut().zip(&d.files) {
            let target = Target { os: a.os.clone(), arch: a.arch.clone() };
            let fields = SignedFields {
                app: &self.app,
                version: &d.spec.version,
                target: &target,
                sha256: &a.sha256,
                size: a.size,
            };
            a.clients = Some(self.key.sign_bytes_for_clients(fields, bytes));
        }
        d
    }

    /// Publishes a [`Self::client_draft`] of `version` for linux/x86_64 on `channel` at
    /// `basis_points`.
    pub async fn publish_for_clients(&self, version: &str, channel: &str, basis_points: u32) -> Draft {
        let d = self.client_draft(version, &[]);
        self.publish_draft(&d, channel, json!({ "basis_points": basis_points })).await.unwrap();
        d
    }

    pub async fn upload(&self, draft: &Draft) {
        for bytes in &draft.files {
            self.admin.upload_bytes(bytes.clone()).await.unwrap();
        }
    }

    /// Uploads and publishes `draft` on `channel` with `rollout` (a `RolloutSpec` as JSON).
    pub async fn publish_draft(
        &self,
        draft: &Draft,
        channel: &str,
        rollout: Value,
    ) -> Result<Written<ReleaseView>, AdminError> {
        self.upload(draft).await;
        let request = PublishRequest {
            release: draft.spec.clone(),
            channel: channel.parse().unwrap(),
            rollout: serde_json::from_value(rollout).unwrap(),
        };
        self.admin.publish(&self.app, &request).await
    }

    /// Publishes `version` for linux/x86_64 on `channel` at `percent` ("10%").
    pub async fn publish(&self, version: &str, channel: &str, percent: &str) -> ReleaseView {
        let draft = self.draft(version, &[]);
        let bp = Percent::parse(percent).unwrap().basis_points();
        self.publish_draft(&draft, channel, json!({"basis_points": bp})).await.unwrap().into_inner()
    }

    /// Reads a rollout and changes it with its ETag; `patch` is a `RolloutPatch` as JSON.
    pub async fn patch_rollout(&self, version: &str, channel: &str, patch: Value) -> RolloutView {
        let (version, channel) = (version.parse().unwrap(), channel.parse().unwrap());
        let patch: RolloutPatch = serde_json::from_value(patch).unwrap();
        let (_, etag) = self.admin.get_rollout(&self.app, &version, &channel).await.unwrap();
        self.admin.patch_rollout(&self.app, &version, &channel, &etag, &patch).await.unwrap().0
    }
}

/// Asserts that `result` is the server's refusal with this status, whose detail contains
/// `needle`.
#[track_caller]
pub fn assert_refused<T: std::fmt::Debug>(result: Result<T, AdminError>, status: u16, needle: &str) {
    let e = result.unwrap_err();
    assert_eq!(e.status(), Some(status), "{e}");
    let detail = &e.problem().unwrap().detail;
    assert!(detail.contains(needle), "detail {detail:?} should contain {needle:?}");
}

/// A simulated device.
#[derive(Clone, Debug)]
pub struct Device {
    pub id: String,
    pub version: String,
    pub channel: String,
    pub os: String,
    pub arch: String,
}

impl Device {
    pub fn new(id: impl Into<String>, version: &str, channel: &str) -> Device {
        Device {
            id: id.into(),
            version: version.into(),
            channel: channel.into(),
            os: "linux".into(),
            arch: "x86_64".into(),
        }
    }

    pub fn request(&self) -> CheckRequest {
        serde_json::from_value(json!({
            "device_id": self.id, "current_version": self.version, "channel": self.channel,
            "os": self.os, "arch": self.arch,
        }))
        .unwrap()
    }
}

/// One check-in; returns the parsed answer.
pub async fn check(http: &Http, app: &str, d: &Device) -> CheckResponse {
    let r = http.post(&format!("/v1/apps/{app}/check"), &serde_json::to_value(d.request()).unwrap()).await;
    assert_eq!(r.status, 200, "{r:?}");
    serde_json::from_value(r.body).unwrap()
}

/// One check-in that may not find the app yet (a replica that has not loaded it): the answer,
/// or `None` for a 404.
pub async fn try_check(http: &Http, app: &str, d: &Device) -> Option<CheckResponse> {
    let r = http.post(&format!("/v1/apps/{app}/check"), &serde_json::to_value(d.request()).unwrap()).await;
    if r.status == 404 {
        return None;
    }
    assert_eq!(r.status, 200, "{r:?}");
    Some(serde_json::from_value(r.body).unwrap())
}

/// Checks in every device (32 at a time); returns the offered version (or None) per device.
pub async fn check_all(http: &Http, app: &str, devices: &[Device]) -> Vec<Option<(String, bool)>> {
    answer_all(http, app, devices)
        .await
        .into_iter()
        .map(|a| a.update.map(|u| (u.version.to_string(), u.critical)))
        .collect()
}

/// Checks in every device (32 at a time); returns each answer.
pub async fn answer_all(http: &Http, app: &str, devices: &[Device]) -> Vec<CheckResponse> {
    futures_util::stream::iter(devices.iter().map(|d| check(http, app, d))).buffered(32).collect().await
}

/// The report token a check-in gives `device` for the version it runs (a release).
pub async fn running_token(http: &Http, app: &str, device: &Device) -> String {
    let answer = check(http, app, device).await;
    answer.report_token.expect("a device running a release gets a token").to_string()
}

/// An event as JSON, with `token` when given.
pub fn event_with(device: &str, kind: &str, version: &str, channel: &str, token: Option<&str>) -> Value {
    let mut e = json!({"device_id": device, "kind": kind, "version": version, "channel": channel});
    if let Some(t) = token {
        e["token"] = json!(t);
    }
    e
}

/// `n` devices `prefix-0..n` on `version` and `channel`.
pub fn fleet(prefix: &str, n: usize, version: &str, channel: &str) -> Vec<Device> {
    (0..n).map(|i| Device::new(format!("{prefix}-{i}"), version, channel)).collect()
}

/// How many answers offered `version`.
pub fn count(answers: &[Option<(String, bool)>], version: &str) -> usize {
    answers.iter().filter(|a| a.as_ref().is_some_and(|(v, _)| v == version)).count()
}

/// A one-worker HTTP server on 127.0.0.1 in its own thread that answers every request with
/// `handler`, given `data`: the attacking proxies of the attack suite. Returns its base URL and
/// the handle that stops it.
pub fn serve_every_request<D, F, Args>(
    data: actix_web::web::Data<D>,
    handler: F,
) -> (String, actix_web::dev::ServerHandle)
where
    D: 'static + Send + Sync,
    F: actix_web::Handler<Args> + Clone + Send + 'static,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let server = actix_web::HttpServer::new(move || {
                actix_web::App::new().app_data(data.clone()).default_service(actix_web::web::to(handler.clone()))
            })
            .workers(1)
            .bind(("127.0.0.1", 0))
            .unwrap();
            let addr = server.addrs()[0];
            let server = server.run();
            tx.send((addr, server.handle())).unwrap();
            server.await.unwrap();
        });
    });
    let (addr, handle) = rx.recv().unwrap();
    (format!("http://{addr}"), handle)
}
