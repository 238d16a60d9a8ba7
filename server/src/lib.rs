//! # halftone-server
//!
//! The Halftone update server and the `halftone` command line.
//!
//! Its API is small: [`build`]`(config)` → a bound [`Server`], the one typed [`Config`], the
//! [`state::State`] whose scheduler tests [`tick`](state::State::tick), the injectable
//! [`clock`], and [`cli::main`]. Inside:
//! - `state`, `snapshot`: the shared state and the immutable catalog snapshot every check-in
//!   reads (lock-free, no disk); `writer`: the one way to commit a change and publish the next
//!   snapshot; `changes`: every admin change, one module per thing changed; `views`: the
//!   read side; `store`: sled; `artifacts`: content-addressed files, in the data dir or an S3 bucket.
//! - `http`: the thin HTTP layer; `problem`: the one error type, its RFC 9457 bodies and the
//!   400-versus-422 policy; `auth`: tokens and roles; `metrics`, `telemetry`: operations.
//! - [`cli`]: `halftone serve` and the release engineer's subcommands.

// The library's API is what the binary and the tests start it with: `build` and `Config`, the
// `State` whose scheduler tests tick, the clock they inject, and the CLI's entry point. Every
// other module is the server's own.
mod artifacts;
mod auth;
pub mod background;
mod changes;
pub mod cli;
mod client_signatures;
pub mod clock;
mod config;
mod feedback;
mod first_runs_seen;
mod http;
mod metrics;
mod network_cap;
mod problem;
mod replica;
pub mod report_key;
mod reports_seen;
mod scheduler;
mod signer;
mod snapshot;
mod startup;
pub mod state;
mod store;
mod telemetry;
pub mod trend;
mod views;
mod writer;

pub use artifacts::{ArtifactLocation, CdnBase, DownloadMode, S3Credentials, S3Location, Secret};
pub use config::{Config, LimitArgs, Limits, LogFormat, ServeArgs, StoreLocation};
pub use scheduler::TickReport;
pub use startup::{Server, build, build_with};
