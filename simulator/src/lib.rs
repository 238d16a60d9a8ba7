//! # halftone-simulator
//!
//! Staged rollouts over a simulated fleet on a manual clock, decided by the same `channels`
//! code the server runs (bucketing, schedules, gates): [`fleet::run`] plays one rollout,
//! [`scenarios`] runs the documented scenarios many times and prints the table of
//! docs/gates.md, and [`ab`] runs A/B experiments between two builds on an app metric. Nothing here reads a clock or a global random source: every run is
//! reproducible from its seed.

#![deny(missing_docs)]

pub mod ab;
pub mod fleet;
pub mod scenarios;

pub use ab::{AbFigures, AbPlan, measure_ab};
pub use fleet::{Build, Fleet, Outcome, Plan, run};
pub use scenarios::{Figures, SCENARIOS, Scenario, measure, plan, table};
