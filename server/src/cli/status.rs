//! `halftone status <app> [<version>] [--watch]`: each rollout's state, its next scheduled
//! step and when, the install-failure and crash rates beside the limits of its gate, the
//! rollout's history as changes (`10% -> 50%`, who, why), and which versions devices run.
//! `--watch` redraws it every few seconds.

use std::time::Duration;

use halftone_channels::wire::{AuditEntry, EvidenceView, GateSpec, MetricFiguresView, RolloutStatus, StatusView};
use halftone_channels::{AppId, Percent, Version};
use serde_json::Value;

use super::output::{Output, Table, utc};
use super::profile::Profile;

/// `halftone status`.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// The app.
    pub app: AppId,
    /// Only this release (with its history).
    pub version: Option<Version>,
    /// Redraw every SECONDS [default: 5] until interrupted (with --json: one JSON object per
    /// line, each time).
    #[arg(long, value_name = "SECONDS", num_args = 0..=1, default_missing_value = "5",
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub watch: Option<u64>,
    /// With --watch: stop after this many refreshes.
    #[arg(long, value_name = "N", requires = "watch")]
    pub count: Option<u64>,
}

/// Runs `halftone status`.
pub async fn run(args: StatusArgs, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    let detailed = args.version.is_some();
    let fetch = || async {
        let mut status = client.status(&args.app).await?;
        if let Some(v) = &args.version {
            status.releases.retain(|r| &r.version == v);
            anyhow::ensure!(!status.releases.is_empty(), "app {} has no release {v}", args.app);
        }
        anyhow::Ok(status)
    };
    let Some(every) = args.watch else {
        let status = fetch().await?;
        return out.emit(&status, |s| render(s, detailed, now_ms()));
    };
    let mut round = 0;
    loop {
        round += 1;
        match fetch().await {
            Ok(status) if out.is_json() => out.json_line(&status)?,
            Ok(status) => {
                let clear = if out.styled() { "\x1b[2J\x1b[H" } else { "" };
                let head =
                    format!("{clear}{} at {} UTC, every {every}s (Ctrl-C stops)\n\n", args.app, &utc(now_ms())[11..19]);
                out.line(&(head + &render(&status, detailed, now_ms())))?;
            }
            // A watch outlives a server restart or a network blip: say so and keep going.
            Err(e) => eprintln!("error: {e:#} (retrying in {every}s)"),
        }
        if args.count.is_some_and(|n| round >= n) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(every)).await;
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The status as text: a rollout table (rates beside their gate's limits, the next scheduled
/// step), then history (for one release) and adoption. `now_ms` dates the next step.
pub fn render(s: &StatusView, with_history: bool, now_ms: u64) -> String {
    let mut t = Table::new([
        "VERSION",
        "CHANNEL",
        "STATE",
        "PERCENT",
        "NEXT STEP",
        "OFFERED",
        "INSTALLS",
        "FAILED",
        "CRASHED",
        "GATE",
    ]);
    for r in &s.releases {
        for o in &r.rollouts {
            let f = &o.figures;
            t.row([
                r.version.to_string(),
                o.channel.to_string(),
                o.state.to_string(),
                o.basis_points.to_string(),
                next_step(o, now_ms),
                f.offered_devices.to_string(),
                f.installs.to_string(),
                share(f.install_failures, f.installs + f.install_failures),
                share(f.crashes, f.first_runs),
                o.gate.as_ref().map_or_else(|| "-".to_owned(), gate),
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
                    proof_figures(e),
                    format!("{:.2}% ({}/{})", e.baseline_rate * 100.0, e.baseline_bad, e.baseline_sample),
                    if e.proof_sample == e.sample {
                        format!("{:.2}", e.statistic)
                    } else {
                        format!("{:.2}; proof {:.2}", e.statistic, e.proof_statistic)
                    },
                    format!("{:.2}", e.halt_at),
                    format!("{:.2}", e.accept_at),
                ]);
            }
        }
    }
    for r in &s.releases {
        for o in &r.rollouts {
            for e in &o.metric_evidence {
                judged = true;
                let per = if e.measure == "counts_per_report" { " per report" } else { "" };
                g.row([
                    r.version.to_string(),
                    o.channel.to_string(),
                    o.baseline.as_ref().map_or_else(String::new, ToString::to_string),
                    e.metric.to_string(),
                    e.call.clone(),
                    format!("mean {}{per} ({})", num(e.mean), e.count),
                    format!(
                        "mean {}{per} ({}), tolerated {}",
                        num(e.baseline_mean),
                        e.baseline_count,
                        num(e.tolerated)
                    ),
                    format!("{:.2}", e.statistic),
                    format!("{:.2}", e.decides_at),
                    "-".to_owned(),
                ]);
            }
        }
    }
    if judged {
        text.push_str("\nGates against their baseline\n");
        text.push_str(&g.render());
    }
    let mut l = Table::new([
        "VERSION",
        "CHANNEL",
        "AT (UTC)",
        "STEP",
        "METRIC",
        "CALL",
        "CANDIDATE",
        "P(AS MANY | TOLERATED)",
        "HALTS AT",
        "P(AS FEW | TO CATCH)",
        "PROVES AT",
    ]);
    let mut looked = false;
    for r in &s.releases {
        for o in &r.rollouts {
            let Some(look) = &o.last_look else { continue };
            looked = true;
            let when = [r.version.to_string(), o.channel.to_string(), utc(look.at_ms), look.basis_points.to_string()];
            if look.looks.is_empty() {
                l.row(
                    when.iter()
                        .cloned()
                        .chain(["-".to_owned(), look.call.clone()])
                        .chain(std::iter::repeat_n("-".to_owned(), 5)),
                );
            }
            for e in &look.looks {
                let metric =
                    serde_json::to_value(e.metric).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
                let rate = if e.sample == 0 { 0.0 } else { e.bad as f64 * 100.0 / e.sample as f64 };
                l.row(when.clone().into_iter().chain([
                    metric,
                    e.call.clone(),
                    format!("{rate:.2}% ({}/{})", e.bad, e.sample),
                    format!("{:.2e}", e.if_tolerated),
                    format!("{:.2e}", e.halt_below),
                    format!("{:.2e}", e.if_worse),
                    format!("{:.2e}", e.accept_below),
                ]));
            }
        }
    }
    if looked {
        text.push_str("\nLast look at an exhausted proving step\n");
        text.push_str(&l.render());
    }
    let mut m = Table::new(["VERSION", "CHANNEL", "METRIC", "BUILD", "BASELINE"]);
    let mut measured = false;
    for r in &s.releases {
        for o in &r.rollouts {
            for metric in &o.metrics {
                measured = true;
                m.row([
                    r.version.to_string(),
                    o.channel.to_string(),
                    metric.name.to_string(),
                    figures(&metric.build),
                    metric.baseline.as_ref().map_or_else(|| "-".to_owned(), figures),
                ]);
            }
        }
    }
    if measured {
        text.push_str("\nApp metrics (each build on every channel, since publish; gates judge their window)\n");
        text.push_str(&m.render());
    }
    if with_history {
        let mut h = Table::new(["TIME (UTC)", "CHANNEL", "ACTOR", "CHANGE", "WHY"]);
        for r in &s.releases {
            for o in &r.rollouts {
                for e in &o.history {
                    h.row([utc(e.at_ms), o.channel.to_string(), e.actor.clone(), change(e), why(e).to_owned()]);
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
    for x in &s.experiments {
        text.push('\n');
        text.push_str(&super::experiment::render(x));
        text.push('\n');
    }
    text
}

/// A number in at most 4 significant figures' worth of width.
fn num(x: f64) -> String {
    if x.abs() >= 1000.0 { format!("{x:.0}") } else { format!("{x:.2}") }
}

/// `n 120, mean 301.50, p50 290.00, p90 512.00, p99 900.00`, or `sum 30 over 20 devices (1.50
/// each)` for a counter.
fn figures(f: &MetricFiguresView) -> String {
    if let Some(sum) = f.sum {
        let each = f.per_device.map_or_else(String::new, |p| format!(" ({} each)", num(p)));
        return format!("sum {sum} over {} devices{each}", f.devices.unwrap_or(0));
    }
    let q = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), num);
    format!(
        "n {}, mean {}, p50 {}, p90 {}, p99 {}",
        f.count.unwrap_or(0),
        f.mean.map_or_else(|| "-".to_owned(), num),
        q(f.p50),
        q(f.p90),
        q(f.p99)
    )
}

/// A rate's window figures, `2.00% (40/2000)`, with the proof's when they differ (the crash
/// rate against settled first runs): `1.00% (20/2000), settled 12/900`.
fn proof_figures(e: &EvidenceView) -> String {
    let mut text = format!("{:.2}% ({}/{})", e.rate * 100.0, e.bad, e.sample);
    if e.proof_sample != e.sample {
        text.push_str(&format!(", settled {}/{}", e.proof_bad, e.proof_sample));
    }
    text
}

/// `3 (5.7%)`, or `0` when there is nothing to divide by.
fn share(bad: u64, of: u64) -> String {
    if of == 0 { bad.to_string() } else { format!("{bad} ({:.1}%)", bad as f64 * 100.0 / of as f64) }
}

/// `failed <= 5%, crashed <= 1%, from 50 devices, then halt`.
fn gate(g: &GateSpec) -> String {
    let pct = |r: f64| format!("{}%", (r * 1000.0).round() / 10.0);
    let mut parts = Vec::new();
    if let Some(r) = g.max_install_failure_rate {
        parts.push(format!("failed <= {}", pct(r)));
    }
    if let Some(r) = g.max_crash_rate {
        parts.push(format!("crashed <= {}", pct(r)));
    }
    if !parts.is_empty() {
        parts.push(format!("from {} devices", g.min_sample));
    }
    if g.compare.is_some() {
        parts.push("rates against the baseline".to_owned());
    }
    for m in &g.metrics {
        let within = m.degradation.map_or_else(String::new, |d| format!(" within {}", pct(d)));
        parts.push(format!("{}{within} of the baseline", m.name));
    }
    let action = serde_json::to_value(g.action).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
    format!("{}, else {action}", parts.join(", "))
}

/// `25% in 3h 10m`, `25% when the gate has its sample`, `done`, or `-` without a schedule.
fn next_step(o: &RolloutStatus, now_ms: u64) -> String {
    let Some(s) = &o.schedule else { return "-".to_owned() };
    let next = s.step.map_or(0, |i| i + 1);
    let Some(step) = s.steps.get(next) else { return "done".to_owned() };
    match s.next_at_ms {
        Some(at) if at > now_ms => format!("{} in {}", step.share, span(at - now_ms)),
        Some(_) if !o.metric_step_waits.is_empty() => {
            let waits: Vec<String> =
                o.metric_step_waits.iter().map(|w| format!("{} {}/{}", w.metric, w.new_values, w.needed)).collect();
            format!("{} when the step has new values ({})", step.share, waits.join(", "))
        }
        Some(_) if o.exhaustion.is_some() => {
            let at = o.exhaustion.as_ref().map_or(now_ms, |e| e.exhausted_at_ms);
            let when =
                if at > now_ms { format!("exhausted in {}", span(at - now_ms)) } else { "exhausted now".to_owned() };
            format!("{} when the gate passes (step {when} if no new install reports: then the last look)", step.share)
        }
        Some(_) if o.gate.is_some() => format!("{} when the gate passes", step.share),
        Some(_) => format!("{} now", step.share),
        None => format!("{} ({})", step.share, o.state),
    }
}

/// `2d 3h`, `3h 10m`, `4m 5s`, `12s`.
fn span(ms: u64) -> String {
    let s = ms.div_ceil(1000);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m {}s", s % 60),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// The rollout an audit entry recorded: its `after` alone, or wrapped with the reason the
/// scheduler or a gate gave.
fn rollout_of(v: Option<&Value>) -> Option<&Value> {
    let v = v?;
    Some(v.get("rollout").filter(|_| v.get("reason").is_some()).unwrap_or(v))
}

fn why(e: &AuditEntry) -> &str {
    e.after.as_ref().and_then(|a| a.get("reason")).and_then(Value::as_str).unwrap_or("")
}

/// What an audit entry changed, field by field: `10% -> 50%`, `active -> halted`,
/// `rules: [] -> [...]`; a new rollout reads `started at 10%, active`.
pub fn change(e: &AuditEntry) -> String {
    let (before, after) = (rollout_of(e.before.as_ref()), rollout_of(e.after.as_ref()));
    let Some(after) = after.and_then(Value::as_object) else { return e.action.clone() };
    let shown = |key: &str, v: &Value| match (key, v) {
        ("basis_points", Value::Number(n)) => n
            .as_u64()
            .and_then(|bp| u16::try_from(bp).ok())
            .and_then(|bp| Percent::from_basis_points(bp).ok())
            .map_or_else(|| v.to_string(), |p| p.to_string()),
        (_, Value::String(s)) => s.clone(),
        _ => v.to_string(),
    };
    let Some(before) = before.and_then(Value::as_object) else {
        let pct = after.get("basis_points").map(|v| shown("basis_points", v)).unwrap_or_default();
        let state = after.get("state").map(|v| shown("state", v)).unwrap_or_default();
        return format!("{}: started at {pct}, {state}", e.action);
    };
    let mut keys: Vec<&String> = after.keys().chain(before.keys()).collect();
    keys.sort_by_key(|k| (k.as_str() != "basis_points", k.as_str() != "state", k.as_str()));
    keys.dedup();
    let changes: Vec<String> = keys
        .into_iter()
        .filter(|k| before.get(*k) != after.get(*k))
        .map(|k| {
            let side = |v: Option<&Value>| v.map_or_else(|| "none".to_owned(), |v| shown(k, v));
            let (b, a) = (side(before.get(k)), side(after.get(k)));
            match k.as_str() {
                "basis_points" | "state" => format!("{b} -> {a}"),
                _ => format!("{k}: {b} -> {a}"),
            }
        })
        .collect();
    if changes.is_empty() { format!("{}: no change", e.action) } else { changes.join(", ") }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn entry(action: &str, before: Option<Value>, after: Option<Value>) -> AuditEntry {
        AuditEntry {
            seq: 1,
            at_ms: 0,
            actor: "ci".into(),
            action: action.into(),
            app: None,
            subject: "1.1.0/beta".into(),
            before,
            after,
        }
    }

    #[test]
    fn history_says_what_changed() {
        let r = |bp: u64, state: &str| json!({"basis_points": bp, "state": state, "rules": []});
        assert_eq!(
            change(&entry("rollout.create", None, Some(r(1000, "active")))),
            "rollout.create: started at 10%, active"
        );
        assert_eq!(change(&entry("rollout.update", Some(r(1000, "active")), Some(r(5000, "active")))), "10% -> 50%");
        assert_eq!(
            change(&entry("release.halt", Some(r(5000, "active")), Some(r(5000, "halted")))),
            "active -> halted"
        );
        let ruled = json!({"basis_points": 5000, "state": "active", "rules": [{"attr": "os", "op": "in", "values": ["windows"]}]});
        assert_eq!(
            change(&entry("rollout.update", Some(r(1000, "paused")), Some(ruled))),
            "10% -> 50%, paused -> active, rules: [] -> [{\"attr\":\"os\",\"op\":\"in\",\"values\":[\"windows\"]}]"
        );
        // The scheduler and gates wrap the rollout with their reason.
        let by_gate = entry(
            "rollout.halt",
            Some(r(500, "active")),
            Some(json!({"rollout": r(500, "halted"), "reason": "install failure rate 30.0% > 5.0%"})),
        );
        assert_eq!(
            (change(&by_gate).as_str(), why(&by_gate)),
            ("active -> halted", "install failure rate 30.0% > 5.0%")
        );
        assert_eq!(
            change(&entry("rollout.update", Some(r(1, "active")), Some(r(1, "active")))),
            "rollout.update: no change"
        );
    }

    #[test]
    fn rates_read_beside_their_gate() {
        assert_eq!(share(3, 50), "3 (6.0%)");
        assert_eq!(share(0, 0), "0");
        let g: GateSpec = serde_json::from_value(
            json!({"max_install_failure_rate": 0.05, "max_crash_rate": 0.015, "min_sample": 50}),
        )
        .unwrap();
        assert_eq!(gate(&g), "failed <= 5%, crashed <= 1.5%, from 50 devices, else halt");
    }

    #[test]
    fn spans_read_in_two_units() {
        assert_eq!(span(12_000), "12s");
        assert_eq!(span(245_000), "4m 5s");
        assert_eq!(span(11_400_000), "3h 10m");
        assert_eq!(span(3 * 86_400_000 + 7_200_000), "3d 2h");
    }

    #[test]
    fn the_next_step_is_dated() {
        let o: RolloutStatus = serde_json::from_value(json!({
            "channel": "beta", "state": "active", "basis_points": 500,
            "schedule": {"steps": [{"basis_points": 100, "hold_s": 60}, {"basis_points": 500, "hold_s": 3600},
                                   {"basis_points": 2500}], "step": 1, "since_ms": 0, "next_at_ms": 3_600_000},
            "gate": null, "figures": {"offers": 0, "offered_devices": 0, "downloads": 0, "download_failures": 0,
                "installs": 0, "install_failures": 0, "first_runs": 0, "crashes": 0},
            "history": []
        }))
        .unwrap();
        assert_eq!(next_step(&o, 600_000), "25% in 50m 0s");
        assert_eq!(next_step(&o, 3_600_001), "25% now");
        let last = RolloutStatus {
            schedule: o.schedule.clone().map(|s| halftone_channels::wire::ScheduleStatus { step: Some(2), ..s }),
            ..o.clone()
        };
        assert_eq!(next_step(&last, 0), "done");
        assert_eq!(next_step(&RolloutStatus { schedule: None, ..o }, 0), "-");
    }
}
