//! The dashboard's read-only routes: adoption over time (`GET /v1/apps/{app}/adoption`).

use std::sync::Arc;

use halftone_channels::wire::TokenRequest;
use halftone_server::clock::ManualClock;
use serde_json::json;

use crate::harness::{Device, Publisher, TestServer, check, check_all, fleet};

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
    let viewer = server
        .admin()
        .create_token(&serde_json::from_value::<TokenRequest>(json!({"name": "watcher", "role": "viewer"})).unwrap())
        .await
        .unwrap();
    assert_eq!(admin.with_token(&viewer.token).get("/v1/apps/notes/adoption").await.status, 200);
}
