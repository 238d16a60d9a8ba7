//! A table of bad inputs: each gets the right 4xx as application/problem+json with a clear
//! detail, and leaves stored data untouched.

use halftone_admin::Written;
use halftone_channels::{SignedFields, Target};
use serde_json::{Value, json};

use crate::harness::*;

/// (client, method, path, body, headers, expected status, expected detail fragment)
type Case<'a> = (&'a Http, &'a str, String, Option<Vec<u8>>, Vec<(&'a str, &'a str)>, u16, &'a str);

async fn state_of(http: &Http) -> Value {
    json!({
        "apps": http.get("/v1/apps").await.body,
        "releases": http.get("/v1/apps/notes/releases").await.body,
        "audit": http.get("/v1/apps/notes/audit").await.body["entries"].as_array().map(Vec::len),
    })
}

#[tokio::test]
async fn bad_inputs_get_problems_and_change_nothing() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    p.publish("1.1.0", "beta", "10%").await;
    let admin = server.raw_admin();
    let device = server.anonymous();
    let before = state_of(&admin).await;
    let admin_id = server.token.split('_').nth(1).unwrap().to_owned();

    let good_check =
        json!({"device_id": "d1", "current_version": "1.0.0", "channel": "stable", "os": "linux", "arch": "x86_64"});
    let with = |k: &str, v: Value| {
        let mut b = good_check.clone();
        b[k] = v;
        b
    };
    let raw = |s: &str| s.as_bytes().to_vec();
    let js = |v: &Value| serde_json::to_vec(v).unwrap();

    // (who, method, path, body, headers, status, detail contains)
    let key_json = json!({"id": "k", "public_key": signing_key(9).public_key().to_string()});
    // Signed by another key, under the publisher's key id.
    let mut forged = p.draft("1.2.0", &[]);
    {
        let a = &forged.spec.artifacts[0];
        let target = Target { os: a.os.clone(), arch: a.arch.clone() };
        let fields = SignedFields {
            app: &p.app,
            version: &forged.spec.version,
            target: &target,
            sha256: &a.sha256,
            size: a.size,
        };
        forged.spec.artifacts[0].signature = signing_key(9).sign(fields);
    }
    p.upload(&forged).await;
    let unknown_key = {
        let mut d = p.draft("1.2.0", &[]);
        d.spec.artifacts[0].key_id = "nobody".parse().unwrap();
        d
    };
    let not_uploaded = p.draft("1.3.0", &["windows/x86_64"]);
    let changed_1_0 = {
        let mut d = p.draft("1.0.0", &[]);
        d.spec.notes = "different notes".into();
        d
    };
    let stepping = {
        let mut d = p.draft("1.4.0", &[]);
        d.spec.min_from_version = Some("1.4.0".parse().unwrap());
        d
    };
    p.upload(&stepping).await;
    let rollback_low = {
        let mut d = p.draft("1.0.5", &[]);
        d.spec.rebuild_of = Some("1.0.0".parse().unwrap());
        d
    };
    p.upload(&rollback_low).await;
    let rollback_no_origin = p.draft("9.0.0", &[]);
    p.upload(&rollback_no_origin).await;
    let publish = |d: &Draft, channel: &str| {
        js(&json!({"release": d.spec, "channel": channel, "rollout": {"basis_points": 100}}))
    };
    let hundred_events: Vec<Value> = (0..101)
        .map(|i| json!({"device_id": format!("d{i}"), "kind": "first_run", "version": "1.0.0", "channel": "stable"}))
        .collect();

    let cases: Vec<Case<'_>> = vec![
        // Device side.
        (&device, "POST", "/v1/apps/notes/check".into(), Some(raw("{")), vec![], 400, "invalid JSON body"),
        (&device, "POST", "/v1/apps/notes/check".into(), None, vec![], 400, "needs a JSON body"),
        (
            &device,
            "POST",
            "/v1/apps/notes/check".into(),
            Some(js(&with("device_id", json!(7)))),
            vec![],
            400,
            "invalid type: integer",
        ),
        (
            &device,
            "POST",
            "/v1/apps/notes/check".into(),
            Some(js(&with("current_version", json!("1.x")))),
            vec![],
            400,
            "invalid version \"1.x\"",
        ),
        (
            &device,
            "POST",
            "/v1/apps/notes/check".into(),
            Some(js(&with("device_id", json!("")))),
            vec![],
            400,
            "invalid device id",
        ),
        (
            &device,
            "POST",
            "/v1/apps/notes/check".into(),
            Some(js(&with("os", json!("Linux")))),
            vec![],
            400,
            "invalid os",
        ),
        (&device, "POST", "/v1/apps/nope/check".into(), Some(js(&good_check)), vec![], 404, "there is no app nope"),
        (
            &device,
            "POST",
            "/v1/apps/notes/check".into(),
            Some(js(&with("arch", json!("amd64")))),
            vec![],
            400,
            "use x86_64",
        ),
        (&device, "POST", "/v1/apps/Notes/check".into(), Some(js(&good_check)), vec![], 400, "invalid app id"),
        (&device, "POST", "/v1/apps/..%2F..%2Fetc/check".into(), Some(js(&good_check)), vec![], 400, "invalid app id"),
        (
            &device,
            "POST",
            "/v1/apps/notes/check".into(),
            Some(vec![b' '; 2 * 1024 * 1024]),
            vec![],
            413,
            "exceeds the limit",
        ),
        (&device, "DELETE", "/v1/apps/notes/check".into(), None, vec![], 405, "not allowed"),
        (&device, "GET", "/v1/nothing/here".into(), None, vec![], 404, "there is no route"),
        (&device, "GET", "/v1/artifacts/..%2F..%2Fdb".into(), None, vec![], 400, "invalid sha256"),
        (&device, "GET", format!("/v1/artifacts/{}", "A".repeat(64)), None, vec![], 400, "lowercase hex"),
        (&device, "GET", format!("/v1/artifacts/{}", "0".repeat(64)), None, vec![], 404, "there is no artifact"),
        (
            &device,
            "POST",
            "/v1/apps/notes/events".into(),
            Some(js(&json!({"events": hundred_events}))),
            vec![],
            400,
            "1 to 100 events",
        ),
        (
            &device,
            "POST",
            "/v1/apps/notes/events".into(),
            Some(js(&json!({"events": [{"kind": "exploded"}]}))),
            vec![],
            400,
            "invalid JSON body",
        ),
        // Apps.
        (
            &admin,
            "PUT",
            "/v1/apps/notes".into(),
            Some(js(&json!({"display_name": "n", "colour": "red"}))),
            vec![],
            400,
            "unknown field `colour`",
        ),
        (
            &admin,
            "PUT",
            "/v1/apps/notes".into(),
            Some(js(&json!({"display_name": "n", "keys": [{"id": "k", "public_key": "zz"}]}))),
            vec![],
            400,
            "invalid public key",
        ),
        (
            &admin,
            "PUT",
            "/v1/apps/notes".into(),
            Some(js(&json!({"display_name": "n", "channels": [{"name": "canary", "rank": 100}]}))),
            vec![],
            422,
            "both have rank 100",
        ),
        (
            &admin,
            "PUT",
            "/v1/apps/notes".into(),
            Some(js(&json!({"display_name": ""}))),
            vec![],
            400,
            "invalid display name",
        ),
        (
            &admin,
            "PUT",
            "/v1/apps/notes".into(),
            Some(js(&json!({"display_name": "n", "keys": [key_json.clone(), key_json.clone()]}))),
            vec![],
            422,
            "listed twice",
        ),
        (
            &admin,
            "POST",
            "/v1/tokens".into(),
            Some(js(&json!({"name": " ", "role": "viewer"}))),
            vec![],
            400,
            "invalid token name",
        ),
        (
            &admin,
            "POST",
            "/v1/tokens".into(),
            Some(js(&json!({"name": "scheduler", "role": "viewer"}))),
            vec![],
            400,
            "reserved",
        ),
        // Artifacts.
        (&admin, "PUT", format!("/v1/artifacts/{}", "0".repeat(64)), Some(raw("some bytes")), vec![], 422, "not 0000"),
        // Publishing.
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases".into(),
            Some(publish(&forged, "beta")),
            vec![],
            422,
            "does not verify",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases".into(),
            Some(publish(&unknown_key, "beta")),
            vec![],
            422,
            "not one of the trusted keys",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases".into(),
            Some(publish(&not_uploaded, "beta")),
            vec![],
            422,
            "is not uploaded",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases".into(),
            Some(publish(&changed_1_0, "stable")),
            vec![],
            409,
            "already exists with different content",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases".into(),
            Some(publish(&stepping, "beta")),
            vec![],
            422,
            "min_from_version 1.4.0 must be lower",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases".into(),
            Some(publish(&rollback_no_origin, "nightly")),
            vec![],
            422,
            "has no channel nightly",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/nope/releases".into(),
            Some(publish(&rollback_no_origin, "beta")),
            vec![],
            404,
            "there is no app nope",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases".into(),
            Some(raw(r#"{"release": {"version": "one"}}"#)),
            vec![],
            400,
            "invalid version",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases".into(),
            Some(raw(
                r#"{"release": {"version": "3.0.0", "artifacts": [{"os": "darwin", "arch": "aarch64", "sha256": "x"}]}}"#,
            )),
            vec![],
            400,
            "use macos",
        ),
        // Rollouts.
        (
            &admin,
            "PATCH",
            "/v1/apps/notes/releases/1.1.0/rollouts/beta".into(),
            Some(js(&json!({"basis_points": 5000}))),
            vec![],
            428,
            "If-Match",
        ),
        (
            &admin,
            "PATCH",
            "/v1/apps/notes/releases/1.1.0/rollouts/beta".into(),
            Some(js(&json!({"basis_points": 5000}))),
            vec![("if-match", "\"r0\"")],
            412,
            "changed since you read it",
        ),
        (
            &admin,
            "PATCH",
            "/v1/apps/notes/releases/1.1.0/rollouts/beta".into(),
            Some(js(&json!({"basis_points": 10001}))),
            vec![("if-match", "\"r1\"")],
            400,
            "0 to 10000",
        ),
        (
            &admin,
            "PATCH",
            "/v1/apps/notes/releases/1.1.0/rollouts/beta".into(),
            Some(js(&json!({"gate": {"compare": {"crashes_proven_from_bp": 20000}}}))),
            vec![("if-match", "\"r1\"")],
            400,
            "0 to 10000",
        ),
        (
            &admin,
            "PATCH",
            "/v1/apps/notes/releases/1.1.0/rollouts/beta".into(),
            Some(js(&json!({"rules": [{"kind": "os_in"}]}))),
            vec![("if-match", "\"r1\"")],
            400,
            "needs \"values\"",
        ),
        (
            &admin,
            "PATCH",
            "/v1/apps/notes/releases/1.1.0/rollouts/stable".into(),
            Some(js(&json!({}))),
            vec![("if-match", "\"r1\"")],
            404,
            "not rolled out on stable",
        ),
        (&admin, "GET", "/v1/apps/notes/releases/7.7.7".into(), None, vec![], 404, "has no release 7.7.7"),
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases/1.0.0/promote".into(),
            Some(js(&json!({"channel": "beta", "rollout": {"basis_points": 1}}))),
            vec![],
            422,
            "more stable channel",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/releases/1.0.0/promote".into(),
            Some(js(&json!({"channel": "stable", "rollout": {"basis_points": 1}}))),
            vec![],
            409,
            "already rolled out on stable",
        ),
        // Rollbacks.
        (
            &admin,
            "POST",
            "/v1/apps/notes/rollback".into(),
            Some(js(&json!({"bad_version": "1.1.0", "release": rollback_low.spec}))),
            vec![],
            422,
            "higher than every version",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/rollback".into(),
            Some(js(&json!({"bad_version": "1.1.0", "release": rollback_no_origin.spec}))),
            vec![],
            422,
            "rebuild_of",
        ),
        (
            &admin,
            "POST",
            "/v1/apps/notes/rollback".into(),
            Some(js(&json!({"bad_version": "5.0.0", "release": rollback_no_origin.spec}))),
            vec![],
            422,
            "rebuild_of",
        ),
        // Explain and tokens.
        (&admin, "POST", "/v1/apps/nope/explain".into(), Some(js(&good_check)), vec![], 404, "there is no app nope"),
        (
            &admin,
            "POST",
            "/v1/tokens".into(),
            Some(js(&json!({"name": "x", "role": "root"}))),
            vec![],
            400,
            "unknown variant `root`",
        ),
        (&admin, "DELETE", "/v1/tokens/doesnotexist".into(), None, vec![], 404, "there is no token"),
        (&admin, "DELETE", format!("/v1/tokens/{admin_id}"), None, vec![], 409, "last admin token"),
    ];
    for (http, method, path, body, headers, status, needle) in cases {
        let r = http.send(method, &path, body, &headers).await;
        assert_eq!(r.status, status, "{method} {path}: {r:?}");
        r.assert_problem(status, needle);
    }
    assert_eq!(state_of(&admin).await, before, "no bad input changed stored data");

    // Publishing the identical release again is an idempotent success.
    let again = p.publish_draft(&p.draft("1.0.0", &[]), "stable", json!({"basis_points": 10000})).await;
    assert!(matches!(again, Ok(Written::Existing(_))), "{again:?}");
    assert_eq!(state_of(&admin).await, before);
}

/// What an admin could slip past the old checks: an array read as an object by position, names
/// that display as something else or as nothing, and inputs of thousands of characters echoed
/// back whole. Each is a 400 problem with a short detail, and changes nothing.
#[tokio::test]
async fn arrays_disguised_names_and_huge_echoes_are_refused() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "25%").await;
    let admin = server.raw_admin();
    let device = server.anonymous();
    let rollout = "/v1/apps/notes/releases/1.0.0/rollouts/stable";
    let etag = admin.get(rollout).await.etag.unwrap();
    let tokens = || async { admin.get("/v1/tokens").await.body };
    let before = (state_of(&admin).await, admin.get(rollout).await.body, tokens().await);

    // Arrays where an object is expected: fields by position are not read.
    admin.patch(rollout, &json!([10_000]), &etag).await.assert_problem(400, "expected a JSON object");
    admin.patch(rollout, &json!([2500]), &etag).await.assert_problem(400, "expected a JSON object");
    let app_by_position = json!(["Notes", [], []]);
    admin.put("/v1/apps/notes", &app_by_position).await.assert_problem(400, "expected a JSON object");
    admin.post("/v1/tokens", &json!(["x", "admin"])).await.assert_problem(400, "expected a JSON object");
    // Nested objects too: a promotion's rollout by position.
    let promote = json!({"channel": "beta", "rollout": [2500]});
    let r = admin.post("/v1/apps/notes/releases/1.0.0/promote", &promote).await;
    r.assert_problem(400, "invalid type: sequence, expected struct");
    let check = json!(["d1", "1.0.0", "stable", "linux", "x86_64"]);
    device.post("/v1/apps/notes/check", &check).await.assert_problem(400, "expected a JSON object");
    device.post("/v1/apps/notes/check", &json!("d1")).await.assert_problem(400, "expected a JSON object");

    // Names with bidirectional controls, or made of nothing visible.
    let key = signing_key(7).spec();
    for (name, needle) in [
        ("admin\u{202E}nimda", "bidirectional control U+202E"),
        ("\u{2066}Notes\u{2069}", "bidirectional control U+2066"),
        ("Notes\u{200F}", "bidirectional control U+200F"),
        ("\u{200B}\u{200C}\u{200D}", "visible character"),
        (" \u{2060}\u{FEFF} ", "visible character"),
    ] {
        let app = json!({"display_name": name, "keys": [key]});
        admin.put("/v1/apps/notes", &app).await.assert_problem(400, needle);
        let token = json!({"name": name, "role": "viewer"});
        let r = admin.post("/v1/tokens", &token).await;
        r.assert_problem(400, needle);
        let detail = r.body["detail"].as_str().unwrap();
        assert!(!detail.contains(['\u{202E}', '\u{2066}', '\u{200F}']), "the detail escapes what it refuses: {detail}");
    }

    // Ten thousand characters in: at most 80 of them come back.
    let huge = "x".repeat(10_000);
    for r in [
        admin.put("/v1/apps/notes", &json!({"display_name": huge, "keys": [key]})).await,
        admin.post("/v1/tokens", &json!({"name": "ci", "role": "viewer", huge.as_str(): 1})).await,
        admin.post("/v1/tokens", &json!({"name": "ci", "role": huge})).await,
        device.post("/v1/apps/notes/check", &json!({"device_id": huge})).await,
    ] {
        assert_eq!(r.status, 400, "{r:?}");
        let detail = r.body["detail"].as_str().unwrap();
        assert!(detail.chars().count() < 400 && detail.contains("x…") && !detail.contains(&"x".repeat(81)), "{detail}");
    }

    assert_eq!((state_of(&admin).await, admin.get(rollout).await.body, tokens().await), before, "nothing changed");
}
