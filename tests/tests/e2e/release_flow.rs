//! The release engineer's whole flow over HTTP, and the device's view of it.

use halftone_channels::Sha256;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn gray_release_from_ten_percent_to_rollback() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    let devices_http = server.anonymous();
    p.publish("1.0.0", "stable", "100%").await;

    // 1.1.0 on beta at 10%: 20,000 beta devices on 1.0.0, 10% ± 1% are offered it.
    p.publish("1.1.0", "beta", "10%").await;
    let beta = fleet("beta", 20_000, "1.0.0", "beta");
    let first = check_all(&devices_http, "notes", &beta).await;
    let at_10 = count(&first, "1.1.0");
    println!("1.1.0 at 10%: {at_10} of 20000 beta devices");
    assert!((1800..=2200).contains(&at_10), "{at_10}");
    assert!(first.iter().all(|a| a.is_none() || a.as_ref().unwrap().0 == "1.1.0"), "nobody is offered 1.0.0 again");

    // Raise to 50%: the first 10% keep it, 50% ± 1% in all.
    p.patch_rollout("1.1.0", "beta", json!({"basis_points": 5000})).await;
    let second = check_all(&devices_http, "notes", &beta).await;
    let at_50 = count(&second, "1.1.0");
    assert!((9800..=10200).contains(&at_50), "{at_50}");
    for (a, b) in first.iter().zip(&second) {
        if a.is_some() {
            assert_eq!(a, b, "a device in the first 10% keeps the offer when the rollout grows");
        }
    }

    // Promote to stable at 5%: stable devices see it, about 5%.
    let promoted = p
        .http
        .post("/v1/apps/notes/releases/1.1.0/promote", &json!({"channel": "stable", "rollout": {"basis_points": 500}}))
        .await;
    assert_eq!(promoted.status, 201, "{promoted:?}");
    let stable = fleet("stable", 4000, "1.0.0", "stable");
    let on_stable = count(&check_all(&devices_http, "notes", &stable).await, "1.1.0");
    assert!((120..=280).contains(&on_stable), "{on_stable}");

    // Halt everywhere: nobody new is offered 1.1.0.
    let halted = p.http.post("/v1/apps/notes/releases/1.1.0/halt", &json!({})).await.ok();
    assert!(halted["rollouts"].as_array().unwrap().iter().all(|r| r["state"] == "halted"), "{halted}");
    assert_eq!(count(&check_all(&devices_http, "notes", &beta).await, "1.1.0"), 0);
    assert_eq!(count(&check_all(&devices_http, "notes", &stable).await, "1.1.0"), 0);

    // Roll back by rebuild: 1.1.1 re-issues 1.0.0's code. Devices on 1.1.0 get it, critical;
    // devices on 1.0.0 are offered nothing (neither the bad build nor the rebuild).
    let mut rebuild = p.draft("1.1.1", &[]);
    rebuild.spec.rebuild_of = Some("1.0.0".parse().unwrap());
    p.upload(&rebuild).await;
    let r = p.http.post("/v1/apps/notes/rollback", &json!({"bad_version": "1.1.0", "release": rebuild.spec})).await;
    assert_eq!(r.status, 201, "{r:?}");
    let channels: Vec<_> = r.body["rollouts"].as_array().unwrap().iter().map(|r| r["channel"].clone()).collect();
    assert_eq!(channels.len(), 2, "the rebuild goes everywhere the bad one was: {channels:?}");
    for channel in ["beta", "stable"] {
        let on_bad = fleet(channel, 300, "1.1.0", channel);
        let answers = check_all(&devices_http, "notes", &on_bad).await;
        assert!(answers.iter().all(|a| a == &Some(("1.1.1".to_owned(), true))), "{channel}: {answers:?}");
    }
    let on_good = check_all(&devices_http, "notes", &fleet("good", 300, "1.0.0", "beta")).await;
    assert!(on_good.iter().all(Option::is_none), "{on_good:?}");

    // The audit log recorded every change, with who did it.
    let audit = p.http.get("/v1/apps/notes/audit").await.ok();
    let actions: Vec<_> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap().to_owned()).collect();
    for a in ["app.create", "release.publish", "rollout.update", "release.promote", "release.halt", "rollback.publish"]
    {
        assert!(actions.iter().any(|x| x == a), "{a} missing from {actions:?}");
    }
    assert!(audit["entries"].as_array().unwrap().iter().all(|e| e["actor"] == "bootstrap-admin"));
}

#[tokio::test]
async fn a_rollback_must_rebuild_every_platform_of_the_bad_release_unless_told_otherwise() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "rollback-platforms").await;
    let both = ["linux/x86_64", "windows/x86_64"];
    p.publish_draft(&p.draft("1.0.0", &both), "stable", json!({"basis_points": 10000})).await.unwrap();
    p.publish_draft(&p.draft("1.1.0", &both), "stable", json!({"basis_points": 10000})).await.unwrap();
    let before = p.http.get("/v1/apps/rollback-platforms/releases").await.ok();

    // Linux only: Windows devices would stay on the bad build. Refused, nothing changes.
    let mut linux_only = p.draft("1.1.1", &["linux/x86_64"]);
    linux_only.spec.rebuild_of = Some("1.0.0".parse().unwrap());
    p.upload(&linux_only).await;
    let body = json!({"bad_version": "1.1.0", "release": linux_only.spec});
    let refused = p.http.post("/v1/apps/rollback-platforms/rollback", &body).await;
    refused.assert_problem(422, "no build for windows/x86_64");
    assert_eq!(p.http.get("/v1/apps/rollback-platforms/releases").await.ok(), before, "nothing changed");

    // Said so explicitly, it goes through; the rebuild is critical whatever the spec said.
    let body = json!({"bad_version": "1.1.0", "release": linux_only.spec, "leave_uncovered": true});
    let accepted = p.http.post("/v1/apps/rollback-platforms/rollback", &body).await;
    assert_eq!(accepted.status, 201, "{accepted:?}");
    assert_eq!(accepted.body["critical"], true);

    // The rolled-back 1.1.0 is not resumed or widened by accident.
    let path = "/v1/apps/rollback-platforms/releases/1.1.0/rollouts/stable";
    let etag = p.http.get(path).await.etag.unwrap();
    let resumed = p.http.patch(path, &json!({"state": "active"}), &etag).await;
    resumed.assert_problem(409, "was rolled back by 1.1.1");
    assert_eq!(p.http.get(path).await.body["state"], "halted", "nothing changed");
    let resumed = p.http.patch(path, &json!({"state": "active", "resume_rolled_back": true}), &etag).await;
    assert_eq!(resumed.status, 200, "{resumed:?}");
    assert_eq!(resumed.body["state"], "active");
}

#[tokio::test]
async fn channels_see_their_own_and_more_stable_releases() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    let http = server.anonymous();
    p.publish("1.0.0", "stable", "100%").await;
    p.publish("1.1.0-beta.1", "beta", "100%").await;
    p.publish("1.2.0-alpha.1", "unstable", "100%").await;
    let on = |ch: &str| Device::new(format!("d-{ch}"), "0.9.0", ch);
    let offered = |r: halftone_channels::wire::CheckResponse| r.update.map(|u| u.version.to_string());
    assert_eq!(offered(check(&http, "notes", &on("stable")).await).as_deref(), Some("1.0.0"));
    assert_eq!(offered(check(&http, "notes", &on("beta")).await).as_deref(), Some("1.1.0-beta.1"));
    assert_eq!(offered(check(&http, "notes", &on("unstable")).await).as_deref(), Some("1.2.0-alpha.1"));
    // A user on 1.2.0-alpha.1 switches to stable, whose newest build (1.0.0) is older: they
    // stay where they are, never downgraded.
    let mut switched = on("stable");
    switched.version = "1.2.0-alpha.1".into();
    assert_eq!(offered(check(&http, "notes", &switched).await), None);
    // A newer stable build reaches unstable devices too, and the switched device moves up to it.
    p.publish("1.3.0", "stable", "100%").await;
    assert_eq!(offered(check(&http, "notes", &on("unstable")).await).as_deref(), Some("1.3.0"));
    assert_eq!(offered(check(&http, "notes", &switched).await).as_deref(), Some("1.3.0"));
    // Once on it, nothing more is offered.
    switched.version = "1.3.0".into();
    assert_eq!(offered(check(&http, "notes", &switched).await), None);
}

#[tokio::test]
async fn devices_on_a_removed_channel_are_served_as_on_stable_and_their_reports_count() {
    let server = TestServer::start();
    let p = Publisher::create_with(&server, "notes", json!([{"name": "canary", "rank": 400}])).await;
    let http = server.anonymous();
    p.publish("1.0.0", "stable", "100%").await;
    p.publish("1.1.0-beta.1", "beta", "100%").await;
    let canary = Device::new("c-1", "1.0.0", "canary");
    let answer = check(&http, "notes", &canary).await;
    assert_eq!(answer.update.as_ref().map(|u| u.version.to_string()).as_deref(), Some("1.1.0-beta.1"));
    assert_eq!(answer.served_channel, None, "canary exists");

    // canary is removed: its devices are not stranded (no 422), and get what stable devices
    // get, never the beta build; the answer says which channel served them.
    let app = p.admin.get_app(&p.app).await.unwrap();
    let spec = halftone_channels::wire::AppSpec {
        display_name: app.display_name,
        keys: app.keys,
        channels: vec![],
        metrics: vec![],
    };
    p.admin.put_app(&p.app, &spec).await.unwrap();
    let on_old = Device::new("c-2", "0.9.0", "canary");
    let answer = check(&http, "notes", &on_old).await;
    assert_eq!(answer.update.as_ref().map(|u| u.version.to_string()).as_deref(), Some("1.0.0"));
    assert_eq!(answer.served_channel.as_ref().map(|c| c.as_str()), Some("stable"));
    let answer = check(&http, "notes", &canary).await;
    assert_eq!((answer.update, answer.served_channel.map(|c| c.to_string())), (None, Some("stable".into())));
    // Support staff see the same answer and the fallback.
    let explained = server
        .raw_admin()
        .post(
            "/v1/apps/notes/explain",
            &json!({"device_id": "c-2", "current_version": "0.9.0",
            "channel": "canary", "os": "linux", "arch": "x86_64"}),
        )
        .await
        .ok();
    assert_eq!((explained["served_channel"].as_str(), explained["offered"].as_str()), (Some("stable"), Some("1.0.0")));

    // Its events, which name canary with a token made for canary, count on stable.
    let token = answer.report_token.expect("a device running a release gets a token").to_string();
    let r = http
        .post(
            "/v1/apps/notes/events",
            &json!({"events": [event_with("c-1", "first_run", "1.0.0", "canary", Some(&token))]}),
        )
        .await;
    assert_eq!((r.status, r.body["accepted"].as_u64()), (202, Some(1)), "{r:?}");
    server.state().feedback.flush().await.unwrap();
    let status = p.http.get("/v1/apps/notes/status").await.ok();
    let stable = status["releases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["version"] == "1.0.0")
        .and_then(|r| r["rollouts"].as_array().unwrap().iter().find(|r| r["channel"] == "stable"))
        .cloned()
        .unwrap();
    assert_eq!(stable["figures"]["first_runs"], 1, "{stable:#}");
    // A channel a release is rolled out on cannot be removed.
    let with_canary = halftone_channels::wire::AppSpec {
        channels: serde_json::from_value(json!([{"name": "canary", "rank": 400}])).unwrap(),
        ..spec.clone()
    };
    p.admin.put_app(&p.app, &with_canary).await.unwrap();
    p.publish("1.2.0-alpha.1", "canary", "100%").await;
    assert_refused(p.admin.put_app(&p.app, &spec).await, 422, "rolled out on unknown channel canary");
}

#[tokio::test]
async fn stepping_stones_platforms_and_hotfixes() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    let http = server.anonymous();
    p.publish("1.0.0", "stable", "100%").await;
    // 2.0.0 needs 1.5.0 first.
    p.publish("1.5.0", "stable", "100%").await;
    let mut two = p.draft("2.0.0", &[]);
    two.spec.min_from_version = Some("1.5.0".parse().unwrap());
    p.publish_draft(&two, "stable", json!({"basis_points": 10000})).await.unwrap();
    let v = |r: halftone_channels::wire::CheckResponse| r.update.map(|u| u.version.to_string());
    assert_eq!(v(check(&http, "notes", &Device::new("a", "1.0.0", "stable")).await).as_deref(), Some("1.5.0"));
    assert_eq!(v(check(&http, "notes", &Device::new("a", "1.5.0", "stable")).await).as_deref(), Some("2.0.0"));

    // Platform matching: a windows-only build is not offered to linux, and the offer names the
    // device's own artifact.
    let win = p.draft("2.1.0", &["windows/x86_64", "macos/aarch64"]);
    p.publish_draft(&win, "stable", json!({"basis_points": 10000})).await.unwrap();
    assert_eq!(v(check(&http, "notes", &Device::new("a", "2.0.0", "stable")).await), None);
    let mut mac = Device::new("m", "2.0.0", "stable");
    (mac.os, mac.arch) = ("macos".into(), "aarch64".into());
    let offer = check(&http, "notes", &mac).await.update.unwrap();
    assert_eq!((offer.version.to_string(), offer.artifact.os.to_string()), ("2.1.0".into(), "macos".into()));
    assert_eq!(offer.artifact.sha256, win.spec.artifacts[1].sha256);

    // A hotfix published while another release is at 10% reaches its own audience.
    p.publish("3.0.0", "beta", "100%").await;
    p.publish("3.1.0", "beta", "10%").await;
    p.publish("3.0.1", "beta", "100%").await;
    let answers = check_all(&http, "notes", &fleet("hot", 2000, "3.0.0", "beta")).await;
    let (hotfix, newest) = (count(&answers, "3.0.1"), count(&answers, "3.1.0"));
    assert_eq!(hotfix + newest, 2000, "every device gets one of them");
    assert!((150..=250).contains(&newest), "{newest}");
}

#[tokio::test]
async fn artifacts_download_with_range_etag_and_caching() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    let draft = p.draft("1.0.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();
    let sha = draft.spec.artifacts[0].sha256;
    let bytes = &draft.files[0];
    let client = reqwest::Client::new();
    let url = server.url(&format!("/v1/artifacts/{sha}"));
    let full = client.get(&url).send().await.unwrap();
    assert_eq!(full.status(), 200);
    assert_eq!(full.headers()["etag"], format!("\"{sha}\"").as_str());
    assert!(full.headers()["cache-control"].to_str().unwrap().contains("immutable"));
    assert_eq!(&full.bytes().await.unwrap()[..], &bytes[..]);
    let part = client.get(&url).header("range", "bytes=100-").send().await.unwrap();
    assert_eq!(part.status(), 206);
    assert_eq!(&part.bytes().await.unwrap()[..], &bytes[100..]);
    let cached = client.get(&url).header("if-none-match", format!("\"{sha}\"")).send().await.unwrap();
    assert_eq!(cached.status(), 304);
    // A second upload of the same bytes is a no-op.
    let again = p.http.send("PUT", &format!("/v1/artifacts/{sha}"), Some(bytes.clone()), &[]).await;
    assert_eq!((again.status, again.body["created"].as_bool()), (200, Some(false)));
}

#[tokio::test]
async fn a_range_with_if_range_is_served_only_for_the_artifacts_strong_etag() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "notes").await;
    let draft = p.draft("1.0.0", &[]);
    p.publish_draft(&draft, "stable", json!({"basis_points": 10000})).await.unwrap();
    let (sha, bytes) = (draft.spec.artifacts[0].sha256, &draft.files[0]);
    let url = server.url(&format!("/v1/artifacts/{sha}"));
    let client = reqwest::Client::new();
    let get = |if_range: String| {
        let request = client.get(&url).header("range", "bytes=100-199").header("if-range", if_range);
        async move {
            let res = request.send().await.unwrap();
            let range = res.headers().get("content-range").map(|v| v.to_str().unwrap().to_owned());
            (res.status().as_u16(), range, res.bytes().await.unwrap().to_vec())
        }
    };

    // The artifact's own ETag: the range, as if there were no If-Range.
    let (status, range, body) = get(format!("\"{sha}\"")).await;
    assert_eq!((status, range.as_deref()), (206, Some(format!("bytes 100-199/{}", bytes.len()).as_str())));
    assert_eq!(body, bytes[100..200]);
    // Anything else means "the file may have changed": the whole file, 200, no Content-Range.
    let other = Sha256::digest(b"other bytes");
    for validator in [
        format!("\"{other}\""),
        format!("W/\"{sha}\""),
        format!("\"{}\"", &sha.to_string()[..63]),
        "Wed, 21 Oct 2015 07:28:00 GMT".to_owned(),
    ] {
        let (status, range, body) = get(validator.clone()).await;
        assert_eq!((status, range), (200, None), "If-Range: {validator}");
        assert_eq!(&body, bytes, "If-Range: {validator}");
    }
}
