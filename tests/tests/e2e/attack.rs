//! The attack suite: a programmable attacking proxy between the real SDK and the real server
//! (the shape of TUF's conformance suite: one client, an attacking repository), one test per
//! attack. Each asserts the SDK's typed error, that it never reads a withheld answer as "up to
//! date", that nothing was installed and the trust state is unchanged, and that a later honest
//! answer still works.

use std::sync::{Arc, Mutex};

use actix_web::{HttpRequest, HttpResponse, web};
use ed25519_dalek::SigningKey;
use futures_util::StreamExt as _;
use halftone_channels::wire::{CheckRequest, CheckResponse};
use halftone_channels::{AnswerError, AnswerFields, Batch, PROOF_HEADER, answer_key_id, leaf};
use halftone_client::{CheckOutcome, Client, ClientBuilder, Error, Refusal, Rejection, Unverified};
use serde_json::json;

use crate::harness::*;

/// One check-in as the proxy saw it.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub request: CheckRequest,
    pub body: Vec<u8>,
    pub proof: Option<String>,
}

/// What the proxy does to a check-in.
#[derive(Clone, Default)]
pub enum Attack {
    /// Forwards it unchanged.
    #[default]
    Pass,
    /// Answers with this recorded answer (body and proof) instead.
    Replay(Box<Exchange>),
    /// Forwards it, and removes the proof from the answer.
    StripProof,
    /// Forwards it, and changes the answer's body (keeping its proof).
    Tamper(fn(Vec<u8>) -> Vec<u8>),
    /// Answers with `body`, proven with a stolen answer key for this very request.
    Forge { key: Arc<SigningKey>, body: Vec<u8> },
    /// Forwards it, and rewrites the answer's JSON (dropping its proof, which no longer fits).
    Rewrite(fn(serde_json::Value) -> serde_json::Value),
    /// Forwards check-ins; artifact downloads meet this instead.
    Download(OnDownload),
}

/// What the proxy does to an artifact download.
#[derive(Clone, Copy, Debug)]
pub enum OnDownload {
    /// One byte of the genuine file changed.
    FlipLastByte,
    /// The genuine bytes, then zeros without end (no `Content-Length`).
    Endless,
    /// One byte every 200 ms.
    Trickle,
}

/// An HTTP proxy in front of a server: every request is forwarded, check-ins go through the
/// current [`Attack`] and are recorded.
pub struct AttackProxy {
    pub base: String,
    pub attack: Arc<Mutex<Attack>>,
    pub seen: Arc<Mutex<Vec<Exchange>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Drop for AttackProxy {
    fn drop(&mut self) {
        drop(self.handle.stop(false));
    }
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    attack: Arc<Mutex<Attack>>,
    seen: Arc<Mutex<Vec<Exchange>>>,
}

impl AttackProxy {
    /// A proxy in front of `server`.
    pub fn start(server: &TestServer) -> AttackProxy {
        let attack = Arc::new(Mutex::new(Attack::Pass));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let shared = web::Data::new(Shared {
            upstream: server.base.clone(),
            http: reqwest::Client::new(),
            attack: attack.clone(),
            seen: seen.clone(),
        });
        let (base, handle) = serve_every_request(shared, relay);
        AttackProxy { base, attack, seen, handle }
    }

    /// From now on, check-ins meet `attack`.
    pub fn set(&self, attack: Attack) {
        *self.attack.lock().unwrap() = attack;
    }

    /// The last check-in seen.
    pub fn last(&self) -> Exchange {
        self.seen.lock().unwrap().last().cloned().expect("a check-in went through")
    }
}

async fn relay(req: HttpRequest, body: web::Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let is_check = req.method() == actix_web::http::Method::POST && req.path().ends_with("/check");
    let attack = shared.attack.lock().unwrap().clone();
    if let Attack::Download(how) = attack
        && req.method() == actix_web::http::Method::GET
        && req.path().starts_with("/v1/artifacts/")
    {
        let genuine = shared.http.get(format!("{}{}", shared.upstream, req.uri())).send().await.unwrap();
        let mut bytes = genuine.bytes().await.unwrap().to_vec();
        return match how {
            OnDownload::FlipLastByte => {
                *bytes.last_mut().unwrap() ^= 1;
                HttpResponse::Ok().body(bytes)
            }
            OnDownload::Endless => {
                let first = futures_util::stream::once(async move { Ok::<_, std::io::Error>(web::Bytes::from(bytes)) });
                let zeros = futures_util::stream::repeat_with(|| Ok(web::Bytes::from_static(&[0u8; 4096])));
                HttpResponse::Ok().streaming(first.chain(zeros))
            }
            OnDownload::Trickle => {
                let drip = futures_util::stream::unfold(bytes.into_iter(), |mut rest| async move {
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    let b = rest.next()?;
                    Some((Ok::<_, std::io::Error>(web::Bytes::from(vec![b])), rest))
                });
                HttpResponse::Ok().streaming(drip)
            }
        };
    }
    if is_check && let Attack::Replay(recorded) = &attack {
        return answer(200, &recorded.body, recorded.proof.as_deref());
    }
    let request: Option<CheckRequest> = if is_check { serde_json::from_slice(&body).ok() } else { None };
    if let (Some(request), Attack::Forge { key, body }) = (&request, &attack) {
        let pk = halftone_channels::PublicKey::from_bytes(key.verifying_key().to_bytes()).unwrap();
        let app = halftone_channels::AppId::parse(req.path().split('/').nth(3).unwrap()).unwrap();
        let expires_s = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 300;
        let f = AnswerFields { app: &app, device: &request.device_id, nonce: request.nonce.as_ref(), expires_s, body };
        let proof = Batch::sign(vec![leaf(f)], key).proof(0, &answer_key_id(&pk), expires_s);
        return answer(200, body, Some(&proof.to_string()));
    }
    let url = format!("{}{}", shared.upstream, req.uri());
    let mut upstream = shared.http.request(req.method().as_str().parse().unwrap(), url).body(body.to_vec());
    for (name, value) in req.headers() {
        if name != "host" {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    let response = upstream.send().await.unwrap();
    let status = response.status().as_u16();
    let proof = response.headers().get(PROOF_HEADER).map(|v| v.to_str().unwrap().to_owned());
    let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned());
    let mut bytes = response.bytes().await.unwrap().to_vec();
    let Some(request) = request else {
        let mut out = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
        if let Some(ct) = content_type {
            out.content_type(ct);
        }
        return out.body(bytes);
    };
    shared.seen.lock().unwrap().push(Exchange { request, body: bytes.clone(), proof: proof.clone() });
    match attack {
        Attack::StripProof => answer(status, &bytes, None),
        Attack::Tamper(change) => {
            bytes = change(bytes);
            answer(status, &bytes, proof.as_deref())
        }
        Attack::Rewrite(change) => {
            let json = change(serde_json::from_slice(&bytes).unwrap());
            answer(status, &serde_json::to_vec(&json).unwrap(), None)
        }
        _ => answer(status, &bytes, proof.as_deref()),
    }
}

fn answer(status: u16, body: &[u8], proof: Option<&str>) -> HttpResponse {
    let mut out = HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap());
    out.content_type("application/json");
    if let Some(p) = proof {
        out.insert_header((PROOF_HEADER, p));
    }
    out.body(body.to_vec())
}

/// A client of `p`'s app through `base`, trusting the publisher's release key and pinning
/// `answer_keys`.
fn pinned(
    base: &str,
    p: &Publisher,
    state: &std::path::Path,
    device_version: &str,
    answer_keys: &[String],
) -> ClientBuilder {
    let mut b = Client::builder()
        .server(base)
        .app(p.app.as_str())
        .version(device_version)
        .platform("linux", "x86_64")
        .state_dir(state)
        .trusted_key(p.key.id().as_str(), &p.key.public_key().to_string());
    for k in answer_keys {
        b = b.answer_key(k);
    }
    b
}

/// The server's answer keys' public halves, as an app pins them.
async fn published_keys(server: &TestServer) -> Vec<String> {
    let keys = server.admin().answer_keys().await.unwrap();
    keys.keys.iter().map(|k| k.public_key.to_string()).collect()
}

#[track_caller]
fn unverified(outcome: Result<CheckOutcome, Error>) -> Unverified {
    match outcome {
        Err(Error::Unverified(why)) => why,
        other => panic!("expected an unverified answer, got {other:?}"),
    }
}

#[tokio::test]
async fn a_pinned_app_believes_fresh_signed_answers() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "attack-fresh").await;
    let dir = tempfile::tempdir().unwrap();
    let keys = published_keys(&server).await;
    assert_eq!(keys.len(), 1, "the first start makes one answer key");
    let client = pinned(&server.base, &p, dir.path(), "1.0.0", &keys).build().await.unwrap();
    assert_eq!(client.check().await.unwrap(), CheckOutcome::UpToDate);
    p.publish("1.1.0", "stable", "100").await;
    assert!(matches!(client.check().await.unwrap(), CheckOutcome::Available(u) if u.version().to_string() == "1.1.0"));
}

#[tokio::test]
async fn a_recorded_up_to_date_answer_replayed_later_is_not_up_to_date() {
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-replay").await;
    let dir = tempfile::tempdir().unwrap();
    let client = pinned(&proxy.base, &p, dir.path(), "1.0.0", &published_keys(&server).await).build().await.unwrap();
    assert_eq!(client.check().await.unwrap(), CheckOutcome::UpToDate);
    let recorded = proxy.last();
    assert!(recorded.proof.is_some() && recorded.request.nonce.is_some());

    // A security fix ships; the attacker keeps answering with yesterday's genuine answer.
    p.publish("1.0.1", "stable", "100").await;
    proxy.set(Attack::Replay(Box::new(recorded)));
    let why = unverified(client.check().await);
    assert_eq!(why, Unverified::Proof(AnswerError::BadSignature), "the nonce differs");

    proxy.set(Attack::Pass);
    assert!(matches!(client.check().await.unwrap(), CheckOutcome::Available(_)), "an honest answer still works");
}

#[tokio::test]
async fn another_devices_answer_is_refused() {
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-other-device").await;
    p.publish("1.1.0", "stable", "100").await;
    let keys = published_keys(&server).await;
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let device_a = pinned(&proxy.base, &p, a.path(), "1.0.0", &keys).build().await.unwrap();
    let device_b = pinned(&proxy.base, &p, b.path(), "1.0.0", &keys).build().await.unwrap();
    assert!(matches!(device_a.check().await.unwrap(), CheckOutcome::Available(_)));
    proxy.set(Attack::Replay(Box::new(proxy.last())));
    assert_eq!(unverified(device_b.check().await), Unverified::Proof(AnswerError::BadSignature));
}

#[tokio::test]
async fn a_stripped_or_changed_answer_is_refused() {
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-strip").await;
    let dir = tempfile::tempdir().unwrap();
    let client = pinned(&proxy.base, &p, dir.path(), "1.0.0", &published_keys(&server).await).build().await.unwrap();
    proxy.set(Attack::StripProof);
    assert_eq!(unverified(client.check().await), Unverified::Missing);
    proxy.set(Attack::Tamper(|body| {
        let text = String::from_utf8(body).unwrap();
        let answer: CheckResponse = serde_json::from_str(&text).unwrap();
        serde_json::to_vec(&CheckResponse { next_check_s: answer.next_check_s * 100, ..answer }).unwrap()
    }));
    assert_eq!(unverified(client.check().await), Unverified::Proof(AnswerError::BadSignature));
    proxy.set(Attack::Pass);
    assert_eq!(client.check().await.unwrap(), CheckOutcome::UpToDate);
}

#[tokio::test]
async fn an_expired_answer_is_refused() {
    // A server whose clock is an hour behind makes answers that expired long ago by the
    // device's clock: exactly what a held-back answer looks like.
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let clock = Arc::new(halftone_server::clock::ManualClock::at(now_ms - 3_600_000));
    let server = TestServer::start_with_clock(clock.clone());
    let p = Publisher::create(&server, "attack-expired").await;
    let dir = tempfile::tempdir().unwrap();
    let client = pinned(&server.base, &p, dir.path(), "1.0.0", &published_keys(&server).await).build().await.unwrap();
    assert!(matches!(unverified(client.check().await), Unverified::Expired { .. }));
    clock.advance(3_600_000);
    assert_eq!(client.check().await.unwrap(), CheckOutcome::UpToDate);
}

#[tokio::test]
async fn a_stolen_answer_key_cannot_authorise_a_build() {
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-stolen-key").await;
    let dir = tempfile::tempdir().unwrap();
    let client = pinned(&proxy.base, &p, dir.path(), "1.0.0", &published_keys(&server).await).build().await.unwrap();
    // The attacker holds the server's answer key (a compromised server) and offers a build
    // signed by a release key of its own.
    let record = server.state().store.answer_keys().await.unwrap().unwrap();
    let stolen = Arc::new(SigningKey::from_bytes(&record.keys[0].seed));
    let evil = signing_key(66);
    let draft = p.draft("9.9.9", &[]);
    p.upload(&draft).await;
    let a = &draft.spec.artifacts[0];
    let target = halftone_channels::Target { os: "linux".parse().unwrap(), arch: "x86_64".parse().unwrap() };
    let forged_signature = evil.sign(halftone_channels::SignedFields {
        app: &p.app,
        version: &"9.9.9".parse().unwrap(),
        target: &target,
        sha256: &a.sha256,
        size: a.size,
    });
    let body = serde_json::to_vec(&json!({"next_check_s": 3600, "update": {
        "version": "9.9.9", "channel": "stable", "notes": "", "critical": true,
        "artifact": {"url": format!("/v1/artifacts/{}", a.sha256), "os": "linux", "arch": "x86_64",
            "sha256": a.sha256, "size": a.size, "signature": forged_signature.to_string(), "key_id": p.key.id()}}}))
    .unwrap();
    proxy.set(Attack::Forge { key: stolen, body });
    // The answer itself verifies (the key is genuine), so the offer is shown; the build is not
    // taken: its release signature fails, the file is deleted, the watermark stays.
    let update = match client.check().await {
        Ok(CheckOutcome::Available(u)) => u,
        other => panic!("the forged answer carries a valid proof, got {other:?}"),
    };
    let dest = dir.path().join("evil.bin");
    let result = client.download(&update, &dest, |_, _| {}).await;
    assert!(matches!(result, Err(Error::Rejected(Rejection::BadSignature(_)))), "{result:?}");
    assert!(!dest.exists(), "nothing is installed");

    proxy.set(Attack::Pass);
    p.publish("1.1.0", "stable", "100").await;
    let honest = match client.check().await {
        Ok(CheckOutcome::Available(u)) if u.version().to_string() == "1.1.0" => u,
        other => panic!("the watermark did not move: the honest 1.1.0 is offered, got {other:?}"),
    };
    client.download(&honest, dir.path().join("good.bin"), |_, _| {}).await.expect("the honest build is taken");
}

#[tokio::test]
async fn rotation_keeps_devices_that_pin_the_old_key_until_it_is_retired() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "attack-rotation").await;
    let old = published_keys(&server).await;
    let rotated = server.admin().rotate_answer_key().await.unwrap();
    assert_eq!(rotated.keys.len(), 2);
    assert!(rotated.keys[1].current && !rotated.keys[0].current);
    let new = vec![rotated.keys[1].public_key.to_string()];
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let on_old = pinned(&server.base, &p, a.path(), "1.0.0", &old).build().await.unwrap();
    let on_new = pinned(&server.base, &p, b.path(), "1.0.0", &new).build().await.unwrap();
    assert_eq!(on_old.check().await.unwrap(), CheckOutcome::UpToDate, "the server signs with the pinned key");
    assert_eq!(on_new.check().await.unwrap(), CheckOutcome::UpToDate);

    let current = rotated.keys[1].key_id.clone();
    assert_refused(server.admin().retire_answer_key(&current).await, 409, "current answer key");
    let retired = server.admin().retire_answer_key(&rotated.keys[0].key_id).await.unwrap();
    assert_eq!(retired.keys.len(), 1);
    assert!(matches!(unverified(on_old.check().await), Unverified::Proof(AnswerError::UnknownKey(k)) if k == current));
    assert_eq!(on_new.check().await.unwrap(), CheckOutcome::UpToDate);

    // Both changes are in the server-wide audit log, with public keys only.
    let audit = server.admin().server_audit().await.unwrap();
    let actions: Vec<_> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    assert!(actions.contains(&"answer-key.rotate") && actions.contains(&"answer-key.retire"), "{actions:?}");
    let seed = hex::encode(server.state().store.answer_keys().await.unwrap().unwrap().keys[0].seed);
    assert!(!serde_json::to_string(&audit).unwrap().contains(&seed), "no secret in the audit log");
}

#[tokio::test]
async fn an_app_that_pins_no_answer_key_reads_answers_as_before() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "attack-unpinned").await;
    let dir = tempfile::tempdir().unwrap();
    let client = pinned(&server.base, &p, dir.path(), "1.0.0", &[]).build().await.unwrap();
    assert_eq!(client.check().await.unwrap(), CheckOutcome::UpToDate);
}

#[tokio::test]
async fn a_beta_build_replayed_to_a_stable_device_locks_it_out_of_nothing() {
    // No answer key pinned: the man in the middle can replay and even relabel answers.
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-channel").await;
    p.publish("1.1.0", "stable", "100").await;
    p.publish("2.0.0-beta.1", "beta", "100").await;
    let (beta_dir, stable_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let beta = pinned(&proxy.base, &p, beta_dir.path(), "1.0.0", &[]).default_channel("beta").build().await.unwrap();
    let stable = pinned(&proxy.base, &p, stable_dir.path(), "1.0.0", &[]).build().await.unwrap();
    assert!(
        matches!(beta.check().await.unwrap(), CheckOutcome::Available(u) if u.version().to_string() == "2.0.0-beta.1")
    );

    // Replayed as it is, the offer names its channel: a stable device refuses it.
    proxy.set(Attack::Replay(Box::new(proxy.last())));
    match stable.check().await {
        Err(Error::Refused(Refusal::WrongChannel { offered, device })) => {
            assert_eq!((offered.as_str(), device.as_str()), ("beta", "stable"));
        }
        other => panic!("expected a refusal of the beta channel, got {other:?}"),
    }

    // Relabelled "stable" (possible only without signed answers), the genuine beta build
    // downloads and verifies, but downloading raises no watermark: the stable hotfix that
    // follows is still taken and installed.
    let relabelled = proxy.last().body;
    let text = String::from_utf8(relabelled).unwrap().replace("\"channel\":\"beta\"", "\"channel\":\"stable\"");
    let recorded = Exchange { body: text.into_bytes(), ..proxy.last() };
    proxy.set(Attack::Replay(Box::new(recorded)));
    let beta_build = match stable.check().await {
        Ok(CheckOutcome::Available(u)) => u,
        other => panic!("the relabelled offer passes the check, got {other:?}"),
    };
    stable.download(&beta_build, stable_dir.path().join("beta.bin"), |_, _| {}).await.expect("a genuine build");
    proxy.set(Attack::Pass);
    p.publish("1.1.1", "stable", "100").await;
    let hotfix = match stable.check().await {
        Ok(CheckOutcome::Available(u)) if u.version().to_string() == "1.1.1" => u,
        other => panic!("the stable hotfix must still be offered and taken, got {other:?}"),
    };
    let file = stable.download(&hotfix, stable_dir.path().join("hotfix.bin"), |_, _| {}).await.unwrap();
    stable.installed(&file).await.unwrap();
}

/// A client through `proxy` that pins no answer key (so answers can be rewritten), with
/// download limits small enough for a test.
async fn exposed(proxy: &AttackProxy, p: &Publisher, state: &std::path::Path) -> Client {
    pinned(&proxy.base, p, state, "1.0.0", &[])
        .stall_timeout(std::time::Duration::from_secs(2))
        .min_download_rate(64, std::time::Duration::from_secs(1))
        .build()
        .await
        .unwrap()
}

/// Checks, downloads under `attack`, and asserts the typed failure (`expected`), that nothing
/// is at the destination, and that the same client then takes the honest build.
async fn refused_then_honest(
    proxy: &AttackProxy,
    client: &Client,
    dir: &std::path::Path,
    attack: Attack,
    expected: impl Fn(&Error) -> bool,
) {
    let update = match client.check().await {
        Ok(CheckOutcome::Available(u)) => u,
        other => panic!("expected an offer, got {other:?}"),
    };
    proxy.set(attack);
    let dest = dir.join("update.bin");
    let failed = client.download(&update, &dest, |_, _| {}).await;
    match &failed {
        Err(e) if expected(e) => {}
        other => panic!("unexpected outcome {other:?}"),
    }
    assert!(!dest.exists(), "nothing is handed out");
    proxy.set(Attack::Pass);
    let update = match client.check().await {
        Ok(CheckOutcome::Available(u)) => u,
        other => panic!("the honest offer is still taken, got {other:?}"),
    };
    let file = client.download(&update, &dest, |_, _| {}).await.expect("the honest build downloads");
    client.installed(&file).await.unwrap();
}

#[tokio::test]
async fn bytes_changed_on_the_wire_are_refused() {
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-tamper-bytes").await;
    p.publish("1.1.0", "stable", "100").await;
    let dir = tempfile::tempdir().unwrap();
    let client = exposed(&proxy, &p, dir.path()).await;
    let hash = |e: &Error| matches!(e, Error::Rejected(Rejection::HashMismatch { .. }));
    refused_then_honest(&proxy, &client, dir.path(), Attack::Download(OnDownload::FlipLastByte), hash).await;
}

#[tokio::test]
async fn an_endless_body_is_cut_off_at_the_signed_size() {
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-endless").await;
    p.publish("1.1.0", "stable", "100").await;
    let dir = tempfile::tempdir().unwrap();
    let client = exposed(&proxy, &p, dir.path()).await;
    let oversized = |e: &Error| matches!(e, Error::Rejected(Rejection::Oversized { .. }));
    refused_then_honest(&proxy, &client, dir.path(), Attack::Download(OnDownload::Endless), oversized).await;
}

#[tokio::test]
async fn a_trickled_body_fails_the_minimum_rate() {
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-trickle").await;
    p.publish("1.1.0", "stable", "100").await;
    let dir = tempfile::tempdir().unwrap();
    let client = exposed(&proxy, &p, dir.path()).await;
    let slow = |e: &Error| matches!(e, Error::TooSlow { .. });
    refused_then_honest(&proxy, &client, dir.path(), Attack::Download(OnDownload::Trickle), slow).await;
}

#[tokio::test]
async fn fields_of_two_releases_mixed_are_refused() {
    // The version of 1.2.0 with the genuine artifact, digest and signature of 1.1.0: the
    // signed message names the version, so the signature does not verify.
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-mixed").await;
    p.publish("1.1.0", "stable", "100").await;
    let dir = tempfile::tempdir().unwrap();
    let client = exposed(&proxy, &p, dir.path()).await;
    proxy.set(Attack::Rewrite(|mut answer| {
        answer["update"]["version"] = json!("1.2.0");
        answer
    }));
    let update = match client.check().await {
        Ok(CheckOutcome::Available(u)) => u,
        other => panic!("the rewritten offer passes the check, got {other:?}"),
    };
    assert_eq!(update.version().to_string(), "1.2.0");
    let dest = dir.path().join("mixed.bin");
    let result = client.download(&update, &dest, |_, _| {}).await;
    assert!(matches!(result, Err(Error::Rejected(Rejection::BadSignature(_)))), "{result:?}");
    assert!(!dest.exists());
    proxy.set(Attack::Pass);
    let honest = match client.check().await {
        Ok(CheckOutcome::Available(u)) if u.version().to_string() == "1.1.0" => u,
        other => panic!("the honest 1.1.0 is still taken, got {other:?}"),
    };
    client.download(&honest, &dest, |_, _| {}).await.unwrap();
}

#[tokio::test]
async fn a_build_for_another_platform_or_app_is_refused() {
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-target").await;
    p.publish("1.1.0", "stable", "100").await;
    let dir = tempfile::tempdir().unwrap();
    let client = exposed(&proxy, &p, dir.path()).await;
    // Another platform, said so: refused at check.
    proxy.set(Attack::Rewrite(|mut answer| {
        answer["update"]["artifact"]["os"] = json!("windows");
        answer
    }));
    assert!(matches!(client.check().await, Err(Error::Refused(Refusal::WrongTarget { .. }))));
    // Another app's genuine build (same key, same version), passed off as this app's.
    let other = Publisher::create(&server, "attack-target-other").await;
    let theirs = other.publish("1.1.0", "stable", "100").await;
    let a = &theirs.release.artifacts[0];
    let sha = a.sha256.to_string();
    let sig = a.signature.to_string();
    let key = a.key_id.to_string();
    let size = a.size;
    let rewrite: fn(serde_json::Value) -> serde_json::Value = |mut answer| {
        let o = OTHER_ARTIFACT.lock().unwrap().clone().unwrap();
        answer["update"]["artifact"] = o;
        answer
    };
    *OTHER_ARTIFACT.lock().unwrap() = Some(json!({"url": format!("/v1/artifacts/{sha}"), "os": "linux",
        "arch": "x86_64", "sha256": sha, "size": size, "signature": sig, "key_id": key}));
    proxy.set(Attack::Rewrite(rewrite));
    let update = match client.check().await {
        Ok(CheckOutcome::Available(u)) => u,
        other => panic!("the rewritten offer passes the check, got {other:?}"),
    };
    let dest = dir.path().join("other.bin");
    let result = client.download(&update, &dest, |_, _| {}).await;
    assert!(matches!(result, Err(Error::Rejected(Rejection::BadSignature(_)))), "{result:?}");
    assert!(!dest.exists());
}

/// The other app's artifact, for a rewrite (a plain `fn` captures nothing).
static OTHER_ARTIFACT: Mutex<Option<serde_json::Value>> = Mutex::new(None);
/// The URL a rewrite puts in the offer.
static TRICK_URL: Mutex<Option<serde_json::Value>> = Mutex::new(None);

#[tokio::test]
async fn path_tricks_and_foreign_hosts_in_artifact_urls_are_refused_before_any_request() {
    let server = TestServer::start();
    let proxy = AttackProxy::start(&server);
    let p = Publisher::create(&server, "attack-urls").await;
    p.publish("1.1.0", "stable", "100").await;
    let dir = tempfile::tempdir().unwrap();
    let client = exposed(&proxy, &p, dir.path()).await;
    for url in ["https://evil.example/x", "http://127.0.0.2:9/x", "file:///etc/passwd", "v1/../../etc/passwd"] {
        *TRICK_URL.lock().unwrap() = Some(json!(url));
        proxy.set(Attack::Rewrite(|mut answer| {
            answer["update"]["artifact"]["url"] = TRICK_URL.lock().unwrap().clone().unwrap();
            answer
        }));
        let refused = client.check().await;
        assert!(matches!(refused, Err(Error::Refused(_))), "{url}: {refused:?}");
    }
    // Paths that look like they climb out, or like another host, stay paths on the server's
    // own origin: they name no artifact there, so the download is a 4xx and nothing is written.
    for url in ["//evil.example/x", "/v1/artifacts/../../../etc/passwd"] {
        *TRICK_URL.lock().unwrap() = Some(json!(url));
        proxy.set(Attack::Rewrite(|mut answer| {
            answer["update"]["artifact"]["url"] = TRICK_URL.lock().unwrap().clone().unwrap();
            answer
        }));
        let update = match client.check().await {
            Ok(CheckOutcome::Available(u)) => u,
            other => panic!("{url}: a path on the server's origin passes the check, got {other:?}"),
        };
        assert!(update.url().starts_with(&proxy.base), "{url} stays on the server: {}", update.url());
        let dest = dir.path().join("trick.bin");
        let result = client.download(&update, &dest, |_, _| {}).await;
        assert!(matches!(result, Err(Error::Server { status: 400..=499, .. })), "{url}: {result:?}");
        assert!(!dest.exists());
    }
}
