//! An A/B/N experiment driven through the `halftone` binary: bad starts refused with nothing
//! stored, two arms at 10% each on disjoint shares that devices keep, the arms side by side in
//! `experiment show` and `status`, and promoting the winner, which never offers anyone a lower
//! version. Devices are plain HTTP check-ins, as an SDK in any language makes.

use std::collections::BTreeMap;

use halftone_channels::bucket;
use serde_json::{Value, json};

use crate::support::*;

/// The releases as the server lists them, without the offer counts (which check-ins move).
async fn releases(http: &Http) -> Value {
    let mut list = http.get("/v1/apps/notes/releases").await.ok();
    for r in list["releases"].as_array_mut().unwrap() {
        r["offers"] = json!(0);
    }
    list
}

#[tokio::test]
async fn two_arms_share_a_channel_without_overlap_and_the_winner_takes_over() {
    two_arms(&[]).await;
}

/// The same on PostgreSQL (`--store postgres://…`), kill -9 included.
#[tokio::test]
async fn two_arms_on_postgres() {
    let pg = halftone_tests::postgres_or_skip!();
    two_arms(&["--store".to_owned(), pg.url()]).await;
}

async fn two_arms(store: &[String]) {
    let (_tmp, data) = data_dir();
    // Thousands of check-ins from one address: no per-address rate.
    let mut flags = ["--device-rate-per-address", "0", "--admin-rate-per-address", "0"].map(String::from).to_vec();
    flags.extend_from_slice(store);
    let mut server = Server::start_with(&data, true, &flags).await;
    let token = server.bootstrap.clone().unwrap();
    let admin = server.admin(&token);
    let http = server.http(Some(&token));
    let cli = Cli::new(&server, &token);
    let signer = Signer::new("notes", 7);
    admin.put_app(&signer.app, &signer.app_spec()).await.unwrap();
    for (version, channel, bp) in [("1.0.0", "stable", 10_000), ("1.1.0", "stable", 0), ("1.2.0", "stable", 0)] {
        let release = signer.upload(&admin, version).await;
        let body = json!({"release": release, "channel": channel, "rollout": {"basis_points": bp}});
        assert_eq!(http.post("/v1/apps/notes/releases", &body).await.status, 201);
    }
    let release = signer.upload(&admin, "1.3.0").await;
    let body = json!({"release": release, "channel": "beta", "rollout": {"basis_points": 0}});
    assert_eq!(http.post("/v1/apps/notes/releases", &body).await.status, 201);

    // Bad starts: each refused with its reason, through the CLI and as problem+json, and
    // nothing is stored.
    let before = releases(&http).await;
    for (arms, needle) in [
        (&["1.1.0=10%"][..], "at least two arms"),
        (&["1.1.0=60%", "1.2.0=50%"][..], "over 100%"),
        (&["1.1.0=10%", "1.1.0=10%"][..], "in two arms: arms must not overlap"),
        (&["1.1.0=10%", "9.9.9=10%"][..], "has no release 9.9.9"),
        (&["1.1.0=10%", "1.3.0=10%"][..], "1.3.0 is not rolled out on stable"),
    ] {
        let mut args = vec!["experiment", "start", "notes", "stable"];
        for a in arms {
            args.extend(["--arm", a]);
        }
        let e = cli.run(&args).failure();
        assert!(e.contains(needle), "{arms:?}: {e}");
        let body = json!({"arms": arms.iter().map(|a| {
            let (v, p) = a.split_once('=').unwrap();
            json!({"version": v, "basis_points": p.trim_end_matches('%').parse::<u16>().unwrap() * 100})
        }).collect::<Vec<_>>()});
        let refused = http.post("/v1/apps/notes/channels/stable/experiment", &body).await;
        assert_eq!(refused.status, 422, "{refused:?}");
        assert!(refused.body["detail"].as_str().unwrap().contains(needle), "{refused:?}");
    }
    assert_eq!(releases(&http).await, before, "refused starts store nothing");
    assert_eq!(http.get("/v1/apps/notes/channels/stable/experiment").await.status, 404);

    // Two arms at 10% each.
    let started = cli.json(&[
        "experiment",
        "start",
        "notes",
        "stable",
        "--arm",
        "1.1.0=10%",
        "--arm",
        "1.2.0=10%",
        "--reason",
        "which build installs better",
    ]);
    let salt = started["salt"].as_str().unwrap().to_owned();
    let slots: Vec<(String, u16)> = started["arms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["version"].as_str().unwrap().to_owned(), a["slot"]["start"].as_u64().unwrap() as u16))
        .collect();
    assert_eq!(slots, [("1.1.0".to_owned(), 0), ("1.2.0".to_owned(), 5_000)], "{started:#}");
    let e = cli.run(&["experiment", "start", "notes", "stable", "--arm", "1.1.0=5%", "--arm", "1.2.0=5%"]);
    assert!(e.failure_with(5).contains("already runs on stable"));

    // What the server acknowledged survives kill -9.
    let shown = http.get("/v1/apps/notes/channels/stable/experiment").await.ok();
    server.kill9();
    server = Server::start_with(&data, false, &flags).await;
    let (http, devices) = (server.http(Some(&token)), server.http(None));
    let cli = Cli::new(&server, &token);
    assert_eq!(http.get("/v1/apps/notes/channels/stable/experiment").await.ok(), shown, "the arms after kill -9");

    // Over many devices: each arm gets about 10%, exactly the devices whose bucket under the
    // experiment's salt is in its range, so no device is in both; and devices keep their arm.
    let n = 3_000;
    let mut got: BTreeMap<String, usize> = BTreeMap::new();
    let mut arm_of = Vec::new();
    for i in 0..n {
        let id = format!("device-{i}");
        let b = bucket(&salt, &id).get();
        let expected = match b {
            0..1_000 => "1.1.0",
            5_000..6_000 => "1.2.0",
            _ => "1.0.0-none",
        };
        let offered = devices.check("notes", &id, "1.0.0", "stable").await.map(|(v, _)| v);
        assert_eq!(offered.as_deref().unwrap_or("1.0.0-none"), expected, "{id} in bucket {b}");
        *got.entry(expected.to_owned()).or_default() += 1;
        arm_of.push((id, offered));
    }
    for arm in ["1.1.0", "1.2.0"] {
        assert!((220..380).contains(&got[arm]), "{arm}: {} of {n} devices (about 10%)", got[arm]);
    }
    for (id, offered) in arm_of.iter().take(300) {
        let again = devices.check("notes", id, "1.0.0", "stable").await.map(|(v, _)| v);
        assert_eq!(&again, offered, "{id} keeps its arm");
        if let Some(v) = offered {
            assert_eq!(devices.check("notes", id, v, "stable").await, None, "{id} on its arm gets nothing else");
        }
    }

    // An arm cannot widen past its slot; the refusal changes nothing.
    let etag = http.get("/v1/apps/notes/releases/1.1.0/rollouts/stable").await.etag.unwrap();
    let wide = http.patch("/v1/apps/notes/releases/1.1.0/rollouts/stable", &json!({"basis_points": 6000}), &etag).await;
    assert_eq!(wide.status, 422, "{wide:?}");
    assert!(wide.body["detail"].as_str().unwrap().contains("can widen to 50% at most"), "{wide:?}");

    // The arms side by side, in `experiment show` and in `status`.
    let shown = cli.text(&["experiment", "show", "notes", "stable"]);
    for needle in ["1.1.0", "1.2.0", "0..1000", "5000..6000", "install_failure_rate:", "crash_rate:"] {
        assert!(shown.contains(needle), "{needle} in {shown}");
    }
    let status = cli.json(&["status", "notes"]);
    let arms: Vec<&str> =
        status["experiments"][0]["arms"].as_array().unwrap().iter().map(|a| a["version"].as_str().unwrap()).collect();
    assert_eq!(arms, ["1.1.0", "1.2.0"], "{status:#}");
    let text = cli.text(&["status", "notes"]);
    assert!(text.contains("experiment on stable"), "{text}");

    // Promoting asks first; a stale or missing tag is refused.
    let before_promote = releases(&http).await;
    let e = cli.run(&["experiment", "promote", "notes", "stable", "1.1.0"]).failure_with(2);
    assert!(e.contains("needs confirmation"), "{e}");
    let promote = json!({"winner": "1.1.0", "allow_higher_losers": true});
    let stale = http.send(
        "POST",
        "/v1/apps/notes/channels/stable/experiment/promote",
        Some(serde_json::to_vec(&promote).unwrap()),
        &[("content-type", "application/json"), ("if-match", "\"x0.0\"")],
    );
    assert_eq!(stale.await.status, 412);
    let untagged = http.post("/v1/apps/notes/channels/stable/experiment/promote", &promote).await;
    assert_eq!(untagged.status, 428, "{untagged:?}");
    // The loser 1.2.0 is newer than the winner 1.1.0: refused unless asked for.
    let e = cli.run(&["experiment", "promote", "notes", "stable", "1.1.0", "--yes"]).failure_with(5);
    assert!(e.contains("1.2.0 is newer than the winner 1.1.0") && e.contains("Rebuild the winner's code"), "{e}");
    assert_eq!(releases(&http).await, before_promote, "refused promotions change nothing");

    let done = cli.text(&[
        "experiment",
        "promote",
        "notes",
        "stable",
        "1.1.0",
        "--percent",
        "50%",
        "--allow-higher-losers",
        "--reason",
        "fewer install failures",
        "--yes",
    ]);
    assert!(done.contains("promoted 1.1.0 on stable: now 50% active; retired 1.2.0"), "{done}");
    assert!(done.contains("Devices on 1.2.0 keep it") && done.contains("above 1.2.0"), "{done}");
    assert!(cli.run(&["experiment", "show", "notes", "stable"]).failure_with(4).contains("no experiment"));

    // After: the winner's old arm keeps its devices and it reaches about half; nobody is
    // offered the loser or anything at or below what it runs.
    let mut winners = 0;
    for (id, offered) in &arm_of {
        let now = devices.check("notes", id, "1.0.0", "stable").await.map(|(v, _)| v);
        if offered.as_deref() == Some("1.1.0") {
            assert_eq!(now.as_deref(), Some("1.1.0"), "{id} keeps the winner");
        }
        assert_ne!(now.as_deref(), Some("1.2.0"), "{id}: the loser is retired");
        winners += usize::from(now.is_some());
        if offered.as_deref() == Some("1.2.0") {
            assert_eq!(devices.check("notes", id, "1.2.0", "stable").await, None, "{id} on 1.2.0: nothing lower");
        }
        if offered.as_deref() == Some("1.1.0") {
            assert_eq!(devices.check("notes", id, "1.1.0", "stable").await, None, "{id} on the winner");
        }
    }
    assert!((1_350..1_650).contains(&winners), "the winner at 50% reaches about half: {winners} of {n}");

    // The audit log names who promoted, and why.
    let audit = cli.json(&["audit", "notes"]);
    let entries = audit["entries"].as_array().unwrap();
    let promoted: Vec<&Value> = entries.iter().filter(|e| e["action"] == "experiment.promote").collect();
    assert_eq!(promoted.len(), 2, "{audit:#}");
    assert!(promoted.iter().all(|e| e["actor"] == "bootstrap-admin"), "{promoted:#?}");
    assert!(promoted.iter().any(|e| e["after"]["reason"] == "winner: fewer install failures"), "{promoted:#?}");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "experiment.start" && e["after"]["reason"] == "which build installs better")
    );
}
