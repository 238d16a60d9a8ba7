//! Gates that compare a build with the one its audience runs now: a build failing far more
//! often than its baseline is halted with the evidence in the audit log and the status view;
//! a resumed rollout is judged afresh; a build no worse than its baseline is proven so and
//! widens past its proving share, each step on its own sample.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt as _;
use halftone_channels::wire::StatusView;
use halftone_server::clock::ManualClock;
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
        if fail_every > 0 && i % fail_every == 0 {
            batch.push(event_with(&id, "install_failed", version, "stable", token.as_deref()));
        } else {
            batch.push(event_with(&id, "install_succeeded", version, "stable", token.as_deref()));
            batch.push(event_with(&id, "first_run", version, "stable", token.as_deref()));
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
    assert_eq!(percents, [1_000, 10_000, 10_000, 10_000]);
    let s = status(&server, "fine").await;
    let advances: Vec<_> =
        s.releases[0].rollouts[0].history.iter().filter(|e| e.action == "schedule.advance").collect();
    assert_eq!(advances.len(), 2);
    // Past the proving share (2%), the step widened on proof, and says so.
    let why = advances[1].after.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(why.contains("install failure rate: no worse than the baseline"), "{why}");
}
