//! Properties of bucketing and selection, checked through the public API only.
//!
//! Random catalogs are small on purpose (a handful of versions, channels, targets, devices and
//! rules) so that collisions happen: the running version equals a release, a device is on an
//! allow list, two rollouts share a channel's view. Selection is compared with a brute-force
//! reference written here from the specification, not from the implementation.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use halftone_channels::wire::RolloutSpec;
use halftone_channels::*;
use proptest::prelude::*;

// ---------- building blocks ----------

const CHANNELS: [&str; 5] = ["stable", "beta", "unstable", "lts", "internal"];
const TARGETS: [(&str, &str); 4] =
    [("linux", "x86_64"), ("linux", "aarch64"), ("windows", "x86_64"), ("macos", "aarch64")];
/// Releases are built for the first three targets only, so devices on the fourth never get one.
const BUILT_TARGETS: usize = 3;

fn app() -> AppId {
    AppId::parse("notes").unwrap()
}

fn target(i: usize) -> Target {
    let (os, arch) = TARGETS[i];
    Target { os: os.parse().unwrap(), arch: arch.parse().unwrap() }
}

fn artifact(version: &Version, t: &Target) -> Artifact {
    Artifact {
        sha256: Sha256::digest(format!("{version}/{t}").as_bytes()),
        size: 1,
        signatures: Signatures::one(KeyId::parse("k1").unwrap(), Signature::from_bytes([7; 64])),
        url: None,
        clients: None,
        patches: Default::default(),
    }
}

fn rules_pool() -> Vec<Rule> {
    [
        r#"{"kind":"os_in","values":["linux"]}"#,
        r#"{"kind":"arch_in","values":["x86_64"]}"#,
        r#"{"kind":"os_version","range":">=10"}"#,
        r#"{"kind":"app_version","range":"<1.2.0"}"#,
        r#"{"kind":"locale_in","values":["zh"]}"#,
        r#"{"kind":"trait","name":"tier","op":"eq","value":"gold"}"#,
        r#"{"kind":"trait","name":"tier","op":"ne","value":"free"}"#,
        r#"{"kind":"ip_in","values":["10.0.0.0/8"]}"#,
    ]
    .iter()
    .map(|j| serde_json::from_str(j).unwrap())
    .collect()
}

fn ids(list: &[String]) -> Vec<ListedId> {
    list.iter().map(|s| ListedId::parse(s).unwrap()).collect()
}

/// A version from a small pool, so that releases and running versions often coincide.
fn version() -> impl Strategy<Value = Version> {
    (0u64..3, 0u64..4, 0u64..2, prop::option::weighted(0.2, prop::sample::select(vec!["alpha", "rc.1"]))).prop_map(
        |(a, b, c, pre)| match pre {
            None => Version::new(a, b, c),
            Some(p) => format!("{a}.{b}.{c}-{p}").parse().unwrap(),
        },
    )
}

fn device_name() -> impl Strategy<Value = String> {
    (0..6u8).prop_map(|i| format!("d{i}"))
}

fn user_name() -> impl Strategy<Value = String> {
    (0..3u8).prop_map(|i| format!("u{i}"))
}

// ---------- random catalogs ----------

#[derive(Debug, Clone)]
struct RolloutPlan {
    channel: usize,
    basis_points: u16,
    state: RolloutState,
    allow: Vec<String>,
    deny: Vec<String>,
    rules: Vec<usize>,
    interactive_bypass: bool,
    stickiness: Stickiness,
    salt: Option<String>,
}

#[derive(Debug, Clone)]
struct ReleasePlan {
    targets: BTreeSet<usize>,
    critical: bool,
    min_from: Option<Version>,
    rollouts: Vec<RolloutPlan>,
}

#[derive(Debug, Clone)]
struct CatalogPlan {
    custom_channels: bool,
    releases: BTreeMap<Version, ReleasePlan>,
}

fn basis_points() -> impl Strategy<Value = u16> {
    prop_oneof![Just(0u16), Just(1), Just(5000), Just(10_000), 0..=10_000u16]
}

fn rollout_plan() -> impl Strategy<Value = RolloutPlan> {
    (
        0..CHANNELS.len(),
        basis_points(),
        prop::sample::select(vec![
            RolloutState::Active,
            RolloutState::Active,
            RolloutState::Paused,
            RolloutState::Halted,
        ]),
        prop::collection::vec(prop_oneof![device_name(), user_name()], 0..3),
        prop::collection::vec(prop_oneof![device_name(), user_name()], 0..2),
        prop::collection::vec(0..8usize, 0..3),
        any::<bool>(),
        prop::sample::select(vec![Stickiness::Device, Stickiness::User]),
        prop::option::of("[a-z]{1,6}"),
    )
        .prop_map(|(channel, basis_points, state, allow, deny, rules, interactive_bypass, stickiness, salt)| {
            RolloutPlan { channel, basis_points, state, allow, deny, rules, interactive_bypass, stickiness, salt }
        })
}

fn release_plan() -> impl Strategy<Value = ReleasePlan> {
    (
        prop_oneof![
            Just((0..BUILT_TARGETS).collect::<BTreeSet<_>>()),
            prop::collection::btree_set(0..BUILT_TARGETS, 1..=BUILT_TARGETS)
        ],
        prop::bool::weighted(0.3),
        prop::option::weighted(0.3, version()),
        prop::collection::vec(rollout_plan(), 0..5),
    )
        .prop_map(|(targets, critical, min_from, rollouts)| ReleasePlan { targets, critical, min_from, rollouts })
}

fn catalog_plan() -> impl Strategy<Value = CatalogPlan> {
    (any::<bool>(), prop::collection::btree_map(version(), release_plan(), 0..10))
        .prop_map(|(custom_channels, releases)| CatalogPlan { custom_channels, releases })
}

impl CatalogPlan {
    fn ladder(&self) -> Ladder {
        if self.custom_channels {
            Ladder::with_custom([("lts".parse().unwrap(), 50), ("internal".parse().unwrap(), 250)]).unwrap()
        } else {
            Ladder::default()
        }
    }

    fn channel_count(&self) -> usize {
        if self.custom_channels { 5 } else { 3 }
    }

    fn parts(&self) -> (Vec<Release>, Vec<Rollout>) {
        let pool = rules_pool();
        let mut releases = Vec::new();
        let mut rollouts = Vec::new();
        for (v, r) in &self.releases {
            releases.push(
                Release::new(ReleaseParts {
                    version: v.clone(),
                    notes: String::new(),
                    critical: r.critical,
                    min_from_version: r.min_from.clone().filter(|m| m < v),
                    rebuild_of: None,
                    artifacts: r.targets.iter().map(|&t| (target(t), artifact(v, &target(t)))).collect(),
                })
                .unwrap(),
            );
            let mut seen = BTreeSet::new();
            for p in &r.rollouts {
                let channel = p.channel % self.channel_count();
                if !seen.insert(channel) {
                    continue;
                }
                let spec = RolloutSpec {
                    basis_points: Percent::from_basis_points(p.basis_points).unwrap(),
                    salt: p.salt.as_deref().map(|s| Salt::parse(s).unwrap()),
                    stickiness: p.stickiness,
                    allow: ids(&p.allow),
                    deny: ids(&p.deny),
                    rules: p.rules.iter().map(|&i| pool[i].clone()).collect(),
                    state: p.state,
                    interactive_bypass: p.interactive_bypass,
                    schedule: None,
                    gate: None,
                };
                rollouts.push(spec.into_rollout(&app(), v.clone(), CHANNELS[channel].parse().unwrap()).unwrap());
            }
        }
        (releases, rollouts)
    }

    fn build(&self) -> Catalog {
        let (releases, rollouts) = self.parts();
        Catalog::new(app(), self.ladder(), releases, rollouts).unwrap()
    }

    /// The same catalog from its parts in reverse order.
    fn build_reversed(&self) -> Catalog {
        let (mut releases, mut rollouts) = self.parts();
        releases.reverse();
        rollouts.reverse();
        Catalog::new(app(), self.ladder(), releases, rollouts).unwrap()
    }

    /// The same catalog with every rollout of `version` halted.
    fn halted(&self, version: &Version) -> CatalogPlan {
        let mut plan = self.clone();
        if let Some(r) = plan.releases.get_mut(version) {
            for p in &mut r.rollouts {
                p.state = RolloutState::Halted;
            }
        }
        plan
    }
}

#[derive(Debug, Clone)]
struct CheckPlan {
    device: String,
    user: Option<String>,
    current: Version,
    channel: usize,
    target: usize,
    os_version: Option<&'static str>,
    locale: Option<&'static str>,
    tier: Option<&'static str>,
    ip: Option<&'static str>,
    interactive: bool,
}

fn check_plan() -> impl Strategy<Value = CheckPlan> {
    (
        device_name(),
        prop::option::of(user_name()),
        prop_oneof![version(), Just(Version::new(0, 0, 0))],
        0..CHANNELS.len(),
        prop_oneof![6 => 0..BUILT_TARGETS, 1 => Just(BUILT_TARGETS)],
        prop::option::of(prop::sample::select(vec!["6.1", "10", "14.2"])),
        prop::option::of(prop::sample::select(vec!["en-US", "zh-CN", "de"])),
        prop::option::of(prop::sample::select(vec!["gold", "free"])),
        prop::option::of(prop::sample::select(vec!["10.1.2.3", "192.0.2.1"])),
        any::<bool>(),
    )
        .prop_map(|(device, user, current, channel, target, os_version, locale, tier, ip, interactive)| {
            CheckPlan { device, user, current, channel, target, os_version, locale, tier, ip, interactive }
        })
}

impl CheckPlan {
    fn checkin(&self, channels: usize) -> CheckIn {
        let mut traits = BTreeMap::new();
        if let Some(t) = self.tier {
            traits.insert(TraitName::parse("tier").unwrap(), TraitValue::string(t).unwrap());
        }
        CheckIn {
            device_id: DeviceId::parse(&self.device).unwrap(),
            user_id: self.user.as_deref().map(|u| UserId::parse(u).unwrap()),
            current_version: self.current.clone(),
            channel: CHANNELS[self.channel % channels].parse().unwrap(),
            platform: Platform { target: target(self.target), os_version: self.os_version.map(|v| v.parse().unwrap()) },
            locale: self.locale.map(|l| l.parse().unwrap()),
            traits: Traits::new(traits).unwrap(),
            ip: self.ip.map(|ip| ip.parse().unwrap()),
            kind: if self.interactive { CheckKind::Interactive } else { CheckKind::Background },
        }
    }
}

// ---------- the reference, written from the specification ----------

/// How a rollout let a device in, or the code of why it did not.
type RolloutAnswer = Result<Admission, &'static str>;

/// Why a release is or is not offered to a device, ignoring which release is newest.
#[derive(Debug, Clone, PartialEq)]
enum Eligibility {
    Eligible { channel: ChannelName, admission: Admission },
    Skipped(Vec<&'static str>),
}

fn listed(list: &IdList, c: &CheckIn) -> bool {
    list.iter()
        .any(|id| id.as_str() == c.device_id.as_str() || c.user_id.as_ref().is_some_and(|u| u.as_str() == id.as_str()))
}

/// One rollout: halted, deny list, rules (for everybody, allow-listed or not), then the allow
/// list, an opted-in interactive check, or `bucket < percent`.
fn reference_rollout(r: &Rollout, c: &CheckIn) -> RolloutAnswer {
    if r.state == RolloutState::Halted {
        return Err("halted");
    }
    if listed(&r.deny, c) {
        return Err("denied");
    }
    if !r.rules.iter().all(|rule| rule.matches(c)) {
        return Err("rule_failed");
    }
    if listed(&r.allow, c) {
        return Ok(Admission::AllowList);
    }
    if r.interactive_bypass && c.kind == CheckKind::Interactive {
        return Ok(Admission::Interactive);
    }
    let key = match (r.stickiness, &c.user_id) {
        (Stickiness::User, Some(u)) => u.as_str(),
        _ => c.device_id.as_str(),
    };
    let b = bucket(r.salt.as_str(), key);
    if b.get() < r.percent.basis_points() {
        Ok(Admission::Bucket { bucket: b, percent: r.percent })
    } else {
        Err("outside_rollout")
    }
}

/// The rollouts of a release the device's channel sees, least stable first.
fn visible<'a>(cat: &Catalog, rollouts: &'a [Arc<Rollout>], c: &CheckIn) -> Vec<&'a Rollout> {
    let ladder = cat.ladder();
    let own = ladder.rank(c.channel.as_str()).unwrap();
    let mut v: Vec<&Rollout> =
        rollouts.iter().map(|r| &**r).filter(|r| ladder.rank(r.channel.as_str()).unwrap() <= own).collect();
    v.sort_by_key(|r| std::cmp::Reverse(ladder.rank(r.channel.as_str()).unwrap()));
    v
}

fn reference_release(cat: &Catalog, release: &Release, rollouts: &[Arc<Rollout>], c: &CheckIn) -> Eligibility {
    if *release.version() <= c.current_version {
        return Eligibility::Skipped(vec!["not_newer"]);
    }
    if release.artifact(&c.platform.target).is_none() {
        return Eligibility::Skipped(vec!["no_artifact"]);
    }
    let seen = visible(cat, rollouts, c);
    if seen.is_empty() {
        return Eligibility::Skipped(vec!["not_on_channel"]);
    }
    if release.min_from_version().is_some_and(|m| c.current_version < *m) {
        return Eligibility::Skipped(vec!["stepping_stone"]);
    }
    let mut why = Vec::new();
    for r in seen {
        match reference_rollout(r, c) {
            Ok(admission) => return Eligibility::Eligible { channel: r.channel.clone(), admission },
            Err(code) => why.push(code),
        }
    }
    Eligibility::Skipped(why)
}

/// The highest eligible version, and whether the offer is critical: it is, or a release
/// between the running and the offered version is that the device could have seen (built
/// for it, rolled out and not halted on a channel it sees).
fn reference_select(cat: &Catalog, c: &CheckIn) -> Option<(Version, bool)> {
    let (offer, _) = cat
        .releases()
        .filter(|(r, ro)| matches!(reference_release(cat, r, ro, c), Eligibility::Eligible { .. }))
        .max_by(|(a, _), (b, _)| a.version().cmp(b.version()))?;
    let v = offer.version().clone();
    let skipped_critical = cat.releases().any(|(r, ro)| {
        *r.version() > c.current_version
            && *r.version() < v
            && r.is_critical()
            && r.artifact(&c.platform.target).is_some()
            && visible(cat, ro, c).iter().any(|x| x.state != RolloutState::Halted)
    });
    Some((v, offer.is_critical() || skipped_critical))
}

fn selected(cat: &Catalog, c: &CheckIn) -> Option<(Version, bool)> {
    match cat.select(c).unwrap() {
        Decision::UpToDate => None,
        Decision::Available(o) => Some((o.release.version().clone(), o.critical)),
    }
}

fn codes(v: &Verdict) -> Vec<&'static str> {
    match v {
        Verdict::Offered { .. } => vec!["offered"],
        Verdict::Skipped(s) => s.iter().map(Skip::code).collect(),
    }
}

// ---------- bucketing ----------

fn rollout_at(salt: &str, bp: u16) -> Rollout {
    RolloutSpec {
        basis_points: Percent::from_basis_points(bp).unwrap(),
        salt: Some(Salt::parse(salt).unwrap()),
        stickiness: Stickiness::Device,
        allow: vec![],
        deny: vec![],
        rules: vec![],
        state: RolloutState::Active,
        interactive_bypass: false,
        schedule: None,
        gate: None,
    }
    .into_rollout(&app(), Version::new(1, 0, 0), ChannelName::stable())
    .unwrap()
}

fn device(id: &str) -> CheckIn {
    CheckPlan {
        device: id.to_owned(),
        user: None,
        current: Version::new(0, 1, 0),
        channel: 0,
        target: 0,
        os_version: None,
        locale: None,
        tier: None,
        ip: None,
        interactive: false,
    }
    .checkin(3)
}

fn fleet(n: usize) -> impl Iterator<Item = String> {
    // Random-looking, as the SDK's 128-bit ids are; the index is the only input.
    (0..n).map(|i| format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)))
}

#[test]
fn shares_match_the_percentage_over_100k_devices() {
    let n = 100_000;
    let salt = "notes:2.0.0";
    let buckets: Vec<u16> = fleet(n).map(|d| bucket(salt, &d).get()).collect();
    for bp in [100u16, 500, 2500, 5000] {
        let inside = buckets.iter().filter(|&&b| b < bp).count();
        let share = inside as f64 / n as f64 * 100.0;
        let want = f64::from(bp) / 100.0;
        assert!((share - want).abs() <= 0.5, "{share:.3}% in at {want}%");
        // The rollout's own decision agrees with the bucket arithmetic.
        let r = rollout_at(salt, bp);
        let sample: Vec<String> = fleet(2000).collect();
        for d in &sample {
            let c = device(d);
            assert_eq!(r.evaluate(&c).is_ok(), bucket(salt, d).get() < bp, "{d} at {bp}");
        }
    }
    assert!(buckets.iter().all(|&b| b < 10_000));
    // Every bucket value is reachable: the mod is over the full range, not a part of it.
    let distinct: BTreeSet<u16> = buckets.iter().copied().collect();
    assert!(distinct.len() > 9990, "{} distinct buckets", distinct.len());
}

#[test]
fn two_salts_pick_nearly_independent_halves() {
    let n = 100_000;
    let (a, b) = (rollout_at("notes:2.0.0", 5000), rollout_at("notes:2.1.0", 5000));
    let (mut in_a, mut in_b, mut both) = (0usize, 0usize, 0usize);
    for d in fleet(n) {
        let c = device(&d);
        let (x, y) = (a.evaluate(&c).is_ok(), b.evaluate(&c).is_ok());
        in_a += usize::from(x);
        in_b += usize::from(y);
        both += usize::from(x && y);
    }
    let pct = |k: usize| k as f64 / n as f64 * 100.0;
    assert!((pct(in_a) - 50.0).abs() <= 0.5 && (pct(in_b) - 50.0).abs() <= 0.5, "{in_a} {in_b}");
    assert!((pct(both) - 25.0).abs() <= 1.0, "overlap {:.3}%", pct(both));
}

#[test]
fn zero_is_nobody_and_full_is_everybody() {
    let (none, full) = (rollout_at("s", 0), rollout_at("s", 10_000));
    for d in fleet(5000) {
        let c = device(&d);
        assert!(matches!(none.evaluate(&c), Err(Exclusion::Outside { .. })));
        assert!(matches!(full.evaluate(&c), Ok(Admission::Bucket { .. })));
    }
}

/// 256 cases keep `cargo test` quick; `PROPTEST_CASES=100000` runs a deep search.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(256);
    ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bucketing_is_deterministic_and_in_range(salt in "[a-z0-9:.-]{1,40}", key in "[a-zA-Z0-9-]{1,64}") {
        let b = bucket(&salt, &key);
        prop_assert_eq!(b, bucket(&salt, &key));
        prop_assert!(b.get() < 10_000);
        let r = rollout_at(&salt, 5000);
        let c = device(&key);
        prop_assert_eq!(r.bucket_of(&c), b);
        prop_assert_eq!(r.evaluate(&c), r.evaluate(&c.clone()));
    }

    #[test]
    fn bucketing_is_the_documented_function(salt in "\\PC{1,40}", key in "\\PC{1,64}") {
        // u64_big_endian(SHA-256(salt ‖ 0x00 ‖ key)[0..8]) mod 10000: changing it would move
        // every device of every running rollout.
        use sha2::Digest;
        let d = sha2::Sha256::digest([salt.as_bytes(), &[0], key.as_bytes()].concat());
        let want = u64::from_be_bytes(d[..8].try_into().unwrap()) % 10_000;
        prop_assert_eq!(u64::from(bucket(&salt, &key).get()), want);
    }

    #[test]
    fn raising_the_percentage_only_adds_devices(
        salt in "[a-z0-9:.-]{1,40}",
        key in "[a-zA-Z0-9-]{1,64}",
        p in 0..=10_000u16,
        q in 0..=10_000u16,
    ) {
        let (lo, hi) = (p.min(q), p.max(q));
        let c = device(&key);
        let (at_lo, at_hi) = (rollout_at(&salt, lo).evaluate(&c), rollout_at(&salt, hi).evaluate(&c));
        if at_lo.is_ok() {
            prop_assert!(at_hi.is_ok(), "in at {lo} but out at {hi}");
        }
        // The threshold is exactly the bucket: in at p iff bucket < p.
        let b = bucket(&salt, &key).get();
        prop_assert_eq!(at_lo.is_ok(), b < lo);
        prop_assert_eq!(rollout_at(&salt, b + 1).evaluate(&c).is_ok(), true);
        prop_assert_eq!(rollout_at(&salt, b).evaluate(&c).is_ok(), false);
    }

    #[test]
    fn allow_listed_is_in_and_denied_is_out_whatever_the_percentage(
        key in "[a-zA-Z0-9-]{1,64}",
        bp in basis_points(),
        bypass in any::<bool>(),
        interactive in any::<bool>(),
    ) {
        let mut c = device(&key);
        if interactive {
            c.kind = CheckKind::Interactive;
        }
        let me = vec![ListedId::parse(&key).unwrap()];
        let mut r = rollout_at("s", bp);
        r.interactive_bypass = bypass;
        r.allow = IdList::new(me.clone()).unwrap();
        prop_assert_eq!(r.evaluate(&c), Ok(Admission::AllowList));
        r.deny = IdList::new(me).unwrap();
        prop_assert_eq!(r.evaluate(&c), Err(Exclusion::Denied));

        // Through a catalog: listed in one release's rollout decides the offer.
        let v = Version::new(1, 0, 0);
        let release = Release::new(ReleaseParts {
            version: v.clone(),
            notes: String::new(),
            critical: false,
            min_from_version: None,
            rebuild_of: None,
            artifacts: [(target(0), artifact(&v, &target(0)))].into_iter().collect(),
        })
        .unwrap();
        let mut allowed = rollout_at("s", bp);
        allowed.release = v.clone();
        allowed.interactive_bypass = bypass;
        allowed.allow = IdList::new(vec![ListedId::parse(&key).unwrap()]).unwrap();
        let mut denied = allowed.clone();
        denied.deny = allowed.allow.clone();
        let cat = Catalog::new(app(), Ladder::default(), vec![release.clone()], vec![allowed]).unwrap();
        prop_assert_eq!(selected(&cat, &c), Some((v.clone(), false)));
        let cat = Catalog::new(app(), Ladder::default(), vec![release], vec![denied]).unwrap();
        prop_assert_eq!(selected(&cat, &c), None);
    }

    #[test]
    fn selection_is_deterministic_and_independent_of_input_order(plan in catalog_plan(), checks in prop::collection::vec(check_plan(), 1..8)) {
        let (a, b) = (plan.build(), plan.build_reversed());
        for cp in &checks {
            let c = cp.checkin(plan.channel_count());
            let (x, y) = (a.select(&c).unwrap(), b.select(&c).unwrap());
            prop_assert_eq!(&x, &a.select(&c).unwrap());
            prop_assert_eq!(&x, &y);
            prop_assert_eq!(a.explain(&c).unwrap(), b.explain(&c).unwrap());
        }
    }

    #[test]
    fn never_a_downgrade(plan in catalog_plan(), checks in prop::collection::vec(check_plan(), 1..8)) {
        let cat = plan.build();
        for cp in &checks {
            let c = cp.checkin(plan.channel_count());
            if let Decision::Available(o) = cat.select(&c).unwrap() {
                prop_assert!(*o.release.version() > c.current_version, "offered {} to a device on {}", o.release.version(), c.current_version);
                prop_assert_eq!(Some(o.artifact), o.release.artifact(&c.platform.target));
                prop_assert_ne!(o.rollout.state, RolloutState::Halted);
                prop_assert!(!listed(&o.rollout.deny, &c));
                prop_assert!(o.rollout.rules.iter().all(|r| r.matches(&c)));
            }
        }
    }

    #[test]
    fn selection_matches_the_reference(plan in catalog_plan(), checks in prop::collection::vec(check_plan(), 1..8)) {
        let cat = plan.build();
        for cp in &checks {
            let c = cp.checkin(plan.channel_count());
            prop_assert_eq!(selected(&cat, &c), reference_select(&cat, &c), "{:?}", c);
        }
    }

    #[test]
    fn explain_agrees_with_select_and_gives_each_release_its_reason(
        plan in catalog_plan(),
        checks in prop::collection::vec(check_plan(), 1..8),
    ) {
        let cat = plan.build();
        for cp in &checks {
            let c = cp.checkin(plan.channel_count());
            let x = cat.explain(&c).unwrap();
            let s = selected(&cat, &c);
            prop_assert_eq!(x.offered.clone(), s.as_ref().map(|(v, _)| v.clone()));
            prop_assert_eq!(x.critical, s.as_ref().is_some_and(|(_, k)| *k));
            prop_assert_eq!(x.releases.len(), cat.releases().len());
            for (t, (r, ro)) in x.releases.iter().zip(cat.releases()) {
                prop_assert_eq!(&t.version, r.version());
                let want = match (reference_release(&cat, r, ro, &c), &x.offered) {
                    (Eligibility::Skipped(w), _) if w == ["not_newer"] => w,
                    (_, Some(o)) if o > r.version() => vec!["newer_offered"],
                    (Eligibility::Eligible { channel, admission }, _) => {
                        prop_assert_eq!(&t.verdict, &Verdict::Offered { channel, admission });
                        vec!["offered"]
                    }
                    (Eligibility::Skipped(w), _) => w,
                };
                prop_assert_eq!(codes(&t.verdict), want, "{} for {:?}", r.version(), c);
            }
        }
    }

    #[test]
    fn halting_a_release_changes_no_other_release_verdict(
        plan in catalog_plan(),
        pick in any::<prop::sample::Index>(),
        checks in prop::collection::vec(check_plan(), 1..8),
    ) {
        if plan.releases.is_empty() {
            return Ok(());
        }
        let victim = plan.releases.keys().nth(pick.index(plan.releases.len())).unwrap().clone();
        let (before, after) = (plan.build(), plan.halted(&victim).build());
        for cp in &checks {
            let c = cp.checkin(plan.channel_count());
            let (x, y) = (before.explain(&c).unwrap(), after.explain(&c).unwrap());
            // The halted release is offered to nobody.
            prop_assert_ne!(y.offered.as_ref(), Some(&victim));
            for (tx, ty) in x.releases.iter().zip(&y.releases) {
                prop_assert_eq!(&tx.version, &ty.version);
                if tx.version == victim {
                    continue;
                }
                if x.offered.as_ref() == Some(&victim) && tx.version < victim && tx.version > c.current_version {
                    // Shadowed by the offered victim before (nothing to compare with): now it is
                    // judged on its own, as the reference judges it.
                    prop_assert_eq!(codes(&tx.verdict), vec!["newer_offered"]);
                    let (r, ro) = after.release(&ty.version).unwrap();
                    let want = match (reference_release(&after, r, ro, &c), &y.offered) {
                        (Eligibility::Skipped(w), _) if w == ["not_newer"] => w,
                        (_, Some(o)) if o > r.version() => vec!["newer_offered"],
                        (Eligibility::Eligible { .. }, _) => vec!["offered"],
                        (Eligibility::Skipped(w), _) => w,
                    };
                    prop_assert_eq!(codes(&ty.verdict), want);
                    continue;
                }
                prop_assert_eq!(&tx.verdict, &ty.verdict, "{} changed when {} was halted", tx.version, victim);
            }
            // The device falls back to the newest other release it is eligible for.
            prop_assert_eq!(selected(&after, &c), reference_select(&after, &c));
        }
    }
}

// ---------- sequential comparison with the baseline ----------

/// Any valid comparison: the operator's settings across their ranges.
fn comparison() -> impl Strategy<Value = Comparison> {
    (0.05f64..5.0, 0.0f64..0.2, 0.001f64..0.2, 0.0001f64..0.2, 0u16..=10_000, 0u64..100).prop_map(
        |(degradation, min_difference, alpha, beta, bp, step)| {
            let proven = Percent::from_basis_points(bp).unwrap();
            Comparison::new(degradation, min_difference, alpha, beta, proven, step).unwrap()
        },
    )
}

fn baseline() -> impl Strategy<Value = Proportion> {
    (1u64..1_000_000).prop_flat_map(|total| (0..=total / 5).prop_map(move |bad| Proportion::new(bad, total)))
}

proptest! {
    /// One more failure among the same number of installs never makes the evidence kinder:
    /// the statistic does not fall, and a halt stays a halt.
    #[test]
    fn more_failures_never_help(c in comparison(), b in baseline(), total in 1u64..20_000, frac in 0.0f64..1.0) {
        let bad = ((total - 1) as f64 * frac) as u64;
        let m = Metric::InstallFailureRate;
        let fewer = c.judge(m, Proportion::new(bad, total), b, 2);
        let more = c.judge(m, Proportion::new(bad + 1, total), b, 2);
        prop_assert!(more.statistic >= fewer.statistic, "{fewer} / {more}");
        if fewer.call == Call::Worse {
            prop_assert_eq!(more.call, Call::Worse);
        }
        if more.call == Call::NoWorse {
            prop_assert_eq!(fewer.call, Call::NoWorse);
        }
    }

    /// A candidate failing no more often than the baseline is never called worse, however
    /// large its sample.
    #[test]
    fn as_good_as_the_baseline_is_never_worse(c in comparison(), b in baseline(), total in 0u64..5_000_000) {
        let bad = (total as f64 * b.rate()).floor() as u64;
        let e = c.judge(Metric::CrashRate, Proportion::new(bad, total), b, 1);
        prop_assert_ne!(e.call, Call::Worse, "{}", e);
        prop_assert!(e.worse > b.rate() && (e.call == Call::BaselineTooSmall || e.tolerated < e.worse), "{}", e);
    }

    /// A gate never halts on a window in which nothing failed, whatever the baseline and the
    /// step, and a gate without a baseline never widens past its proving share.
    #[test]
    fn comparing_gates_halt_only_on_failures(c in comparison(), b in baseline(), installs in 0u64..100_000, bp in 0u16..=10_000) {
        let gate = HealthGate { max_install_failure_rate: None, max_crash_rate: None, min_sample: 0, compare: Some(c), action: GateAction::Halt, metrics: Vec::new() };
        let clean = Health { installs, first_runs: installs, ..Health::default() };
        let percent = Percent::from_basis_points(bp).unwrap();
        let base = Health { installs: b.total() - b.bad(), install_failures: b.bad(), ..Health::default() };
        let f = GateFigures { window: clean, step: clean, baseline: Some(base), percent, settled_first_runs: installs };
        prop_assert!(!matches!(gate.check(&f), GateVerdict::Trip(_)));
        let alone = GateFigures { baseline: None, ..f };
        if percent >= c.proven_from() {
            prop_assert_eq!(gate.check(&alone), GateVerdict::NotEnoughSample);
        }
    }
}

proptest! {
    /// The settled first runs are a lower bound of the first runs seen a window ago, however
    /// irregularly the count was looked at, and once the count stops growing, all of them
    /// settle a window after it last grew.
    #[test]
    fn settled_first_runs_never_count_a_run_too_young(
        steps in prop::collection::vec((1u64..7_200_000, 0u64..50), 1..300),
        window_ms in 60_000u64..172_800_000,
    ) {
        let mut s = Settling::new();
        let (mut now, mut count) = (0u64, 0u64);
        let mut seen: Vec<(u64, u64)> = Vec::new();
        for (dt, grew) in steps {
            now += dt;
            count += grew;
            seen.push((now, count));
            s.observe(now, count, window_ms);
            let truth = seen.iter().rev().find(|(at, _)| *at + window_ms <= now).map_or(0, |&(_, c)| c);
            prop_assert!(s.settled(now, window_ms) <= truth, "{} > {truth} at {now}", s.settled(now, window_ms));
        }
        let grew_at = seen.iter().find(|(_, c)| *c == count).unwrap().0;
        for later in [grew_at + window_ms, grew_at + 3 * window_ms] {
            if later >= now {
                s.observe(later, count, window_ms);
                prop_assert_eq!(s.settled(later, window_ms), count);
            }
        }
    }
}
