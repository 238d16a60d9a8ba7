//! A realistic catalog seeded through the HTTP API, for the benchmark in `bench/` and its
//! end-to-end test: one app with N releases across stable, beta and unstable, six platforms
//! each, rollouts with rules (os version range, locale, a trait condition), allow lists and
//! percentages from 1% to 100%, and signed tiny artifacts uploaded once per content.
//!
//! The catalog is a pure function of the release index ([`version`], [`placement`],
//! [`rollout`]), so `bench/checkin.lua` can generate devices that fit it without asking the
//! server. Besides seeding ([`Seeder::seed`]), a [`Seeder`] measures what the benchmark cannot
//! measure with wrk alone: the size of a typical check-in answer ([`Seeder::sample`]) and how
//! long a rollout change takes to reach every check-in ([`Seeder::flip`], with a probe device
//! that only the probe release can change).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::{StreamExt as _, TryStreamExt as _};
use halftone_admin::{AdminClient, AdminError, ReleaseKey};
use halftone_channels::wire::{
    AppSpec, CheckRequest, CheckResponse, PromoteRequest, PublishRequest, ReleaseSpec, RolloutPatch, RolloutSpec,
};
use halftone_channels::{AppId, ChannelName, Percent, Sha256, SignedFields, Target, Version};
use serde_json::{Value, json};

/// The six platforms every release is built for.
pub const PLATFORMS: [(&str, &str); 6] = [
    ("windows", "x86_64"),
    ("windows", "aarch64"),
    ("macos", "x86_64"),
    ("macos", "aarch64"),
    ("linux", "x86_64"),
    ("linux", "aarch64"),
];

/// The release whose rollout [`Seeder::flip`] changes: newer than every seeded release, on
/// unstable, linux/x86_64 only, and ruled to devices reporting [`PROBE_TRAIT`], so flipping it
/// changes the answer of the probe device and of no benchmark device.
pub const PROBE_VERSION: &str = "999.0.0";
/// The channel of the probe release's rollout.
pub const PROBE_CHANNEL: &str = "unstable";
/// The trait only the probe device reports.
pub const PROBE_TRAIT: &str = "bench_probe";
/// The probe device's id.
pub const PROBE_DEVICE: &str = "bench-probe";
/// The version the probe device runs: above every seeded release, below the probe release.
const PROBE_CURRENT: &str = "998.0.0";

/// Device ids on the allow lists of some rollouts (`bench/checkin.lua` sends them now and then).
pub const ALLOWED_DEVICES: usize = 10;

/// The version of release `i`: `1.0.0`, `1.0.1`, ... `1.0.99`, `1.1.0`, ... (mirrored by
/// `bench/checkin.lua`).
pub fn version(i: usize) -> String {
    format!("{}.{}.{}", 1 + i / 10_000, i / 100 % 100, i % 100)
}

/// Where release `i` is rolled out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Published on beta at 100%, then promoted to stable with [`rollout`] (2 in 10 releases).
    Stable,
    /// Published on beta with [`rollout`] (3 in 10).
    Beta,
    /// Published on unstable with [`rollout`] (5 in 10).
    Unstable,
}

/// Where release `i` is rolled out.
pub fn placement(i: usize) -> Placement {
    match i % 10 {
        0 | 1 => Placement::Stable,
        2..=4 => Placement::Beta,
        _ => Placement::Unstable,
    }
}

/// A well-mixed hash of `i` and `salt` (splitmix64), so the catalog is varied yet reproducible.
fn mix(i: u64, salt: u64) -> u64 {
    let mut z = i.wrapping_add(salt.wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The rollout of release `i` on its final channel: a share from 1% to 100% and, for most
/// releases, rules and sometimes an allow list. Release 0 is at 100% without rules, so every
/// device is offered something.
pub fn rollout(i: usize) -> RolloutSpec {
    const BASIS_POINTS: [u16; 10] = [100, 500, 1000, 2500, 5000, 7500, 10_000, 10_000, 10_000, 10_000];
    if i == 0 {
        return spec(json!({"basis_points": 10_000}));
    }
    let h = mix(i as u64, 1);
    let rules = match (h >> 8) % 8 {
        0..=2 => json!([]),
        3 => json!([{"kind": "os_version", "range": ">=10"}]),
        4 => json!([{"kind": "locale_in", "values": ["en", "de", "fr", "zh"]}]),
        5 => json!([{"kind": "trait", "name": "tier", "op": "in", "values": ["gold", "silver"]}]),
        6 => json!([{"kind": "trait", "name": "ram_gb", "op": "ge", "value": 8}]),
        _ => json!([
            {"kind": "os_version", "range": ">=10, <20"},
            {"kind": "locale_in", "values": ["en"]},
            {"kind": "trait", "name": "tier", "op": "ne", "value": "bronze"},
        ]),
    };
    let allow: Vec<String> = if (h >> 16).is_multiple_of(5) {
        (0..ALLOWED_DEVICES).map(|n| format!("vip-{n}")).collect()
    } else {
        Vec::new()
    };
    spec(json!({"basis_points": BASIS_POINTS[(h % 10) as usize], "rules": rules, "allow": allow}))
}

fn spec(v: Value) -> RolloutSpec {
    serde_json::from_value(v).expect("the seed's rollouts are valid")
}

/// A device like the ones `bench/checkin.lua` generates, drawn from `n` (a counter or a random
/// number): random channel, platform, current version (mostly recent), os version, locale and
/// traits.
pub fn device(n: u64, releases: usize) -> CheckRequest {
    const CHANNELS: [&str; 10] =
        ["stable", "stable", "stable", "stable", "stable", "stable", "beta", "beta", "beta", "unstable"];
    const OS_VERSIONS: [&str; 7] = ["10.0.19045", "10.0.22631", "14.4.1", "13.6", "6.8.0", "12", "15.1"];
    const LOCALES: [&str; 7] = ["en-US", "de-DE", "fr-FR", "zh-CN", "ja-JP", "pt-BR", "es-ES"];
    const TIERS: [&str; 3] = ["gold", "silver", "bronze"];
    const RAM: [u32; 4] = [4, 8, 16, 32];
    let h = |salt| mix(n, salt);
    let releases = releases.max(1) as u64;
    // 7 in 10 devices run one of the newest 50 releases, whatever the catalog's size (a fleet
    // follows its last few releases); the rest run anything.
    let recent = releases.min(50);
    let current = if h(2) % 10 < 7 { releases - 1 - h(3) % recent } else { h(3) % releases } as usize;
    let (os, arch) = PLATFORMS[(h(4) % 6) as usize];
    serde_json::from_value(json!({
        "device_id": format!("{:016x}{:016x}", h(5), h(6)),
        "current_version": version(current),
        "channel": CHANNELS[(h(7) % 10) as usize],
        "os": os,
        "arch": arch,
        "os_version": OS_VERSIONS[(h(8) % 7) as usize],
        "locale": LOCALES[(h(9) % 7) as usize],
        "traits": {"tier": TIERS[(h(10) % 3) as usize], "ram_gb": RAM[(h(11) % 4) as usize]},
    }))
    .expect("valid check-in")
}

/// The probe device of [`Seeder::flip`].
pub fn probe_device() -> CheckRequest {
    serde_json::from_value(json!({
        "device_id": PROBE_DEVICE,
        "current_version": PROBE_CURRENT,
        "channel": PROBE_CHANNEL,
        "os": "linux",
        "arch": "x86_64",
        "traits": {PROBE_TRAIT: true},
    }))
    .expect("valid check-in")
}

/// What seeding did.
#[derive(Debug, Clone, PartialEq)]
pub struct Seeded {
    /// Releases published (the probe release included).
    pub releases: usize,
    /// Rollouts created (publishes and promotions).
    pub rollouts: usize,
    /// Artifacts uploaded.
    pub uploads: usize,
    /// Wall time.
    pub elapsed: Duration,
}

/// A typical check-in answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// The offer of median size, as the server sent it (a `latest.json` always describes a
    /// release); the answer of median size if no check-in was offered anything.
    pub body: Vec<u8>,
    /// Answers that offered an update.
    pub offers: usize,
    /// Check-ins sent.
    pub checked: usize,
}

/// One rollout change seen by the probe device.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Flip {
    /// From sending the change to its answer.
    pub acknowledged: Duration,
    /// From sending the change to the first check-in answered with it.
    pub visible: Duration,
    /// Probe check-ins sent until then.
    pub probes: usize,
}

/// How many times a request that got no answer is sent in all (see [`Seeder::send`]).
const ATTEMPTS: u32 = 3;

/// A release engineer with a signing key, talking to one server through its admin API; and
/// the devices that check in, over plain HTTP (the benchmark measures their raw answers).
pub struct Seeder {
    admin: AdminClient,
    devices: reqwest::Client,
    base: String,
    app: AppId,
    key: ReleaseKey,
}

impl Seeder {
    /// A seeder for `app` on the server at `base` (`http://127.0.0.1:PORT`) with an admin token.
    pub fn new(base: &str, token: &str, app: &str) -> anyhow::Result<Seeder> {
        Ok(Seeder {
            admin: AdminClient::new(base, token)?,
            // Idle connections are dropped well before the server's keep-alive (5 s) closes
            // them, so a request is rarely sent on a connection the server is closing.
            devices: reqwest::Client::builder()
                .pool_max_idle_per_host(256)
                .pool_idle_timeout(Duration::from_secs(2))
                .build()?,
            base: base.trim_end_matches('/').to_owned(),
            app: AppId::parse(app)?,
            key: ReleaseKey::from_seed([0x5e; 32]),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Makes an admin call; a refusal is an error with the server's explanation.
    ///
    /// A call that got no answer at all (the server closed a keep-alive connection just as the
    /// client reused it) is made again, at most [`ATTEMPTS`] times in all. Seeding calls are
    /// idempotent (publishing the same release again answers 200), except a promotion that did
    /// land the first time, which answers 409 Conflict when retried: that counts as done.
    async fn send<T, F>(&self, what: &str, call: impl Fn() -> F) -> anyhow::Result<Option<T>>
    where
        F: Future<Output = Result<T, AdminError>>,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(answer) => return Ok(Some(answer)),
                Err(e @ AdminError::Network { .. }) if attempt < ATTEMPTS => {
                    eprintln!("{what}: {e}; sending again");
                    tokio::time::sleep(Duration::from_millis(100 * attempt as u64)).await;
                    attempt += 1;
                }
                Err(e) if attempt > 1 && e.status() == Some(409) => return Ok(None),
                Err(e) => return Err(anyhow::Error::new(e).context(what.to_owned())),
            }
        }
    }

    /// Creates the app with the seeder's key and the built-in channels.
    pub async fn create_app(&self) -> anyhow::Result<()> {
        let spec = AppSpec {
            display_name: format!("{} (benchmark)", self.app).parse()?,
            keys: vec![self.key.spec()],
            channels: vec![],
            metrics: vec![],
        };
        self.send("creating the app", || self.admin.put_app(&self.app, &spec)).await?;
        Ok(())
    }

    /// The tiny artifact built for a platform. Every release of a platform ships the same
    /// bytes (each release signs them for its own version), so each content is uploaded once.
    fn artifact(os: &str, arch: &str) -> Vec<u8> {
        format!("halftone benchmark build for {os}/{arch}\n").repeat(4).into_bytes()
    }

    async fn upload(&self, bytes: Vec<u8>) -> anyhow::Result<()> {
        let what = format!("uploading artifact {}", Sha256::digest(&bytes));
        self.send(&what, || self.admin.upload_bytes(bytes.clone())).await?;
        Ok(())
    }

    /// Release `version` built for `platforms`, signed.
    fn release(&self, version: &str, notes: String, platforms: &[(&str, &str)]) -> anyhow::Result<ReleaseSpec> {
        let v: Version = version.parse()?;
        let mut artifacts = Vec::new();
        for (os, arch) in platforms {
            let bytes = Self::artifact(os, arch);
            let target = Target { os: os.parse()?, arch: arch.parse()? };
            let sha256 = Sha256::digest(&bytes);
            let size = bytes.len() as u64;
            artifacts.push(self.key.sign_artifact(SignedFields {
                app: &self.app,
                version: &v,
                target: &target,
                sha256: &sha256,
                size,
            }));
        }
        Ok(ReleaseSpec { version: v, notes, critical: false, min_from_version: None, rebuild_of: None, artifacts })
    }

    async fn publish(&self, release: ReleaseSpec, channel: &str, rollout: RolloutSpec) -> anyhow::Result<()> {
        let what = format!("publishing {} on {channel}", release.version);
        let body = PublishRequest { release, channel: channel.parse()?, rollout };
        self.send(&what, || self.admin.publish(&self.app, &body)).await?;
        Ok(())
    }

    /// Publishes release `i` and, for stable ones, promotes it. Returns the rollouts made.
    async fn publish_release(&self, i: usize) -> anyhow::Result<usize> {
        let v = version(i);
        let notes = format!("Release {v}: fixes and improvements.\n\n- faster start-up\n- fewer crashes on resume");
        let release = self.release(&v, notes, &PLATFORMS)?;
        match placement(i) {
            Placement::Stable => {
                self.publish(release, "beta", spec(json!({"basis_points": 10_000}))).await?;
                let body = PromoteRequest { channel: "stable".parse()?, rollout: rollout(i) };
                let version: Version = v.parse()?;
                self.send(&format!("promoting {v} to stable"), || self.admin.promote(&self.app, &version, &body))
                    .await?;
                Ok(2)
            }
            Placement::Beta => self.publish(release, "beta", rollout(i)).await.map(|()| 1),
            Placement::Unstable => self.publish(release, "unstable", rollout(i)).await.map(|()| 1),
        }
    }

    /// Creates the app, uploads the artifacts, publishes `releases` releases with up to
    /// `concurrency` requests in flight, then the probe release (at 0%). `progress` is called
    /// with the number of releases published so far after each one.
    pub async fn seed(
        &self,
        releases: usize,
        concurrency: usize,
        progress: impl Fn(usize) + Sync,
    ) -> anyhow::Result<Seeded> {
        let started = Instant::now();
        self.create_app().await?;
        futures_util::stream::iter(PLATFORMS.iter().map(|(os, arch)| self.upload(Self::artifact(os, arch))))
            .buffer_unordered(PLATFORMS.len())
            .try_collect::<Vec<()>>()
            .await?;
        let done = AtomicUsize::new(0);
        let rollouts: Vec<usize> = futures_util::stream::iter((0..releases).map(|i| {
            let done = &done;
            let progress = &progress;
            async move {
                let n = self.publish_release(i).await?;
                progress(done.fetch_add(1, Ordering::Relaxed) + 1);
                anyhow::Ok(n)
            }
        }))
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
        let probe = self.release(PROBE_VERSION, "The benchmark's probe release.".into(), &[("linux", "x86_64")])?;
        let probe_rollout = spec(json!({
            "basis_points": 0,
            "rules": [{"kind": "trait", "name": PROBE_TRAIT, "op": "exists"}],
        }));
        self.publish(probe, PROBE_CHANNEL, probe_rollout).await?;
        Ok(Seeded {
            releases: releases + 1,
            rollouts: rollouts.iter().sum::<usize>() + 1,
            uploads: PLATFORMS.len(),
            elapsed: started.elapsed(),
        })
    }

    /// One check-in; the raw answer and its parsed form. Anything but 200 is an error.
    pub async fn check(&self, request: &CheckRequest) -> anyhow::Result<(Vec<u8>, CheckResponse)> {
        let res = self
            .devices
            .post(self.url(&format!("/v1/apps/{}/check", self.app)))
            .json(request)
            .send()
            .await
            .context("checking in")?;
        let status = res.status();
        let bytes = res.bytes().await.context("reading a check-in answer")?.to_vec();
        if status != reqwest::StatusCode::OK {
            bail!("check-in: HTTP {status}: {}", String::from_utf8_lossy(&bytes));
        }
        let parsed = serde_json::from_slice(&bytes).context("parsing a check-in answer")?;
        Ok((bytes, parsed))
    }

    /// Checks in `count` benchmark-like devices, each running a release of the catalog, and
    /// returns what their events need: `(device id, version, channel, report token)` for the
    /// version each runs (events count only with a token, `docs/api.md`, "Report tokens").
    pub async fn report_tokens(&self, releases: usize, count: usize) -> anyhow::Result<Vec<[String; 4]>> {
        futures_util::stream::iter((0..count as u64).map(|n| async move {
            let mut request = device(mix(n, 77), releases);
            request.device_id = format!("e-{n}").parse().expect("a valid device id");
            let (_, answer) = self.check(&request).await?;
            let token = answer.report_token.context("a device running a release gets a report token")?;
            anyhow::Ok([
                request.device_id.to_string(),
                request.current_version.to_string(),
                request.channel.to_string(),
                token.to_string(),
            ])
        }))
        .buffered(16)
        .try_collect()
        .await
    }

    /// Checks in `count` benchmark-like devices of a catalog of `releases` releases and keeps
    /// the offer of median size: what a static `latest.json` describing a release would be.
    pub async fn sample(&self, releases: usize, count: usize) -> anyhow::Result<Sample> {
        let answers: Vec<(Vec<u8>, CheckResponse)> = futures_util::stream::iter(
            (0..count.max(1) as u64).map(|n| async move { self.check(&device(mix(n, 99), releases)).await }),
        )
        .buffered(16)
        .try_collect()
        .await?;
        let offers = answers.iter().filter(|(_, a)| a.update.is_some()).count();
        let checked = answers.len();
        let mut bodies: Vec<Vec<u8>> =
            answers.into_iter().filter(|(_, a)| offers == 0 || a.update.is_some()).map(|(b, _)| b).collect();
        bodies.sort_by_key(Vec::len);
        let body = bodies.swap_remove(bodies.len() / 2);
        Ok(Sample { body, offers, checked })
    }

    async fn probe_offered(&self, probe: &CheckRequest) -> anyhow::Result<bool> {
        let (_, answer) = self.check(probe).await?;
        Ok(answer.update.is_some_and(|u| u.version.to_string() == PROBE_VERSION))
    }

    /// Turns the probe release's rollout on (100%) and off (0%) `times` times, `pause` apart,
    /// while a probe device checks in back to back; measures when each change is acknowledged
    /// and when the first check-in sees it. The snapshot is swapped atomically, so from then on
    /// every check-in sees it.
    pub async fn flip(&self, times: usize, pause: Duration) -> anyhow::Result<Vec<Flip>> {
        let (version, channel): (Version, ChannelName) = (PROBE_VERSION.parse()?, PROBE_CHANNEL.parse()?);
        let probe = probe_device();
        let mut on = self.probe_offered(&probe).await?;
        let mut flips = Vec::with_capacity(times);
        for n in 0..times {
            if n > 0 {
                tokio::time::sleep(pause).await;
            }
            let read = self.send("reading the probe rollout", || self.admin.get_rollout(&self.app, &version, &channel));
            let (_, etag) = read.await?.context("reading a rollout is never a conflict")?;
            let want = !on;
            let patch = RolloutPatch {
                basis_points: Some(Percent::from_basis_points(if want { 10_000 } else { 0 })?),
                ..RolloutPatch::default()
            };
            let started = Instant::now();
            let change = async {
                let call = || self.admin.patch_rollout(&self.app, &version, &channel, &etag, &patch);
                self.send("changing the probe rollout", call).await?;
                anyhow::Ok(started.elapsed())
            };
            let watch = async {
                let mut probes = 0;
                loop {
                    probes += 1;
                    if self.probe_offered(&probe).await? == want {
                        return anyhow::Ok((started.elapsed(), probes));
                    }
                    if started.elapsed() > Duration::from_secs(30) {
                        bail!("the probe device did not see the rollout change within 30 s");
                    }
                }
            };
            let (acknowledged, (visible, probes)) = tokio::try_join!(change, watch)?;
            flips.push(Flip { acknowledged, visible, probes });
            on = want;
        }
        Ok(flips)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_with_the_index() {
        assert_eq!(version(0), "1.0.0");
        assert_eq!(version(99), "1.0.99");
        assert_eq!(version(100), "1.1.0");
        assert_eq!(version(9_999), "1.99.99");
        assert_eq!(version(10_000), "2.0.0");
        let parsed: Vec<halftone_channels::Version> = (0..20_000).map(|i| version(i).parse().unwrap()).collect();
        assert!(parsed.windows(2).all(|w| w[0] < w[1]));
        assert!(parsed.last().unwrap() < &PROBE_CURRENT.parse().unwrap());
    }

    #[test]
    fn rollouts_span_one_to_a_hundred_percent_with_rules_and_allow_lists() {
        let all: Vec<RolloutSpec> = (0..1000).map(rollout).collect();
        let bp: std::collections::BTreeSet<u16> = all.iter().map(|r| r.basis_points.basis_points()).collect();
        assert_eq!(bp.first(), Some(&100));
        assert_eq!(bp.last(), Some(&10_000));
        assert!(all.iter().filter(|r| r.rules.is_empty()).count() > 200);
        assert!(all.iter().filter(|r| r.rules.len() == 3).count() > 50);
        assert!(all.iter().filter(|r| !r.allow.is_empty()).count() > 100);
    }

    #[test]
    fn devices_are_valid_and_varied() {
        let devices: Vec<CheckRequest> = (0..100).map(|n| device(n, 1000)).collect();
        let ids: std::collections::BTreeSet<_> = devices.iter().map(|d| d.device_id.to_string()).collect();
        assert_eq!(ids.len(), 100);
        assert!(devices.iter().any(|d| d.channel.as_str() == "beta"));
    }
}
