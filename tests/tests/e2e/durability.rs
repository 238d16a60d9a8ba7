//! What was acknowledged survives a restart (the `kill -9` case, which needs the binary as a
//! separate process, is in `server/tests/binary/kill9.rs`).

use halftone_channels::AppId;
use halftone_channels::wire::{Role, TokenRequest};
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn acknowledged_changes_survive_a_graceful_restart() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    p.publish("1.1.0", "beta", "10%").await;
    p.patch_rollout("1.1.0", "beta", json!({"basis_points": 2500})).await;
    let request = TokenRequest { name: "v".parse().unwrap(), role: Role::Viewer, apps: vec![] };
    let viewer = server.admin().create_token(&request).await.unwrap();
    let fleet = fleet("d", 500, "1.0.0", "beta");
    let answers = check_all(&server.anonymous(), "notes", &fleet).await;
    let notes = AppId::parse("notes").unwrap();
    let releases = server.admin().list_releases(&notes).await.unwrap();

    let (dir, token) = server.stop();
    let dir = dir.unwrap();
    let again = TestServer::start_in(dir.path(), Some(token));
    assert_eq!(check_all(&again.anonymous(), "notes", &fleet).await, answers, "same answers after restart");
    let mut after = again.admin().list_releases(&notes).await.unwrap();
    let mut before = releases;
    // Offer counters are in-memory statistics; everything else must match exactly.
    for list in [&mut before, &mut after] {
        for r in &mut list.releases {
            r.offers = 0;
        }
    }
    assert_eq!(after, before);
    let rollout = again.raw_admin().get("/v1/apps/notes/releases/1.1.0/rollouts/beta").await;
    assert_eq!(rollout.etag.as_deref(), Some("\"r2\""), "revisions survive");
    let v = again.raw_admin().with_token(&viewer.token);
    assert_eq!(v.get("/v1/apps").await.status, 200, "tokens survive");
}
