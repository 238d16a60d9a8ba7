//! `halftone-seed`: seeds a benchmark catalog into a running server through its API, and
//! measures what wrk cannot (see `bench/README.md`). Each command prints one line of
//! `KEY value=...` pairs on stdout for `bench/run.sh`; progress goes to stderr.

use std::time::Duration;

use clap::{Parser, Subcommand};
use halftone_tests::seed::Seeder;

/// Seed and probe a Halftone server for the benchmark.
#[derive(Debug, Parser)]
struct Cli {
    /// The server's URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// An admin token.
    #[arg(long, env = "HALFTONE_TOKEN", hide_env_values = true)]
    token: String,
    /// The app to seed.
    #[arg(long, default_value = "bench")]
    app: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Creates the app and publishes the catalog (prints `SEED releases=.. rollouts=.. seconds=..`).
    Seed {
        /// Releases to publish (the probe release comes on top).
        #[arg(long, default_value_t = 1000)]
        releases: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
    },
    /// Writes the median-size answer of `count` benchmark-like check-ins to `out`.
    Sample {
        /// The catalog's size, as seeded.
        #[arg(long, default_value_t = 1000)]
        releases: usize,
        /// Check-ins to send.
        #[arg(long, default_value_t = 201)]
        count: usize,
        /// Where to write the answer.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Writes `device version channel token` lines for `count` devices running releases of the
    /// catalog, for event benchmarks (events count only with a report token).
    Tokens {
        /// The catalog's size, as seeded.
        #[arg(long, default_value_t = 1000)]
        releases: usize,
        /// Devices.
        #[arg(long, default_value_t = 2000)]
        count: usize,
        /// Where to write the lines.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Changes the probe rollout `times` times and reports when the probe device saw each change.
    Flip {
        /// Changes to make (an even number leaves the rollout as it was).
        #[arg(long, default_value_t = 6)]
        times: usize,
        /// Pause between changes, in milliseconds.
        #[arg(long, default_value_t = 500)]
        pause_ms: u64,
    },
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len().saturating_sub(1) / 2).copied().unwrap_or(0.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let seeder = Seeder::new(&cli.server, &cli.token, &cli.app)?;
    match cli.command {
        Command::Seed { releases, concurrency } => {
            let step = (releases / 10).max(1);
            let seeded = seeder
                .seed(releases, concurrency, |n| {
                    if n.is_multiple_of(step) {
                        eprintln!("seeded {n}/{releases} releases");
                    }
                })
                .await?;
            println!(
                "SEED releases={} rollouts={} uploads={} seconds={:.2} releases_per_s={:.1}",
                seeded.releases,
                seeded.rollouts,
                seeded.uploads,
                seeded.elapsed.as_secs_f64(),
                seeded.releases as f64 / seeded.elapsed.as_secs_f64()
            );
        }
        Command::Sample { releases, count, out } => {
            let sample = seeder.sample(releases, count).await?;
            std::fs::write(&out, &sample.body)?;
            println!("SAMPLE bytes={} offers={} checked={}", sample.body.len(), sample.offers, sample.checked);
        }
        Command::Tokens { releases, count, out } => {
            let tokens = seeder.report_tokens(releases, count).await?;
            let lines: String = tokens.iter().map(|t| t.join(" ") + "\n").collect();
            std::fs::write(&out, lines)?;
            println!("TOKENS devices={}", tokens.len());
        }
        Command::Flip { times, pause_ms } => {
            let flips = seeder.flip(times, Duration::from_millis(pause_ms)).await?;
            let visible: Vec<f64> = flips.iter().map(|f| ms(f.visible)).collect();
            let ack: Vec<f64> = flips.iter().map(|f| ms(f.acknowledged)).collect();
            println!(
                "FLIP flips={} ack_ms_median={:.2} ack_ms_max={:.2} visible_ms_median={:.2} visible_ms_max={:.2} probes={}",
                flips.len(),
                median(ack.clone()),
                ack.iter().copied().fold(0.0, f64::max),
                median(visible.clone()),
                visible.iter().copied().fold(0.0, f64::max),
                flips.iter().map(|f| f.probes).sum::<usize>()
            );
        }
    }
    Ok(())
}
