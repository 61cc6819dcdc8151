//! Rampart's audit ledger: every exchange and admin action as a record in a hash chain, with
//! Ed25519-signed checkpoints, payloads encrypted per data subject, crypto-shredding, retention,
//! verification, search and streaming export. SQLite by default, PostgreSQL for clusters.
//!
//! The ledger does not decide what to log (the gateway does); it decides how a record is made
//! tamper-evident, encrypted and durable. `FORMAT.md` specifies the bytes.
//!
//! ```text
//! Entry ─▶ Ledger::append ─▶ writer thread: seal payload, chain, (checkpoint), one transaction ─▶ ack
//! ```

pub mod backend;
pub mod checkpoint;
pub mod crypto;
pub mod export;
pub mod ledger;
pub mod record;
pub mod verify;

pub use backend::{Backend, Filter, Location};
pub use checkpoint::{Checkpoint, Signer};
pub use crypto::{KeyProvider, LocalKeys, SecretKey};
pub use ledger::{Durability, Health, Ledger, Options, Receipt};
pub use record::{Entry, Kind, Stored};
pub use verify::{verify, Problem, ProblemKind, Report};

/// Why a ledger operation failed.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The store cannot be reached or refuses writes (disk full, database down).
    #[error("audit ledger unavailable: {0}")]
    Unavailable(String),
    /// The store rejected the operation.
    #[error("audit ledger storage error: {0}")]
    Backend(String),
    /// Another writer extended the chain first (retried internally).
    #[error("another writer extended chain `{0}`")]
    Conflict(String),
    /// Another process holds this chain.
    #[error("chain `{0}` is held by another process; give each replica its own chain name")]
    ChainBusy(String),
    /// The bounded queue is full.
    #[error("audit ledger queue is full")]
    QueueFull,
    /// Key material is missing or invalid.
    #[error("audit key: {0}")]
    Key(String),
    /// Encryption or decryption failed.
    #[error("audit crypto: {0}")]
    Crypto(String),
    /// A stored value does not decode.
    #[error("audit ledger corrupt: {0}")]
    Corrupt(String),
    /// Writing an exported checkpoint failed.
    #[error("checkpoint export: {0}")]
    Export(String),
    /// The writer thread is gone.
    #[error("audit ledger is shut down")]
    Closed,
}

impl From<rusqlite::Error> for AuditError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode as C;
        match e.sqlite_error_code() {
            Some(C::ConstraintViolation) => AuditError::Conflict(e.to_string()),
            Some(
                C::DiskFull | C::CannotOpen | C::ReadOnly | C::SystemIoFailure | C::DatabaseBusy | C::DatabaseLocked,
            ) => AuditError::Unavailable(format!("sqlite: {e}")),
            _ => AuditError::Backend(format!("sqlite: {e}")),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
