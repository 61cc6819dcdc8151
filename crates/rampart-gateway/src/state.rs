//! What the gateway holds while it runs: the reloadable [`Runtime`] (config, policies,
//! upstreams) behind an `ArcSwap`, and the long-lived parts (database, key cache, blocks,
//! limits, metrics, tokenizer) that survive reloads.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use rampart_policy::{Config, ConfigError, PolicyEngine, PolicyError, Quota, Target};

use crate::auth::keys::{KeyCache, NewKey};
use crate::auth::oidc::{OidcError, OidcVerifier};
use crate::blocks::Blocklist;
use crate::limits::Limiter;
use crate::metrics::Metrics;
use crate::model_gate::{self, Gate};
use crate::store::{Store, StoreError};
use crate::tokens::{Tokenizer, TokenizerError};
use crate::upstream::{CredentialError, Upstream};

/// A configuration could not be turned into a running gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The file is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The policies are invalid.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// An upstream's key is missing.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// The OIDC settings are unusable.
    #[error("oidc: {0}")]
    Oidc(#[from] OidcError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The tokenizer failed to load.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// The audit ledger cannot be opened.
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditOpenError),
    /// Building the runtime failed unexpectedly.
    #[error("building the configuration failed: {0}")]
    Build(String),
    /// The embedded semantic model cannot be loaded.
    #[error("semantic tier: {0}")]
    Semantic(String),
}

/// A model as routed: its failover list of (upstream, pinned model).
#[derive(Debug, Clone)]
pub struct Route {
    /// The name clients use.
    pub name: String,
    /// In failover order.
    pub targets: Vec<(Arc<Upstream>, String)>,
    /// Per-model limits.
    pub limits: Quota,
    /// What its tokens cost, when priced.
    pub price: Option<rampart_policy::Price>,
    /// Upstreams of this model left out because a signed model they serve did not verify.
    pub disabled: Vec<String>,
}

/// Everything a reload replaces at once.
#[derive(Debug)]
pub struct Runtime {
    /// The parsed config.
    pub config: Config,
    /// Cedar policies.
    pub policy: PolicyEngine,
    /// Routes by client-facing model name.
    pub routes: HashMap<String, Arc<Route>>,
    /// JWT verification, when OIDC is configured.
    pub oidc: Option<Arc<OidcVerifier>>,
    /// When it was built (unix seconds).
    pub loaded_at: i64,
    /// The signed-model gate's decision for each upstream that names signed models.
    pub gates: Vec<Gate>,
    /// The tool-call guard, when `[agent]` lists tools.
    pub tools: Option<rampart_agent::ToolGuard>,
}

impl Runtime {
    /// Builds a runtime from a checked config. `demo_base` is the demo upstream's URL;
    /// relative policy paths are read from `base` (the config file's directory).
    pub fn build(
        config: Config,
        base: &Path,
        demo_base: Option<&str>,
        http: &reqwest::Client,
    ) -> Result<Runtime, BuildError> {
        let policy = PolicyEngine::from_config(&config, |p| std::fs::read_to_string(base.join(p)))?;
        let mut upstreams = HashMap::new();
        let mut gates = Vec::new();
        for u in &config.upstreams {
            let upstream = Upstream::build(u, demo_base)?;
            // Verify before the upstream can be routed to: a failed gate leaves it out.
            if let Some(gate) = model_gate::check_upstream(u, base) {
                let enabled = gate.enabled;
                gates.push(gate);
                if !enabled {
                    continue;
                }
            }
            upstreams.insert(u.name.get_ref().clone(), upstream);
        }
        let mut routes = HashMap::new();
        for m in &config.models {
            let targets = m
                .targets
                .iter()
                .filter_map(|Target { upstream, model }| {
                    upstreams.get(upstream.get_ref()).map(|u| (u.clone(), model.clone()))
                })
                .collect();
            let disabled = m
                .targets
                .iter()
                .map(|t| t.upstream.get_ref())
                .filter(|u| gates.iter().any(|g| !g.enabled && &g.upstream == *u))
                .cloned()
                .collect();
            let limits = m.limits.unwrap_or(config.limits.per_model);
            let name = m.name.get_ref().clone();
            routes.insert(
                name.clone(),
                Arc::new(Route {
                    name,
                    targets,
                    limits,
                    price: m.price,
                    disabled,
                }),
            );
        }
        let oidc = match &config.auth.oidc {
            Some(o) => Some(Arc::new(OidcVerifier::new(o.clone(), http.clone())?)),
            None => None,
        };
        let tools = rampart_agent::ToolGuard::new(&config.agent).map_err(|e| BuildError::Build(e.to_string()))?;
        Ok(Runtime {
            config,
            policy,
            routes,
            oidc,
            loaded_at: now(),
            gates,
            tools,
        })
    }
}

/// Unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// Where the config comes from, for reloads.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// Embedded defaults (no file); a reload keeps them.
    Defaults,
    /// A file, read again on each reload.
    File(PathBuf),
}

impl ConfigSource {
    /// The directory relative paths in the config are read from.
    pub fn base_dir(&self) -> PathBuf {
        match self {
            ConfigSource::Defaults => PathBuf::from("."),
            ConfigSource::File(p) => p.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from(".")),
        }
    }

    /// Reads and checks the config.
    pub fn load(&self) -> Result<Config, ConfigError> {
        match self {
            ConfigSource::Defaults => Ok(Config::default()),
            ConfigSource::File(p) => Config::from_file(&p.display().to_string()),
        }
    }
}

/// Shared state of a running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// The current runtime.
    pub runtime: ArcSwap<Runtime>,
    /// Where reloads read from.
    pub source: ConfigSource,
    /// Durable state.
    pub store: Store,
    /// API keys.
    pub keys: KeyCache,
    /// Kill switch.
    pub blocks: Blocklist,
    /// Refused authentications per client address.
    pub auth_failures: crate::auth::flood::AuthFailures,
    /// Limits.
    pub limiter: Limiter,
    /// Spend against `[budgets]`.
    pub budgets: Arc<crate::budgets::Budgets>,
    /// Metrics.
    pub metrics: Metrics,
    /// Prompt tokenizer.
    pub tokenizer: Tokenizer,
    /// Detectors, compiled once.
    pub scanner: std::sync::Arc<rampart_scan::Scanner>,
    /// The semantic injection tier behind its batching queue (one encoder for all requests).
    pub semantic: Option<rampart_semantic::Batcher>,
    /// The audit ledger (opened once; `[audit]` changes need a restart).
    pub audit: Option<Arc<rampart_audit::Ledger>>,
    /// For OIDC fetches.
    pub http: reqwest::Client,
    /// The built-in demo model's base URL, when one is running.
    pub demo_base: Option<String>,
    /// Start time.
    pub started: Instant,
    /// MCP sessions that have seen untrusted content.
    pub mcp_taint: crate::mcp::Taint,
    reload_lock: tokio::sync::Mutex<()>,
}

/// Windows the semantic tier embeds in one pass, and requests that may wait for it.
const SEMANTIC_BATCH: usize = 32;
const SEMANTIC_QUEUE: usize = 1024;

/// Loads the embedded encoder and starts its batching worker.
fn semantic_tier() -> Result<rampart_semantic::Batcher, BuildError> {
    let detector = rampart_semantic::SemanticDetector::embedded().map_err(|e| BuildError::Semantic(e.to_string()))?;
    rampart_semantic::Batcher::start(std::sync::Arc::new(detector), SEMANTIC_BATCH, SEMANTIC_QUEUE)
        .map_err(|e| BuildError::Semantic(e.to_string()))
}

impl Gateway {
    /// Opens the store under the config's data directory and builds the first runtime.
    pub fn new(config: Config, source: ConfigSource, demo_base: Option<String>) -> Result<Gateway, BuildError> {
        let store = Store::open(std::path::Path::new(&config.server.data_dir))?;
        let auth_failures = config.limits.auth_failures_per_minute;
        let keys = KeyCache::default();
        keys.load(store.keys()?);
        let blocks = Blocklist::default();
        blocks.load(&store.blocks()?);
        let t = now();
        let budgets = Arc::new(crate::budgets::Budgets::load(
            store.spend(&crate::budgets::Budgets::current_periods(t))?,
            t,
        ));
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| BuildError::Credential(CredentialError::Client("oidc".into(), e.to_string())))?;
        let audit = crate::audit::open(&config, &http)?;
        let runtime = Runtime::build(config, &source.base_dir(), demo_base.as_deref(), &http)?;
        Ok(Gateway {
            audit,
            runtime: ArcSwap::from_pointee(runtime),
            source,
            store,
            keys,
            blocks,
            auth_failures: crate::auth::flood::AuthFailures::new(auth_failures),
            limiter: Limiter::default(),
            budgets,
            metrics: Metrics::new(),
            tokenizer: Tokenizer::load()?,
            scanner: std::sync::Arc::new(rampart_scan::Scanner::new()),
            semantic: Some(semantic_tier()?),
            http,
            demo_base,
            started: Instant::now(),
            mcp_taint: crate::mcp::Taint::default(),
            reload_lock: tokio::sync::Mutex::new(()),
        })
    }

    /// Creates the admin credential when none exists; returns its secret to show once.
    pub fn ensure_admin_credential(&self) -> Result<Option<String>, StoreError> {
        if self.store.has_admin_key()? {
            return Ok(None);
        }
        let k = NewKey::generate(
            crate::auth::keys::KeySpec {
                name: "first-start admin credential".into(),
                admin: true,
                ..crate::auth::keys::KeySpec::for_owner("admin")
            },
            now(),
        );
        self.store.insert_key(&k.record)?;
        self.keys.put(k.record);
        Ok(Some(k.secret.to_string()))
    }

    /// Re-reads the config and swaps it in; on any error the running config stays. Either
    /// outcome is an audited admin action by `actor`.
    pub async fn reload(&self, actor: &str) -> Result<(), BuildError> {
        let result = self.reload_inner().await;
        let meta = match &result {
            Ok(()) => serde_json::json!({"result": "ok"}),
            Err(e) => serde_json::json!({"result": "refused", "error": e.to_string()}),
        };
        // A failed audit write is logged by `append`; the reload itself has happened.
        let _ = crate::audit::admin(self, actor, "config.reload", meta).await;
        result
    }

    async fn reload_inner(&self) -> Result<(), BuildError> {
        let _guard = self.reload_lock.lock().await;
        // Building may hash signed model directories: keep it off the async workers.
        let (source, demo_base, http) = (self.source.clone(), self.demo_base.clone(), self.http.clone());
        let result = tokio::task::spawn_blocking(move || {
            let config = source.load()?;
            Runtime::build(config, &source.base_dir(), demo_base.as_deref(), &http)
        })
        .await
        .unwrap_or_else(|e| Err(BuildError::Build(e.to_string())));
        match result {
            Ok(rt) => {
                self.runtime.store(Arc::new(rt));
                self.metrics
                    .reloads
                    .get_or_create(&crate::metrics::ResultLabels { result: "ok" })
                    .inc();
                tracing::info!("configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.metrics
                    .reloads
                    .get_or_create(&crate::metrics::ResultLabels { result: "error" })
                    .inc();
                tracing::warn!(error = %e, "configuration reload refused; the running configuration stays");
                Err(e)
            }
        }
    }
}
