//! The `halftone` binary as a separate process, as operators and release engineers run it:
//! the whole release flow through the CLI ([`cli_flow`]), and acknowledged writes surviving
//! `kill -9` ([`kill9`]). One test binary with modules; [`support`] starts servers and runs
//! commands. (In-process tests of the same server live in `tests/tests/e2e`.)

mod support;

mod cli_flow;
mod delta;
mod experiment;
mod failover;
mod kill9;
mod migrate;
mod recovery;
