//! `halftone experiment`: A/B/N experiments on a channel. `start` puts two or more releases
//! already rolled out there on disjoint shares of its devices, `show` compares the arms side
//! by side, `promote` makes the winner's rollout take over and retires the others (one-way: it
//! asks first, or takes `--yes`).

use halftone_channels::wire::{ArmRequest, ExperimentRequest, ExperimentView, PromoteWinnerRequest, ScheduleSpec};
use halftone_channels::{AppId, ChannelName, Percent, Version};

use super::confirm::{YesArg, confirm};
use super::output::{Output, Table};
use super::profile::Profile;
use super::rollout::{parse_percent, parse_schedule, summary};

/// `halftone experiment ...`
#[derive(Debug, clap::Subcommand)]
pub enum ExperimentCommand {
    /// Start an experiment: each `--arm VERSION=SHARE` is a release already rolled out on the
    /// channel, put on its own share of the devices (shares never overlap).
    Start(StartArgs),
    /// Show the running experiment: the arms side by side, which is ahead and whether proven.
    Show(ShowArgs),
    /// Promote the winner: its rollout takes over (widening to --percent or by --schedule),
    /// the other arms are halted. Asks first.
    Promote(PromoteWinnerArgs),
}

/// `halftone experiment start`.
#[derive(Debug, Clone, clap::Args)]
pub struct StartArgs {
    /// The app.
    pub app: AppId,
    /// The channel.
    pub channel: ChannelName,
    /// An arm, `VERSION=SHARE` (for example `1.4.0=10%`); two or more.
    #[arg(long = "arm", value_name = "VERSION=SHARE", value_parser = parse_arm, required = true)]
    pub arms: Vec<ArmRequest>,
    /// Why, for the audit log.
    #[arg(long)]
    pub reason: Option<String>,
}

/// `halftone experiment show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The app.
    pub app: AppId,
    /// The channel.
    pub channel: ChannelName,
}

/// `halftone experiment promote`.
#[derive(Debug, Clone, clap::Args)]
pub struct PromoteWinnerArgs {
    /// The app.
    pub app: AppId,
    /// The channel.
    pub channel: ChannelName,
    /// The winning arm's version.
    pub winner: Version,
    /// The winner's new share (default: it keeps its arm's share).
    #[arg(long, value_parser = parse_percent)]
    pub percent: Option<Percent>,
    /// A schedule for the winner: a preset name or steps as JSON.
    #[arg(long, value_name = "PRESET|JSON", value_parser = parse_schedule)]
    pub schedule: Option<ScheduleSpec>,
    /// Promote even though a losing arm is newer than the winner (its devices keep it).
    #[arg(long)]
    pub allow_higher_losers: bool,
    /// Why, for the audit log.
    #[arg(long)]
    pub reason: Option<String>,
    /// Promoting asks first; this answers yes.
    #[command(flatten)]
    pub yes: YesArg,
}

/// `VERSION=SHARE`.
fn parse_arm(s: &str) -> Result<ArmRequest, String> {
    let (v, share) = s.split_once('=').ok_or_else(|| format!("expected VERSION=SHARE like 1.4.0=10%, got {s:?}"))?;
    Ok(ArmRequest { version: Version::parse(v).map_err(|e| e.to_string())?, basis_points: parse_percent(share)? })
}

/// Runs `halftone experiment ...`.
pub async fn run(cmd: ExperimentCommand, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    match cmd {
        ExperimentCommand::Start(a) => {
            let request = ExperimentRequest { arms: a.arms, reason: a.reason };
            let view = client.start_experiment(&a.app, &a.channel, &request).await?;
            out.emit(&view, |v| format!("started an experiment on {}\n{}", v.channel, render(v)))
        }
        ExperimentCommand::Show(a) => {
            let (view, _) = client.experiment(&a.app, &a.channel).await?;
            out.emit(&view, render)
        }
        ExperimentCommand::Promote(a) => {
            let (view, etag) = client.experiment(&a.app, &a.channel).await?;
            let losers: Vec<String> =
                view.arms.iter().filter(|r| r.version != a.winner).map(|r| r.version.to_string()).collect();
            let newer: Vec<String> =
                view.arms.iter().filter(|r| r.version > a.winner).map(|r| r.version.to_string()).collect();
            let mut question = format!(
                "Promote {} on {} of {}: its rollout takes over and {} {} halted (nobody new is offered them; \
                 devices that have them keep them)?",
                a.winner,
                a.channel,
                a.app,
                losers.join(", "),
                if losers.len() == 1 { "is" } else { "are" }
            );
            if !newer.is_empty() {
                question.push_str(&format!(
                    " {} {} newer than the winner: its devices are offered nothing lower.",
                    newer.join(", "),
                    if newer.len() == 1 { "is" } else { "are" }
                ));
            }
            confirm(a.yes, &format!("promoting {} on {}", a.winner, a.channel), &question)?;
            let request = PromoteWinnerRequest {
                winner: a.winner.clone(),
                basis_points: a.percent,
                schedule: a.schedule,
                allow_higher_losers: a.allow_higher_losers,
                reason: a.reason,
            };
            let done = client.promote_winner(&a.app, &a.channel, &etag, &request).await?;
            out.emit(&done, |d| {
                let retired: Vec<String> = d.retired.iter().map(Version::to_string).collect();
                let mut s = format!(
                    "promoted {} on {}: now {}; retired {}",
                    a.winner,
                    a.channel,
                    summary(&d.winner),
                    retired.join(", ")
                );
                if let Some(top) = d.newer_than_winner.iter().max() {
                    s.push_str(&format!(
                        "\nDevices on {top} keep it (nothing lower is offered): to move them to the winner's \
                         code, rebuild it as a version above {top} and roll that out."
                    ));
                }
                s
            })
        }
    }
}

/// The arms side by side, then each figure: the arm ahead and whether it is proven.
pub fn render(v: &ExperimentView) -> String {
    let mut t =
        Table::new(["arm", "share", "buckets", "state", "installs", "install failures", "first runs", "crashes"]);
    for a in &v.arms {
        let end = u32::from(a.slot.start) + u32::from(a.basis_points.basis_points());
        t.row([
            a.version.to_string(),
            a.basis_points.to_string(),
            format!("{}..{}", a.slot.start, end),
            a.state.to_string(),
            a.installs.to_string(),
            a.install_failures.to_string(),
            a.first_runs.to_string(),
            a.crashes.to_string(),
        ]);
    }
    let mut s = format!("experiment on {} of {} (salt {})\n{}", v.channel, v.app, v.salt, t.render());
    for f in &v.figures {
        let values: Vec<String> = v
            .arms
            .iter()
            .zip(&f.arms)
            .map(|(a, x)| format!("{} {:.2}% of {}", a.version, x.mean * 100.0, x.count))
            .collect();
        let verdict = match (&f.ahead, f.proven) {
            (Some(a), true) => format!("{a} is ahead, proven (statistic {:.2} >= bound {:.2})", f.statistic, f.bound),
            (Some(a), false) => {
                format!("{a} is ahead, not proven yet (statistic {:.2} < bound {:.2})", f.statistic, f.bound)
            }
            (None, _) => "no arm is ahead".to_owned(),
        };
        s.push_str(&format!("\n{}: {}; {verdict}", f.name, values.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_parse_as_version_equals_share() {
        let a = parse_arm("1.4.0=12.5%").unwrap();
        assert_eq!((a.version.to_string(), a.basis_points.basis_points()), ("1.4.0".to_owned(), 1_250));
        assert!(parse_arm("1.4.0").unwrap_err().contains("VERSION=SHARE"));
        assert!(parse_arm("x=10%").is_err() && parse_arm("1.4.0=150%").is_err());
    }
}
