//! Release key rotation and k-of-n signatures, through the real server and the real SDK:
//! rotating from key A to key B moves the device's trust to B (a build signed by A is refused
//! afterwards, one signed by B accepted); key documents that do not chain (a gap, too few
//! signatures, a lower version) are refused by the server at upload and, served by an
//! attacking proxy, by the SDK with a typed error that leaves its trust unchanged, after which
//! an honest update still works; with a threshold of 2, one signature (or one key twice) is
//! refused by server and SDK, two distinct keys accepted.

use std::path::Path;
use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use halftone_admin::ReleaseKey;
use halftone_channels::wire::{AppSpec, KeyDocumentSpec};
use halftone_channels::{
    AppId, KeyChainError, KeyDocument, SignatureError, SignedFields, Signers, Target, Threshold, TrustedKeys,
};
use halftone_client::{CheckOutcome, Client, ClientBuilder, Error, Refusal, Update};
use serde_json::{Value, json};

use crate::harness::*;

/// Key document `version` of `app` trusting `keys` with `threshold`, signed by `signers`.
fn document(
    app: &AppId,
    version: u64,
    threshold: u64,
    keys: &[&ReleaseKey],
    signers: &[&ReleaseKey],
) -> KeyDocumentSpec {
    let trusted = TrustedKeys::new(keys.iter().map(|k| (k.id().clone(), k.public_key()))).unwrap();
    let d = KeyDocument::new(app.clone(), version, Threshold::new(threshold).unwrap(), trusted).unwrap();
    ReleaseKey::signed_key_document(&d, signers)
}

/// A client of `app` (through `base`) running 1.0.0 on linux/x86_64, compiling in `keys`.
fn device(base: &str, app: &AppId, state: &Path, keys: &[&ReleaseKey]) -> ClientBuilder {
    let mut b =
        Client::builder().server(base).app(app.as_str()).version("1.0.0").platform("linux", "x86_64").state_dir(state);
    for k in keys {
        b = b.trusted_key(k.id().as_str(), &k.public_key().to_string());
    }
    b
}

/// Publishes `version` for linux/x86_64 on stable at 100%, signed by each of `signers`.
async fn publish_signed_by(
    p: &Publisher,
    version: &str,
    signers: &[&ReleaseKey],
) -> Result<(), halftone_admin::AdminError> {
    let mut draft = p.draft(version, &[]);
    let bytes = &draft.files[0];
    let target = Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
    let fields = SignedFields {
        app: &p.app,
        version: &draft.spec.version,
        target: &target,
        sha256: &draft.spec.artifacts[0].sha256,
        size: bytes.len() as u64,
    };
    draft.spec.artifacts[0] = ReleaseKey::sign_artifact_by(signers, fields).unwrap();
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.map(|_| ())
}

#[track_caller]
fn available(outcome: Result<CheckOutcome, Error>) -> Update {
    match outcome {
        Ok(CheckOutcome::Available(u)) => u,
        other => panic!("expected an update, got {other:?}"),
    }
}

#[tokio::test]
async fn rotating_from_a_to_b_moves_the_devices_trust_to_b() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "rotate-a-b").await;
    let (a, b) = (signing_key(7), signing_key(8));
    // Built and published with A, not yet taken by the device.
    publish_signed_by(&p, "1.1.0", &[&a]).await.unwrap();

    let created = p.admin.rotate_keys(&p.app, &document(&p.app, 2, 1, &[&b], &[&a, &b])).await.unwrap();
    assert!(created.is_created());
    // Posting it again is idempotent; the server now refuses builds signed by A.
    assert!(!p.admin.rotate_keys(&p.app, &document(&p.app, 2, 1, &[&b], &[&a, &b])).await.unwrap().is_created());
    assert_refused(publish_signed_by(&p, "1.1.1", &[&a]).await, 422, "not one of the trusted keys");
    let listed = server.anonymous().get(&format!("/v1/apps/{}/keys?after=1", p.app)).await.ok();
    assert_eq!(listed["documents"].as_array().unwrap().len(), 1);
    let none = server.anonymous().get(&format!("/v1/apps/{}/keys?after=2", p.app)).await.ok();
    assert_eq!(none["documents"], json!([]));

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let client = device(&server.base, &p.app, &state, &[&a]).build().await.unwrap();
    assert_eq!(client.key_version(), 1);
    // Offered the A-signed 1.1.0: the SDK walks to version 2 first, and A no longer counts.
    match client.check().await {
        Err(Error::Refused(Refusal::UntrustedKey { key_id })) => assert_eq!(&key_id, a.id()),
        other => panic!("expected the rotated-out key refused, got {other:?}"),
    }
    assert_eq!(client.key_version(), 2);

    publish_signed_by(&p, "1.2.0", &[&b]).await.unwrap();
    let update = available(client.check().await);
    assert_eq!(update.version().to_string(), "1.2.0");
    client.download(&update, &dir.path().join("b.bin"), |_, _| {}).await.unwrap();

    // A restart keeps the newest verified document.
    let again = device(&server.base, &p.app, &state, &[&a]).version("1.2.0").build().await.unwrap();
    assert_eq!(again.key_version(), 2);

    // An app built after the rotation compiles in version 2 itself and starts from there.
    let v2 = serde_json::to_string(&p.admin.key_documents(&p.app).await.unwrap().documents[0]).unwrap();
    let later = tempfile::tempdir().unwrap();
    let built_later = device(&server.base, &p.app, later.path(), &[]).trusted_keys_document(&v2).build().await.unwrap();
    assert_eq!(built_later.key_version(), 2);
    assert_eq!(available(built_later.check().await).version().to_string(), "1.2.0");
    // Compiling in both trusted_key calls and a document is refused.
    let both = device(&server.base, &p.app, later.path(), &[&b]).trusted_keys_document(&v2).build().await;
    assert!(matches!(both, Err(halftone_client::BuildError::Invalid { setting: "trusted_keys_document", .. })));
}

async fn post(
    p: &Publisher,
    d: KeyDocumentSpec,
) -> Result<halftone_admin::Written<KeyDocumentSpec>, halftone_admin::AdminError> {
    p.admin.rotate_keys(&p.app, &d).await
}

#[tokio::test]
async fn the_server_refuses_documents_that_do_not_chain() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "rotate-refusals").await;
    let (a, b, c) = (signing_key(7), signing_key(8), signing_key(9));
    let post = |d: KeyDocumentSpec| post(&p, d);
    assert_refused(post(document(&p.app, 3, 1, &[&b], &[&a, &b])).await, 422, "does not follow the trusted version 1");
    assert_refused(post(document(&p.app, 2, 1, &[&b], &[&b])).await, 422, "previous version's keys");
    assert_refused(post(document(&p.app, 2, 1, &[&b], &[&a])).await, 422, "its own keys");
    let other = AppId::parse("someone-else").unwrap();
    assert_refused(post(document(&other, 2, 1, &[&b], &[&a, &b])).await, 422, "is for app someone-else");
    post(document(&p.app, 2, 1, &[&b], &[&a, &b])).await.unwrap();
    assert_refused(post(document(&p.app, 2, 1, &[&c], &[&b, &c])).await, 422, "not newer");
    // A threshold above the key count does not parse: a 400 or 422 problem, never stored.
    let bad = json!({"app": p.app, "version": 3, "threshold": 2, "keys": [c.spec()],
                     "signatures": [{"key_id": b.id(), "signature": "00".repeat(64)}]});
    let reply = p.http.post(&format!("/v1/apps/{}/keys", p.app), &bad).await;
    reply.assert_problem(422, "threshold 2 is more than its 1 keys");
    let zero = json!({"app": p.app, "version": 3, "threshold": 0, "keys": [c.spec()],
                      "signatures": [{"key_id": b.id(), "signature": "00".repeat(64)}]});
    p.http.post(&format!("/v1/apps/{}/keys", p.app), &zero).await.assert_problem(422, "threshold must be 1 to");
    // Once rotated, version 1 (the app's keys) cannot change beneath the chain.
    let spec = AppSpec { display_name: "x".parse().unwrap(), keys: vec![c.spec()], channels: vec![], metrics: vec![] };
    assert_refused(p.admin.put_app(&p.app, &spec).await, 422, "has rotated its keys");
    let docs = p.admin.key_documents(&p.app).await.unwrap();
    assert_eq!(docs.documents.iter().map(|d| d.version).collect::<Vec<_>>(), [2]);
}

/// A proxy in front of a server that, when told to, answers `GET .../keys` itself.
struct KeysProxy {
    base: String,
    forged: Arc<Mutex<Option<Value>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for KeysProxy {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

struct Upstream {
    base: String,
    http: reqwest::Client,
    forged: Arc<Mutex<Option<Value>>>,
}

impl KeysProxy {
    fn start(server: &TestServer) -> KeysProxy {
        let forged = Arc::new(Mutex::new(None));
        let shared = web::Data::new(Upstream {
            base: server.base.clone(),
            http: reqwest::Client::new(),
            forged: forged.clone(),
        });
        let (base, handle) = serve_every_request(shared, relay);
        KeysProxy { base, forged, handle }
    }

    /// From now on `GET .../keys` answers `documents` (`None`: the server's answer).
    fn serve(&self, documents: Option<Vec<KeyDocumentSpec>>) {
        *self.forged.lock().unwrap() = documents.map(|d| json!({ "documents": d }));
    }
}

async fn relay(req: HttpRequest, body: web::Bytes, up: web::Data<Upstream>) -> HttpResponse {
    let forged = up.forged.lock().unwrap().clone();
    if req.method() == actix_web::http::Method::GET
        && req.path().ends_with("/keys")
        && let Some(value) = forged
    {
        return HttpResponse::Ok().json(value);
    }
    let url = format!("{}{}", up.base, req.uri());
    let mut upstream = up.http.request(req.method().as_str().parse().unwrap(), url).body(body.to_vec());
    for (name, value) in req.headers() {
        if name != "host" {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let response = upstream.send().await.unwrap();
    let mut out = HttpResponse::build(actix_web::http::StatusCode::from_u16(response.status().as_u16()).unwrap());
    if let Some(ct) = response.headers().get("content-type") {
        out.content_type(ct.to_str().unwrap().to_owned());
    }
    out.body(response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn the_sdk_refuses_chains_that_do_not_hold_and_keeps_its_trust() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "rotate-attacks").await;
    let (a, b, c) = (signing_key(7), signing_key(8), signing_key(9));
    p.admin.rotate_keys(&p.app, &document(&p.app, 2, 1, &[&b], &[&a, &b])).await.unwrap();
    publish_signed_by(&p, "1.1.0", &[&b]).await.unwrap();

    let proxy = KeysProxy::start(&server);
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let client = device(&proxy.base, &p.app, &state, &[&a]).build().await.unwrap();
    let refused = |expected: fn(&KeyChainError) -> bool| {
        let client = client.clone();
        async move {
            match client.check().await {
                Err(Error::KeyChain(e)) => assert!(expected(&e), "unexpected refusal: {e}"),
                other => panic!("expected a key chain refusal, got {other:?}"),
            }
            assert_eq!(client.key_version(), 1, "trust is unchanged");
        }
    };

    // A gap: version 3 straight after 1, well signed by A and its own key C.
    proxy.serve(Some(vec![document(&p.app, 3, 1, &[&c], &[&a, &c])]));
    refused(|e| matches!(e, KeyChainError::Gap { trusted: 1, found: 3 })).await;
    // Under-signed: version 2 naming the attacker's key C, signed by C alone, and by C twice
    // plus a stranger's key: none of them is A.
    proxy.serve(Some(vec![document(&p.app, 2, 1, &[&c], &[&c])]));
    refused(|e| matches!(e, KeyChainError::UnderSigned { version: 2, by: Signers::Previous, .. })).await;
    proxy.serve(Some(vec![document(&p.app, 2, 1, &[&c], &[&c, &c, &signing_key(10)])]));
    refused(|e| {
        matches!(
            e,
            KeyChainError::UnderSigned {
                by: Signers::Previous,
                source: SignatureError::TooFew { valid: 0, needed: 1 },
                ..
            }
        )
    })
    .await;
    // Another app's genuine-looking document.
    let other = AppId::parse("other-app").unwrap();
    proxy.serve(Some(vec![document(&other, 2, 1, &[&c], &[&a, &c])]));
    refused(|e| matches!(e, KeyChainError::OtherApp { .. })).await;
    assert!(!state.join("keys").exists(), "nothing was persisted");

    // The honest server: the walk to B succeeds and B's build is taken.
    proxy.serve(None);
    let update = available(client.check().await);
    assert_eq!(client.key_version(), 2);
    client.download(&update, &dir.path().join("b.bin"), |_, _| {}).await.unwrap();

    // A rollback of the server's documents: version 2 again (here naming C, signed by A and C:
    // valid against version 1, but not newer than what the device trusts).
    publish_signed_by(&p, "1.2.0", &[&b]).await.unwrap();
    proxy.serve(Some(vec![document(&p.app, 2, 1, &[&c], &[&a, &c])]));
    let restarted = device(&proxy.base, &p.app, &state, &[&a]).build().await.unwrap();
    assert_eq!(restarted.key_version(), 2, "the stored document survives a restart");
    match restarted.check().await {
        Err(Error::KeyChain(KeyChainError::NotNewer { trusted: 2, found: 2 })) => {}
        other => panic!("expected a rollback refused, got {other:?}"),
    }
    assert_eq!(restarted.key_version(), 2);
    proxy.serve(None);
    assert_eq!(available(restarted.check().await).version().to_string(), "1.2.0");
}

#[tokio::test]
async fn with_a_threshold_of_two_builds_need_two_distinct_keys() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "k-of-n").await;
    let (a, b) = (signing_key(7), signing_key(8));
    // Published while one key sufficed, not yet taken.
    publish_signed_by(&p, "1.1.0", &[&a]).await.unwrap();
    // Version 2: A and B, both needed. A authorises it (threshold 1); A and B prove theirs.
    p.admin.rotate_keys(&p.app, &document(&p.app, 2, 2, &[&a, &b], &[&a, &b])).await.unwrap();

    assert_refused(publish_signed_by(&p, "1.2.0", &[&a]).await, 422, "signed by 1 distinct trusted keys, 2 needed");
    assert_refused(publish_signed_by(&p, "1.2.0", &[&a, &a]).await, 422, "2 needed");

    let dir = tempfile::tempdir().unwrap();
    let client = device(&server.base, &p.app, &dir.path().join("state"), &[&a]).build().await.unwrap();
    match client.check().await {
        Err(Error::Refused(Refusal::TooFewTrustedKeys { named: 1, needed: 2 })) => {}
        other => panic!("expected a build signed by one key refused, got {other:?}"),
    }

    publish_signed_by(&p, "1.2.0", &[&a, &b]).await.unwrap();
    let update = available(client.check().await);
    assert_eq!(update.version().to_string(), "1.2.0");
    client.download(&update, &dir.path().join("ab.bin"), |_, _| {}).await.unwrap();

    // An app that compiles in the threshold itself refuses one signature from the start.
    let strict_dir = tempfile::tempdir().unwrap();
    let strict = device(&server.base, &p.app, &strict_dir.path().join("s"), &[&a, &b]).key_threshold(3).build().await;
    assert!(matches!(strict, Err(halftone_client::BuildError::Invalid { setting: "key_threshold", .. })));
}

#[tokio::test]
async fn key_documents_are_committed_to_either_store_and_survive_a_restart() {
    let postgres = halftone_tests::postgres::TempPostgres::start_or_skip("key documents on PostgreSQL");
    for pg in [None, postgres.as_ref()] {
        let (server, url) = match &pg {
            None => (TestServer::start(), None),
            Some(pg) => (TestServer::start_on_postgres(&pg.url(), None), Some(pg.url())),
        };
        let p = Publisher::create(&server, "rotate-durable").await;
        let (a, b) = (signing_key(7), signing_key(8));
        p.admin.rotate_keys(&p.app, &document(&p.app, 2, 1, &[&b], &[&a, &b])).await.unwrap();
        let before = p.admin.key_documents(&p.app).await.unwrap();
        let (dir, token) = server.stop();
        let again = match (&url, &dir) {
            (Some(url), _) => TestServer::start_on_postgres(url, Some(token)),
            (None, Some(dir)) => TestServer::start_in(dir.path(), Some(token)),
            (None, None) => unreachable!("a sled server keeps its data dir"),
        };
        let admin = again.admin();
        assert_eq!(admin.key_documents(&p.app).await.unwrap(), before, "store: {url:?}");
        let p = Publisher { admin, http: again.raw_admin(), app: p.app, key: signing_key(7) };
        // The restarted server verifies against version 2: A is out, B is in.
        assert_refused(publish_signed_by(&p, "1.1.0", &[&a]).await, 422, "not one of the trusted keys");
        publish_signed_by(&p, "1.1.0", &[&b]).await.unwrap();
    }
}
