//! Rampart's policy layer: the configuration model and Cedar authorization.
//!
//! [`Config`] is what a platform engineer writes in `rampart.toml`. It is parsed with every key
//! known (unknown keys are errors, so a typo never silently disables a control), checked as a
//! whole, and every problem is reported with its line and column ([`ConfigError`]).
//!
//! [`PolicyEngine`] wraps `cedar-policy`: principals are API keys and OIDC users (with their
//! groups), actions are the inference calls and each admin operation, resources are models and
//! the gateway itself. A request is allowed only when a permit matches and no forbid matches,
//! and every [`Decision`] carries the policy ids behind it.
//!
//! ```
//! use rampart_policy::{Action, Config, Principal, PolicyEngine};
//! let config = Config::from_toml_str("version = 1\n", "rampart.toml").unwrap();
//! let engine = PolicyEngine::from_config(&config, |_| Ok(String::new())).unwrap();
//! let key = Principal::Key { id: "k1".into(), owner: "alice".into(), models: vec![], admin: false };
//! assert!(engine.authorize(&key, Action::Chat, "rampart-demo").allowed());
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod agent;
mod audit;
mod authz;
mod config;
mod error;
mod scan;

pub use agent::{AgentConfig, ApprovalConfig, ArgCheck, McpServer, TaintConfig, ToolAction, ToolRule};
pub use audit::{AuditBackend, AuditConfig, AuditDurability};
pub use authz::{Action, Decision, PolicyEngine, Principal, ToolRequest};
pub use config::{
    AuthConfig, Budget, BudgetsConfig, Config, LimitsConfig, LogConfig, LogFormat, ModelConfig, OidcConfig,
    PolicyConfig, Price, Quota, ServerConfig, SignedModelConfig, Target, TlsConfig, UpstreamConfig, UpstreamKind,
};
pub use error::{ConfigError, ConfigProblem, PolicyError};
pub use scan::{
    CallerKind, ErrorDetail, InjectionRule, InputRules, InputVerdict, OutputRules, RoleThresholds, Rule, ScanAction,
    ScanConfig, ScanMode, ScanOverride, ScanPolicy, SemanticMode, SpotlightStyle, SystemMessages, TokenIds,
};
