//! Install feedback that one host cannot forge (issue 16): events count only with the report
//! token a check-in answer gave for their device, version and channel, and one client network
//! counts for at most 20 devices of a release. So one host can neither halt a good build with
//! made-up failures nor hide a bad build's real failures behind made-up successes.
//!
//! The server believes `X-Forwarded-For` from 127.0.0.1 here, so that the test can play
//! devices on many networks; the attacker sends none (or one it picks: it is one host).

use std::sync::Arc;

use halftone_channels::wire::{CheckResponse, StatusView};
use halftone_server::clock::ManualClock;
use serde_json::{Value, json};

use crate::feedback::post_from;
use crate::harness::*;

/// A server behind the test's proxy with `notes` 1.0.0 on stable at 100% and 1.1.0 rolled out
/// to everyone on stable under a gate: halt above `max_failure_rate` once 20 devices installed
/// or failed.
async fn gated(max_failure_rate: f64) -> (TestServer, Publisher) {
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let server = TestServer::start_behind_proxy(clock);
    let p = Publisher::create(&server, "notes").await;
    p.publish("1.0.0", "stable", "100%").await;
    let gate = json!({"max_install_failure_rate": max_failure_rate, "min_sample": 20});
    p.publish_draft(&p.draft("1.1.0", &[]), "stable", json!({"basis_points": 10000, "gate": gate})).await.unwrap();
    (server, p)
}

/// The rollout's state and figures after the health gates ran.
async fn after_tick(server: &TestServer) -> (String, halftone_channels::wire::Figures) {
    server.state().tick().await.unwrap();
    let s: StatusView = server.admin().status(&"notes".parse().unwrap()).await.unwrap();
    let r = &s.releases.iter().find(|r| r.version.to_string() == "1.1.0").unwrap().rollouts[0];
    (r.state.to_string(), r.figures)
}

/// Checks `id` in as a device running 1.0.0 on stable; answers its answer (an offer of 1.1.0).
async fn check_in(server: &TestServer, id: &str) -> CheckResponse {
    let answer = check(&server.anonymous(), "notes", &Device::new(id, "1.0.0", "stable")).await;
    assert_eq!(answer.update.as_ref().map(|u| u.version.to_string()), Some("1.1.0".into()));
    answer
}

fn offer_token(answer: &CheckResponse) -> String {
    answer.update.as_ref().unwrap().report_token.expect("an offer carries a token").to_string()
}

#[tokio::test]
async fn forged_failures_without_valid_tokens_do_not_halt_a_good_build() {
    let (server, _p) = gated(0.05).await;
    let http = server.anonymous();
    // A real device's token, to show that it is bound to its device.
    let real = offer_token(&check_in(&server, "real-0").await);
    let bogus = "0".repeat(32);
    for (round, token) in [None, Some(bogus.as_str()), Some(real.as_str())].into_iter().enumerate() {
        // 30 made-up devices per round, each batch from a network of its own: the cap is not
        // what stops them, the token is.
        for n in 0..30 {
            let id = format!("forged-{round}-{n}");
            let e = event_with(&id, "install_failed", "1.1.0", "stable", token);
            let r = post_from(&http, "notes", &[e], round * 100 + n).await;
            let reason = if token.is_some() { "invalid_token" } else { "missing_token" };
            assert_eq!((r.status, r.body["accepted"].as_u64(), r.body["rejected"].as_u64()), (202, Some(0), Some(1)));
            assert_eq!(r.body["rejections"][reason], 1, "{r:?}");
        }
    }
    let (state, figures) = after_tick(&server).await;
    assert_eq!((state.as_str(), figures.install_failures), ("active", 0), "{figures:?}");

    // The same gate does halt on failures reported with valid tokens.
    for n in 0..20 {
        let id = format!("real-{n}");
        let token = offer_token(&check_in(&server, &id).await);
        let e = event_with(&id, "install_failed", "1.1.0", "stable", Some(&token));
        assert_eq!(post_from(&http, "notes", &[e], 1000 + n).await.body["accepted"], 1);
    }
    let (state, figures) = after_tick(&server).await;
    assert_eq!((state.as_str(), figures.install_failures), ("halted", 20), "{figures:?}");
}

#[tokio::test]
async fn one_host_with_200_made_up_devices_cannot_hide_20_real_failures() {
    // 20 failures of 220 installs is 9.1%: under the 10% limit if the 200 made-up successes
    // counted; with at most 20 devices per network, 20 of 40 (50%).
    let (server, _p) = gated(0.10).await;
    let http = server.anonymous();
    // The attacker checks in as 200 devices (each answer gives it a valid token) and reports
    // them all installed, from its one address.
    let mut forged: Vec<Value> = Vec::new();
    for n in 0..200 {
        let id = format!("bot-{n}");
        let token = offer_token(&check_in(&server, &id).await);
        forged.push(event_with(&id, "install_succeeded", "1.1.0", "stable", Some(&token)));
    }
    for chunk in forged.chunks(100) {
        let r = http.post("/v1/apps/notes/events", &json!({ "events": chunk })).await;
        assert_eq!((r.status, r.body["accepted"].as_u64(), r.body["rejected"].as_u64()), (202, Some(100), Some(0)));
    }
    // It sends no X-Forwarded-For: one host is one network. (Here the server trusts 127.0.0.1
    // as its proxy; in production a client's own X-Forwarded-For is believed only from a
    // trusted proxy, which must set the header rather than pass the client's on.)
    let (state, figures) = after_tick(&server).await;
    assert_eq!((state.as_str(), figures.installs), ("active", 20), "at most 20 devices per network: {figures:?}");

    // 20 real devices, each on its own network, fail to install.
    for n in 0..20 {
        let id = format!("real-{n}");
        let token = offer_token(&check_in(&server, &id).await);
        let e = event_with(&id, "install_failed", "1.1.0", "stable", Some(&token));
        assert_eq!(post_from(&http, "notes", &[e], n).await.status, 202);
    }
    let (state, figures) = after_tick(&server).await;
    assert_eq!((figures.installs, figures.install_failures), (20, 20), "{figures:?}");
    assert_eq!(state, "halted", "the real failures are not hidden");
}

#[tokio::test]
async fn a_token_counts_only_for_its_own_device_version_and_channel() {
    // (An event may name any channel of the app: beta is one, so only its token is wrong.)
    let (server, _p) = gated(0.5).await;
    let http = server.anonymous();
    let answer = check_in(&server, "d1").await;
    let (offered, running) = (offer_token(&answer), answer.report_token.unwrap().to_string());
    let other = offer_token(&check_in(&server, "d2").await);
    let post = |e: Value| {
        let http = http.clone();
        async move { http.post("/v1/apps/notes/events", &json!({ "events": [e] })).await }
    };
    for (what, e) in [
        ("the running version's token on the offered version", ("d1", "1.1.0", "stable", &running)),
        ("the offered version's token on the running version", ("d1", "1.0.0", "stable", &offered)),
        ("another channel", ("d1", "1.1.0", "beta", &offered)),
        ("another device's token", ("d1", "1.1.0", "stable", &other)),
        ("a token for another device", ("d3", "1.1.0", "stable", &offered)),
    ] {
        let r = post(event_with(e.0, "install_failed", e.1, e.2, Some(e.3))).await;
        assert_eq!((r.status, r.body["rejections"]["invalid_token"].as_u64()), (202, Some(1)), "{what}: {r:?}");
    }
    let (_, figures) = after_tick(&server).await;
    assert_eq!(figures.install_failures, 0, "{figures:?}");
    let r = post(event_with("d1", "install_succeeded", "1.1.0", "stable", Some(&offered))).await;
    assert_eq!((r.body["accepted"].as_u64(), r.body["rejected"].as_u64()), (Some(1), Some(0)), "{r:?}");
    let r = post(event_with("d1", "crash", "1.0.0", "stable", Some(&running))).await;
    assert_eq!((r.body["accepted"].as_u64(), r.body["rejected"].as_u64()), (Some(1), Some(0)), "{r:?}");
    assert_eq!(after_tick(&server).await.1.installs, 1);
}
