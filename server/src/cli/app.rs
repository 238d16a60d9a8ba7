//! Apps: `app create|update|show|list`, with `--key id=hex` ([`parse_key`]) and
//! `--channel name=rank` ([`parse_channel`]) and `--metric name=lower|higher|counter`
//! ([`parse_metric`]).

use anyhow::bail;
use halftone_channels::wire::{AppSpec, AppView, ChannelSpec, KeySpec, MetricKindSpec, MetricSpec};
use halftone_channels::{AppId, BUILT_IN, ChannelName, Direction, DisplayName, KeyId, MetricName, PublicKey, Rank};

use super::confirm::{YesArg, confirm};
use super::output::{Output, Table};
use super::profile::Profile;

/// A `--key` value: `id=hex`, or just the hex public key (then the id is its fingerprint, as
/// `halftone keygen` prints it).
pub fn parse_key(s: &str) -> Result<KeySpec, String> {
    let (id, hex) = match s.split_once('=') {
        Some((id, hex)) => (Some(KeyId::parse(id.trim()).map_err(|e| e.to_string())?), hex.trim()),
        None => (None, s.trim()),
    };
    let public_key = PublicKey::parse(hex).map_err(|e| e.to_string())?;
    Ok(KeySpec { id: id.unwrap_or_else(|| public_key.fingerprint()), public_key })
}

/// A `--channel` value: `name=rank`, e.g. `canary=250` (stable is 100, beta 200, unstable 300;
/// lower is more stable).
pub fn parse_channel(s: &str) -> Result<ChannelSpec, String> {
    let (name, rank) = s.split_once('=').ok_or_else(|| format!("expected name=rank, like canary=250, not {s:?}"))?;
    let name = ChannelName::parse(name.trim()).map_err(|e| e.to_string())?;
    let rank: Rank = rank
        .trim()
        .parse()
        .map_err(|_| format!("rank {:?} of channel {name} must be a whole number from 0 to {}", rank, Rank::MAX))?;
    Ok(ChannelSpec { name, rank })
}

/// A `--metric` value: `name=lower` or `name=higher` (a value metric and the direction that is
/// better), or `name=counter`.
pub fn parse_metric(s: &str) -> Result<MetricSpec, String> {
    let (name, kind) = s
        .split_once('=')
        .ok_or_else(|| format!("expected name=lower|higher|counter, like session_s=higher, not {s:?}"))?;
    let name = MetricName::parse(name.trim()).map_err(|e| e.to_string())?;
    let (kind, better) = match kind.trim() {
        "lower" => (MetricKindSpec::Value, Some(Direction::Lower)),
        "higher" => (MetricKindSpec::Value, Some(Direction::Higher)),
        "counter" => (MetricKindSpec::Counter, None),
        other => return Err(format!("metric {name}: {other:?} is not lower, higher or counter")),
    };
    Ok(MetricSpec { name, kind, better })
}

/// `halftone app ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AppCommand {
    /// Create an app (refuses if it exists).
    Create(AppArgs),
    /// Change an existing app: its name, and keys and channels added or removed (the rest is
    /// kept).
    Update(UpdateArgs),
    /// Show an app.
    Show {
        /// The app.
        app: AppId,
    },
    /// List every app.
    List,
}

/// `halftone app create`: a new app's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct AppArgs {
    /// The app's id (lowercase letters, digits, '-').
    pub app: AppId,
    /// A human name [default: the id].
    #[arg(long)]
    pub name: Option<DisplayName>,
    /// A trusted signing key: id=hex, or the hex public key alone (repeat).
    #[arg(long = "key", value_name = "ID=HEX", value_parser = parse_key)]
    pub keys: Vec<KeySpec>,
    /// A custom channel: name=rank (repeat; stable=100, beta=200, unstable=300 are built in).
    #[arg(long = "channel", value_name = "NAME=RANK", value_parser = parse_channel)]
    pub channels: Vec<ChannelSpec>,
    /// An app metric devices may report: name=lower or name=higher (a value, and which way is
    /// better) or name=counter (repeat).
    #[arg(long = "metric", value_name = "NAME=KIND", value_parser = parse_metric)]
    pub metrics: Vec<MetricSpec>,
}

impl AppArgs {
    fn spec(&self) -> AppSpec {
        AppSpec {
            display_name: self
                .name
                .clone()
                .unwrap_or_else(|| DisplayName::parse(self.app.as_str()).expect("an app id is a valid display name")),
            keys: self.keys.clone(),
            channels: self.channels.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

/// `halftone app update`: changes on top of the app as it is.
#[derive(Debug, Clone, clap::Args)]
pub struct UpdateArgs {
    /// The app's id.
    pub app: AppId,
    /// A new human name.
    #[arg(long)]
    pub name: Option<DisplayName>,
    /// Trust this key too: id=hex, or the hex public key alone (repeat; replaces a key of the
    /// same id).
    #[arg(long = "key", value_name = "ID=HEX", value_parser = parse_key)]
    pub keys: Vec<KeySpec>,
    /// Stop trusting the key with this id (repeat).
    #[arg(long = "remove-key", value_name = "ID")]
    pub remove_keys: Vec<KeyId>,
    /// Add or re-rank a custom channel: name=rank (repeat).
    #[arg(long = "channel", value_name = "NAME=RANK", value_parser = parse_channel)]
    pub channels: Vec<ChannelSpec>,
    /// Remove a custom channel (repeat).
    #[arg(long = "remove-channel", value_name = "NAME")]
    pub remove_channels: Vec<ChannelName>,
    /// Declare or redeclare an app metric: name=lower|higher|counter (repeat).
    #[arg(long = "metric", value_name = "NAME=KIND", value_parser = parse_metric)]
    pub metrics: Vec<MetricSpec>,
    /// Stop accepting reports of this metric (repeat; its figures are kept).
    #[arg(long = "remove-metric", value_name = "NAME")]
    pub remove_metrics: Vec<MetricName>,
    /// Removing a key or a channel asks first; this answers yes.
    #[command(flatten)]
    pub yes: YesArg,
}

impl UpdateArgs {
    /// The app's new settings: the current ones with these changes. `PUT` replaces an app's
    /// keys and channels, so starting from the current app is what keeps `--name` alone from
    /// dropping every key.
    pub fn merged(&self, current: &AppView) -> anyhow::Result<AppSpec> {
        let mut keys = current.keys.clone();
        for id in &self.remove_keys {
            let before = keys.len();
            keys.retain(|k| &k.id != id);
            if keys.len() == before {
                bail!("app {} has no key {id} to remove", current.id);
            }
        }
        for k in &self.keys {
            keys.retain(|old| old.id != k.id);
            keys.push(k.clone());
        }
        let built_in = |name: &ChannelName| BUILT_IN.iter().any(|(b, _)| *b == name.as_str());
        let mut channels: Vec<ChannelSpec> = current.channels.iter().filter(|c| !built_in(&c.name)).cloned().collect();
        for name in &self.remove_channels {
            let before = channels.len();
            channels.retain(|c| &c.name != name);
            if channels.len() == before {
                bail!("app {} has no custom channel {name} to remove", current.id);
            }
        }
        for c in &self.channels {
            channels.retain(|old| old.name != c.name);
            channels.push(c.clone());
        }
        let mut metrics = current.metrics.clone();
        for name in &self.remove_metrics {
            let before = metrics.len();
            metrics.retain(|m| &m.name != name);
            if metrics.len() == before {
                bail!("app {} has no metric {name} to remove", current.id);
            }
        }
        for m in &self.metrics {
            metrics.retain(|old| old.name != m.name);
            metrics.push(m.clone());
        }
        let display_name = self.name.clone().unwrap_or_else(|| current.display_name.clone());
        Ok(AppSpec { display_name, keys, channels, metrics })
    }

    /// What the removals do, for the confirmation; `None` when nothing is removed.
    fn removals(&self, app: &AppId) -> Option<String> {
        let mut said = Vec::new();
        for name in &self.remove_channels {
            said.push(format!(
                "remove channel {name}: its devices are served as on stable from then on, and its releases \
                 must first leave it"
            ));
        }
        for id in &self.remove_keys {
            said.push(format!("stop trusting key {id}: the server refuses what only it signs"));
        }
        (!said.is_empty()).then(|| format!("On app {app}: {}?", said.join("; ")))
    }
}

/// Runs `halftone app ...`.
pub async fn run(cmd: AppCommand, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    match cmd {
        AppCommand::Create(args) => {
            // PUT replaces an app's keys; `create` must not quietly replace someone's keys.
            match client.get_app(&args.app).await {
                Ok(_) => bail!("app {} already exists; use `halftone app update` to change it", args.app),
                Err(e) if e.status() == Some(404) => {}
                Err(e) => return Err(e.into()),
            }
            let written = client.put_app(&args.app, &args.spec()).await?;
            out.emit(written.value(), |a| format!("created app {}\n{}", a.id, describe(a)))
        }
        AppCommand::Update(args) => {
            let current = match client.get_app(&args.app).await {
                Ok(current) => current,
                Err(e) if e.status() == Some(404) => {
                    bail!("there is no app {}; use `halftone app create` to make it", args.app)
                }
                Err(e) => return Err(e.into()),
            };
            let merged = args.merged(&current)?;
            if let Some(question) = args.removals(&args.app) {
                confirm(args.yes, &format!("removing from app {}", args.app), &question)?;
            }
            let written = client.put_app(&args.app, &merged).await?;
            out.emit(written.value(), |a| format!("updated app {}\n{}", a.id, describe(a)))
        }
        AppCommand::Show { app } => {
            let view = client.get_app(&app).await?;
            out.emit(&view, describe)
        }
        AppCommand::List => {
            let list = client.list_apps().await?;
            out.emit(&list, |l| {
                let mut t = Table::new(["APP", "NAME", "KEYS", "CHANNELS"]);
                for a in &l.apps {
                    let channels: Vec<&str> = a.channels.iter().map(|c| c.name.as_str()).collect();
                    t.row([
                        a.id.to_string(),
                        a.display_name.to_string(),
                        a.keys.len().to_string(),
                        channels.join(", "),
                    ]);
                }
                if t.is_empty() { "no apps yet; create one with `halftone app create`".to_owned() } else { t.render() }
            })
        }
    }
}

/// An app for people: name, keys, channels most stable first.
pub fn describe(a: &AppView) -> String {
    let mut s = format!("app:      {} ({})\n", a.id, a.display_name);
    if a.keys.is_empty() {
        s.push_str("keys:     none (releases cannot be published until a key is added)\n");
    }
    for (i, k) in a.keys.iter().enumerate() {
        s.push_str(&format!("{:10}{} {}\n", if i == 0 { "keys:" } else { "" }, k.id, k.public_key));
    }
    let channels: Vec<String> = a.channels.iter().map(|c| format!("{} ({})", c.name, c.rank)).collect();
    s.push_str(&format!("channels: {}\n", channels.join(", ")));
    if !a.metrics.is_empty() {
        let metrics: Vec<String> = a
            .metrics
            .iter()
            .map(|m| match m.better {
                Some(Direction::Lower) => format!("{} (value, lower is better)", m.name),
                Some(Direction::Higher) => format!("{} (value, higher is better)", m.name),
                None => format!("{} (counter)", m.name),
            })
            .collect();
        s.push_str(&format!("metrics:  {}\n", metrics.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const PK: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    #[test]
    fn keys_parse_with_or_without_an_id() {
        let k = parse_key(&format!("release-2026={PK}")).unwrap();
        assert_eq!(k.id.as_str(), "release-2026");
        assert_eq!(k.public_key.to_string(), PK);
        let k = parse_key(PK).unwrap();
        assert_eq!(k.id, k.public_key.fingerprint());
        for bad in ["id=", "=abc", &format!("bad id={PK}"), "release=zz"] {
            assert!(parse_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn channels_parse_as_name_and_rank() {
        let c = parse_channel("canary=250").unwrap();
        assert_eq!((c.name.as_str(), c.rank), ("canary", 250));
        assert!(parse_channel("canary").unwrap_err().contains("name=rank"));
        assert!(parse_channel("canary=-1").unwrap_err().contains("whole number"));
        assert!(parse_channel("Canary=1").is_err());
    }

    #[test]
    fn updates_change_only_what_they_name() {
        let k1 = parse_key(&format!("k1={PK}")).unwrap();
        let current = AppView {
            id: AppId::parse("notes").unwrap(),
            display_name: "Notes".parse().unwrap(),
            keys: vec![k1.clone()],
            channels: vec![
                ChannelSpec { name: ChannelName::stable(), rank: 100 },
                ChannelSpec { name: ChannelName::parse("canary").unwrap(), rank: 250 },
                ChannelSpec { name: ChannelName::beta(), rank: 200 },
            ],
            metrics: vec![parse_metric("session_s=higher").unwrap()],
        };
        let update = |args: &[&str]| {
            #[derive(Debug, clap::Parser)]
            struct U {
                #[command(flatten)]
                args: UpdateArgs,
            }
            let argv = ["x", "notes"].into_iter().chain(args.iter().copied());
            <U as clap::Parser>::try_parse_from(argv).unwrap().args.merged(&current)
        };
        let renamed = update(&["--name", "Notes 2"]).unwrap();
        assert_eq!(renamed.display_name.as_str(), "Notes 2");
        assert_eq!(renamed.keys, vec![k1.clone()], "a rename keeps the keys");
        assert_eq!(renamed.channels.len(), 1, "only custom channels are sent");
        assert_eq!(renamed.metrics, current.metrics, "a rename keeps the metrics");
        let measured = update(&["--metric", "purchases=counter", "--remove-metric", "session_s"]).unwrap();
        assert_eq!(measured.metrics, vec![parse_metric("purchases=counter").unwrap()]);
        assert!(update(&["--remove-metric", "nope"]).unwrap_err().to_string().contains("no metric nope"));
        assert!(parse_metric("x=sideways").unwrap_err().contains("not lower, higher or counter"));
        let rotated =
            update(&["--key", &format!("k2={PK}"), "--remove-key", "k1", "--remove-channel", "canary"]).unwrap();
        assert_eq!(rotated.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>(), ["k2"]);
        assert!(rotated.channels.is_empty());
        assert!(update(&["--remove-key", "nope"]).unwrap_err().to_string().contains("no key nope"));
        assert!(update(&["--remove-channel", "beta"]).unwrap_err().to_string().contains("no custom channel beta"));
        let reranked = update(&["--channel", "canary=260"]).unwrap();
        assert_eq!(reranked.channels, vec![ChannelSpec { name: ChannelName::parse("canary").unwrap(), rank: 260 }]);
    }

    #[test]
    fn apps_describe_their_keys_and_channels() {
        let a = AppView {
            id: AppId::parse("notes").unwrap(),
            display_name: "Notes".parse().unwrap(),
            keys: vec![parse_key(&format!("k1={PK}")).unwrap()],
            channels: vec![ChannelSpec { name: ChannelName::stable(), rank: 100 }],
            metrics: vec![],
        };
        assert_eq!(describe(&a), format!("app:      notes (Notes)\nkeys:     k1 {PK}\nchannels: stable (100)\n"));
    }
}
