//! The `[audit]` section: where the ledger lives, how records are made durable, when
//! checkpoints are signed and exported, whether bodies are kept (encrypted), and for how long.

use serde::Deserialize;

/// Ledger storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuditBackend {
    /// A SQLite file (WAL), the default.
    #[default]
    Sqlite,
    /// PostgreSQL, shared by several gateway replicas (each writes its own chain).
    Postgres,
}

/// When a record counts as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuditDurability {
    /// One transaction and fsync per record.
    Sync,
    /// Records waiting in the bounded queue share one transaction (group commit). The
    /// response still waits for its record.
    #[default]
    Group,
}

/// `[audit]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record exchanges and admin actions. Turning it off is for benchmarks.
    pub enabled: bool,
    /// `sqlite` or `postgres`.
    pub backend: AuditBackend,
    /// SQLite file; default `<data_dir>/audit.db`.
    pub path: Option<String>,
    /// Environment variable holding the PostgreSQL connection string.
    pub postgres_url_env: String,
    /// This replica's chain name (unique per replica sharing a PostgreSQL ledger).
    pub chain: String,
    /// `sync` or `group`.
    pub durability: AuditDurability,
    /// Most records per group commit.
    pub max_batch: usize,
    /// Bound of the in-memory queue; when full, requests are refused.
    pub queue_capacity: usize,
    /// Sign a checkpoint after this many records...
    pub checkpoint_every: u64,
    /// ...or after this many seconds.
    pub checkpoint_interval_secs: u64,
    /// Also append each checkpoint to this file (JSON Lines); keep it off the ledger's disk.
    pub checkpoint_export: Option<String>,
    /// Also POST each checkpoint as JSON to this URL.
    pub checkpoint_webhook: Option<String>,
    /// Ed25519 seed (hex); created on first start. Default `<data_dir>/audit-signing.key`.
    pub signing_key_file: Option<String>,
    /// Keep prompt and response bodies, PII- and secret-redacted, encrypted per data subject.
    pub store_bodies: bool,
    /// Environment variable holding the 32-byte master key (base64 or hex).
    pub master_key_env: String,
    /// A file holding the master key instead.
    pub master_key_file: Option<String>,
    /// Older master keys (files), still needed to unwrap data keys until `rampart audit rotate-key`.
    pub old_master_key_files: Vec<String>,
    /// Drop bodies older than this many days (0 keeps them).
    pub retention_days: u64,
    /// Replace each subject's data key after this many days.
    pub data_key_max_age_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            backend: AuditBackend::Sqlite,
            path: None,
            postgres_url_env: "RAMPART_AUDIT_DATABASE_URL".into(),
            chain: "local".into(),
            durability: AuditDurability::Group,
            max_batch: 256,
            queue_capacity: 4096,
            checkpoint_every: 1000,
            checkpoint_interval_secs: 60,
            checkpoint_export: None,
            checkpoint_webhook: None,
            signing_key_file: None,
            store_bodies: false,
            master_key_env: "RAMPART_AUDIT_MASTER_KEY".into(),
            master_key_file: None,
            old_master_key_files: Vec::new(),
            retention_days: 0,
            data_key_max_age_days: 30,
        }
    }
}

impl AuditConfig {
    /// What is wrong with these settings (checked with the rest of the file).
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.chain.is_empty() || self.chain.len() > 128 {
            p.push("`audit.chain` must be 1 to 128 characters".into());
        }
        if self.max_batch == 0 || self.queue_capacity == 0 {
            p.push("`audit.max_batch` and `audit.queue_capacity` must be at least 1".into());
        }
        if self.checkpoint_every == 0 || self.checkpoint_interval_secs == 0 {
            p.push("`audit.checkpoint_every` and `audit.checkpoint_interval_secs` must be at least 1".into());
        }
        if self.data_key_max_age_days == 0 {
            p.push("`audit.data_key_max_age_days` must be at least 1".into());
        }
        if let Some(url) = &self.checkpoint_webhook {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                p.push(format!(
                    "`audit.checkpoint_webhook` must be an http(s) URL, not `{url}`"
                ));
            }
        }
        p
    }
}
