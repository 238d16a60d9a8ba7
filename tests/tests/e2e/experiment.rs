//! A/B/N arms keep their health gates: of two arms on disjoint shares, the one failing far
//! more than the channel's baseline is halted by its own gate while the other keeps serving,
//! and the experiment's view shows the good arm ahead, proven.

use std::sync::Arc;

use halftone_channels::wire::{ArmRequest, ExperimentRequest};
use halftone_server::clock::ManualClock;
use serde_json::json;

use crate::gates::{app_with_baseline, round};
use crate::harness::*;

#[tokio::test]
async fn a_bad_arm_is_halted_by_its_gate_and_the_good_arm_is_proven_ahead() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let (p, mut devices) = app_with_baseline(&server, "abn").await;
    for v in ["1.1.0", "1.2.0"] {
        let rollout = json!({"basis_points": 0, "gate": {"compare": {}}});
        p.publish_draft(&p.draft(v, &[]), "stable", rollout).await.unwrap();
    }
    let (app, stable) = ("abn".parse().unwrap(), "stable".parse().unwrap());
    let arms = ["1.1.0", "1.2.0"]
        .map(|v| ArmRequest {
            version: v.parse().unwrap(),
            basis_points: halftone_channels::Percent::parse("10%").unwrap(),
        })
        .to_vec();
    let admin = server.admin();
    let started = admin.start_experiment(&app, &stable, &ExperimentRequest { arms, reason: None }).await.unwrap();
    assert!(started.arms.iter().all(|a| a.slot.width.basis_points() == 5_000), "{started:?}");

    // 1.1.0 installs everywhere, 1.2.0 fails on one device in three.
    let good = round(&server, "abn", "1.1.0", &mut devices, 0).await;
    let bad = round(&server, "abn", "1.2.0", &mut devices, 3).await;
    for n in [good, bad] {
        assert!((850..1_150).contains(&n), "each arm reaches about 10% of 10,000 devices: {good} and {bad}");
    }
    clock.advance(1_000);
    let report = server.state().tick().await.unwrap();
    assert_eq!(report.tripped.len(), 1, "{report:?}");

    let (view, _) = admin.experiment(&app, &stable).await.unwrap();
    let states: Vec<(String, String)> =
        view.arms.iter().map(|a| (a.version.to_string(), a.state.to_string())).collect();
    assert_eq!(states, [("1.1.0".into(), "active".into()), ("1.2.0".into(), "halted".into())]);
    let failures = view.figures.iter().find(|f| f.name == "install_failure_rate").unwrap();
    assert_eq!(failures.ahead.as_ref().map(ToString::to_string).as_deref(), Some("1.1.0"), "{failures:?}");
    assert!(failures.proven && failures.statistic >= failures.bound, "{failures:?}");
    assert!(failures.arms[1].mean > 0.25 && failures.arms[0].mean == 0.0, "{failures:?}");

    // The halted arm takes nobody new; the other still serves its share.
    let http = server.anonymous();
    let fresh = fleet("fresh", 2_000, "1.0.0", "stable");
    let answers = check_all(&http, "abn", &fresh).await;
    assert_eq!(count(&answers, "1.2.0"), 0);
    assert!((120..300).contains(&count(&answers, "1.1.0")), "{}", count(&answers, "1.1.0"));
}

#[tokio::test]
async fn arms_are_compared_on_the_apps_value_metrics_too() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let p = Publisher::create(&server, "abm").await;
    crate::metrics::declare_metrics(&p).await;
    p.publish("1.0.0", "stable", "100%").await;
    for v in ["1.1.0", "1.2.0"] {
        p.publish_draft(&p.draft(v, &[]), "stable", json!({"basis_points": 0})).await.unwrap();
    }
    let (app, stable) = ("abm".parse().unwrap(), "stable".parse().unwrap());
    let arms = ["1.1.0", "1.2.0"]
        .map(|v| ArmRequest {
            version: v.parse().unwrap(),
            basis_points: halftone_channels::Percent::parse("10%").unwrap(),
        })
        .to_vec();
    let admin = server.admin();
    admin.start_experiment(&app, &stable, &ExperimentRequest { arms, reason: None }).await.unwrap();
    let session = |view: &halftone_channels::wire::ExperimentView| {
        view.figures.iter().find(|f| f.name == "session_s").cloned().expect("the declared value metric is a figure")
    };
    let (view, _) = admin.experiment(&app, &stable).await.unwrap();
    assert!(view.figures.iter().all(|f| f.name != "purchases"), "counters are shown, not compared");
    let before = session(&view);
    assert!(before.ahead.is_none() && !before.proven, "{before:?}");

    // Sessions on 1.2.0 are a third longer than on 1.1.0: higher is better.
    crate::metrics::sessions(&server, "abm", "a", "1.1.0", 600, 300.0).await;
    crate::metrics::sessions(&server, "abm", "b", "1.2.0", 600, 400.0).await;
    server.state().feedback.flush().await.unwrap();
    let (view, _) = admin.experiment(&app, &stable).await.unwrap();
    let s = session(&view);
    assert_eq!(s.direction.to_string(), "higher is better");
    assert_eq!(s.arms.iter().map(|a| a.count).collect::<Vec<_>>(), [600, 600], "{s:?}");
    assert!((s.arms[1].mean / s.arms[0].mean - 4.0 / 3.0).abs() < 0.05, "{s:?}");
    assert_eq!(s.ahead.as_ref().map(ToString::to_string).as_deref(), Some("1.2.0"), "{s:?}");
    assert!(s.proven, "{s:?}");
}
