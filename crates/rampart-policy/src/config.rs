//! The configuration model: what `rampart.toml` may say, its defaults, and the checks that
//! run before any port is bound.
//!
//! Every field has a default so an empty file (or none at all) gives a working gateway on
//! embedded defaults. Unknown keys are errors. Secrets are never inline: an upstream names the
//! environment variable or file that holds its key.

use std::collections::HashSet;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::error::{ConfigError, ConfigProblem};

/// The only configuration format version this build understands.
pub const CONFIG_VERSION: u32 = 1;

/// A whole `rampart.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Format version; must be 1.
    pub version: u32,
    /// Listener, data directory and TLS.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// Model APIs that requests are forwarded to. With neither upstreams nor models given,
    /// the built-in demo model is served.
    #[serde(default)]
    pub upstreams: Vec<UpstreamConfig>,
    /// The model names clients may ask for, and where each goes.
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    /// How callers prove who they are.
    pub auth: AuthConfig,
    /// Cedar policies on top of (or instead of) the built-in set.
    pub policy: PolicyConfig,
    /// Rate limits, quotas and size caps.
    pub limits: LimitsConfig,
    /// Scanners and what their findings do.
    pub scan: crate::ScanConfig,
    /// The audit ledger.
    pub audit: crate::AuditConfig,
    /// Tool-call policy for agents.
    pub agent: crate::AgentConfig,
    /// Spending caps.
    pub budgets: BudgetsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            version: CONFIG_VERSION,
            server: ServerConfig::default(),
            log: LogConfig::default(),
            upstreams: vec![UpstreamConfig::builtin_demo()],
            models: vec![ModelConfig::builtin_demo()],
            auth: AuthConfig::default(),
            policy: PolicyConfig::default(),
            limits: LimitsConfig::default(),
            scan: crate::ScanConfig::default(),
            audit: crate::AuditConfig::default(),
            budgets: BudgetsConfig::default(),
            agent: crate::AgentConfig::default(),
        }
    }
}

/// Listener, state and TLS settings.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on.
    pub listen: String,
    /// Where the SQLite database and other state live.
    pub data_dir: String,
    /// Serve HTTPS with these files instead of plain HTTP.
    pub tls: Option<TlsConfig>,
    /// Whether the `/metrics` endpoint needs the admin credential.
    pub metrics_require_admin: bool,
    /// Time a client has to send its whole request body (slow senders get 408).
    pub body_timeout_ms: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".into(),
            data_dir: "rampart-data".into(),
            tls: None,
            metrics_require_admin: false,
            body_timeout_ms: 30_000,
        }
    }
}

/// A rustls listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: String,
    /// Refuse TLS 1.2 clients.
    #[serde(default)]
    pub tls13_only: bool,
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `rampart_gateway=debug`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// What kind of upstream this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamKind {
    /// Any OpenAI-compatible HTTP API (OpenAI, vLLM, Ollama, llama.cpp server, ...).
    #[default]
    Openai,
    /// The deterministic demo model built into Rampart, served on a loopback port.
    Demo,
}

/// One OpenAI-compatible model API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Name used by `[[models]]` targets.
    pub name: Spanned<String>,
    /// `openai` (default) or `demo`.
    #[serde(default)]
    pub kind: UpstreamKind,
    /// Base URL including the version path, e.g. `https://api.openai.com/v1`.
    #[serde(default)]
    pub base_url: Option<Spanned<String>>,
    /// Environment variable that holds the upstream's API key.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// File that holds the upstream's API key.
    #[serde(default)]
    pub api_key_file: Option<String>,
    /// Time allowed to open a connection.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// Time allowed until the response headers arrive.
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
    /// Longest silence allowed between two chunks of a response body.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// Extra attempts on connection failure only (never once the request was sent).
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Local model directories this upstream serves whose signatures must verify (at start-up
    /// and on every reload) before the upstream is enabled.
    #[serde(default)]
    pub signed_models: Vec<SignedModelConfig>,
}

/// A model directory whose OpenSSF model-signing signature gates its upstream.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedModelConfig {
    /// The model directory (relative paths are read from the config file's directory).
    pub path: Spanned<String>,
    /// The signature file; default `<path>/model.sig`.
    #[serde(default)]
    pub signature: Option<String>,
    /// Key mode: the signer's PEM public key.
    #[serde(default)]
    pub public_key: Option<String>,
    /// Certificate mode: PEM certificates trusted to root the signer's chain.
    #[serde(default)]
    pub certificate_chain: Vec<String>,
    /// Paths inside the model the verifier leaves out.
    #[serde(default)]
    pub ignore_paths: Vec<String>,
    /// Leave out .git, .gitattributes, .github and .gitignore (default true).
    #[serde(default = "default_true")]
    pub ignore_git_paths: bool,
    /// Hash only the files the signature lists (others are logged, not failed).
    #[serde(default)]
    pub ignore_unsigned_files: bool,
    /// Accept files the signature itself leaves out (they are logged).
    #[serde(default)]
    pub accept_signed_ignores: bool,
    /// Follow symlinks inside the model.
    #[serde(default)]
    pub allow_symlinks: bool,
}

fn default_true() -> bool {
    true
}

fn default_connect_timeout() -> u64 {
    2_000
}
fn default_timeout() -> u64 {
    60_000
}
fn default_idle_timeout() -> u64 {
    30_000
}
fn default_retries() -> u32 {
    1
}

impl UpstreamConfig {
    fn builtin_demo() -> Self {
        UpstreamConfig {
            name: Spanned::new(0..0, "demo".into()),
            kind: UpstreamKind::Demo,
            base_url: None,
            api_key_env: None,
            api_key_file: None,
            connect_timeout_ms: default_connect_timeout(),
            timeout_ms: default_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            retries: default_retries(),
            signed_models: Vec::new(),
        }
    }
}

/// A model name clients may request and the upstream models that serve it, in failover order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The name (or alias) clients send in `model`.
    pub name: Spanned<String>,
    /// Where it is served, first target first; later ones are failovers.
    pub targets: Vec<Target>,
    /// Limits for this model (all callers together), replacing `[limits.per_model]`.
    #[serde(default)]
    pub limits: Option<Quota>,
    /// What its tokens cost, for spend accounting and `[budgets]`.
    #[serde(default)]
    pub price: Option<Price>,
}

/// A model's price in US dollars per million tokens, as the provider bills it.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    /// Per million prompt tokens.
    pub input: f64,
    /// Per million completion tokens (reasoning tokens included, as providers bill them).
    pub output: f64,
    /// Per million prompt tokens served from the provider's cache; `input` when absent.
    #[serde(default)]
    pub cached_input: Option<f64>,
}

impl Price {
    /// The cost of one exchange in millionths of a dollar, rounded up (a price times a token
    /// count per million tokens is already in millionths).
    pub fn micros(&self, prompt: u64, cached: u64, completion: u64) -> u64 {
        let cached = cached.min(prompt);
        let cost = (prompt - cached) as f64 * self.input
            + cached as f64 * self.cached_input.unwrap_or(self.input)
            + completion as f64 * self.output;
        cost.max(0.0).ceil() as u64
    }
}

/// Spending caps in US dollars; an absent field is unlimited.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Budget {
    /// Per UTC calendar day.
    pub daily_usd: Option<f64>,
    /// Per UTC calendar month.
    pub monthly_usd: Option<f64>,
}

impl Budget {
    /// Whether any cap is set.
    pub fn is_set(&self) -> bool {
        self.daily_usd.is_some() || self.monthly_usd.is_some()
    }
}

/// The `[budgets]` section: spending caps per key, user and model, counted from the
/// upstream's reported usage and the models' `price`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BudgetsConfig {
    /// For each API key (a key may carry its own instead).
    pub per_key: Budget,
    /// For each user (a key's owner or an OIDC subject).
    pub per_user: Budget,
    /// For each model, all callers together.
    pub per_model: Budget,
    /// For the named OIDC groups, all their members together (`[budgets.groups]`,
    /// `interns = { daily_usd = 20.0 }`).
    pub groups: std::collections::BTreeMap<String, Budget>,
}

impl BudgetsConfig {
    /// Whether any cap is set.
    pub fn any(&self) -> bool {
        self.per_key.is_set()
            || self.per_user.is_set()
            || self.per_model.is_set()
            || self.groups.values().any(Budget::is_set)
    }
}

impl ModelConfig {
    fn builtin_demo() -> Self {
        ModelConfig {
            name: Spanned::new(0..0, "rampart-demo".into()),
            targets: vec![Target {
                upstream: Spanned::new(0..0, "demo".into()),
                model: "rampart-demo-1".into(),
            }],
            limits: None,
            price: None,
        }
    }
}

/// One place a model is served: an upstream and the exact model version it is pinned to there.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// The upstream's `name`.
    pub upstream: Spanned<String>,
    /// The exact model id sent upstream (pin a dated version here).
    pub model: String,
}

/// Authentication.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Accept Rampart API keys (`Authorization: Bearer rk-...`).
    pub api_keys: bool,
    /// Accept JWT bearer tokens from this OIDC issuer.
    pub oidc: Option<OidcConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            api_keys: true,
            oidc: None,
        }
    }
}

/// An OIDC issuer whose JWTs are accepted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// Expected `iss`; discovery is read from `{issuer}/.well-known/openid-configuration`.
    pub issuer: String,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// JWKS URL; skips discovery when set.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Accepted algorithms, among `RS256`, `ES256`, `EdDSA` (and `RS384`, `RS512`, `ES384`, `PS256`).
    #[serde(default = "default_algorithms")]
    pub algorithms: Vec<String>,
    /// Claim that names the user.
    #[serde(default = "default_user_claim")]
    pub user_claim: String,
    /// Claim that lists the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// Groups whose tokens belong to applications (service accounts, client-credentials
    /// grants): their system messages are the application's own. Every other token is an
    /// end user's.
    #[serde(default)]
    pub application_groups: Vec<String>,
    /// How long fetched keys are trusted before they are fetched again.
    #[serde(default = "default_jwks_ttl")]
    pub jwks_cache_secs: u64,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "default_leeway")]
    pub leeway_secs: u64,
}

fn default_algorithms() -> Vec<String> {
    vec!["RS256".into(), "ES256".into(), "EdDSA".into()]
}
fn default_user_claim() -> String {
    "sub".into()
}
fn default_groups_claim() -> String {
    "groups".into()
}
fn default_jwks_ttl() -> u64 {
    300
}
fn default_leeway() -> u64 {
    30
}

/// Cedar policies.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// Policy files added to the built-in set.
    pub files: Vec<String>,
    /// Use only `files`, without the built-in policies.
    pub replace_builtin: bool,
}

/// Limits: size caps and quotas per key, per user and per model.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body accepted.
    pub max_body_bytes: usize,
    /// Largest prompt, in tokens, accepted.
    pub max_prompt_tokens: Option<u64>,
    /// `max_tokens` is lowered to this (and set to it when absent).
    pub max_tokens_cap: Option<u64>,
    /// Requests asking for more completion tokens than this are refused (a client cannot
    /// ask an upstream for 2^64 tokens); `max_tokens_cap` lowers instead of refusing.
    pub max_completion_tokens: u64,
    /// Most choices (`n`, `best_of`) one request may ask for.
    pub max_choices: u64,
    /// Most messages in one chat request.
    pub max_messages: usize,
    /// Most tools (and legacy functions) in one chat request.
    pub max_tools: usize,
    /// Refused authentications one client address may cause per minute; past that it gets
    /// 429 before its credentials are checked.
    pub auth_failures_per_minute: u32,
    /// Applied to each API key (a key may carry its own instead).
    pub per_key: Quota,
    /// Applied to each user (JWT subject, or a key's owner).
    pub per_user: Quota,
    /// Applied to each model, all callers together.
    pub per_model: Quota,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 1024 * 1024,
            max_prompt_tokens: Some(128_000),
            max_tokens_cap: None,
            max_completion_tokens: 131_072,
            max_choices: 8,
            max_messages: 4096,
            max_tools: 256,
            auth_failures_per_minute: 30,
            per_key: Quota {
                requests_per_minute: Some(600),
                tokens_per_minute: Some(1_000_000),
                concurrent_requests: Some(64),
            },
            per_user: Quota::default(),
            per_model: Quota::default(),
        }
    }
}

/// A set of limits; an absent field is unlimited.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Quota {
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Prompt plus completion tokens per minute.
    pub tokens_per_minute: Option<u64>,
    /// Requests in flight at once.
    pub concurrent_requests: Option<u32>,
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn from_file(path: &str) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.into(),
            reason: e.to_string(),
        })?;
        Config::from_toml_str(&text, path)
    }

    /// Parses and checks configuration text; `name` is used in messages. Every problem is
    /// reported in one go, not only the first: see [`parse_all`].
    pub fn from_toml_str(text: &str, name: &str) -> Result<Config, ConfigError> {
        let locate = LineIndex::new(text);
        let (config, mut problems) = parse_all(text, &locate);
        let Some(mut config) = config else {
            return Err(ConfigError::Invalid {
                path: name.into(),
                problems,
            });
        };
        if config.upstreams.is_empty() && config.models.is_empty() {
            config.upstreams = vec![UpstreamConfig::builtin_demo()];
            config.models = vec![ModelConfig::builtin_demo()];
        }
        problems.extend(config.check(&locate));
        if problems.is_empty() {
            Ok(config)
        } else {
            problems.sort_by_key(|p| (p.line.is_none(), p.line, p.column));
            Err(ConfigError::Invalid {
                path: name.into(),
                problems,
            })
        }
    }

    /// Looks a model up by the name clients use.
    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name.get_ref() == name)
    }

    fn check(&self, locate: &LineIndex) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut at = |span: Range<usize>, message: String| {
            let (line, column) = if span.is_empty() && span.start == 0 {
                (None, None)
            } else {
                let (l, c) = locate.position(span.start);
                (Some(l), Some(c))
            };
            problems.push(ConfigProblem { line, column, message });
        };
        for message in self
            .scan
            .problems()
            .into_iter()
            .chain(self.audit.problems())
            .chain(self.agent.problems())
        {
            at(0..0, message);
        }
        if self.version != CONFIG_VERSION {
            at(
                0..0,
                format!(
                    "unsupported `version = {}`; this build reads version {CONFIG_VERSION}",
                    self.version
                ),
            );
        }
        if self.server.listen.parse::<std::net::SocketAddr>().is_err() {
            at(
                0..0,
                format!(
                    "`server.listen` must be an address such as `127.0.0.1:8080`, not `{}`",
                    self.server.listen
                ),
            );
        }
        if self.server.body_timeout_ms == 0 {
            at(0..0, "`server.body_timeout_ms` must be greater than 0".into());
        }
        if self.limits.max_body_bytes == 0 {
            at(0..0, "`limits.max_body_bytes` must be greater than 0".into());
        }
        if self.limits.max_completion_tokens == 0 || self.limits.max_choices == 0 || self.limits.max_messages == 0 {
            at(
                0..0,
                "`limits.max_completion_tokens`, `limits.max_choices` and `limits.max_messages` must be greater than 0"
                    .into(),
            );
        }
        let money = |v: Option<f64>| v.is_some_and(|x| !x.is_finite() || x < 0.0);
        let named = [
            ("per_key".to_string(), self.budgets.per_key),
            ("per_user".to_string(), self.budgets.per_user),
            ("per_model".to_string(), self.budgets.per_model),
        ];
        let groups = self.budgets.groups.iter().map(|(g, b)| (format!("groups.{g}"), *b));
        for (name, b) in named.into_iter().chain(groups) {
            if money(b.daily_usd) || money(b.monthly_usd) {
                at(
                    0..0,
                    format!("`budgets.{name}` caps must be dollar amounts of 0 or more"),
                );
            }
        }
        for m in &self.models {
            if let Some(p) = m.price {
                if money(Some(p.input)) || money(Some(p.output)) || money(p.cached_input) {
                    at(
                        m.name.span(),
                        format!(
                            "model `{}`: prices must be dollar amounts of 0 or more",
                            m.name.get_ref()
                        ),
                    );
                }
            }
        }
        if self.budgets.any() {
            for m in self.models.iter().filter(|m| m.price.is_none()) {
                at(
                    m.name.span(),
                    format!(
                        "model `{}` has no `price`, so `[budgets]` cannot count what it costs; give it one (`price = {{ input = 0.0, output = 0.0 }}` for a free model)",
                        m.name.get_ref()
                    ),
                );
            }
        }
        let mut upstream_names = HashSet::new();
        for u in &self.upstreams {
            if !upstream_names.insert(u.name.get_ref().as_str()) {
                at(
                    u.name.span(),
                    format!("upstream `{}` is defined twice", u.name.get_ref()),
                );
            }
            for m in &u.signed_models {
                match (&m.public_key, m.certificate_chain.is_empty()) {
                    (Some(_), false) => at(
                        m.path.span(),
                        format!(
                            "signed model `{}`: give `public_key` or `certificate_chain`, not both",
                            m.path.get_ref()
                        ),
                    ),
                    (None, true) => at(
                        m.path.span(),
                        format!(
                            "signed model `{}` needs `public_key` (key signatures) or `certificate_chain` (certificate signatures)",
                            m.path.get_ref()
                        ),
                    ),
                    _ => {}
                }
            }
            match (u.kind, &u.base_url) {
                (UpstreamKind::Openai, None) => at(
                    u.name.span(),
                    format!("upstream `{}` needs a `base_url`", u.name.get_ref()),
                ),
                (UpstreamKind::Openai, Some(url)) => {
                    let s = url.get_ref();
                    if !(s.starts_with("http://") || s.starts_with("https://")) {
                        at(
                            url.span(),
                            format!("`base_url` must start with `http://` or `https://`, not `{s}`"),
                        );
                    }
                }
                (UpstreamKind::Demo, Some(url)) => at(
                    url.span(),
                    "a `demo` upstream is built in and takes no `base_url`".into(),
                ),
                (UpstreamKind::Demo, None) => {}
            }
            if u.api_key_env.is_some() && u.api_key_file.is_some() {
                at(
                    u.name.span(),
                    format!(
                        "upstream `{}` sets both `api_key_env` and `api_key_file`; choose one",
                        u.name.get_ref()
                    ),
                );
            }
            if u.timeout_ms == 0 || u.connect_timeout_ms == 0 || u.idle_timeout_ms == 0 {
                at(
                    u.name.span(),
                    format!("upstream `{}`: timeouts must be greater than 0", u.name.get_ref()),
                );
            }
        }
        let mut model_names = HashSet::new();
        for m in &self.models {
            if !model_names.insert(m.name.get_ref().as_str()) {
                at(m.name.span(), format!("model `{}` is defined twice", m.name.get_ref()));
            }
            if m.targets.is_empty() {
                at(m.name.span(), format!("model `{}` has no `targets`", m.name.get_ref()));
            }
            for t in &m.targets {
                if !upstream_names.contains(t.upstream.get_ref().as_str()) {
                    at(
                        t.upstream.span(),
                        format!(
                            "model `{}` names upstream `{}`, which is not defined",
                            m.name.get_ref(),
                            t.upstream.get_ref()
                        ),
                    );
                }
            }
        }
        if let Some(oidc) = &self.auth.oidc {
            for alg in &oidc.algorithms {
                if !SUPPORTED_ALGORITHMS.contains(&alg.as_str()) {
                    at(
                        0..0,
                        format!(
                            "`auth.oidc.algorithms`: `{alg}` is not supported (use one of {})",
                            SUPPORTED_ALGORITHMS.join(", ")
                        ),
                    );
                }
            }
            if oidc.audiences.is_empty() {
                at(0..0, "`auth.oidc.audiences` must list at least one audience".into());
            }
        }
        if !self.auth.api_keys && self.auth.oidc.is_none() {
            at(
                0..0,
                "no way to authenticate: enable `auth.api_keys` or configure `auth.oidc`".into(),
            );
        }
        problems
    }
}

/// JWT algorithms the gateway accepts (asymmetric only: a shared secret is no identity).
pub const SUPPORTED_ALGORITHMS: &[&str] = &["RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"];

/// Turns toml's message into one that tells the user what to do where we can.
/// Deserialises the configuration, collecting every error rather than stopping at the first:
/// serde stops at the first bad key, so after each error the lines it covers are blanked
/// (spaces, so every later offset and line number stays where it was) and the text is read
/// again. What remains when it finally parses is returned with the problems, so the checks
/// that need a whole configuration run too. A problem that cannot be cut out this way (a table
/// header, a missing field of a whole table, a syntax error that does not go away) ends the
/// search.
fn parse_all(text: &str, locate: &LineIndex<'_>) -> (Option<Config>, Vec<ConfigProblem>) {
    const MAX_PROBLEMS: usize = 100;
    let mut working = text.to_string();
    let mut problems: Vec<ConfigProblem> = Vec::new();
    let mut last: Option<(Option<Range<usize>>, String)> = None;
    while problems.len() < MAX_PROBLEMS {
        let e = match toml::from_str::<Config>(&working) {
            Ok(c) => return (Some(c), problems),
            Err(e) => e,
        };
        let span = e.span();
        let message = hint_for(e.message());
        if last.as_ref() == Some(&(span.clone(), message.clone())) {
            break;
        }
        let (line, column) = match &span {
            Some(span) => {
                let (l, c) = locate.position(span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        problems.push(ConfigProblem {
            line,
            column,
            message: message.clone(),
        });
        let Some(span) = span.clone() else { break };
        if !blank_lines(&mut working, span.clone()) {
            break;
        }
        last = Some((Some(span), message));
    }
    (None, problems)
}

/// Replaces the lines `span` touches with spaces; refuses (returns false) when one of them is a
/// table header, since removing it would move its keys into the table before it.
fn blank_lines(text: &mut String, span: Range<usize>) -> bool {
    let start = text
        .get(..span.start.min(text.len()))
        .map_or(0, |t| t.rfind('\n').map_or(0, |i| i + 1));
    let end_at = span.end.max(span.start + 1).min(text.len());
    let end = text
        .get(end_at..)
        .map_or(text.len(), |t| t.find('\n').map_or(text.len(), |i| end_at + i));
    let Some(region) = text.get(start..end) else {
        return false;
    };
    if region.is_empty() || region.lines().any(|l| l.trim_start().starts_with('[')) {
        return false;
    }
    let blank: String = region.chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
    // Keep byte offsets: a multi-byte character becomes as many spaces as it had bytes.
    let blank: String = blank
        .chars()
        .zip(region.chars())
        .flat_map(|(b, c)| std::iter::repeat_n(b, c.len_utf8()))
        .collect();
    text.replace_range(start..end, &blank);
    true
}

fn hint_for(message: &str) -> String {
    let message = message.trim();
    if message.contains("unknown field `api_key`") {
        return format!("{message}; secrets are never inline: use `api_key_env` or `api_key_file`");
    }
    message.to_string()
}

/// Byte offset → 1-based line and column (in characters).
struct LineIndex<'a> {
    text: &'a str,
    starts: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    fn new(text: &'a str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { text, starts }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts.get(line - 1).copied().unwrap_or(0);
        let column = self
            .text
            .get(start..offset.min(self.text.len()))
            .map_or(1, |s| s.chars().count() + 1);
        (line, column)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<ConfigProblem> {
        match Config::from_toml_str(text, "t.toml") {
            Ok(_) => vec![],
            Err(e) => e.problems().to_vec(),
        }
    }

    #[test]
    fn empty_file_gives_embedded_defaults() {
        let c = Config::from_toml_str("", "t").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert!(c.model("rampart-demo").is_some());
    }

    #[test]
    fn a_signed_model_needs_exactly_one_kind_of_trust() {
        let base =
            "[[upstreams]]\nname = \"u\"\nbase_url = \"http://x/v1\"\n[[upstreams.signed_models]]\npath = \"/m\"\n";
        let models = "[[models]]\nname = \"m\"\ntargets = [{ upstream = \"u\", model = \"m\" }]\n";
        let none = problems(&format!("{base}{models}"));
        assert!(
            none.iter()
                .any(|p| p.message.contains("needs `public_key`") && p.line == Some(5)),
            "{none:?}"
        );
        let both = problems(&format!(
            "{base}public_key = \"k.pub\"\ncertificate_chain = [\"ca.pem\"]\n{models}"
        ));
        assert!(both.iter().any(|p| p.message.contains("not both")), "{both:?}");
        let c = Config::from_toml_str(&format!("{base}public_key = \"k.pub\"\n{models}"), "t").unwrap();
        assert!(c.upstreams[0].signed_models[0].ignore_git_paths);
    }

    /// A newcomer's file with six problems of different kinds gets all six in one run.
    #[test]
    fn every_problem_is_reported_in_one_run() {
        let text = r#"version = 1
[server]
lisen = "127.0.0.1:8080"
body_timeout_ms = "soon"

[scan]
mode = "strict"

[[upstreams]]
name = "openai"
base_url = "api.openai.com"
api_key = "sk-123"

[[models]]
name = "gpt"
targets = [{ upstream = "opanai", model = "gpt-4o" }]
"#;
        let p = problems(text);
        let lines: Vec<Option<usize>> = p.iter().map(|p| p.line).collect();
        assert_eq!(
            lines,
            [Some(3), Some(4), Some(7), Some(11), Some(12), Some(16)],
            "{p:#?}"
        );
        assert!(p[0].message.contains("unknown field `lisen`"), "{p:#?}");
        assert!(p[2].message.contains("strict"), "{p:#?}");
        assert!(p[4].message.contains("api_key_env"), "{p:#?}");
        assert!(p[5].message.contains("opanai"), "{p:#?}");
    }

    #[test]
    fn budgets_need_prices_and_money_is_not_negative() {
        let base = "[[upstreams]]\nname = \"u\"\nbase_url = \"http://x/v1\"\n[[models]]\nname = \"m\"\ntargets = [{ upstream = \"u\", model = \"m\" }]\n";
        let p = problems(&format!("{base}[budgets]\nper_key = {{ daily_usd = 5.0 }}\n"));
        assert!(
            p.iter()
                .any(|p| p.message.contains("has no `price`") && p.line == Some(5)),
            "{p:?}"
        );
        let p = problems(&format!(
            "{base}price = {{ input = -1.0, output = 2.0 }}\n[budgets]\nper_user = {{ monthly_usd = -3.0 }}\n"
        ));
        assert!(p.iter().any(|p| p.message.contains("prices must be")), "{p:?}");
        assert!(p.iter().any(|p| p.message.contains("`budgets.per_user`")), "{p:?}");
        let c = Config::from_toml_str(
            &format!("{base}price = {{ input = 2.5, output = 10.0, cached_input = 1.25 }}\n"),
            "t",
        )
        .unwrap();
        let price = c.models[0].price.unwrap();
        // 1000 prompt tokens of which 400 cached, 100 completion: 600*2.5 + 400*1.25 + 100*10.
        assert_eq!(price.micros(1000, 400, 100), 3000);
    }

    #[test]
    fn blanking_keeps_offsets_and_refuses_headers() {
        let mut t = "a = 1\nb = \"é\"\n[x]\n".to_string();
        let len = t.len();
        assert!(blank_lines(&mut t, 8..11));
        assert_eq!(t.len(), len);
        assert_eq!(t.lines().nth(1).unwrap().trim(), "");
        assert!(!blank_lines(&mut t, 14..15));
    }

    #[test]
    fn unknown_key_is_located() {
        let p = problems("version = 1\n[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].line, Some(4));
        assert!(p[0].message.contains("unknown field `lisen`"), "{}", p[0].message);
    }

    #[test]
    fn inline_secret_is_refused_with_a_hint() {
        let p = problems("[[upstreams]]\nname = \"x\"\nbase_url = \"http://a\"\napi_key = \"sk-1\"\n");
        assert_eq!(p[0].line, Some(4));
        assert!(p[0].message.contains("api_key_env"));
    }

    #[test]
    fn dangling_upstream_reference_points_at_its_line() {
        let text = "[[upstreams]]\nname = \"a\"\nbase_url = \"http://x/v1\"\n\n[[models]]\nname = \"m\"\ntargets = [\n  { upstream = \"a\", model = \"m1\" },\n  { upstream = \"b\", model = \"m2\" },\n]\n";
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].line, Some(9));
        assert!(p[0].message.contains("`b`"));
    }

    #[test]
    fn every_problem_is_reported() {
        let text = "[[upstreams]]\nname = \"a\"\n[[upstreams]]\nname = \"a\"\nbase_url = \"ftp://x\"\n";
        let p = problems(text);
        assert_eq!(p.len(), 3, "{p:?}");
    }
}
