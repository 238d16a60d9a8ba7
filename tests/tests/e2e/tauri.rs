//! Tauri's protocol through cargo-packager's own updater (`cargo-packager-updater`): it
//! checks the endpoint, downloads the file and verifies the minisign signature with its own
//! code, against the public key `halftone client-keys` prints.

use cargo_packager_updater::{Config, Update, UpdaterBuilder, semver};
use halftone_channels::wire::RollbackRequest;
use halftone_channels::{AppId, minisign_public_key};
use serde_json::json;

use halftone_channels::wire::ReleaseView;

use crate::harness::{Draft, Publisher, TestServer};

/// The app's updater configuration: the endpoint with cargo-packager's placeholders and the
/// pubkey, as an app writes them.
fn config(server: &TestServer, app: &str, channel: &str, key: &halftone_channels::PublicKey) -> Config {
    use base64::Engine as _;
    let endpoint = server
        .url(&format!("/v1/apps/{app}/tauri/{{{{target}}}}/{{{{arch}}}}/{{{{current_version}}}}?channel={channel}"));
    serde_json::from_value(json!({
        "endpoints": [endpoint],
        "pubkey": base64::engine::general_purpose::STANDARD.encode(minisign_public_key(key)),
    }))
    .unwrap()
}

/// One check by cargo-packager's updater, for a linux device running `version` that sends
/// `device` as its `Halftone-Device-Id` (or nothing).
async fn check(config: &Config, version: &str, device: Option<&str>) -> Result<Option<Update>, String> {
    let (config, version, device) =
        (config.clone(), semver::Version::parse(version).unwrap(), device.map(str::to_owned));
    tokio::task::spawn_blocking(move || {
        let mut b = UpdaterBuilder::new(version, config).target("linux");
        if let Some(d) = device {
            b = b.header("Halftone-Device-Id", d).unwrap();
        }
        b.build().and_then(|u| u.check()).map_err(|e| e.to_string())
    })
    .await
    .unwrap()
}

/// The versions offered to `n` devices named `prefix-i`.
async fn offers(config: &Config, prefix: &str, n: usize, version: &str) -> Vec<Option<String>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        out.push(check(config, version, Some(&format!("{prefix}-{i}"))).await.unwrap().map(|u| u.version));
    }
    out
}

async fn download(update: Update) -> Result<Vec<u8>, String> {
    tokio::task::spawn_blocking(move || update.download().map_err(|e| e.to_string())).await.unwrap()
}

#[tokio::test]
async fn a_staged_rollout_reaches_about_its_percentage_and_devices_keep_their_answer() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "tauri-app").await;
    let key = p.key.public_key();
    let cfg = config(&server, "tauri-app", "stable", &key);
    p.publish_for_clients("1.0.0", "stable", 10_000).await;
    let draft = p.publish_for_clients("1.1.0", "stable", 3_000).await;

    let first = offers(&cfg, "dev", 300, "1.0.0").await;
    let offered = first.iter().filter(|o| o.as_deref() == Some("1.1.0")).count();
    assert!((60..=120).contains(&offered), "30% of 300 devices, got {offered}");
    assert!(first.iter().all(|o| o.is_none() || o.as_deref() == Some("1.1.0")));
    assert_eq!(offers(&cfg, "dev", 300, "1.0.0").await, first, "each device keeps its answer");

    // An offered device downloads the file and cargo-packager verifies it with its own code.
    let i = first.iter().position(Option::is_some).unwrap();
    let update = check(&cfg, "1.0.0", Some(&format!("dev-{i}"))).await.unwrap().unwrap();
    assert_eq!(update.body.as_deref(), Some("release 1.1.0"));
    assert_eq!(download(update).await.unwrap(), draft.files[0]);

    // A device on the newest build is told there is nothing (204), never a downgrade.
    assert!(check(&cfg, "1.1.0", Some("dev-0")).await.unwrap().is_none());

    // The figures count these devices like SDK devices: distinct devices offered 1.1.0, and
    // the 300 devices running 1.0.0.
    let (devices, running) = crate::clients::figures(&p.http, "tauri-app", "1.1.0", "1.0.0", offered).await;
    assert!(devices.abs_diff(offered as u64) <= offered as u64 / 10 + 2, "{devices} devices offered, not {offered}");
    assert!(running.abs_diff(300) <= 30, "{running} devices on 1.0.0, not 300");
}

#[tokio::test]
async fn halt_stops_offers_and_rollback_reaches_the_devices_on_the_bad_build() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "tauri-halt").await;
    let cfg = config(&server, "tauri-halt", "stable", &p.key.public_key());
    p.publish_for_clients("1.0.0", "stable", 10_000).await;
    p.publish_for_clients("1.1.0", "stable", 5_000).await;
    assert!(offers(&cfg, "d", 100, "1.0.0").await.iter().any(Option::is_some));

    p.admin.halt(&AppId::parse("tauri-halt").unwrap(), &"1.1.0".parse().unwrap()).await.unwrap();
    assert!(offers(&cfg, "d", 100, "1.0.0").await.iter().all(Option::is_none), "halted: nobody is offered 1.1.0");

    let mut rebuild = p.client_draft("1.1.1", &[]);
    rebuild.spec.rebuild_of = Some("1.0.0".parse().unwrap());
    p.upload(&rebuild).await;
    let request = RollbackRequest {
        bad_version: "1.1.0".parse().unwrap(),
        release: rebuild.spec.clone(),
        leave_uncovered: false,
    };
    p.admin.rollback(&AppId::parse("tauri-halt").unwrap(), &request).await.unwrap();
    let on_bad = offers(&cfg, "bad", 100, "1.1.0").await;
    assert!(on_bad.iter().all(|o| o.as_deref() == Some("1.1.1")), "{on_bad:?}");
    let update = check(&cfg, "1.1.0", Some("bad-1")).await.unwrap().unwrap();
    assert_eq!(download(update).await.unwrap(), rebuild.files[0]);
}

#[tokio::test]
async fn a_tampered_file_or_signature_is_refused_by_the_client() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "tauri-tamper").await;
    let cfg = config(&server, "tauri-tamper", "stable", &p.key.public_key());
    let good = p.publish_for_clients("1.0.0", "stable", 10_000).await;
    let update = check(&cfg, "0.9.0", Some("a")).await.unwrap().unwrap();

    // The stored file changed behind the server's back (a bad disk, a compromised bucket).
    let sha = good.spec.artifacts[0].sha256.to_string();
    let path = server.data_dir().join("artifacts").join(&sha);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[10] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let e = download(update.clone()).await.unwrap_err();
    assert!(e.to_lowercase().contains("signature"), "{e}");

    // A signature for other bytes (another release's) with the genuine file: refused too.
    bytes[10] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let other = p.client_draft("2.0.0", &[]);
    let wrong =
        halftone_channels::Minisign::parse(&other.spec.artifacts[0].clients.as_ref().unwrap().minisign).unwrap();
    let forged = Update { signature: wrong.to_base64(), ..update.clone() };
    let e = download(forged).await.unwrap_err();
    assert!(e.to_lowercase().contains("signature"), "{e}");
    // And the genuine pair still verifies.
    assert_eq!(download(update).await.unwrap(), good.files[0]);

    // A client pinned to another key refuses the genuine build.
    let other_key = crate::harness::signing_key(99).public_key();
    let pinned_elsewhere = config(&server, "tauri-tamper", "stable", &other_key);
    let update = check(&pinned_elsewhere, "0.9.0", Some("a")).await.unwrap().unwrap();
    assert!(download(update).await.is_err());
}

#[tokio::test]
async fn identity_comes_from_the_header_or_from_ip_and_user_agent() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "tauri-id").await;
    p.publish_for_clients("1.0.0", "stable", 10_000).await;
    let http = server.anonymous();
    let path = "/v1/apps/tauri-id/tauri/linux/x86_64/0.9.0";
    let with = http.send("GET", path, None, &[("halftone-device-id", "dev-7")]).await;
    assert_eq!(with.status, 200, "{with:?}");
    assert_eq!(with.headers.get("halftone-device-id").map(String::as_str), Some("dev-7"));
    assert_eq!(with.headers.get("halftone-identity").map(String::as_str), Some("client"));
    assert_eq!(with.body["format"], "appimage");
    assert!(with.body["url"].as_str().unwrap().starts_with("http://127.0.0.1:"), "{:?}", with.body);

    let a = http.send("GET", path, None, &[("user-agent", "notes/0.9.0")]).await;
    let b = http.send("GET", path, None, &[("user-agent", "notes/0.9.0")]).await;
    let c = http.send("GET", path, None, &[("user-agent", "other/1")]).await;
    assert_eq!(a.headers.get("halftone-identity").map(String::as_str), Some("ip-user-agent"));
    let id = |r: &crate::harness::Reply| r.headers.get("halftone-device-id").cloned().unwrap();
    assert!(id(&a).starts_with("net-"));
    assert_eq!(id(&a), id(&b), "one address and agent, one device");
    assert_ne!(id(&a), id(&c));

    // Tauri's own names (darwin, i686) map to Halftone's; bad input is a 400 problem.
    let darwin = http.get("/v1/apps/tauri-id/tauri/darwin/aarch64/0.9.0").await;
    assert_eq!(darwin.status, 204, "no macOS build: nothing to offer");
    http.get("/v1/apps/tauri-id/tauri/linux/x86_64/not-a-version").await.assert_problem(400, "version");
    http.get(&format!("{path}?format=exe")).await.assert_problem(400, "format");
    http.get("/v1/apps/nope/tauri/linux/x86_64/1.0.0").await.assert_problem(404, "nope");
}

#[tokio::test]
async fn a_release_without_client_signatures_is_not_offered_and_bad_ones_are_refused_at_publish() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "tauri-pub").await;
    let cfg = config(&server, "tauri-pub", "stable", &p.key.public_key());
    // Published without them (an older CLI): SDK devices get it, Tauri devices cannot verify it.
    p.publish("1.0.0", "stable", "100%").await;
    assert!(check(&cfg, "0.9.0", Some("a")).await.unwrap().is_none());

    let refused = |mutate: fn(
        &mut halftone_channels::wire::ClientSignaturesSpec,
        &halftone_channels::wire::ClientSignaturesSpec,
    )| {
        let p = &p;
        async move {
            let mut d = p.client_draft("1.1.0", &[]);
            let other = p.client_draft("1.2.0", &[]);
            let other_spec = other.spec.artifacts[0].clients.clone().unwrap();
            mutate(d.spec.artifacts[0].clients.as_mut().unwrap(), &other_spec);
            let body = json!({"release": d.spec, "channel": "stable", "rollout": {"basis_points": 10000}});
            p.upload(&d).await;
            p.http.post("/v1/apps/tauri-pub/releases", &body).await
        }
    };
    refused(|c, o| c.sha512 = o.sha512.clone()).await.assert_problem(422, "sha512");
    refused(|c, o| c.ed_signature = o.ed_signature.clone()).await.assert_problem(422, "Sparkle signature");
    refused(|c, o| c.minisign = o.minisign.clone()).await.assert_problem(422, "trusted comment");
    refused(|c, _| c.key_id = "someone-else".parse().unwrap()).await.assert_problem(422, "does not trust");
    refused(|c, _| c.minisign = "garbage".into()).await.assert_problem(400, "minisign");
    let releases = p.http.get("/v1/apps/tauri-pub/releases").await.ok();
    assert!(!releases.to_string().contains("1.1.0"), "nothing was stored: {releases}");
}

/// Publishes a client release on `server`; returns what a restart must keep.
async fn publish_before_restart(server: &TestServer) -> (Publisher, Draft, ReleaseView) {
    let p = Publisher::create(server, "tauri-restart").await;
    let draft = p.publish_for_clients("1.0.0", "stable", 10_000).await;
    let before = server.admin().get_release(&p.app, &"1.0.0".parse().unwrap()).await.unwrap();
    assert!(before.release.artifacts[0].clients.is_some());
    (p, draft, before)
}

/// The restarted server returns the same client signatures and offers the build with its
/// minisign signature.
async fn check_after_restart(again: &TestServer, p: &Publisher, before: &ReleaseView) -> Update {
    let after = again.admin().get_release(&p.app, &"1.0.0".parse().unwrap()).await.unwrap();
    assert_eq!(after.release.artifacts[0].clients, before.release.artifacts[0].clients);
    let cfg = config(again, "tauri-restart", "stable", &p.key.public_key());
    let update = check(&cfg, "0.9.0", Some("a")).await.unwrap().unwrap();
    let minisign = &before.release.artifacts[0].clients.as_ref().unwrap().minisign;
    assert_eq!(update.signature, halftone_channels::Minisign::parse(minisign).unwrap().to_base64());
    update
}

#[tokio::test]
async fn client_signatures_survive_a_restart_on_sled() {
    let server = TestServer::start();
    let (p, draft, before) = publish_before_restart(&server).await;
    let (dir, token) = server.stop();
    let dir = dir.unwrap();
    let again = TestServer::start_in(dir.path(), Some(token));
    let update = check_after_restart(&again, &p, &before).await;
    assert_eq!(download(update).await.unwrap(), draft.files[0]);
}

#[tokio::test]
async fn client_signatures_survive_a_restart_on_postgres() {
    let pg = halftone_tests::postgres_or_skip!();
    let server = TestServer::start_on_postgres(&pg.url(), None);
    let (p, _, before) = publish_before_restart(&server).await;
    let (_, token) = server.stop();
    // The restarted server has a new data dir (artifacts are not in the database): the
    // record is what is checked here.
    let again = TestServer::start_on_postgres(&pg.url(), Some(token));
    check_after_restart(&again, &p, &before).await;
}

#[tokio::test]
async fn explain_says_when_the_device_id_was_derived_from_ip_and_user_agent() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "tauri-explain").await;
    p.publish_for_clients("1.0.0", "stable", 10_000).await;
    let http = server.anonymous();
    let r = http.send("GET", "/v1/apps/tauri-explain/tauri/linux/x86_64/0.9.0", None, &[("user-agent", "ua")]).await;
    let derived = r.headers.get("halftone-device-id").cloned().unwrap();
    let explain = |id: &str| json!({"device_id": id, "current_version": "0.9.0", "channel": "stable", "os": "linux", "arch": "x86_64"});
    let answer = p.http.post("/v1/apps/tauri-explain/explain", &explain(&derived)).await.ok();
    assert_eq!(answer["offered"], "1.0.0");
    assert!(answer["identity"].as_str().unwrap().starts_with("ip-user-agent"), "{answer}");
    let answer = p.http.post("/v1/apps/tauri-explain/explain", &explain("dev-7")).await.ok();
    assert!(answer.get("identity").is_none(), "{answer}");
}
