//! Every admin route refuses a missing token, a revoked token and a token of the wrong role.

use halftone_channels::wire::{Role, TokenRequest};
use serde_json::json;

use crate::harness::*;

/// (method, path, body) for every admin route.
fn admin_routes() -> Vec<(&'static str, String, Option<serde_json::Value>)> {
    let sha = "a".repeat(64);
    vec![
        ("GET", "/v1/apps".into(), None),
        ("PUT", "/v1/apps/notes".into(), Some(json!({"display_name": "x"}))),
        ("GET", "/v1/apps/notes".into(), None),
        ("PUT", format!("/v1/artifacts/{sha}"), Some(json!("bytes"))),
        ("POST", "/v1/apps/notes/releases".into(), Some(json!({}))),
        ("GET", "/v1/apps/notes/releases".into(), None),
        ("GET", "/v1/apps/notes/releases/1.0.0".into(), None),
        ("GET", "/v1/apps/notes/releases/1.0.0/rollouts/stable".into(), None),
        ("PATCH", "/v1/apps/notes/releases/1.0.0/rollouts/stable".into(), Some(json!({}))),
        ("POST", "/v1/apps/notes/releases/1.0.0/promote".into(), Some(json!({}))),
        ("POST", "/v1/apps/notes/releases/1.0.0/halt".into(), None),
        ("POST", "/v1/apps/notes/rollback".into(), Some(json!({}))),
        ("GET", "/v1/apps/notes/audit".into(), None),
        ("POST", "/v1/apps/notes/explain".into(), Some(json!({}))),
        ("POST", "/v1/tokens".into(), Some(json!({"name": "x", "role": "admin"}))),
        ("GET", "/v1/tokens".into(), None),
        ("DELETE", "/v1/tokens/0000".into(), None),
        ("GET", "/v1/audit".into(), None),
        ("GET", "/v1/whoami".into(), None),
    ]
}

/// Changes, everything about tokens, and the server-wide audit log need more than a viewer.
fn is_write(method: &str, path: &str) -> bool {
    (method != "GET" && !path.ends_with("/explain")) || path.starts_with("/v1/tokens") || path == "/v1/audit"
}

#[tokio::test]
async fn admin_routes_need_a_valid_token_of_the_right_role() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    let admin = server.raw_admin();
    let token = |role: &str, apps: serde_json::Value| {
        let admin = admin.clone();
        let body = json!({"name": format!("{role}-token"), "role": role, "apps": apps});
        async move { admin.post("/v1/tokens", &body).await.ok() }
    };
    let viewer = token("viewer", json!([])).await;
    let publisher_other = token("publisher", json!(["other"])).await;
    let revoked = token("admin", json!([])).await;
    let r = admin.send("DELETE", &format!("/v1/tokens/{}", revoked["id"].as_str().unwrap()), None, &[]).await;
    assert_eq!(r.status, 204);
    let before = admin.get("/v1/apps/notes/releases").await.ok();

    let anonymous = server.anonymous();
    let revoked_http = admin.with_token(revoked["token"].as_str().unwrap());
    let viewer_http = admin.with_token(viewer["token"].as_str().unwrap());
    let other_http = admin.with_token(publisher_other["token"].as_str().unwrap());
    let garbage = admin.with_token("htk_nothing_here");
    for (method, path, body) in admin_routes() {
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        for (who, http) in [("no token", &anonymous), ("revoked", &revoked_http), ("garbage", &garbage)] {
            let r = http.send(method, &path, body.clone(), &[]).await;
            assert_eq!(r.status, 401, "{who} {method} {path}: {r:?}");
            assert_eq!(r.content_type, "application/problem+json");
        }
        if is_write(method, &path) {
            let r = viewer_http.send(method, &path, body.clone(), &[("if-match", "\"r1\"")]).await;
            assert_eq!(r.status, 403, "viewer {method} {path}: {r:?}");
            // Publishers may upload artifacts (they are not tied to an app).
            if !path.starts_with("/v1/artifacts") {
                let r = other_http.send(method, &path, body.clone(), &[("if-match", "\"r1\"")]).await;
                assert_eq!(r.status, 403, "publisher of another app {method} {path}: {r:?}");
            }
        } else {
            let r = viewer_http.send(method, &path, body.clone(), &[]).await;
            assert_ne!(r.status, 401, "viewer may read {method} {path}");
            assert_ne!(r.status, 403, "viewer may read {method} {path}");
        }
    }
    assert_eq!(admin.get("/v1/apps/notes/releases").await.ok(), before, "refused calls changed nothing");
    // Every token may ask who it is; the answer is its own view, without the secret.
    let me = viewer_http.get("/v1/whoami").await.ok();
    assert_eq!((me["name"].as_str(), me["role"].as_str()), (Some("viewer-token"), Some("viewer")), "{me}");
    assert_eq!(me["id"], viewer["id"]);
    assert!(!me.to_string().contains(viewer["token"].as_str().unwrap()));
    // Tokens are listed without their secrets.
    let listed = admin.get("/v1/tokens").await.ok().to_string();
    assert!(!listed.contains(viewer["token"].as_str().unwrap()));
}

#[tokio::test]
async fn token_creation_and_revocation_enter_the_server_audit_log_without_secrets() {
    let server = TestServer::start();
    let admin = server.admin();
    let request =
        TokenRequest { name: "ci".parse().unwrap(), role: Role::Publisher, apps: vec!["notes".parse().unwrap()] };
    let created = admin.create_token(&request).await.unwrap();
    admin.revoke_token(&created.view.id).await.unwrap();

    let log = admin.server_audit().await.unwrap();
    let id = created.view.id.as_str();
    let summary: Vec<(&str, &str, &str)> =
        log.entries.iter().map(|e| (e.actor.as_str(), e.action.as_str(), e.subject.as_str())).collect();
    let bootstrap_id = summary[0].2;
    assert_eq!(
        summary,
        [
            ("bootstrap", "token.create", bootstrap_id),
            ("bootstrap-admin", "token.create", id),
            ("bootstrap-admin", "token.revoke", id)
        ]
    );
    let view = serde_json::to_value(&created.view).unwrap();
    assert_eq!(log.entries[1].after.as_ref(), Some(&view));
    assert_eq!(log.entries[2].before.as_ref(), Some(&view));
    assert!(log.entries.iter().all(|e| e.app.is_none()), "server-wide entries name no app");
    let text = serde_json::to_string(&log).unwrap();
    assert!(!text.contains(&created.token), "no secret in the log");
    // An app's log does not show them.
    Publisher::create(&server, "notes").await;
    let app_log = admin.audit(&"notes".parse().unwrap()).await.unwrap();
    assert!(app_log.entries.iter().all(|e| !e.action.starts_with("token.")));
}
