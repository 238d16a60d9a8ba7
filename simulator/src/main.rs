//! `halftone-simulate`: the gate figures of docs/gates.md (see `cargo run --release -p
//! halftone-simulator -- --help`).

use clap::Parser;
use halftone_channels::{Comparison, Percent, Schedule, Share, Step};

/// Runs many staged rollouts of each scenario through the server's gate and schedule code and
/// prints the table of docs/gates.md.
#[derive(Parser)]
struct Args {
    /// Rollouts per scenario.
    #[arg(long, default_value_t = 1000)]
    rollouts: usize,
    /// Devices in the fleet.
    #[arg(long, default_value_t = 100_000)]
    devices: u32,
    /// The first rollout's seed (rollout i uses seed + i).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Other steps than the documented plan's, as basis points (e.g. 50,100,500,2000,10000),
    /// each held 4 hours.
    #[arg(long, value_delimiter = ',')]
    steps: Vec<u16>,
    /// Make the first step this many devices instead of a share (its hold kept).
    #[arg(long)]
    first_devices: Option<std::num::NonZeroU32>,
    /// The comparing gate's proving share, in basis points (default: the gate's default).
    #[arg(long)]
    proven_from_bp: Option<u16>,
    /// Only the A/B line (skips the gate scenarios).
    #[arg(long)]
    ab_only: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut plan = halftone_simulator::plan();
    if !args.steps.is_empty() {
        let steps = args
            .steps
            .iter()
            .map(|&bp| Ok(Step::percent(Percent::from_basis_points(bp)?, 4 * 3600)))
            .collect::<Result<Vec<_>, halftone_channels::ParseError>>()?;
        plan.schedule = Schedule::new(steps)?;
    }
    if let Some(n) = args.first_devices {
        let mut steps = plan.schedule.steps().to_vec();
        steps[0].share = Share::Devices(n);
        plan.schedule = Schedule::new(steps)?;
    }
    if let Some(bp) = args.proven_from_bp {
        let c = plan.gate.compare.unwrap_or_default();
        let proven = Percent::from_basis_points(bp)?;
        plan.gate.compare =
            Some(Comparison::new(c.degradation(), c.min_difference(), c.alpha(), c.beta(), proven, c.step_sample())?);
    }
    println!(
        "steps {}; proving share {}",
        plan.schedule.steps().iter().map(|s| s.share.to_string()).collect::<Vec<_>>().join(", "),
        plan.gate.compare.map_or_else(String::new, |c| c.proven_from().to_string())
    );
    let fleet = halftone_simulator::scenarios::fleet(args.devices, "notes:2.0.0");
    let mut rows = Vec::new();
    for s in halftone_simulator::SCENARIOS.into_iter().filter(|_| !args.ab_only) {
        let started = std::time::Instant::now();
        let f = halftone_simulator::measure(&s, &fleet, &plan, args.rollouts, args.seed);
        eprintln!("{}: {} rollouts in {:.1?}", s.name, args.rollouts, started.elapsed());
        rows.push((s, f));
    }
    let started = std::time::Instant::now();
    let ab = halftone_simulator::AbPlan {
        mean_a: 300.0,
        mean_b: 315.0,
        test: halftone_channels::MeanTest { alpha: 0.01, tau: 15.0, min_count: 100 },
    };
    let experiments = halftone_simulator::measure_ab(&fleet, &ab, args.rollouts, args.seed);
    eprintln!("A/B: {} experiments in {:.1?}", args.rollouts, started.elapsed());
    println!("{} devices, {} rollouts per scenario, seed {}\n", args.devices, args.rollouts, args.seed);
    if !rows.is_empty() {
        print!("{}", halftone_simulator::table(&rows));
    }
    let share = |n: usize| n as f64 / experiments.experiments as f64 * 100.0;
    println!(
        "\nA/B on two arms placed by Experiment::lay_out (50% each), compared by compare_arms, session length (exponential) 300 s against 315 s (5% better), \
         MeanTest alpha 0.01, tau 15 s:\n\n\
         | experiments | the better build won | the worse won | undecided after every device | devices reported at the decision (median) |\n\
         |---|---|---|---|---|\n\
         | {} | {} ({:.1}%) | {} ({:.1}%) | {} ({:.1}%) | {} |",
        experiments.experiments,
        experiments.better_won,
        share(experiments.better_won),
        experiments.worse_won,
        share(experiments.worse_won),
        experiments.undecided,
        share(experiments.undecided),
        experiments.median_reports
    );
    Ok(())
}
