//! Builders shared by this crate's unit tests.

use std::collections::BTreeMap;

use crate::*;

pub fn checkin(device: &str, version: &str) -> CheckIn {
    CheckIn {
        device_id: DeviceId::parse(device).unwrap(),
        user_id: None,
        current_version: version.parse().unwrap(),
        channel: ChannelName::stable(),
        platform: Platform { target: target("linux", "x86_64"), os_version: Some("6.1".parse().unwrap()) },
        locale: Some("en-US".parse().unwrap()),
        traits: Traits::default(),
        ip: None,
        kind: CheckKind::Background,
    }
}

pub fn target(os: &str, arch: &str) -> Target {
    Target { os: os.parse().unwrap(), arch: arch.parse().unwrap() }
}

pub fn app() -> AppId {
    AppId::parse("notes").unwrap()
}

/// A release built for `targets` (default linux/x86_64 when empty).
pub fn release(version: &str, targets: &[(&str, &str)]) -> ReleaseParts {
    let targets: Vec<(&str, &str)> = if targets.is_empty() { vec![("linux", "x86_64")] } else { targets.to_vec() };
    let artifacts: BTreeMap<_, _> = targets
        .iter()
        .map(|(os, arch)| {
            (
                target(os, arch),
                Artifact {
                    sha256: Sha256::digest(format!("{version}{os}{arch}").as_bytes()),
                    size: 10,
                    signatures: Signatures::one(KeyId::parse("k1").unwrap(), Signature::from_bytes([1; 64])),
                    url: None,
                    clients: None,
                    patches: Default::default(),
                },
            )
        })
        .collect();
    ReleaseParts {
        version: version.parse().unwrap(),
        notes: format!("notes for {version}"),
        critical: false,
        min_from_version: None,
        rebuild_of: None,
        artifacts,
    }
}

pub fn rollout(version: &str, channel: &str, bp: u16) -> Rollout {
    let release: Version = version.parse().unwrap();
    Rollout {
        salt: Salt::default_for(&app(), &release),
        release,
        channel: channel.parse().unwrap(),
        percent: Percent::from_basis_points(bp).unwrap(),
        stickiness: Stickiness::Device,
        allow: IdList::default(),
        deny: IdList::default(),
        rules: Rules::default(),
        state: RolloutState::Active,
        interactive_bypass: false,
        schedule: None,
        gate: None,
        arm: None,
    }
}

pub fn catalog(releases: Vec<ReleaseParts>, rollouts: Vec<Rollout>) -> Catalog {
    Catalog::new(app(), Ladder::default(), releases.into_iter().map(|p| Release::new(p).unwrap()), rollouts).unwrap()
}

/// The offered version, as a string, or "none".
pub fn offered(cat: &Catalog, c: &CheckIn) -> String {
    match cat.select(c).unwrap() {
        Decision::UpToDate => "none".into(),
        Decision::Available(o) => o.release.version().to_string(),
    }
}

/// `docs/api.md`, whose test vectors the unit tests check, so that doc and code pin each other.
pub const API_DOC: &str = include_str!("../../docs/api.md");

/// The text of the doc section whose heading starts with `heading` (`## 7.`), up to the next
/// heading of the same level.
pub fn doc_section(heading: &str) -> &'static str {
    let level = heading.split(' ').next().unwrap();
    let start = API_DOC.find(&format!("\n{heading}")).unwrap_or_else(|| panic!("docs/api.md has no {heading}"));
    let body = &API_DOC[start + 1..];
    let end = body[1..].find(&format!("\n{level} ")).map_or(body.len(), |i| i + 1);
    &body[..end]
}

/// The cells of the markdown table rows in `section` (header and separator rows skipped),
/// with backticks removed.
pub fn doc_table(section: &str) -> Vec<Vec<String>> {
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .skip(2)
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().trim_matches('`').to_owned()).collect())
        .collect()
}

/// The value in the two-column table row of `section` whose first cell is `name`.
pub fn doc_row(section: &str, name: &str) -> String {
    section
        .lines()
        .filter(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(|c| c.trim()).collect::<Vec<_>>())
        .find(|cells| cells[0] == name)
        .unwrap_or_else(|| panic!("no row {name:?}"))[1]
        .split('`')
        .nth(1)
        .unwrap()
        .to_owned()
}
