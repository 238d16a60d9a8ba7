//! Test fixtures: real ed25519 keys, signed offers, and a [`Scenario`]: a fake Halftone server
//! (check-in, events, artifacts) whose artifact endpoint can be told to misbehave.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use halftone_admin::ReleaseKey;
use halftone_channels::wire::{ArtifactOffer, CheckResponse, EventBatch, EventsAccepted, Problem, UpdateOffer};
use halftone_channels::{AppId, ChannelName, KeyId, Sha256, SignedFields, Target};

use crate::fake_server::{FakeServer, Reply, Request, Then, serve_file};
use crate::{Client, ClientBuilder};

pub(crate) const APP: &str = "notes";

/// Test signing key number `n`; key 1 is the one the test app trusts, as `k1`.
pub(crate) fn signing_key(n: u8) -> ReleaseKey {
    ReleaseKey::from_seed([n; 32])
}

/// A client builder for the test app on linux/x86_64, trusting key 1.
pub(crate) fn builder_for(url: &str, state_dir: &Path, version: &str) -> ClientBuilder {
    Client::builder()
        .server(url)
        .app(APP)
        .version(version)
        .platform("linux", "x86_64")
        .os_version("6.1")
        .locale("en_US")
        .trusted_key("k1", &signing_key(1).public_key().to_string())
        .state_dir(state_dir)
}

/// What a signature covers and who made it; [`Signed::genuine`] is what the release engineer
/// signs for the test app.
#[derive(Debug, Clone)]
pub(crate) struct Signed {
    pub(crate) app: &'static str,
    pub(crate) version: String,
    pub(crate) os: &'static str,
    pub(crate) arch: &'static str,
    pub(crate) key: u8,
    pub(crate) key_id: &'static str,
}

impl Signed {
    pub(crate) fn genuine(version: &str) -> Self {
        Signed { app: APP, version: version.into(), os: "linux", arch: "x86_64", key: 1, key_id: "k1" }
    }
}

/// An offer of `bytes` as `version` for linux/x86_64, with a signature made as `signed` says.
pub(crate) fn offer(version: &str, bytes: &[u8], signed: &Signed) -> UpdateOffer {
    let sha256 = Sha256::digest(bytes);
    let size = bytes.len() as u64;
    let signature = signing_key(signed.key).sign(SignedFields {
        app: &AppId::parse(signed.app).unwrap(),
        version: &signed.version.parse().unwrap(),
        target: &Target { os: signed.os.parse().unwrap(), arch: signed.arch.parse().unwrap() },
        sha256: &sha256,
        size,
    });
    UpdateOffer {
        version: version.parse().unwrap(),
        channel: ChannelName::stable(),
        notes: format!("Release {version}."),
        critical: false,
        artifact: ArtifactOffer {
            url: format!("/v1/artifacts/{sha256}"),
            os: "linux".parse().unwrap(),
            arch: "x86_64".parse().unwrap(),
            sha256,
            size,
            signature,
            key_id: KeyId::parse(signed.key_id).unwrap(),
            signatures: vec![],
            patch: None,
        },
        report_token: None,
    }
}

/// The build of `version`: 100 kB, so it streams in several pieces, different per version.
pub(crate) fn build_bytes(version: &str) -> Vec<u8> {
    let seed = version.bytes().fold(0u8, |a, b| a.wrapping_mul(31).wrapping_add(b));
    (0..100_000u32).map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed)).collect()
}

/// How the artifact endpoint answers one request.
#[derive(Debug, Clone)]
pub(crate) enum Serve {
    /// As a file server: honours `Range`.
    File,
    /// The whole file with 200, whatever the `Range`.
    IgnoreRange,
    /// Announces the whole file but sends only the first `n` bytes, then closes.
    Truncate(usize),
    /// Announces the whole file, sends the first `n` bytes, then holds the connection silent.
    Stall(usize),
    /// Announces and sends `n` bytes more than the file.
    Extra(usize),
    /// Sends the file and `n` more bytes without a `Content-Length`.
    ExtraUnannounced(usize),
    /// Sends the file and then more, forever, without a `Content-Length`.
    Endless,
    /// Sends these bytes instead (same length, say, with one changed).
    Replace(Vec<u8>),
    /// Announces the whole file (200, whatever the `Range`) and sends it in pieces of `piece`
    /// bytes, one every `every`.
    Trickle { piece: usize, every: Duration },
    /// Redirects (`307`) to this URL.
    Redirect(String),
}

/// The fake server's state.
#[derive(Default)]
pub(crate) struct World {
    pub(crate) offer: Option<UpdateOffer>,
    pub(crate) next_check_s: u32,
    /// Answer check-ins with this status and `Retry-After`, if set.
    pub(crate) check_failure: Option<(u16, Option<u64>)>,
    /// Answer event batches with this status, if set.
    pub(crate) events_failure: Option<u16>,
    artifacts: HashMap<String, Vec<u8>>,
    serve: VecDeque<Serve>,
    pub(crate) batches: Vec<EventBatch>,
}

/// A fake server for the test app and what it serves.
pub(crate) struct Scenario {
    pub(crate) server: FakeServer,
    world: Arc<Mutex<World>>,
    /// The bytes of the build offered by [`Scenario::genuine`].
    pub(crate) bytes: Vec<u8>,
}

impl Scenario {
    /// A server with nothing to offer.
    pub(crate) async fn empty() -> Self {
        let world = Arc::new(Mutex::new(World { next_check_s: 3600, ..World::default() }));
        let shared = world.clone();
        let server = FakeServer::start(move |request| answer(&mut shared.lock().unwrap(), request)).await;
        Scenario { server, world, bytes: Vec::new() }
    }

    /// A server offering the genuine build of `version`.
    pub(crate) async fn genuine(version: &str) -> Self {
        let mut scenario = Scenario::empty().await;
        scenario.bytes = build_bytes(version);
        scenario.offer(offer(version, &scenario.bytes, &Signed::genuine(version)), &scenario.bytes.clone());
        scenario
    }

    /// Offers `offer`, serving `bytes` at its URL.
    pub(crate) fn offer(&self, offer: UpdateOffer, bytes: &[u8]) {
        let mut world = self.world();
        world.artifacts.insert(offer.artifact.sha256.to_string(), bytes.to_vec());
        world.offer = Some(offer);
    }

    /// Serves `bytes` under their digest, as an uploaded patch or artifact.
    pub(crate) fn store(&self, bytes: &[u8]) {
        self.world().artifacts.insert(Sha256::digest(bytes).to_string(), bytes.to_vec());
    }

    /// Makes the next artifact request answer as `how` (then back to [`Serve::File`]).
    pub(crate) fn serve_next(&self, how: Serve) {
        self.world().serve.push_back(how);
    }

    /// The server's state, to change or inspect.
    pub(crate) fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap()
    }

    /// A client of this server for the test app running `version`.
    pub(crate) async fn client(&self, state_dir: &Path, version: &str) -> Client {
        builder_for(&self.server.url, state_dir, version).build().await.unwrap()
    }

    /// A client whose downloads time out after `stall` without bytes.
    pub(crate) async fn impatient_client(&self, state_dir: &Path, version: &str, stall: Duration) -> Client {
        builder_for(&self.server.url, state_dir, version).stall_timeout(stall).build().await.unwrap()
    }
}

fn problem(status: u16) -> Reply {
    let body = Problem {
        kind: "https://halftone.dev/problems/test".into(),
        title: "Test problem".into(),
        status,
        detail: format!("the fake server answers {status}"),
    };
    Reply::status(status).header("Content-Type", "application/problem+json").body(serde_json::to_vec(&body).unwrap())
}

fn answer(world: &mut World, request: &Request) -> Reply {
    let path = request.path.as_str();
    if path == format!("/v1/apps/{APP}/check") {
        if let Some((status, retry_after)) = world.check_failure {
            let reply = problem(status);
            return match retry_after {
                Some(s) => reply.header("Retry-After", &s.to_string()),
                None => reply,
            };
        }
        let response = CheckResponse {
            next_check_s: world.next_check_s,
            update: world.offer.clone(),
            report_token: None,
            served_channel: None,
        };
        return Reply::json(200, &response);
    }
    if path == format!("/v1/apps/{APP}/events") {
        if let Some(status) = world.events_failure {
            return problem(status);
        }
        let batch: EventBatch = serde_json::from_slice(&request.body).unwrap();
        let accepted = EventsAccepted {
            accepted: batch.events.len() as u32,
            duplicates: 0,
            rejected: 0,
            rejections: Default::default(),
            metrics_accepted: batch.metrics.iter().map(|m| m.size() as u32).sum(),
            metrics_rejected: 0,
        };
        world.batches.push(batch);
        return Reply::json(202, &accepted);
    }
    let Some(bytes) = path.strip_prefix("/v1/artifacts/").and_then(|sha| world.artifacts.get(sha)).cloned() else {
        return problem(404);
    };
    let len = bytes.len();
    match world.serve.pop_front().unwrap_or(Serve::File) {
        Serve::File => serve_file(request, &bytes),
        Serve::IgnoreRange => Reply::status(200).body(bytes),
        Serve::Truncate(n) => Reply::status(200).body_announcing(len, bytes[..n].to_vec()),
        Serve::Stall(n) => Reply::status(200).body_announcing(len, bytes[..n].to_vec()).then(Then::Stall),
        Serve::Extra(n) => Reply::status(200).body([bytes, vec![0; n]].concat()),
        Serve::ExtraUnannounced(n) => Reply::status(200).body_until_close([bytes, vec![0; n]].concat()),
        Serve::Endless => Reply::status(200).body_until_close(bytes).then(Then::Endless),
        Serve::Replace(other) => Reply::status(200).body(other),
        Serve::Trickle { piece, every } => {
            Reply::status(200).body_announcing(len, Vec::new()).then(Then::Trickle { rest: bytes, piece, every })
        }
        Serve::Redirect(url) => Reply::status(307).header("Location", &url),
    }
}
