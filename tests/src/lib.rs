//! End-to-end tests live in tests/e2e. This library holds what they and the bench share.

pub mod postgres;
pub mod seed;
