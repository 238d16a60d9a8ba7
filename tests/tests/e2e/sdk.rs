//! The real SDK (`halftone-client`) against the real server: an app's check, download,
//! verify and report; channel switches and the device id across restarts; and forgeries the
//! SDK must refuse even though the server hands them out (tampered bytes on the server's disk,
//! a signing key the app does not compile in, a replayed old build), each leaving nothing at
//! the download's destination. Resuming a partial download goes through a real `Range`
//! request.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use halftone_client::{CheckOutcome, Client, ClientBuilder, Error, EventKind, Refusal, Rejection, Sha256, Update};
use serde_json::json;

use crate::harness::*;

/// A client of `server` for `p`'s app running `version` on linux/x86_64, trusting the
/// publisher's key (the key compiled into the app).
fn app(server: &TestServer, p: &Publisher, state: &Path, version: &str) -> ClientBuilder {
    let key = p.key.public_key().to_string();
    untrusting(server, p, state, version).trusted_key(p.key.id().as_str(), &key)
}

/// The same without any trusted key yet.
fn untrusting(server: &TestServer, p: &Publisher, state: &Path, version: &str) -> ClientBuilder {
    Client::builder()
        .server(&server.base)
        .app(p.app.as_str())
        .version(version)
        .platform("linux", "x86_64")
        .state_dir(state)
}

#[track_caller]
fn available(outcome: Result<CheckOutcome, Error>) -> Update {
    match outcome {
        Ok(CheckOutcome::Available(update)) => update,
        other => panic!("expected an update, got {other:?}"),
    }
}

/// Where the SDK keeps the partial download of build `sha256` for `dest`:
/// `<dest>.<sha256>.part`.
fn part(dest: &Path, sha256: &Sha256) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!(".{sha256}.part"));
    PathBuf::from(name)
}

/// The partial files left for `dest`, of any build.
fn parts(dest: &Path) -> Vec<PathBuf> {
    let name = dest.file_name().unwrap().to_str().unwrap();
    let Ok(entries) = std::fs::read_dir(dest.parent().unwrap()) else { return Vec::new() };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_str().is_some_and(|n| n.starts_with(name) && n.ends_with(".part")))
        .collect()
}

/// Every progress call of a download: (downloaded, total).
type Seen = Arc<Mutex<Vec<(u64, u64)>>>;

/// A progress closure and what it saw.
fn recorder() -> (impl FnMut(u64, u64) + Send + 'static, Seen) {
    let seen = Seen::default();
    let sink = seen.clone();
    (move |done, total| sink.lock().unwrap().push((done, total)), seen)
}

/// Asserts a refused download left nothing behind: no file at `dest`, no part file.
#[track_caller]
fn assert_nothing_at(dest: &Path) {
    assert!(!dest.exists(), "nothing may be at {}", dest.display());
    assert_eq!(parts(dest), Vec::<PathBuf>::new(), "the part file must be deleted");
}

#[tokio::test]
async fn an_app_checks_downloads_verifies_and_reports() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "sdk-app-flow").await;
    let dir = tempfile::tempdir().unwrap();
    let client = app(&server, &p, &dir.path().join("state"), "1.0.0").build().await.unwrap();
    assert_eq!(client.check().await.unwrap(), CheckOutcome::UpToDate, "nothing is published yet");

    let draft = p.draft("1.1.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();
    let update = available(client.check().await);
    let (bytes, artifact) = (&draft.files[0], &draft.spec.artifacts[0]);
    assert_eq!((update.version().to_string(), update.channel().as_str()), ("1.1.0".into(), "stable"));
    assert_eq!((update.notes(), update.is_critical()), ("release 1.1.0", false));
    assert_eq!((update.size(), update.sha256()), (bytes.len() as u64, &artifact.sha256));
    assert_eq!(update.url(), server.url(&format!("/v1/artifacts/{}", artifact.sha256)));

    let dest = dir.path().join("notes-1.1.0.bin");
    let (progress, seen) = recorder();
    let file = client.download(&update, &dest, progress).await.unwrap();
    assert_eq!((file.path(), file.version(), file.sha256()), (dest.as_path(), update.version(), &artifact.sha256));
    assert_eq!(&std::fs::read(&dest).unwrap(), bytes, "the file is the published artifact, byte for byte");
    assert_eq!(parts(&dest), Vec::<PathBuf>::new());
    let seen = seen.lock().unwrap().clone();
    let size = bytes.len() as u64;
    assert_eq!((seen.first(), seen.last()), (Some(&(0, size)), Some(&(size, size))), "{seen:?}");
    assert!(seen.windows(2).all(|w| w[0].0 <= w[1].0), "progress only grows: {seen:?}");

    client.report(EventKind::InstallSucceeded, file.version());
    client.report(EventKind::FirstRun, file.version());
    client.flush().await.unwrap();
    // `sent` counts events the server acknowledged: download_started (reported by
    // `download`), install_succeeded and first_run; none refused, none left.
    let stats = client.report_stats();
    assert_eq!((stats.queued, stats.sent, stats.dropped, stats.rejected), (0, 3, 0, 0), "{stats:?}");
    // They count: the SDK sent each with the report token of the offer it checked in for.
    let status = server.admin().status(&"sdk-app-flow".parse().unwrap()).await.unwrap();
    let f = status.releases[0].rollouts[0].figures;
    assert_eq!((f.downloads, f.installs, f.first_runs), (1, 1, 1), "{f:?}");
}

#[tokio::test]
async fn switching_to_a_more_stable_channel_never_downgrades() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "sdk-channels").await;
    p.publish("1.0.0", "stable", "100%").await;
    p.publish("1.1.0", "beta", "100%").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    // The user picks beta on 1.0.0 and installs 1.1.0 from it.
    let on_old = app(&server, &p, &state, "1.0.0").build().await.unwrap();
    assert_eq!(on_old.channel().as_str(), "stable", "the default channel");
    on_old.set_channel("beta".parse().unwrap()).unwrap();
    let update = available(on_old.check().await);
    assert_eq!((update.version().to_string(), update.channel().as_str()), ("1.1.0".into(), "beta"));
    let (progress, _) = recorder();
    on_old.download(&update, dir.path().join("notes.bin"), progress).await.unwrap();

    // The app restarts on 1.1.0: the choice of beta was kept. Back to stable, whose newest is
    // 1.0.0 (and then 1.0.1): up to date, never offered an older version.
    let on_new = app(&server, &p, &state, "1.1.0").build().await.unwrap();
    assert_eq!(on_new.channel().as_str(), "beta", "the channel choice survives a restart");
    assert_eq!(on_new.check().await.unwrap(), CheckOutcome::UpToDate);
    on_new.set_channel("stable".parse().unwrap()).unwrap();
    assert_eq!(on_new.check().await.unwrap(), CheckOutcome::UpToDate);
    p.publish("1.0.1", "stable", "100%").await;
    assert_eq!(on_new.check().await.unwrap(), CheckOutcome::UpToDate, "1.0.1 is below the running 1.1.0");

    // Once stable passes 1.1.0, the device moves on.
    let restarted = app(&server, &p, &state, "1.1.0").build().await.unwrap();
    assert_eq!(restarted.channel().as_str(), "stable");
    p.publish("1.2.0", "stable", "100%").await;
    let update = available(restarted.check().await);
    assert_eq!((update.version().to_string(), update.channel().as_str()), ("1.2.0".into(), "stable"));
}

#[tokio::test]
async fn the_device_id_is_stable_across_clients_on_one_state_dir() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "sdk-device-id").await;
    let (one, other) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = app(&server, &p, one.path(), "1.0.0").build().await.unwrap();
    let again = app(&server, &p, one.path(), "1.0.0").build().await.unwrap();
    let elsewhere = app(&server, &p, other.path(), "1.0.0").build().await.unwrap();
    assert_eq!(first.device_id(), again.device_id());
    assert_ne!(first.device_id(), elsewhere.device_id());
    let on_disk = std::fs::read_to_string(one.path().join("device-id")).unwrap();
    assert_eq!(on_disk.trim(), first.device_id().as_str());

    // The server sees that id: a 0% rollout that allows only it reaches this device alone.
    let draft = p.draft("1.1.0", &[]);
    let rollout = json!({"basis_points": 0, "allow": [first.device_id().as_str()]});
    p.publish_draft(&draft, "stable", rollout).await.unwrap();
    assert_eq!(available(again.check().await).version().to_string(), "1.1.0");
    assert_eq!(elsewhere.check().await.unwrap(), CheckOutcome::UpToDate);
}

#[tokio::test]
async fn bytes_changed_on_the_servers_disk_are_refused() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "sdk-tampered").await;
    let draft = p.draft("1.1.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();
    let sha = draft.spec.artifacts[0].sha256;

    // Someone with access to the server's disk swaps the build (same size, one bit).
    let stored = server.data_dir().join("artifacts").join(sha.to_string());
    let mut tampered = std::fs::read(&stored).unwrap();
    assert_eq!(&tampered, &draft.files[0], "the server stores the artifact under its digest");
    tampered[100] ^= 1;
    std::fs::write(&stored, &tampered).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let client = app(&server, &p, &dir.path().join("state"), "1.0.0").build().await.unwrap();
    let update = available(client.check().await);
    let dest = dir.path().join("notes.bin");
    let (progress, seen) = recorder();
    let e = client.download(&update, &dest, progress).await.unwrap_err();
    let size = tampered.len() as u64;
    assert_eq!(seen.lock().unwrap().last(), Some(&(size, size)), "the whole file came down before the check");
    match e {
        Error::Rejected(Rejection::HashMismatch { expected, actual }) => {
            assert_eq!((expected, actual), (sha, Sha256::digest(&tampered)));
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    assert_nothing_at(&dest);
}

#[tokio::test]
async fn a_release_signed_by_a_key_the_app_does_not_know_is_refused() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "sdk-unknown-key").await;
    p.publish("1.1.0", "stable", "100%").await;
    // The app compiles in another key under another id (say, a different product's).
    let dir = tempfile::tempdir().unwrap();
    let other = signing_key(8).public_key().to_string();
    let client = untrusting(&server, &p, &dir.path().join("state"), "1.0.0")
        .trusted_key("release-2026", &other)
        .build()
        .await
        .unwrap();
    // Refused at the check, before a byte is downloaded: its signature could never verify.
    match client.check().await {
        Err(Error::Refused(Refusal::UntrustedKey { key_id })) => assert_eq!(&key_id, p.key.id()),
        other => panic!("expected a refusal of the untrusted key, got {other:?}"),
    }
}

#[tokio::test]
async fn a_release_signed_by_an_impostor_key_under_the_trusted_id_is_refused() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "sdk-impostor").await;
    p.publish("1.1.0", "stable", "100%").await;
    // The server's app trusts the publisher's key under `p.key_id`; the app compiled in
    // another public key under that same id. The server accepts the release; the app must not.
    let dir = tempfile::tempdir().unwrap();
    let compiled_in = signing_key(9).public_key().to_string();
    let client = untrusting(&server, &p, &dir.path().join("state"), "1.0.0")
        .trusted_key(p.key.id().as_str(), &compiled_in)
        .build()
        .await
        .unwrap();
    let update = available(client.check().await);
    let dest = dir.path().join("notes.bin");
    let (progress, _) = recorder();
    match client.download(&update, &dest, progress).await {
        Err(Error::Rejected(Rejection::BadSignature(id))) => assert_eq!(&id, p.key.id()),
        other => panic!("expected a bad signature, got {other:?}"),
    }
    assert_nothing_at(&dest);
}

/// 1.5.0 on stable and 2.0.0 on beta, both at 100%.
async fn two_generations(server: &TestServer, app_id: &str) -> Publisher {
    let p = Publisher::create(server, app_id).await;
    p.publish("1.5.0", "stable", "100%").await;
    p.publish("2.0.0", "beta", "100%").await;
    p
}

#[tokio::test]
async fn a_genuine_old_build_is_refused_below_the_watermark_after_a_reinstall() {
    let server = TestServer::start();
    let p = two_generations(&server, "sdk-replay").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    // The device took 2.0.0 from beta and installed it.
    let beta = app(&server, &p, &state, "1.0.0").default_channel("beta").build().await.unwrap();
    let update = available(beta.check().await);
    assert_eq!(update.version().to_string(), "2.0.0");
    let (progress, _) = recorder();
    let file = beta.download(&update, dir.path().join("notes-2.bin"), progress).await.unwrap();
    beta.installed(&file).await.unwrap();

    // An old 1.0.0 is reinstalled (state dir kept) and asks on stable, where the server
    // offers the genuine, correctly signed 1.5.0: the SDK refuses it.
    let reinstalled = app(&server, &p, &state, "1.0.0").build().await.unwrap();
    let offered =
        check(&server.anonymous(), "sdk-replay", &Device::new(reinstalled.device_id().as_str(), "1.0.0", "stable"))
            .await;
    assert_eq!(offered.update.map(|u| u.version.to_string()).as_deref(), Some("1.5.0"), "the server does offer it");
    match reinstalled.check().await {
        Err(Error::Refused(Refusal::BelowWatermark { offered, watermark })) => {
            assert_eq!((offered.to_string(), watermark.to_string()), ("1.5.0".into(), "2.0.0".into()));
        }
        other => panic!("expected a refusal below the watermark, got {other:?}"),
    }
    assert!(!dir.path().join("notes-1.5.bin").exists());

    // A device that never verified anything takes the same 1.5.0.
    let fresh = app(&server, &p, &dir.path().join("fresh"), "1.0.0").build().await.unwrap();
    let update = available(fresh.check().await);
    let (progress, _) = recorder();
    fresh.download(&update, dir.path().join("fresh.bin"), progress).await.unwrap();
}

#[tokio::test]
async fn an_old_build_offered_before_the_watermark_rose_is_refused_at_download() {
    let server = TestServer::start();
    let p = two_generations(&server, "sdk-replay-race").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    // Two processes of the app on one state dir: one is offered 1.5.0 while the watermark is
    // still empty, then the other installs 2.0.0.
    let stale = app(&server, &p, &state, "1.0.0").build().await.unwrap();
    let old = available(stale.check().await);
    assert_eq!(old.version().to_string(), "1.5.0");
    let beta = app(&server, &p, &state, "1.0.0").default_channel("beta").build().await.unwrap();
    let new = available(beta.check().await);
    let (progress, _) = recorder();
    let file = beta.download(&new, dir.path().join("notes-2.bin"), progress).await.unwrap();
    beta.installed(&file).await.unwrap();

    // The stale offer downloads, verifies as genuine, and is refused against the watermark on
    // disk before it is moved into place.
    let dest = dir.path().join("notes-1.5.bin");
    let (progress, _) = recorder();
    match stale.download(&old, &dest, progress).await {
        Err(Error::Refused(Refusal::BelowWatermark { offered, watermark })) => {
            assert_eq!((offered.to_string(), watermark.to_string()), ("1.5.0".into(), "2.0.0".into()));
        }
        other => panic!("expected a refusal below the watermark, got {other:?}"),
    }
    assert_nothing_at(&dest);
}

#[tokio::test]
async fn an_interrupted_download_resumes_with_a_range_request() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "sdk-resume").await;
    let draft = p.draft("1.1.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();
    let bytes = &draft.files[0];
    let dir = tempfile::tempdir().unwrap();
    let client = app(&server, &p, &dir.path().join("state"), "1.0.0").build().await.unwrap();
    let update = available(client.check().await);

    // What an interrupted transfer leaves: the first half in `<dest>.<sha256>.part`.
    let dest = dir.path().join("notes.bin");
    let half = bytes.len() / 2;
    std::fs::write(part(&dest, update.sha256()), &bytes[..half]).unwrap();
    let (progress, seen) = recorder();
    client.download(&update, &dest, progress).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let size = bytes.len() as u64;
    // The body started at the half: the server answered the Range request with a 206 whose
    // Content-Range starts there (a 200 would restart at 0).
    assert_eq!(seen.first(), Some(&(half as u64, size)), "{seen:?}");
    assert_eq!(seen.last(), Some(&(size, size)));
    assert_eq!(&std::fs::read(&dest).unwrap(), bytes);
    assert_eq!(parts(&dest), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_corrupt_partial_download_is_rejected_and_the_retry_starts_over() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "sdk-resume-bad").await;
    let draft = p.draft("1.1.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();
    let bytes = &draft.files[0];
    let dir = tempfile::tempdir().unwrap();
    let client = app(&server, &p, &dir.path().join("state"), "1.0.0").build().await.unwrap();
    let update = available(client.check().await);

    // A partial file whose bytes are not the build's: resuming appends the real rest, and the
    // whole fails verification and is deleted.
    let dest = dir.path().join("notes.bin");
    std::fs::write(part(&dest, update.sha256()), vec![b'x'; bytes.len() / 2]).unwrap();
    let (progress, _) = recorder();
    let e = client.download(&update, &dest, progress).await.unwrap_err();
    assert!(matches!(e, Error::Rejected(Rejection::HashMismatch { .. })), "{e:?}");
    assert_nothing_at(&dest);

    let (progress, seen) = recorder();
    client.download(&update, &dest, progress).await.unwrap();
    assert_eq!(seen.lock().unwrap().first(), Some(&(0, bytes.len() as u64)), "a clean start");
    assert_eq!(&std::fs::read(&dest).unwrap(), bytes);
}

#[test]
fn the_blocking_client_checks_downloads_and_reports_without_a_runtime() {
    let server = TestServer::start();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let p = rt.block_on(Publisher::create(&server, "sdk-blocking"));
    let draft = p.draft("1.1.0", &[]);
    rt.block_on(p.publish_draft(&draft, "stable", json!({"basis_points": 10000}))).unwrap();
    drop(rt);

    let dir = tempfile::tempdir().unwrap();
    let client = app(&server, &p, &dir.path().join("state"), "1.0.0").build_blocking().unwrap();
    let update = available(client.check());
    let dest = dir.path().join("notes.bin");
    let (progress, _) = recorder();
    let file = client.download(&update, &dest, progress).unwrap();
    assert_eq!(file.version().to_string(), "1.1.0");
    assert_eq!(&std::fs::read(&dest).unwrap(), &draft.files[0]);
    client.report(EventKind::InstallSucceeded, file.version());
    client.flush().unwrap();
    assert_eq!(client.report_stats().sent, 2, "download_started and install_succeeded");
}
