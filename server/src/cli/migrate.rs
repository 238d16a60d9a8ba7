//! `halftone migrate --from DIR --to postgres://…`: moving house from the embedded store to
//! PostgreSQL. The copy is one transaction into an empty database, then read back and compared
//! record for record; nothing in the source changes. Artifact files stay where they are: point
//! `--data-dir` of the new replicas at a copy of `DIR/artifacts`, or put them in object storage.

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
}

/// Runs `halftone migrate`.
pub async fn run(args: MigrateArgs, out: &Output) -> anyhow::Result<()> {
    let to = crate::config::StoreLocation::parse(&args.to)?;
    let crate::config::StoreLocation::Postgres(url) = to else {
        anyhow::bail!("--to must be a postgres:// URL");
    };
    let copied = crate::store::migrate(&args.from, &url).await?;
    let summary = format!("copied and verified: {}", copied.summary());
    out.emit(&serde_json::json!({ "copied": copied.summary() }), |_| summary.clone())
}
