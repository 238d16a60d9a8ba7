//! An S3-compatible server for the tests: the S3 server mode of moto (PyPI `moto[server]`), a
//! well-known Python AWS mock. Chosen because it installs from PyPI with pip alone (MinIO is
//! not in the registries this project reaches), needs no disk or root, starts in a second or
//! two, and speaks what the server uses: SigV4, multipart uploads (create, parts, complete,
//! abort), ranged GETs, listings and pre-signed URLs.
//!
//! One per test binary, started on first use on a free port of 127.0.0.1, each test in a
//! bucket of its own. It is stopped when the binary exits: a shell holds it and waits on its
//! stdin, a pipe from this process that closes when it ends, however it ends. When moto is
//! missing it is installed once (`python3 -m pip install 'moto[server]'`); when that or the
//! start fails, [`S3Server::get`] says so on stderr, past the test harness's capture, and the
//! S3 tests pass as skipped. `HALFTONE_TEST_S3=skip` skips them on purpose.

use std::io::Write as _;
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use halftone_server::{S3Credentials, S3Location, Secret};

/// A running moto server.
pub struct S3Server {
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    _shell: Mutex<Child>,
}

static SERVER: OnceLock<Result<S3Server, String>> = OnceLock::new();
static BUCKETS: AtomicUsize = AtomicUsize::new(0);

impl S3Server {
    /// The shared server, started on first use; `None` when there is none, after a line on
    /// stderr that says `test` was skipped and why.
    pub fn get(test: &str) -> Option<&'static S3Server> {
        match SERVER.get_or_init(start) {
            Ok(server) => Some(server),
            Err(why) => {
                // Written to the file descriptor itself: `eprintln!` would be captured and
                // shown only for failing tests.
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "SKIPPED {test}: no S3-compatible server ({why}); \
                     `python3 -m pip install 'moto[server]'` enables these tests"
                );
                None
            }
        }
    }

    /// A new empty bucket, as the server's settings: keys under `artifacts/`, moto's test
    /// credentials.
    pub async fn bucket(&self, hint: &str) -> S3Location {
        let n = BUCKETS.fetch_add(1, Ordering::Relaxed);
        let bucket = format!("{hint}-{n}-{}", std::process::id());
        let r = reqwest::Client::new().put(format!("{}/{bucket}", self.endpoint)).send().await.unwrap();
        assert!(r.status().is_success(), "creating bucket {bucket}: {}", r.status());
        S3Location {
            bucket,
            prefix: "artifacts".into(),
            endpoint: Some(self.endpoint.clone()),
            region: "us-east-1".into(),
            credentials: Some(S3Credentials {
                access_key_id: "testing".into(),
                secret_access_key: Secret::new("testing"),
            }),
        }
    }

    /// Every key in the bucket.
    pub async fn keys(&self, bucket: &S3Location) -> Vec<String> {
        let xml = self.get_text(&format!("/{}?list-type=2", bucket.bucket)).await;
        elements(&xml, "Key")
    }

    /// Multipart uploads begun and neither completed nor aborted.
    pub async fn pending_uploads(&self, bucket: &S3Location) -> usize {
        let xml = self.get_text(&format!("/{}?uploads", bucket.bucket)).await;
        elements(&xml, "UploadId").len()
    }

    /// Deletes the bucket's objects and then the bucket.
    pub async fn delete_bucket(&self, bucket: &S3Location) {
        let client = reqwest::Client::new();
        for key in self.keys(bucket).await {
            client.delete(format!("{}/{}/{key}", self.endpoint, bucket.bucket)).send().await.unwrap();
        }
        let r = client.delete(format!("{}/{}", self.endpoint, bucket.bucket)).send().await.unwrap();
        assert!(r.status().is_success(), "deleting bucket {}: {}", bucket.bucket, r.status());
    }

    /// Creates the bucket again (after [`delete_bucket`](Self::delete_bucket)).
    pub async fn recreate_bucket(&self, bucket: &S3Location) {
        let r = reqwest::Client::new().put(format!("{}/{}", self.endpoint, bucket.bucket)).send().await.unwrap();
        assert!(r.status().is_success(), "creating bucket {}: {}", bucket.bucket, r.status());
    }

    async fn get_text(&self, path: &str) -> String {
        let r = reqwest::get(format!("{}{path}", self.endpoint)).await.unwrap();
        assert!(r.status().is_success(), "GET {path}: {}", r.status());
        r.text().await.unwrap()
    }
}

/// The text of every `<name>…</name>` in `xml` (S3's answers are flat enough for this).
fn elements(xml: &str, name: &str) -> Vec<String> {
    let (open, close) = (format!("<{name}>"), format!("</{name}>"));
    xml.split(&open).skip(1).filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_owned())).collect()
}

fn start() -> Result<S3Server, String> {
    if std::env::var("HALFTONE_TEST_S3").is_ok_and(|v| v == "skip") {
        return Err("HALFTONE_TEST_S3=skip".into());
    }
    let command = moto_command()?;
    let port =
        std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_err(|e| e.to_string())?.port();
    let log = std::env::temp_dir().join(format!("halftone-moto-{port}.log"));
    // The shell starts moto, waits for its own stdin to close (this process ended), then
    // stops it.
    let script = r#""$@" -H 127.0.0.1 -p "$PORT" </dev/null >"$LOG" 2>&1 & pid=$!; cat >/dev/null; kill "$pid" 2>/dev/null; wait "$pid"; rm -f "$LOG""#;
    let mut shell = Command::new("sh")
        .args(["-c", script, "sh"])
        .args(&command)
        .env("PORT", port.to_string())
        .env("LOG", &log)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting sh: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)).is_err() {
        let exited = shell.try_wait().ok().flatten().is_some();
        if exited || Instant::now() > deadline {
            let _ = shell.kill();
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: String = tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
            return Err(format!("{} did not start on port {port}: {tail}", command.join(" ")));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(S3Server { endpoint: format!("http://127.0.0.1:{port}"), _shell: Mutex::new(shell) })
}

/// How to run moto's server: `moto_server`, or `python3 -m moto.server`; installed with pip
/// when neither works.
fn moto_command() -> Result<Vec<String>, String> {
    let runs = |args: &[&str]| {
        Command::new(args[0])
            .args(&args[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let found = || {
        if runs(&["moto_server", "--help"]) {
            return Some(vec!["moto_server".to_owned()]);
        }
        ["python3", "python"]
            .into_iter()
            .find(|py| runs(&[py, "-c", "import moto.server, flask, werkzeug"]))
            .map(|py| vec![py.to_owned(), "-m".to_owned(), "moto.server".to_owned()])
    };
    if let Some(command) = found() {
        return Ok(command);
    }
    let python = ["python3", "python"].into_iter().find(|py| runs(&[py, "--version"])).ok_or("no python3")?;
    let install = Command::new(python)
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--retries", "1", "--timeout", "20"])
        .arg("moto[server]")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running pip: {e}"))?;
    if !install.status.success() {
        let err = String::from_utf8_lossy(&install.stderr);
        let mut lines = err.lines().map(str::trim).filter(|l| !l.is_empty());
        let last = lines.clone().find(|l| l.starts_with("error")).or(lines.next_back()).unwrap_or("no output");
        return Err(format!("moto is not installed and `pip install 'moto[server]'` failed: {last}"));
    }
    found().ok_or_else(|| "moto was installed but does not run".to_owned())
}
