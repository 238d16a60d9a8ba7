//! # halftone-simulator
//!
//! Staged rollouts over a simulated fleet on a manual clock, decided by the same `channels`
//! code the server runs (bucketing, schedules, rate gates, app metrics aggregated in
//! `Distribution` and judged by metric gates): [`fleet::run`] plays one rollout (and what it
//! does when a step's audience is exhausted undecided: [`Exhausted`]), [`scenarios`] runs the
//! documented scenarios many times and prints the table of docs/gates.md, and [`ab`] runs
//! A/B experiments between two builds on an app metric through `Distribution` and
//! `compare_arms`, and [`variance`] measures the metric gate's test on skewed values with
//! the ways of estimating a candidate's variance side by side. Nothing here reads a clock or a global random source: every run is
//! reproducible from its seed.

#![deny(missing_docs)]

pub mod ab;
pub mod fleet;
pub mod scenarios;
pub mod variance;

pub use ab::{AbFigures, AbPlan, measure_ab};
pub use fleet::{Build, Exhausted, Fleet, Judge, Outcome, Plan, SESSION, run};
pub use scenarios::{Figures, SCENARIOS, Scenario, measure, plan, table, with_metric_gate};
