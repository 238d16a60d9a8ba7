//! The benchmark's seed step (`halftone-seed`, see `bench/`) against a real server: a small
//! catalog lands as planned, devices are offered updates, and a rollout change reaches the
//! probe device. The benchmark itself stays out of `cargo test`.

use std::time::Duration;

use halftone_tests::seed::{self, PLATFORMS, PROBE_VERSION, Seeder};
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn a_seeded_catalog_is_there_and_devices_get_offers() {
    let server = TestServer::start();
    let seeder = Seeder::new(&server.base, &server.token, "bench").unwrap();
    let seeded = seeder.seed(20, 4, |_| {}).await.unwrap();
    assert_eq!((seeded.releases, seeded.rollouts, seeded.uploads), (21, 25, 6), "{seeded:?}");

    let list = server.admin().list_releases(&"bench".parse().unwrap()).await.unwrap();
    let releases = &list.releases;
    assert_eq!(releases.len(), 21);
    assert_eq!(releases[0].release.version.to_string(), PROBE_VERSION, "the probe release is the newest");
    for r in &releases[1..] {
        assert_eq!(r.release.artifacts.len(), PLATFORMS.len(), "{r:?}");
    }
    let on_stable = releases.iter().filter(|r| r.rollouts.iter().any(|ro| ro.channel.as_str() == "stable")).count();
    assert_eq!(on_stable, 4, "releases 0, 1, 10 and 11 are promoted to stable");

    // A stable device older than everything is offered something: release 0 is at 100%.
    let old: halftone_channels::wire::CheckRequest = serde_json::from_value(json!({
        "device_id": "old-device", "current_version": "0.9.0", "channel": "stable",
        "os": "windows", "arch": "x86_64", "os_version": "10.0.19045", "locale": "en-US",
        "traits": {"tier": "gold", "ram_gb": 16},
    }))
    .unwrap();
    let (_, answer) = seeder.check(&old).await.unwrap();
    let offer = answer.update.expect("an old stable device is offered an update");
    assert_eq!(offer.artifact.os.as_str(), "windows");

    // The benchmark's devices are valid check-ins, and some of them are offered updates.
    let sample = seeder.sample(20, 40).await.unwrap();
    assert_eq!(sample.checked, 40);
    assert!(sample.offers > 0, "{sample:?}");
    let body: serde_json::Value = serde_json::from_slice(&sample.body).unwrap();
    assert!(body["update"].is_object(), "the sample is an offer: {body}");

    // The probe device sees the probe rollout go on and off; nobody else is offered it.
    let flips = seeder.flip(2, Duration::from_millis(10)).await.unwrap();
    assert_eq!(flips.len(), 2);
    assert!(flips.iter().all(|f| f.probes >= 1), "{flips:?}");
    let (_, answer) = seeder.check(&seed::device(7, 20)).await.unwrap();
    assert!(answer.update.is_none_or(|u| u.version.to_string() != PROBE_VERSION));
}
