//! End-to-end tests: a real `halftone` server on 127.0.0.1:0 with a throwaway data dir,
//! driven over HTTP, through the SDK and through the CLI, as users do. One test binary with
//! modules (see `harness` for the five-line setup).

mod harness;
mod npm;
mod s3_server;

mod attack;
mod auth;
mod bad_input;
mod clients;
mod codepush;
mod dashboard;
mod delta;
mod durability;
mod electron;
mod experiment;
mod feedback;
mod forged_feedback;
mod gates;
mod install;
mod key_rotation;
mod limits;
mod metrics;
mod object_store;
mod postgres_harness;
mod postgres_store;
mod release_flow;
mod replicas;
mod sdk;
mod seed;
mod sparkle;
mod tauri;
