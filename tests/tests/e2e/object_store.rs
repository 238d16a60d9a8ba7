//! Artifacts in an S3-compatible object store (moto, see `s3_server`): publishing through the
//! admin client puts them in the bucket, the SDK downloads and verifies them (resuming with a
//! Range); a streamed object answers every download request exactly as a file in the data
//! dir does, header by header; a refused or cut upload leaves nothing in the bucket, not even
//! a pending multipart upload; redirect mode hands out a pre-signed URL that works and CDN
//! mode a URL under the CDN; HEAD is answered by the server in every mode; `/readyz` and the
//! download and upload routes report a bucket that is gone (503), and recover when it is back.
//! Each test is skipped, and says so on stderr, where no S3 server can be had.

use std::path::{Path, PathBuf};
use std::time::Duration;

use halftone_channels::Sha256;
use halftone_client::{CheckOutcome, Client, ClientBuilder, Update};
use halftone_server::{CdnBase, DownloadMode};
use serde_json::json;

use crate::harness::*;

/// A device of `p`'s app on linux/x86_64 running `version`, trusting the publisher's key.
fn device(server: &TestServer, p: &Publisher, state: &Path, version: &str) -> ClientBuilder {
    Client::builder()
        .server(&server.base)
        .app(p.app.as_str())
        .version(version)
        .platform("linux", "x86_64")
        .state_dir(state)
        .trusted_key(p.key.id().as_str(), &p.key.public_key().to_string())
}

async fn offered(client: &Client) -> Update {
    match client.check().await.unwrap() {
        CheckOutcome::Available(update) => update,
        other => panic!("expected an update, got {other:?}"),
    }
}

/// Where the SDK keeps the partial download of build `sha256` for `dest`.
fn part(dest: &Path, sha256: &Sha256) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!(".{sha256}.part"));
    PathBuf::from(name)
}

/// Downloads `update` through the SDK with the first half of it already in the part file;
/// asserts the transfer resumed there (a 206 from the half) and the file is `bytes`.
async fn resume_download(client: &Client, update: &Update, bytes: &[u8], dir: &Path) {
    let dest = dir.join("resumed.bin");
    let half = bytes.len() / 2;
    std::fs::write(part(&dest, update.sha256()), &bytes[..half]).unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = seen.clone();
    client.download(update, &dest, move |done, total| sink.lock().unwrap().push((done, total))).await.unwrap();
    assert_eq!(seen.lock().unwrap().first(), Some(&(half as u64, bytes.len() as u64)), "resumed at the half");
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
}

/// A raw client that does not follow redirects.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// Deterministic bytes that are not a repetition of a short pattern.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[tokio::test]
async fn a_release_published_into_a_bucket_downloads_and_resumes_through_the_sdk() {
    let Some(s3) =
        S3Server::get("object_store::a_release_published_into_a_bucket_downloads_and_resumes_through_the_sdk")
    else {
        return;
    };
    let bucket = s3.bucket("publish").await;
    let server = TestServer::start_with_bucket(bucket.clone(), DownloadMode::Stream);
    let p = Publisher::create(&server, "s3-flow").await;
    let draft = p.draft("1.1.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();
    let (bytes, sha) = (&draft.files[0], draft.spec.artifacts[0].sha256);
    assert_eq!(s3.keys(&bucket).await, vec![format!("artifacts/{sha}")], "the artifact is in the bucket");
    assert!(!server.data_dir().join("artifacts").exists(), "and not in the data dir");
    let again = p.admin.upload_bytes(bytes.clone()).await.unwrap();
    assert_eq!((again.size, again.created), (bytes.len() as u64, false), "a second upload changes nothing");

    let dir = tempfile::tempdir().unwrap();
    let client = device(&server, &p, &dir.path().join("state"), "1.0.0").build().await.unwrap();
    let update = offered(&client).await;
    let dest = dir.path().join("notes.bin");
    let file = client.download(&update, &dest, |_, _| {}).await.unwrap();
    assert_eq!(file.sha256(), &sha);
    assert_eq!(&std::fs::read(&dest).unwrap(), bytes, "the SDK verified and delivered the published bytes");
    resume_download(&client, &update, bytes, dir.path()).await;
}

/// The headers a download answer is compared by.
const COMPARED: [&str; 8] = [
    "content-length",
    "content-range",
    "content-type",
    "accept-ranges",
    "etag",
    "cache-control",
    "last-modified",
    "content-disposition",
];

/// Status, the [`COMPARED`] headers and the body (its length and digest) of one request.
async fn answer(
    client: &reqwest::Client,
    url: &str,
    method: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<Option<String>>, (usize, Sha256)) {
    let mut req = client.request(method.parse().unwrap(), url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let compared = COMPARED.iter().map(|h| res.headers().get(*h).map(|v| v.to_str().unwrap().to_owned())).collect();
    let body = res.bytes().await.unwrap();
    (status, compared, (body.len(), Sha256::digest(&body)))
}

#[tokio::test]
async fn a_streamed_object_answers_every_download_request_as_a_local_file_does() {
    let Some(s3) = S3Server::get("object_store::a_streamed_object_answers_every_download_request_as_a_local_file_does")
    else {
        return;
    };
    let local = TestServer::start();
    let remote = TestServer::start_with_bucket(s3.bucket("compare").await, DownloadMode::Stream);
    let bytes = noise(3000, 7);
    let sha = Sha256::digest(&bytes);
    for server in [&local, &remote] {
        server.admin().upload_bytes(bytes.clone()).await.unwrap();
    }
    let etag = format!("\"{sha}\"");
    let weak = format!("W/{etag}");
    let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("GET", vec![]),
        ("HEAD", vec![]),
        ("HEAD", vec![("range", "bytes=0-9")]),
        ("GET", vec![("range", "bytes=0-9")]),
        ("GET", vec![("range", "bytes=1000-")]),
        ("GET", vec![("range", "bytes=-100")]),
        ("GET", vec![("range", "bytes=0-")]),
        ("GET", vec![("range", "bytes=0-9,20-29")]),
        ("GET", vec![("range", "bytes=2990-5000")]),
        ("GET", vec![("range", "bytes=3000-")]),
        ("GET", vec![("range", "bytes=x-y")]),
        ("GET", vec![("range", "items=0-9")]),
        ("GET", vec![("range", "bytes=100-199"), ("if-range", &etag)]),
        ("GET", vec![("range", "bytes=100-199"), ("if-range", &weak)]),
        ("GET", vec![("range", "bytes=100-199"), ("if-range", "\"other\"")]),
        ("GET", vec![("range", "bytes=100-199"), ("if-range", "Sun, 06 Nov 1994 08:49:37 GMT")]),
        ("GET", vec![("if-range", &etag)]),
        ("GET", vec![("if-none-match", &etag)]),
        ("GET", vec![("if-none-match", "\"a\", *")]),
        ("HEAD", vec![("if-none-match", &etag)]),
        ("GET", vec![("if-none-match", "\"other\"")]),
        ("GET", vec![("if-match", &etag)]),
        ("GET", vec![("if-match", "*")]),
    ];
    let client = no_redirects();
    let missing = format!("/v1/artifacts/{}", Sha256::digest(b"missing"));
    let present = format!("/v1/artifacts/{sha}");
    for (method, headers) in &cases {
        for path in [&present, &missing] {
            let want = answer(&client, &local.url(path), method, headers).await;
            let got = answer(&client, &remote.url(path), method, headers).await;
            assert_eq!(got, want, "{method} {path} {headers:?}: the bucket answers as the data dir does");
        }
    }
    // And the answers are the documented ones, not merely equal.
    let (status, headers, body) = answer(&client, &remote.url(&present), "GET", &[("range", "bytes=1000-")]).await;
    let range = (2000, Sha256::digest(&bytes[1000..]));
    assert_eq!((status, headers[1].as_deref(), body), (206, Some("bytes 1000-2999/3000"), range));
}

#[tokio::test]
async fn a_refused_or_cut_upload_leaves_nothing_in_the_bucket() {
    let Some(s3) = S3Server::get("object_store::a_refused_or_cut_upload_leaves_nothing_in_the_bucket") else {
        return;
    };
    let bucket = s3.bucket("refused").await;
    let server = TestServer::start_with_bucket(bucket.clone(), DownloadMode::Stream);
    let http = server.raw_admin();
    // 20 MiB: three parts of the multipart upload are sent before the digest is known.
    let big = noise(20 << 20, 3);
    let sha = Sha256::digest(&big);
    let wrong = Sha256::digest(b"something else");

    let r = http.send("PUT", &format!("/v1/artifacts/{wrong}"), Some(big.clone()), &[]).await;
    r.assert_problem(422, "not");
    let small = http.send("PUT", &format!("/v1/artifacts/{wrong}"), Some(b"tiny".to_vec()), &[]).await;
    small.assert_problem(422, &wrong.to_string());

    // A client that dies after 10 MiB: the server sees the body end early.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let cut = tokio::spawn({
        let url = server.url(&format!("/v1/artifacts/{sha}"));
        let token = server.token.clone();
        async move {
            let body = reqwest::Body::wrap_stream(tokio_stream_of(rx));
            reqwest::Client::new().put(url).bearer_auth(token).body(body).send().await
        }
    });
    for i in 0..10 {
        tx.send(Ok(big[i << 20..(i + 1) << 20].to_vec())).await.unwrap();
    }
    tx.send(Err(std::io::Error::other("the build machine lost power"))).await.unwrap();
    let _ = cut.await.unwrap();

    let r = server.anonymous().get(&format!("/v1/artifacts/{sha}")).await;
    r.assert_problem(404, "there is no artifact");
    for _ in 0..50 {
        if s3.pending_uploads(&bucket).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(s3.pending_uploads(&bucket).await, 0, "refused uploads are aborted, their parts deleted");
    assert_eq!(s3.keys(&bucket).await, Vec::<String>::new(), "nothing is visible");

    // The same bytes, whole and under their own digest: stored, in parts, and read back whole.
    let stored = server.admin().upload_bytes(big.clone()).await.unwrap();
    assert_eq!((stored.size, stored.created), (big.len() as u64, true));
    assert_eq!(s3.keys(&bucket).await, vec![format!("artifacts/{sha}")]);
    let got = reqwest::get(server.url(&format!("/v1/artifacts/{sha}"))).await.unwrap().bytes().await.unwrap();
    assert!(got[..] == big[..], "the object is the uploaded bytes");
}

/// A stream of the receiver's items.
fn tokio_stream_of<T: Send + 'static>(
    rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

#[tokio::test]
async fn redirect_mode_hands_out_a_presigned_url_that_works_and_answers_head_itself() {
    let Some(s3) =
        S3Server::get("object_store::redirect_mode_hands_out_a_presigned_url_that_works_and_answers_head_itself")
    else {
        return;
    };
    let bucket = s3.bucket("redirect").await;
    let ttl = Duration::from_secs(300);
    let server = TestServer::start_with_bucket(bucket, DownloadMode::Redirect { ttl });
    let p = Publisher::create(&server, "s3-redirect").await;
    let draft = p.draft("1.1.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();
    let (bytes, sha) = (&draft.files[0], draft.spec.artifacts[0].sha256);
    let url = server.url(&format!("/v1/artifacts/{sha}"));

    let client = no_redirects();
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(r.headers()["cache-control"], "no-store", "a signed URL expires: its redirect is not kept");
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.starts_with(&format!("{}/", s3.endpoint)), "{location}");
    assert!(location.contains("X-Amz-Signature=") && location.contains("X-Amz-Expires=300"), "{location}");
    let direct = client.get(&location).send().await.unwrap();
    assert_eq!(direct.status().as_u16(), 200);
    assert!(direct.bytes().await.unwrap()[..] == bytes[..], "the signed URL serves the artifact");
    let ranged = client.get(&location).header("range", "bytes=100-").send().await.unwrap();
    assert_eq!(ranged.status().as_u16(), 206);
    assert!(ranged.bytes().await.unwrap()[..] == bytes[100..], "and ranges of it");

    let head = client.head(&url).send().await.unwrap();
    assert_eq!(head.status().as_u16(), 200, "HEAD is answered here, never redirected");
    assert_eq!(head.headers()["content-length"], bytes.len().to_string().as_str());
    assert_eq!(head.headers()["etag"], format!("\"{sha}\"").as_str());
    let not_modified = client.get(&url).header("if-none-match", format!("\"{sha}\"")).send().await.unwrap();
    assert_eq!(not_modified.status().as_u16(), 304);
    let missing = server.anonymous().get(&format!("/v1/artifacts/{}", Sha256::digest(b"nope"))).await;
    missing.assert_problem(404, "there is no artifact");

    // The SDK follows the redirect to the bucket's host once the app allows it, and resumes
    // through it.
    let dir = tempfile::tempdir().unwrap();
    let bucket_host = s3.endpoint.split_once("://").unwrap().1.trim_end_matches('/');
    let device =
        device(&server, &p, &dir.path().join("state"), "1.0.0").allow_download_host(bucket_host).build().await.unwrap();
    let update = offered(&device).await;
    let dest = dir.path().join("notes.bin");
    device.download(&update, &dest, |_, _| {}).await.unwrap();
    assert_eq!(&std::fs::read(&dest).unwrap(), bytes);
    resume_download(&device, &update, bytes, dir.path()).await;
}

#[tokio::test]
async fn cdn_mode_redirects_to_the_cdn_url_of_the_digest() {
    let Some(s3) = S3Server::get("object_store::cdn_mode_redirects_to_the_cdn_url_of_the_digest") else {
        return;
    };
    let cdn = CdnBase::parse("https://cdn.example.test/halftone/").unwrap();
    let server = TestServer::start_with_bucket(s3.bucket("cdn").await, DownloadMode::Cdn(cdn));
    let bytes = noise(5000, 11);
    let sha = Sha256::digest(&bytes);
    server.admin().upload_bytes(bytes).await.unwrap();
    let client = no_redirects();
    let url = server.url(&format!("/v1/artifacts/{sha}"));
    let r = client.get(&url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 307);
    assert_eq!(r.headers()["location"], format!("https://cdn.example.test/halftone/{sha}").as_str());
    assert_eq!(r.headers()["cache-control"], "public, max-age=3600");
    let head = client.head(&url).send().await.unwrap();
    assert_eq!((head.status().as_u16(), head.headers()["content-length"].to_str().unwrap()), (200, "5000"));
}

#[tokio::test]
async fn a_bucket_that_is_gone_is_reported_and_recovered_from_without_a_restart() {
    let Some(s3) =
        S3Server::get("object_store::a_bucket_that_is_gone_is_reported_and_recovered_from_without_a_restart")
    else {
        return;
    };
    let bucket = s3.bucket("gone").await;
    let server = TestServer::start_with_bucket(bucket.clone(), DownloadMode::Stream);
    let bytes = noise(4000, 5);
    let sha = Sha256::digest(&bytes);
    server.admin().upload_bytes(bytes.clone()).await.unwrap();
    let anonymous = server.anonymous();
    let readyz = || async { reqwest::get(server.url("/readyz")).await.unwrap() };
    assert_eq!(readyz().await.status().as_u16(), 200);

    s3.delete_bucket(&bucket).await;
    let r = readyz().await;
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.text().await.unwrap(), "artifact store unavailable\n");
    let r = anonymous.get(&format!("/v1/artifacts/{sha}")).await;
    r.assert_problem(503, "unavailable");
    let other = noise(100, 9);
    let r =
        server.raw_admin().send("PUT", &format!("/v1/artifacts/{}", Sha256::digest(&other)), Some(other), &[]).await;
    r.assert_problem(503, "artifact store is unavailable; retry shortly");

    s3.recreate_bucket(&bucket).await;
    assert_eq!(readyz().await.status().as_u16(), 200, "ready again, no restart");
    server.admin().upload_bytes(bytes.clone()).await.unwrap();
    let got = reqwest::get(server.url(&format!("/v1/artifacts/{sha}"))).await.unwrap().bytes().await.unwrap();
    assert!(got[..] == bytes[..]);
}

#[tokio::test]
async fn a_server_whose_object_store_cannot_be_reached_does_not_start() {
    // No S3 server needed: nothing listens on this port.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut config = halftone_server::Config::for_tests(dir.path());
    config.artifacts = halftone_server::ArtifactLocation::S3(halftone_server::S3Location {
        bucket: "nowhere".into(),
        prefix: String::new(),
        endpoint: Some(format!("http://127.0.0.1:{port}")),
        region: "us-east-1".into(),
        // Credentials are given: without them the client would ask the cloud's metadata service.
        credentials: Some(halftone_server::S3Credentials {
            access_key_id: "testing".into(),
            secret_access_key: halftone_server::Secret::new("testing"),
        }),
    });
    let error = match halftone_server::build(config).await {
        Ok(_) => panic!("the server started without its object store"),
        Err(e) => format!("{e:#}"),
    };
    assert!(error.contains("checking the artifact store") && error.contains("s3://nowhere"), "{error}");
}

#[tokio::test]
async fn client_signatures_are_checked_against_the_bytes_in_the_bucket() {
    let Some(s3) = S3Server::get("object_store::client_signatures_are_checked_against_the_bytes_in_the_bucket") else {
        return;
    };
    let bucket = s3.bucket("clients").await;
    let server = TestServer::start_with_bucket(bucket, DownloadMode::Stream);
    let p = Publisher::create(&server, "s3-clients").await;
    // Genuine: read back from the bucket and accepted.
    let good = p.client_draft("1.0.0", &[]);
    p.publish_draft(&good, "stable", json!({"basis_points": 10000})).await.unwrap();
    // A SHA-512 of other bytes: refused after reading the stored object.
    let mut bad = p.client_draft("1.1.0", &[]);
    let other = p.client_draft("1.2.0", &[]);
    bad.spec.artifacts[0].clients.as_mut().unwrap().sha512 = other.spec.artifacts[0].clients.clone().unwrap().sha512;
    p.upload(&bad).await;
    let body = json!({"release": bad.spec, "channel": "stable", "rollout": {"basis_points": 10000}});
    p.http.post("/v1/apps/s3-clients/releases", &body).await.assert_problem(422, "is not the file's");
}
