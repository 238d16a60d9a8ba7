//! Getting in again: a first start that fails does not use up the bootstrap token, and
//! `halftone token recover` makes an admin token for whoever has the data dir.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

#[tokio::test]
async fn a_failed_first_start_keeps_the_bootstrap_token_and_recover_makes_a_new_admin() {
    let (_tmp, data) = data_dir();
    // Someone else holds the port: the first start fails, and makes no token.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut first = Command::new(HALFTONE)
        .args(["serve", "--bind", &addr, "--data-dir", data.to_str().unwrap()])
        .env_remove("HALFTONE_BIND")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = first.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = first.kill();
            panic!("halftone serve kept running on a taken port");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(first.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("binding") && !stderr.contains("bootstrap admin token"), "{stderr}");
    drop(taken);

    // The next start that serves prints the one bootstrap token.
    let server = Server::start(&data, true).await;
    let bootstrap = server.bootstrap.clone().expect("the bootstrap token was not used up");
    assert_eq!(server.http(Some(&bootstrap)).get("/v1/apps").await.status, 200);
    server.kill9();

    // Lost it? Whoever has the data dir (and the server stopped) can make a new admin token.
    let run = offline(&["token", "recover", "--data-dir", data.to_str().unwrap()]).success();
    let token = run.stdout.trim().strip_prefix("recovered admin token (shown only now): ").expect(&run.stdout);
    let server = Server::start(&data, false).await;
    assert_eq!(server.bootstrap, None);
    let admin = server.http(Some(token));
    assert_eq!(admin.get("/v1/apps").await.status, 200);
    let audit = admin.get("/v1/audit").await.ok();
    let last = audit["entries"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["actor"].as_str(), last["action"].as_str()), (Some("recovery"), Some("token.create")), "{audit}");
    assert!(!audit.to_string().contains(token), "no secret in the log");
}
