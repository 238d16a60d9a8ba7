//! Whatever the server acknowledged survives `kill -9`: the process gets no chance to flush
//! or shut down, so this holds only if every write is durable before its 2xx answer.

use serde_json::{Value, json};

use crate::support::*;

/// The releases list without `offers`, which counts check-ins since the process started and
/// is meant to reset.
async fn releases(http: &Http) -> Value {
    let mut list = http.get("/v1/apps/notes/releases").await.ok();
    for r in list["releases"].as_array_mut().unwrap() {
        r["offers"] = json!(0);
    }
    list
}

/// What a fleet of beta devices on 1.0.0 is offered.
async fn answers(devices: &Http) -> Vec<Option<(String, bool)>> {
    let mut all = Vec::new();
    for i in 0..60 {
        all.push(devices.check("notes", &format!("beta-{i}"), "1.0.0", "beta").await);
    }
    all
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_again_and_again() {
    survive_kill_9(&[]).await;
}

/// The same on PostgreSQL (`--store postgres://…`): the database commits before the 2xx.
#[tokio::test]
async fn acknowledged_writes_survive_kill_9_on_postgres() {
    let pg = halftone_tests::postgres_or_skip!();
    survive_kill_9(&["--store".to_owned(), pg.url()]).await;
}

async fn survive_kill_9(flags: &[String]) {
    let (_tmp, data) = data_dir();
    let mut server = Server::start_with(&data, true, flags).await;
    let admin_token = server.bootstrap.clone().unwrap();
    let signer = Signer::new("notes", 11);
    let admin = server.http(Some(&admin_token));
    let mut spec = signer.app_spec();
    spec.metrics = serde_json::from_value(json!([{"name": "session_s", "kind": "value", "better": "higher"}])).unwrap();
    server.admin(&admin_token).put_app(&signer.app, &spec).await.unwrap();
    let release = signer.upload(&server.admin(&admin_token), "1.0.0").await;
    let body = json!({"release": release, "channel": "stable", "rollout": {"basis_points": 10000}});
    assert_eq!(admin.post("/v1/apps/notes/releases", &body).await.status, 201);

    // Tokens created so far: (id, secret); all must still work after every crash.
    let mut tokens: Vec<(String, String)> = Vec::new();
    for round in 1..=4 {
        let admin = server.http(Some(&admin_token));
        let version = format!("1.{round}.0");
        let rollout_path = format!("/v1/apps/notes/releases/{version}/rollouts/beta");

        // Writes, each acknowledged: publish on beta at 10%, widen, a viewer token.
        let release = signer.upload(&server.admin(&admin_token), &version).await;
        let body = json!({"release": release, "channel": "beta", "rollout": {"basis_points": 1000}});
        let published = admin.post("/v1/apps/notes/releases", &body).await;
        assert_eq!(published.status, 201, "{published:?}");
        let widened = admin.patch(&rollout_path, &json!({"basis_points": 1500 * round}), "\"r1\"").await;
        assert_eq!((widened.status, widened.etag.as_deref()), (200, Some("\"r2\"")), "{widened:?}");
        let token = admin.post("/v1/tokens", &json!({"name": format!("viewer-{round}"), "role": "viewer"})).await.ok();
        tokens.push((token["id"].as_str().unwrap().to_owned(), token["token"].as_str().unwrap().to_owned()));
        let key = json!({"name": format!("ios-{round}"), "channel": "stable", "os": "ios"});
        assert_eq!(admin.post("/v1/apps/notes/codepush-keys", &key).await.status, 201);

        // What devices and admins see now.
        let devices = server.http(None);
        let fleet_before = answers(&devices).await;
        assert!(fleet_before.iter().any(|a| a.as_ref().is_some_and(|(v, _)| *v == version)), "{fleet_before:?}");
        let mut expected = releases(&admin).await;

        // Install feedback, acknowledged with 202: one more distinct failing device per round.
        let failing = format!("failing-{round}");
        let report = server.http(None).report_token("notes", &failing, "1.0.0", "stable").await;
        // With an app metric in the same report, acknowledged by the same 202: one session of
        // `round` seconds per round.
        let events = json!({"events": [
            {"device_id": failing, "kind": "install_failed", "version": "1.0.0", "channel": "stable", "token": report}
        ], "metrics": [
            {"device_id": failing, "version": "1.0.0", "channel": "stable", "token": report, "values": {"session_s": [round]}}
        ]});
        assert_eq!(server.http(None).post("/v1/apps/notes/events", &events).await.status, 202);

        // The last writes, then SIGKILL the moment the second is acknowledged: another token,
        // and an allow-listed device outside the fleet (it changes the rollout, not the
        // fleet's answers). Their order alternates, so each is the very last write sometimes.
        let vip = format!("vip-{round}");
        let allow_body = json!({"allow": [vip]});
        let token_body = json!({"name": format!("last-{round}"), "role": "viewer"});
        let allow = || admin.patch(&rollout_path, &allow_body, "\"r2\"");
        let token = || admin.post("/v1/tokens", &token_body);
        let (allowed, token) = if round % 2 == 1 {
            let token = token().await;
            (allow().await, token)
        } else {
            let allowed = allow().await;
            (allowed, token().await)
        };
        assert_eq!((allowed.status, allowed.etag.as_deref()), (200, Some("\"r3\"")), "{allowed:?}");
        let token = token.ok();
        tokens.push((token["id"].as_str().unwrap().to_owned(), token["token"].as_str().unwrap().to_owned()));
        let log = server.kill9();
        if round > 1 {
            assert!(!log.contains("bootstrap admin token"), "a data dir with tokens makes no new bootstrap token");
        }

        // Restart on the same data dir: everything acknowledged is there.
        server = Server::start_with(&data, false, flags).await;
        assert_eq!(server.bootstrap, None);
        let admin = server.http(Some(&admin_token));
        for r in expected["releases"].as_array_mut().unwrap() {
            if r["version"] == version.as_str() {
                r["rollouts"][0] = allowed.body.clone();
            }
        }
        // The last write first, for a short message when it is the one lost.
        let rollout = admin.get(&rollout_path).await;
        assert_eq!(rollout.etag.as_deref(), Some("\"r3\""), "round {round}: the revision survives");
        assert_eq!(rollout.body["allow"], json!([vip]));
        assert_eq!(rollout.body["basis_points"], 1500 * round);
        assert_eq!(releases(&admin).await, expected, "round {round}: releases and rollouts as acknowledged");
        let devices = server.http(None);
        assert_eq!(answers(&devices).await, fleet_before, "round {round}: devices are told the same");
        assert_eq!(devices.check("notes", &vip, "1.0.0", "beta").await, Some((version.clone(), false)));
        for (id, secret) in &tokens {
            let as_viewer = server.http(Some(secret));
            assert_eq!(as_viewer.get("/v1/apps/notes").await.status, 200, "round {round}: token {id} still valid");
        }
        let list = admin.get("/v1/tokens").await.ok();
        let ids: Vec<_> = list["tokens"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
        assert!(tokens.iter().all(|(id, _)| ids.contains(&id.as_str())), "{ids:?}");
        let status = admin.get("/v1/apps/notes/status?version=1.0.0").await.ok();
        let failures = &status["releases"][0]["rollouts"][0]["figures"]["install_failures"];
        assert_eq!(*failures, round, "round {round}: every acknowledged event report survives");
        let session = &status["releases"][0]["rollouts"][0]["metrics"][0]["build"];
        let mean = f64::from(round + 1) / 2.0;
        assert_eq!(
            (&session["count"], session["mean"].as_f64()),
            (&json!(round), Some(mean)),
            "round {round}: {status:#}"
        );
        let keys = admin.get("/v1/apps/notes/codepush-keys").await.ok();
        assert_eq!(keys["keys"].as_array().unwrap().len(), round as usize, "round {round}: CodePush keys survive");
        // The audit log has every acknowledged change too: app, 1.0.0, and 4 per round.
        let audit = admin.get("/v1/apps/notes/audit").await.ok();
        assert_eq!(audit["entries"].as_array().unwrap().len(), 2 + 4 * round as usize, "{audit:#}");
    }
    // A revocation is a write too.
    let (id, secret) = tokens.pop().unwrap();
    let revoked = server.http(Some(&admin_token)).send("DELETE", &format!("/v1/tokens/{id}"), None, &[]).await;
    assert_eq!(revoked.status, 204, "{revoked:?}");
    server.kill9();
    let server = Server::start_with(&data, false, flags).await;
    assert_eq!(server.http(Some(&secret)).get("/v1/apps").await.status, 401, "a revoked token stays revoked");
    assert_eq!(server.http(Some(&tokens[0].1)).get("/v1/apps").await.status, 200);
}
