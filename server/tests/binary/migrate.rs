//! `halftone migrate`: a data dir made by `halftone serve` on the embedded store moves into
//! PostgreSQL, and a server on the copy answers exactly as the original did.

use serde_json::{Value, json};

use crate::support::*;

/// The releases list without `offers` (in-memory statistics that restart at zero).
async fn releases(http: &Http) -> Value {
    let mut list = http.get("/v1/apps/notes/releases").await.ok();
    for r in list["releases"].as_array_mut().unwrap() {
        r["offers"] = json!(0);
    }
    list
}

#[tokio::test]
async fn a_data_dir_moves_into_postgres_and_serves_the_same() {
    let pg = halftone_tests::postgres_or_skip!();
    let (_tmp, data) = data_dir();
    let server = Server::start(&data, true).await;
    let token = server.bootstrap.clone().unwrap();
    let signer = Signer::new("notes", 12);
    let admin_client = server.admin(&token);
    admin_client.put_app(&signer.app, &signer.app_spec()).await.unwrap();
    let admin = server.http(Some(&token));
    for (version, channel, bp) in [("1.0.0", "stable", 10000), ("1.1.0", "beta", 2500)] {
        let release = signer.upload(&admin_client, version).await;
        let body = json!({"release": release, "channel": channel, "rollout": {"basis_points": bp}});
        assert_eq!(admin.post("/v1/apps/notes/releases", &body).await.status, 201);
    }
    let viewer = admin.post("/v1/tokens", &json!({"name": "viewer", "role": "viewer"})).await.ok();
    let report = server.http(None).report_token("notes", "d1", "1.0.0", "stable").await;
    let events = json!({"events": [
        {"device_id": "d1", "kind": "install_failed", "version": "1.0.0", "channel": "stable", "token": report}
    ]});
    assert_eq!(server.http(None).post("/v1/apps/notes/events", &events).await.status, 202);
    let devices = server.http(None);
    let mut answers = Vec::new();
    for i in 0..50 {
        answers.push(devices.check("notes", &format!("d{i}"), "1.0.0", "beta").await);
    }
    let (before, audit) = (releases(&admin).await, admin.get("/v1/apps/notes/audit").await.ok());
    let artifact = before["releases"][0]["artifacts"][0]["sha256"].as_str().unwrap().to_owned();
    drop(server); // SIGKILL: the copy needs no graceful stop

    let out = offline(&["migrate", "--from", data.to_str().unwrap(), "--to", &pg.url()]).success();
    assert!(out.stdout.contains("copied and verified: 1 apps, 2 releases, 2 rollouts, 2 tokens"), "{}", out.stdout);
    // A second copy into the same database is refused: a migration never merges.
    let again = offline(&["migrate", "--from", data.to_str().unwrap(), "--to", &pg.url()]).failure();
    assert!(again.contains("already holds apps or tokens"), "{again}");

    // A server on the copy (the data dir now only lends it the artifact files).
    let server = Server::start_with(&data, false, &["--store".to_owned(), pg.url()]).await;
    assert_eq!(server.bootstrap, None, "the bootstrap token was copied too");
    let admin = server.http(Some(&token));
    assert_eq!(releases(&admin).await, before);
    assert_eq!(admin.get("/v1/apps/notes/audit").await.ok(), audit);
    let devices = server.http(None);
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(&devices.check("notes", &format!("d{i}"), "1.0.0", "beta").await, answer);
    }
    assert_eq!(server.http(Some(viewer["token"].as_str().unwrap())).get("/v1/apps").await.status, 200);
    let status = admin.get("/v1/apps/notes/status?version=1.0.0").await.ok();
    assert_eq!(status["releases"][0]["rollouts"][0]["figures"]["install_failures"], 1, "{status}");
    assert_eq!(devices.bytes(&format!("/v1/artifacts/{artifact}")).await.0, 200);
}
