//! The cost of one check-in decision and of bucketing alone.
//!
//! The catalog is large on purpose: 1,000 releases, each built for 6 platforms and rolled out
//! on all 3 built-in channels with 5 targeting rules (os version, locale, a trait, app version
//! range, arch) and a percentage spread over 1%..100%. Targets on a 2-core machine: a
//! selection under 5 µs, a bucket under 500 ns.
//!
//! The `catalog_size` group selects for the same kinds of device in catalogs of 10 and 10,000
//! releases: selection must not grow with the catalog (lanes per channel and target, newest
//! first, and a binary search to the releases newer than the device).
//!
//! Run with `cargo bench -p halftone-channels`.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use halftone_channels::wire::RolloutSpec;
use halftone_channels::*;

const RELEASES: u64 = 1000;
/// The catalog sizes the `catalog_size` group compares.
const SIZES: [u64; 2] = [10, 10_000];
const PLATFORMS: [(&str, &str); 6] = [
    ("windows", "x86_64"),
    ("windows", "aarch64"),
    ("macos", "x86_64"),
    ("macos", "aarch64"),
    ("linux", "x86_64"),
    ("linux", "aarch64"),
];
const LOCALES: [&str; 6] = ["en", "zh", "de", "fr", "ja", "pt"];

/// Release `i` of the catalog: 1.0.0, 1.0.1, ..., 10.9.9 (newest is `version(RELEASES - 1)`).
fn version(i: u64) -> Version {
    Version::new(1 + i / 100, (i / 10) % 10, i % 10)
}

fn rule(json: &str) -> Rule {
    serde_json::from_str(json).unwrap()
}

/// Five rules most devices pass, varied so that some rollouts leave some devices out: the
/// locale list rotates (a given locale is missing from one rollout in six).
fn rules(i: u64, channel: usize) -> Vec<Rule> {
    let skip = (i as usize + channel) % LOCALES.len();
    let locales: Vec<String> =
        LOCALES.iter().enumerate().filter(|(k, _)| *k != skip).map(|(_, l)| format!("\"{l}\"")).collect();
    vec![
        rule(r#"{"kind":"os_version","range":">=6.1, <100"}"#),
        rule(&format!(r#"{{"kind":"locale_in","values":[{}]}}"#, locales.join(","))),
        rule(r#"{"kind":"trait","name":"tier","op":"in","values":["free","silver","gold"]}"#),
        rule(&format!(r#"{{"kind":"app_version","range":">=1.0.0, <{}"}}"#, version(i))),
        rule(r#"{"kind":"arch_in","values":["x86_64","aarch64"]}"#),
    ]
}

fn catalog(size: u64) -> Catalog {
    let app = AppId::parse("notes").unwrap();
    let mut releases = Vec::new();
    let mut rollouts = Vec::new();
    for i in 0..size {
        let v = version(i);
        let artifacts: BTreeMap<Target, Artifact> = PLATFORMS
            .iter()
            .map(|(os, arch)| {
                let target = Target { os: os.parse().unwrap(), arch: arch.parse().unwrap() };
                let artifact = Artifact {
                    sha256: Sha256::digest(format!("{v}/{target}").as_bytes()),
                    size: 40_000_000,
                    signatures: Signatures::one(KeyId::parse("release-2026").unwrap(), Signature::from_bytes([3; 64])),
                    url: None,
                    clients: None,
                    patches: Default::default(),
                };
                (target, artifact)
            })
            .collect();
        releases.push(
            Release::new(ReleaseParts {
                version: v.clone(),
                notes: format!("Release {v}: fixes and improvements."),
                critical: i % 97 == 0,
                min_from_version: None,
                rebuild_of: None,
                artifacts,
            })
            .unwrap(),
        );
        for (k, channel) in ["stable", "beta", "unstable"].into_iter().enumerate() {
            // 1%..100%, scattered pseudo-randomly over releases and channels.
            let bp = 100 + ((i * 7919 + k as u64 * 3571) % 9901) as u16;
            let spec = RolloutSpec {
                basis_points: Percent::from_basis_points(bp).unwrap(),
                salt: None,
                stickiness: Stickiness::Device,
                allow: vec![ListedId::parse("qa-device-1").unwrap()],
                deny: vec![ListedId::parse("banned-device").unwrap()],
                rules: rules(i, k),
                state: RolloutState::Active,
                interactive_bypass: k == 2,
                schedule: None,
                gate: None,
            };
            rollouts.push(spec.into_rollout(&app, v.clone(), channel.parse().unwrap()).unwrap());
        }
    }
    Catalog::new(app, Ladder::default(), releases, rollouts).unwrap()
}

fn device(id: &str, current: Version, channel: &str, os: &str, arch: &str) -> CheckIn {
    let traits: Traits = serde_json::from_str(r#"{"tier":"gold","ram_gb":16,"region":"eu-west"}"#).unwrap();
    CheckIn {
        device_id: DeviceId::parse(id).unwrap(),
        user_id: None,
        current_version: current,
        channel: channel.parse().unwrap(),
        platform: Platform {
            target: Target { os: os.parse().unwrap(), arch: arch.parse().unwrap() },
            os_version: Some("10.0.19045".parse().unwrap()),
        },
        locale: Some("en-US".parse().unwrap()),
        traits,
        ip: Some("203.0.113.7".parse().unwrap()),
        kind: CheckKind::Background,
    }
}

/// Releases newer than what `d` runs that it is not offered because it is outside them.
fn walked(cat: &Catalog, d: &CheckIn) -> usize {
    let x = cat.explain(d).unwrap();
    x.releases
        .iter()
        .filter(|t| t.version > d.current_version && x.offered.as_ref().is_none_or(|o| t.version > *o))
        .count()
}

/// A device id whose selection walks past at least `skips` newer releases before it is offered
/// one: most devices are outside the newest, small rollouts, so that is the common path.
fn walking_device(cat: &Catalog, skips: usize, current: Version, channel: &str, os: &str, arch: &str) -> CheckIn {
    (0..100_000)
        .map(|n| device(&format!("{n:08x}-8b7d-4c1a-9e2f-6a5b4c3d2e1f"), current.clone(), channel, os, arch))
        .find(|d| walked(cat, d) >= skips)
        .expect("some device is outside the newest rollouts")
}

fn select(c: &mut Criterion) {
    let cat = catalog(RELEASES);
    let newest = version(RELEASES - 1);
    let mut untargeted = device("0b1e5a2c-66d4-4a7e-8f3b-9c2d1e0f4a5b", version(0), "unstable", "linux", "x86_64");
    untargeted.locale = Some("ko-KR".parse().unwrap());
    let devices = [
        // On the newest version: one binary search and done.
        ("up_to_date", device("7c9e6679-7425-40de-944b-e07fc1f90ae7", newest, "stable", "windows", "x86_64")),
        // Five releases behind on beta, outside the newest three rollouts it sees.
        ("few_behind_beta", walking_device(&cat, 3, version(RELEASES - 6), "beta", "macos", "aarch64")),
        // On the very first release, on stable, outside the newest five stable rollouts.
        ("far_behind_stable", walking_device(&cat, 5, version(0), "stable", "linux", "x86_64")),
        // The worst case, for scale: no rollout targets the device's locale, so every rollout
        // of every release on all three channels it sees is evaluated and refused.
        ("untargeted_worst_case", untargeted),
    ];
    let mut group = c.benchmark_group("select");
    for (name, d) in &devices {
        // The answer must be a real one (and the same every time) for the figure to mean anything.
        let first = cat.select(d).unwrap();
        assert_eq!(cat.select(d).unwrap(), first);
        let offered = matches!(first, Decision::Available(_));
        assert_eq!(offered, name.contains("behind"), "{name}: {first:?}");
        group.bench_function(*name, |b| {
            b.iter(|| cat.select(black_box(d)).map(|x| matches!(x, Decision::Available(_))))
        });
    }
    group.finish();
}

/// The same kinds of device against a small and a large catalog.
fn catalog_size(c: &mut Criterion) {
    let mut group = c.benchmark_group("catalog_size");
    for size in SIZES {
        let cat = catalog(size);
        let devices = [
            (
                "up_to_date",
                device("7c9e6679-7425-40de-944b-e07fc1f90ae7", version(size - 1), "stable", "windows", "x86_64"),
            ),
            ("few_behind_beta", walking_device(&cat, 3, version(size - 6), "beta", "macos", "aarch64")),
        ];
        for (name, d) in &devices {
            group.bench_function(format!("{name}/{size}"), |b| {
                b.iter(|| cat.select(black_box(d)).map(|x| matches!(x, Decision::Available(_))))
            });
        }
    }
    group.finish();
}

fn bucketing(c: &mut Criterion) {
    c.bench_function("bucket", |b| {
        b.iter(|| bucket(black_box("notes:2.3.4"), black_box("3f2a9c4e-8b7d-4c1a-9e2f-6a5b4c3d2e1f")))
    });
}

criterion_group!(benches, select, catalog_size, bucketing);
criterion_main!(benches);
