//! # halftone-server
//!
//! The Halftone update server and the `halftone` command line.
//!
//! - [`startup`]: `build(config)` → a bound [`Server`]; [`config`]: the one typed [`Config`].
//! - `state`, `snapshot`: the shared state and the immutable catalog snapshot every check-in
//!   reads (lock-free, no disk); `changes`: every admin change, serialised, committed, flushed,
//!   then published as a new snapshot; `store`: sled; `artifacts`: content-addressed files.
//! - `http`: the thin HTTP layer; `problem`: the one error type and its RFC 9457 bodies;
//!   `auth`: tokens and roles; `metrics`, `telemetry`: operations.
//! - [`cli`]: `halftone serve` and the release engineer's subcommands.

pub mod artifacts;
pub mod auth;
pub mod changes;
pub mod cli;
pub mod clock;
pub mod config;
pub mod feedback;
pub mod http;
pub mod metrics;
pub mod problem;
pub mod scheduler;
pub mod snapshot;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod views;
mod writer;

pub use config::{Config, LogFormat, ServeArgs};
pub use startup::{Server, build, build_with};
