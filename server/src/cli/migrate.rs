//! `halftone migrate --from DIR --to postgres://…`: moving house from the embedded store to
//! PostgreSQL. The copy is one transaction into an empty database, then read back and compared
//! record for record; nothing in the source changes. With `--artifacts s3://…` the artifact
//! files are copied into the bucket too, each checked against its digest; without, they stay in
//! `DIR/artifacts` (copy that directory along).

use std::path::PathBuf;

use super::output::Output;

/// `halftone migrate`.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// The data dir of a stopped `halftone serve` (the one with `db/` in it).
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// The PostgreSQL database to copy into; it must hold no apps or tokens yet.
    #[arg(long, value_name = "URL")]
    pub to: String,
    /// The object store to copy the artifact files into (the same flags as `halftone serve`).
    #[command(flatten)]
    pub storage: crate::config::ArtifactArgs,
}

/// Runs `halftone migrate`.
pub async fn run(args: MigrateArgs, out: &Output) -> anyhow::Result<()> {
    let to = crate::config::StoreLocation::parse(&args.to)?;
    let crate::config::StoreLocation::Postgres(url) = to else {
        anyhow::bail!("--to must be a postgres:// URL");
    };
    let location = args.storage.location()?;
    // Checked before the database copy, so a wrong bucket fails before anything is written.
    let bucket = match &location {
        crate::artifacts::ArtifactLocation::DataDir => None,
        s3 => {
            let store = crate::artifacts::ArtifactStore::at(s3, &args.from, Default::default())?;
            store.check().await?;
            Some(store)
        }
    };
    // Artifacts first: copying one again is a no-op, while the database copy refuses to run twice.
    let mut artifacts = String::new();
    if let Some(bucket) = bucket {
        let (files, bytes) = bucket.copy_from_dir(&args.from).await?;
        artifacts = format!("; {files} artifacts ({bytes} bytes) into {}", bucket.describe());
    }
    let copied = crate::store::migrate(&args.from, &url).await?;
    let summary = format!("copied and verified: {}{artifacts}", copied.summary());
    out.emit(&serde_json::json!({ "copied": summary }), |_| summary.clone())
}
