//! A release's exposure on channels: the rollout flags shared by `publish` and `promote`
//! ([`RolloutArgs`]), `rollout set|pause|resume|halt` (read the rollout and its ETag, then
//! change it with `If-Match`), `promote` and `halt` (every channel).

use anyhow::bail;
use halftone_channels::wire::{
    GateSpec, PromoteRequest, ReleaseView, RolloutPatch, RolloutSpec, RolloutView, ScheduleSpec,
};
use halftone_channels::{
    AppId, ChannelName, HealthGate, ListedId, Percent, RolloutState, Rule, Salt, Schedule, SchedulePreset, Stickiness,
    Version,
};

use super::confirm::{YesArg, confirm};
use super::output::Output;
use super::profile::Profile;

/// Parses `--schedule`: the preset name `apple_phased`, or steps as JSON
/// (`[{"basis_points":100,"hold_s":86400},...]`).
pub fn parse_schedule(s: &str) -> Result<ScheduleSpec, String> {
    let spec = if s.trim_start().starts_with('[') {
        ScheduleSpec { preset: None, steps: serde_json::from_str(s).map_err(|e| format!("invalid steps JSON: {e}"))? }
    } else {
        let preset = s.trim().parse::<SchedulePreset>().map_err(|e| e.to_string())?;
        ScheduleSpec { preset: Some(preset), steps: vec![] }
    };
    Schedule::try_from(spec.clone()).map_err(|e| e.to_string())?;
    Ok(spec)
}

/// Parses `--gate` as JSON, e.g. `{"max_install_failure_rate":0.05,"min_sample":100}`.
pub fn parse_gate(s: &str) -> Result<GateSpec, String> {
    let gate: GateSpec = serde_json::from_str(s).map_err(|e| format!("invalid gate JSON: {e}"))?;
    HealthGate::try_from(gate.clone()).map_err(|e| e.to_string())?;
    Ok(gate)
}

/// A `--rule` value: one targeting rule as JSON, e.g. `{"kind":"os_in","values":["windows"]}`.
pub fn parse_rule(s: &str) -> Result<Rule, String> {
    serde_json::from_str(s).map_err(|e| {
        format!(
            r#"{e}; a rule is JSON like {{"kind":"os_in","values":["windows"]}} or {}"#,
            r#"{"kind":"os_version","range":">=10.0.19041"}"#
        )
    })
}

/// A `--percent` value: `10%`, `12.5` or `0.01%`.
pub fn parse_percent(s: &str) -> Result<Percent, String> {
    Percent::parse(s).map_err(|e| e.to_string())
}

/// Who a rollout follows (`--stickiness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StickinessArg {
    /// Each device decides on its own.
    Device,
    /// A signed-in user gets the same answer on all their devices.
    User,
}

impl From<StickinessArg> for Stickiness {
    fn from(s: StickinessArg) -> Self {
        match s {
            StickinessArg::Device => Stickiness::Device,
            StickinessArg::User => Stickiness::User,
        }
    }
}

/// A rollout's state (`--state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StateArg {
    /// Serving.
    Active,
    /// Serving at its current percentage, not advancing.
    Paused,
    /// Offered to nobody new.
    Halted,
}

impl From<StateArg> for RolloutState {
    fn from(s: StateArg) -> Self {
        match s {
            StateArg::Active => RolloutState::Active,
            StateArg::Paused => RolloutState::Paused,
            StateArg::Halted => RolloutState::Halted,
        }
    }
}

/// The settings of a new rollout.
#[derive(Debug, Clone, clap::Args)]
pub struct RolloutArgs {
    /// Share of devices offered the release: 10%, 12.5%, 0.01%, 100% [default with
    /// --schedule: where the schedule starts].
    #[arg(long, value_parser = parse_percent, required_unless_present = "schedule")]
    pub percent: Option<Percent>,
    /// A targeting rule as JSON (repeat; all must hold), e.g. '{"kind":"os_in","values":["windows"]}'.
    #[arg(long = "rule", value_name = "JSON", value_parser = parse_rule)]
    pub rules: Vec<Rule>,
    /// A device or user id always offered the release when the rules hold (repeat).
    #[arg(long, value_name = "ID")]
    pub allow: Vec<ListedId>,
    /// A device or user id never offered the release (repeat).
    #[arg(long, value_name = "ID")]
    pub deny: Vec<ListedId>,
    /// Whose id places a check-in in the rollout.
    #[arg(long, value_enum, default_value_t = StickinessArg::Device)]
    pub stickiness: StickinessArg,
    /// Let "Check for updates" pressed by a person skip the percentage.
    #[arg(long)]
    pub interactive_bypass: bool,
    /// Bucketing salt [default: app:version, so promoting keeps the same devices in].
    #[arg(long)]
    pub salt: Option<Salt>,
    /// A staged schedule the server advances by itself: `apple_phased` or steps as JSON, e.g.
    /// '[{"devices":500,"hold_s":3600},{"basis_points":200,"hold_s":14400},{"basis_points":10000}]'
    /// (a rollout starts at its first step; a first step of devices starts at 0.01%).
    #[arg(long, value_name = "PRESET|JSON", value_parser = parse_schedule)]
    pub schedule: Option<ScheduleSpec>,
    /// A health gate as JSON, e.g. '{"max_install_failure_rate":0.05,"min_sample":100}'.
    #[arg(long, value_name = "JSON", value_parser = parse_gate)]
    pub gate: Option<GateSpec>,
}

impl RolloutArgs {
    /// The share the rollout starts at: `--percent`, or where the schedule starts (the
    /// server refuses an invalid schedule).
    pub fn percent(&self) -> Percent {
        self.percent
            .or_else(|| self.schedule.clone().and_then(|s| Schedule::try_from(s).ok()).map(|s| s.first()))
            .unwrap_or(Percent::NONE)
    }

    /// The wire form.
    pub fn spec(&self) -> RolloutSpec {
        RolloutSpec {
            basis_points: self.percent(),
            salt: self.salt.clone(),
            stickiness: self.stickiness.into(),
            allow: self.allow.clone(),
            deny: self.deny.clone(),
            rules: self.rules.clone(),
            state: RolloutState::Active,
            interactive_bypass: self.interactive_bypass,
            schedule: self.schedule.clone(),
            gate: self.gate.clone(),
        }
    }
}

/// Which rollout: an app's release on one channel.
#[derive(Debug, Clone, clap::Args)]
pub struct RolloutRef {
    /// The app.
    pub app: AppId,
    /// The release.
    pub version: Version,
    /// The channel.
    pub channel: ChannelName,
    /// Resume or widen it even though a rollback replaced it (it offers the bad build again).
    #[arg(long)]
    pub resume_rolled_back: bool,
    /// Halting asks first; this answers yes.
    #[command(flatten)]
    pub yes: YesArg,
}

/// `halftone rollout ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RolloutCommand {
    /// Change a rollout: only the given settings change.
    Set(Box<SetArgs>),
    /// Keep serving at the current percentage but stop advancing.
    Pause(RolloutRef),
    /// Make a paused or halted rollout active again.
    Resume(RolloutRef),
    /// Offer the release on this channel to nobody new.
    Halt(RolloutRef),
}

/// `halftone rollout set`.
#[derive(Debug, Clone, clap::Args)]
pub struct SetArgs {
    /// Which rollout.
    #[command(flatten)]
    pub target: RolloutRef,
    /// New share of devices.
    #[arg(long, value_parser = parse_percent)]
    pub percent: Option<Percent>,
    /// New state.
    #[arg(long, value_enum)]
    pub state: Option<StateArg>,
    /// Replace the rules with these (repeat).
    #[arg(long = "rule", value_name = "JSON", value_parser = parse_rule, conflicts_with = "clear_rules")]
    pub rules: Vec<Rule>,
    /// Remove every rule.
    #[arg(long)]
    pub clear_rules: bool,
    /// Replace the allow list with these ids (repeat).
    #[arg(long, value_name = "ID", conflicts_with = "clear_allow")]
    pub allow: Vec<ListedId>,
    /// Empty the allow list.
    #[arg(long)]
    pub clear_allow: bool,
    /// Replace the deny list with these ids (repeat).
    #[arg(long, value_name = "ID", conflicts_with = "clear_deny")]
    pub deny: Vec<ListedId>,
    /// Empty the deny list.
    #[arg(long)]
    pub clear_deny: bool,
    /// Whether interactive checks skip the percentage.
    #[arg(long, value_name = "true|false")]
    pub interactive_bypass: Option<bool>,
    /// A new staged schedule: `apple_phased` or steps as JSON.
    #[arg(long, value_name = "PRESET|JSON", value_parser = parse_schedule)]
    pub schedule: Option<ScheduleSpec>,
    /// A new health gate as JSON.
    #[arg(long, value_name = "JSON", value_parser = parse_gate)]
    pub gate: Option<GateSpec>,
}

impl SetArgs {
    /// The patch these flags describe; an error when they describe no change.
    pub fn patch(&self) -> anyhow::Result<RolloutPatch> {
        let list = |ids: &Vec<ListedId>, clear: bool| (clear || !ids.is_empty()).then(|| ids.clone());
        let patch = RolloutPatch {
            basis_points: self.percent,
            allow: list(&self.allow, self.clear_allow),
            deny: list(&self.deny, self.clear_deny),
            rules: (self.clear_rules || !self.rules.is_empty()).then(|| self.rules.clone()),
            state: self.state.map(Into::into),
            interactive_bypass: self.interactive_bypass,
            schedule: self.schedule.clone(),
            gate: self.gate.clone(),
            resume_rolled_back: self.target.resume_rolled_back,
        };
        if patch == RolloutPatch::default() {
            bail!(
                "nothing to change: give --percent, --state, --rule, --allow, --deny, --interactive-bypass, --schedule or --gate"
            );
        }
        Ok(patch)
    }
}

/// Runs `halftone rollout ...`.
pub async fn run(cmd: RolloutCommand, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let state_patch = |state| RolloutPatch { state: Some(state), ..RolloutPatch::default() };
    let (target, patch) = match cmd {
        RolloutCommand::Set(args) => {
            let patch = args.patch()?;
            (args.target, patch)
        }
        RolloutCommand::Pause(r) => (r, state_patch(RolloutState::Paused)),
        RolloutCommand::Resume(r) => (r, state_patch(RolloutState::Active)),
        RolloutCommand::Halt(r) => (r, state_patch(RolloutState::Halted)),
    };
    let patch = RolloutPatch { resume_rolled_back: target.resume_rolled_back, ..patch };
    let client = profile.admin()?;
    let RolloutRef { app, version, channel, .. } = &target;
    let (before, etag) = client.get_rollout(app, version, channel).await?;
    if patch.state == Some(RolloutState::Halted) && before.rollout.state != RolloutState::Halted {
        confirm(
            target.yes,
            &format!("halting {app} {version} on {channel}"),
            &format!(
                "Halt {app} {version} on {channel} (now {})? Nobody new is offered it; devices that have it keep it.",
                summary(&before)
            ),
        )?;
    }
    let (after, _) = client.patch_rollout(app, version, channel, &etag, &patch).await?;
    out.emit(&after, |after| format!("{app} {version} on {channel}: {} -> {}", summary(&before), summary(after)))
}

/// `halftone promote`.
#[derive(Debug, Clone, clap::Args)]
pub struct PromoteArgs {
    /// The app.
    pub app: AppId,
    /// The release to promote.
    pub version: Version,
    /// The more stable channel.
    #[arg(long)]
    pub channel: ChannelName,
    /// Its rollout.
    #[command(flatten)]
    pub rollout: RolloutArgs,
}

/// Runs `halftone promote`.
pub async fn promote(args: PromoteArgs, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    let request = PromoteRequest { channel: args.channel.clone(), rollout: args.rollout.spec() };
    let release = client.promote(&args.app, &args.version, &request).await?;
    out.emit(&release, |r| {
        format!(
            "promoted {} {} to {} at {}; now {}",
            args.app,
            args.version,
            args.channel,
            args.rollout.percent(),
            rollouts(r)
        )
    })
}

/// `halftone halt`.
#[derive(Debug, Clone, clap::Args)]
pub struct HaltArgs {
    /// The app.
    pub app: AppId,
    /// The release to halt on every channel.
    pub version: Version,
    /// Halting asks first; this answers yes.
    #[command(flatten)]
    pub yes: YesArg,
}

/// Runs `halftone halt`: shows the rollouts it stops and asks first.
pub async fn halt(args: HaltArgs, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    if !args.yes.yes {
        let current = client.get_release(&args.app, &args.version).await?;
        confirm(
            args.yes,
            &format!("halting {} {}", args.app, args.version),
            &format!(
                "Halt {} {} on every channel (now {})? Nobody new is offered it; devices that have it keep it.",
                args.app,
                args.version,
                rollouts(&current)
            ),
        )?;
    }
    let release = client.halt(&args.app, &args.version).await?;
    out.emit(&release, |r| format!("halted {} {} everywhere; now {}", args.app, args.version, rollouts(r)))
}

/// A rollout in a few words: `25% active where os in [windows], 3 allowed, 1 denied`.
pub fn summary(view: &RolloutView) -> String {
    let r = &view.rollout;
    let mut parts = vec![format!("{} {}", r.basis_points, r.state)];
    let count = |n: usize, one: &str, many: &str| match n {
        0 => None,
        1 => Some(format!("1 {one}")),
        n => Some(format!("{n} {many}")),
    };
    // A rule or two reads better spelled out ("where os in [windows]") than counted.
    if (1..=2).contains(&r.rules.len()) {
        let rules: Vec<String> = r.rules.iter().map(ToString::to_string).collect();
        parts[0].push_str(&format!(" where {}", rules.join(" and ")));
    } else {
        parts.extend(count(r.rules.len(), "rule", "rules"));
    }
    parts.extend(count(r.allow.len(), "allowed", "allowed"));
    parts.extend(count(r.deny.len(), "denied", "denied"));
    if r.interactive_bypass {
        parts.push("interactive bypass".to_owned());
    }
    parts.join(", ")
}

/// A release's rollouts in a few words: `beta 100% active; stable 5% active`.
pub fn rollouts(release: &ReleaseView) -> String {
    if release.rollouts.is_empty() {
        return "no rollouts".to_owned();
    }
    release.rollouts.iter().map(|r| format!("{} {}", r.channel, summary(r))).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Set {
        #[command(flatten)]
        args: SetArgs,
    }

    fn patch(args: &[&str]) -> anyhow::Result<RolloutPatch> {
        let argv = ["x", "notes", "1.2.0", "beta"].into_iter().chain(args.iter().copied());
        Set::try_parse_from(argv).map_err(anyhow::Error::from)?.args.patch()
    }

    #[test]
    fn set_flags_become_a_patch_of_only_what_was_given() {
        let p = patch(&["--percent", "25%"]).unwrap();
        assert_eq!(p, RolloutPatch { basis_points: Some(Percent::parse("25%").unwrap()), ..Default::default() });
        let p = patch(&["--state", "paused", "--clear-rules", "--allow", "d1", "--allow", "d2"]).unwrap();
        assert_eq!(p.state, Some(RolloutState::Paused));
        assert_eq!(p.rules, Some(vec![]));
        assert_eq!(p.allow.unwrap().len(), 2);
        assert_eq!(p.deny, None);
        let p = patch(&["--rule", r#"{"kind":"os_in","values":["windows"]}"#]).unwrap();
        assert_eq!(p.rules.unwrap().len(), 1);
        assert!(patch(&[]).unwrap_err().to_string().starts_with("nothing to change"));
        assert!(patch(&["--percent", "101%"]).is_err());
        assert!(patch(&["--rule", "{}", "--clear-rules"]).is_err());
    }

    #[test]
    fn rules_and_percents_parse_with_helpful_errors() {
        assert_eq!(parse_percent("12.5%").unwrap().basis_points(), 1250);
        assert!(parse_percent("ten").unwrap_err().contains("like 5%"));
        assert!(parse_rule(r#"{"kind":"os_version","range":">=10.0"}"#).is_ok());
        let e = parse_rule(r#"{"kind":"colour"}"#).unwrap_err();
        assert!(e.contains(r#"a rule is JSON like"#), "{e}");
    }

    #[test]
    fn rollouts_read_in_a_few_words() {
        let spec = RolloutArgs {
            percent: Some(Percent::parse("5%").unwrap()),
            rules: vec![parse_rule(r#"{"kind":"os_in","values":["windows"]}"#).unwrap()],
            allow: vec![ListedId::parse("d1").unwrap()],
            deny: vec![],
            stickiness: StickinessArg::Device,
            interactive_bypass: false,
            salt: None,
            schedule: None,
            gate: None,
        }
        .spec();
        let view = RolloutView { channel: ChannelName::stable(), etag: "\"1\"".into(), rollout: spec, arm: None };
        assert_eq!(summary(&view), "5% active where os in [windows], 1 allowed");
    }

    #[test]
    fn a_scheduled_rollout_starts_where_its_schedule_does_unless_told() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            rollout: RolloutArgs,
        }
        let parse = |args: &[&str]| {
            <Cli as clap::Parser>::try_parse_from(std::iter::once("x").chain(args.iter().copied())).map(|c| c.rollout)
        };
        let devices = r#"[{"devices":500,"hold_s":3600},{"basis_points":200},{"basis_points":10000}]"#;
        assert_eq!(parse(&["--schedule", devices]).unwrap().spec().basis_points, Percent::SMALLEST);
        assert_eq!(parse(&["--schedule", "apple_phased"]).unwrap().percent().basis_points(), 100);
        assert_eq!(parse(&["--schedule", devices, "--percent", "1%"]).unwrap().percent().basis_points(), 100);
        let e = parse(&[]).err().unwrap().to_string();
        assert!(e.contains("--percent"), "{e}");
    }
}
