//! CodePush deployment keys: `codepush-key create|list|revoke`. A key routes the React Native
//! apps that compile it in (`CodePushDeploymentKey`) to one channel and target of an app;
//! docs/clients.md, "CodePush", says how to configure the app.

use halftone_channels::wire::{CodePushKeyList, CodePushKeyRequest, CodePushKeyView};
use halftone_channels::{AppId, Arch, ChannelName, DeploymentKey, Os, TokenName};

use super::confirm::{YesArg, confirm};
use super::output::{Output, Table};
use super::profile::Profile;

/// `halftone codepush-key ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum CodePushKeyCommand {
    /// Make a deployment key for one channel and target of an app, and print it.
    Create {
        /// The app.
        app: AppId,
        /// A label for people (`android-beta`).
        #[arg(long)]
        name: TokenName,
        /// The channel its devices follow.
        #[arg(long, default_value = "stable")]
        channel: ChannelName,
        /// The os its devices are served as (`ios`, `android`): publish the bundle for it.
        #[arg(long)]
        os: Os,
        /// The arch they are served as.
        #[arg(long, default_value = "universal")]
        arch: Arch,
        /// Keep a key the app already ships with instead of making one.
        #[arg(long, value_name = "KEY")]
        key: Option<DeploymentKey>,
    },
    /// List an app's deployment keys.
    List {
        /// The app.
        app: AppId,
    },
    /// Revoke a deployment key at once: apps with it are refused (404) from now on.
    Revoke {
        /// The app.
        app: AppId,
        /// The key's name, as `codepush-key list` shows it.
        name: String,
        /// Revoking asks first; this answers yes.
        #[command(flatten)]
        yes: YesArg,
    },
}

/// Runs `halftone codepush-key ...`.
pub async fn run(cmd: CodePushKeyCommand, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    match cmd {
        CodePushKeyCommand::Create { app, name, channel, os, arch, key } => {
            let written =
                client.create_codepush_key(&app, &CodePushKeyRequest { name, channel, os, arch, key }).await?;
            let verb = if written.is_created() { "created" } else { "already had" };
            out.emit(written.value(), |k| format!("{verb} deployment key {} of {app}: {}", k.name, line(k)))
        }
        CodePushKeyCommand::List { app } => {
            let list = client.list_codepush_keys(&app).await?;
            out.emit(&list, |l| table(l).render())
        }
        CodePushKeyCommand::Revoke { app, name, yes } => {
            confirm(
                yes,
                &format!("revoking deployment key {name} of {app}"),
                &format!("Revoke deployment key {name} of {app}? Apps that carry it get no updates from then on."),
            )?;
            client.revoke_codepush_key(&app, &name).await?;
            out.line(&format!("revoked deployment key {name} of {app}"))
        }
    }
}

/// `KEY (channel beta, android/universal)`.
fn line(k: &CodePushKeyView) -> String {
    format!("{} (channel {}, {}/{})", k.key, k.channel, k.os, k.arch)
}

/// The keys table.
pub fn table(list: &CodePushKeyList) -> Table {
    let mut t = Table::new(["NAME", "CHANNEL", "TARGET", "KEY"]);
    for k in &list.keys {
        t.row([k.name.to_string(), k.channel.to_string(), format!("{}/{}", k.os, k.arch), k.key.to_string()]);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_read_as_a_table() {
        let list: CodePushKeyList = serde_json::from_str(
            r#"{"keys":[{"key":"AbCdEfGh12345678","name":"android-beta","channel":"beta","os":"android","arch":"universal"}]}"#,
        )
        .unwrap();
        assert_eq!(
            table(&list).render(),
            "NAME          CHANNEL  TARGET             KEY\nandroid-beta  beta     android/universal  AbCdEfGh12345678\n"
        );
        assert_eq!(line(&list.keys[0]), "AbCdEfGh12345678 (channel beta, android/universal)");
    }
}
