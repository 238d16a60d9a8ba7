//! `halftone releases <app>`: every release, newest first, one row per rollout.

use halftone_channels::AppId;
use halftone_channels::wire::ReleaseList;

use super::output::{Output, Table};
use super::profile::Profile;

/// `halftone releases`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReleasesArgs {
    /// The app.
    pub app: AppId,
}

/// Runs `halftone releases`.
pub async fn run(args: ReleasesArgs, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let list = profile.admin()?.list_releases(&args.app).await?;
    out.emit(&list, |l| {
        if l.releases.is_empty() {
            format!("{} has no releases yet; publish one with `halftone publish`", args.app)
        } else {
            table(l).render()
        }
    })
}

/// The releases table: version, channel, percent, state, offers, and what is special about
/// the release. A release's first row names it; its other rollouts follow on rows of their own.
pub fn table(list: &ReleaseList) -> Table {
    let mut t = Table::new(["VERSION", "CHANNEL", "PERCENT", "STATE", "OFFERS", "NOTES"]);
    for r in &list.releases {
        let mut flags = Vec::new();
        if r.release.critical {
            flags.push("critical".to_owned());
        }
        if let Some(good) = &r.release.rebuild_of {
            flags.push(format!("rebuild of {good}"));
        }
        if let Some(min) = &r.release.min_from_version {
            flags.push(format!("from {min} up"));
        }
        let version = r.release.version.to_string();
        let (offers, flags) = (r.offers.to_string(), flags.join(", "));
        if r.rollouts.is_empty() {
            t.row([version.as_str(), "-", "-", "-", &offers, &flags]);
        }
        for (i, ro) in r.rollouts.iter().enumerate() {
            let first = i == 0;
            t.row([
                if first { version.clone() } else { String::new() },
                ro.channel.to_string(),
                ro.rollout.basis_points.to_string(),
                ro.rollout.state.to_string(),
                if first { offers.clone() } else { String::new() },
                if first { flags.clone() } else { String::new() },
            ]);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use halftone_channels::wire::ReleaseView;

    fn release(json: &str) -> ReleaseView {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn one_row_per_rollout() {
        let list = ReleaseList {
            releases: vec![
                release(
                    r#"{"version":"1.1.1","notes":"","critical":true,"rebuild_of":"1.0.0","artifacts":[],"offers":12,
                        "rollouts":[{"channel":"stable","etag":"\"a\"","basis_points":10000,"state":"active"}]}"#,
                ),
                release(
                    r#"{"version":"1.1.0","artifacts":[],"offers":431,"rollouts":[
                        {"channel":"beta","etag":"\"b\"","basis_points":5000,"state":"halted"},
                        {"channel":"stable","etag":"\"c\"","basis_points":500,"state":"halted"}]}"#,
                ),
            ],
        };
        assert_eq!(
            table(&list).render(),
            "VERSION  CHANNEL  PERCENT  STATE   OFFERS  NOTES\n\
             1.1.1    stable   100%     active  12      critical, rebuild of 1.0.0\n\
             1.1.0    beta     50%      halted  431\n         \
             stable   5%       halted\n"
        );
    }
}
