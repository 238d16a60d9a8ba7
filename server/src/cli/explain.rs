//! `halftone explain`: what a described device would be offered, and each release's verdict
//! with its reasons. `--trait name=value` values are typed like JSON ([`parse_trait`]); `--ip`
//! is the address `ip_in` rules see.

use std::collections::BTreeMap;
use std::net::IpAddr;

use anyhow::bail;
use halftone_channels::wire::{CheckRequest, ExplainRequest, ExplainResponse};
use halftone_channels::{
    AppId, Arch, ChannelName, DeviceId, Locale, Os, OsVersion, TraitName, TraitValue, Traits, UserId, Version,
};

use super::output::{Output, bold};
use super::profile::Profile;

/// A `--trait` value: `name=value`, where `true`/`false` are booleans, finite numbers are
/// numbers, `"..."` is a string even when it looks like a number, and anything else is a
/// string.
pub fn parse_trait(s: &str) -> Result<(TraitName, TraitValue), String> {
    let (name, value) = s.split_once('=').ok_or_else(|| format!("expected name=value, like tier=gold, not {s:?}"))?;
    let name = TraitName::parse(name.trim()).map_err(|e| e.to_string())?;
    let value = match value {
        "true" => TraitValue::Bool(true),
        "false" => TraitValue::Bool(false),
        quoted if quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"') => {
            TraitValue::string(&quoted[1..quoted.len() - 1]).map_err(|e| e.to_string())?
        }
        // `inf` and `nan` parse as floats but are words here.
        number if number.parse::<f64>().is_ok_and(f64::is_finite) && !number.trim().is_empty() => {
            TraitValue::number(number.parse().unwrap_or_default()).map_err(|e| e.to_string())?
        }
        text => TraitValue::string(text).map_err(|e| e.to_string())?,
    };
    Ok((name, value))
}

/// `halftone explain`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExplainArgs {
    /// The app.
    pub app: AppId,
    /// The device's id.
    #[arg(long)]
    pub device: DeviceId,
    /// The signed-in user's id.
    #[arg(long)]
    pub user: Option<UserId>,
    /// The version the device runs.
    #[arg(long)]
    pub version: Version,
    /// The channel the device is on.
    #[arg(long)]
    pub channel: ChannelName,
    /// The device's os.
    #[arg(long)]
    pub os: Os,
    /// The device's CPU architecture.
    #[arg(long)]
    pub arch: Arch,
    /// The OS version, e.g. 10.0.19045.
    #[arg(long)]
    pub os_version: Option<OsVersion>,
    /// The locale, e.g. zh-CN.
    #[arg(long)]
    pub locale: Option<Locale>,
    /// An app-reported trait: name=value (repeat).
    #[arg(long = "trait", value_name = "NAME=VALUE", value_parser = parse_trait)]
    pub traits: Vec<(TraitName, TraitValue)>,
    /// As if a person pressed "Check for updates".
    #[arg(long)]
    pub interactive: bool,
    /// The device's IP address as the server would see it, e.g. 10.1.2.3, for `ip_in` rules
    /// (without it, they do not match).
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<IpAddr>,
}

impl ExplainArgs {
    /// The check-in these flags describe, with the device's IP.
    pub fn request(&self) -> anyhow::Result<ExplainRequest> {
        let mut traits = BTreeMap::new();
        for (name, value) in &self.traits {
            if traits.insert(name.clone(), value.clone()).is_some() {
                bail!("--trait {name} is given twice");
            }
        }
        let check = CheckRequest {
            device_id: self.device.clone(),
            user_id: self.user.clone(),
            current_version: self.version.clone(),
            channel: self.channel.clone(),
            os: self.os.clone(),
            arch: self.arch.clone(),
            os_version: self.os_version.clone(),
            locale: self.locale.clone(),
            traits: Traits::new(traits)?,
            interactive: self.interactive,
            nonce: None,
            answer_key: None,
            current_sha256: None,
        };
        Ok(ExplainRequest { check, ip: self.ip })
    }
}

/// Runs `halftone explain`.
pub async fn run(args: ExplainArgs, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let request = args.request()?;
    let answer = profile.admin()?.explain(&args.app, &request).await?;
    let styled = out.styled();
    out.emit(&answer, |a| render(&request, a, styled))
}

/// The explanation for people: the device (and its IP, if given), the decision, then every
/// release, newest first, the offered one marked with `=>` (and bold on a terminal), each with
/// its reasons.
pub fn render(request: &ExplainRequest, answer: &ExplainResponse, styled: bool) -> String {
    let check = &request.check;
    let mut s = format!(
        "device {} on {}, {}/{}, running {}",
        check.device_id, check.channel, check.os, check.arch, check.current_version
    );
    if let Some(ip) = request.ip {
        s.push_str(&format!(", from {ip}"));
    }
    s.push('\n');
    if let Some(identity) = &answer.identity {
        s.push_str(&format!("identity: {identity}\n"));
    }
    if let Some(served) = &answer.served_channel {
        s.push_str(&format!("the app has no channel {}: served as on {served}\n", check.channel));
    }
    match &answer.offered {
        Some(v) => {
            let critical = if answer.critical { " (critical)" } else { "" };
            s.push_str(&bold(&format!("offered: {v}{critical}"), styled));
        }
        None => s.push_str("offered: nothing (up to date)"),
    }
    s.push('\n');
    for r in &answer.releases {
        let head = if r.offered {
            bold(&format!("=> {:<12} offered", r.version.to_string()), styled)
        } else {
            format!("   {:<12} skipped", r.version.to_string())
        };
        s.push_str(&head);
        s.push('\n');
        for reason in &r.reasons {
            s.push_str(&format!("     {}: {}\n", reason.code, reason.detail));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn trait_values_are_typed() {
        let check = |s: &str, name: &str, value: TraitValue| {
            let (n, v) = parse_trait(s).unwrap();
            assert_eq!((n.as_str(), v), (name, value), "{s}");
        };
        check("tier=gold", "tier", TraitValue::Str("gold".into()));
        check("ram_gb=8", "ram_gb", TraitValue::Num(8.0));
        check("ratio=0.5", "ratio", TraitValue::Num(0.5));
        check("beta=true", "beta", TraitValue::Bool(true));
        check("zip=\"02134\"", "zip", TraitValue::Str("02134".into()));
        check("odd=inf", "odd", TraitValue::Str("inf".into()));
        check("eq=a=b", "eq", TraitValue::Str("a=b".into()));
        check("empty=", "empty", TraitValue::Str("".into()));
        assert!(parse_trait("tier").unwrap_err().contains("name=value"));
        assert!(parse_trait("Tier=x").is_err());
    }

    #[derive(Debug, Parser)]
    struct E {
        #[command(flatten)]
        args: ExplainArgs,
    }

    #[test]
    fn flags_describe_a_check_in() {
        let base = ["x", "notes", "--device", "d1", "--version", "1.0.0", "--channel", "beta"];
        let parse = |extra: &[&str]| E::try_parse_from(base.iter().chain(extra)).unwrap().args.request();
        let r = parse(&["--os", "windows", "--arch", "x86_64", "--locale", "zh_CN", "--trait", "tier=gold"]).unwrap();
        assert_eq!(r.check.locale.unwrap().as_str(), "zh-cn");
        assert_eq!(r.check.traits.get("tier"), Some(&TraitValue::Str("gold".into())));
        assert_eq!(r.ip, None);
        let e = parse(&["--os", "linux", "--arch", "x86_64", "--trait", "a=1", "--trait", "a=2"]).unwrap_err();
        assert!(e.to_string().contains("given twice"), "{e}");
    }

    #[test]
    fn ip_is_an_address() {
        let base = ["x", "notes", "--device", "d1", "--version", "1.0.0", "--channel", "beta", "--os", "linux"];
        let parse = |ip: &str| E::try_parse_from(base.iter().chain(&["--arch", "x86_64", "--ip", ip]));
        for ip in ["10.1.2.3", "2001:db8::1", "::ffff:10.1.2.3"] {
            let r = parse(ip).unwrap().args.request().unwrap();
            assert_eq!(r.ip, Some(ip.parse().unwrap()), "{ip}");
        }
        // The JSON body carries it beside the check-in's fields, as the API documents.
        let body = serde_json::to_value(parse("10.1.2.3").unwrap().args.request().unwrap()).unwrap();
        assert_eq!((body["ip"].as_str(), body["device_id"].as_str()), (Some("10.1.2.3"), Some("d1")));
        for bad in ["10.1.2", "10.1.2.0/24", "localhost"] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation, "{bad}");
            let first = e.to_string().lines().next().unwrap().to_owned();
            assert_eq!(first, format!("error: invalid value '{bad}' for '--ip <ADDR>': invalid IP address syntax"));
        }
    }

    #[test]
    fn the_offered_release_stands_out() {
        let request = E::try_parse_from([
            "x",
            "notes",
            "--device",
            "d1",
            "--version",
            "1.0.0",
            "--channel",
            "stable",
            "--os",
            "linux",
            "--arch",
            "x86_64",
        ])
        .unwrap()
        .args
        .request()
        .unwrap();
        let answer: ExplainResponse = serde_json::from_str(
            r#"{"offered":"1.1.0","critical":false,"releases":[
                {"version":"1.2.0","offered":false,"reasons":[{"code":"outside_rollout","detail":"bucket 7012 is not below 10%"}]},
                {"version":"1.1.0","offered":true,"reasons":[{"code":"in_rollout","detail":"bucket 12 is below 100%"}]}]}"#,
        )
        .unwrap();
        assert_eq!(
            render(&request, &answer, false),
            "device d1 on stable, linux/x86_64, running 1.0.0\n\
             offered: 1.1.0\n   \
             1.2.0        skipped\n     \
             outside_rollout: bucket 7012 is not below 10%\n\
             => 1.1.0        offered\n     \
             in_rollout: bucket 12 is below 100%\n"
        );
        assert!(render(&request, &answer, true).contains("\x1b[1m=> 1.1.0"));
        let from = ExplainRequest { ip: Some("10.1.2.3".parse().unwrap()), ..request };
        assert!(
            render(&from, &answer, false)
                .starts_with("device d1 on stable, linux/x86_64, running 1.0.0, from 10.1.2.3\n")
        );
        // A device on a removed channel: the fallback is said before the decision.
        let mut canary = from.clone();
        canary.check.channel = "canary".parse().unwrap();
        let fell_back = ExplainResponse { served_channel: Some("stable".parse().unwrap()), ..answer };
        let text = render(&canary, &fell_back, false);
        assert!(
            text.contains("from 10.1.2.3\nthe app has no channel canary: served as on stable\noffered: 1.1.0\n"),
            "{text}"
        );
    }
}
