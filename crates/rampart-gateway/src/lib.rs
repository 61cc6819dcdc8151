//! Rampart's gateway: an OpenAI-compatible secure proxy.
//!
//! [`state::Gateway`] holds what a running gateway needs; [`app::app`] is its HTTP surface and
//! [`server::serve`] its listener. The request path is [`proxy`], read top to bottom:
//! authenticate, parse, authorize, limit, send, relay. [`demo`] is the built-in
//! OpenAI-compatible demo model that makes `rampart serve` work with no API key.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
pub mod app;
pub mod approvals;
pub mod audit;
pub mod auth;
pub mod blocks;
pub mod budgets;
pub mod demo;
pub mod error;
pub mod limits;
pub mod mcp;
pub mod metrics;
pub mod model_gate;
pub mod openai;
pub mod proxy;
pub mod server;
pub mod sse;
pub mod state;
pub mod store;
pub mod tokens;
pub mod upstream;
