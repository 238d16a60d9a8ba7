//! The PostgreSQL store (`--store postgres://…`) behaves as the embedded one: the release
//! flow, tokens, the audit log and install feedback are committed there and read back by a
//! restarted server; a schema newer than the binary is refused. Skipped, with a SKIPPED line,
//! where PostgreSQL cannot be had (see `halftone_tests::postgres`).

use halftone_channels::AppId;
use halftone_channels::wire::{Role, TokenRequest};
use halftone_tests::postgres_or_skip;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn the_release_flow_is_committed_to_postgres_and_survives_a_restart() {
    let pg = postgres_or_skip!();
    let server = TestServer::start_on_postgres(&pg.url(), None);
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    p.publish("1.1.0", "beta", "10%").await;
    p.patch_rollout("1.1.0", "beta", json!({"basis_points": 2500})).await;
    let halted = server.raw_admin().post("/v1/apps/notes/releases/1.1.0/halt", &json!({})).await;
    assert_eq!(halted.status, 200, "{halted:?}");
    let mut rebuild = p.draft("1.1.1", &[]);
    rebuild.spec.rebuild_of = Some("1.0.0".parse().unwrap());
    p.upload(&rebuild).await;
    let body = json!({"bad_version": "1.1.0", "release": rebuild.spec});
    assert_eq!(server.raw_admin().post("/v1/apps/notes/rollback", &body).await.status, 201);
    let request = TokenRequest { name: "v".parse().unwrap(), role: Role::Viewer, apps: vec![] };
    let viewer = server.admin().create_token(&request).await.unwrap();
    let device = server.anonymous();
    let (t1, t2) = (
        running_token(&device, "notes", &Device::new("d1", "1.0.0", "stable")).await,
        running_token(&device, "notes", &Device::new("d2", "1.0.0", "stable")).await,
    );
    let events = json!({"events": [
        event_with("d1", "install_succeeded", "1.0.0", "stable", Some(&t1)),
        event_with("d2", "install_failed", "1.0.0", "stable", Some(&t2)),
    ]});
    assert_eq!(server.anonymous().post("/v1/apps/notes/events", &events).await.status, 202);

    let fleet = fleet("d", 300, "1.1.0", "beta");
    let answers = check_all(&server.anonymous(), "notes", &fleet).await;
    assert!(answers.iter().all(|a| a == &Some(("1.1.1".to_owned(), true))), "{answers:?}");
    let notes = AppId::parse("notes").unwrap();
    let admin = server.admin();
    let (releases, audit, tokens) =
        (admin.list_releases(&notes).await.unwrap(), admin.audit(&notes).await.unwrap(), admin.server_audit().await);
    let status = server.raw_admin().get("/v1/apps/notes/status?version=1.0.0").await.ok();
    let (_, token) = server.stop();

    // A new server on the same database (its data dir is new: nothing comes from disk).
    let again = TestServer::start_on_postgres(&pg.url(), Some(token));
    assert_eq!(check_all(&again.anonymous(), "notes", &fleet).await, answers, "same answers after restart");
    let admin = again.admin();
    let mut after = admin.list_releases(&notes).await.unwrap();
    let mut before = releases;
    for list in [&mut before, &mut after] {
        for r in &mut list.releases {
            r.offers = 0; // in-memory statistics
        }
    }
    assert_eq!(after, before);
    assert_eq!(admin.audit(&notes).await.unwrap(), audit, "the audit log is in the database");
    assert_eq!(admin.server_audit().await.unwrap(), tokens.unwrap());
    let figures = |s: &serde_json::Value| s["releases"][0]["rollouts"][0]["figures"].clone();
    let status_again = again.raw_admin().get("/v1/apps/notes/status?version=1.0.0").await.ok();
    assert_eq!(figures(&status_again), figures(&status), "install feedback is in the database");
    assert_eq!(figures(&status)["install_failures"], 1, "{status}");
    let rollout = again.raw_admin().get("/v1/apps/notes/releases/1.1.0/rollouts/beta").await;
    assert_eq!(rollout.etag.as_deref(), Some("\"r3\""), "revisions survive");
    assert_eq!(again.raw_admin().with_token(&viewer.token).get("/v1/apps").await.status, 200, "tokens survive");
    // The first start made the bootstrap token; the second made none.
    assert_eq!(
        again.admin().server_audit().await.unwrap().entries.iter().filter(|e| e.actor == "bootstrap").count(),
        1
    );
}

#[tokio::test]
async fn a_database_with_a_newer_schema_is_refused() {
    let pg = postgres_or_skip!();
    let server = TestServer::start_on_postgres(&pg.url(), None);
    drop(server);
    let (client, connection) = tokio_postgres::connect(&pg.url(), tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.execute("INSERT INTO halftone_schema (version) VALUES (999)", &[]).await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let mut config = halftone_server::Config::for_tests(dir.path());
    config.store = halftone_server::StoreLocation::Postgres(pg.url());
    let e = halftone_server::build(config).await.err().expect("a newer schema is refused");
    let e = format!("{e:#}");
    assert!(e.contains("schema is at version 999") && e.contains("newer than this binary"), "{e}");
}

#[tokio::test]
async fn while_the_database_is_down_for_10_s_check_ins_are_answered_and_writes_get_503_then_all_recovers() {
    let mut pg = postgres_or_skip!();
    let server = TestServer::start_on_postgres(&pg.url(), None);
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    let fleet = fleet("d", 200, "0.9.0", "stable");
    let before = check_all(&server.anonymous(), "notes", &fleet).await;
    assert_eq!(count(&before, "1.0.0"), 200);

    pg.stop().unwrap();
    // Check-ins never touch the database: for the 10 s it is down, every check-in is answered
    // (`check` asserts a 200), with the same answer as before.
    let down = std::time::Instant::now();
    let mut answered = 0;
    while down.elapsed() < std::time::Duration::from_secs(10) {
        assert_eq!(check_all(&server.anonymous(), "notes", &fleet).await, before);
        answered += fleet.len();
    }
    assert!(answered >= fleet.len());
    // Writes are refused as retryable, with nothing changed.
    let patch = server
        .raw_admin()
        .send(
            "PATCH",
            "/v1/apps/notes/releases/1.0.0/rollouts/stable",
            Some(br#"{"basis_points": 5000}"#.to_vec()),
            &[("content-type", "application/json"), ("if-match", "\"r1\"")],
        )
        .await;
    assert_eq!(patch.status, 503, "{patch:?}");
    assert_eq!(patch.retry_after.as_deref(), Some("5"));
    patch.assert_problem(503, "database is unavailable");
    let t1 = running_token(&server.anonymous(), "notes", &Device::new("d1", "1.0.0", "stable")).await;
    let events = json!({"events": [event_with("d1", "install_succeeded", "1.0.0", "stable", Some(&t1))]});
    let reported = server.anonymous().post("/v1/apps/notes/events", &events).await;
    assert_eq!((reported.status, reported.retry_after.as_deref()), (503, Some("5")), "{reported:?}");
    assert_eq!(server.anonymous().get("/readyz").await.status, 503);
    let rollout = server.raw_admin().get("/v1/apps/notes/releases/1.0.0/rollouts/stable").await;
    assert_eq!(rollout.etag.as_deref(), Some("\"r1\""), "the refused change changed nothing");

    // The database comes back: everything works again, without a restart.
    pg.start_again().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while server.anonymous().get("/readyz").await.status != 200 {
        assert!(std::time::Instant::now() < deadline, "the server did not become ready again");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let view = p.patch_rollout("1.0.0", "stable", json!({"basis_points": 5000})).await;
    assert_eq!(view.etag, "\"r2\"");
    assert_eq!(server.anonymous().post("/v1/apps/notes/events", &events).await.status, 202);
}
