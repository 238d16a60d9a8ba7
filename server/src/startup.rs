//! Building and running the server: [`build`] opens the data dir, rebuilds the catalog
//! snapshot, creates the first admin token of a fresh data dir, and binds the listener
//! (port 0 works); the returned [`Server`] reports its real address and runs until stopped.

use std::net::SocketAddr;
use std::sync::Arc;

use actix_web::{App, HttpServer, middleware, web};
use anyhow::Context as _;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::http::connections::ConnectionCap;
use crate::http::gate::Gate;
use crate::metrics::Metrics;
use crate::state::State;

/// A bound server, ready to run.
pub struct Server {
    addr: SocketAddr,
    bootstrap_token: Option<String>,
    server: actix_web::dev::Server,
    state: Arc<State>,
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

    /// The shared state (tests drive the scheduler with [`State::tick`] and read figures).
    pub fn state(&self) -> Arc<State> {
        self.state.clone()
    }

    /// A handle that stops the server (gracefully: in-flight requests finish).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    /// Runs until SIGINT/SIGTERM or [`handle`](Self::handle)`.stop(true)`; in-flight requests
    /// finish first.
    pub async fn run(self) -> anyhow::Result<()> {
        self.server.await.context("running the HTTP server")?;
        // Samples received before the stop are stored (reports were stored before their 2xx),
        // and the aggregator lets go of the database.
        if let Err(e) = self.state.feedback.close().await {
            tracing::error!(error = %e, "final feedback flush failed");
        }
        // Workers drop their handles on the state as they wind down; wait for them (bounded)
        // so that when `run` returns the database is closed and the data dir can be reopened.
        for _ in 0..500 {
            if Arc::strong_count(&self.state) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

/// Every minute, forgets the addresses whose rate limits are full again, until the server
/// (the last holder of the gate) is gone.
async fn forget_idle_addresses(gate: std::sync::Weak<Gate>) {
    let mut every = tokio::time::interval(std::time::Duration::from_secs(60));
    every.tick().await;
    loop {
        every.tick().await;
        let Some(gate) = gate.upgrade() else { return };
        gate.shedding().forget_idle();
    }
}

/// Opens the data dir and binds the listener, on the system clock.
pub async fn build(config: Config) -> anyhow::Result<Server> {
    build_with(config, Arc::new(SystemClock)).await
}

/// [`build`] with a given clock (tests run a week of schedule in milliseconds).
pub async fn build_with(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<Server> {
    let bind = config.bind;
    let workers = config.workers;
    let scheduler_every = config.scheduler_every;
    let state = web::Data::new(State::open(config, clock).await?);
    // A bucket that cannot be reached at start is most often a mistake in its settings: say
    // so now rather than fail every upload. (Later outages show in /readyz and as 503s.)
    state.artifacts.check().await.context("checking the artifact store")?;
    tracing::info!(artifacts = %state.artifacts.describe(), "artifact store ready");
    // Bind before making the one-time bootstrap token: a start that fails (the port is taken)
    // must not use it up.
    let listener = std::net::TcpListener::bind(bind).with_context(|| format!("binding {bind}"))?;
    let addr = listener.local_addr()?;
    let bootstrap_token = state.bootstrap_token().await?;
    let shared = state.clone().into_inner();
    if let Some(every) = scheduler_every {
        let lease = crate::replica::Lease::new(&shared.config);
        tokio::spawn(crate::scheduler::run(Arc::downgrade(&shared), every, lease));
    }
    if shared.store.is_shared() {
        shared.freshness.synced(shared.clock.now_ms());
        tokio::spawn(crate::replica::follow(Arc::downgrade(&shared), shared.config.clone()));
    }
    let metrics = web::Data::new(Metrics::global());
    let limits = shared.config.limits;
    let gate = Gate::new(&shared.config);
    tokio::spawn(forget_idle_addresses(Arc::downgrade(&gate)));
    let app_gate = gate.clone();
    let mut server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(metrics.clone())
            .wrap(middleware::from_fn(crate::telemetry::request_span))
            .configure(|cfg| crate::http::configure(cfg, &app_gate))
    })
    .workers(workers)
    // actix counts connections per worker: the total is shared out.
    .max_connections(limits.max_connections.div_ceil(workers).max(1))
    .keep_alive(limits.keep_alive)
    .client_request_timeout(limits.head_timeout)
    .client_disconnect_timeout(std::time::Duration::from_secs(1))
    .shutdown_timeout(30);
    if let Some(cap) = limits.max_connections_per_address {
        let cap = ConnectionCap::new(cap, shared.config.trusted_proxies.clone());
        server = server.on_connect(move |io, data| cap.on_connect(io, data));
    }
    let server = server.listen(listener)?.run();
    tracing::info!(%addr, dashboard = %format!("http://{addr}/ui/"), "halftone listening");
    Ok(Server { addr, bootstrap_token, server, state: shared })
}
