//! The simulator's behaviour on small, seeded fleets: what the gates do to builds that are
//! clearly bad, bad by a little, or as good as the baseline, judged by the server's code.
//! Each asserts a behaviour over many rollouts (most halted, rarely halted), never one
//! rollout's figures.

use halftone_channels::{Percent, Schedule, Step};
use halftone_simulator::{Build, Exhausted, Fleet, Plan, SCENARIOS, Scenario, measure, plan, scenarios};

/// Steps of `bp` basis points, 4 hours each.
fn steps(bp: &[u16]) -> Schedule {
    Schedule::new(bp.iter().map(|&b| Step::percent(Percent::from_basis_points(b).unwrap(), 4 * 3600)).collect())
        .unwrap()
}

fn scenario(key: &str) -> Scenario {
    *SCENARIOS.iter().find(|s| s.key == key).unwrap()
}

/// 20,000 devices whose first step (2.5%, 500 devices) is already the proving share: a build
/// is judged on its first 500 devices, and holds there unless proven no worse.
fn small() -> (Fleet, Plan) {
    (scenarios::fleet(20_000, "test:metrics"), Plan { schedule: steps(&[250, 1_000, 10_000]), ..plan() })
}

#[test]
fn a_build_with_sessions_half_as_long_is_halted_by_the_metric_gate_in_most_rollouts() {
    let (fleet, plan) = small();
    let f = measure(&scenario("metric-50"), &fleet, &plan, 50, 1);
    assert!(f.halted_by[1] >= 45, "{f:?}");
    // Within the first step's 500 devices.
    assert!(f.received_at_halt.iter().all(|&r| r <= 500), "{f:?}");
}

#[test]
fn a_build_with_sessions_as_long_is_rarely_halted_by_the_metric_gate() {
    let (fleet, plan) = small();
    let f = measure(&scenario("metric-equal"), &fleet, &plan, 50, 1);
    assert!(f.halted_by[1] <= 2, "{f:?}");
}

#[test]
fn metric_scenarios_run_under_a_metric_gate_and_rate_scenarios_do_not() {
    let (fleet, plan) = small();
    // The same twice-as-bad sessions without a metric gate: nothing judges them.
    let unjudged =
        Scenario { build: Build { session_s: None, ..scenario("metric-50").build }, ..scenario("metric-50") };
    let f = measure(&unjudged, &fleet, &plan, 10, 1);
    assert_eq!(f.halted_by[1], 0, "{f:?}");
}

/// 50,000 devices, steps 0.5%, 2%, 100%: the proving step holds 1,000 devices, too few for
/// the continuous test to decide every 4% build.
fn proving_on_few() -> (Fleet, Plan) {
    (scenarios::fleet(50_000, "test:exhausted"), Plan { schedule: steps(&[50, 200, 10_000]), ..plan() })
}

#[test]
fn a_four_percent_build_never_widens_past_the_proving_step_and_the_last_look_stops_every_one() {
    let (fleet, plan) = proving_on_few();
    let four = scenario("fails-4");
    // Holding (the server before the last look, no share kept for it): never past 2%.
    let hold = Plan { exhausted: Exhausted::Hold, gate: with_last_look(&plan, 0.0), ..plan.clone() };
    let holding = measure(&four, &fleet, &hold, 30, 3);
    assert_eq!(holding.completed, 0, "{holding:?}");
    // The default plan takes the last look, as the server does.
    assert_eq!(plan.exhausted, Exhausted::LastLook);
    assert_eq!(plan.gate.compare.unwrap().last_look(), 0.5);
    let looked = measure(&four, &fleet, &plan, 30, 3);
    assert_eq!((looked.held, looked.completed, looked.stopped()), (0, 0, 30), "{looked:?}");
    // Stopped at the proving step at the latest: 2% of the fleet.
    assert!(looked.max_share_at_stop().unwrap() <= 2.0, "{looked:?}");
    // The last look halts some the continuous test left undecided (the continuous test, run
    // on half the error rates, halts a few fewer).
    assert!(looked.halted_by[2] > 0, "{looked:?}");
}

#[test]
fn the_last_look_rarely_halts_a_build_as_good_as_the_baseline() {
    let (fleet, plan) = proving_on_few();
    let f = measure(&scenario("as-good"), &fleet, &plan, 30, 5);
    assert!(f.halted() <= 1, "{f:?}");
    // Nothing holds silently: each rollout widened, or paused for an engineer.
    assert_eq!(f.held, 0, "{f:?}");
    assert_eq!(f.completed + f.received_at_pause.len() + f.halted(), 30, "{f:?}");
}

fn with_last_look(plan: &Plan, share: f64) -> halftone_channels::HealthGate {
    let mut gate = plan.gate.clone();
    gate.compare = gate.compare.map(|c| c.with_last_look(share).unwrap());
    gate
}

#[test]
fn the_server_s_arm_comparison_finds_a_clear_winner_through_distributions() {
    let fleet = scenarios::fleet(4_000, "notes:2.0.0");
    let clear = halftone_simulator::AbPlan { mean_a: 300.0, mean_b: 450.0, test: None };
    let f = halftone_simulator::measure_ab(&fleet, &clear, 20, 1);
    assert!(f.better_won >= 18 && f.worse_won == 0, "{f:?}");
    let equal = halftone_simulator::AbPlan { mean_b: 300.0, ..clear };
    let f = halftone_simulator::measure_ab(&fleet, &equal, 20, 1);
    assert!(f.better_won + f.worse_won <= 3, "{f:?}");
}
