//! Install feedback, staged schedules and health gates: event validation and batching,
//! duplicates counted once, figures that survive a restart, and a 50,000-device fleet on a
//! clock the test controls.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::StreamExt as _;

use halftone_admin::AdminClient;
use halftone_channels::wire::StatusView;
use halftone_server::clock::ManualClock;
use serde_json::{Value, json};

use crate::harness::*;

fn event(device: &str, kind: &str, version: &str, channel: &str) -> Value {
    json!({"device_id": device, "kind": kind, "version": version, "channel": channel})
}

/// An event carrying the report token `tokens` holds for its device.
fn signed(tokens: &HashMap<&str, String>, device: &str, kind: &str) -> Value {
    event_with(device, kind, "1.0.0", "stable", Some(&tokens[device]))
}

/// Posts `events` as if from network number `network` (an IPv4 /24 of its own), through the
/// trusted proxy the test server believes (127.0.0.1).
pub async fn post_from(http: &Http, app: &str, events: &[Value], network: usize) -> Reply {
    let body = serde_json::to_vec(&json!({ "events": events })).unwrap();
    let ip = format!("10.{}.{}.7", network >> 8 & 255, network & 255);
    let headers = [("content-type", "application/json"), ("x-forwarded-for", ip.as_str())];
    http.send("POST", &format!("/v1/apps/{app}/events"), Some(body), &headers).await
}

async fn status(admin: &AdminClient, app: &str) -> StatusView {
    admin.status(&app.parse().unwrap()).await.unwrap()
}

#[tokio::test]
async fn events_are_validated_batched_counted_once_and_survive_a_restart() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    let device = server.anonymous();
    let post = |events: Vec<Value>| {
        let device = device.clone();
        async move { device.post("/v1/apps/notes/events", &json!({ "events": events })).await }
    };

    // Devices of the fleet below (so adoption still counts 40): a check-in gives each its
    // report token for the version it runs.
    let mut tokens = HashMap::new();
    for d in ["a-1", "a-2", "a-3"] {
        tokens.insert(d, running_token(&device, "notes", &Device::new(d, "1.0.0", "stable")).await);
    }
    let t = &tokens;
    let r = post(vec![
        signed(t, "a-1", "install_succeeded"),
        signed(t, "a-1", "install_succeeded"),
        signed(t, "a-2", "install_failed"),
        event("a-2", "crash", "1.0.0", "stable"),
    ])
    .await;
    assert_eq!(
        (r.status, r.body["accepted"].as_u64(), r.body["duplicates"].as_u64(), r.body["rejected"].as_u64()),
        (202, Some(2), Some(1), Some(1)),
        "{r:?}"
    );
    assert_eq!(r.body["rejections"], json!({"missing_token": 1, "invalid_token": 0}));
    // The same device reporting again in another batch is still one device.
    post(vec![signed(t, "a-1", "install_succeeded"), signed(t, "a-3", "first_run")]).await.ok();
    for (events, status_code, needle) in [
        (vec![event("d1", "install_succeeded", "9.9.9", "stable")], 422, "event 0: app notes has no release 9.9.9"),
        (vec![], 400, "1 to 100 events"),
        (vec![event("d1", "exploded", "1.0.0", "stable")], 400, "unknown variant `exploded`"),
    ] {
        post(events).await.assert_problem(status_code, needle);
    }

    // Adoption counts distinct devices per version, releases only: devices that run a version
    // the app never released (a dev build, or made up) are not counted.
    let fleet = fleet("a", 40, "1.0.0", "stable");
    check_all(&device, "notes", &fleet).await;
    check_all(&device, "notes", &fleet).await;
    check_all(&device, "notes", &self::fleet("stray", 5, "0.9.0", "stable")).await;
    server.state().feedback.flush().await.unwrap();
    let before = status(&p.admin, "notes").await;
    let f = before.releases[0].rollouts[0].figures;
    assert_eq!((f.installs, f.install_failures, f.first_runs, f.crashes), (1, 1, 1, 0), "{f:?}");
    let adoption = &before.adoption[0];
    assert_eq!(before.adoption.len(), 1, "{:?}", before.adoption);
    assert_eq!(adoption.versions.len(), 1, "only released versions: {adoption:?}");
    assert_eq!(
        (adoption.channel.as_str(), adoption.versions[0].last_day, adoption.versions[0].last_week),
        ("stable", 40, 40)
    );

    let (dir, token) = server.stop();
    let dir = dir.unwrap();
    let again = TestServer::start_in(dir.path(), Some(token));
    let after = status(&again.admin(), "notes").await;
    assert_eq!(after.releases[0].rollouts[0].figures, f, "figures survive a graceful restart");
    assert_eq!(after.adoption, before.adoption);
}

/// How the simulated fleet answers an offer of `version`.
#[derive(Clone, Copy)]
enum Build {
    Good,
    /// 30% of installs fail.
    Bad,
}

/// Runs rounds of check-ins, installs and reports, with an hour between rounds, until the
/// rollout is done or stopped. Returns how many devices ever received `version`.
async fn simulate(
    server: &TestServer,
    clock: &ManualClock,
    app: &str,
    version: &str,
    build: Build,
    rounds: usize,
) -> usize {
    let device_http = server.anonymous();
    let mut fleet = fleet("fleet", 50_000, "1.0.0", "stable");
    let mut received = vec![false; fleet.len()];
    for round in 0..rounds {
        let waiting: Vec<usize> = (0..fleet.len()).filter(|&i| !received[i]).collect();
        let devices: Vec<Device> = waiting.iter().map(|&i| fleet[i].clone()).collect();
        let answers = answer_all(&device_http, app, &devices).await;
        // Events grouped by the device's network: twenty devices per network here, so the
        // per-network cap (20 devices) never bites.
        let mut events: BTreeMap<usize, Vec<Value>> = BTreeMap::new();
        for (&i, answer) in waiting.iter().zip(&answers) {
            let events = events.entry(i / 20).or_default();
            let Some(offer) = answer.update.as_ref().filter(|u| u.version.to_string() == version) else { continue };
            let (v, token) = (offer.version.to_string(), offer.report_token.map(|t| t.to_string()));
            received[i] = true;
            let id = fleet[i].id.clone();
            let fails = matches!(build, Build::Bad) && i % 10 < 3;
            if fails {
                events.push(event_with(&id, "install_failed", &v, "stable", token.as_deref()));
            } else {
                events.push(event_with(&id, "install_succeeded", &v, "stable", token.as_deref()));
                events.push(event_with(&id, "first_run", &v, "stable", token.as_deref()));
                fleet[i].version = v.clone();
            }
        }
        let http = &device_http;
        let replies: Vec<Reply> = futures_util::stream::iter(
            events
                .into_iter()
                .filter(|(_, e)| !e.is_empty())
                .map(|(network, events)| async move { post_from(http, app, &events, network).await }),
        )
        .buffer_unordered(16)
        .collect()
        .await;
        for r in replies {
            assert_eq!((r.status, r.body["rejected"].as_u64()), (202, Some(0)), "{r:?}");
        }
        clock.advance(3_600_000 + 1);
        let report = server.state().tick().await.unwrap();
        let got = received.iter().filter(|r| **r).count();
        println!("{app} round {round}: {got} devices have {version}; tick: {report:?}");
        let stopped = status(&server.admin(), app).await.releases[0].rollouts[0].state.to_string() == "halted";
        if stopped {
            // One more round: nobody new may receive it after the halt.
            let devices: Vec<Device> = (0..fleet.len()).filter(|&i| !received[i]).map(|i| fleet[i].clone()).collect();
            let late = check_all(&device_http, app, &devices).await;
            assert_eq!(count(&late, version), 0, "a halted release is offered to nobody new");
            return got;
        }
        if got == fleet.len() {
            return got;
        }
    }
    received.iter().filter(|r| **r).count()
}

async fn publish_scheduled(p: &Publisher, version: &str) {
    let schedule = json!({"steps": [
        {"basis_points": 100, "hold_s": 3600}, {"basis_points": 500, "hold_s": 3600},
        {"basis_points": 2500, "hold_s": 3600}, {"basis_points": 10000}
    ]});
    let gate = json!({"max_install_failure_rate": 0.05, "max_crash_rate": 0.05, "min_sample": 100});
    let rollout = json!({"basis_points": 100, "schedule": schedule, "gate": gate});
    p.publish_draft(&p.draft(version, &[]), "stable", rollout).await.unwrap();
}

#[tokio::test]
async fn a_fleet_of_50000_takes_a_good_build_to_100_percent_and_stops_a_bad_one_early() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());

    let good = Publisher::create(&server, "good").await;
    good.publish("1.0.0", "stable", "100%").await;
    publish_scheduled(&good, "1.1.0").await;
    let everyone = simulate(&server, &clock, "good", "1.1.0", Build::Good, 8).await;
    assert_eq!(everyone, 50_000, "the good build reaches the whole fleet");
    let s = status(&good.admin, "good").await;
    let r = &s.releases[0].rollouts[0];
    assert_eq!((r.basis_points.basis_points(), r.state.to_string().as_str()), (10_000, "active"));
    let advances = r.history.iter().filter(|e| e.action == "schedule.advance").count();
    assert_eq!(advances, 3, "1% -> 5% -> 25% -> 100%");
    assert!(r.figures.installs > 45_000, "{:?}", r.figures);

    let bad = Publisher::create(&server, "bad").await;
    bad.publish("1.0.0", "stable", "100%").await;
    publish_scheduled(&bad, "1.1.0").await;
    let exposed = simulate(&server, &clock, "bad", "1.1.0", Build::Bad, 8).await;
    let share = exposed as f64 / 50_000.0 * 100.0;
    println!("bad build: {exposed} of 50000 devices ever received it ({share:.2}% of the fleet)");
    assert!(share < 2.0, "{share}%");
    let s = status(&bad.admin, "bad").await;
    let r = &s.releases[0].rollouts[0];
    assert_eq!(r.state.to_string(), "halted");
    let trip = r.history.iter().find(|e| e.action == "gate.trip").expect("the gate's halt is in the history");
    assert_eq!(trip.actor, "health-gate");
    let why = trip.after.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(why.contains("install failure rate") && why.contains("above the limit of 5.0%"), "{why}");
}

#[tokio::test]
async fn a_rollout_moved_along_its_schedule_survives_a_restart() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_with_clock(clock.clone());
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    let schedule = json!({"steps": [{"basis_points": 100, "hold_s": 60}, {"basis_points": 500, "hold_s": 60}, {"basis_points": 10000}]});
    let r = p.publish_draft(&p.draft("1.1.0", &[]), "stable", json!({"basis_points": 200, "schedule": schedule})).await;
    assert_refused(r, 422, "starts at its first step: basis_points must be 100");
    p.publish_draft(&p.draft("1.1.0", &[]), "stable", json!({"basis_points": 100, "schedule": schedule}))
        .await
        .unwrap();
    clock.advance(30_000);
    assert!(server.state().tick().await.unwrap().advanced.is_empty(), "the hold has not elapsed");
    // Halting stops the hold clock: after un-halting, the remaining 30 s still have to pass.
    p.patch_rollout("1.1.0", "stable", json!({"state": "halted"})).await;
    clock.advance(600_000);
    p.patch_rollout("1.1.0", "stable", json!({"state": "active"})).await;
    assert!(server.state().tick().await.unwrap().advanced.is_empty(), "halted time does not count");
    clock.advance(30_001);
    assert_eq!(server.state().tick().await.unwrap().advanced, ["notes 1.1.0/stable -> 5%"]);

    let (dir, token) = server.stop();
    let dir = dir.unwrap();
    let again = TestServer::start_in(dir.path(), Some(token));
    let s = status(&again.admin(), "notes").await;
    let r = &s.releases[0].rollouts[0];
    assert_eq!((r.basis_points.basis_points(), r.schedule.as_ref().unwrap().step), (500, Some(1)));
}

#[tokio::test]
async fn a_first_step_of_devices_takes_that_many_devices_of_the_audience_and_keeps_its_hold() {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_with_clock(clock.clone());
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    let schedule = json!({"steps": [
        {"devices": 100, "hold_s": 3600}, {"basis_points": 2000, "hold_s": 3600}, {"basis_points": 10000}
    ]});
    let r = p.publish_draft(&p.draft("1.1.0", &[]), "stable", json!({"basis_points": 100, "schedule": schedule})).await;
    assert_refused(r, 422, "starts at its first step: basis_points must be 1");
    p.publish_draft(&p.draft("1.1.0", &[]), "stable", json!({"basis_points": 1, "schedule": schedule})).await.unwrap();
    // No audience yet: nothing to fit.
    assert!(server.state().tick().await.unwrap().advanced.is_empty());

    // Half an hour on, 2,000 devices have checked in: 100 of them is 5%.
    clock.advance(1_800_000);
    let http = server.anonymous();
    let devices = fleet("dev", 2_000, "1.0.0", "stable");
    check_all(&http, "notes", &devices).await;
    server.state().feedback.flush().await.unwrap();
    let fitted = server.state().tick().await.unwrap().advanced;
    assert_eq!(fitted.len(), 1, "{fitted:?}");
    let s = status(&p.admin, "notes").await;
    let r = &s.releases[0].rollouts[0];
    let bp = r.basis_points.basis_points();
    assert!((430..=580).contains(&bp), "about 5% (the audience is a sketch's estimate): {bp}");
    assert_eq!(r.schedule.as_ref().unwrap().step, Some(0), "still the first step");
    assert_eq!(r.history.last().unwrap().action, "schedule.fit");
    let offered = count(&check_all(&http, "notes", &devices).await, "1.1.0");
    assert!((60..=150).contains(&offered), "about 100 devices are offered it: {offered}");

    // Twice the audience does not narrow it, and the fit kept the step's hold clock: the next
    // step comes an hour after the rollout started, not an hour after the fit.
    clock.advance(1_000);
    check_all(&http, "notes", &fleet("more", 2_000, "1.0.0", "stable")).await;
    server.state().feedback.flush().await.unwrap();
    assert!(server.state().tick().await.unwrap().advanced.is_empty(), "a step of devices never narrows");
    clock.advance(1_800_000);
    assert_eq!(server.state().tick().await.unwrap().advanced, ["notes 1.1.0/stable -> 20%"]);
}
