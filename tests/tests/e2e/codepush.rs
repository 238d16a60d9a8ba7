//! The CodePush acquisition API, through the CodePush JavaScript acquisition SDK itself
//! (`code-push`'s `AcquisitionManager`, from npm, the code react-native-code-push runs) under
//! Node, with a small `Http.Requester` on Node's http module (`tests/node/code-push.js`): a
//! staged rollout, sticky answers, halt, rollback by rebuild, a gate halting on
//! `reportStatus/deploy` failures, and a tampered package refused by its hash; an older SDK
//! (2.0.7) through the legacy camelCase routes. The admin routes
//! and bad input are checked over plain HTTP. npm installs as for electron-updater (see `npm`).

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use halftone_channels::AppId;
use halftone_channels::wire::{CodePushKeyRequest, Role, RollbackRequest, TokenRequest};
use halftone_server::clock::ManualClock;
use serde_json::{Value, json};

use crate::harness::{Publisher, TestServer};

/// The `code-push` version the tests run (its `script/acquisition-sdk`).
const CODE_PUSH: &str = "code-push@4.2.3";

/// The target the tests' deployment keys serve CodePush devices as.
const IOS: &str = "ios/universal";

/// An older `code-push`, whose SDK speaks the legacy camelCase spelling (`updateCheck`,
/// `reportStatus/deploy`), as apps built with older react-native-code-push still do.
const CODE_PUSH_LEGACY: &str = "code-push@2.0.7";

fn node_modules() -> Option<PathBuf> {
    crate::npm::node_modules(CODE_PUSH, "codepush")
}

/// A device: its clientUniqueId, binary version and the package it runs (a label).
fn device(prefix: &str, i: usize, label: Option<&str>) -> Value {
    json!({"id": format!("{prefix}-{i:05}"), "appVersion": "1.0", "label": label})
}

/// What the acquisition SDK reports for each device.
async fn run(modules: &std::path::Path, input: Value) -> Vec<Value> {
    crate::npm::run_script("code-push.js", modules, input).await
}

/// The label each device is offered (`None`: no update).
fn offered(results: &[Value]) -> Vec<Option<String>> {
    results
        .iter()
        .map(|r| {
            assert!(r["error"].is_null(), "{r}");
            r["available"].as_bool().unwrap().then(|| r["label"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// The app's CodePush server URL (the app's `CodePushServerURL`).
fn server_url(server: &TestServer, app: &str) -> String {
    server.url(&format!("/v1/apps/{app}/codepush/"))
}

/// A deployment key of `p`'s app for `channel`, served as iOS.
async fn key(p: &Publisher, name: &str, channel: &str) -> String {
    let request = CodePushKeyRequest {
        name: name.parse().unwrap(),
        channel: channel.parse().unwrap(),
        os: "ios".parse().unwrap(),
        arch: "universal".parse().unwrap(),
        key: None,
    };
    p.admin.create_codepush_key(&p.app, &request).await.unwrap().into_inner().key.to_string()
}

/// Publishes a bundle `version` for iOS on stable at `basis_points` (and `rollout` fields).
async fn publish(p: &Publisher, version: &str, rollout: Value) -> crate::harness::Draft {
    let d = p.draft(version, &[IOS]);
    p.publish_draft(&d, "stable", rollout).await.unwrap();
    d
}

#[tokio::test]
async fn a_staged_rollout_reaches_about_its_percentage_and_devices_keep_their_answer() {
    let Some(modules) = node_modules() else { return };
    let server = TestServer::start();
    let p = Publisher::create(&server, "cp-app").await;
    let key = key(&p, "ios-stable", "stable").await;
    publish(&p, "1.0.0", json!({"basis_points": 10_000})).await;
    let draft = publish(&p, "1.1.0", json!({"basis_points": 3_000})).await;
    let devices: Vec<Value> = (0..300).map(|i| device("a", i, Some("1.0.0"))).collect();
    let input = json!({"server": server_url(&server, "cp-app"), "key": key, "devices": devices});
    let first = offered(&run(&modules, input.clone()).await);
    let n = first.iter().filter(|o| o.as_deref() == Some("1.1.0")).count();
    assert!((60..=120).contains(&n), "30% of 300 devices, got {n}");
    assert!(first.iter().all(|o| o.is_none() || o.as_deref() == Some("1.1.0")), "{first:?}");
    assert_eq!(offered(&run(&modules, input).await), first, "each device keeps its answer");
    let (devices_offered, running) = crate::clients::figures(&p.http, "cp-app", "1.1.0", "1.0.0", n).await;
    assert!(devices_offered.abs_diff(n as u64) <= n as u64 / 10 + 2, "{devices_offered} devices offered, not {n}");
    assert!(running.abs_diff(300) <= 30, "adoption counts the CodePush devices on 1.0.0: {running}");

    // An offered device downloads; the package is the artifact, its hash the SHA-256.
    let i = first.iter().position(Option::is_some).unwrap();
    let mut d = device("a", i, Some("1.0.0"));
    d["download"] = json!(true);
    let got = run(&modules, json!({"server": server_url(&server, "cp-app"), "key": key, "devices": [d]})).await;
    assert!(got[0]["error"].is_null(), "{got:?}");
    assert_eq!(got[0]["appVersion"], "1.0", "the package is for the binary the device runs");
    assert_eq!(got[0]["isMandatory"], false);
    let bytes = base64::engine::general_purpose::STANDARD.decode(got[0]["bytes"].as_str().unwrap()).unwrap();
    assert_eq!(bytes, draft.files[0]);
    assert_eq!(got[0]["packageHash"].as_str().unwrap(), draft.spec.artifacts[0].sha256.to_string());

    // A device on the newest package (by label, or by its hash alone) is told there is nothing;
    // a device on the binary alone, inside the 30%, is offered the newest.
    let mut by_hash = device("a", i, None);
    by_hash["packageHash"] = json!(draft.spec.artifacts[0].sha256.to_string());
    let devices = json!([device("a", i, Some("1.1.0")), by_hash, device("a", i, None)]);
    let got = run(&modules, json!({"server": server_url(&server, "cp-app"), "key": key, "devices": devices})).await;
    assert_eq!(offered(&got), vec![None, None, Some("1.1.0".to_owned())]);
}

#[tokio::test]
async fn halt_stops_offers_rollback_reaches_the_bad_build_and_a_tampered_package_is_refused() {
    let Some(modules) = node_modules() else { return };
    let server = TestServer::start();
    let p = Publisher::create(&server, "cp-halt").await;
    let app = AppId::parse("cp-halt").unwrap();
    let key = key(&p, "ios-stable", "stable").await;
    publish(&p, "1.0.0", json!({"basis_points": 10_000})).await;
    publish(&p, "1.1.0", json!({"basis_points": 5_000})).await;
    let fleet =
        |prefix: &str, label: &str| -> Vec<Value> { (0..100).map(|i| device(prefix, i, Some(label))).collect() };
    let input = json!({"server": server_url(&server, "cp-halt"), "key": key, "devices": fleet("b", "1.0.0")});
    assert!(offered(&run(&modules, input.clone()).await).iter().any(|o| o.as_deref() == Some("1.1.0")));
    p.admin.halt(&app, &"1.1.0".parse().unwrap()).await.unwrap();
    assert!(offered(&run(&modules, input).await).iter().all(Option::is_none), "halted: 1.1.0 is offered to nobody");

    let mut rebuild = p.draft("1.1.1", &[IOS]);
    rebuild.spec.rebuild_of = Some("1.0.0".parse().unwrap());
    p.upload(&rebuild).await;
    let request = RollbackRequest {
        bad_version: "1.1.0".parse().unwrap(),
        release: rebuild.spec.clone(),
        leave_uncovered: false,
    };
    p.admin.rollback(&app, &request).await.unwrap();
    // Rollback is mandatory (critical) and reaches every device on the bad bundle.
    let input = json!({"server": server_url(&server, "cp-halt"), "key": key, "devices": fleet("c", "1.1.0")});
    let got = run(&modules, input).await;
    assert!(offered(&got).iter().all(|o| o.as_deref() == Some("1.1.1")), "{got:?}");
    assert!(got.iter().all(|r| r["isMandatory"] == true), "{got:?}");

    // The stored package changed behind the server's back: its hash gives it away.
    let path = server.data_dir().join("artifacts").join(rebuild.spec.artifacts[0].sha256.to_string());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let mut d = device("c", 0, Some("1.1.0"));
    d["download"] = json!(true);
    let got = run(&modules, json!({"server": server_url(&server, "cp-halt"), "key": key, "devices": [d]})).await;
    assert!(got[0]["error"].as_str().unwrap_or_default().contains("package hash mismatch"), "{got:?}");
}

#[tokio::test]
async fn deploy_failures_reported_by_the_sdk_make_a_health_gate_halt_the_rollout() {
    let Some(modules) = node_modules() else { return };
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock.clone());
    let p = Publisher::create(&server, "cp-gate").await;
    let key = key(&p, "ios-stable", "stable").await;
    publish(&p, "1.0.0", json!({"basis_points": 10_000})).await;
    let gate = json!({"max_install_failure_rate": 0.2, "min_sample": 20});
    publish(&p, "1.1.0", json!({"basis_points": 5_000, "gate": gate})).await;
    // 200 devices on 1.0.0, each behind its own network; those offered 1.1.0 download it and
    // report: one in two fails (react-native-code-push rolled it back).
    let devices: Vec<Value> = (0..200)
        .map(|i| {
            let mut d = device("g", i, Some("1.0.0"));
            d["reportDownload"] = json!(true);
            d["report"] = json!(if i % 2 == 0 { "DeploymentFailed" } else { "DeploymentSucceeded" });
            d["ip"] = json!(format!("10.{}.{}.9", i >> 8, i & 255));
            d
        })
        .collect();
    let input = json!({"server": server_url(&server, "cp-gate"), "key": key, "devices": devices});
    let got = run(&modules, input.clone()).await;
    let exposed = offered(&got).iter().filter(|o| o.is_some()).count();
    assert!((60..=140).contains(&exposed), "{exposed}");
    assert!(got.iter().filter(|r| r["available"] == true).all(|r| r["reported"].is_string()), "{got:?}");
    server.state().feedback.flush().await.unwrap();
    let status = p.http.get("/v1/apps/cp-gate/status?version=1.1.0").await.ok();
    let figures = &status["releases"][0]["rollouts"][0]["figures"];
    let failures = figures["install_failures"].as_u64().unwrap();
    let installs = figures["installs"].as_u64().unwrap();
    assert!(failures + installs >= exposed as u64 - 3 && failures > 20, "{figures}");
    assert!(figures["downloads"].as_u64().unwrap() + 3 >= exposed as u64, "{figures}");
    // The same reports again count nothing more (once per device, release and kind).
    run(&modules, input).await;
    server.state().feedback.flush().await.unwrap();
    let again = p.http.get("/v1/apps/cp-gate/status?version=1.1.0").await.ok();
    assert_eq!(again["releases"][0]["rollouts"][0]["figures"]["install_failures"], failures);

    clock.advance(1_000);
    let report = server.state().tick().await.unwrap();
    assert_eq!(report.tripped.len(), 1, "{report:?}");
    let status = p.http.get("/v1/apps/cp-gate/status?version=1.1.0").await.ok();
    assert_eq!(status["releases"][0]["rollouts"][0]["state"], "halted", "{status}");
}

#[tokio::test]
async fn the_legacy_sdk_checks_downloads_and_reports_in_camel_case() {
    let Some(modules) = crate::npm::node_modules(CODE_PUSH_LEGACY, "codepush") else { return };
    let server = TestServer::start();
    let p = Publisher::create(&server, "cp-legacy").await;
    let key = key(&p, "ios-stable", "stable").await;
    publish(&p, "1.0.0", json!({"basis_points": 10_000})).await;
    let draft = publish(&p, "1.1.0", json!({"basis_points": 5_000})).await;
    let devices: Vec<Value> = (0..100)
        .map(|i| {
            let mut d = device("l", i, Some("1.0.0"));
            d["download"] = json!(true);
            d["report"] = json!("DeploymentFailed");
            d
        })
        .collect();
    let input = json!({"server": server_url(&server, "cp-legacy"), "key": key, "devices": devices});
    let got = run(&modules, input).await;
    let n = offered(&got).iter().filter(|o| o.as_deref() == Some("1.1.0")).count();
    assert!((30..=70).contains(&n), "50% of 100 devices, got {n}");
    for r in got.iter().filter(|r| r["available"] == true) {
        assert_eq!(r["appVersion"], "1.0", "{r}");
        let bytes = base64::engine::general_purpose::STANDARD.decode(r["bytes"].as_str().unwrap()).unwrap();
        assert_eq!(bytes, draft.files[0]);
    }
    server.state().feedback.flush().await.unwrap();
    let status = p.http.get("/v1/apps/cp-legacy/status?version=1.1.0").await.ok();
    let failures = status["releases"][0]["rollouts"][0]["figures"]["install_failures"].as_u64().unwrap();
    assert!(
        failures > 0 && failures <= n as u64,
        "{failures} failures reported through reportStatus/deploy, {n} offered"
    );
}

#[tokio::test]
async fn deployment_keys_route_devices_and_bad_input_is_a_problem() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "cp-keys").await;
    let beta = key(&p, "ios-beta", "beta").await;
    publish(&p, "1.0.0", json!({"basis_points": 10_000})).await;
    let d = p.draft("1.1.0", &[IOS]);
    p.publish_draft(&d, "beta", json!({"basis_points": 10_000})).await.unwrap();
    let http = server.anonymous();
    let base = "/v1/apps/cp-keys/codepush";

    // The legacy spelling, camelCase both ways; the device id is codepush- and its id.
    let r = http.get(&format!("{base}/updateCheck?deploymentKey={beta}&appVersion=1.0&clientUniqueId=u1")).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["updateInfo"]["isAvailable"], true, "{r:?}");
    assert_eq!(r.body["updateInfo"]["label"], "1.1.0", "the beta key follows beta");
    assert_eq!(r.body["updateInfo"]["appVersion"], "1.0");
    assert!(r.body["updateInfo"]["downloadURL"].as_str().unwrap().ends_with(&d.spec.artifacts[0].sha256.to_string()));
    assert_eq!(r.headers.get("halftone-identity").map(String::as_str), Some("codepush"));
    assert_eq!(r.headers.get("halftone-device-id").map(String::as_str), Some("codepush-u1"));
    let r = http.get(&format!("{base}/v0.1/public/codepush/update_check?deployment_key={beta}&app_version=1.0&label=1.1.0&client_unique_id=u1")).await;
    assert_eq!(r.body["update_info"]["is_available"], false, "{r:?}");

    // `halftone explain` says the id is a CodePush one.
    let explain = json!({"device_id": "codepush-u1", "current_version": "1.0.0", "channel": "beta",
                         "os": "ios", "arch": "universal"});
    let e = p.http.post("/v1/apps/cp-keys/explain", &explain).await;
    assert!(e.body["identity"].as_str().unwrap_or_default().starts_with("codepush: "), "{e:?}");

    // Bad input: 4xx problems.
    http.get(&format!("{base}/updateCheck?deploymentKey=nosuchkey123&appVersion=1.0"))
        .await
        .assert_problem(404, "deployment key");
    http.get(&format!("{base}/updateCheck?appVersion=1.0")).await.assert_problem(400, "deployment");
    http.get(&format!("{base}/updateCheck?deploymentKey={beta}&appVersion=one"))
        .await
        .assert_problem(400, "appVersion");
    http.get("/v1/apps/nope/codepush/updateCheck?deploymentKey=x&appVersion=1").await.assert_problem(404, "nope");
    let deploy = format!("{base}/reportStatus/deploy");
    let report = |status: &str| {
        json!({"deploymentKey": beta, "clientUniqueId": "u1", "label": "1.1.0",
                                       "appVersion": "1.0", "status": status})
    };
    http.post(&deploy, &report("Exploded")).await.assert_problem(400, "Exploded");
    let huge = json!({"deploymentKey": beta, "label": "x".repeat(2_000_000)});
    assert_eq!(http.post(&deploy, &huge).await.status, 413);
    let r = http.post(&deploy, &json!({"deploymentKey": "nosuchkey123", "label": "1.1.0"})).await;
    r.assert_problem(404, "deployment key");
    // A well-formed report about a package the server does not serve is answered, not counted.
    let r = http.post(&deploy, &json!({"deploymentKey": beta, "label": "v7", "status": "DeploymentFailed"})).await;
    assert_eq!(
        (r.status, r.body["counted"].as_bool(), r.body["reason"].as_str()),
        (200, Some(false), Some("unknown_package"))
    );
    let r = http.post(&deploy, &report("DeploymentSucceeded")).await;
    assert_eq!((r.status, r.body["counted"].as_bool()), (200, Some(true)), "{r:?}");
    // A device the rollout does not admit (it is at 0% now) is answered, not counted.
    p.patch_rollout("1.1.0", "beta", json!({"basis_points": 0})).await;
    let r = http.post(&deploy, &report("DeploymentFailed")).await;
    assert_eq!((r.status, r.body["reason"].as_str()), (200, Some("not_offered")), "{r:?}");
    let metrics = http.get("/metrics").await.text;
    for outcome in ["counted", "unknown_package", "not_offered"] {
        let line = format!("halftone_codepush_reports_total{{app=\"cp-keys\",outcome=\"{outcome}\"}} 1");
        assert!(metrics.contains(&line), "{line} in\n{metrics}");
    }

    // Keys: listed for any token, made and revoked by the app's publishers and admins.
    let list = p.http.get("/v1/apps/cp-keys/codepush-keys").await.ok();
    assert_eq!(list["keys"][0]["name"], "ios-beta");
    let request = TokenRequest { name: "v".parse().unwrap(), role: Role::Viewer, apps: vec![] };
    let viewer = server.admin().create_token(&request).await.unwrap();
    let as_viewer = p.http.with_token(&viewer.token);
    let body = json!({"name": "android", "channel": "stable", "os": "android"});
    assert_eq!(as_viewer.post("/v1/apps/cp-keys/codepush-keys", &body).await.status, 403);
    assert_eq!(as_viewer.get("/v1/apps/cp-keys/codepush-keys").await.status, 200);
    let made = p.http.post("/v1/apps/cp-keys/codepush-keys", &body).await;
    assert_eq!((made.status, made.body["arch"].as_str()), (201, Some("universal")), "{made:?}");
    assert_eq!(p.http.post("/v1/apps/cp-keys/codepush-keys", &body).await.status, 200, "idempotent");
    let other = json!({"name": "android", "channel": "beta", "os": "android"});
    p.http.post("/v1/apps/cp-keys/codepush-keys", &other).await.assert_problem(409, "already has");
    let nightly = json!({"name": "n", "channel": "nightly", "os": "android"});
    p.http.post("/v1/apps/cp-keys/codepush-keys", &nightly).await.assert_problem(422, "nightly");
    let revoked = p.http.send("DELETE", "/v1/apps/cp-keys/codepush-keys/ios-beta", None, &[]).await;
    assert_eq!(revoked.status, 204, "{revoked:?}");
    http.get(&format!("{base}/updateCheck?deploymentKey={beta}&appVersion=1.0"))
        .await
        .assert_problem(404, "deployment key");
    // A new body for the app (a new display name) keeps its keys.
    let mut app = p.http.get("/v1/apps/cp-keys").await.ok();
    app["display_name"] = json!("CodePush keys");
    let body = json!({"display_name": app["display_name"], "keys": app["keys"],
                      "channels": []});
    assert_eq!(p.http.put("/v1/apps/cp-keys", &body).await.status, 200);
    let list = p.http.get("/v1/apps/cp-keys/codepush-keys").await.ok();
    assert_eq!(list["keys"].as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn deployment_keys_survive_a_restart() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "cp-durable").await;
    let made = key(&p, "ios-stable", "stable").await;
    let before = p.http.get("/v1/apps/cp-durable/codepush-keys").await.ok();
    let (dir, token) = server.stop();
    let dir = dir.unwrap();
    let again = TestServer::start_in(dir.path(), Some(token));
    let after = again.raw_admin().get("/v1/apps/cp-durable/codepush-keys").await.ok();
    assert_eq!(after, before);
    assert_eq!(after["keys"][0]["key"], made.as_str());
}

#[tokio::test]
async fn deployment_keys_are_committed_to_postgres_and_survive_a_restart() {
    let pg = halftone_tests::postgres_or_skip!();
    let server = TestServer::start_on_postgres(&pg.url(), None);
    let p = Publisher::create(&server, "cp-pg").await;
    let made = key(&p, "ios-stable", "stable").await;
    publish(&p, "1.0.0", json!({"basis_points": 10_000})).await;
    let before = p.http.get("/v1/apps/cp-pg/codepush-keys").await.ok();
    let (_, token) = server.stop();
    let again = TestServer::start_on_postgres(&pg.url(), Some(token));
    let after = again.raw_admin().get("/v1/apps/cp-pg/codepush-keys").await.ok();
    assert_eq!(after, before);
    let check = format!("/v1/apps/cp-pg/codepush/updateCheck?deploymentKey={made}&appVersion=0.9&clientUniqueId=u");
    let r = again.anonymous().get(&check).await;
    assert_eq!((r.status, r.body["updateInfo"]["label"].as_str()), (200, Some("1.0.0")), "{r:?}");
}
