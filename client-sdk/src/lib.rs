//! # halftone-client
//!
//! The SDK that apps embed, and the admin client the `halftone` CLI uses.

#![deny(missing_docs)]

pub mod admin;
