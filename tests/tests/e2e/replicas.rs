//! Several replicas on one PostgreSQL database: one truth. A change through one is served by
//! the others; concurrent changes to one rollout through two replicas never interleave; the
//! scheduler takes each step once however many replicas run it.

use std::time::{Duration, Instant};

use halftone_channels::AppId;
use halftone_tests::postgres_or_skip;
use serde_json::json;

use crate::harness::*;

/// Polls `check` until it holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !check().await {
        assert!(Instant::now() < deadline, "{what} did not happen within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn three_replicas_serve_one_truth() {
    let pg = postgres_or_skip!();
    let a = TestServer::start_on_postgres(&pg.url(), None);
    let b = TestServer::start_on_postgres(&pg.url(), Some(a.token.clone()));
    let c = TestServer::start_on_postgres(&pg.url(), Some(a.token.clone()));

    // Publish through A (artifacts live in A's directory here: object storage is what shares
    // them between replicas), widen through B, and every replica answers alike.
    let p = Publisher::create(&a, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    p.publish("1.1.0", "stable", "10%").await;
    let devices = fleet("d", 10_000, "1.0.0", "stable");
    let notes = AppId::parse("notes").unwrap();
    for replica in [&b, &c] {
        let admin = replica.admin();
        // Until it loads the app, a replica answers 404.
        eventually(Duration::from_secs(5), "B and C see 1.1.0", || async {
            admin.list_releases(&notes).await.is_ok_and(|l| l.releases.len() == 2)
        })
        .await;
    }
    let etag = b.raw_admin().get("/v1/apps/notes/releases/1.1.0/rollouts/stable").await.etag.unwrap();
    let widened = b
        .raw_admin()
        .patch("/v1/apps/notes/releases/1.1.0/rollouts/stable", &json!({"basis_points": 5000}), &etag)
        .await;
    assert_eq!(widened.status, 200, "{widened:?}");
    for replica in [&a, &c] {
        let admin = replica.admin();
        eventually(Duration::from_secs(5), "the widening reaches every replica", || async {
            admin.list_releases(&notes).await.unwrap().releases[0].rollouts[0].rollout.basis_points.basis_points()
                == 5000
        })
        .await;
    }
    let answers_a = check_all(&a.anonymous(), "notes", &devices).await;
    let answers_b = check_all(&b.anonymous(), "notes", &devices).await;
    let answers_c = check_all(&c.anonymous(), "notes", &devices).await;
    let offered = count(&answers_a, "1.1.0");
    assert!((4_700..=5_300).contains(&offered), "{offered} of 10,000 at 50%");
    assert!(answers_a == answers_b && answers_b == answers_c, "10,000 devices get identical answers from all three");
    for replica in [&a, &b, &c] {
        assert_eq!(replica.anonymous().get("/readyz").await.status, 200);
    }
}

#[tokio::test]
async fn two_engineers_patching_one_rollout_through_two_replicas_never_both_win() {
    let pg = postgres_or_skip!();
    let a = TestServer::start_on_postgres(&pg.url(), None);
    let b = TestServer::start_on_postgres(&pg.url(), Some(a.token.clone()));
    let p = Publisher::create(&a, "notes").await;
    p.publish("1.0.0", "stable", "1%").await;
    let path = "/v1/apps/notes/releases/1.0.0/rollouts/stable";
    let on_b = b.raw_admin();
    eventually(Duration::from_secs(5), "B has loaded the app", || async { on_b.get(path).await.status == 200 }).await;
    for round in 0..10u16 {
        let etag = a.raw_admin().get(path).await.etag.unwrap();
        // Neither is the current value (1% = 100), so both are real changes.
        let (bp_a, bp_b) = (200 + round * 2, 201 + round * 2);
        let (http_a, http_b) = (a.raw_admin(), b.raw_admin());
        let (body_a, body_b) = (json!({ "basis_points": bp_a }), json!({ "basis_points": bp_b }));
        let (ra, rb) = tokio::join!(http_a.patch(path, &body_a, &etag), http_b.patch(path, &body_b, &etag));
        let mut statuses = [ra.status, rb.status];
        statuses.sort();
        assert_eq!(statuses, [200, 412], "round {round}: one wins, the other is told its read is stale");
        let winner = if ra.status == 200 { bp_a } else { bp_b };
        // Whatever replica is asked afterwards, the winner's value is what is stored.
        for replica in [&a, &b] {
            let http = replica.raw_admin();
            eventually(Duration::from_secs(5), "both replicas show the winner", || async {
                http.get(path).await.body["basis_points"] == winner
            })
            .await;
        }
    }
    let audit = a.admin().audit(&AppId::parse("notes").unwrap()).await.unwrap();
    assert_eq!(audit.entries.iter().filter(|e| e.action == "rollout.update").count(), 10, "one change per round");
}

#[tokio::test]
async fn two_schedulers_take_each_step_once() {
    let pg = postgres_or_skip!();
    let tick = Some(Duration::from_millis(50));
    let a = TestServer::replica(&pg.url(), None, tick);
    let b = TestServer::replica(&pg.url(), Some(a.token.clone()), tick);
    let p = Publisher::create(&a, "notes").await;
    let schedule = json!({"steps": [
        {"basis_points": 100, "hold_s": 1}, {"basis_points": 500, "hold_s": 1}, {"basis_points": 10000}
    ]});
    let draft = p.draft("1.0.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 100, "schedule": schedule})).await.unwrap();
    let http = b.raw_admin();
    eventually(Duration::from_secs(15), "the schedule reaches 100%", || async {
        http.get("/v1/apps/notes/releases/1.0.0/rollouts/stable").await.body["basis_points"] == 10000
    })
    .await;
    let audit = a.admin().audit(&AppId::parse("notes").unwrap()).await.unwrap();
    let steps: Vec<_> = audit
        .entries
        .iter()
        .filter(|e| e.action == "schedule.advance")
        .map(|e| e.after.as_ref().unwrap()["basis_points"].clone())
        .collect();
    assert_eq!(steps, [json!(500), json!(10000)], "each step once, in order");
}

#[tokio::test]
async fn install_feedback_is_counted_fleet_wide() {
    let pg = postgres_or_skip!();
    let a = TestServer::start_on_postgres(&pg.url(), None);
    let b = TestServer::start_on_postgres(&pg.url(), Some(a.token.clone()));
    let p = Publisher::create(&a, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    // Tokens made by A count on B too: the report key is shared (a secret in the store).
    let mut tokens = std::collections::HashMap::new();
    for d in ["d1", "d2", "d3"] {
        tokens.insert(d, running_token(&a.anonymous(), "notes", &Device::new(d, "1.0.0", "stable")).await);
    }
    let event = |device: &str, kind: &str| event_with(device, kind, "1.0.0", "stable", Some(&tokens[device]));
    // Device d1 reports to A, d2 and d1 again to B: two distinct devices failed, fleet-wide.
    let to_a = json!({"events": [event("d1", "install_failed"), event("d3", "install_succeeded")]});
    let to_b = json!({"events": [event("d2", "install_failed"), event("d1", "install_failed")]});
    assert_eq!(a.anonymous().post("/v1/apps/notes/events", &to_a).await.status, 202);
    assert_eq!(b.anonymous().post("/v1/apps/notes/events", &to_b).await.status, 202);
    // Check-ins through both replicas are offers of 1.0.0: they add up.
    let devices = fleet("d", 40, "0.9.0", "stable");
    check_all(&a.anonymous(), "notes", &devices[..25]).await;
    check_all(&b.anonymous(), "notes", &devices[25..]).await;
    // Check-in figures are stored every 30 s, or when a replica stops: B stops, and A, which
    // keeps its own in memory, sees both; event figures are stored before their 202, so every
    // replica sees them at once.
    let (_, token) = b.stop();
    let b = TestServer::start_on_postgres(&pg.url(), Some(token));
    for (replica, offers) in [(&a, 40), (&b, 15)] {
        let http = replica.raw_admin();
        eventually(Duration::from_secs(10), "every replica sees the fleet's figures", || async {
            let status = http.get("/v1/apps/notes/status").await.body;
            let figures = &status["releases"][0]["rollouts"][0]["figures"];
            figures["install_failures"] == 2 && figures["installs"] == 1 && figures["offers"] == offers
        })
        .await;
    }
}

#[tokio::test]
async fn publish_through_one_replica_and_download_through_another() {
    let pg = postgres_or_skip!();
    let test = "replicas::publish_through_one_replica_and_download_through_another";
    let Some(s3) = S3Server::get(test) else { return };
    let bucket = s3.bucket("replicas").await;
    let a = TestServer::replica_with_bucket(&pg.url(), None, None, Some(bucket.clone()));
    let b = TestServer::replica_with_bucket(&pg.url(), Some(a.token.clone()), None, Some(bucket));
    let p = Publisher::create(&a, "notes").await;
    let draft = p.draft("1.0.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();
    let (bytes, sha) = (&draft.files[0], draft.spec.artifacts[0].sha256);

    // B offers the build it learned of from the database, and serves its bytes from the bucket.
    let device = Device::new("d1", "0.9.0", "stable");
    let on_b = b.anonymous();
    eventually(Duration::from_secs(5), "B offers 1.0.0", || async {
        // B may not have loaded the app yet (a 404) under a slow machine.
        try_check(&on_b, "notes", &device).await.is_some_and(|a| a.update.is_some())
    })
    .await;
    let response = reqwest::get(b.url(&format!("/v1/artifacts/{sha}"))).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(&response.bytes().await.unwrap()[..], &bytes[..], "downloaded through B, uploaded through A");
}
