//! New releases: `publish` (sign, upload, create the release with its first rollout) and
//! `rollback` (sign and upload a rebuild of good code, then halt the bad release and publish
//! the rebuild in one server call).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use halftone_admin::{AdminClient, ReleaseKey};
use halftone_channels::wire::AppView;
use halftone_channels::wire::{PublishRequest, ReleaseSpec, RollbackRequest};
use halftone_channels::{AppId, ChannelName, KeyId, Release, Version};

use super::artifact::{self, ArtifactArg};
use super::confirm::{YesArg, confirm};
use super::failure::{Kind, Refused};
use super::keys;
use super::output::Output;
use super::patches::{self, PatchArgs};
use super::profile::Profile;
use super::rollout::{RolloutArgs, rollouts};

/// The signing key flags.
#[derive(Debug, Clone, clap::Args)]
pub struct KeyArgs {
    /// The private key file written by `halftone keygen`; repeat to sign with several keys
    /// (apps whose keys need k of n signatures).
    #[arg(long, visible_alias = "key", value_name = "FILE", required = true)]
    pub key_file: Vec<PathBuf>,
    /// The id the app registered the key under [default: the key's fingerprint]; only with
    /// one key file.
    #[arg(long, value_name = "ID")]
    pub key_id: Option<KeyId>,
}

impl KeyArgs {
    /// Reads the key files.
    pub fn load(&self) -> anyhow::Result<Vec<ReleaseKey>> {
        if self.key_id.is_some() && self.key_file.len() > 1 {
            bail!("--key-id names one key: give it with a single --key-file");
        }
        self.key_file.iter().map(|path| keys::load(path, self.key_id.clone())).collect()
    }
}

/// The release notes flags.
#[derive(Debug, Clone, clap::Args)]
pub struct NotesArgs {
    /// Release notes.
    #[arg(long, conflicts_with = "notes_file")]
    pub notes: Option<String>,
    /// Read the release notes from a file.
    #[arg(long, value_name = "FILE")]
    pub notes_file: Option<PathBuf>,
}

impl NotesArgs {
    /// The notes text, or `None` when neither flag was given.
    pub fn read(&self) -> anyhow::Result<Option<String>> {
        match (&self.notes, &self.notes_file) {
            (Some(text), _) => Ok(Some(text.clone())),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(Some)
                .with_context(|| format!("could not read the notes file {}", path.display())),
            (None, None) => Ok(None),
        }
    }
}

/// Refuses, before anything is uploaded, a key the app would refuse: one whose id the app's
/// newest key document does not list, or lists with another public key.
pub async fn check_keys(client: &AdminClient, app: &AppId, keys: &[ReleaseKey]) -> anyhow::Result<()> {
    let mut view = client.get_app(app).await?;
    let Some(newest) = client.key_documents(app).await?.documents.pop() else {
        return keys.iter().try_for_each(|key| key_is_trusted(&view, key));
    };
    view.keys = newest.keys;
    for key in keys {
        if !view.keys.iter().any(|k| &k.id == key.id() && k.public_key == key.public_key()) {
            let ids: Vec<&str> = view.keys.iter().map(|k| k.id.as_str()).collect();
            bail!(
                "app {app} does not trust key {} since its key document version {} (it trusts: {}); rotate keys \
                 in with `halftone keys rotate`",
                key.id(),
                newest.version,
                ids.join(", ")
            );
        }
    }
    Ok(())
}

/// Refuses a channel the app does not have before anything is uploaded (a typo would otherwise
/// be found only after the upload).
async fn check_channel(client: &AdminClient, app: &AppId, channel: &ChannelName) -> anyhow::Result<()> {
    let view = client.get_app(app).await?;
    if !view.channels.iter().any(|c| &c.name == channel) {
        let names: Vec<&str> = view.channels.iter().map(|c| c.name.as_str()).collect();
        bail!("app {app} has no channel {channel} (it has: {}); nothing was uploaded", names.join(", "));
    }
    Ok(())
}

/// Checks, before anything is uploaded, a version that already exists: with other content (or,
/// for a publish, on another channel) it is refused as the server would refuse it after the
/// upload; identical on the channel, it is an idempotent re-publish and `true` (its files are
/// stored already, so nothing is uploaded).
async fn already_published(
    client: &AdminClient,
    app: &AppId,
    release: &ReleaseSpec,
    channel: Option<&ChannelName>,
) -> anyhow::Result<bool> {
    let existing = match client.get_release(app, &release.version).await {
        Ok(existing) => existing,
        Err(e) if e.status() == Some(404) => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    let conflict = |message: String| Err(Refused { kind: Kind::Conflict, message }.into());
    let same = match (Release::try_from(existing.release.clone()), Release::try_from(release.clone())) {
        (Ok(stored), Ok(ours)) => stored == ours,
        _ => false,
    };
    if !same {
        let stored: Vec<String> =
            existing.release.artifacts.iter().map(|a| format!("{}/{} {}", a.os, a.arch, a.sha256)).collect();
        return conflict(format!(
            "{app} {} already exists with other content ({}); versions are immutable: publish a higher version. \
             Nothing was uploaded",
            release.version,
            stored.join(", ")
        ));
    }
    if let Some(channel) = channel.filter(|c| !existing.rollouts.iter().any(|r| &r.channel == *c)) {
        return conflict(format!(
            "{app} {} already exists and is not on {channel}; promote it instead (`halftone promote`). Nothing was \
             uploaded",
            release.version
        ));
    }
    Ok(true)
}

fn key_is_trusted(app: &AppView, key: &ReleaseKey) -> anyhow::Result<()> {
    match app.keys.iter().find(|k| &k.id == key.id()) {
        Some(k) if k.public_key == key.public_key() => Ok(()),
        Some(_) => bail!(
            "app {} trusts a different public key under the id {}; check --key-file and --key-id",
            app.id,
            key.id()
        ),
        None => {
            let ids: Vec<&str> = app.keys.iter().map(|k| k.id.as_str()).collect();
            bail!(
                "app {} does not trust key {} (it trusts: {}); add it with `halftone app update {} --key {}={}`, \
                 or pass --key-id if the app lists it under another id",
                app.id,
                key.id(),
                if ids.is_empty() { "no keys yet".to_owned() } else { ids.join(", ") },
                app.id,
                key.id(),
                key.public_key()
            )
        }
    }
}

/// `halftone publish`.
#[derive(Debug, Clone, clap::Args)]
pub struct PublishArgs {
    /// The app.
    pub app: AppId,
    /// The new version.
    pub version: Version,
    /// The channel of the first rollout.
    #[arg(long)]
    pub channel: ChannelName,
    /// The first rollout.
    #[command(flatten)]
    pub rollout: RolloutArgs,
    /// The signing key.
    #[command(flatten)]
    pub key: KeyArgs,
    /// A build: os/arch=path (repeat, one per platform).
    #[arg(long = "artifact", value_name = "OS/ARCH=PATH", required = true)]
    pub artifacts: Vec<ArtifactArg>,
    /// Release notes.
    #[command(flatten)]
    pub notes: NotesArgs,
    /// Devices must take this update.
    #[arg(long)]
    pub critical: bool,
    /// Devices older than this must first update to an older release.
    #[arg(long, value_name = "VERSION")]
    pub min_from: Option<Version>,
    /// Delta patches from earlier builds.
    #[command(flatten)]
    pub patches: PatchArgs,
}

/// Runs `halftone publish`.
pub async fn publish(args: PublishArgs, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    let keys = args.key.load()?;
    let notes = args.notes.read()?.unwrap_or_default();
    check_keys(&client, &args.app, &keys).await?;
    check_channel(&client, &args.app, &args.channel).await?;
    let mut signed = artifact::sign(&args.app, &args.version, &keys, &args.artifacts).await?;
    let patches = patches::attach(&client, &args.app, &args.version, &keys, &mut signed, &args.patches).await?;
    let release = ReleaseSpec {
        version: args.version.clone(),
        notes,
        critical: args.critical,
        min_from_version: args.min_from.clone(),
        rebuild_of: None,
        artifacts: artifact::specs(&signed),
    };
    if !already_published(&client, &args.app, &release, Some(&args.channel)).await? {
        for note in &patches.notes {
            out.note(note);
        }
        artifact::upload(&client, &signed, out).await?;
        for file in &patches.files {
            client.upload_artifact(file, |_| {}).await.with_context(|| format!("uploading patch {}", file.sha256()))?;
        }
    }
    let request = PublishRequest { release, channel: args.channel.clone(), rollout: args.rollout.spec() };
    let written = client.publish(&args.app, &request).await?;
    let created = written.is_created();
    out.emit(written.value(), |r| {
        if created {
            format!(
                "published {} {} on {} at {} ({} signed by {})",
                args.app,
                args.version,
                args.channel,
                args.rollout.percent(),
                match r.release.artifacts.len() {
                    1 => "1 artifact".to_owned(),
                    n => format!("{n} artifacts"),
                },
                keys.iter().map(|k| k.id().as_str()).collect::<Vec<_>>().join(", ")
            )
        } else {
            format!("{} {} was already published with identical content; now {}", args.app, args.version, rollouts(r))
        }
    })
}

/// `halftone rollback`.
#[derive(Debug, Clone, clap::Args)]
pub struct RollbackArgs {
    /// The app.
    pub app: AppId,
    /// The bad release, halted everywhere.
    #[arg(long)]
    pub bad: Version,
    /// The rebuild's version, higher than every version of the app.
    #[arg(long = "version", value_name = "VERSION")]
    pub new_version: Version,
    /// The good version whose code the rebuild re-issues.
    #[arg(long, value_name = "VERSION")]
    pub rebuild_of: Version,
    /// The signing key.
    #[command(flatten)]
    pub key: KeyArgs,
    /// A rebuilt file: os/arch=path (repeat, one per platform).
    #[arg(long = "artifact", value_name = "OS/ARCH=PATH", required = true)]
    pub artifacts: Vec<ArtifactArg>,
    /// Release notes [default: says what is rolled back to what].
    #[command(flatten)]
    pub notes: NotesArgs,
    /// Accept a rebuild without a build for some platform of the bad release (its devices keep
    /// the bad build). Without it, such a rollback is refused before anything is uploaded.
    #[arg(long)]
    pub leave_uncovered: bool,
    /// A rollback asks first; this answers yes.
    #[command(flatten)]
    pub yes: YesArg,
    /// Sign and upload the rebuild, then write its signed release (JSON) to FILE instead of
    /// rolling back: for the dashboard's rollback form, which previews and confirms it. Nothing
    /// is halted.
    #[arg(long, value_name = "FILE")]
    pub write_release: Option<PathBuf>,
}

/// Runs `halftone rollback`.
pub async fn rollback(args: RollbackArgs, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    let keys = args.key.load()?;
    let notes =
        args.notes.read()?.unwrap_or_else(|| format!("Rolls back {} to the code of {}.", args.bad, args.rebuild_of));
    // Checked before any upload: a rebuild must reach every platform the bad release reached.
    let bad = client.get_release(&args.app, &args.bad).await?;
    let covered: Vec<String> = args.artifacts.iter().map(|a| a.target.to_string()).collect();
    let uncovered: Vec<String> =
        bad.release.artifacts.iter().map(|a| format!("{}/{}", a.os, a.arch)).filter(|t| !covered.contains(t)).collect();
    if !uncovered.is_empty() && !args.leave_uncovered {
        anyhow::bail!(
            "{} {} has builds for {} that this rollback does not rebuild: devices there would stay on the bad \
             build. Add --artifact for each, or pass --leave-uncovered to accept that",
            args.app,
            args.bad,
            uncovered.join(", ")
        );
    }
    let targets: Vec<String> = args.artifacts.iter().map(|a| a.target.to_string()).collect();
    // Writing the signed rebuild for the dashboard changes nothing on the server but storing
    // the files: nothing to confirm here (the dashboard asks).
    if args.write_release.is_none() {
        confirm(
            args.yes,
            &format!("rolling back {} {}", args.app, args.bad),
            &format!(
                "Halt {app} {bad} on every channel (now {now}) and publish {new}, a critical rebuild of {good} for {targets}, \
             offered at once to every device running {bad} (and rolled out where {bad} was)?",
                app = args.app,
                bad = args.bad,
                now = rollouts(&bad),
                new = args.new_version,
                good = args.rebuild_of,
                targets = targets.join(", "),
            ),
        )?;
    }
    let signed = artifact::sign(&args.app, &args.new_version, &keys, &args.artifacts).await?;
    if client.get_release(&args.app, &args.new_version).await.is_ok() {
        return Err(Refused {
            kind: Kind::Conflict,
            message: format!(
                "{} {} already exists: a rollback publishes a new version, higher than every version of the app; \
                 nothing was uploaded",
                args.app, args.new_version
            ),
        }
        .into());
    }
    artifact::upload(&client, &signed, out).await?;
    let artifacts = artifact::specs(&signed);
    let release = ReleaseSpec {
        version: args.new_version.clone(),
        notes,
        // The server makes every rollback critical.
        critical: true,
        min_from_version: None,
        rebuild_of: Some(args.rebuild_of.clone()),
        artifacts,
    };
    if let Some(path) = &args.write_release {
        let json = serde_json::to_string_pretty(&release)?;
        std::fs::write(path, json + "\n").with_context(|| format!("could not write {}", path.display()))?;
        return out.emit(&release, |_| {
            format!(
                "signed and uploaded {} {} (rebuild of {}); its release is in {}: paste it in the dashboard's \
                 rollback form. Nothing was rolled back yet",
                args.app,
                args.new_version,
                args.rebuild_of,
                path.display()
            )
        });
    }
    let request = RollbackRequest { bad_version: args.bad.clone(), release, leave_uncovered: args.leave_uncovered };
    let rebuild = client.rollback(&args.app, &request).await?;
    out.emit(&rebuild, |r| {
        format!(
            "halted {} {} everywhere and published {} (rebuild of {}); now {}",
            args.app,
            args.bad,
            args.new_version,
            args.rebuild_of,
            rollouts(r)
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct P {
        #[command(flatten)]
        args: PublishArgs,
    }

    #[test]
    fn keys_are_checked_against_the_app_before_uploading() {
        let key = ReleaseKey::generate();
        let other = ReleaseKey::generate();
        let app = |keys| AppView {
            id: AppId::parse("notes").unwrap(),
            display_name: "Notes".parse().unwrap(),
            keys,
            channels: vec![],
            metrics: vec![],
        };
        assert!(key_is_trusted(&app(vec![other.spec(), key.spec()]), &key).is_ok());
        let e = key_is_trusted(&app(vec![other.spec()]), &key).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("app notes does not trust key {} (it trusts: {})", key.id(), other.id())),
            "{e}"
        );
        let impostor = halftone_channels::wire::KeySpec { id: key.id().clone(), public_key: other.public_key() };
        let e = key_is_trusted(&app(vec![impostor]), &key).unwrap_err().to_string();
        assert!(e.contains("trusts a different public key"), "{e}");
    }

    #[test]
    fn publish_flags_parse() {
        let p = P::try_parse_from([
            "x",
            "notes",
            "1.2.0",
            "--channel",
            "beta",
            "--percent",
            "10%",
            "--key-file",
            "k.key",
            "--artifact",
            "windows/x86_64=a.exe",
            "--artifact",
            "macos/aarch64=a.dmg",
            "--rule",
            r#"{"kind":"locale_in","values":["zh"]}"#,
            "--allow",
            "device-1",
            "--critical",
            "--min-from",
            "1.0.0",
        ])
        .unwrap()
        .args;
        assert_eq!(p.artifacts.len(), 2);
        assert_eq!(p.rollout.spec().basis_points.basis_points(), 1000);
        assert_eq!(p.rollout.spec().rules.len(), 1);
        assert!(p.critical);
        assert_eq!(p.min_from, Some(Version::parse("1.0.0").unwrap()));
        // Both notes flags at once, and a missing artifact, are usage errors.
        let base = ["x", "notes", "1.2.0", "--channel", "beta", "--percent", "1%", "--key-file", "k"];
        let with = |extra: &[&str]| P::try_parse_from(base.iter().chain(extra.iter())).map(|_| ());
        assert!(with(&["--artifact", "linux/x86_64=a", "--notes", "n", "--notes-file", "f"]).is_err());
        assert!(with(&[]).is_err());
        assert!(with(&["--artifact", "linux/x86_64=a", "--notes", "n"]).is_ok());
    }
}
