//! `halftone serve`: the server itself, configured from flags and environment variables.

use crate::config::{Config, ServeArgs};

/// Builds the configuration, binds, and serves until SIGINT or SIGTERM. `log_filter` is
/// `RUST_LOG`, read by the caller (nothing below `main` reads the environment).
pub async fn run(args: ServeArgs, log_filter: Option<&str>) -> anyhow::Result<()> {
    let config = Config::try_from(args)?;
    crate::telemetry::init(config.log_format, log_filter);
    let server = crate::startup::build(config).await?;
    if let Some(token) = server.bootstrap_token() {
        // Shown once, on the first start of an empty data dir, so the operator can log in.
        eprintln!("bootstrap admin token (shown only now): {token}");
    }
    server.run().await
}
