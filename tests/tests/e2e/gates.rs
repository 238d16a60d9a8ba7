//! Gates that compare a build with the one its audience runs now: a build failing far more
//! often than its baseline is halted with the evidence in the audit log and the status view;
//! a resumed rollout is judged afresh; a build no worse than its baseline is proven so and
//! widens past its proving share, each step on its own sample.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt as _;
use halftone_channels::Metric;
use halftone_channels::wire::StatusView;
use halftone_server::clock::{Clock as _, ManualClock};
use serde_json::{Value, json};

use crate::feedback::post_from;
use crate::harness::*;

/// One round: every device of `fleet` not on `version` checks in; those offered it install,
/// one in `fail_every` failing (never, for 0), and report through their own /24 networks.
/// Returns how many devices received it this round.
pub(crate) async fn round(
    server: &TestServer,
    app: &str,
    version: &str,
    fleet: &mut [Device],
    fail_every: usize,
) -> usize {
    let fails = |_: usize, i: usize| fail_every > 0 && i.is_multiple_of(fail_every);
    round_with(server, app, version, fleet, Reports { fails: &fails, first_runs: true }).await
}

/// What the devices of a round report: `fails(n, i)` says whether the `n`th device to receive
/// the build (fleet index `i`) fails to install it; those that install report a first run
/// when `first_runs`.
pub(crate) struct Reports<'a> {
    fails: &'a dyn Fn(usize, usize) -> bool,
    first_runs: bool,
}

/// [`round`] with the devices' reports given by `reports`.
async fn round_with(
    server: &TestServer,
    app: &str,
    version: &str,
    fleet: &mut [Device],
    reports: Reports<'_>,
) -> usize {
    let http = server.anonymous();
    let waiting: Vec<usize> = (0..fleet.len()).filter(|&i| fleet[i].version != version).collect();
    let devices: Vec<Device> = waiting.iter().map(|&i| fleet[i].clone()).collect();
    let answers = answer_all(&http, app, &devices).await;
    let mut events: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
    let mut received = 0;
    for (&i, answer) in waiting.iter().zip(&answers) {
        let Some(offer) = answer.update.as_ref().filter(|u| u.version.to_string() == version) else { continue };
        received += 1;
        let token = offer.report_token.map(|t| t.to_string());
        let id = fleet[i].id.clone();
        let batch = events.entry(i / 20).or_default();
        if (reports.fails)(received - 1, i) {
            batch.push(event_with(&id, "install_failed", version, "stable", token.as_deref()));
        } else {
            batch.push(event_with(&id, "install_succeeded", version, "stable", token.as_deref()));
            if reports.first_runs {
                batch.push(event_with(&id, "first_run", version, "stable", token.as_deref()));
            }
        }
        fleet[i].version = version.to_owned();
    }
    let http = &http;
    let replies: Vec<Reply> = futures_util::stream::iter(
        events.into_iter().map(|(network, events)| async move { post_from(http, app, &events, network).await }),
    )
    .buffer_unordered(16)
    .collect()
    .await;
    for r in replies {
        assert_eq!((r.status, r.body["rejected"].as_u64()), (202, Some(0)), "{r:?}");
    }
    server.state().feedback.flush().await.unwrap();
    received
}

/// An app whose 10,000 devices all run 1.0.0, which failed to install on one in 50 of them.
pub(crate) async fn app_with_baseline(server: &TestServer, app: &str) -> (Publisher, Vec<Device>) {
    let p = Publisher::create(server, app).await;
    p.publish("1.0.0", "stable", "100%").await;
    let mut fleet = fleet(app, 10_000, "0.9.0", "stable");
    assert_eq!(round(server, app, "1.0.0", &mut fleet, 50).await, 10_000);
    (p, fleet)
}

async fn publish_gated(p: &Publisher, version: &str) {
    let schedule = json!({"steps": [
        {"basis_points": 100, "hold_s": 3600}, {"basis_points": 1000, "hold_s": 3600}, {"basis_points": 10000}
    ]});
    let rollout = json!({"basis_points": 100, "schedule": schedule, "gate": {"compare": {}}});
    p.publish_draft(&p.draft(version, &[]), "stable", rollout).await.unwrap();
}

async fn status(server: &TestServer, app: &str) -> StatusView {
    server.admin().status(&app.parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn a_build_failing_far_more_than_its_baseline_is_halted_with_its_evidence_and_judged_afresh_on_resume() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let (p, mut fleet) = app_with_baseline(&server, "cmp").await;
    publish_gated(&p, "1.1.0").await;
    // 1% of 10,000 devices, three in ten failing.
    let exposed = round(&server, "cmp", "1.1.0", &mut fleet, 3).await;
    assert!((50..=150).contains(&exposed), "{exposed}");
    clock.advance(1_000);
    let report = server.state().tick().await.unwrap();
    assert_eq!(report.tripped.len(), 1, "{report:?}");

    let s = status(&server, "cmp").await;
    let r = &s.releases[0].rollouts[0];
    assert_eq!((r.state.to_string().as_str(), r.basis_points.basis_points()), ("halted", 100));
    assert_eq!(r.baseline.as_ref().map(ToString::to_string).as_deref(), Some("1.0.0"));
    let trip = r.history.iter().find(|e| e.action == "gate.trip").expect("the halt is in the history");
    let why = trip.after.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(why.starts_with("install failure rate: worse than the baseline: "), "{why}");
    assert!(why.contains("against the baseline's ") && why.contains("log likelihood ratio"), "{why}");
    let e = r.evidence.iter().find(|e| e.call == "worse").expect("the status view shows the evidence");
    // Distinct devices are counted with sketches: close, not always exact.
    assert!(e.statistic >= e.halt_at && e.sample.abs_diff(exposed as u64) <= 3, "{e:?}");
    assert!(e.baseline_sample.abs_diff(10_000) <= 200, "{e:?}");
    // `halftone status` prints the evidence beside the rollouts.
    let text = halftone_server::cli::status::render(&s, false, 0);
    let line = text.lines().find(|l| l.contains("install_failure_rate")).unwrap_or_else(|| panic!("{text}"));
    assert!(
        text.contains("Gates against their baseline") && line.contains("1.0.0") && line.contains("worse"),
        "{text}"
    );

    // Resumed, the rollout is judged on what happens from now on: the failures that halted
    // it do not halt it again.
    p.patch_rollout("1.1.0", "stable", json!({"state": "active"})).await;
    clock.advance(1_000);
    assert!(server.state().tick().await.unwrap().tripped.is_empty());
    let s = status(&server, "cmp").await;
    assert!(s.releases[0].rollouts[0].evidence.iter().all(|e| e.sample == 0), "{:?}", s.releases[0].rollouts[0]);
}

#[tokio::test]
async fn a_build_no_worse_than_its_baseline_widens_step_by_step_on_evidence() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let (p, mut fleet) = app_with_baseline(&server, "fine").await;
    publish_gated(&p, "1.1.0").await;
    // The hold alone does not widen a step that has no sample yet.
    clock.advance(3_600_001);
    assert!(server.state().tick().await.unwrap().advanced.is_empty());
    let mut percents = Vec::new();
    for _ in 0..4 {
        round(&server, "fine", "1.1.0", &mut fleet, 0).await;
        clock.advance(3_600_001);
        let report = server.state().tick().await.unwrap();
        assert!(report.tripped.is_empty(), "{report:?}");
        percents.push(status(&server, "fine").await.releases[0].rollouts[0].basis_points.basis_points());
    }
    // At 10% the crash rate needs proof too, and a first run's crashes are waited for a day:
    // proven no worse on installs, the step holds while its first runs settle.
    assert_eq!(percents, [1_000, 1_000, 1_000, 1_000]);
    let s = status(&server, "fine").await;
    let evidence = &s.releases[0].rollouts[0].evidence;
    let installs = evidence.iter().find(|e| e.metric == Metric::InstallFailureRate).unwrap();
    let crashes = evidence.iter().find(|e| e.metric == Metric::CrashRate).unwrap();
    assert_eq!(installs.call, "no_worse", "{installs:?}");
    assert!(crashes.call == "undecided" && crashes.sample >= 900 && crashes.proof_sample == 0, "{crashes:?}");
    let text = halftone_server::cli::status::render(&s, false, 0);
    assert!(text.contains("settled 0/0"), "{text}");
    // A day after the step's devices first ran, their crashes (none) are in: proven, it widens.
    clock.advance(86_400_000);
    let report = server.state().tick().await.unwrap();
    assert_eq!(report.advanced.len(), 1, "{report:?}");
    let s = status(&server, "fine").await;
    assert_eq!(s.releases[0].rollouts[0].basis_points.basis_points(), 10_000);
    let advances: Vec<_> =
        s.releases[0].rollouts[0].history.iter().filter(|e| e.action == "schedule.advance").collect();
    assert_eq!(advances.len(), 2);
    // Past the proving share (2%), the step widened on proof, and says so.
    let why = advances[1].after.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(why.contains("install failure rate: no worse than the baseline"), "{why}");
    assert!(why.contains("crash rate per first run: no worse than the baseline"), "{why}");
}

/// An app whose 10,000 devices run 1.0.0, which failed to install on one in 50 of them, and
/// 1.1.0 published to a first step of 10% (a proving step: from 2% on) under a comparing gate
/// that keeps most of its error rates (`last_look` 0.9, `beta` 0.01) for the last look, so
/// that the last look decides on the step's ~1,000 devices where the continuous test cannot.
/// No first runs are reported, so only the install failure rate is judged.
async fn proving_step(server: &TestServer, app: &str, extra: Value) -> (Publisher, Vec<Device>) {
    let p = Publisher::create(server, app).await;
    p.publish("1.0.0", "stable", "100%").await;
    let mut fleet = fleet(app, 10_000, "0.9.0", "stable");
    let one_in_50 = |_: usize, i: usize| i.is_multiple_of(50);
    let baseline = Reports { fails: &one_in_50, first_runs: false };
    assert_eq!(round_with(server, app, "1.0.0", &mut fleet, baseline).await, 10_000);
    let schedule = json!({"steps": [{"basis_points": 1000, "hold_s": 3600}, {"basis_points": 10000}]});
    let mut compare = json!({"last_look": 0.9, "beta": 0.01});
    compare.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let rollout = json!({"basis_points": 1000, "schedule": schedule, "gate": {"compare": compare}});
    p.publish_draft(&p.draft("1.1.0", &[]), "stable", rollout).await.unwrap();
    (p, fleet)
}

/// The step's devices install 1.1.0, `rate` of them failing (the first ones to receive it).
async fn fill_step(server: &TestServer, app: &str, fleet: &mut [Device], rate: f64) -> usize {
    // The step admits about 1,000 devices; fail the first `rate` of that many.
    let failing = (1_000.0 * rate).round() as usize;
    let fails = move |n: usize, _: usize| n < failing;
    let n = round_with(server, app, "1.1.0", fleet, Reports { fails: &fails, first_runs: false }).await;
    assert!((900..=1_100).contains(&n), "{n}");
    n
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

fn rollout_of(s: &StatusView) -> &halftone_channels::wire::RolloutStatus {
    s.releases.iter().find(|r| r.version.to_string() == "1.1.0").map(|r| &r.rollouts[0]).unwrap()
}

#[tokio::test]
async fn an_exhausted_undecided_proving_step_is_paused_with_the_figures_and_not_while_reports_keep_coming() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let (_p, mut fleet) = proving_step(&server, "open", json!({})).await;
    // 3% failing on ~1,000 devices against 2% on 10,000: neither test can tell.
    fill_step(&server, "open", &mut fleet, 0.03).await;
    clock.advance(1_000);
    assert_eq!(server.state().tick().await.unwrap(), Default::default());
    clock.advance(HOUR_MS);
    assert_eq!(server.state().tick().await.unwrap(), Default::default());
    // The hold is over, the gate wants proof: the status says when the step counts as
    // exhausted if nothing new comes (a day after its reports were first seen).
    let s = status(&server, "open").await;
    let r = rollout_of(&s);
    let wait = r.exhaustion.clone().expect("a proving step held for evidence");
    assert_eq!(wait.exhausted_at_ms, wait.reports_grew_at_ms + DAY_MS, "{wait:?}");
    assert_eq!(wait.reports_grew_at_ms, clock.now_ms() - HOUR_MS, "first seen at the first tick");
    assert!(r.last_look.is_none());
    let text = halftone_server::cli::status::render(&s, false, clock.now_ms());
    assert!(text.contains("100% when the gate passes (step exhausted in 23h 0m if no new install reports"), "{text}");

    // Late devices keep reporting, one small batch every 20 hours, one in about 30 failing
    // (the 3% of the step): never exhausted.
    let mut late = fleet_of("late-open", 1_500);
    for batch in late.chunks_mut(300) {
        clock.advance(20 * HOUR_MS);
        let first = |n: usize, _: usize| n == 0;
        round_with(&server, "open", "1.1.0", batch, Reports { fails: &first, first_runs: false }).await;
        let report = server.state().tick().await.unwrap();
        assert!(report.tripped.is_empty() && report.advanced.is_empty(), "{report:?}");
        let r = status(&server, "open").await;
        assert_eq!(rollout_of(&r).state.to_string(), "active");
    }
    // Then nothing more for a day: paused, undecided, with the last look's figures.
    clock.advance(DAY_MS - 1_000);
    assert!(server.state().tick().await.unwrap().tripped.is_empty(), "not a day yet");
    clock.advance(1_000);
    let report = server.state().tick().await.unwrap();
    assert_eq!(report.tripped.len(), 1, "{report:?}");
    let s = status(&server, "open").await;
    let r = rollout_of(&s);
    assert_eq!((r.state.to_string().as_str(), r.basis_points.basis_points()), ("paused", 1_000));
    let entry = r.history.iter().find(|e| e.action == "gate.exhausted").expect("the pause is in the history");
    assert_eq!(entry.actor, "health-gate");
    let why = entry.after.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(why.starts_with("undecided: the step's audience is exhausted; install failure rate: last look"), "{why}");
    assert!(why.contains("chance of as many at the tolerated"), "{why}");
    let look = r.last_look.as_ref().expect("the status view shows the last look");
    assert_eq!((look.call.as_str(), look.basis_points.basis_points(), look.looks.len()), ("undecided", 1_000, 1));
    assert!(look.looks[0].sample >= 1_000 && look.looks[0].if_tolerated > look.looks[0].halt_below, "{look:?}");
    assert!(r.exhaustion.is_none());
    let text = halftone_server::cli::status::render(&s, false, 0);
    assert!(text.contains("Last look") && text.contains("undecided"), "{text}");
    // Paused: nothing more happens by itself.
    clock.advance(DAY_MS);
    assert_eq!(server.state().tick().await.unwrap(), Default::default());
}

fn fleet_of(prefix: &str, n: usize) -> Vec<Device> {
    fleet(prefix, n, "1.0.0", "stable")
}

#[tokio::test]
async fn a_clearly_worse_build_is_halted_at_the_last_look() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    // A shorter wait, set on the gate.
    let (_p, mut fleet) = proving_step(&server, "worse", json!({"exhausted_after_s": 7200})).await;
    // 4.25% failing: the likelihood ratio is still short of its bound, the exact tail is not.
    fill_step(&server, "worse", &mut fleet, 0.0425).await;
    clock.advance(1_000);
    assert_eq!(server.state().tick().await.unwrap(), Default::default(), "the continuous test did not decide");
    clock.advance(HOUR_MS);
    assert_eq!(server.state().tick().await.unwrap(), Default::default());
    clock.advance(HOUR_MS);
    let report = server.state().tick().await.unwrap();
    assert_eq!(report.tripped.len(), 1, "{report:?}");
    let s = status(&server, "worse").await;
    let r = rollout_of(&s);
    assert_eq!(r.state.to_string(), "halted");
    let trip = r.history.iter().find(|e| e.action == "gate.trip").expect("the halt is in the history");
    let why = trip.after.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(why.starts_with("install failure rate: last look, the step's audience exhausted: worse"), "{why}");
    assert_eq!(r.last_look.as_ref().map(|l| l.call.as_str()), Some("worse"));
}

#[tokio::test]
async fn a_build_no_worse_than_its_baseline_widens_at_the_last_look() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let (_p, mut fleet) = proving_step(&server, "fine", json!({})).await;
    // 2.2% failing: not yet proven by the likelihood ratio, proven by the exact tail.
    fill_step(&server, "fine", &mut fleet, 0.022).await;
    clock.advance(1_000);
    assert_eq!(server.state().tick().await.unwrap(), Default::default(), "the continuous test did not decide");
    clock.advance(DAY_MS);
    let report = server.state().tick().await.unwrap();
    assert_eq!((report.advanced.len(), report.tripped.len()), (1, 0), "{report:?}");
    let s = status(&server, "fine").await;
    let r = rollout_of(&s);
    assert_eq!((r.state.to_string().as_str(), r.basis_points.basis_points()), ("active", 10_000));
    let advance = r.history.iter().find(|e| e.action == "schedule.advance").expect("the advance is in the history");
    assert_eq!(advance.actor, "scheduler");
    let why = advance.after.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(why.starts_with("install failure rate: last look, the step's audience exhausted: no worse"), "{why}");
    assert_eq!(
        r.last_look.as_ref().map(|l| (l.call.as_str(), l.basis_points.basis_points())),
        Some(("no_worse", 1_000))
    );
}

#[tokio::test]
async fn bad_last_look_settings_are_refused_and_change_nothing() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let p = Publisher::create(&server, "bad").await;
    for (compare, says) in [
        (json!({"last_look": 1.0}), "last_look is a share from 0 to below 1"),
        (json!({"last_look": -0.1}), "last_look is a share from 0 to below 1"),
        (json!({"exhausted_after_s": 10}), "exhausted_after_s is a duration in seconds from 60"),
        (json!({"exhausted_after_s": 100_000_000}), "exhausted_after_s is a duration in seconds from 60"),
        (json!({"crash_window_s": 0}), "crash_window_s is a duration in seconds from 60"),
        (json!({"crash_window_s": 100_000_000}), "crash_window_s is a duration in seconds from 60"),
    ] {
        let rollout = json!({"basis_points": 100, "gate": {"compare": compare}});
        let e = p.publish_draft(&p.draft("1.0.0", &[]), "stable", rollout).await.unwrap_err();
        assert_eq!(e.status(), Some(422), "{compare}: {e}");
        let detail = e.problem().map(|p| p.detail.clone()).unwrap_or_default();
        assert!(detail.contains(says), "{compare}: {detail}");
    }
    assert!(status(&server, "bad").await.releases.is_empty(), "nothing was stored");
    // 0 turns the look off, and answers carry the settings.
    // 0 turns the look off, and answers carry the settings.
    let compare =
        json!({"last_look": 0.0, "exhausted_after_s": 3600, "crash_window_s": 7200, "crashes_proven_from_bp": 500});
    let rollout = json!({"basis_points": 100, "gate": {"compare": compare}});
    p.publish_draft(&p.draft("1.0.0", &[]), "stable", rollout).await.unwrap();
    let s = status(&server, "bad").await;
    let c = s.releases[0].rollouts[0].gate.as_ref().unwrap().compare.unwrap();
    assert_eq!((c.last_look, c.exhausted_after_s, c.crash_window_s), (Some(0.0), Some(3600), Some(7200)));
    assert_eq!(c.crashes_proven_from_bp.map(|p| p.basis_points()), Some(500));
    let p2 = Publisher::create(&server, "dflt").await;
    p2.publish_draft(&p2.draft("1.0.0", &[]), "stable", json!({"basis_points": 100, "gate": {"compare": {}}}))
        .await
        .unwrap();
    let c = status(&server, "dflt").await.releases[0].rollouts[0].gate.as_ref().unwrap().compare.unwrap();
    assert_eq!((c.last_look, c.exhausted_after_s, c.crash_window_s), (Some(0.5), Some(86_400), Some(86_400)));
    assert_eq!((c.beta, c.crashes_proven_from_bp.map(|p| p.basis_points())), (Some(0.005), Some(1_000)));
}

/// Crashes come late: a step whose devices all installed and first ran a build, and whose
/// crashes are still to come, is not proven no worse on the crash rate before its first runs
/// are `crash_window_s` old; when the crashes come, it is halted.
#[tokio::test]
async fn a_build_is_not_proven_on_crashes_still_to_come_and_is_halted_when_they_come() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    // 10,000 devices on 1.0.0 (2% failed to install it, none crashed).
    let (p, mut fleet) = app_with_baseline(&server, "late").await;
    let schedule = json!({"steps": [{"basis_points": 1000, "hold_s": 3600}, {"basis_points": 10000}]});
    let rollout = json!({"basis_points": 1000, "schedule": schedule, "gate": {"compare": {"crash_window_s": 7200}}});
    p.publish_draft(&p.draft("1.1.0", &[]), "stable", rollout).await.unwrap();
    clock.advance(1_000);
    assert_eq!(server.state().tick().await.unwrap(), Default::default());
    // The step's ~1,000 devices install 1.1.0, none failing, and run it.
    let n = round(&server, "late", "1.1.0", &mut fleet, 0).await;
    assert!((900..=1_100).contains(&n), "{n}");
    // The hold is over and the install failure rate is proven no worse; the crash rate, with
    // no crash yet among ~1,000 first runs, would be too, if crashes came at once.
    clock.advance(HOUR_MS);
    assert_eq!(server.state().tick().await.unwrap(), Default::default(), "it must not widen yet");
    let s = status(&server, "late").await;
    let r = rollout_of(&s);
    assert_eq!((r.state.to_string().as_str(), r.basis_points.basis_points()), ("active", 1_000));
    let crashes = r.evidence.iter().find(|e| e.metric == Metric::CrashRate).unwrap();
    assert!(crashes.call == "undecided" && crashes.bad == 0 && crashes.proof_sample == 0, "{crashes:?}");
    assert!(crashes.sample.abs_diff(n as u64) <= 20, "{crashes:?}");
    // Half an hour later, one device in 50 has crashed: halted at once, at 10%.
    clock.advance(HOUR_MS / 2);
    let http = server.anonymous();
    let running: Vec<Device> = fleet.iter().filter(|d| d.version == "1.1.0").step_by(50).cloned().collect();
    for (i, d) in running.iter().enumerate() {
        let token = running_token(&http, "late", d).await;
        let crash = event_with(&d.id, "crash", "1.1.0", "stable", Some(&token));
        let r = post_from(&http, "late", &[crash], i / 10).await;
        assert_eq!((r.status, r.body["rejected"].as_u64()), (202, Some(0)), "{r:?}");
    }
    server.state().feedback.flush().await.unwrap();
    clock.advance(1_000);
    let report = server.state().tick().await.unwrap();
    assert_eq!(report.tripped.len(), 1, "{report:?}");
    assert!(report.tripped[0].contains("crash rate per first run: worse than the baseline"), "{report:?}");
    let s = status(&server, "late").await;
    assert_eq!(rollout_of(&s).state.to_string(), "halted");
    assert_eq!(rollout_of(&s).basis_points.basis_points(), 1_000);
}
