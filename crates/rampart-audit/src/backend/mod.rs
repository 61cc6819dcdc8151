//! Where the ledger is stored. Both backends hold the same three tables (records, data keys,
//! checkpoints) and do every write of one batch in one transaction.

mod postgres;
mod sqlite;

use std::path::PathBuf;

use crate::checkpoint::Checkpoint;
use crate::record::Stored;
use crate::AuditError;

pub use self::postgres::Postgres;
pub use self::sqlite::Sqlite;

/// A stored (wrapped) data key.
#[derive(Debug, Clone)]
pub struct DekRow {
    /// Random 63-bit id.
    pub id: i64,
    /// The subject it belongs to.
    pub subject: String,
    /// The master key that wraps it; `None` once destroyed.
    pub kek_id: Option<String>,
    /// The wrapped key; `None` once destroyed.
    pub wrapped: Option<Vec<u8>>,
    /// When it was made.
    pub created_ms: i64,
    /// When it was destroyed (erasure).
    pub destroyed_ms: Option<i64>,
}

/// Everything one commit writes.
#[derive(Debug, Default)]
pub struct Batch {
    /// New data keys.
    pub keys: Vec<DekRow>,
    /// Records, in chain order.
    pub records: Vec<Stored>,
    /// A checkpoint over the last record, if one is due.
    pub checkpoint: Option<Checkpoint>,
}

/// What `search` and `export` select.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Exact principal (`key:ID`, `user:ID`).
    pub principal: Option<String>,
    /// Exact data subject.
    pub subject: Option<String>,
    /// Exact model.
    pub model: Option<String>,
    /// Exact decision.
    pub decision: Option<String>,
    /// A detector (`pii`) or a label (`pii:email`).
    pub finding: Option<String>,
    /// `exchange` or `admin`.
    pub kind: Option<String>,
    /// Only this chain.
    pub chain: Option<String>,
    /// From this time (ms, inclusive).
    pub since_ms: Option<i64>,
    /// Before this time (ms, exclusive).
    pub until_ms: Option<i64>,
}

/// A position to continue after, for paging without loading everything.
pub type Cursor = Option<(String, u64)>;

/// The storage operations the ledger needs.
pub trait Backend: Send {
    /// Claims the right to extend `chain` for as long as this connection lives (PostgreSQL:
    /// an advisory lock; SQLite: one file per gateway, nothing to do).
    fn lock_chain(&mut self, _chain: &str) -> Result<(), AuditError> {
        Ok(())
    }
    /// The last (seq, hash) of a chain.
    fn head(&mut self, chain: &str) -> Result<Option<(u64, [u8; 32])>, AuditError>;
    /// The newest live data key of a subject.
    fn current_dek(&mut self, subject: &str) -> Result<Option<DekRow>, AuditError>;
    /// A data key by id.
    fn dek(&mut self, id: i64) -> Result<Option<DekRow>, AuditError>;
    /// Every live data key (for master-key rotation).
    fn live_deks(&mut self) -> Result<Vec<DekRow>, AuditError>;
    /// Writes a batch in one durable transaction.
    fn write(&mut self, batch: &Batch) -> Result<(), AuditError>;
    /// Proves the store takes writes again (a real, durable write).
    fn probe(&mut self, now_ms: i64) -> Result<(), AuditError>;
    /// Destroys every data key of `subject`; returns how many.
    fn destroy_subject_keys(&mut self, subject: &str, now_ms: i64) -> Result<usize, AuditError>;
    /// Replaces wrapped keys (rotation); the records are not touched.
    fn rewrap(&mut self, rows: &[DekRow]) -> Result<(), AuditError>;
    /// Drops the ciphertext of payloads older than `before_ms`; returns how many.
    fn drop_payloads_before(&mut self, before_ms: i64) -> Result<usize, AuditError>;
    /// Chains in the ledger.
    fn chains(&mut self) -> Result<Vec<String>, AuditError>;
    /// Up to `limit` records of `chain` with `seq > after`, in order.
    fn chain_page(&mut self, chain: &str, after: u64, limit: usize) -> Result<Vec<Stored>, AuditError>;
    /// Up to `limit` matching records after `cursor`, ordered by (chain, seq).
    fn search(&mut self, filter: &Filter, cursor: &Cursor, limit: usize) -> Result<Vec<Stored>, AuditError>;
    /// Checkpoints of a chain, in order.
    fn checkpoints(&mut self, chain: &str) -> Result<Vec<Checkpoint>, AuditError>;
}

/// Which store to open.
#[derive(Debug, Clone)]
pub enum Location {
    /// A SQLite file (WAL mode).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string.
    Postgres(String),
}

impl Location {
    /// Opens a connection (creating the schema when missing).
    pub fn open(&self) -> Result<Box<dyn Backend>, AuditError> {
        Ok(match self {
            Location::Sqlite(p) => Box::new(Sqlite::open(p)?),
            Location::Postgres(url) => Box::new(Postgres::connect(url)?),
        })
    }

    /// Opens a ledger that must already exist (readers: a typo in a path must not create an
    /// empty ledger that then "verifies").
    pub fn open_existing(&self) -> Result<Box<dyn Backend>, AuditError> {
        if let Location::Sqlite(p) = self {
            if !p.exists() {
                return Err(AuditError::Unavailable(format!("no ledger at `{}`", p.display())));
            }
        }
        self.open()
    }

    /// For messages, without any password.
    pub fn describe(&self) -> String {
        match self {
            Location::Sqlite(p) => format!("sqlite:{}", p.display()),
            Location::Postgres(url) => {
                let safe: Vec<String> = url
                    .split_whitespace()
                    .filter(|kv| !kv.starts_with("password"))
                    .map(str::to_string)
                    .collect();
                let joined = safe.join(" ");
                match joined
                    .split_once("://")
                    .and_then(|(s, rest)| rest.split_once('@').map(|(_, h)| (s, h)))
                {
                    Some((scheme, host)) => format!("{scheme}://…@{host}"),
                    None => format!("postgres:{joined}"),
                }
            }
        }
    }
}

pub(crate) fn hash32(v: Vec<u8>, what: &'static str) -> Result<[u8; 32], AuditError> {
    v.try_into()
        .map_err(|_| AuditError::Corrupt(format!("a stored {what} is not 32 bytes")))
}

/// Finding filter as SQL LIKE patterns: a whole label, or a detector prefix.
pub(crate) fn finding_patterns(f: &str) -> (String, String) {
    let esc = f.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    (format!("%\n{esc}\n%"), format!("%\n{esc}:%"))
}
