//! Building and running the server: [`build`] binds the listener (port 0 works), opens the
//! store, rebuilds the catalog snapshot, and returns a [`Server`] that reports its real address.

use std::net::SocketAddr;

use crate::config::Config;

/// A bound, not yet running server.
pub struct Server {
    addr: SocketAddr,
    bootstrap_token: Option<String>,
}

impl Server {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The admin token created on first start of an empty data dir (shown once), if any.
    pub fn bootstrap_token(&self) -> Option<&str> {
        self.bootstrap_token.as_deref()
    }

    /// Runs until SIGINT/SIGTERM (or the returned handle is stopped); finishes in-flight
    /// requests before returning.
    pub async fn run(self) -> anyhow::Result<()> {
        anyhow::bail!("not implemented yet")
    }
}

/// Opens the data dir and binds the listener.
pub async fn build(config: Config) -> anyhow::Result<Server> {
    let _ = config;
    anyhow::bail!("not implemented yet")
}
