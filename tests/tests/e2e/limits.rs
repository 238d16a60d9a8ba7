//! Connection limits and load shedding, with limits small enough to reach in a test: request
//! rates (429 with Retry-After), the body deadline (408), the early 413 on a declared size, and
//! the cap on connections per address. Raw TCP where the point is what is *not* sent.

use std::time::{Duration, Instant};

use halftone_server::Limits;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::*;

/// Sends `head` (and `body`) on a new connection and reads the answer until the server closes
/// the connection or `within` passes: (status, headers and body as text, time taken).
async fn raw(server: &TestServer, head: &str, body: &[u8], within: Duration) -> (u16, String, Duration) {
    let started = Instant::now();
    let mut conn = TcpStream::connect(server.addr()).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let answer = read_answer(&mut conn, within).await;
    (status_of(&answer), answer, started.elapsed())
}

async fn read_answer(conn: &mut TcpStream, within: Duration) -> String {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    while let Ok(Ok(n)) = tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&answer).into_owned()
}

fn status_of(answer: &str) -> u16 {
    answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// The problem body at the end of a raw answer.
fn problem_of(answer: &str) -> Value {
    assert!(answer.to_ascii_lowercase().contains("content-type: application/problem+json"), "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

fn check_head(len: u64) -> String {
    format!(
        "POST /v1/apps/notes/check HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    )
}

#[tokio::test]
async fn over_a_rate_devices_and_admins_get_429_with_retry_after() {
    let limits = Limits { device_rate_per_address: Some(2), admin_rate_per_address: Some(50), ..Limits::unlimited() };
    let server = TestServer::start_with_limits(limits);
    Publisher::create(&server, "notes").await;
    let device = server.anonymous();
    let check =
        json!({"device_id": "d1", "current_version": "1.0.0", "channel": "stable", "os": "linux", "arch": "x86_64"});
    // A burst of twice the rate passes; the next is shed.
    let mut statuses = Vec::new();
    let mut shed = None;
    for _ in 0..8 {
        let r = device.post("/v1/apps/notes/check", &check).await;
        statuses.push(r.status);
        if r.status == 429 {
            shed = Some(r);
            break;
        }
    }
    let shed = shed.unwrap_or_else(|| panic!("never shed: {statuses:?}"));
    assert!(statuses.iter().filter(|s| **s == 200).count() >= 4, "{statuses:?}");
    shed.assert_problem(429, "too many device requests from this address");
    assert_eq!(shed.body["type"], "urn:halftone:problem:too-many-requests");
    let retry_after: u64 = shed.retry_after.as_deref().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    // Other lanes are not shed with the devices: admins and probes still get through.
    assert_eq!(server.raw_admin().get("/v1/apps").await.status, 200);
    assert_eq!(device.get("/healthz").await.status, 200);
    // After Retry-After, check-ins are answered again.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    assert_eq!(device.post("/v1/apps/notes/check", &check).await.status, 200);

    // The admin lane has its own rate.
    let limits = Limits { admin_rate_per_address: Some(1), ..Limits::unlimited() };
    let server = TestServer::start_with_limits(limits);
    let admin = server.raw_admin();
    let replies = [admin.get("/v1/apps").await, admin.get("/v1/apps").await, admin.get("/v1/apps").await];
    assert_eq!(replies.each_ref().map(|r| r.status), [200, 200, 429], "{replies:?}");
    replies[2].assert_problem(429, "too many admin requests");
    assert_eq!(server.anonymous().post("/v1/apps/notes/check", &check).await.status, 404, "devices are not shed");
}

#[tokio::test]
async fn a_trickled_body_is_cut_off_with_408_and_a_stalled_upload_too() {
    let limits = Limits { body_timeout: Duration::from_millis(300), ..Limits::unlimited() };
    let server = TestServer::start_with_limits(limits);
    Publisher::create(&server, "notes").await;
    let (status, answer, took) = raw(&server, &check_head(100), b"{\"device_id\":", Duration::from_secs(5)).await;
    assert_eq!(status, 408, "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");
    let p = problem_of(&answer);
    assert!(p["detail"].as_str().unwrap().contains("did not arrive in time"), "{p}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"), "{answer}");

    let sha = "ab".repeat(32);
    let head = format!(
        "PUT /v1/artifacts/{sha} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-length: 1000\r\n\r\n",
        server.token
    );
    let (status, answer, _) = raw(&server, &head, &[0u8; 10], Duration::from_secs(5)).await;
    assert_eq!(status, 408, "{answer}");
    assert!(problem_of(&answer)["detail"].as_str().unwrap().contains("the upload stalled"), "{answer}");
    assert_eq!(server.anonymous().get(&format!("/v1/artifacts/{sha}")).await.status, 404, "nothing was stored");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_sent() {
    let server = TestServer::start();
    // No body at all follows these heads: the answer must not wait for one.
    let (status, answer, took) = raw(&server, &check_head(10_000_000_000), b"", Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{answer}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(problem_of(&answer)["detail"].as_str().unwrap().contains("exceeds the limit of 1048576 bytes"));

    let head = format!(
        "PUT /v1/artifacts/{} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-length: {}\r\n\r\n",
        "ab".repeat(32),
        server.token,
        64 * 1024 * 1024 + 1
    );
    let (status, answer, took) = raw(&server, &head, b"", Duration::from_secs(5)).await;
    assert_eq!(status, 413, "{answer}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(problem_of(&answer)["detail"].as_str().unwrap().contains("the upload exceeds the limit of 67108864 bytes"));
    // The server still answers (the refused connections were closed, not the server).
    assert_eq!(server.anonymous().get("/healthz").await.status, 200);
}

#[tokio::test]
async fn connections_over_the_cap_per_address_are_refused_and_the_others_work() {
    let limits = Limits { max_connections_per_address: Some(3), ..Limits::unlimited() };
    let server = TestServer::start_with_limits(limits);
    let healthz = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut conn = TcpStream::connect(server.addr()).await.unwrap();
        conn.write_all(healthz).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), 200);
        open.push(conn);
    }
    // The fourth is answered 429 and closed, without waiting for its request.
    let started = Instant::now();
    let mut extra = TcpStream::connect(server.addr()).await.unwrap();
    let answer = read_answer(&mut extra, Duration::from_secs(3)).await;
    assert_eq!(status_of(&answer), 429, "{answer:?} after {:?}", started.elapsed());
    assert!(answer.to_ascii_lowercase().contains("retry-after: "), "{answer}");
    assert!(problem_of(&answer)["detail"].as_str().unwrap().contains("too many open connections"), "{answer}");
    let mut rest = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(3), extra.read(&mut rest)).await.unwrap();
    assert!(matches!(closed, Ok(0) | Err(_)), "the refused connection is closed: {closed:?}");
    // The three still work, on the same connections.
    for conn in &mut open {
        conn.write_all(healthz).await.unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).await.unwrap();
        assert_eq!(status_of(&String::from_utf8_lossy(&buf[..n])), 200);
    }
    // Closing one frees its place.
    drop(open.pop());
    let mut again = None;
    for _ in 0..50 {
        let mut conn = TcpStream::connect(server.addr()).await.unwrap();
        conn.write_all(healthz).await.unwrap();
        let answer = read_answer_once(&mut conn).await;
        if status_of(&answer) == 200 {
            again = Some(conn);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "a closed connection gives its place back");
}

/// One read of an answer (the connection stays open on keep-alive).
async fn read_answer_once(conn: &mut TcpStream) -> String {
    let mut buf = [0u8; 2048];
    match tokio::time::timeout(Duration::from_secs(3), conn.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        _ => String::new(),
    }
}
