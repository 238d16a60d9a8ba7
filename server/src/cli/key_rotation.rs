//! An app's release key documents: `keys list` and `keys rotate` (sign the next document with
//! the current keys and the new ones, locally, and upload it; docs/api.md §8, "Key
//! documents"). Devices walk to it on their next offer and from then on trust only its keys.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use halftone_admin::{AdminClient, ReleaseKey};
use halftone_channels::wire::KeyDocuments;
use halftone_channels::{AppId, KeyDocument, Threshold, TrustedKeys};

use super::keys;
use super::output::{Output, Table};
use super::profile::Profile;

/// `halftone keys ...`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// List an app's signed key documents (version 1 is the app's own keys).
    List {
        /// The app.
        app: AppId,
    },
    /// Replace an app's release keys: sign the next key document with enough current keys
    /// (`--key`) and enough new ones (`--new-key`), and upload it.
    Rotate(RotateArgs),
}

/// `halftone keys rotate`.
#[derive(Debug, Clone, clap::Args)]
pub struct RotateArgs {
    /// The app.
    pub app: AppId,
    /// A current key file (repeat until the current threshold is met).
    #[arg(long = "key", value_name = "FILE", required = true)]
    pub keys: Vec<PathBuf>,
    /// A key file of the new set (repeat; keep a current key by naming it here too).
    #[arg(long = "new-key", value_name = "FILE", required = true)]
    pub new_keys: Vec<PathBuf>,
    /// How many distinct new keys must sign each build and the next rotation.
    #[arg(long, default_value_t = 1)]
    pub threshold: u64,
}

/// Runs `halftone keys ...`.
pub async fn run(cmd: KeysCommand, profile: &Profile, out: &Output) -> anyhow::Result<()> {
    let client = profile.admin()?;
    match cmd {
        KeysCommand::List { app } => {
            let docs = client.key_documents(&app).await?;
            out.emit(&docs, |d| table(d).render())
        }
        KeysCommand::Rotate(args) => rotate(&client, args, out).await,
    }
}

async fn rotate(client: &AdminClient, args: RotateArgs, out: &Output) -> anyhow::Result<()> {
    let load = |paths: &[PathBuf]| paths.iter().map(|p| keys::load(p, None)).collect::<anyhow::Result<Vec<_>>>();
    let (old, new) = (load(&args.keys)?, load(&args.new_keys)?);
    let current = client.key_documents(&args.app).await?.documents.last().map_or(1, |d| d.version);
    let trusted = TrustedKeys::new(new.iter().map(|k| (k.id().clone(), k.public_key())))
        .context("the new keys do not make a key set")?;
    let threshold = Threshold::new(args.threshold)?;
    let next = KeyDocument::new(args.app.clone(), current + 1, threshold, trusted)?;
    // Each key signs once, even when it is both current and new.
    let mut signers: Vec<&ReleaseKey> = Vec::new();
    for k in old.iter().chain(&new) {
        if !signers.iter().any(|s| s.id() == k.id()) {
            signers.push(k);
        }
    }
    if signers.is_empty() {
        bail!("no key to sign with");
    }
    let signed = ReleaseKey::signed_key_document(&next, &signers);
    let written = client.rotate_keys(&args.app, &signed).await?;
    let ids: Vec<String> = next.keys().iter().map(|(id, _)| id.to_string()).collect();
    out.emit(written.value(), |d| {
        format!(
            "{} now trusts key document version {}: {} (threshold {})",
            args.app,
            d.version,
            ids.join(", "),
            d.threshold
        )
    })
}

/// The documents table.
fn table(docs: &KeyDocuments) -> Table {
    let mut t = Table::new(["VERSION", "THRESHOLD", "KEYS", "SIGNED BY"]);
    for d in &docs.documents {
        let keys: Vec<&str> = d.keys.iter().map(|k| k.id.as_str()).collect();
        let signers: Vec<&str> = d.signatures.iter().map(|s| s.key_id.as_str()).collect();
        t.row([d.version.to_string(), d.threshold.to_string(), keys.join(", "), signers.join(", ")]);
    }
    t
}
