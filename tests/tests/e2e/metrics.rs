//! App metrics: declared per app, reported by devices with their build's report token (raw
//! HTTP and the SDK), validated strictly (nothing stored on a 4xx), aggregated per build with
//! means and quantiles, shown in the status beside the baseline, and kept across a restart;
//! gated: a value metric or a counter (its amounts per report) against the baseline in the
//! same time window, the window restarting on resume and each step waiting for new values.

use halftone_channels::wire::{AppSpec, MetricView, StatusView};
use halftone_client::{Client, MetricName, MetricValue};
use serde_json::{Value, json};

use crate::harness::*;

/// Declares `session_s` (a value, higher is better) and `purchases` (a counter) on `p`'s app.
pub async fn declare_metrics(p: &Publisher) {
    let app = p.admin.get_app(&p.app).await.unwrap();
    let metrics = serde_json::from_value(json!([
        {"name": "session_s", "kind": "value", "better": "higher"},
        {"name": "purchases", "kind": "counter"},
    ]))
    .unwrap();
    let spec = AppSpec { display_name: app.display_name, keys: app.keys, channels: vec![], metrics };
    p.admin.put_app(&p.app, &spec).await.unwrap();
}

/// A metric report as JSON.
pub fn metric_report(device: &str, version: &str, token: Option<&str>, values: Value, counts: Value) -> Value {
    let mut r =
        json!({"device_id": device, "version": version, "channel": "stable", "values": values, "counts": counts});
    if let Some(t) = token {
        r["token"] = json!(t);
    }
    r
}

/// The metric `name` of the first rollout of `version` in `status`.
pub fn metric<'a>(status: &'a StatusView, version: &str, name: &str) -> &'a MetricView {
    let release = status.releases.iter().find(|r| r.version.to_string() == version).expect("the release");
    release.rollouts[0].metrics.iter().find(|m| m.name.as_str() == name).expect("the metric")
}

#[tokio::test]
async fn metrics_are_validated_aggregated_shown_and_survive_a_restart() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    declare_metrics(&p).await;
    p.publish("1.0.0", "stable", "100%").await;
    let device = server.anonymous();
    let post = |body: Value| {
        let device = device.clone();
        async move { device.post("/v1/apps/notes/events", &body).await }
    };

    // 20 devices report 5 sessions each: 1..=100 seconds in all, and one purchase each
    // (devices 0 to 9 a second one).
    for i in 0..20 {
        let id = format!("m-{i}");
        let token = running_token(&device, "notes", &Device::new(&id, "1.0.0", "stable")).await;
        let sessions: Vec<f64> = (0..5).map(|k| f64::from(i * 5 + k + 1)).collect();
        let r = post(json!({"metrics": [metric_report(&id, "1.0.0", Some(&token), json!({"session_s": sessions}),
            json!({"purchases": if i < 10 { 2 } else { 1 }}))]}))
        .await;
        assert_eq!((r.status, r.body["metrics_accepted"].as_u64()), (202, Some(6)), "{r:?}");
    }
    // Without the token of the build it runs, a report counts for nothing.
    let r =
        post(json!({"metrics": [metric_report("m-0", "1.0.0", None, json!({"session_s": [1e6]}), json!({}))]})).await;
    assert_eq!(
        (r.status, r.body["metrics_accepted"].as_u64(), r.body["metrics_rejected"].as_u64()),
        (202, None, Some(1))
    );
    let token = running_token(&device, "notes", &Device::new("m-0", "1.0.0", "stable")).await;
    let good = |values: Value, counts: Value| json!({"metrics": [metric_report("m-0", "1.0.0", Some(&token), values, counts)]});
    let many: Vec<f64> = vec![1.0; 1_001];
    let reports: Vec<Value> =
        (0..101).map(|_| metric_report("m-0", "1.0.0", Some(&token), json!({}), json!({}))).collect();
    for (body, status, needle) in [
        (good(json!({"frames": [1.0]}), json!({})), 422, "metric report 0: app notes has no metric frames"),
        (good(json!({"purchases": [1.0]}), json!({})), 422, "purchases is a counter: report it in counts"),
        (good(json!({}), json!({"session_s": 1})), 422, "session_s is a value metric: report it in values"),
        (good(json!({}), json!({"purchases": 1_000_001})), 422, "a count of purchases is at most 1000000"),
        (good(json!({}), json!({"purchases": -1})), 400, "invalid value: integer `-1`"),
        (good(json!({"session_s": [1e13]}), json!({})), 400, "must be at most 1e12 in magnitude"),
        (good(json!({"session_s": many}), json!({})), 400, "at most 1000 metric values and counts, not 1001"),
        (json!({"metrics": reports}), 400, "at most 100 metric reports, not 101"),
        (
            json!({"metrics": [metric_report("m-0", "9.9.9", Some(&token), json!({}), json!({}))]}),
            422,
            "has no release 9.9.9",
        ),
        (
            json!({"metrics": [{"device_id": "m-0", "version": "1.0.0", "channel": "stable", "values": {"Session": [1]}}]}),
            400,
            "invalid metric name",
        ),
    ] {
        post(body).await.assert_problem(status, needle);
    }
    // Not a number at all: JSON has no NaN or infinity, and a number beyond f64 is refused.
    for raw in [r#"[NaN]"#, r#"[1e400]"#, r#"["1"]"#] {
        let body = format!(
            r#"{{"metrics":[{{"device_id":"m-0","version":"1.0.0","channel":"stable","token":"{token}","values":{{"session_s":{raw}}}}}]}}"#
        );
        let headers = [("content-type", "application/json")];
        let r = device.send("POST", "/v1/apps/notes/events", Some(body.into_bytes()), &headers).await;
        assert_eq!(r.status, 400, "{raw}: {r:?}");
        assert_eq!(r.body["type"].as_str().map(|_| ()), Some(()), "a problem body: {r:?}");
    }

    let status = server.admin().status(&p.app).await.unwrap();
    let session = metric(&status, "1.0.0", "session_s");
    let f = session.build;
    assert_eq!((f.count, f.mean), (Some(100), Some(50.5)), "nothing from the refused reports: {session:?}");
    for (got, want) in [(f.p50, 50.0), (f.p90, 90.0), (f.p99, 99.0)] {
        let got = got.unwrap();
        assert!((got - want).abs() <= 0.01 * want, "{got} against {want}: {session:?}");
    }
    assert_eq!(session.baseline, None, "the first release has no baseline");
    let purchases = metric(&status, "1.0.0", "purchases").build;
    assert_eq!((purchases.sum, purchases.devices, purchases.per_device), (Some(30), Some(20), Some(1.5)));

    let (dir, token) = server.stop();
    let dir = dir.unwrap();
    let again = TestServer::start_in(dir.path(), Some(token));
    let after = again.admin().status(&p.app).await.unwrap();
    assert_eq!(metric(&after, "1.0.0", "session_s"), session, "a restart keeps the aggregates");
    assert_eq!(metric(&after, "1.0.0", "purchases").build, purchases);
}

#[tokio::test]
async fn the_sdk_records_metrics_for_the_build_it_runs_once_it_has_a_token() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "sdk-metrics").await;
    declare_metrics(&p).await;
    p.publish("1.0.0", "stable", "100%").await;
    let dir = tempfile::tempdir().unwrap();
    let key = p.key.public_key().to_string();
    let client = Client::builder()
        .server(&server.base)
        .app(p.app.as_str())
        .version("1.0.0")
        .platform("linux", "x86_64")
        .state_dir(dir.path())
        .trusted_key(p.key.id().as_str(), &key)
        .build()
        .await
        .unwrap();
    let session = MetricName::parse("session_s").unwrap();
    let purchases = MetricName::parse("purchases").unwrap();
    // Recorded before any check-in: held until a token for 1.0.0 is known, not refused.
    client.record_metric(&session, MetricValue::new(120.0).unwrap());
    client.count(&purchases, 2);
    client.flush().await.unwrap();
    let stats = client.report_stats();
    assert_eq!((stats.metrics_queued, stats.metrics_sent, stats.metrics_rejected), (2, 0, 0), "{stats:?}");
    client.check().await.unwrap();
    client.record_metric(&session, MetricValue::new(180.0).unwrap());
    client.count(&purchases, 1);
    client.flush().await.unwrap();
    let stats = client.report_stats();
    assert_eq!((stats.metrics_queued, stats.metrics_sent, stats.metrics_rejected), (0, 3, 0), "{stats:?}");
    let status = server.admin().status(&p.app).await.unwrap();
    let s = metric(&status, "1.0.0", "session_s").build;
    assert_eq!((s.count, s.mean), (Some(2), Some(150.0)));
    let c = metric(&status, "1.0.0", "purchases").build;
    assert_eq!((c.sum, c.devices), (Some(3), Some(1)));
}

/// Devices `prefix-0..n` running `version` report one session each, exponential with mean
/// `mean` (its quantiles at evenly spaced levels, in an order spread over the devices), through
/// 100 client networks so that no network cap applies.
pub(crate) async fn sessions(server: &TestServer, app: &str, prefix: &str, version: &str, n: usize, mean: f64) {
    reports(server, app, prefix, version, n, 9, |i| {
        // A stride coprime with n spreads low and high values over every batch.
        let k = (i * 7919) % n;
        (json!({"session_s": [-mean * (1.0 - (k as f64 + 0.5) / n as f64).ln()]}), json!({}))
    })
    .await;
}

/// Devices `prefix-0..n` running `version` report the values and counts `report(i)` gives
/// device `i`, through the 100 client networks `10.{block}.0-99.7` (20 devices each count, so
/// up to 2,000 devices per block and release).
pub(crate) async fn reports(
    server: &TestServer,
    app: &str,
    prefix: &str,
    version: &str,
    n: usize,
    block: u8,
    report: impl Fn(usize) -> (Value, Value),
) {
    let http = server.anonymous();
    let devices = fleet(prefix, n, version, "stable");
    let answers = answer_all(&http, app, &devices).await;
    let mut batches: Vec<Vec<Value>> = vec![Vec::new(); 100];
    for (i, (d, a)) in devices.iter().zip(&answers).enumerate() {
        let (values, counts) = report(i);
        let token = a.report_token.expect("a token for the running release").to_string();
        batches[i % 100].push(metric_report(&d.id, version, Some(&token), values, counts));
    }
    for (network, reports) in batches.into_iter().enumerate().filter(|(_, r)| !r.is_empty()) {
        let body = serde_json::to_vec(&json!({ "metrics": reports })).unwrap();
        let ip = format!("10.{block}.{network}.7");
        let headers = [("content-type", "application/json"), ("x-forwarded-for", ip.as_str())];
        let r = http.send("POST", &format!("/v1/apps/{app}/events"), Some(body), &headers).await;
        assert_eq!((r.status, r.body["metrics_rejected"].as_u64()), (202, None), "none rejected: {r:?}");
    }
}

/// An app whose 1.0.0 runs everywhere, and 1.1.0 published to 10% of stable with a gate on
/// `session_s` (the defaults: 10% worse tolerated, alpha 1%), after which 1.0.0 runs 2,000
/// sessions of 300 s on average: the baseline's values in the candidate's window (sessions
/// before it are not compared).
async fn gated_app(server: &TestServer, app: &str) -> Publisher {
    let p = Publisher::create(server, app).await;
    declare_metrics(&p).await;
    p.publish("1.0.0", "stable", "100%").await;
    sessions(server, app, "early", "1.0.0", 1_000, 100.0).await;
    let rollout = json!({"basis_points": 1000, "gate": {"metrics": [{"name": "session_s"}]}});
    p.publish_draft(&p.draft("1.1.0", &[]), "stable", rollout).await.unwrap();
    reports(server, app, "base", "1.0.0", 2_000, 10, |i| {
        let k = (i * 7919) % 2_000;
        (json!({"session_s": [-300.0 * (1.0 - (k as f64 + 0.5) / 2_000.0).ln()]}), json!({}))
    })
    .await;
    p
}

#[tokio::test]
async fn a_build_whose_sessions_are_30_percent_shorter_is_halted_and_an_equal_one_is_not() {
    let clock = std::sync::Arc::new(halftone_server::clock::ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());

    let p = gated_app(&server, "shorter").await;
    sessions(&server, "shorter", "cand", "1.1.0", 600, 210.0).await;
    clock.advance(1_000);
    let report = server.state().tick().await.unwrap();
    assert_eq!(report.tripped.len(), 1, "{report:?}");
    let s = server.admin().status(&p.app).await.unwrap();
    let r = &s.releases[0].rollouts[0];
    assert_eq!((s.releases[0].version.to_string().as_str(), r.state.to_string().as_str()), ("1.1.0", "halted"));
    let trip = r.history.iter().find(|e| e.action == "gate.trip").expect("the halt is in the history");
    let why = trip.after.as_ref().unwrap()["reason"].as_str().unwrap();
    assert!(why.starts_with("metric session_s (higher is better): worse than the baseline: mean 209."), "{why}");
    assert!(why.contains("over 600 values against the baseline's 299.") && why.contains("over 2000"), "{why}");
    let e = &r.metric_evidence[0];
    assert_eq!((e.call.as_str(), e.count, e.baseline_count), ("worse", 600, 2_000), "{e:?}");
    assert!(e.statistic >= e.decides_at && (e.tolerated - 0.9 * e.baseline_mean).abs() < 1e-6, "{e:?}");
    // The status shows the build's figures beside the baseline's, and `halftone status` too.
    let m = metric(&s, "1.1.0", "session_s");
    let (build, base) = (m.build, m.baseline.expect("1.0.0 is the baseline"));
    // The figures people read are cumulative (quantiles cannot be windowed): the baseline's
    // 1,000 earlier sessions are in them, not in the gate's evidence.
    assert_eq!((build.count, base.count), (Some(600), Some(3_000)));
    assert!((build.p50.unwrap() - 210.0 * 2f64.ln()).abs() < 0.02 * 146.0, "{build:?}");
    assert!((build.p90.unwrap() - 210.0 * 10f64.ln()).abs() < 0.02 * 484.0, "{build:?}");
    let text = halftone_server::cli::status::render(&s, false, 0);
    let line =
        text.lines().find(|l| l.contains("session_s") && l.contains("n 600")).unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("n 3000"), "{text}");
    assert!(text.contains("since publish; gates judge their window"), "{text}");
    assert!(text.contains("App metrics") && text.contains("tolerated"), "{text}");

    // The same sessions as the baseline: not halted.
    let p = gated_app(&server, "same").await;
    sessions(&server, "same", "cand", "1.1.0", 600, 300.0).await;
    clock.advance(1_000);
    assert!(server.state().tick().await.unwrap().tripped.is_empty());
    let s = server.admin().status(&p.app).await.unwrap();
    let r = &s.releases[0].rollouts[0];
    assert_eq!(r.state.to_string(), "active");
    // 600 values cannot prove it within 10% yet either: undecided, which halts nothing.
    assert_eq!(r.metric_evidence[0].call, "undecided", "{:?}", r.metric_evidence);
}

#[tokio::test]
async fn a_gate_names_only_metrics_the_app_declared_and_a_counter_gate_says_which_way_is_better() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "gated").await;
    declare_metrics(&p).await;
    for (gate, needle) in [
        (json!({"name": "frames"}), "is not a metric the app declared"),
        (json!({"name": "purchases"}), "is a counter: its gate must say which way is better"),
        (json!({"name": "session_s", "better": "lower"}), "is declared higher is better"),
    ] {
        let rollout = json!({"basis_points": 100, "gate": {"metrics": [gate]}});
        let r = p.publish_draft(&p.draft("1.0.0", &[]), "stable", rollout).await;
        assert_refused(r, 422, needle);
    }
    let status = server.admin().status(&p.app).await.unwrap();
    assert!(status.releases.is_empty(), "nothing was published");
}

/// Declares `session_s` and `purchases` (as [`declare_metrics`]) and `errors`, a counter.
async fn declare_with_errors(p: &Publisher) {
    let app = p.admin.get_app(&p.app).await.unwrap();
    let metrics = serde_json::from_value(json!([
        {"name": "session_s", "kind": "value", "better": "higher"},
        {"name": "purchases", "kind": "counter"},
        {"name": "errors", "kind": "counter"},
    ]))
    .unwrap();
    let spec = AppSpec { display_name: app.display_name, keys: app.keys, channels: vec![], metrics };
    p.admin.put_app(&p.app, &spec).await.unwrap();
}

/// Errors shown per report: 0, 1, 1, 2, ... (mean 1) times `times`.
fn errors(times: u64) -> impl Fn(usize) -> (Value, Value) {
    move |i| {
        let n = [0, 1, 1, 2][i % 4] * times;
        (json!({}), json!({ "errors": n }))
    }
}

#[tokio::test]
async fn a_counter_gate_halts_a_build_whose_devices_count_twice_the_baseline_and_not_an_equal_one() {
    let clock = std::sync::Arc::new(halftone_server::clock::ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    for (app, times, halted) in [("twice", 2, true), ("as_many", 1, false)] {
        let p = Publisher::create(&server, app).await;
        declare_with_errors(&p).await;
        p.publish("1.0.0", "stable", "100%").await;
        // A counter's gate must say which way is better: a counter declares none.
        let unsaid = json!({"basis_points": 1000, "gate": {"metrics": [{"name": "errors"}]}});
        assert_refused(p.publish_draft(&p.draft("1.1.0", &[]), "stable", unsaid).await, 422, "must say which way");
        let gate = json!({"metrics": [{"name": "errors", "better": "lower"}]});
        let rollout = json!({"basis_points": 1000, "gate": gate});
        p.publish_draft(&p.draft("1.1.0", &[]), "stable", rollout).await.unwrap();
        reports(&server, app, "base", "1.0.0", 1_000, 9, errors(1)).await;
        reports(&server, app, "cand", "1.1.0", 300, 10, errors(times)).await;
        clock.advance(1_000);
        let report = server.state().tick().await.unwrap();
        let s = server.admin().status(&p.app).await.unwrap();
        let r = &s.releases[0].rollouts[0];
        assert_eq!(
            r.gate.as_ref().unwrap().metrics[0].better.map(|d| d.to_string()).as_deref(),
            Some("lower is better")
        );
        let e = &r.metric_evidence[0];
        assert_eq!((e.measure.as_str(), e.count, e.baseline_count), ("counts_per_report", 300, 1_000), "{e:?}");
        assert!((e.baseline_mean - 1.0).abs() < 1e-9 && (e.mean - times as f64).abs() < 1e-9, "{e:?}");
        if !halted {
            // As many errors: not halted (300 reports cannot prove it within 10% yet either).
            assert!(report.tripped.is_empty(), "{report:?}");
            assert_eq!((r.state.to_string().as_str(), e.call.as_str()), ("active", "undecided"), "{e:?}");
            continue;
        }
        assert_eq!(report.tripped.len(), 1, "{report:?}");
        assert_eq!((r.state.to_string().as_str(), e.call.as_str()), ("halted", "worse"));
        let trip = r.history.iter().find(|e| e.action == "gate.trip").expect("the halt is in the history");
        let why = trip.after.as_ref().unwrap()["reason"].as_str().unwrap();
        assert!(
            why.starts_with(
                "counter errors (lower is better): worse than the baseline: mean 2.0000 over 300 reports \
                 against the baseline's 1.0000 over 1000 (tolerated 1.1000)"
            ),
            "{why}"
        );
        let text = halftone_server::cli::status::render(&s, false, 0);
        assert!(text.contains("mean 2.00 per report (300)"), "{text}");
        assert!(text.contains("errors within 10% of the baseline, else halt"), "{text}");
    }
}

#[tokio::test]
async fn a_metric_gates_window_restarts_on_resume_and_each_step_waits_for_new_values() {
    let clock = std::sync::Arc::new(halftone_server::clock::ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let p = Publisher::create(&server, "steps").await;
    declare_metrics(&p).await;
    p.publish("1.0.0", "stable", "100%").await;
    let schedule = json!({"steps": [
        {"basis_points": 1000, "hold_s": 60}, {"basis_points": 5000, "hold_s": 60}, {"basis_points": 10000}
    ]});
    let gate = json!({"metrics": [{"name": "session_s"}]});
    let rollout = json!({"basis_points": 1000, "schedule": schedule, "gate": gate});
    p.publish_draft(&p.draft("1.1.0", &[]), "stable", rollout).await.unwrap();
    let session = |mean: f64, n: usize| {
        move |i: usize| {
            let k = (i * 7919) % n;
            (json!({"session_s": [-mean * (1.0 - (k as f64 + 0.5) / n as f64).ln()]}), json!({}))
        }
    };
    let percent = |s: &StatusView| s.releases[0].rollouts[0].basis_points.basis_points();
    let tick = || async {
        clock.advance(1_000);
        server.state().tick().await.unwrap()
    };
    reports(&server, "steps", "base", "1.0.0", 2_000, 9, session(300.0, 2_000)).await;

    // The hold has elapsed, but the step has no values of its own: it waits.
    clock.advance(61_000);
    assert!(tick().await.advanced.is_empty());
    reports(&server, "steps", "a", "1.1.0", 20, 10, session(300.0, 20)).await;
    assert!(tick().await.advanced.is_empty(), "20 values of the 30 the gate needs");
    let s = server.admin().status(&p.app).await.unwrap();
    let waits = &s.releases[0].rollouts[0].metric_step_waits;
    assert_eq!(
        waits.iter().map(|w| (w.metric.as_str(), w.new_values, w.needed)).collect::<Vec<_>>(),
        [("session_s", 20, 30)]
    );
    let now = halftone_server::clock::Clock::now_ms(&*clock);
    let text = halftone_server::cli::status::render(&s, false, now);
    assert!(text.contains("50% when the step has new values (session_s 20/30)"), "{text}");
    reports(&server, "steps", "b", "1.1.0", 20, 11, session(300.0, 20)).await;
    assert_eq!(tick().await.advanced.len(), 1, "40 new values: the step widens");
    let s = server.admin().status(&p.app).await.unwrap();
    assert_eq!(percent(&s), 5000);
    // The next step needs its own: the 40 values of the first do not count.
    clock.advance(61_000);
    assert!(tick().await.advanced.is_empty());

    // 600 sessions 30% shorter halt it.
    reports(&server, "steps", "short", "1.1.0", 600, 12, session(210.0, 600)).await;
    let report = tick().await;
    assert_eq!(report.tripped.len(), 1, "{report:?}");
    let s = server.admin().status(&p.app).await.unwrap();
    assert_eq!(s.releases[0].rollouts[0].state.to_string(), "halted");

    // Resumed, the gate judges what comes from now on: the short sessions that halted it are
    // not held against it again, and the baseline is read from now on as well.
    p.patch_rollout("1.1.0", "stable", json!({"state": "active"})).await;
    assert!(tick().await.tripped.is_empty());
    let s = server.admin().status(&p.app).await.unwrap();
    let e = &s.releases[0].rollouts[0].metric_evidence;
    assert!(!e.is_empty() && e.iter().all(|e| e.count == 0 && e.baseline_count == 0), "a fresh window: {e:?}");
    reports(&server, "steps", "base2", "1.0.0", 2_000, 13, session(300.0, 2_000)).await;
    reports(&server, "steps", "again", "1.1.0", 600, 14, session(300.0, 600)).await;
    // The step it resumed on had its hold before the halt: with new values, it widens.
    let report = tick().await;
    assert!(report.tripped.is_empty(), "sessions as long as the baseline's since the resume: {report:?}");
    assert_eq!(report.advanced.len(), 1, "{report:?}");
    let s = server.admin().status(&p.app).await.unwrap();
    let r = &s.releases[0].rollouts[0];
    assert_eq!((r.state.to_string().as_str(), r.basis_points.basis_points()), ("active", 10_000));
    let e = &r.metric_evidence[0];
    assert_eq!((e.count, e.baseline_count), (600, 2_000), "only the window's values: {e:?}");
    assert!((e.mean - 300.0).abs() < 3.0, "{e:?}");
    // All time, the 1.1.0 sessions average about 256 s, under the 270 s tolerated: judged on
    // its cumulative values, the resumed build would have been halted again.
    let m = metric(&s, "1.1.0", "session_s").build;
    assert!(m.mean.unwrap() < 0.9 * 300.0, "{m:?}");
}

/// The marks of a metric gate's window survive a restart: on `start(None)` a gate is set with
/// the baseline's 10 earlier sessions marked; after `start(Some(token))` on the same store the
/// evidence still compares only what came after (5 baseline sessions, 3 of the candidate).
async fn window_marks_survive_a_restart(start: impl Fn(Option<String>) -> TestServer) {
    let server = start(None);
    let p = Publisher::create(&server, "marks").await;
    declare_metrics(&p).await;
    p.publish("1.0.0", "stable", "100%").await;
    let session = |i: usize| (json!({"session_s": [100.0 + i as f64]}), json!({}));
    reports(&server, "marks", "early", "1.0.0", 10, 9, session).await;
    let rollout = json!({"basis_points": 1000, "gate": {"metrics": [{"name": "session_s"}]}});
    p.publish_draft(&p.draft("1.1.0", &[]), "stable", rollout).await.unwrap();
    reports(&server, "marks", "late", "1.0.0", 5, 9, session).await;
    reports(&server, "marks", "cand", "1.1.0", 3, 9, session).await;
    let counts = |s: &StatusView| {
        let release = s.releases.iter().find(|r| r.version.to_string() == "1.1.0").unwrap();
        release.rollouts[0].metric_evidence.iter().map(|e| (e.count, e.baseline_count)).collect::<Vec<_>>()
    };
    let before = server.admin().status(&p.app).await.unwrap();
    assert_eq!(counts(&before), [(3, 5)], "the window's values");
    let (_dir, token) = server.stop();
    let again = start(Some(token));
    let after = again.admin().status(&p.app).await.unwrap();
    assert_eq!(counts(&after), [(3, 5)], "the same window after a restart");
    assert_eq!(metric(&after, "1.0.0", "session_s").build.count, Some(15), "the figures, all time");
    drop(_dir);
}

#[tokio::test]
async fn a_metric_gates_window_survives_a_restart_on_sled() {
    let dir = tempfile::tempdir().unwrap();
    window_marks_survive_a_restart(|token| TestServer::start_in(dir.path(), token)).await;
}

#[tokio::test]
async fn a_metric_gates_window_survives_a_restart_on_postgres() {
    let pg = halftone_tests::postgres_or_skip!();
    window_marks_survive_a_restart(|token| TestServer::start_on_postgres(&pg.url(), token)).await;
}
