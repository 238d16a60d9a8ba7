//! `halftone status <app> [<version>]`: each rollout's state, step and gate, the install
//! feedback that gates watch, the rollout's history, and which versions devices run.

use halftone_channels::wire::StatusView;
use halftone_channels::{AppId, Version};

use super::output::{Output, Table, utc};
use super::profile::Profile;

/// `halftone status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The app.
    pub app: AppId,
    /// Only this release (with its history).
    pub version: Option<Version>,
}

/// Runs `halftone status`.
pub async fn run(args: StatusArgs, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let mut status = profile.admin()?.status(&args.app).await?;
    if let Some(v) = &args.version {
        status.releases.retain(|r| &r.version == v);
        anyhow::ensure!(!status.releases.is_empty(), "app {} has no release {v}", args.app);
    }
    let detailed = args.version.is_some();
    out.emit(&status, |s| render(s, detailed))
}

/// The status as text: a rollout table, then history (for one release) and adoption.
pub fn render(s: &StatusView, with_history: bool) -> String {
    let mut t = Table::new([
        "VERSION",
        "CHANNEL",
        "STATE",
        "PERCENT",
        "STEP",
        "OFFERED",
        "INSTALLS",
        "FAILED",
        "FIRST RUNS",
        "CRASHES",
    ]);
    for r in &s.releases {
        for o in &r.rollouts {
            let step = o
                .schedule
                .as_ref()
                .map_or_else(|| "-".to_owned(), |sch| format!("{}/{}", sch.step.map_or(0, |i| i + 1), sch.steps.len()));
            let f = &o.figures;
            t.row([
                r.version.to_string(),
                o.channel.to_string(),
                o.state.to_string(),
                o.basis_points.to_string(),
                step,
                f.offered_devices.to_string(),
                f.installs.to_string(),
                f.install_failures.to_string(),
                f.first_runs.to_string(),
                f.crashes.to_string(),
            ]);
        }
    }
    let mut text = t.render();
    let mut g = Table::new([
        "VERSION",
        "CHANNEL",
        "BASELINE",
        "METRIC",
        "CALL",
        "CANDIDATE",
        "BASELINE RATE",
        "LLR",
        "HALT AT",
        "PROVE AT",
    ]);
    let mut judged = false;
    for r in &s.releases {
        for o in &r.rollouts {
            for e in &o.evidence {
                judged = true;
                g.row([
                    r.version.to_string(),
                    o.channel.to_string(),
                    o.baseline.as_ref().map_or_else(String::new, ToString::to_string),
                    serde_json::to_value(e.metric).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default(),
                    e.call.clone(),
                    format!("{:.2}% ({}/{})", e.rate * 100.0, e.bad, e.sample),
                    format!("{:.2}% ({}/{})", e.baseline_rate * 100.0, e.baseline_bad, e.baseline_sample),
                    format!("{:.2}", e.statistic),
                    format!("{:.2}", e.halt_at),
                    format!("{:.2}", e.accept_at),
                ]);
            }
        }
    }
    if judged {
        text.push_str("\nGates against their baseline\n");
        text.push_str(&g.render());
    }
    if with_history {
        let mut h = Table::new(["TIME (UTC)", "CHANNEL", "ACTOR", "ACTION", "WHY"]);
        for r in &s.releases {
            for o in &r.rollouts {
                for e in &o.history {
                    let why = e.after.as_ref().and_then(|a| a.get("reason")).and_then(|r| r.as_str()).unwrap_or("");
                    h.row([utc(e.at_ms), o.channel.to_string(), e.actor.clone(), e.action.clone(), why.to_owned()]);
                }
            }
        }
        text.push_str("\nHistory\n");
        text.push_str(&h.render());
    }
    let mut a = Table::new(["CHANNEL", "VERSION", "DEVICES (DAY)", "DEVICES (WEEK)"]);
    for c in &s.adoption {
        for v in &c.versions {
            a.row([c.channel.to_string(), v.version.to_string(), v.last_day.to_string(), v.last_week.to_string()]);
        }
    }
    text.push_str("\nAdoption\n");
    text.push_str(&a.render());
    text
}
