//! `halftone-replicas`: the multi-machine figures, side by side in one run on this machine.
//! Starts a throwaway PostgreSQL, an embedded-store server and two replicas on PostgreSQL (all
//! `halftone serve` processes of the binary given), seeds the same catalog into both stores,
//! and measures, alternating the two stores:
//!
//! - check-ins per second (the check-in path never touches the database: the same within noise);
//! - install events per second committed (acknowledged with 202);
//! - how long a rollout change made through one replica takes to be served by the other.
//!
//! The load generator is this process (reqwest), on the same cores as the servers: compare the
//! columns with each other, not with `bench/run.sh`'s wrk figures. Prints a Markdown table.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use halftone_tests::postgres::TempPostgres;
use halftone_tests::seed::{self, Seeder};
use serde_json::{Value, json};

/// Measure Halftone on PostgreSQL against the embedded store.
#[derive(Debug, Parser)]
struct Args {
    /// The `halftone` binary (a release build).
    #[arg(long, default_value = "target/release/halftone")]
    halftone: std::path::PathBuf,
    /// Releases in the seeded catalog.
    #[arg(long, default_value_t = 100)]
    releases: usize,
    /// Seconds per throughput measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Rounds (each measures both stores).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Rollout changes whose propagation is timed.
    #[arg(long, default_value_t = 200)]
    changes: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
}

/// A `halftone serve` process, killed when dropped.
struct Serve {
    base: String,
    token: Option<String>,
    child: Child,
    _dir: tempfile::TempDir,
}

impl Serve {
    /// Starts `halftone serve` on `store` (the embedded one when `None`); `fresh`: the store is
    /// new, so the server prints a bootstrap token.
    fn start(halftone: &std::path::Path, store: Option<&str>, fresh: bool) -> anyhow::Result<Serve> {
        let dir = tempfile::tempdir()?;
        let mut cmd = Command::new(halftone);
        cmd.args(["serve", "--bind", "127.0.0.1:0", "--log-format", "json", "--workers", "1", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "info")
            // One address sends the whole load: no per-address rates.
            .env("HALFTONE_DEVICE_RATE_PER_ADDRESS", "0")
            .env("HALFTONE_ADMIN_RATE_PER_ADDRESS", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        if let Some(url) = store {
            cmd.args(["--store", url]);
        }
        let mut child = cmd.spawn().with_context(|| format!("starting {}", halftone.display()))?;
        let mut lines = BufReader::new(child.stderr.take().expect("piped")).lines();
        let (mut base, mut token) = (None, None);
        while base.is_none() || (fresh && token.is_none()) {
            let line = lines.next().context("halftone serve stopped before listening")??;
            if let Some(t) = line.strip_prefix("bootstrap admin token (shown only now): ") {
                token = Some(t.trim().to_owned());
            } else if let Ok(log) = serde_json::from_str::<Value>(&line)
                && log["fields"]["message"] == "halftone listening"
            {
                base = log["fields"]["addr"].as_str().map(|a| format!("http://{a}"));
            }
        }
        std::thread::spawn(move || for _ in lines {});
        Ok(Serve { base: base.expect("set above"), token, child, _dir: dir })
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Requests per second that `request` (called with a counter) completes with `ok`.
async fn rate<F, Fut>(seconds: u64, concurrency: usize, request: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = u64> + Send,
{
    let request = Arc::new(request);
    let done = Arc::new(AtomicU64::new(0));
    let counter = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (request, done, counter) = (request.clone(), done.clone(), counter.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    let n = counter.fetch_add(1, Ordering::Relaxed);
                    done.fetch_add(request(n).await, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    done.load(Ordering::Relaxed) as f64 / seconds as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pg = TempPostgres::start().map_err(|e| anyhow::anyhow!("PostgreSQL: {}", e.reason()))?;
    let url = pg.url();
    let sled = Serve::start(&args.halftone, None, true)?;
    let a = Serve::start(&args.halftone, Some(&url), true)?;
    let b = Serve::start(&args.halftone, Some(&url), false)?;
    let token = |s: &Serve| s.token.clone().context("no bootstrap token");
    let (sled_token, pg_token) = (token(&sled)?, token(&a)?);
    eprintln!("seeding {} releases into each store", args.releases);
    Seeder::new(&sled.base, &sled_token, "bench")?.seed(args.releases, 8, |_| {}).await?;
    Seeder::new(&a.base, &pg_token, "bench")?.seed(args.releases, 8, |_| {}).await?;

    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build()?;
    let (mut checkins, mut events) = ((Vec::new(), Vec::new()), (Vec::new(), Vec::new()));
    for round in 0..args.rounds {
        for (name, base, out_c, out_e) in [
            ("embedded", sled.base.clone(), &mut checkins.0, &mut events.0),
            ("postgres", a.base.clone(), &mut checkins.1, &mut events.1),
        ] {
            eprintln!("round {round}: {name}");
            let (c, b2, releases) = (client.clone(), base.clone(), args.releases);
            out_c.push(
                rate(args.seconds, args.concurrency, move |n| {
                    let (c, url) = (c.clone(), format!("{b2}/v1/apps/bench/check"));
                    async move {
                        let r = c.post(url).json(&seed::device(n, releases)).send().await;
                        u64::from(r.is_ok_and(|r| r.status() == 200))
                    }
                })
                .await,
            );
            // Events count only with a report token: 50 devices check in once for theirs, and
            // every batch reports for them (the server still validates, screens and commits
            // each batch; the figures count them once).
            let mut tokens = Vec::new();
            for i in 0..50 {
                let body = json!({"device_id": format!("e-{i}"), "current_version": seed::version(0),
                                  "channel": "stable", "os": "linux", "arch": "x86_64"});
                let answer: Value =
                    client.post(format!("{base}/v1/apps/bench/check")).json(&body).send().await?.json().await?;
                tokens.push(answer["report_token"].clone());
            }
            let tokens = std::sync::Arc::new(tokens);
            let c = client.clone();
            out_e.push(
                50.0 * rate(args.seconds, args.concurrency, move |_| {
                    let (c, url) = (c.clone(), format!("{base}/v1/apps/bench/events"));
                    let batch: Vec<Value> = (0..50)
                        .map(|i| {
                            json!({"device_id": format!("e-{i}"), "kind": "install_succeeded",
                                   "version": seed::version(0), "channel": "stable", "token": tokens[i]})
                        })
                        .collect();
                    async move {
                        let r = c.post(url).json(&json!({ "events": batch })).send().await;
                        u64::from(r.is_ok_and(|r| r.status() == 202))
                    }
                })
                .await,
            );
        }
    }

    // Propagation: change the probe rollout through A; poll B until it serves the change.
    let path = format!("/v1/apps/bench/releases/{}/rollouts/{}", seed::PROBE_VERSION, seed::PROBE_CHANNEL);
    let mut lags = Vec::with_capacity(args.changes);
    for i in 0..args.changes {
        let got = client.get(format!("{}{path}", a.base)).bearer_auth(&pg_token).send().await?;
        let etag = got.headers().get("etag").context("no ETag")?.to_str()?.to_owned();
        let bp = if i % 2 == 0 { 5000 } else { 0 };
        let patched = client
            .patch(format!("{}{path}", a.base))
            .bearer_auth(&pg_token)
            .header("if-match", etag)
            .json(&json!({ "basis_points": bp }))
            .send()
            .await?;
        anyhow::ensure!(patched.status() == 200, "PATCH answered {}", patched.status());
        let changed = Instant::now();
        loop {
            let seen: Value =
                client.get(format!("{}{path}", b.base)).bearer_auth(&pg_token).send().await?.json().await?;
            if seen["basis_points"] == bp {
                break;
            }
            anyhow::ensure!(changed.elapsed() < Duration::from_secs(10), "change {i} not seen within 10 s");
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
        lags.push(changed.elapsed());
    }
    lags.sort();
    let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1000.0);

    println!("| figure | embedded (sled) | PostgreSQL | ratio |");
    println!("|---|---|---|---|");
    let (c0, c1) = (median(checkins.0), median(checkins.1));
    println!("| check-ins/s (median of {} runs) | {c0:.0} | {c1:.0} | {:.2} |", args.rounds, c1 / c0);
    let (e0, e1) = (median(events.0), median(events.1));
    println!("| install events/s committed (202) | {e0:.0} | {e1:.0} | {:.2} |", e1 / e0);
    println!(
        "| change on replica A served by replica B ({} changes) | | p50 {}, p99 {}, max {} | |",
        args.changes,
        ms(percentile(&lags, 0.5)),
        ms(percentile(&lags, 0.99)),
        ms(*lags.last().expect("at least one change"))
    );
    Ok(())
}
