//! electron-updater's generic provider, through electron-updater's own code (its
//! `AppImageUpdater`, from npm) under Node, with the smallest stand-in for the Electron
//! runtime (`tests/node/electron-updater.js`). npm installs into the test target's temporary
//! dir; where npm or Node cannot be had the tests print SKIPPED and pass, unless
//! `HALFTONE_TEST_NPM=required` (as `.ci/run` sets).

use std::path::PathBuf;

use base64::Engine as _;
use halftone_channels::AppId;
use halftone_channels::wire::RollbackRequest;
use serde_json::{Value, json};

use crate::harness::{Publisher, TestServer};

/// The electron-updater version the tests run.
const ELECTRON_UPDATER: &str = "electron-updater@6.8.10";

/// The `node_modules` with electron-updater (see `npm`).
fn node_modules() -> Option<PathBuf> {
    crate::npm::node_modules(ELECTRON_UPDATER, "electron")
}

/// A device: its staging id (a UUID, as electron-updater keeps) and running version.
fn device(prefix: u32, i: usize, version: &str, download: bool) -> Value {
    json!({"id": format!("{prefix:08x}-0000-4000-8000-{i:012}"), "version": version, "download": download})
}

/// What electron-updater reports for each device.
async fn run(modules: &std::path::Path, input: Value) -> Vec<Value> {
    crate::npm::run_script("electron-updater.js", modules, input).await
}

fn base(server: &TestServer, app: &str) -> String {
    server.url(&format!("/v1/apps/{app}/electron/"))
}

/// The version each device is offered (`None`: no update).
fn offered(results: &[Value]) -> Vec<Option<String>> {
    results
        .iter()
        .map(|r| {
            assert!(r["error"].is_null(), "{r}");
            r["available"].as_bool().unwrap().then(|| r["version"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_staged_rollout_reaches_about_its_percentage_and_devices_keep_their_answer() {
    let Some(modules) = node_modules() else { return };
    let server = TestServer::start();
    let p = Publisher::create(&server, "electron-app").await;
    p.publish_for_clients("1.0.0", "stable", 10_000).await;
    let draft = p.publish_for_clients("1.1.0", "stable", 3_000).await;
    let devices: Vec<Value> = (0..300).map(|i| device(1, i, "1.0.0", false)).collect();
    let input = json!({"base": base(&server, "electron-app"), "devices": devices});
    let first = offered(&run(&modules, input.clone()).await);
    let n = first.iter().filter(|o| o.as_deref() == Some("1.1.0")).count();
    assert!((60..=120).contains(&n), "30% of 300 devices, got {n}");
    assert!(first.iter().all(|o| o.is_none() || o.as_deref() == Some("1.1.0")));
    assert_eq!(offered(&run(&modules, input).await), first, "each device keeps its answer");
    let (devices_offered, _) = crate::clients::figures(&p.http, "electron-app", "1.1.0", "1.0.0", n).await;
    assert!(devices_offered.abs_diff(n as u64) <= n as u64 / 10 + 2, "{devices_offered} devices offered, not {n}");

    // An offered device downloads; electron-updater checks the sha512 itself.
    let i = first.iter().position(Option::is_some).unwrap();
    let input = json!({"base": base(&server, "electron-app"), "devices": [device(1, i, "1.0.0", true)]});
    let got = run(&modules, input).await;
    assert!(got[0]["error"].is_null(), "{got:?}");
    let bytes = base64::engine::general_purpose::STANDARD.decode(got[0]["bytes"].as_str().unwrap()).unwrap();
    assert_eq!(bytes, draft.files[0]);

    // With its version sent, a device on the newest build is told there is nothing.
    let input = json!({"base": base(&server, "electron-app"), "devices": [device(1, 0, "1.1.0", false)],
                       "headers": {"Halftone-Current-Version": "1.1.0"}});
    assert_eq!(offered(&run(&modules, input).await), vec![None]);
}

#[tokio::test]
async fn halt_stops_offers_rollback_reaches_the_bad_build_and_a_tampered_file_is_refused() {
    let Some(modules) = node_modules() else { return };
    let server = TestServer::start();
    let p = Publisher::create(&server, "electron-halt").await;
    let app = AppId::parse("electron-halt").unwrap();
    p.publish_for_clients("1.0.0", "stable", 10_000).await;
    p.publish_for_clients("1.1.0", "stable", 5_000).await;
    let fleet = |prefix, version: &str| -> Vec<Value> { (0..100).map(|i| device(prefix, i, version, false)).collect() };
    let input = json!({"base": base(&server, "electron-halt"), "devices": fleet(2, "1.0.0")});
    assert!(offered(&run(&modules, input.clone()).await).iter().any(|o| o.as_deref() == Some("1.1.0")));
    p.admin.halt(&app, &"1.1.0".parse().unwrap()).await.unwrap();
    assert!(offered(&run(&modules, input).await).iter().all(Option::is_none), "halted: 1.1.0 is offered to nobody");

    let mut rebuild = p.client_draft("1.1.1", &[]);
    rebuild.spec.rebuild_of = Some("1.0.0".parse().unwrap());
    p.upload(&rebuild).await;
    let request = RollbackRequest {
        bad_version: "1.1.0".parse().unwrap(),
        release: rebuild.spec.clone(),
        leave_uncovered: false,
    };
    p.admin.rollback(&app, &request).await.unwrap();
    // The rebuild is offered to devices on the bad build: the app sends its version.
    let input = json!({"base": base(&server, "electron-halt"), "devices": fleet(3, "1.1.0"),
                       "headers": {"Halftone-Current-Version": "1.1.0"}});
    let on_bad = offered(&run(&modules, input).await);
    assert!(on_bad.iter().all(|o| o.as_deref() == Some("1.1.1")), "{on_bad:?}");

    // The stored file changed behind the server's back: electron-updater's sha512 check refuses it.
    let path = server.data_dir().join("artifacts").join(rebuild.spec.artifacts[0].sha256.to_string());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let input = json!({"base": base(&server, "electron-halt"), "devices": [device(3, 0, "1.1.0", true)],
                       "headers": {"Halftone-Current-Version": "1.1.0"}});
    let got = run(&modules, input).await;
    assert!(got[0]["error"].as_str().unwrap_or_default().contains("sha512"), "{got:?}");
}

#[tokio::test]
async fn channel_files_name_the_channel_and_platform() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "electron-files").await;
    let d = p.client_draft("1.0.0", &["linux/x86_64", "windows/x86_64", "linux/aarch64"]);
    p.publish_draft(&d, "stable", json!({"basis_points": 10_000})).await.unwrap();
    let http = server.anonymous();
    let staging = [("x-user-staging-id", "6a2f41a3-c54c-fce8-32d2-0324e1c32e22")];
    for (file, sha) in [("latest-linux.yml", 0), ("latest.yml", 1), ("latest-linux-arm64.yml", 2)] {
        let r = http.send("GET", &format!("/v1/apps/electron-files/electron/{file}"), None, &staging).await;
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.headers.get("halftone-identity").map(String::as_str), Some("client"));
        let expect = d.spec.artifacts.iter().find(|a| {
            let name = ["linux/x86_64", "windows/x86_64", "linux/aarch64"][sha];
            format!("{}/{}", a.os, a.arch) == name
        });
        assert_eq!(r.body["sha512"].as_str(), expect.unwrap().clients.as_ref().map(|c| c.sha512.as_str()), "{file}");
    }
    // No macOS build, and no beta release a device of unknown version could see: 404.
    http.get("/v1/apps/electron-files/electron/latest-mac.yml").await.assert_problem(404, "no release");
    http.get("/v1/apps/electron-files/electron/latest.json").await.assert_problem(404, "channel file");
    http.get("/v1/apps/electron-files/electron/nightly-linux.yml").await.assert_problem(422, "nightly");
}
