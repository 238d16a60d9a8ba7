//! # halftone-server
//!
//! The Halftone update server (actix-web, sled) and the `halftone` command line.
//! See ARCHITECTURE.md for the map.

pub mod cli;
pub mod config;
pub mod startup;

pub use config::{Config, LogFormat, ServeArgs};
pub use startup::{Server, build};
