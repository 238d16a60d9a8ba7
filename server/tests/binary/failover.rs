//! Replicas as separate processes on one PostgreSQL database: `kill -9` of the replica holding
//! the scheduler's lease in the middle of a staged rollout. Another replica takes the lease,
//! the schedule continues, and no step is taken twice or skipped.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

const LEASE_LINE: &str = "this replica holds the scheduler lease";

#[tokio::test]
async fn the_schedule_continues_on_another_replica_when_the_lease_holder_is_killed() {
    let pg = halftone_tests::postgres_or_skip!();
    let store = ["--store".to_owned(), pg.url()];
    let ((_a_tmp, a_dir), (_b_tmp, b_dir)) = (data_dir(), data_dir());
    let a = Server::start_with(&a_dir, true, &store).await;
    let token = a.bootstrap.clone().unwrap();
    let b = Server::start_with(&b_dir, false, &store).await;

    let signer = Signer::new("notes", 13);
    let admin = a.admin(&token);
    admin.put_app(&signer.app, &signer.app_spec()).await.unwrap();
    let release = signer.upload(&admin, "1.0.0").await;
    let schedule = json!({"steps": [
        {"basis_points": 100, "hold_s": 2}, {"basis_points": 500, "hold_s": 2},
        {"basis_points": 2500, "hold_s": 2}, {"basis_points": 10000}
    ]});
    let body = json!({"release": release, "channel": "stable", "rollout": {"basis_points": 100, "schedule": schedule}});
    assert_eq!(a.http(Some(&token)).post("/v1/apps/notes/releases", &body).await.status, 201);

    // Whoever holds the lease: wait for the first step to be taken, then kill it.
    let path = "/v1/apps/notes/releases/1.0.0/rollouts/stable";
    let percent = |server: &Server| {
        let http = server.http(Some(&token));
        async move { http.get(path).await.body["basis_points"].as_u64().unwrap_or(0) }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while percent(&a).await < 500 {
        assert!(Instant::now() < deadline, "the first step was not taken");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (holder, survivor) = if a.stderr_text().contains(LEASE_LINE) { (a, b) } else { (b, a) };
    holder.kill9();

    let deadline = Instant::now() + Duration::from_secs(30);
    while percent(&survivor).await < 10000 {
        assert!(Instant::now() < deadline, "the schedule did not continue on the surviving replica");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(survivor.stderr_text().contains(LEASE_LINE), "the survivor took the lease");
    let audit = survivor.http(Some(&token)).get("/v1/apps/notes/audit").await.ok();
    let steps: Vec<_> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "schedule.advance")
        .map(|e| e["after"]["basis_points"].clone())
        .collect();
    assert_eq!(steps, [json!(500), json!(2500), json!(10000)], "every step once, none skipped");
}
