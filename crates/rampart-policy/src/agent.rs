//! The `[agent]` section: which tools agents may call, with what arguments, and what each
//! class of tool needs. `rampart-agent` compiles it; this module only holds and checks it.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What happens to a tool call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolAction {
    /// The call goes to the application.
    Allow,
    /// The call goes through, and what the policy would have done is recorded.
    Shadow,
    /// The call waits for a human.
    Approval,
    /// The call is refused.
    Deny,
}

impl ToolAction {
    /// The word used in config and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ToolAction::Allow => "allow",
            ToolAction::Shadow => "shadow",
            ToolAction::Approval => "approval",
            ToolAction::Deny => "deny",
        }
    }
}

/// Tool-call policy. Absent or with no `tools`, tool calls are not checked (only scanned).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgentConfig {
    /// What a call to a tool that `tools` does not list gets.
    pub unknown_tools: ToolAction,
    /// Action per risk class, over the defaults (`read` and `write` allow, `egress` and
    /// `payment` need approval, `destructive` is denied); the operator may add classes. A
    /// tool's own `action` overrides its class's.
    pub classes: BTreeMap<String, ToolAction>,
    /// What untrusted content in the exchange does to sensitive tools.
    pub taint: TaintConfig,
    /// The tools agents may call.
    pub tools: Vec<ToolRule>,
    /// How calls that need a human are held and announced.
    pub approval: ApprovalConfig,
    /// MCP servers fronted at `/mcp/<name>` (Streamable HTTP).
    pub mcp_servers: Vec<McpServer>,
}

/// An MCP server behind the gateway.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServer {
    /// The path segment agents use: `/mcp/<name>`.
    pub name: String,
    /// The server's Streamable HTTP endpoint.
    pub url: String,
}

impl Default for AgentConfig {
    fn default() -> Self {
        AgentConfig {
            unknown_tools: ToolAction::Deny,
            classes: BTreeMap::new(),
            taint: TaintConfig::default(),
            tools: Vec::new(),
            approval: ApprovalConfig::default(),
            mcp_servers: Vec::new(),
        }
    }
}

/// Human approval of held tool calls.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ApprovalConfig {
    /// How long a buffered answer waits for the decision before it answers
    /// `approval_required` with the approval's id (0: answer at once).
    pub hold_seconds: u64,
    /// How long an approval request stays open; an undecided one is then denied (expired).
    pub expires_seconds: u64,
    /// Where a new request is announced (HTTP POST of JSON; a `text` field makes it a Slack
    /// incoming-webhook message too).
    pub webhook: Option<String>,
}

impl Default for ApprovalConfig {
    fn default() -> Self {
        ApprovalConfig {
            hold_seconds: 0,
            expires_seconds: 3600,
            webhook: None,
        }
    }
}

fn default_classes() -> BTreeMap<String, ToolAction> {
    BTreeMap::from([
        ("read".to_string(), ToolAction::Allow),
        ("write".to_string(), ToolAction::Allow),
        ("egress".to_string(), ToolAction::Approval),
        ("payment".to_string(), ToolAction::Approval),
        ("destructive".to_string(), ToolAction::Deny),
    ])
}

/// Once untrusted content (a tool result, a retrieved document) is in an exchange, calls to
/// sensitive classes get at least `action`: the "private data + untrusted content + a way
/// out" combination that no per-message detector sees.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TaintConfig {
    /// Classes that taint escalates.
    pub sensitive: Vec<String>,
    /// The least action a tainted call to a sensitive class gets.
    pub action: ToolAction,
}

impl Default for TaintConfig {
    fn default() -> Self {
        TaintConfig {
            sensitive: ["write", "egress", "payment", "destructive"].map(String::from).to_vec(),
            action: ToolAction::Approval,
        }
    }
}

/// One tool.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolRule {
    /// The function name the model calls.
    pub name: String,
    /// Risk class.
    #[serde(default = "default_class")]
    pub class: String,
    /// Overrides the class's action.
    #[serde(default)]
    pub action: Option<ToolAction>,
    /// Who may call it: `user:NAME`, `group:NAME`, `key:ID`; empty means anyone the Cedar
    /// policies let through.
    #[serde(default)]
    pub principals: Vec<String>,
    /// Models whose calls to it are accepted; empty means any.
    #[serde(default)]
    pub models: Vec<String>,
    /// JSON Schema for the arguments (written as TOML or as a JSON string).
    #[serde(default)]
    pub schema: Option<toml::Value>,
    /// Checks JSON Schema cannot express.
    #[serde(default)]
    pub checks: Vec<ArgCheck>,
    /// Calls per minute per principal.
    #[serde(default)]
    pub per_minute: Option<u32>,
    /// Calls per day per principal (a budget; it refills evenly over the day).
    #[serde(default)]
    pub per_day: Option<u32>,
}

fn default_class() -> String {
    "read".into()
}

/// An argument check. `arg` is a JSON pointer (`/url`, `/files/0`) or a top-level name.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ArgCheck {
    /// The argument is a URL (WHATWG parsing) whose host is on the list (`*.example.com`
    /// matches subdomains) and whose scheme is allowed (default `https`).
    Url {
        /// Where the URL is.
        arg: String,
        /// Allowed hosts.
        hosts: Vec<String>,
        /// Allowed schemes.
        #[serde(default = "default_schemes")]
        schemes: Vec<String>,
    },
    /// The argument is a path that must stay under `prefix` after normalisation.
    Path {
        /// Where the path is.
        arg: String,
        /// The directory it must stay in.
        prefix: String,
    },
    /// The argument is SQL that must parse and only read.
    Sql {
        /// Where the statement is.
        arg: String,
    },
    /// The argument is a shell command: refused unless its program is on `allow`, and never
    /// with shell syntax that could chain or substitute another command.
    Shell {
        /// Where the command is.
        arg: String,
        /// Programs that may be run (empty: every command is refused).
        #[serde(default)]
        allow: Vec<String>,
    },
}

fn default_schemes() -> Vec<String> {
    vec!["https".into()]
}

impl AgentConfig {
    /// Whether tool calls are checked at all.
    pub fn enabled(&self) -> bool {
        !self.tools.is_empty()
    }

    /// The action for a class (unknown classes are denied: a typo never opens a tool).
    pub fn class_action(&self, class: &str) -> ToolAction {
        self.classes
            .get(class)
            .copied()
            .or_else(|| default_classes().get(class).copied())
            .unwrap_or(ToolAction::Deny)
    }

    fn has_class(&self, class: &str) -> bool {
        self.classes.contains_key(class) || default_classes().contains_key(class)
    }

    /// Problems a config check reports.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut names = std::collections::HashSet::new();
        for t in &self.tools {
            if t.name.is_empty() {
                out.push("`agent.tools`: a tool needs a `name`".into());
            }
            if !names.insert(t.name.as_str()) {
                out.push(format!("`agent.tools`: tool `{}` is listed twice", t.name));
            }
            if !self.has_class(&t.class) {
                out.push(format!(
                    "`agent.tools`: tool `{}` has class `{}`, which `agent.classes` does not define",
                    t.name, t.class
                ));
            }
            for p in &t.principals {
                if !["user:", "group:", "key:"].iter().any(|k| p.starts_with(k)) {
                    out.push(format!(
                        "`agent.tools`: tool `{}`: principal `{p}` must start with `user:`, `group:` or `key:`",
                        t.name
                    ));
                }
            }
            if t.per_minute == Some(0) {
                out.push(format!(
                    "`agent.tools`: tool `{}`: `per_minute` must be above 0",
                    t.name
                ));
            }
            for c in &t.checks {
                match c {
                    ArgCheck::Url { hosts, .. } if hosts.is_empty() => {
                        out.push(format!("`agent.tools`: tool `{}`: a `url` check needs `hosts`", t.name))
                    }
                    ArgCheck::Path { prefix, .. } if !prefix.starts_with('/') => out.push(format!(
                        "`agent.tools`: tool `{}`: a `path` check's `prefix` must be absolute",
                        t.name
                    )),
                    _ => {}
                }
            }
        }
        let mut servers = std::collections::HashSet::new();
        for m in &self.mcp_servers {
            if m.name.is_empty()
                || !m
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                out.push(format!(
                    "`agent.mcp_servers`: name `{}` must be letters, digits, `-` or `_`",
                    m.name
                ));
            }
            if !servers.insert(m.name.as_str()) {
                out.push(format!("`agent.mcp_servers`: `{}` is listed twice", m.name));
            }
            if !(m.url.starts_with("http://") || m.url.starts_with("https://")) {
                out.push(format!("`agent.mcp_servers`: `{}` needs an http(s) `url`", m.name));
            }
        }
        if self.approval.expires_seconds == 0 {
            out.push("`agent.approval.expires_seconds` must be above 0".into());
        }
        if self.approval.hold_seconds > 300 {
            out.push("`agent.approval.hold_seconds` must be at most 300".into());
        }
        if let Some(w) = &self.approval.webhook {
            if !(w.starts_with("https://") || w.starts_with("http://")) {
                out.push(format!("`agent.approval.webhook` must be an http(s) URL, not `{w}`"));
            }
        }
        for class in &self.taint.sensitive {
            if !self.has_class(class) {
                out.push(format!(
                    "`agent.taint.sensitive` names `{class}`, which `agent.classes` does not define"
                ));
            }
        }
        out
    }
}
