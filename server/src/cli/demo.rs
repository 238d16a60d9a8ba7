//! `halftone demo`: the whole idea in under a minute. Starts a throwaway server in a temp
//! dir, creates an app with a fresh signing key, publishes releases on channels, lets a few
//! thousand simulated devices check in after each step, and shows who was offered what:
//! a beta at 50%, a promotion to stable at 10% then 30%, a halt, an explanation, and a
//! rollback by rebuild.
//!
//! Devices "install" what they are offered, so each round starts from the previous one. Every
//! offer's signature is checked against the app's public key, as the device SDK does.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use futures_util::StreamExt as _;
use halftone_admin::{AdminClient, ReleaseKey};
use halftone_channels::wire::{
    AppSpec, CheckRequest, ExplainRequest, PromoteRequest, PublishRequest, ReleaseSpec, RollbackRequest, RolloutPatch,
};
use halftone_channels::{
    AppId, Arch, ChannelName, DeviceId, Os, Percent, SignedFields, Target, Traits, TrustedKeys, Version, signed_message,
};

use super::artifact::{ArtifactArg, sign_and_upload};
use super::explain;
use super::output::{Output, Table};
use super::releases;
use super::rollout::{RolloutArgs, StickinessArg, summary};
use crate::config::Config;

/// `halftone demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// How many devices to simulate.
    #[arg(long, default_value_t = 3000, value_parser = clap::value_parser!(u32).range(10..=100_000))]
    pub devices: u32,
}

/// How many check-ins are in flight at once.
const CONCURRENCY: usize = 32;

/// Runs the demo. It prints for people whatever `--json` says: it is a story, not data.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let out = Output::new(false);
    let dir = tempfile::Builder::new().prefix("halftone-demo-").tempdir().context("creating a temp dir")?;
    let server = DemoServer::start(dir.path().join("data")).await?;
    let result = story(&args, &out, &server, dir.path()).await;
    server.stop().await;
    drop(dir);
    result
}

async fn story(args: &DemoArgs, out: &Output, server: &DemoServer, dir: &Path) -> anyhow::Result<()> {
    let p = |s: &str| out.line(s);
    p("halftone demo: a staged release, from beta to rollback, against a throwaway server.\n")?;
    p(&format!(
        "1. Started a server at http://{} (data in a temp dir; admin token from its first start).",
        server.addr
    ))?;

    let admin = AdminClient::new(&format!("http://{}", server.addr), server.token.as_str())?;
    let app = AppId::parse("notes")?;
    let key = ReleaseKey::generate();
    let spec = AppSpec { display_name: "Notes".parse()?, keys: vec![key.spec()], channels: vec![], metrics: vec![] };
    admin.put_app(&app, &spec).await?;
    p(&format!("2. Made signing key {} and created app `notes` trusting it. The private key stays here.", key.id()))?;

    let mut demo = Demo { admin, app, key, dir: dir.to_owned(), out: *out, trusted_offers: 0 };
    let mut fleet = Fleet::new(args.devices, Version::new(1, 0, 0));
    let (v1, v11, v111) = (Version::new(1, 0, 0), Version::new(1, 1, 0), Version::new(1, 1, 1));

    demo.publish(&v1, ChannelName::stable(), 10_000).await?;
    p(&format!(
        "3. Published 1.0.0 on stable at 100%: what all {} devices run today ({}).",
        fleet.devices.len(),
        fleet.mix()
    ))?;

    demo.publish(&v11, ChannelName::beta(), 5_000).await?;
    p("\n4. Published 1.1.0 on beta at 50%. Every device checks in, as the SDK would:")?;
    let took = demo.round(&mut fleet).await?;
    p(&format!(
        "   About half of beta is offered 1.1.0; stable sees nothing new. ({} check-ins in {:.2} s.)",
        fleet.devices.len(),
        took.as_secs_f64()
    ))?;

    let rollout = RolloutArgs {
        percent: Some(Percent::from_basis_points(1_000)?),
        rules: vec![],
        allow: vec![],
        deny: vec![],
        stickiness: StickinessArg::Device,
        interactive_bypass: false,
        salt: None,
        schedule: None,
        gate: None,
    };
    let promote = PromoteRequest { channel: ChannelName::stable(), rollout: rollout.spec() };
    demo.admin.promote(&demo.app, &v11, &promote).await?;
    p("\n5. Beta looks healthy: promoted 1.1.0 to stable at 10%.")?;
    demo.round(&mut fleet).await?;

    let (before, etag) = demo.admin.get_rollout(&demo.app, &v11, &ChannelName::stable()).await?;
    let patch = RolloutPatch { basis_points: Some(Percent::from_basis_points(3_000)?), ..RolloutPatch::default() };
    let (after, _) = demo.admin.patch_rollout(&demo.app, &v11, &ChannelName::stable(), &etag, &patch).await?;
    p(&format!(
        "\n6. Raised stable from {} to {} (read with its ETag, changed with If-Match, so no edit is lost):",
        before.rollout.basis_points, after.rollout.basis_points
    ))?;
    demo.round(&mut fleet).await?;
    let stable_on_v11 = fleet.devices.iter().filter(|d| d.channel == ChannelName::stable() && d.running == v11).count();
    p(&format!(
        "   {stable_on_v11} stable devices now run 1.1.0: those from 10% stayed in, \
         for raising a percentage only adds devices."
    ))?;

    demo.admin.halt(&demo.app, &v11).await?;
    p("\n7. Crash reports from 1.1.0! Halted it on every channel:")?;
    demo.round(&mut fleet).await?;
    p(&format!("   Nobody new gets 1.1.0; {} devices already run it.", fleet.running(&v11)))?;

    if let Some(d) = fleet.devices.iter().find(|d| d.channel == ChannelName::stable() && d.running == v1) {
        p(&format!(
            "\n8. Why is {} (stable, {}) not offered 1.1.0? `halftone explain` asks the server:",
            d.id, d.target
        ))?;
        let request = ExplainRequest { check: d.request(), ip: None };
        let answer = demo.admin.explain(&demo.app, &request).await?;
        p(&indent(&explain::render(&request, &answer, out.styled())))?;
    }

    let artifacts = demo.builds(&v111)?;
    let specs =
        sign_and_upload(&demo.admin, &demo.app, &v111, std::slice::from_ref(&demo.key), &artifacts, &Output::quiet())
            .await?;
    let rebuild = ReleaseSpec {
        version: v111.clone(),
        notes: "Rolls back 1.1.0 to the code of 1.0.0.".into(),
        critical: false,
        min_from_version: None,
        rebuild_of: Some(v1.clone()),
        artifacts: specs,
    };
    let stuck = fleet.running(&v11);
    let view = demo
        .admin
        .rollback(&demo.app, &RollbackRequest { bad_version: v11.clone(), release: rebuild, leave_uncovered: false })
        .await?;
    let channels: Vec<String> = view.rollouts.iter().map(|r| format!("{} {}", r.channel, summary(r))).collect();
    p(&format!(
        "\n9. Rolled back: 1.1.1 re-issues 1.0.0's code under a higher version, so devices move forward \
         instead of downgrading ({}):",
        channels.join("; ")
    ))?;
    demo.round(&mut fleet).await?;
    p(&format!("   Of the {stuck} devices stuck on 1.1.0, {} remain.", fleet.running(&v11)))?;

    p("\nReleases (`halftone releases notes`):")?;
    let list = demo.admin.list_releases(&demo.app).await?;
    p(&indent(&releases::table(&list).render()))?;
    p(&format!("Fleet at the end: {}.", fleet.versions()))?;
    p(&format!(
        "Every one of the {} offers carried a signature that verified against the app's public key.",
        demo.trusted_offers
    ))?;
    p("\nTry it for real: `halftone serve`, `halftone keygen --out release.key`, `halftone app create`, \
       `halftone publish`, `halftone rollout set`, `halftone --help`.")?;
    Ok(())
}

/// The demo's admin side: who it is, where its builds go, and the offers it checked.
struct Demo {
    admin: AdminClient,
    app: AppId,
    key: ReleaseKey,
    dir: PathBuf,
    out: Output,
    trusted_offers: u64,
}

impl Demo {
    /// Small builds for every platform of the fleet, written to files as a CI job would.
    fn builds(&self, version: &Version) -> anyhow::Result<Vec<ArtifactArg>> {
        let builds = self.dir.join("builds");
        std::fs::create_dir_all(&builds)?;
        platforms()
            .into_iter()
            .map(|target| {
                let path = builds.join(format!("notes-{version}-{}-{}.bin", target.os, target.arch));
                std::fs::write(&path, format!("Notes {version} for {target}\n").repeat(512))?;
                Ok(ArtifactArg { target, path })
            })
            .collect()
    }

    async fn publish(&self, version: &Version, channel: ChannelName, basis_points: u16) -> anyhow::Result<()> {
        let artifacts = self.builds(version)?;
        let specs = sign_and_upload(
            &self.admin,
            &self.app,
            version,
            std::slice::from_ref(&self.key),
            &artifacts,
            &Output::quiet(),
        )
        .await?;
        let rollout = RolloutArgs {
            percent: Some(Percent::from_basis_points(basis_points)?),
            rules: vec![],
            allow: vec![],
            deny: vec![],
            stickiness: StickinessArg::Device,
            interactive_bypass: false,
            salt: None,
            schedule: None,
            gate: None,
        };
        let request = PublishRequest {
            release: ReleaseSpec {
                version: version.clone(),
                notes: format!("Notes {version}."),
                critical: false,
                min_from_version: None,
                rebuild_of: None,
                artifacts: specs,
            },
            channel,
            rollout: rollout.spec(),
        };
        self.admin.publish(&self.app, &request).await?;
        Ok(())
    }

    /// Every device checks in once; prints who was offered what, per channel; devices install
    /// their offers.
    async fn round(&mut self, fleet: &mut Fleet) -> anyhow::Result<std::time::Duration> {
        let started = std::time::Instant::now();
        let trusted = TrustedKeys::new([(self.key.id().clone(), self.key.public_key())])?;
        let answers: Vec<(usize, anyhow::Result<Option<Version>>)> =
            futures_util::stream::iter(fleet.devices.iter().enumerate())
                .map(|(i, d)| {
                    let (admin, app, trusted) = (&self.admin, &self.app, &trusted);
                    async move { (i, check(admin, app, trusted, d).await) }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        let mut by_channel: BTreeMap<(u16, ChannelName), Tally> = BTreeMap::new();
        let mut offered_versions = std::collections::BTreeSet::new();
        for (i, answer) in answers {
            let offer = answer?;
            let device = &mut fleet.devices[i];
            let tally = by_channel.entry((device.rank(), device.channel.clone())).or_default();
            tally.devices += 1;
            match offer {
                Some(v) => {
                    self.trusted_offers += 1;
                    *tally.offered.entry(v.clone()).or_default() += 1;
                    offered_versions.insert(v.clone());
                    device.running = v;
                }
                None => tally.up_to_date += 1,
            }
        }
        let mut headers = vec!["CHANNEL".to_owned(), "DEVICES".to_owned()];
        headers.extend(offered_versions.iter().rev().map(|v| format!("OFFERED {v}")));
        headers.push("UP TO DATE".to_owned());
        let mut table = Table::new(headers);
        for ((_, channel), tally) in &by_channel {
            let mut row = vec![channel.to_string(), tally.devices.to_string()];
            row.extend(offered_versions.iter().rev().map(|v| tally.offered.get(v).copied().unwrap_or(0).to_string()));
            row.push(tally.up_to_date.to_string());
            table.row(row);
        }
        let elapsed = started.elapsed();
        self.out.line(&indent(&table.render()))?;
        Ok(elapsed)
    }
}

/// One device's check-in, as the device SDK makes it; the offer's signature must verify.
async fn check(
    admin: &AdminClient,
    app: &AppId,
    trusted: &TrustedKeys,
    device: &Device,
) -> anyhow::Result<Option<Version>> {
    let answer = admin.check_as_device(app, &device.request()).await?;
    let Some(update) = answer.update else { return Ok(None) };
    let a = &update.artifact;
    let target = Target { os: a.os.clone(), arch: a.arch.clone() };
    let message = signed_message(SignedFields {
        app,
        version: &update.version,
        target: &target,
        sha256: &a.sha256,
        size: a.size,
    });
    if let Err(e) = trusted.verify(&a.key_id, message.as_bytes(), &a.signature) {
        bail!("the offer of {} to {} failed verification: {e}", update.version, device.id);
    }
    Ok(Some(update.version))
}

#[derive(Debug, Default)]
struct Tally {
    devices: u32,
    offered: BTreeMap<Version, u32>,
    up_to_date: u32,
}

/// A simulated device.
struct Device {
    id: DeviceId,
    channel: ChannelName,
    target: Target,
    running: Version,
}

impl Device {
    fn request(&self) -> CheckRequest {
        CheckRequest {
            device_id: self.id.clone(),
            user_id: None,
            current_version: self.running.clone(),
            channel: self.channel.clone(),
            os: self.target.os.clone(),
            arch: self.target.arch.clone(),
            os_version: None,
            locale: None,
            traits: Traits::default(),
            interactive: false,
            nonce: None,
            answer_key: None,
            current_sha256: None,
        }
    }

    /// Stable first in tables.
    fn rank(&self) -> u16 {
        if self.channel == ChannelName::stable() { 0 } else { 1 }
    }
}

/// The simulated devices: 70% on stable, 30% on beta, spread over three platforms.
struct Fleet {
    devices: Vec<Device>,
}

impl Fleet {
    fn new(n: u32, running: Version) -> Self {
        let platforms = platforms();
        let devices = (0..n)
            .map(|i| Device {
                // Random-looking, stable ids, as the SDK's 128-bit ids are.
                id: DeviceId::parse(&format!("device-{i:05}")).expect("a valid device id"),
                channel: if i % 10 < 7 { ChannelName::stable() } else { ChannelName::beta() },
                target: platforms[(i as usize / 10) % platforms.len()].clone(),
                running: running.clone(),
            })
            .collect();
        Fleet { devices }
    }

    fn running(&self, v: &Version) -> usize {
        self.devices.iter().filter(|d| &d.running == v).count()
    }

    /// `2100 on stable, 900 on beta; windows, macos and linux`.
    fn mix(&self) -> String {
        let stable = self.devices.iter().filter(|d| d.channel == ChannelName::stable()).count();
        format!("{stable} on stable, {} on beta; windows, macos and linux", self.devices.len() - stable)
    }

    /// `1.0.0 on 2001 devices, 1.1.1 on 999 devices`.
    fn versions(&self) -> String {
        let mut counts: BTreeMap<&Version, usize> = BTreeMap::new();
        for d in &self.devices {
            *counts.entry(&d.running).or_default() += 1;
        }
        counts.iter().map(|(v, n)| format!("{v} on {n} devices")).collect::<Vec<_>>().join(", ")
    }
}

fn platforms() -> Vec<Target> {
    [("windows", "x86_64"), ("macos", "aarch64"), ("linux", "x86_64")]
        .into_iter()
        .map(|(os, arch)| Target {
            os: Os::parse(os).expect("a valid os"),
            arch: Arch::parse(arch).expect("a valid arch"),
        })
        .collect()
}

fn indent(text: &str) -> String {
    text.lines().map(|l| if l.is_empty() { String::new() } else { format!("   {l}") }).collect::<Vec<_>>().join("\n")
}

/// The throwaway server, on its own thread and runtime (as the end-to-end tests run it), so
/// its future need not be `Send`.
struct DemoServer {
    addr: SocketAddr,
    token: String,
    handle: actix_web::dev::ServerHandle,
    thread: std::thread::JoinHandle<()>,
}

impl DemoServer {
    async fn start(data_dir: PathBuf) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new().name("halftone-demo-server".into()).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build() {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(anyhow::Error::new(e)));
                    return;
                }
            };
            runtime.block_on(async move {
                let server = match crate::startup::build(Config::for_tests(data_dir)).await {
                    Ok(server) => server,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let ready = (server.addr(), server.bootstrap_token().map(str::to_owned), server.handle());
                let _ = ready_tx.send(Ok(ready));
                if let Err(e) = server.run().await {
                    eprintln!("demo server: {e:#}");
                }
            });
        })?;
        let (addr, token, handle) = ready_rx.await.context("the demo server thread stopped")??;
        let token = token.context("a fresh data dir should give a bootstrap admin token")?;
        Ok(DemoServer { addr, token, handle, thread })
    }

    /// Stops gracefully and waits for the server thread, so the temp dir is removed after it.
    async fn stop(self) {
        self.handle.stop(true).await;
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_mixes_channels_and_platforms() {
        let fleet = Fleet::new(3000, Version::new(1, 0, 0));
        assert_eq!(fleet.mix(), "2100 on stable, 900 on beta; windows, macos and linux");
        for target in platforms() {
            for channel in [ChannelName::stable(), ChannelName::beta()] {
                let n = fleet.devices.iter().filter(|d| d.target == target && d.channel == channel).count();
                assert!(n > 200, "{target} {channel}: {n}");
            }
        }
        assert_eq!(fleet.versions(), "1.0.0 on 3000 devices");
    }
}
