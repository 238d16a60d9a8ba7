//! What the other updaters' tests share: the figures the server keeps for their devices.

use crate::harness::Http;

/// Distinct devices offered `offered_version` (all channels), and the devices seen running
/// `running_version` in the last day, once the aggregator has counted about `expect` offers
/// (it drains every few milliseconds; waits at most 5 s).
pub async fn figures(
    http: &Http,
    app: &str,
    offered_version: &str,
    running_version: &str,
    expect: usize,
) -> (u64, u64) {
    let mut last = (0, 0);
    for _ in 0..100 {
        let s = http.get(&format!("/v1/apps/{app}/status")).await.ok();
        let offered: u64 = s["releases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["version"] == offered_version)
            .flat_map(|r| r["rollouts"].as_array().unwrap())
            .map(|r| r["figures"]["offered_devices"].as_u64().unwrap_or(0))
            .sum();
        let running: u64 = s["adoption"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|c| c["versions"].as_array().unwrap())
            .filter(|v| v["version"] == running_version)
            .map(|v| v["last_day"].as_u64().unwrap_or(0))
            .sum();
        last = (offered, running);
        if offered as usize + expect / 10 >= expect && running > 0 {
            return last;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    last
}
