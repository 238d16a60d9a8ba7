//! The web dashboard (`/ui`): its files and security headers, the adoption route it draws
//! from, and the whole page in a real headless Chromium driven by Playwright (`dashboard.cjs`):
//! log in, raise a rollout and see its chart move, a conflict shown and not overwritten, halt,
//! roll back, the audit log and the explain form, and a viewer (or another app's publisher) who
//! sees no controls; and an A/B/N experiment's arms side by side with their figures, a build's
//! app metrics and metric gate, and the winner's promotion (refused when it would strand devices
//! on a newer loser, then done); a step waiting for metric values shown with the API's numbers,
//! and an experiment started from the page (refused with the server's reason first).
//!
//! The browser test installs what it needs on a fresh machine: Debian's `chromium` (when missing
//! and running as root) and `playwright-core` from npm into a cache dir under the target dir.
//! When either cannot be had it prints SKIPPED with the reason and passes, unless
//! `HALFTONE_TEST_BROWSER=required` (set by `.ci/run`). With `HALFTONE_DASHBOARD_SCREENSHOTS=DIR`
//! it saves screenshots of the main pages there (`docs/dashboard/` holds the committed ones).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use halftone_admin::AdminClient;
use halftone_channels::Percent;
use halftone_channels::wire::{ArmRequest, ExperimentRequest, TokenRequest};
use halftone_server::clock::ManualClock;
use serde_json::{Value, json};

use crate::harness::{Device, Publisher, TestServer, check, check_all, event_with, fleet, running_token};

const PLAYWRIGHT: &str = "playwright-core@1.65.1";

#[tokio::test]
async fn the_root_redirects_to_the_dashboard_and_its_files_carry_a_strict_policy() {
    let server = TestServer::start();
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let root = client.get(server.url("/")).send().await.unwrap();
    assert_eq!(root.status(), 302);
    assert_eq!(root.headers()["location"], "/ui/");

    for (path, kind) in [
        ("/ui", "text/html"),
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
        ("/ui/vendor/uPlot.iife.min.js", "text/javascript"),
    ] {
        let res = client.get(server.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let h = res.headers();
        assert!(h["content-type"].to_str().unwrap().starts_with(kind), "{path}: {h:?}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
    }
    // No inline script: every script element loads a file of this origin.
    let page = client.get(server.url("/ui/")).send().await.unwrap().text().await.unwrap();
    for tag in page.split("<script").skip(1) {
        assert!(tag.trim_start().starts_with("src=\"/ui/"), "inline or foreign script: {tag}");
    }

    let missing = client.get(server.url("/ui/nope.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-type"], "application/problem+json");
    assert!(missing.headers().contains_key("content-security-policy"));
    let post = client.post(server.url("/ui/")).send().await.unwrap();
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn adoption_is_counted_per_window_over_time() {
    let clock = Arc::new(ManualClock::at(1_795_000_000_000));
    let server = TestServer::start_with_clock(clock.clone());
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    p.publish("1.1.0", "beta", "100%").await;
    let devices = server.anonymous();
    check_all(&devices, "notes", &fleet("early", 3, "1.0.0", "stable")).await;
    check(&devices, "notes", &Device::new("made-up-version", "0.0.1", "stable")).await;
    clock.advance(4 * 3_600_000);
    check_all(&devices, "notes", &fleet("late", 2, "1.0.0", "stable")).await;
    check_all(&devices, "notes", &fleet("testers", 4, "1.1.0", "beta")).await;
    server.state().feedback.flush().await.unwrap();

    let body = server.raw_admin().get("/v1/apps/notes/adoption").await.ok();
    assert_eq!(body["app"], "notes");
    assert_eq!(body["window_ms"], 4 * 3_600_000);
    let channels = body["channels"].as_array().unwrap();
    assert_eq!(channels.iter().map(|c| c["channel"].as_str().unwrap()).collect::<Vec<_>>(), ["beta", "stable"]);
    let stable = &channels[1]["versions"];
    assert_eq!(stable.as_array().unwrap().len(), 1, "only released versions count: {stable}");
    assert_eq!(stable[0]["version"], "1.0.0");
    let windows = stable[0]["windows"].as_array().unwrap();
    assert_eq!(windows.iter().map(|w| w["devices"].as_u64().unwrap()).collect::<Vec<_>>(), [3, 2]);
    let (a, b) = (windows[0]["start_ms"].as_u64().unwrap(), windows[1]["start_ms"].as_u64().unwrap());
    assert_eq!(b - a, 4 * 3_600_000);
    assert_eq!(a % (4 * 3_600_000), 0);
    assert_eq!(channels[0]["versions"][0]["windows"][0]["devices"], 4);

    // Windows older than the eight days kept are not reported.
    clock.advance(9 * 24 * 3_600_000);
    let later = server.raw_admin().get("/v1/apps/notes/adoption").await.ok();
    assert_eq!(later["channels"], json!([]));
}

#[tokio::test]
async fn the_adoption_route_refuses_bad_input_with_problems() {
    let server = TestServer::start();
    Publisher::create(&server, "notes").await;
    let admin = server.raw_admin();
    admin.get("/v1/apps/Notes/adoption").await.assert_problem(400, "invalid app id");
    admin.get("/v1/apps/nope/adoption").await.assert_problem(404, "there is no app nope");
    admin.post("/v1/apps/notes/adoption", &json!({})).await.assert_problem(405, "not allowed");
    server.anonymous().get("/v1/apps/notes/adoption").await.assert_problem(401, "");
    // A viewer may read it.
    let viewer = viewer_token(&server.admin()).await;
    assert_eq!(admin.with_token(&viewer).get("/v1/apps/notes/adoption").await.status, 200);
}

#[tokio::test]
async fn the_trend_route_serves_a_rollouts_figures_over_time_and_refuses_bad_input() {
    let clock = Arc::new(ManualClock::at(1_795_000_000_000));
    let server = TestServer::start_with_clock(clock.clone());
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    let admin = server.raw_admin();
    let path = "/v1/apps/notes/releases/1.0.0/rollouts/stable/trend";
    assert_eq!(admin.get(path).await.ok(), json!({"points": []}), "nothing sampled yet");
    // Samples are due every 5 minutes of the clock; unchanged figures add no point.
    let devices = server.anonymous();
    let d = Device::new("d1", "1.0.0", "stable");
    let token = running_token(&devices, "notes", &d).await;
    assert!(server.state().sample_trend());
    assert!(!server.state().sample_trend(), "not due again at once");
    let event = event_with("d1", "crash", "1.0.0", "stable", Some(&token));
    assert_eq!(devices.post("/v1/apps/notes/events", &json!({ "events": [event] })).await.status, 202);
    server.state().feedback.flush().await.unwrap();
    clock.advance(5 * 60_000);
    assert!(server.state().sample_trend());
    clock.advance(5 * 60_000);
    assert!(server.state().sample_trend());
    let points = admin.get(path).await.ok();
    let crashes: Vec<(u64, u64)> = points["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["at_ms"].as_u64().unwrap(), p["crashes"].as_u64().unwrap()))
        .collect();
    assert_eq!(crashes, [(1_795_000_000_000, 0), (1_795_000_300_000, 1)], "{points}");

    admin.get("/v1/apps/Notes/releases/1.0.0/rollouts/stable/trend").await.assert_problem(400, "invalid app id");
    admin.get("/v1/apps/notes/releases/1.0/rollouts/stable/trend").await.assert_problem(400, "invalid version");
    admin.get("/v1/apps/notes/releases/9.9.9/rollouts/stable/trend").await.assert_problem(404, "no release 9.9.9");
    admin.get("/v1/apps/notes/releases/1.0.0/rollouts/beta/trend").await.assert_problem(404, "beta");
    admin.get("/v1/apps/nope/releases/1.0.0/rollouts/stable/trend").await.assert_problem(404, "there is no app nope");
    admin.post(path, &json!({})).await.assert_problem(405, "not allowed");
    server.anonymous().get(path).await.assert_problem(401, "");
}

/// What the browser test needs, or why it cannot run here.
struct Browser {
    chromium: PathBuf,
    /// A dir with `node_modules/playwright-core`.
    cache: PathBuf,
}

/// A new token with the viewer role (named "watcher").
async fn viewer_token(admin: &AdminClient) -> String {
    let request = serde_json::from_value::<TokenRequest>(json!({"name": "watcher", "role": "viewer"})).unwrap();
    admin.create_token(&request).await.unwrap().token
}

fn browser() -> Result<Browser, String> {
    let chromium = chromium()?;
    match Command::new("node").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        _ => return Err("node is not installed".into()),
    }
    let cache = Path::new(env!("CARGO_TARGET_TMPDIR")).join("playwright");
    std::fs::create_dir_all(&cache).map_err(|e| format!("cannot create {}: {e}", cache.display()))?;
    if !cache.join("node_modules/playwright-core/package.json").exists() {
        let out = Command::new("npm")
            .args(["install", "--no-save", "--no-audit", "--no-fund", "--no-package-lock", "--prefix"])
            .arg(&cache)
            .arg(PLAYWRIGHT)
            .output()
            .map_err(|e| format!("npm cannot run: {e}"))?;
        if !out.status.success() {
            return Err(format!("npm install {PLAYWRIGHT} failed: {}", String::from_utf8_lossy(&out.stderr).trim()));
        }
    }
    Ok(Browser { chromium, cache })
}

/// Debian's Chromium (`HALFTONE_TEST_CHROMIUM` overrides), installed when missing and root.
fn chromium() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("HALFTONE_TEST_CHROMIUM").map(PathBuf::from) {
        return if p.exists() { Ok(p) } else { Err(format!("HALFTONE_TEST_CHROMIUM={} does not exist", p.display())) };
    }
    // The binary itself, not Debian's wrapper script: Playwright passes its own flags.
    let found =
        || ["/usr/lib/chromium/chromium", "/usr/bin/chromium"].into_iter().map(PathBuf::from).find(|p| p.exists());
    if let Some(p) = found() {
        return Ok(p);
    }
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
    if !root || std::env::var_os("HALFTONE_TEST_NO_INSTALL").is_some() {
        return Err("chromium is not installed (and this is not root, or HALFTONE_TEST_NO_INSTALL is set)".into());
    }
    let status = Command::new("sh")
        .args(["-c", "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium"])
        .status()
        .map_err(|e| format!("apt-get cannot run: {e}"))?;
    found().filter(|_| status.success()).ok_or_else(|| "apt-get install chromium failed".into())
}

/// The browser, or `None` after printing why the test `name` is skipped (a panic instead when
/// `HALFTONE_TEST_BROWSER=required`).
fn browser_or_skip(name: &str) -> Option<Browser> {
    match browser() {
        Ok(b) => Some(b),
        Err(reason) if std::env::var("HALFTONE_TEST_BROWSER").as_deref() == Ok("required") => {
            panic!("HALFTONE_TEST_BROWSER=required, but: {reason}")
        }
        Err(reason) => {
            // Past libtest's capture (as the PostgreSQL tests do), so it shows in a plain run.
            use std::io::Write as _;
            let _ = writeln!(std::io::stderr(), "dashboard::{name}: SKIPPED ({reason})");
            None
        }
    }
}

/// Runs `dashboard.cjs` with `config` (its `scenario` says which part) and fails the test,
/// with the script's log, when the page did not behave.
async fn run_in_browser(browser: Browser, mut config: Value) {
    let script = browser.cache.join("dashboard.cjs");
    std::fs::write(&script, include_str!("dashboard.cjs")).unwrap();
    config["chromium"] = json!(browser.chromium);
    config["screenshots"] = json!(std::env::var("HALFTONE_DASHBOARD_SCREENSHOTS").unwrap_or_default());
    // The browser runs in a child process; the server answers from its own thread meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node").arg(&script).current_dir(&browser.cache).env("DASHBOARD_TEST", config.to_string()).output()
    })
    .await
    .unwrap()
    .unwrap();
    let log = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser run failed:\n{log}");
}

#[tokio::test]
async fn the_dashboard_works_in_a_real_browser() {
    let Some(browser) = browser_or_skip("the_dashboard_works_in_a_real_browser") else { return };
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    let targets = ["linux/x86_64", "windows/x86_64"];
    let good = p.draft("1.0.0", &targets);
    p.publish_draft(&good, "stable", json!({"basis_points": 10000})).await.unwrap();
    let bad = p.draft("1.1.0", &targets);
    let gate = json!({"max_install_failure_rate": 0.05, "max_crash_rate": 0.02, "min_sample": 100});
    let schedule = json!({"steps": [{"basis_points": 1000, "hold_s": 86400}, {"basis_points": 5000, "hold_s": 86400},
        {"basis_points": 10000}]});
    p.publish_draft(&bad, "stable", json!({"basis_points": 1000, "schedule": schedule, "gate": gate})).await.unwrap();
    let beta_gate = json!({"max_install_failure_rate": 0.3, "min_sample": 3});
    p.publish_draft(&p.draft("1.1.0-beta.1", &[]), "beta", json!({"basis_points": 10000, "gate": beta_gate}))
        .await
        .unwrap();
    let devices = server.anonymous();
    check_all(&devices, "notes", &fleet("office", 12, "1.0.0", "stable")).await;
    let early = fleet("early", 3, "1.1.0", "stable");
    check_all(&devices, "notes", &early).await;
    // The rate chart's series comes from the server, a point whenever the figures changed at a
    // sample (every 5 minutes; sampled at once here): none yet, one install, then a failure.
    server.state().sample_trend_now();
    for (d, kind) in early.iter().zip(["install_succeeded", "install_failed"]) {
        let token = running_token(&devices, "notes", d).await;
        let event = event_with(&d.id, kind, "1.1.0", "stable", Some(&token));
        assert_eq!(devices.post("/v1/apps/notes/events", &json!({ "events": [event] })).await.status, 202);
        server.state().feedback.flush().await.unwrap();
        server.state().sample_trend_now();
    }
    let trend = server.raw_admin().get("/v1/apps/notes/releases/1.1.0/rollouts/stable/trend").await.ok();
    let points: Vec<(u64, u64)> = trend["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["installs"].as_u64().unwrap(), p["install_failures"].as_u64().unwrap()))
        .collect();
    assert_eq!(points, [(0, 0), (1, 0), (1, 1)], "{trend}");
    // Three of five beta testers fail to install: the beta gate (30%) trips.
    let mut events = Vec::new();
    for (i, d) in fleet("tester", 5, "1.1.0-beta.1", "beta").iter().enumerate() {
        let token = running_token(&devices, "notes", d).await;
        let kind = if i < 2 { "install_succeeded" } else { "install_failed" };
        events.push(event_with(&d.id, kind, "1.1.0-beta.1", "beta", Some(&token)));
    }
    assert_eq!(devices.post("/v1/apps/notes/events", &json!({ "events": events })).await.status, 202);
    server.state().feedback.flush().await.unwrap();
    server.state().tick().await.unwrap();

    // The rebuild a release engineer signs where the key is (the browser cannot sign).
    let mut rebuild = p.draft("1.1.1", &targets);
    rebuild.spec.rebuild_of = Some("1.0.0".parse().unwrap());
    rebuild.spec.notes = "Reverts 1.1.0".into();
    p.upload(&rebuild).await;
    let viewer = viewer_token(&p.admin).await;

    let other = p
        .admin
        .create_token(
            &serde_json::from_value::<TokenRequest>(
                json!({"name": "ci-other", "role": "publisher", "apps": ["other"]}),
            )
            .unwrap(),
        )
        .await
        .unwrap();

    let config: Value = json!({
        "scenario": "cockpit",
        "base": server.base,
        "admin": server.token,
        "viewer": viewer,
        "other_publisher": other.token,
        "rebuild": serde_json::to_string_pretty(&rebuild.spec).unwrap(),
    });
    run_in_browser(browser, config).await;

    // What the page did went through the admin API like any other client's change.
    let rollouts = p.admin.get_release(&p.app, &"1.1.0".parse().unwrap()).await.unwrap();
    assert!(rollouts.rollouts.iter().all(|r| r.rollout.state.to_string() == "halted"), "{rollouts:?}");
    let rebuilt = p.admin.get_release(&p.app, &"1.1.1".parse().unwrap()).await.unwrap();
    assert!(rebuilt.release.critical);
    let answer = check(&devices, "notes", &Device::new("early-0", "1.1.0", "stable")).await;
    assert_eq!(answer.update.map(|u| u.version.to_string()).as_deref(), Some("1.1.1"));
    let audit = server.raw_admin().get("/v1/apps/notes/audit").await.ok();
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"rollback.publish"), "{actions:?}");
}

#[tokio::test]
async fn experiments_and_app_metrics_in_a_real_browser() {
    let Some(browser) = browser_or_skip("experiments_and_app_metrics_in_a_real_browser") else { return };
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let p = Publisher::create(&server, "abn").await;
    crate::metrics::declare_metrics(&p).await;
    p.publish("1.0.0", "stable", "100%").await;
    // Each arm is gated on its sessions against the baseline's.
    for v in ["1.1.0", "1.2.0"] {
        let rollout = json!({"basis_points": 0, "gate": {"metrics": [{"name": "session_s"}]}});
        p.publish_draft(&p.draft(v, &[]), "stable", rollout).await.unwrap();
    }
    let (app, stable) = ("abn".parse().unwrap(), "stable".parse().unwrap());
    let arms = ["1.1.0", "1.2.0"]
        .map(|v| ArmRequest { version: v.parse().unwrap(), basis_points: Percent::parse("10%").unwrap() })
        .to_vec();
    let admin = server.admin();
    admin.start_experiment(&app, &stable, &ExperimentRequest { arms, reason: None }).await.unwrap();

    // 3,000 devices on 1.0.0 check in: about a tenth land in each arm. Those offered 1.1.0 all
    // install it; of those offered 1.2.0, the devices whose index is a multiple of 4 fail.
    let mut devices = fleet("abn", 3_000, "1.0.0", "stable");
    let on_a = crate::gates::round(&server, "abn", "1.1.0", &mut devices, 0).await;
    let on_b = crate::gates::round(&server, "abn", "1.2.0", &mut devices, 4).await;
    assert!((240..360).contains(&on_a) && (240..360).contains(&on_b), "{on_a} and {on_b}");
    // The baseline's sessions: 300 s on average, reported after the arms were published (metric
    // gates compare with the baseline's values in the same time window). Sessions a third
    // longer on 1.2.0, and purchases 1 to 5 by five of its devices.
    crate::metrics::sessions(&server, "abn", "base", "1.0.0", 1_000, 300.0).await;
    crate::metrics::sessions(&server, "abn", "a", "1.1.0", 600, 300.0).await;
    crate::metrics::sessions(&server, "abn", "b", "1.2.0", 600, 400.0).await;
    let http = server.anonymous();
    for i in 0..5u64 {
        let id = format!("buyer-{i}");
        let token = running_token(&http, "abn", &Device::new(&id, "1.2.0", "stable")).await;
        let report = crate::metrics::metric_report(&id, "1.2.0", Some(&token), json!({}), json!({"purchases": i + 1}));
        let r = http.post("/v1/apps/abn/events", &json!({ "metrics": [report] })).await;
        assert_eq!((r.status, r.body["metrics_accepted"].as_u64()), (202, Some(1)), "{r:?}");
    }
    server.state().feedback.flush().await.unwrap();

    // What the page must show: the server's figures, checked here against what was seeded.
    let (view, _) = admin.experiment(&app, &stable).await.unwrap();
    let figure = |name: &str| view.figures.iter().find(|f| f.name == name).unwrap().clone();
    let failures = figure("install_failure_rate");
    // Distinct devices, counted approximately above about a hundred (within a few percent).
    for (arm, exposed) in failures.arms.iter().zip([on_a, on_b]) {
        assert!(arm.count.abs_diff(exposed as u64) * 20 <= exposed as u64, "{exposed}: {failures:?}");
    }
    assert!(failures.arms[0].mean == 0.0 && (0.15..0.35).contains(&failures.arms[1].mean), "{failures:?}");
    assert_eq!(failures.ahead.as_ref().map(ToString::to_string).as_deref(), Some("1.1.0"), "{failures:?}");
    assert!(failures.proven, "{failures:?}");
    let session = figure("session_s");
    assert_eq!(session.arms.iter().map(|a| a.count).collect::<Vec<_>>(), [600, 600]);
    assert_eq!(session.ahead.as_ref().map(ToString::to_string).as_deref(), Some("1.2.0"), "{session:?}");
    assert!(session.proven, "{session:?}");
    let status = admin.status(&app).await.unwrap();
    let b = status.releases.iter().find(|r| r.version.to_string() == "1.2.0").unwrap();
    let rollout = &b.rollouts[0];
    let m = crate::metrics::metric(&status, "1.2.0", "session_s").build;
    assert_eq!(m.count, Some(600));
    assert!((m.mean.unwrap() / 400.0 - 1.0).abs() < 0.02, "{m:?}");
    let purchases = crate::metrics::metric(&status, "1.2.0", "purchases").build;
    assert_eq!((purchases.sum, purchases.devices), (Some(15), Some(5)));
    let gate = &rollout.metric_evidence[0];
    assert_eq!((gate.call.as_str(), gate.count, gate.baseline_count), ("no_worse", 600, 1_000), "{gate:?}");
    let viewer = viewer_token(&p.admin).await;

    let config = json!({
        "scenario": "experiment",
        "base": server.base,
        "admin": server.token,
        "viewer": viewer,
        "experiment": view,
        "metrics": rollout.metrics,
        "metric_evidence": rollout.metric_evidence,
    });
    run_in_browser(browser, config).await;

    // The page promoted 1.2.0 through the admin API, after the refusal of 1.1.0 changed nothing.
    let after = server.raw_admin().get("/v1/apps/abn/channels/stable/experiment").await;
    after.assert_problem(404, "");
    let rollout_of = |v: &str| {
        let admin = server.admin();
        let v = v.parse().unwrap();
        async move { admin.get_release(&"abn".parse().unwrap(), &v).await.unwrap().rollouts.remove(0) }
    };
    let (winner, loser) = (rollout_of("1.2.0").await, rollout_of("1.1.0").await);
    assert_eq!(
        (winner.rollout.basis_points.basis_points(), winner.rollout.state.to_string()),
        (5_000, "active".into())
    );
    assert_eq!(loser.rollout.state.to_string(), "halted");
    let audit = server.raw_admin().get("/v1/apps/abn/audit").await.ok();
    let promoted: Vec<&Value> =
        audit["entries"].as_array().unwrap().iter().filter(|e| e["action"] == "experiment.promote").collect();
    assert_eq!(promoted.len(), 2, "one entry per arm: {promoted:?}");
}

#[tokio::test]
async fn a_step_waiting_for_metric_values_and_starting_an_experiment_in_a_real_browser() {
    let Some(browser) =
        browser_or_skip("a_step_waiting_for_metric_values_and_starting_an_experiment_in_a_real_browser")
    else {
        return;
    };
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let p = Publisher::create(&server, "lab").await;
    crate::metrics::declare_metrics(&p).await;
    p.publish("1.0.0", "stable", "100%").await;
    // 1.1.0 on a schedule, gated on sessions: its first step's hold elapses with 20 of the 30
    // new values the gate needs, so the step waits.
    let schedule = json!({"steps": [
        {"basis_points": 1000, "hold_s": 60}, {"basis_points": 5000, "hold_s": 60}, {"basis_points": 10000}
    ]});
    let rollout = json!({"basis_points": 1000, "schedule": schedule, "gate": {"metrics": [{"name": "session_s"}]}});
    p.publish_draft(&p.draft("1.1.0", &[]), "stable", rollout).await.unwrap();
    // Two candidates on beta, at 0% until an experiment gives them arms.
    for v in ["1.2.0", "1.3.0"] {
        p.publish_draft(&p.draft(v, &[]), "beta", json!({"basis_points": 0})).await.unwrap();
    }
    crate::metrics::sessions(&server, "lab", "base", "1.0.0", 200, 300.0).await;
    clock.advance(61_000);
    crate::metrics::sessions(&server, "lab", "a", "1.1.0", 20, 300.0).await;
    server.state().feedback.flush().await.unwrap();
    assert!(server.state().tick().await.unwrap().advanced.is_empty(), "20 values of the 30 the gate needs");
    let status = p.admin.status(&p.app).await.unwrap();
    let rollout = &status.releases.iter().find(|r| r.version.to_string() == "1.1.0").unwrap().rollouts[0];
    let waits = &rollout.metric_step_waits;
    assert_eq!(
        waits.iter().map(|w| (w.metric.as_str(), w.new_values, w.needed)).collect::<Vec<_>>(),
        [("session_s", 20, 30)]
    );

    // What the server says to a start whose shares overlap (over 100% together): the page must
    // show this reason. Nothing is stored on a refusal, so asking first changes nothing.
    let overlapping =
        json!({"arms": [{"version": "1.2.0", "basis_points": 6000}, {"version": "1.3.0", "basis_points": 5000}]});
    let refused = server.raw_admin().post("/v1/apps/lab/channels/beta/experiment", &overlapping).await;
    refused.assert_problem(422, "over 100%");
    let viewer = viewer_token(&p.admin).await;

    let config = json!({
        "scenario": "start",
        "base": server.base,
        "admin": server.token,
        "viewer": viewer,
        "waits": waits,
        "refusal": refused.body["detail"],
    });
    run_in_browser(browser, config).await;

    // The experiment the page started, through the API: the arms and shares given in the form.
    let (app, beta) = ("lab".parse().unwrap(), "beta".parse().unwrap());
    let (view, _) = p.admin.experiment(&app, &beta).await.unwrap();
    let arms: Vec<(String, u16)> =
        view.arms.iter().map(|a| (a.version.to_string(), a.basis_points.basis_points())).collect();
    assert_eq!(arms, [("1.2.0".to_owned(), 1000), ("1.3.0".to_owned(), 2000)], "{view:?}");
    let audit = p.admin.audit(&app).await.unwrap();
    let started: Vec<_> = audit.entries.iter().filter(|e| e.action == "experiment.start").collect();
    assert_eq!(started.len(), 2, "one entry per arm: {started:?}");
    assert!(format!("{started:?}").contains("which starts faster"), "the reason given: {started:?}");
}
