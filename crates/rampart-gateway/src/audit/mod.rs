//! What the gateway writes to the audit ledger, and when.
//!
//! Every inference request that reaches the gateway leaves one record (a streamed one leaves
//! two: `start` before the first byte, `end` before the final event), with the principal, the
//! model and its pinned upstream model, the deciding policies, every scanner finding and the
//! action taken, token counts, timings and the outcome. Every admin change leaves one too.
//! A response goes out only after its record is durable; when the ledger cannot write, the
//! gateway refuses traffic with `audit_unavailable` (fail closed) until it can.

pub mod api;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::StatusCode;
use rampart_audit::{Entry, KeyProvider, Kind, Ledger, LocalKeys, Location, Options, SecretKey, Signer};
use rampart_policy::{AuditBackend, AuditConfig, AuditDurability, Config};
use rampart_scan::transform::{self, Edit, Pseudonyms};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::state::Gateway;

/// Why the ledger could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("audit ledger: {0}")]
pub struct AuditOpenError(pub String);

/// Opens the ledger the config describes (`None` when `[audit] enabled = false`).
pub fn open(config: &Config, http: &reqwest::Client) -> Result<Option<Arc<Ledger>>, AuditOpenError> {
    let a = &config.audit;
    if !a.enabled {
        return Ok(None);
    }
    let data_dir = Path::new(&config.server.data_dir);
    let location = location(a, data_dir)?;
    let signer = Signer::load_or_create(&signing_key_path(a, data_dir)).map_err(|e| AuditOpenError(e.to_string()))?;
    let keys = master_keys(a)?;
    if a.store_bodies && keys.is_none() {
        return Err(AuditOpenError(format!(
            "`store_bodies = true` needs a master key: set {} (32 bytes, base64 or hex) or `master_key_file`",
            a.master_key_env
        )));
    }
    let hook = a.checkpoint_webhook.clone().and_then(|url| {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let client = http.clone();
        let hook: rampart_audit::ledger::CheckpointHook = Box::new(move |cp| {
            let (client, url, body) = (client.clone(), url.clone(), json!(cp));
            handle.spawn(async move {
                match client
                    .post(&url)
                    .json(&body)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {}
                    Ok(r) => tracing::error!(
                        status = r.status().as_u16(),
                        "checkpoint webhook refused the checkpoint"
                    ),
                    Err(e) => tracing::error!(error = %e, "checkpoint webhook failed"),
                }
            });
        });
        Some(hook)
    });
    let ledger = Ledger::open(location, options(a), signer, keys, hook).map_err(|e| AuditOpenError(e.to_string()))?;
    tracing::info!(
        store = %ledger.location().describe(),
        chain = ledger.chain(),
        checkpoint_public_key = ledger.public_key(),
        "audit ledger open; keep the checkpoint public key where the ledger's host cannot change it"
    );
    Ok(Some(Arc::new(ledger)))
}

/// Where the ledger is stored.
pub fn location(a: &AuditConfig, data_dir: &Path) -> Result<Location, AuditOpenError> {
    Ok(match a.backend {
        AuditBackend::Sqlite => {
            Location::Sqlite(a.path.as_ref().map_or_else(|| data_dir.join("audit.db"), PathBuf::from))
        }
        AuditBackend::Postgres => Location::Postgres(std::env::var(&a.postgres_url_env).map_err(|_| {
            AuditOpenError(format!(
                "`backend = \"postgres\"` needs the connection string in ${}",
                a.postgres_url_env
            ))
        })?),
    })
}

/// The checkpoint signing key's file.
pub fn signing_key_path(a: &AuditConfig, data_dir: &Path) -> PathBuf {
    a.signing_key_file
        .as_ref()
        .map_or_else(|| data_dir.join("audit-signing.key"), PathBuf::from)
}

fn read_key(path: &str) -> Result<SecretKey, AuditOpenError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuditOpenError(format!("master key file `{path}`: {e}")))?;
    SecretKey::parse(&text).map_err(|e| AuditOpenError(format!("master key file `{path}`: {e}")))
}

/// The master keys, when configured: from the environment variable, else the file.
pub fn master_keys(a: &AuditConfig) -> Result<Option<Arc<dyn KeyProvider>>, AuditOpenError> {
    let current = match std::env::var(&a.master_key_env) {
        Ok(v) if !v.trim().is_empty() => {
            Some(SecretKey::parse(&v).map_err(|e| AuditOpenError(format!("${}: {e}", a.master_key_env)))?)
        }
        _ => a.master_key_file.as_deref().map(read_key).transpose()?,
    };
    let Some(current) = current else {
        return Ok(None);
    };
    let old = a
        .old_master_key_files
        .iter()
        .map(|p| read_key(p))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some(Arc::new(LocalKeys::new(current, old))))
}

/// Ledger options from the config.
pub fn options(a: &AuditConfig) -> Options {
    Options {
        chain: a.chain.clone(),
        durability: match a.durability {
            AuditDurability::Sync => rampart_audit::Durability::Sync,
            AuditDurability::Group => rampart_audit::Durability::Group { max_batch: a.max_batch },
        },
        queue_capacity: a.queue_capacity,
        checkpoint_every: a.checkpoint_every,
        checkpoint_interval: Duration::from_secs(a.checkpoint_interval_secs),
        checkpoint_export: a.checkpoint_export.as_ref().map(PathBuf::from),
        data_key_max_age: Duration::from_secs(a.data_key_max_age_days.saturating_mul(86_400)),
        probe_interval: Duration::from_millis(500),
    }
}

/// The refusal when the ledger cannot take the record.
pub fn unavailable() -> ApiError {
    ApiError::internal(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        "the audit ledger cannot record this request, so it was not served; try again shortly",
    )
}

/// Refuses up front while the ledger is down, so no upstream call is made for a request
/// that could not be recorded.
pub fn admit(gw: &Gateway) -> Result<(), ApiError> {
    match &gw.audit {
        Some(l) if !l.healthy() => {
            gw.metrics.audit_failures.inc();
            Err(unavailable())
        }
        _ => Ok(()),
    }
}

/// Appends one entry and waits until it is durable.
pub async fn append(gw: &Gateway, entry: Entry) -> Result<(), ApiError> {
    let Some(ledger) = &gw.audit else {
        return Ok(());
    };
    let t = Instant::now();
    let r = ledger.append(entry).await;
    gw.metrics.audit_append.observe(t.elapsed().as_secs_f64());
    match r {
        Ok(_) => {
            gw.metrics.audit_records.inc();
            Ok(())
        }
        Err(e) => {
            gw.metrics.audit_failures.inc();
            tracing::error!(error = %e, "audit record not written; the request is refused");
            Err(unavailable())
        }
    }
}

/// Records an admin action by `actor`.
pub async fn admin(gw: &Gateway, actor: &str, action: &str, meta: Value) -> Result<(), ApiError> {
    append(gw, Entry::admin(actor, action, meta)).await
}

/// One finding as recorded (no text).
#[derive(Debug, Clone)]
pub struct FindingRecord {
    /// `input` or `output`.
    pub direction: &'static str,
    /// Message or choice index.
    pub index: usize,
    /// Detector name.
    pub detector: &'static str,
    /// Type.
    pub kind: String,
    /// Score.
    pub score: f32,
    /// Action (or would-be action in shadow mode).
    pub action: &'static str,
    /// Shadow mode.
    pub shadow: bool,
}

/// What the request path learns about one exchange, for its record. Shared between the
/// handler and the relay, which may outlive it (streams).
#[derive(Debug, Default)]
pub struct Trail {
    /// When it began.
    pub started: Option<Instant>,
    /// Unix ms at the start.
    pub ts_ms: i64,
    /// Request id.
    pub request_id: String,
    /// `chat`, `completions`, `embeddings`.
    pub endpoint: &'static str,
    /// `key:ID` or `user:ID`, once authenticated.
    pub principal: Option<String>,
    /// The data subject (the user).
    pub subject: String,
    /// Key id, if a key.
    pub key_id: Option<String>,
    /// Requested model.
    pub model: String,
    /// Upstream that answered.
    pub upstream: Option<String>,
    /// The pinned model the upstream was asked for.
    pub upstream_model: Option<String>,
    /// Policies that allowed it.
    pub policies: Vec<String>,
    /// Streamed.
    pub stream: bool,
    /// Prompt tokens (counted, or upstream's).
    pub prompt_tokens: u64,
    /// Completion tokens.
    pub completion_tokens: Option<u64>,
    /// Scanner findings.
    pub findings: Vec<FindingRecord>,
    /// Tool-guard decisions on the tool calls the model proposed (tool, class, verdict, code,
    /// reason, taint, shadow verdict): why a call went through or did not.
    pub tool_calls: Vec<Value>,
    /// The exchange held untrusted content (a tool result, a document).
    pub tainted: bool,
    /// The upstream's HTTP status.
    pub upstream_status: Option<u16>,
    /// Milliseconds until the upstream's headers.
    pub upstream_ms: Option<u64>,
    /// Body as sent upstream, when bodies are kept.
    pub request_body: Option<Value>,
    /// The answer as sent (buffered), when bodies are kept and it is not too large.
    pub response_body: Option<Value>,
    /// Streamed answer events as sent, when bodies are kept (bounded).
    pub response_text: Option<String>,
    /// A final record was written.
    pub recorded: bool,
}

impl Trail {
    /// The exchange's one access-log line, written where it ends (an error, a buffered answer
    /// released, a stream over), whether or not a ledger is configured: who, which model and
    /// upstream, the decision, findings, tokens and time; never prompt or answer text.
    pub fn log_access(&self, decision: &str, status: u16, code: Option<&str>) {
        let mut findings: Vec<String> = self
            .findings
            .iter()
            .map(|f| format!("{}:{}:{}:{}", f.direction, f.detector, f.kind, f.action))
            .collect();
        findings.dedup();
        let ms = self.started.map(|s| s.elapsed().as_millis() as u64);
        tracing::info!(
            target: "rampart::access",
            request_id = %self.request_id,
            principal = self.principal.as_deref().unwrap_or("anonymous"),
            endpoint = self.endpoint,
            model = self.model.as_str(),
            upstream = self.upstream.as_deref().unwrap_or(""),
            stream = self.stream,
            decision,
            status,
            code = code.unwrap_or(""),
            findings = %findings.join(","),
            prompt_tokens = self.prompt_tokens,
            completion_tokens = self.completion_tokens.unwrap_or(0),
            ms = ms.unwrap_or(0),
            "exchange"
        );
    }
}

/// The shared handle.
pub type SharedTrail = Arc<Mutex<Trail>>;

/// Largest answer kept for the ledger (bytes).
pub const MAX_KEPT_TEXT: usize = 64 * 1024;

impl Trail {
    /// Builds the record. `phase` is `complete`, `start` or `end`.
    pub fn entry(
        &self,
        phase: &str,
        decision: &str,
        status: u16,
        code: Option<&str>,
        payload: Option<Vec<u8>>,
    ) -> Entry {
        let findings: Vec<Value> = self
            .findings
            .iter()
            .map(|f| {
                json!({"direction": f.direction, "index": f.index, "detector": f.detector, "type": f.kind,
                       "score": (f64::from(f.score) * 1000.0).round() / 1000.0, "action": f.action, "shadow": f.shadow})
            })
            .collect();
        let mut labels: Vec<String> = self
            .findings
            .iter()
            .map(|f| format!("{}:{}", f.detector, f.kind))
            .collect();
        labels.sort();
        labels.dedup();
        let elapsed = self.started.map(|s| s.elapsed().as_millis() as u64);
        Entry {
            kind: Kind::Exchange,
            ts_ms: self.ts_ms,
            subject: self.subject.clone(),
            principal: self.principal.clone().unwrap_or_else(|| "anonymous".into()),
            model: self.model.clone(),
            decision: decision.to_string(),
            findings: labels,
            meta: json!({
                "request_id": self.request_id,
                "phase": phase,
                "endpoint": self.endpoint,
                "key_id": self.key_id,
                "upstream": self.upstream,
                "upstream_model": self.upstream_model,
                "policies": self.policies,
                "stream": self.stream,
                "status": status,
                "code": code,
                "upstream_status": self.upstream_status,
                "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
                "timings_ms": {"total": elapsed, "upstream_headers": self.upstream_ms},
                "findings": findings,
                "tainted": self.tainted,
                "tool_calls": self.tool_calls,
            }),
            payload,
        }
    }

    /// The body payload (request as forwarded, answer text), PII and secrets redacted.
    pub fn payload(&self, gw: &Gateway) -> Option<Vec<u8>> {
        if self.request_body.is_none() && self.response_text.is_none() && self.response_body.is_none() {
            return None;
        }
        let response = match (&self.response_body, &self.response_text) {
            (Some(b), _) => b.clone(),
            (None, Some(t)) => Value::String(t.clone()),
            (None, None) => Value::Null,
        };
        let mut v = json!({"request": self.request_body, "response": response});
        redact(gw, &mut v);
        serde_json::to_vec(&v).ok()
    }
}

/// A text with PII and secrets redacted, as the ledger keeps it.
pub fn redact_text(gw: &Gateway, text: &str) -> String {
    let mut v = Value::String(text.to_string());
    redact(gw, &mut v);
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

/// Replaces PII and secrets in every string of `v` with `[TYPE]`.
pub fn redact(gw: &Gateway, v: &mut Value) {
    match v {
        Value::String(s) => {
            let mut findings = gw.scanner.scan_pii(s);
            findings.extend(gw.scanner.scan_secrets(s));
            if !findings.is_empty() {
                let edits: Vec<_> = findings.iter().map(|f| (f, Edit::Redact)).collect();
                *s = transform::rewrite(s, &edits, &mut Pseudonyms::default());
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact(gw, x)),
        Value::Object(o) => o.values_mut().for_each(|x| redact(gw, x)),
        _ => {}
    }
}

/// Whether bodies are kept.
pub fn keeps_bodies(gw: &Gateway) -> bool {
    gw.audit.is_some() && gw.runtime.load().config.audit.store_bodies
}

/// Every few seconds, writes the authentication refusals counted since the last time as one
/// `auth.refused` record (count, distinct addresses, the most frequent ones).
pub fn spawn_refusal_records(gw: &Arc<Gateway>) {
    if gw.audit.is_none() {
        return;
    }
    let gw = Arc::downgrade(gw);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(crate::auth::flood::FLUSH_EVERY);
        loop {
            every.tick().await;
            let Some(gw) = gw.upgrade() else {
                return;
            };
            if let Some(meta) = gw.auth_failures.take() {
                if let Err(e) = admin(&gw, "system:auth", "auth.refused", meta).await {
                    tracing::error!(error = %e.message(), "cannot record refused authentications");
                }
            }
        }
    });
}

/// Hourly, drops bodies older than `[audit] retention_days` (read at each run, so a reload
/// changes it). Records keep their metadata and the chain still verifies.
pub fn spawn_retention(gw: &Arc<Gateway>) {
    let Some(ledger) = gw.audit.clone() else {
        return;
    };
    let gw = Arc::downgrade(gw);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(3600));
        loop {
            every.tick().await;
            let Some(gw) = gw.upgrade() else {
                return;
            };
            let days = gw.runtime.load().config.audit.retention_days;
            if days == 0 {
                continue;
            }
            let before = rampart_audit::now_ms() - (days as i64).saturating_mul(86_400_000);
            match ledger.retain(before, "system:retention").await {
                Ok(0) => {}
                Ok(n) => tracing::info!(payloads = n, days, "audit retention dropped expired bodies"),
                Err(e) => tracing::error!(error = %e, "audit retention failed"),
            }
        }
    });
}
