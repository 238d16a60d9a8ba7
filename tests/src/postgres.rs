//! Throwaway PostgreSQL clusters for the database tests.
//!
//! [`TempPostgres::start`] gives a test its own cluster: a fresh data dir in a temp dir, a server
//! bound to 127.0.0.1 only on a port no other harness instance holds, its unix socket in that
//! temp dir, `fsync` on, trust auth, and one database. [`TempPostgres::url`] is the
//! `postgres://halftone@127.0.0.1:PORT/halftone` URL to hand to the code under test. Dropping the
//! value stops the server (`pg_ctl stop -m immediate`) and deletes the dir.
//!
//! Where the server comes from, in order:
//! 1. `HALFTONE_TEST_PG_BIN=DIR`: only that directory (it must hold `initdb`, `pg_ctl`, `createdb`);
//!    nothing is installed. Pointing it at an empty dir is how to check the skip path.
//! 2. The newest `/usr/lib/postgresql/*/bin` (Debian and Ubuntu packages).
//! 3. `initdb` on `PATH` (other distributions, Homebrew).
//! 4. When none is found, running as root and `HALFTONE_TEST_NO_INSTALL` is not set:
//!    `apt-get update && apt-get install -y postgresql`, once per process, under a lock file in
//!    the temp dir so that parallel test processes install once; a failed install is remembered
//!    there for an hour so that it is not retried by every test.
//!
//! PostgreSQL refuses to run as root: as root the cluster belongs to the `postgres` system user
//! that the Debian package creates, and `initdb`/`pg_ctl` run through `runuser -u postgres`.
//!
//! When PostgreSQL cannot be had, [`TempPostgres::start`] answers [`Unavailable`] with the reason.
//! Tests use [`postgres_or_skip!`](crate::postgres_or_skip), which prints
//! `SKIPPED (PostgreSQL unavailable: <reason>)` and returns, so that the suite passes on machines
//! without PostgreSQL, unless `HALFTONE_TEST_POSTGRES=required` (set by `.ci/run`), which turns
//! the skip into a failure.

use std::collections::hash_map::RandomState;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::hash::{BuildHasher, Hasher};
use std::io::Write as _;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

/// The role and the database every cluster is created with.
const NAME: &str = "halftone";
/// How long `pg_ctl` waits for the server to start or stop.
const PG_CTL_WAIT_SECS: &str = "60";
/// How many ports to try when the one picked turns out to be taken by another program.
const PORT_ATTEMPTS: usize = 8;

/// A PostgreSQL cluster of one test: started by [`TempPostgres::start`], removed when dropped.
pub struct TempPostgres {
    bin: &'static Binaries,
    runner: &'static Runner,
    port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    running: bool,
    // Held for the cluster's lifetime, so that no other harness instance (in this process or
    // another) picks the same port, even while the server is stopped.
    _port_lock: Option<File>,
    // Dropped last: the server is stopped before its files go.
    dir: tempfile::TempDir,
}

/// Why a test cannot have a PostgreSQL server here; the test is then skipped (or fails when
/// `HALFTONE_TEST_POSTGRES=required`).
#[derive(Debug, Clone)]
pub struct Unavailable {
    reason: String,
}

/// A stop or start of a running cluster failed.
#[derive(Debug)]
pub struct PgError {
    message: String,
}

/// Whether a missing PostgreSQL skips a test or fails it (`HALFTONE_TEST_POSTGRES`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// Unset, empty or `optional`: tests without PostgreSQL print a SKIPPED line and pass.
    Optional,
    /// `required`: tests without PostgreSQL fail (CI).
    Required,
}

/// The PostgreSQL server programs of one installation.
#[derive(Debug)]
struct Binaries {
    dir: PathBuf,
}

/// Who runs the server programs: this user, or (as root) the `postgres` system user.
#[derive(Debug)]
enum Runner {
    CurrentUser,
    Postgres { uid: u32, gid: u32 },
}

impl TempPostgres {
    /// A fresh cluster with an empty database named `halftone`, owned by the superuser
    /// `halftone`, running on 127.0.0.1. Installs PostgreSQL first when it is missing and that
    /// is allowed (see the module doc).
    pub fn start() -> Result<TempPostgres, Unavailable> {
        let bin = binaries()?;
        let runner = runner()?;
        let dir = tempfile::Builder::new()
            .prefix("halftone-pg-")
            .tempdir()
            .map_err(|e| Unavailable::new(format!("cannot create a temp dir: {e}")))?;
        if let Runner::Postgres { uid, gid } = runner {
            std::os::unix::fs::chown(dir.path(), Some(*uid), Some(*gid))
                .map_err(|e| Unavailable::new(format!("cannot give {} to postgres: {e}", dir.path().display())))?;
        }
        let data_dir = dir.path().join("data");
        let log = dir.path().join("server.log");

        // --no-sync: initdb's own final flush is not needed for a cluster that lives no longer
        // than the test; the running server keeps fsync on.
        let initdb = runner
            .command(&bin.program("initdb"), dir.path())
            .args(["--no-sync", "--auth=trust", "--encoding=UTF8", "--locale=C", "--username", NAME, "-D"])
            .arg(&data_dir)
            .output();
        check("initdb", initdb).map_err(|e| Unavailable::new(e.message))?;
        append_settings(&data_dir, dir.path()).map_err(|e| Unavailable::new(e.message))?;

        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let (port, port_lock) = free_port();
            match pg_ctl_start(bin, runner, dir.path(), port) {
                Ok(()) => {
                    let pg =
                        TempPostgres { bin, runner, port, data_dir, log, running: true, _port_lock: port_lock, dir };
                    pg.create_database().map_err(|e| Unavailable::new(e.message))?;
                    return Ok(pg);
                }
                // Another program took the port between our check and the server's bind.
                Err(e) if e.message.contains("could not bind") => last_error = e.message,
                Err(e) => return Err(Unavailable::new(e.message)),
            }
        }
        Err(Unavailable::new(format!("no free port after {PORT_ATTEMPTS} attempts: {last_error}")))
    }

    /// [`start`](Self::start) for the test named `test`, or `None` after
    /// [`Unavailable::skip_or_fail`] (a SKIPPED line, or a panic when
    /// `HALFTONE_TEST_POSTGRES=required`). [`postgres_or_skip!`](crate::postgres_or_skip) is this
    /// with the `return`.
    pub fn start_or_skip(test: &str) -> Option<TempPostgres> {
        // Read first, so that a misspelt value fails on machines with PostgreSQL too.
        let requirement = Requirement::from_env();
        match TempPostgres::start() {
            Ok(pg) => Some(pg),
            Err(unavailable) => {
                unavailable.skip_or_fail_as(test, requirement);
                None
            }
        }
    }

    /// `postgres://halftone@127.0.0.1:PORT/halftone`: the database of this cluster.
    pub fn url(&self) -> String {
        format!("postgres://{NAME}@127.0.0.1:{}/{NAME}", self.port)
    }

    /// The TCP port on 127.0.0.1; it stays the same across [`stop`](Self::stop) and
    /// [`start_again`](Self::start_again).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's data dir (for tests that look at or damage its files).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server's log file.
    pub fn log_file(&self) -> &Path {
        &self.log
    }

    /// Whether the server was left running by the last start or stop.
    pub fn is_running(&self) -> bool {
        self.running
    }

    /// Stops the server as an operator would (`pg_ctl stop -m fast`): open sessions are ended,
    /// committed data is kept. The port stays reserved for [`start_again`](Self::start_again).
    pub fn stop(&mut self) -> Result<(), PgError> {
        self.pg_ctl_stop("fast")
    }

    /// Stops the server like a power cut of the database (`pg_ctl stop -m immediate`): no
    /// shutdown checkpoint; the next start recovers from the WAL.
    pub fn crash(&mut self) -> Result<(), PgError> {
        self.pg_ctl_stop("immediate")
    }

    /// Starts the stopped server again on the same port, data dir and database, and waits until
    /// it accepts connections.
    pub fn start_again(&mut self) -> Result<(), PgError> {
        pg_ctl_start(self.bin, self.runner, self.dir.path(), self.port)?;
        self.running = true;
        Ok(())
    }

    /// [`stop`](Self::stop), then [`start_again`](Self::start_again).
    pub fn restart(&mut self) -> Result<(), PgError> {
        self.stop()?;
        self.start_again()
    }

    fn pg_ctl_stop(&mut self, mode: &str) -> Result<(), PgError> {
        let output = self
            .runner
            .command(&self.bin.program("pg_ctl"), self.dir.path())
            .args(["stop", "-w", "-t", PG_CTL_WAIT_SECS, "-m", mode, "-D"])
            .arg(&self.data_dir)
            .output();
        check("pg_ctl stop", output).map_err(|e| with_log(e, &self.log))?;
        self.running = false;
        Ok(())
    }

    fn create_database(&self) -> Result<(), PgError> {
        let output = Command::new(self.bin.program("createdb"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", NAME, NAME])
            .stdin(Stdio::null())
            .output();
        check("createdb", output).map_err(|e| with_log(e, &self.log))
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg_ctl_stop("immediate");
        }
    }
}

impl fmt::Debug for TempPostgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TempPostgres")
            .field("url", &self.url())
            .field("data_dir", &self.data_dir)
            .field("running", &self.running)
            .finish()
    }
}

impl Unavailable {
    fn new(reason: impl Into<String>) -> Unavailable {
        Unavailable { reason: reason.into() }
    }

    /// Why PostgreSQL cannot be had, in one sentence a person can act on.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// What a test does without PostgreSQL: with [`Requirement::Optional`] it writes
    /// `SKIPPED (PostgreSQL unavailable: <reason>)` to stderr past the test harness's capture, so
    /// the line shows in a plain `cargo test`; with [`Requirement::Required`] it panics.
    pub fn skip_or_fail(&self, test: &str) {
        self.skip_or_fail_as(test, Requirement::from_env());
    }

    fn skip_or_fail_as(&self, test: &str, requirement: Requirement) {
        match requirement {
            Requirement::Required => {
                panic!(
                    "{test}: PostgreSQL is required (HALFTONE_TEST_POSTGRES=required) but unavailable: {}",
                    self.reason
                )
            }
            Requirement::Optional => {
                // io::stderr() directly, not eprintln!: libtest captures only the print macros.
                let _ = writeln!(std::io::stderr(), "{test}: SKIPPED (PostgreSQL unavailable: {})", self.reason);
            }
        }
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PostgreSQL unavailable: {}", self.reason)
    }
}

impl std::error::Error for Unavailable {}

impl fmt::Display for PgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PgError {}

impl Requirement {
    /// Reads `HALFTONE_TEST_POSTGRES`; panics on a value it does not know, so that a typo in CI
    /// does not quietly turn the database tests into skips.
    pub fn from_env() -> Requirement {
        match std::env::var("HALFTONE_TEST_POSTGRES").as_deref() {
            Err(_) | Ok("") | Ok("optional") => Requirement::Optional,
            Ok("required") => Requirement::Required,
            Ok(other) => panic!("HALFTONE_TEST_POSTGRES={other:?}: expected `required` or `optional`"),
        }
    }
}

/// Starts a [`TempPostgres`] for this test, or skips the test: prints
/// `SKIPPED (PostgreSQL unavailable: <reason>)` and returns (the test passes). With
/// `HALFTONE_TEST_POSTGRES=required` an unavailable PostgreSQL fails the test instead.
///
/// `postgres_or_skip!()` returns `()`; `postgres_or_skip!(Ok(()))` suits tests that return a
/// `Result`.
///
/// ```no_run
/// #[test]
/// fn stores_a_release() {
///     let pg = halftone_tests::postgres_or_skip!();
///     let url = pg.url();
///     // ...
/// }
/// ```
#[macro_export]
macro_rules! postgres_or_skip {
    () => {
        $crate::postgres_or_skip!(())
    };
    ($skipped:expr) => {
        match $crate::postgres::TempPostgres::start_or_skip(::std::thread::current().name().unwrap_or(module_path!())) {
            Some(pg) => pg,
            None => return $skipped,
        }
    };
}

impl Binaries {
    fn program(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn in_dir(dir: &Path) -> Option<Binaries> {
        let complete = ["initdb", "pg_ctl", "postgres", "createdb"].iter().all(|p| dir.join(p).is_file());
        complete.then(|| Binaries { dir: dir.to_owned() })
    }

    /// The newest `/usr/lib/postgresql/VERSION/bin`, else the directory of `initdb` on PATH.
    fn find() -> Option<Binaries> {
        let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().into_string().ok()?;
                let version = name.split('.').map(|n| n.parse().ok()).collect::<Option<Vec<u32>>>()?;
                Some((version, entry.path().join("bin")))
            })
            .collect();
        versions.sort();
        let packaged = versions.into_iter().rev().find_map(|(_, dir)| Binaries::in_dir(&dir));
        packaged.or_else(|| {
            let path = std::env::var_os("PATH")?;
            std::env::split_paths(&path).find_map(|dir| Binaries::in_dir(&dir))
        })
    }
}

/// The server programs, found or installed once per process.
fn binaries() -> Result<&'static Binaries, Unavailable> {
    static BINARIES: OnceLock<Result<Binaries, Unavailable>> = OnceLock::new();
    BINARIES.get_or_init(find_or_install).as_ref().map_err(Clone::clone)
}

fn find_or_install() -> Result<Binaries, Unavailable> {
    if let Some(dir) = std::env::var_os("HALFTONE_TEST_PG_BIN") {
        let dir = PathBuf::from(dir);
        return Binaries::in_dir(&dir).ok_or_else(|| {
            Unavailable::new(format!(
                "HALFTONE_TEST_PG_BIN={} has no initdb, pg_ctl, postgres and createdb",
                dir.display()
            ))
        });
    }
    if let Some(found) = Binaries::find() {
        return Ok(found);
    }
    if std::env::var_os("HALFTONE_TEST_NO_INSTALL").is_some_and(|v| !v.is_empty()) {
        return Err(Unavailable::new("no PostgreSQL server found and HALFTONE_TEST_NO_INSTALL is set"));
    }
    if !is_root() {
        return Err(Unavailable::new(
            "no PostgreSQL server found (install the `postgresql` package, or run the tests as root to have them install it)",
        ));
    }
    install()?;
    Binaries::find()
        .ok_or_else(|| Unavailable::new("apt-get installed postgresql but no initdb is in /usr/lib/postgresql/*/bin"))
}

/// `apt-get update && apt-get install -y postgresql`, once per machine: parallel test processes
/// wait on one lock file, and a failure is remembered for an hour next to it.
fn install() -> Result<(), Unavailable> {
    let tmp = std::env::temp_dir();
    let lock_path = tmp.join("halftone-pg-install.lock");
    let failed_path = tmp.join("halftone-pg-install.failed");
    let lock = File::create(&lock_path)
        .and_then(|f| f.lock().map(|()| f))
        .map_err(|e| Unavailable::new(format!("cannot lock {}: {e}", lock_path.display())))?;
    // Another process may have installed (or failed to) while this one waited for the lock.
    if Binaries::find().is_some() {
        return Ok(());
    }
    if let Ok(meta) = std::fs::metadata(&failed_path) {
        let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok());
        if age.is_some_and(|age| age < Duration::from_secs(3600)) {
            let reason = std::fs::read_to_string(&failed_path).unwrap_or_default();
            return Err(Unavailable::new(format!(
                "installing PostgreSQL failed earlier (delete {} to retry): {}",
                failed_path.display(),
                reason.trim()
            )));
        }
    }
    let _ = writeln!(std::io::stderr(), "installing PostgreSQL: apt-get update && apt-get install -y postgresql");
    let result =
        apt_get(&["update"]).and_then(|()| apt_get(&["install", "-y", "--no-install-recommends", "postgresql"]));
    if let Err(reason) = &result {
        let _ = std::fs::write(&failed_path, reason);
    }
    drop(lock);
    result.map_err(|reason| Unavailable::new(format!("installing PostgreSQL failed: {reason}")))
}

fn apt_get(args: &[&str]) -> Result<(), String> {
    let output = Command::new("apt-get")
        .args(["-q", "-o", "Acquire::Retries=2", "-o", "Acquire::http::Timeout=30"])
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdin(Stdio::null())
        .output();
    check(&format!("apt-get {}", args[0]), output).map_err(|e| e.message)
}

fn is_root() -> bool {
    id(&["-u"]) == Some(0)
}

/// `id ARGS`, as a number. Through the `id` program because the workspace forbids `unsafe`
/// (no `geteuid`).
fn id(args: &[&str]) -> Option<u32> {
    let output = Command::new("id").args(args).stdin(Stdio::null()).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8(output.stdout).ok()?.trim().parse().ok()
}

fn runner() -> Result<&'static Runner, Unavailable> {
    static RUNNER: OnceLock<Result<Runner, Unavailable>> = OnceLock::new();
    RUNNER
        .get_or_init(|| {
            if !is_root() {
                return Ok(Runner::CurrentUser);
            }
            match (id(&["-u", "postgres"]), id(&["-g", "postgres"])) {
                (Some(uid), Some(gid)) => Ok(Runner::Postgres { uid, gid }),
                _ => Err(Unavailable::new(
                    "running as root, and there is no `postgres` user to run the server as (PostgreSQL refuses root)",
                )),
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

impl Runner {
    /// A command for a server program, as the user that owns the cluster. It runs in the
    /// cluster's dir: the `postgres` user may not be allowed into the test's working dir.
    fn command(&self, program: &Path, cwd: &Path) -> Command {
        let mut command = match self {
            Runner::CurrentUser => Command::new(program),
            Runner::Postgres { .. } => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
        };
        command.current_dir(cwd).stdin(Stdio::null());
        command
    }
}

/// The settings of every test cluster, appended to its `postgresql.conf`. The port is given at
/// each start instead, so that a start can move to another port when the one picked is taken.
fn append_settings(data_dir: &Path, socket_dir: &Path) -> Result<(), PgError> {
    let settings = format!(
        "\n# halftone-tests\n\
         listen_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{}'\n\
         fsync = on\n\
         synchronous_commit = on\n\
         full_page_writes = on\n\
         max_connections = 100\n\
         shared_buffers = 32MB\n",
        socket_dir.display().to_string().replace('\'', "''")
    );
    OpenOptions::new()
        .append(true)
        .open(data_dir.join("postgresql.conf"))
        .and_then(|mut f| f.write_all(settings.as_bytes()))
        .map_err(|e| PgError { message: format!("cannot write postgresql.conf: {e}") })
}

/// A port on 127.0.0.1 that is free now and that no other harness instance holds. Ports come
/// from below the kernel's ephemeral range, so servers bound to port 0 and outgoing connections
/// do not take them while a cluster is stopped. The returned lock file (in the temp dir) keeps
/// the port for this cluster across processes; without a usable temp dir the port is unlocked.
fn free_port() -> (u16, Option<File>) {
    let (low, high) = candidate_ports();
    let span = u32::from(high - low) + 1;
    let start = random() % span;
    let lock_dir = port_lock_dir();
    for i in 0..span {
        let port = low + ((start + i) % span) as u16;
        let lock = match &lock_dir {
            Some(dir) => match lock_port(dir, port) {
                Some(file) => Some(file),
                None => continue,
            },
            None => None,
        };
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return (port, lock);
        }
    }
    (low, None)
}

/// `$TMPDIR/halftone-pg-ports`, shared by every user's tests (sticky and world-writable, like
/// /tmp), or `None` when it cannot be had.
fn port_lock_dir() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join("halftone-pg-ports");
    if std::fs::create_dir(&dir).is_ok() {
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
    }
    dir.is_dir().then_some(dir)
}

/// The lock on `port`, or `None` when another cluster holds it. A lock file that another user
/// created is opened read-only: `flock` works on that too.
fn lock_port(dir: &Path, port: u16) -> Option<File> {
    let path = dir.join(format!("{port}.lock"));
    let file =
        OpenOptions::new().write(true).create(true).truncate(false).open(&path).or_else(|_| File::open(&path)).ok()?;
    file.try_lock().is_ok().then_some(file)
}

/// The range to pick ports from: below the ephemeral range (32768–60999 by default on Linux).
fn candidate_ports() -> (u16, u16) {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_low > 12000 { (10000, ephemeral_low - 1) } else { (ephemeral_low.max(1024), 65535) }
}

/// A random number without a dependency: the standard library seeds each `RandomState` anew.
fn random() -> u32 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.finish() as u32
}

/// `pg_ctl start` of the cluster in `dir` (data in `dir/data`, log in `dir/server.log`) on
/// `port`, waiting until it accepts connections.
fn pg_ctl_start(bin: &Binaries, runner: &Runner, dir: &Path, port: u16) -> Result<(), PgError> {
    let log = dir.join("server.log");
    let output = runner
        .command(&bin.program("pg_ctl"), dir)
        .args(["start", "-w", "-t", PG_CTL_WAIT_SECS, "-D"])
        .arg(dir.join("data"))
        .arg("-l")
        .arg(&log)
        .arg("-o")
        .arg(format!("-p {port}"))
        .output();
    check("pg_ctl start", output).map_err(|e| with_log(e, &log))
}

/// The error with the last lines of the server's log, where PostgreSQL says what went wrong.
fn with_log(e: PgError, log: &Path) -> PgError {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(20)..].join("\n");
    PgError { message: format!("{}\n--- end of {} ---\n{tail}", e.message, log.display()) }
}

/// The outcome of a command, with its output in the error.
fn check(what: &str, output: std::io::Result<Output>) -> Result<(), PgError> {
    match output {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(PgError {
            message: format!(
                "{what} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        }),
        Err(e) => Err(PgError { message: format!("cannot run {what}: {e}") }),
    }
}
