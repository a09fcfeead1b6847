// Unsafe code only in `memory`, the allocator's one call that Rust cannot check.
#![deny(unsafe_code)]
//! envoi: a self-hosted secondary secret source. See `README.md` and `SPEC.md`.

pub mod auth;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod http;
pub mod memory;
pub mod metrics;
pub mod policy;
pub mod redact;
pub mod seal;
pub mod secret;
pub mod serve;
pub mod startup;
pub mod store;
pub mod telemetry;
pub mod tls;
