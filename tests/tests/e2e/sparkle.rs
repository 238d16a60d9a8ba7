//! Sparkle's appcast, read as Sparkle documents it (RSS items with `sparkle:version`,
//! `sparkle:channel`, `sparkle:criticalUpdate`, `sparkle:minimumSystemVersion` and an
//! `enclosure` with `length` and
//! `sparkle:edSignature`), the archive verified with another Ed25519 implementation
//! (`ed25519-compact`) against the `SUPublicEDKey` that `halftone client-keys` prints.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use halftone_channels::wire::RollbackRequest;
use halftone_channels::{AppId, sparkle_public_key};

use crate::harness::{Http, Publisher, TestServer};

const SPARKLE: &str = "http://www.andymatuschak.org/xml-namespaces/sparkle";

/// One appcast item, as Sparkle reads it.
#[derive(Debug, Clone, PartialEq)]
struct Item {
    version: String,
    channel: Option<String>,
    critical: bool,
    minimum_system_version: Option<String>,
    url: String,
    length: u64,
    ed_signature: String,
}

/// The items of an appcast.
fn items(xml: &str) -> Vec<Item> {
    let doc = roxmltree::Document::parse(xml).unwrap();
    fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, ns: Option<&str>, name: &str) -> Option<roxmltree::Node<'a, 'i>> {
        n.children().find(|c| c.is_element() && c.tag_name().name() == name && c.tag_name().namespace() == ns)
    }
    doc.descendants()
        .filter(|n| n.has_tag_name("item"))
        .map(|item| {
            let enclosure = child(item, None, "enclosure").unwrap();
            Item {
                version: child(item, Some(SPARKLE), "version").unwrap().text().unwrap().to_owned(),
                channel: child(item, Some(SPARKLE), "channel").and_then(|c| c.text()).map(str::to_owned),
                critical: child(item, Some(SPARKLE), "criticalUpdate").is_some(),
                minimum_system_version: child(item, Some(SPARKLE), "minimumSystemVersion")
                    .and_then(|c| c.text())
                    .map(str::to_owned),
                url: enclosure.attribute("url").unwrap().to_owned(),
                length: enclosure.attribute("length").unwrap().parse().unwrap(),
                ed_signature: enclosure.attribute((SPARKLE, "edSignature")).unwrap().to_owned(),
            }
        })
        .collect()
}

/// What Sparkle would install: the newest item newer than `current` on the default channel or
/// one of `allowed`.
fn best(items: &[Item], current: &str, allowed: &[&str]) -> Option<Item> {
    let current = semver::Version::parse(current).unwrap();
    items
        .iter()
        .filter(|i| i.channel.as_deref().is_none_or(|c| allowed.contains(&c)))
        .filter(|i| semver::Version::parse(&i.version).unwrap() > current)
        .max_by_key(|i| semver::Version::parse(&i.version).unwrap())
        .cloned()
}

/// The appcast for device `id` running `version` on `channel`.
async fn appcast(http: &Http, app: &str, id: &str, version: &str, channel: &str) -> Vec<Item> {
    let r = http
        .get(&format!(
            "/v1/apps/{app}/sparkle/appcast.xml?device_id={id}&appVersion={version}&channel={channel}&arch=x86_64"
        ))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.content_type.starts_with("application/rss+xml"), "{r:?}");
    items(&r.text)
}

/// Downloads an item's archive and checks it as Sparkle does: length, then the EdDSA
/// signature with the app's `SUPublicEDKey`.
async fn verified(item: &Item, su_public_ed_key: &str) -> Result<Vec<u8>, String> {
    let bytes = reqwest::get(&item.url).await.unwrap().bytes().await.unwrap().to_vec();
    if bytes.len() as u64 != item.length {
        return Err(format!("length {} is not {}", bytes.len(), item.length));
    }
    let key: [u8; 32] = B64.decode(su_public_ed_key).unwrap().try_into().unwrap();
    let key = ed25519_compact::PublicKey::new(key);
    let signature = ed25519_compact::Signature::from_slice(&B64.decode(&item.ed_signature).unwrap()).unwrap();
    key.verify(&bytes, &signature).map_err(|e| format!("EdDSA signature: {e}"))?;
    Ok(bytes)
}

/// The first update of `n` devices (`None`: nothing to install).
async fn offers(http: &Http, app: &str, prefix: &str, n: usize, version: &str) -> Vec<Option<String>> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let items = appcast(http, app, &format!("{prefix}-{i}"), version, "stable").await;
        out.push(best(&items, version, &[]).map(|i| i.version));
    }
    out
}

#[tokio::test]
async fn a_staged_rollout_reaches_about_its_percentage_and_devices_keep_their_answer() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "mac-app").await;
    let su_key = sparkle_public_key(&p.key.public_key());
    let http = server.anonymous();
    let mac = ["macos/x86_64"];
    let publish = |v: &'static str, bp: u32| {
        let p = &p;
        async move {
            let d = p.client_draft(v, &mac);
            p.publish_draft(&d, "stable", serde_json::json!({ "basis_points": bp })).await.unwrap();
            d
        }
    };
    publish("1.0.0", 10_000).await;
    let draft = publish("1.1.0", 3_000).await;
    let first = offers(&http, "mac-app", "dev", 300, "1.0.0").await;
    let offered = first.iter().filter(|o| o.as_deref() == Some("1.1.0")).count();
    assert!((60..=120).contains(&offered), "30% of 300 devices, got {offered}");
    assert_eq!(offers(&http, "mac-app", "dev", 300, "1.0.0").await, first, "each device keeps its answer");
    let (devices, running) = crate::clients::figures(&p.http, "mac-app", "1.1.0", "1.0.0", offered).await;
    assert!(devices.abs_diff(offered as u64) <= offered as u64 / 10 + 2, "{devices} devices offered, not {offered}");
    assert!(running.abs_diff(300) <= 30, "{running} devices on 1.0.0, not 300");

    let i = first.iter().position(Option::is_some).unwrap();
    let items = appcast(&http, "mac-app", &format!("dev-{i}"), "1.0.0", "stable").await;
    let item = best(&items, "1.0.0", &[]).unwrap();
    assert_eq!((item.channel.as_deref(), item.critical), (None, false));
    assert_eq!(verified(&item, &su_key).await.unwrap(), draft.files[0]);
    // Up to date: an empty feed, never an older build.
    assert!(appcast(&http, "mac-app", "dev-0", "1.1.0", "stable").await.is_empty());
}

#[tokio::test]
async fn halt_stops_offers_rollback_reaches_the_bad_build_and_channels_are_items() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "mac-halt").await;
    let http = server.anonymous();
    let app = AppId::parse("mac-halt").unwrap();
    let mac = ["macos/x86_64"];
    for (v, bp) in [("1.0.0", 10_000), ("1.1.0", 5_000)] {
        p.publish_draft(&p.client_draft(v, &mac), "stable", serde_json::json!({ "basis_points": bp })).await.unwrap();
    }
    assert!(offers(&http, "mac-halt", "d", 100, "1.0.0").await.iter().any(Option::is_some));
    p.admin.halt(&app, &"1.1.0".parse().unwrap()).await.unwrap();
    assert!(offers(&http, "mac-halt", "d", 100, "1.0.0").await.iter().all(Option::is_none));

    let mut rebuild = p.client_draft("1.1.1", &mac);
    rebuild.spec.rebuild_of = Some("1.0.0".parse().unwrap());
    p.upload(&rebuild).await;
    let request = RollbackRequest {
        bad_version: "1.1.0".parse().unwrap(),
        release: rebuild.spec.clone(),
        leave_uncovered: false,
    };
    p.admin.rollback(&app, &request).await.unwrap();
    for i in 0..50 {
        let items = appcast(&http, "mac-halt", &format!("bad-{i}"), "1.1.0", "stable").await;
        let item = best(&items, "1.1.0", &[]).unwrap();
        assert_eq!((item.version.as_str(), item.critical), ("1.1.1", true), "a rollback is critical");
    }

    // A beta build is an item of the beta channel, for devices on beta only.
    p.publish_draft(&p.client_draft("1.2.0-beta.1", &mac), "beta", serde_json::json!({ "basis_points": 10_000 }))
        .await
        .unwrap();
    let beta = appcast(&http, "mac-halt", "b", "1.1.1", "beta").await;
    assert_eq!(beta.len(), 1);
    assert_eq!(beta[0].channel.as_deref(), Some("beta"));
    assert_eq!(best(&beta, "1.1.1", &["beta"]).unwrap().version, "1.2.0-beta.1");
    assert!(appcast(&http, "mac-halt", "b", "1.1.1", "stable").await.is_empty());
}

#[tokio::test]
async fn a_tampered_archive_or_signature_is_refused() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "mac-tamper").await;
    let su_key = sparkle_public_key(&p.key.public_key());
    let http = server.anonymous();
    let good = p.client_draft("1.0.0", &["macos/x86_64"]);
    p.publish_draft(&good, "stable", serde_json::json!({ "basis_points": 10_000 })).await.unwrap();
    let item = best(&appcast(&http, "mac-tamper", "a", "0.9.0", "stable").await, "0.9.0", &[]).unwrap();
    assert_eq!(verified(&item, &su_key).await.unwrap(), good.files[0]);

    let path = server.data_dir().join("artifacts").join(good.spec.artifacts[0].sha256.to_string());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[5] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();
    assert!(verified(&item, &su_key).await.unwrap_err().contains("EdDSA"));
    bytes[5] ^= 0x20;
    std::fs::write(&path, &bytes).unwrap();

    let other = p.client_draft("2.0.0", &["macos/x86_64"]);
    let forged =
        Item { ed_signature: other.spec.artifacts[0].clients.as_ref().unwrap().ed_signature.clone(), ..item.clone() };
    assert!(verified(&forged, &su_key).await.unwrap_err().contains("EdDSA"));
    let elsewhere = sparkle_public_key(&crate::harness::signing_key(99).public_key());
    assert!(verified(&item, &elsewhere).await.is_err());
    // Without an archive for the device's architecture there is nothing to offer.
    let r = http.get("/v1/apps/mac-tamper/sparkle/appcast.xml?device_id=a&appVersion=0.9.0&cpuArch=16777228").await;
    assert!(items(&r.text).is_empty(), "{}", r.text);
    let r = http.get("/v1/apps/mac-tamper/sparkle/appcast.xml?device_id=a&appVersion=0.9.0&cpuArch=16777223").await;
    assert_eq!(items(&r.text).len(), 1, "{}", r.text);
    http.get("/v1/apps/mac-tamper/sparkle/appcast.xml?appVersion=x").await.assert_problem(400, "version");
}

#[tokio::test]
async fn an_os_version_floor_is_the_minimum_system_version_and_critical_is_critical() {
    let server = TestServer::start();
    let p = Publisher::create(&server, "mac-floor").await;
    let http = server.anonymous();
    let mac = ["macos/x86_64"];
    let rules =
        serde_json::json!([{"kind": "os_version", "range": ">=12.0, <16"}, {"kind": "os_version", "range": ">=13.5"}]);
    let d = p.client_draft("1.0.0", &mac);
    p.publish_draft(&d, "stable", serde_json::json!({"basis_points": 10_000, "rules": rules})).await.unwrap();
    let feed = |os: &str| {
        format!("/v1/apps/mac-floor/sparkle/appcast.xml?device_id=a&appVersion=0.9.0&arch=x86_64&osVersion={os}")
    };
    let got = items(&http.get(&feed("14.1")).await.text);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].minimum_system_version.as_deref(), Some("13.5"), "the highest inclusive floor");
    assert!(!got[0].critical);
    // Below the floor the server offers nothing (Sparkle would refuse the item anyway).
    assert!(items(&http.get(&feed("13.0")).await.text).is_empty());

    // A critical release without OS rules: critical, and no minimum.
    let mut critical = p.client_draft("1.1.0", &mac);
    critical.spec.critical = true;
    p.publish_draft(&critical, "stable", serde_json::json!({"basis_points": 10_000})).await.unwrap();
    let got = items(&http.get(&feed("14.1")).await.text);
    assert_eq!(
        (got[0].version.as_str(), got[0].critical, got[0].minimum_system_version.as_deref()),
        ("1.1.0", true, None)
    );
}
