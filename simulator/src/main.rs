//! `halftone-simulate`: the gate figures of docs/gates.md (see `cargo run --release -p
//! halftone-simulator -- --help`).

use anyhow::bail;
use clap::{Parser, ValueEnum};
use halftone_channels::{Comparison, MetricGate, Percent, Schedule, Share, Step};
use halftone_simulator::{Exhausted, SCENARIOS};

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
    /// Only these scenarios (fails-30, fails-4, as-good, metric-10, metric-20, metric-50,
    /// metric-equal, ab); all by default.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
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
    /// The comparing gate's beta (default: the gate's default).
    #[arg(long)]
    beta: Option<f64>,
    /// The share from which the crash rate needs proof too, in basis points (default: the
    /// gate's default).
    #[arg(long)]
    crashes_proven_from_bp: Option<u16>,
    /// What a step whose whole audience has reported, still undecided, does.
    #[arg(long, value_enum, default_value_t = OnExhausted::LastLook)]
    exhausted: OnExhausted,
    /// With `--exhausted last-look`: the share of alpha and beta kept for the last look
    /// (default: the gate's default, as the server has it). With `hold` or `pause` no share
    /// is kept (nothing would spend it).
    #[arg(long)]
    last_look_share: Option<f64>,
    /// The metric gate's min_count (default: the documented default).
    #[arg(long)]
    metric_min_count: Option<u64>,
    /// Only the A/B line (as `--scenarios ab`).
    #[arg(long)]
    ab_only: bool,
    /// Instead of rollouts: the metric gate's test on exponential values against a baseline of
    /// 98,000, judged after each of up to this many values, with every way of estimating the
    /// candidate's variance side by side (`--rollouts` runs per candidate).
    #[arg(long)]
    variance_study: Option<u64>,
}

#[derive(Clone, Copy, ValueEnum)]
enum OnExhausted {
    /// Keep holding, silently (the server before it took the last look).
    Hold,
    /// Pause, undecided.
    Pause,
    /// The comparison's last look at the first proving step, then pause if undecided (the
    /// server's behaviour).
    LastLook,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(values) = args.variance_study {
        print!("{}", variance_table(values, args.rollouts, args.seed));
        return Ok(());
    }
    let known: Vec<&str> = SCENARIOS.iter().map(|s| s.key).chain(["ab"]).collect();
    if let Some(unknown) = args.scenarios.iter().find(|k| !known.contains(&k.as_str())) {
        bail!("no scenario {unknown}; the scenarios are {}", known.join(", "));
    }
    let wanted = |key: &str| {
        if args.ab_only { key == "ab" } else { args.scenarios.is_empty() || args.scenarios.iter().any(|k| k == key) }
    };
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
    let c = plan.gate.compare.unwrap_or_default();
    let proven = match args.proven_from_bp {
        Some(bp) => Percent::from_basis_points(bp)?,
        None => c.proven_from(),
    };
    let beta = args.beta.unwrap_or(c.beta());
    let c = Comparison::new(c.degradation(), c.min_difference(), c.alpha(), beta, proven, c.step_sample())?;
    let share = match args.exhausted {
        OnExhausted::Hold | OnExhausted::Pause => args.last_look_share.unwrap_or(0.0),
        OnExhausted::LastLook => args.last_look_share.unwrap_or(c.last_look()),
    };
    let crashes_proven = match args.crashes_proven_from_bp {
        Some(bp) => Percent::from_basis_points(bp)?,
        None => c.crashes_proven_from(),
    };
    let c = c.with_last_look(share)?.with_crashes_proven_from(crashes_proven);
    plan.exhausted = match args.exhausted {
        OnExhausted::Hold => Exhausted::Hold,
        OnExhausted::Pause => Exhausted::Pause,
        OnExhausted::LastLook => Exhausted::LastLook,
    };
    plan.gate.compare = Some(c);
    if let Some(min_count) = args.metric_min_count {
        let g = halftone_simulator::with_metric_gate(&plan).gate.metrics.remove(0);
        plan.gate.metrics = vec![MetricGate::new(g.name().clone(), g.degradation(), g.alpha(), min_count)?];
    }
    let exhausted = match args.exhausted {
        OnExhausted::Hold => "hold".to_owned(),
        OnExhausted::Pause => "pause".to_owned(),
        OnExhausted::LastLook => format!("last look ({share} of alpha and beta), then pause"),
    };
    println!(
        "steps {}; proving share {} (crashes from {}, on first runs {} h old); alpha {}, beta {}; \
         an exhausted undecided step: {exhausted}",
        plan.schedule.steps().iter().map(|s| s.share.to_string()).collect::<Vec<_>>().join(", "),
        c.proven_from(),
        c.crashes_proven_from().max(c.proven_from()),
        c.crash_window_s() / 3600,
        c.alpha(),
        c.beta(),
    );
    let started = std::time::Instant::now();
    let fleet = halftone_simulator::scenarios::fleet(args.devices, "notes:2.0.0");
    eprintln!("{} devices bucketed in {:.1?}", args.devices, started.elapsed());
    let mut rows = Vec::new();
    for s in SCENARIOS.into_iter().filter(|s| wanted(s.key)) {
        let started = std::time::Instant::now();
        let f = halftone_simulator::measure(&s, &fleet, &plan, args.rollouts, args.seed);
        eprintln!("{}: {} rollouts in {:.1?}", s.name, args.rollouts, started.elapsed());
        rows.push((s, f));
    }
    println!("{} devices, {} rollouts per scenario, seed {}\n", args.devices, args.rollouts, args.seed);
    if !rows.is_empty() {
        print!("{}", halftone_simulator::table(&rows));
    }
    if !wanted("ab") {
        return Ok(());
    }
    let started = std::time::Instant::now();
    let ab = halftone_simulator::AbPlan { mean_a: 300.0, mean_b: 315.0, test: None };
    let experiments = halftone_simulator::measure_ab(&fleet, &ab, args.rollouts, args.seed);
    eprintln!("A/B: {} experiments in {:.1?}", args.rollouts, started.elapsed());
    let share = |n: usize| n as f64 / experiments.experiments as f64 * 100.0;
    println!(
        "\nA/B on two arms placed by Experiment::lay_out (50% each), session length (exponential) 300 s against \
         315 s (5% better), aggregated per arm in a Distribution, compared by compare_arms with the server's \
         metric_test (alpha 0.05, tau 5% of the pooled mean):\n\n\
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

/// The table of `--variance-study`: each rule's halts on candidates 50%, 20% and 10% shorter
/// and as long as the baseline's 300 s.
fn variance_table(values: u64, runs: usize, seed: u64) -> String {
    use halftone_simulator::scenarios::quantile;
    let means = [150.0, 240.0, 270.0, 300.0];
    let studies: Vec<_> = means
        .iter()
        .map(|&m| {
            let started = std::time::Instant::now();
            let s = halftone_simulator::variance::study(m, 98_000, values, runs, seed);
            eprintln!("{m} s: {runs} runs in {:.1?}", started.elapsed());
            s
        })
        .collect();
    let mut out = format!(
        "{runs} runs per candidate, seed {seed}; exponential sessions against 98,000 of the baseline's (300 s), \
         judged after every value up to {values}; metric gate defaults (10% tolerated, alpha 1%)\n\n\
         | the candidate's variance | 150 s: halted, values at the halt median / max | 240 s: halted, median / p99 | \
         270 s (at the tolerance): halted, median | 300 s (as long): halted |\n|---|---|---|---|---|\n"
    );
    for (r, rule) in halftone_simulator::variance::RULES.iter().enumerate() {
        let f = |i: usize| &studies[i][r].halted_at;
        let q = |i: usize, p: f64| quantile(f(i), p).map_or("-".to_owned(), |v| v.to_string());
        let pct = |i: usize| format!("{} ({:.1}%)", f(i).len(), f(i).len() as f64 / runs as f64 * 100.0);
        out.push_str(&format!(
            "| {} | {}, {} / {} | {}, {} / {} | {}, {} | {} |\n",
            rule.name(),
            pct(0),
            q(0, 0.5),
            q(0, 1.0),
            pct(1),
            q(1, 0.5),
            q(1, 0.99),
            pct(2),
            q(2, 0.5),
            pct(3),
        ));
    }
    out
}
