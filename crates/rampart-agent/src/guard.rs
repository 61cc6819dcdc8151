//! The tool guard: one decision per proposed tool call, the same whichever way the call
//! travels (an answer on the model API, an MCP `tools/call`).
//!
//! Order of checks, each able to stop the call: is the tool listed; may this principal and
//! model use it; do the Cedar policies permit it; are the arguments a JSON object that the
//! tool's JSON Schema accepts; do the argument checks pass; is the tool's rate left; and last
//! what the tool's class asks for, raised by taint. A class in `shadow` runs every check and
//! records what would have happened, but lets the call through.

use std::collections::HashMap;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rampart_policy::{AgentConfig, ArgCheck, PolicyEngine, Principal, ToolAction, ToolRequest};
use serde_json::Value;

use crate::args;

/// Why a tool guard cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GuardError {
    /// A tool's JSON Schema is not a valid schema.
    #[error("tool `{tool}`: the argument schema is invalid: {reason}")]
    Schema {
        /// The tool.
        tool: String,
        /// What is wrong.
        reason: String,
    },
}

/// Stable error codes, as clients see them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The tool may not be called here.
    NotAllowed,
    /// The arguments break the tool's schema or checks.
    ArgumentsRejected,
    /// The tool's rate for this principal is used up.
    RateLimited,
    /// A human must approve the call.
    ApprovalRequired,
}

impl Code {
    /// The error code.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotAllowed => "tool_not_allowed",
            Code::ArgumentsRejected => "tool_arguments_rejected",
            Code::RateLimited => "tool_rate_limited",
            Code::ApprovalRequired => "approval_required",
        }
    }
}

/// What the guard decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The call may go to the application.
    Allow,
    /// The call is stopped.
    Stop {
        /// Error code.
        code: Code,
        /// Why, for the client and the ledger.
        reason: String,
    },
}

/// A decision with what it rests on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The verdict that is applied.
    pub verdict: Verdict,
    /// The tool's class (`"unknown"` for an unlisted tool).
    pub class: String,
    /// In shadow mode, what would have been applied.
    pub shadow: Option<Verdict>,
    /// The Cedar policies behind a Cedar denial.
    pub policies: Vec<String>,
    /// Whether taint raised the class's action.
    pub escalated_by_taint: bool,
}

/// One proposed tool call.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// Who the exchange belongs to.
    pub principal: &'a Principal,
    /// The model that proposed the call.
    pub model: &'a str,
    /// The tool's name.
    pub name: &'a str,
    /// The arguments as the model wrote them (a JSON text).
    pub arguments: &'a str,
    /// Untrusted content (a tool result, a retrieved document) is in the exchange.
    pub tainted: bool,
}

struct Tool {
    class: String,
    action: ToolAction,
    principals: Vec<String>,
    models: Vec<String>,
    schema: Option<jsonschema::Validator>,
    checks: Vec<ArgCheck>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    budget: Option<DefaultKeyedRateLimiter<String>>,
}

/// The compiled `[agent]` policy.
pub struct ToolGuard {
    tools: HashMap<String, Tool>,
    unknown: ToolAction,
    sensitive: Vec<String>,
    taint_action: ToolAction,
}

impl std::fmt::Debug for ToolGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ToolGuard").field("tools", &self.tools.len()).finish()
    }
}

fn stop(code: Code, reason: impl Into<String>) -> Verdict {
    Verdict::Stop {
        code,
        reason: reason.into(),
    }
}

impl ToolGuard {
    /// Compiles the config (schemas, rate limiters). `None` when no tools are listed: tool
    /// calls are then not checked.
    pub fn new(config: &AgentConfig) -> Result<Option<ToolGuard>, GuardError> {
        if !config.enabled() {
            return Ok(None);
        }
        let mut tools = HashMap::new();
        for t in &config.tools {
            let schema = match &t.schema {
                None => None,
                Some(toml::Value::String(json)) => {
                    Some(serde_json::from_str::<Value>(json).map_err(|e| GuardError::Schema {
                        tool: t.name.clone(),
                        reason: e.to_string(),
                    })?)
                }
                Some(v) => Some(serde_json::to_value(v).map_err(|e| GuardError::Schema {
                    tool: t.name.clone(),
                    reason: e.to_string(),
                })?),
            };
            let schema = match schema {
                Some(s) => Some(jsonschema::validator_for(&s).map_err(|e| GuardError::Schema {
                    tool: t.name.clone(),
                    reason: e.to_string(),
                })?),
                None => None,
            };
            let limiter = t
                .per_minute
                .and_then(NonZeroU32::new)
                .map(|n| RateLimiter::keyed(Quota::per_minute(n)));
            // n calls a day: a burst of n, refilled one every day/n.
            let budget = t.per_day.and_then(NonZeroU32::new).and_then(|n| {
                Quota::with_period(std::time::Duration::from_secs(86_400) / n.get())
                    .map(|q| RateLimiter::keyed(q.allow_burst(n)))
            });
            tools.insert(
                t.name.clone(),
                Tool {
                    class: t.class.clone(),
                    action: t.action.unwrap_or_else(|| config.class_action(&t.class)),
                    principals: t.principals.clone(),
                    models: t.models.clone(),
                    schema,
                    checks: t.checks.clone(),
                    limiter,
                    budget,
                },
            );
        }
        Ok(Some(ToolGuard {
            tools,
            unknown: config.unknown_tools,
            sensitive: config.taint.sensitive.clone(),
            taint_action: config.taint.action,
        }))
    }

    /// Decides one call.
    pub fn check(&self, call: &Call<'_>, engine: &PolicyEngine) -> Decision {
        let Some(tool) = self.tools.get(call.name) else {
            let verdict = match self.unknown {
                ToolAction::Allow => Verdict::Allow,
                ToolAction::Approval => stop(Code::ApprovalRequired, format!("tool `{}` is not listed", call.name)),
                ToolAction::Deny | ToolAction::Shadow => stop(
                    Code::NotAllowed,
                    format!("tool `{}` is not on the allowed list", call.name),
                ),
            };
            let (verdict, shadow) = if self.unknown == ToolAction::Shadow {
                (Verdict::Allow, Some(verdict))
            } else {
                (verdict, None)
            };
            return Decision {
                verdict,
                class: "unknown".into(),
                shadow,
                policies: Vec::new(),
                escalated_by_taint: false,
            };
        };
        let mut policies = Vec::new();
        let tainted_sensitive = call.tainted && self.sensitive.contains(&tool.class);
        let action = if tainted_sensitive {
            tool.action.max(self.taint_action)
        } else {
            tool.action
        };
        let escalated_by_taint = action != tool.action;
        let strict = self.strict(tool, call, engine, action, &mut policies);
        let (verdict, shadow) = if action == ToolAction::Shadow {
            (Verdict::Allow, Some(strict))
        } else {
            (strict, None)
        };
        Decision {
            verdict,
            class: tool.class.clone(),
            shadow,
            policies,
            escalated_by_taint,
        }
    }

    /// Whether `tools/list` should show this tool to this caller: it is listed (or unlisted
    /// tools are not denied), open to the caller and model, permitted by Cedar, and its class
    /// is not denied. Arguments and rates are not looked at (nothing is consumed).
    pub fn may_list(
        &self,
        principal: &Principal,
        model: &str,
        name: &str,
        engine: &PolicyEngine,
    ) -> Result<(), String> {
        let Some(tool) = self.tools.get(name) else {
            return match self.unknown {
                ToolAction::Deny => Err("not on the allowed list".into()),
                _ => Ok(()),
            };
        };
        if !tool.principals.is_empty() && !tool.principals.iter().any(|p| principal_matches(p, principal)) {
            return Err("not allowed for this caller".into());
        }
        if !tool.models.is_empty() && !tool.models.iter().any(|m| m == model) {
            return Err(format!("not allowed for `{model}`"));
        }
        if tool.action == ToolAction::Deny {
            return Err(format!("class `{}` is denied", tool.class));
        }
        let request = ToolRequest {
            tool: name.to_string(),
            class: tool.class.clone(),
            model: model.to_string(),
            tainted: false,
            arguments: None,
        };
        let d = engine.authorize_tool(principal, &request);
        if d.allowed() {
            Ok(())
        } else {
            Err(d.to_string())
        }
    }

    fn strict(
        &self,
        tool: &Tool,
        call: &Call<'_>,
        engine: &PolicyEngine,
        action: ToolAction,
        policies: &mut Vec<String>,
    ) -> Verdict {
        if !tool.principals.is_empty() && !tool.principals.iter().any(|p| principal_matches(p, call.principal)) {
            return stop(
                Code::NotAllowed,
                format!("tool `{}` is not allowed for this caller", call.name),
            );
        }
        if !tool.models.is_empty() && !tool.models.iter().any(|m| m == call.model) {
            return stop(
                Code::NotAllowed,
                format!("tool `{}` is not allowed for model `{}`", call.name, call.model),
            );
        }
        let args: Value = match serde_json::from_str(call.arguments) {
            Ok(v @ Value::Object(_)) => v,
            Ok(_) => return stop(Code::ArgumentsRejected, "the arguments are not a JSON object"),
            Err(e) => return stop(Code::ArgumentsRejected, format!("the arguments are not JSON ({e})")),
        };
        let request = ToolRequest {
            tool: call.name.to_string(),
            class: tool.class.clone(),
            model: call.model.to_string(),
            tainted: call.tainted,
            arguments: Some(args.clone()),
        };
        let d = engine.authorize_tool(call.principal, &request);
        if !d.allowed() {
            policies.clone_from(&d.policies);
            return stop(Code::NotAllowed, format!("tool `{}`: {d}", call.name));
        }
        if let Some(schema) = &tool.schema {
            let errors: Vec<String> = schema
                .iter_errors(&args)
                .take(3)
                .map(|e| {
                    let at = e.instance_path().to_string();
                    if at.is_empty() {
                        e.to_string()
                    } else {
                        format!("{at}: {e}")
                    }
                })
                .collect();
            if !errors.is_empty() {
                return stop(Code::ArgumentsRejected, errors.join("; "));
            }
        }
        for check in &tool.checks {
            if let Err(why) = run_check(check, &args) {
                return stop(Code::ArgumentsRejected, why);
            }
        }
        let who = call.principal.label();
        if let Some(limiter) = &tool.limiter {
            if limiter.check_key(&who).is_err() {
                return stop(
                    Code::RateLimited,
                    format!("tool `{}`: the per-minute rate is used up", call.name),
                );
            }
        }
        if let Some(budget) = &tool.budget {
            if budget.check_key(&who).is_err() {
                return stop(
                    Code::RateLimited,
                    format!("tool `{}`: the daily budget is used up", call.name),
                );
            }
        }
        match action {
            ToolAction::Allow | ToolAction::Shadow => Verdict::Allow,
            ToolAction::Approval => stop(
                Code::ApprovalRequired,
                format!(
                    "tool `{}` (class `{}`) needs a human's approval{}",
                    call.name,
                    tool.class,
                    if call.tainted {
                        " (untrusted content is in this exchange)"
                    } else {
                        ""
                    }
                ),
            ),
            ToolAction::Deny => stop(
                Code::NotAllowed,
                format!(
                    "tool `{}` (class `{}`) is denied{}",
                    call.name,
                    tool.class,
                    if call.tainted {
                        " (untrusted content is in this exchange)"
                    } else {
                        ""
                    }
                ),
            ),
        }
    }
}

fn run_check(check: &ArgCheck, args: &Value) -> Result<(), String> {
    let arg = match check {
        ArgCheck::Url { arg, .. }
        | ArgCheck::Path { arg, .. }
        | ArgCheck::Sql { arg }
        | ArgCheck::Shell { arg, .. } => arg,
    };
    let one = |v: &str| match check {
        ArgCheck::Url { hosts, schemes, .. } => args::url(v, hosts, schemes),
        ArgCheck::Path { prefix, .. } => args::path(v, prefix),
        ArgCheck::Sql { .. } => args::sql_read_only(v),
        ArgCheck::Shell { allow, .. } => args::shell(v, allow),
    };
    match args::lookup(args, arg) {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(s)) => one(s).map_err(|e| format!("`{arg}`: {e}")),
        // a list of URLs or paths: every one must pass
        Some(Value::Array(items)) => items.iter().try_for_each(|v| match v {
            Value::String(s) => one(s).map_err(|e| format!("`{arg}`: {e}")),
            _ => Err(format!("`{arg}` must hold strings")),
        }),
        Some(_) => Err(format!("`{arg}` must be a string")),
    }
}

fn principal_matches(rule: &str, p: &Principal) -> bool {
    match (rule.split_once(':'), p) {
        (Some(("user", u)), p) => p.user() == u,
        (Some(("key", k)), Principal::Key { id, .. }) => id == k,
        (Some(("group", g)), Principal::User { groups, .. }) => groups.iter().any(|x| x == g),
        (Some(("group", "admins")), Principal::Key { admin: true, .. }) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use rampart_policy::Config;

    const CONFIG: &str = r#"
version = 1
[agent.classes]
audit = "shadow"

[[agent.tools]]
name = "search"
class = "read"
schema = { type = "object", properties = { q = { type = "string", maxLength = 20 }, n = { type = "integer", maximum = 5 } }, required = ["q"] }

[[agent.tools]]
name = "send_email"
class = "egress"
action = "allow"
principals = ["group:support", "user:alice"]

[[agent.tools]]
name = "pay"
class = "payment"

[[agent.tools]]
name = "drop_table"
class = "destructive"

[[agent.tools]]
name = "export"
class = "audit"
checks = [{ kind = "path", arg = "/dest", prefix = "/srv/out" }]

[[agent.tools]]
name = "ping"
models = ["small"]
per_minute = 2

[[agent.tools]]
name = "translate"
per_day = 3
"#;

    fn setup(extra_cedar: &str) -> (ToolGuard, PolicyEngine) {
        let config = Config::from_toml_str(CONFIG, "t.toml").unwrap();
        let mut sources = vec![(
            "built-in".to_string(),
            include_str!("../../rampart-policy/policies/builtin.cedar").to_string(),
        )];
        if !extra_cedar.is_empty() {
            sources.push(("extra.cedar".into(), extra_cedar.into()));
        }
        let engine = PolicyEngine::from_sources(&sources).unwrap();
        (ToolGuard::new(&config.agent).unwrap().unwrap(), engine)
    }

    fn alice() -> Principal {
        Principal::User {
            id: "alice".into(),
            groups: vec![],
        }
    }

    fn decide(g: &ToolGuard, e: &PolicyEngine, p: &Principal, name: &str, args: &str, tainted: bool) -> Decision {
        g.check(
            &Call {
                principal: p,
                model: "big",
                name,
                arguments: args,
                tainted,
            },
            e,
        )
    }

    fn code(d: &Decision) -> Option<&'static str> {
        match &d.verdict {
            Verdict::Allow => None,
            Verdict::Stop { code, .. } => Some(code.as_str()),
        }
    }

    #[test]
    fn every_step_can_stop_a_call() {
        let (g, e) = setup("");
        let a = alice();
        assert_eq!(code(&decide(&g, &e, &a, "search", r#"{"q": "rust"}"#, false)), None);
        assert_eq!(code(&decide(&g, &e, &a, "nope", "{}", false)), Some("tool_not_allowed"));
        assert_eq!(
            code(&decide(&g, &e, &a, "search", r#"{"q": 5}"#, false)),
            Some("tool_arguments_rejected")
        );
        assert_eq!(
            code(&decide(&g, &e, &a, "search", r#"{"q": "x", "n": 9}"#, false)),
            Some("tool_arguments_rejected")
        );
        assert_eq!(
            code(&decide(&g, &e, &a, "search", "[1]", false)),
            Some("tool_arguments_rejected")
        );
        assert_eq!(
            code(&decide(&g, &e, &a, "search", "{", false)),
            Some("tool_arguments_rejected")
        );
        let bob = Principal::User {
            id: "bob".into(),
            groups: vec!["sales".into()],
        };
        assert_eq!(
            code(&decide(&g, &e, &bob, "send_email", "{}", false)),
            Some("tool_not_allowed")
        );
        let carol = Principal::User {
            id: "carol".into(),
            groups: vec!["support".into()],
        };
        assert_eq!(code(&decide(&g, &e, &carol, "send_email", "{}", false)), None);
        assert_eq!(code(&decide(&g, &e, &a, "pay", "{}", false)), Some("approval_required"));
        assert_eq!(
            code(&decide(&g, &e, &a, "drop_table", "{}", false)),
            Some("tool_not_allowed")
        );
        // models and rates
        assert_eq!(code(&decide(&g, &e, &a, "ping", "{}", false)), Some("tool_not_allowed"));
        let small = |p: &Principal| {
            g.check(
                &Call {
                    principal: p,
                    model: "small",
                    name: "ping",
                    arguments: "{}",
                    tainted: false,
                },
                &e,
            )
        };
        assert_eq!(code(&small(&a)), None);
        assert_eq!(code(&small(&a)), None);
        assert_eq!(code(&small(&a)), Some("tool_rate_limited"));
        assert_eq!(code(&small(&bob)), None, "rates are per principal");
        for _ in 0..3 {
            assert_eq!(code(&decide(&g, &e, &a, "translate", "{}", false)), None);
        }
        let d = decide(&g, &e, &a, "translate", "{}", false);
        assert_eq!(code(&d), Some("tool_rate_limited"));
        assert!(matches!(&d.verdict, Verdict::Stop { reason, .. } if reason.contains("daily budget")));
    }

    #[test]
    fn taint_raises_sensitive_classes_only() {
        let (g, e) = setup("");
        let a = alice();
        let d = decide(&g, &e, &a, "send_email", "{}", true);
        assert_eq!(code(&d), Some("approval_required"));
        assert!(d.escalated_by_taint);
        assert_eq!(code(&decide(&g, &e, &a, "send_email", "{}", false)), None);
        assert_eq!(code(&decide(&g, &e, &a, "search", r#"{"q": "x"}"#, true)), None);
    }

    #[test]
    fn shadow_records_what_would_have_happened() {
        let (g, e) = setup("");
        let a = alice();
        let d = decide(&g, &e, &a, "export", r#"{"dest": "/etc/cron.d/x"}"#, false);
        assert_eq!(d.verdict, Verdict::Allow);
        assert!(
            matches!(
                d.shadow,
                Some(Verdict::Stop {
                    code: Code::ArgumentsRejected,
                    ..
                })
            ),
            "{d:?}"
        );
    }

    #[test]
    fn cedar_forbids_are_applied_and_named() {
        let (g, e) = setup(
            "@id(\"no-search-for-interns\")\nforbid(principal in Rampart::Group::\"interns\", action == Rampart::Action::\"tool.call\", resource == Rampart::Tool::\"search\");",
        );
        let intern = Principal::User {
            id: "ian".into(),
            groups: vec!["interns".into()],
        };
        let d = decide(&g, &e, &intern, "search", r#"{"q": "x"}"#, false);
        assert_eq!(code(&d), Some("tool_not_allowed"));
        assert_eq!(d.policies, vec!["no-search-for-interns".to_string()]);
    }
}
