//! Integration tests: the real `rampart` binary on loopback, driven over HTTP, against the
//! built-in demo model and a local misbehaving upstream (`faults.rs`). One test binary, split
//! by topic, so the suite links once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

mod faults;
mod harness;

mod audit;
mod auth;
mod basics;
mod bypasses;
mod errors;
mod kill_switch;
mod limits;
mod mcp;
mod model;
mod oidc;
mod policy;
mod reload;
mod responses;
mod scanning;
mod semantic;
mod signing;
mod streaming;
mod tls;
mod tools;
