//! The default store: one SQLite file in WAL mode with `synchronous=FULL`, so a commit is on
//! disk before it returns, and `secure_delete` so destroyed keys are overwritten in place.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::{finding_patterns, hash32, Backend, Batch, Cursor, DekRow, Filter};
use crate::checkpoint::Checkpoint;
use crate::record::{hex, unhex, Stored};
use crate::AuditError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_records (
    chain          TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    ts_ms          INTEGER NOT NULL,
    kind           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    principal      TEXT NOT NULL,
    model          TEXT NOT NULL,
    decision       TEXT NOT NULL,
    findings       TEXT NOT NULL,
    meta           BLOB NOT NULL,
    dek_id         INTEGER,
    payload_digest BLOB,
    payload        BLOB,
    prev_hash      BLOB NOT NULL,
    hash           BLOB NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX IF NOT EXISTS audit_records_ts ON audit_records (ts_ms);
CREATE INDEX IF NOT EXISTS audit_records_principal ON audit_records (principal);
CREATE INDEX IF NOT EXISTS audit_records_subject ON audit_records (subject);
CREATE TABLE IF NOT EXISTS audit_keys (
    id           INTEGER PRIMARY KEY,
    subject      TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    kek_id       TEXT,
    wrapped      BLOB,
    destroyed_ms INTEGER
);
CREATE INDEX IF NOT EXISTS audit_keys_subject ON audit_keys (subject);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain     TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    head      BLOB NOT NULL,
    ts_ms     INTEGER NOT NULL,
    key_id    TEXT NOT NULL,
    signature BLOB NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE TABLE IF NOT EXISTS audit_probe (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL);
";

const COLUMNS: &str = "chain, seq, ts_ms, kind, subject, principal, model, decision, findings, meta, dek_id, \
                       payload_digest, payload, prev_hash, hash";

/// A SQLite ledger connection.
pub struct Sqlite {
    conn: Connection,
}

impl Sqlite {
    /// Opens or creates the file.
    pub fn open(path: &Path) -> Result<Sqlite, AuditError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| AuditError::Unavailable(format!("cannot create `{}`: {e}", dir.display())))?;
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(2))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "secure_delete", "ON")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Sqlite { conn })
    }

    /// The raw connection (tests use it to tamper with stored bytes, and to fill the disk).
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

/// A row before its hash columns are checked for length: (record, prev_hash, hash, digest).
type RawRow = (Stored, Vec<u8>, Vec<u8>, Option<Vec<u8>>);

/// A text column as stored. Bytes that are not UTF-8 (someone wrote them behind the ledger's
/// back) are read lossily, so the record's hash fails and `verify` names the record instead of
/// stopping with a decoding error.
fn text(r: &Row<'_>, i: usize) -> rusqlite::Result<String> {
    let v = r.get_ref(i)?;
    let bytes = match v {
        rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => b.to_vec(),
        rusqlite::types::ValueRef::Null => Vec::new(),
        rusqlite::types::ValueRef::Integer(n) => n.to_string().into_bytes(),
        rusqlite::types::ValueRef::Real(f) => f.to_string().into_bytes(),
    };
    Ok(String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()))
}

/// An integer column as stored; anything else (written behind the ledger's back) reads as a
/// value no honest record has, so the hash fails and `verify` names the record.
fn int(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<i64>> {
    Ok(match r.get_ref(i)? {
        rusqlite::types::ValueRef::Integer(n) => Some(n),
        rusqlite::types::ValueRef::Null => None,
        _ => Some(i64::MIN),
    })
}

fn stored(r: &Row<'_>) -> rusqlite::Result<RawRow> {
    let digest: Option<Vec<u8>> = r.get(11)?;
    Ok((
        Stored {
            chain: text(r, 0)?,
            seq: int(r, 1)?.unwrap_or(i64::MIN) as u64,
            ts_ms: int(r, 2)?.unwrap_or(i64::MIN),
            kind: text(r, 3)?,
            subject: text(r, 4)?,
            principal: text(r, 5)?,
            model: text(r, 6)?,
            decision: text(r, 7)?,
            findings: text(r, 8)?,
            meta: r.get(9)?,
            dek_id: int(r, 10)?,
            payload_digest: None,
            payload: r.get(12)?,
            prev_hash: [0; 32],
            hash: [0; 32],
        },
        r.get(13)?,
        r.get(14)?,
        digest,
    ))
}

fn finish(parts: RawRow) -> Result<Stored, AuditError> {
    let (mut s, prev, hash, digest) = parts;
    s.prev_hash = hash32(prev, "prev_hash")?;
    s.hash = hash32(hash, "hash")?;
    s.payload_digest = digest.map(|d| hash32(d, "payload digest")).transpose()?;
    Ok(s)
}

fn dek_row(r: &Row<'_>) -> rusqlite::Result<DekRow> {
    Ok(DekRow {
        id: r.get(0)?,
        subject: r.get(1)?,
        created_ms: r.get(2)?,
        kek_id: r.get(3)?,
        wrapped: r.get(4)?,
        destroyed_ms: r.get(5)?,
    })
}

const DEK_COLUMNS: &str = "id, subject, created_ms, kek_id, wrapped, destroyed_ms";

impl Backend for Sqlite {
    fn head(&mut self, chain: &str) -> Result<Option<(u64, [u8; 32])>, AuditError> {
        let row: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT seq, hash FROM audit_records WHERE chain = ?1 ORDER BY seq DESC LIMIT 1",
                params![chain],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        row.map(|(s, h)| Ok((s as u64, hash32(h, "hash")?))).transpose()
    }

    fn current_dek(&mut self, subject: &str) -> Result<Option<DekRow>, AuditError> {
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {DEK_COLUMNS} FROM audit_keys WHERE subject = ?1 AND destroyed_ms IS NULL \
                     ORDER BY created_ms DESC, id DESC LIMIT 1"
                ),
                params![subject],
                dek_row,
            )
            .optional()?)
    }

    fn dek(&mut self, id: i64) -> Result<Option<DekRow>, AuditError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {DEK_COLUMNS} FROM audit_keys WHERE id = ?1"),
                params![id],
                dek_row,
            )
            .optional()?)
    }

    fn live_deks(&mut self) -> Result<Vec<DekRow>, AuditError> {
        let mut st = self.conn.prepare(&format!(
            "SELECT {DEK_COLUMNS} FROM audit_keys WHERE destroyed_ms IS NULL ORDER BY id"
        ))?;
        let rows = st.query_map([], dek_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn write(&mut self, batch: &Batch) -> Result<(), AuditError> {
        let tx = self.conn.transaction()?;
        {
            let mut keys = tx.prepare_cached(
                "INSERT INTO audit_keys (id, subject, created_ms, kek_id, wrapped, destroyed_ms) \
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
            )?;
            for k in &batch.keys {
                keys.execute(params![k.id, k.subject, k.created_ms, k.kek_id, k.wrapped])?;
            }
            let mut recs = tx.prepare_cached(&format!(
                "INSERT INTO audit_records ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"
            ))?;
            for r in &batch.records {
                recs.execute(params![
                    r.chain,
                    r.seq as i64,
                    r.ts_ms,
                    r.kind,
                    r.subject,
                    r.principal,
                    r.model,
                    r.decision,
                    r.findings,
                    r.meta,
                    r.dek_id,
                    r.payload_digest.as_ref().map(|d| d.as_slice()),
                    r.payload,
                    r.prev_hash.as_slice(),
                    r.hash.as_slice(),
                ])?;
            }
            if let Some(cp) = &batch.checkpoint {
                tx.execute(
                    "INSERT INTO audit_checkpoints (chain, seq, head, ts_ms, key_id, signature) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        cp.chain,
                        cp.seq as i64,
                        unhex(&cp.head).unwrap_or_default(),
                        cp.ts_ms,
                        cp.key_id,
                        unhex(&cp.signature).unwrap_or_default()
                    ],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn probe(&mut self, now_ms: i64) -> Result<(), AuditError> {
        self.conn.execute(
            "INSERT INTO audit_probe (id, ts_ms) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET ts_ms = excluded.ts_ms",
            params![now_ms],
        )?;
        Ok(())
    }

    fn destroy_subject_keys(&mut self, subject: &str, now_ms: i64) -> Result<usize, AuditError> {
        let n = self.conn.execute(
            "UPDATE audit_keys SET wrapped = NULL, kek_id = NULL, destroyed_ms = ?2 \
             WHERE subject = ?1 AND destroyed_ms IS NULL",
            params![subject, now_ms],
        )?;
        // Move the overwritten pages out of the WAL into the main file, where secure_delete
        // has zeroed the old bytes.
        let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(n)
    }

    fn rewrap(&mut self, rows: &[DekRow]) -> Result<(), AuditError> {
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare_cached(
                "UPDATE audit_keys SET kek_id = ?2, wrapped = ?3 WHERE id = ?1 AND destroyed_ms IS NULL",
            )?;
            for r in rows {
                st.execute(params![r.id, r.kek_id, r.wrapped])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn drop_payloads_before(&mut self, before_ms: i64) -> Result<usize, AuditError> {
        let n = self.conn.execute(
            "UPDATE audit_records SET payload = NULL WHERE ts_ms < ?1 AND payload IS NOT NULL",
            params![before_ms],
        )?;
        let _ = self.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
        Ok(n)
    }

    fn chains(&mut self) -> Result<Vec<String>, AuditError> {
        let mut st = self
            .conn
            .prepare("SELECT chain FROM audit_records UNION SELECT chain FROM audit_checkpoints ORDER BY 1")?;
        let rows = st.query_map([], |r| r.get(0))?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn chain_page(&mut self, chain: &str, after: u64, limit: usize) -> Result<Vec<Stored>, AuditError> {
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit_records WHERE chain = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3"
        ))?;
        let rows = st
            .query_map(params![chain, after as i64, limit as i64], stored)?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(finish).collect()
    }

    fn search(&mut self, f: &Filter, cursor: &Cursor, limit: usize) -> Result<Vec<Stored>, AuditError> {
        let (whole, prefix) = f.finding.as_deref().map(finding_patterns).unzip();
        let (after_chain, after_seq) = match cursor {
            Some((c, s)) => (Some(c.as_str()), *s as i64),
            None => (None, 0),
        };
        let mut st = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM audit_records WHERE \
             (?1 IS NULL OR principal = ?1) AND (?2 IS NULL OR subject = ?2) AND (?3 IS NULL OR model = ?3) \
             AND (?4 IS NULL OR decision = ?4) AND (?5 IS NULL OR kind = ?5) AND (?6 IS NULL OR chain = ?6) \
             AND (?7 IS NULL OR ts_ms >= ?7) AND (?8 IS NULL OR ts_ms < ?8) \
             AND (?9 IS NULL OR (char(10) || findings || char(10)) LIKE ?9 ESCAPE '\\' \
                  OR (char(10) || findings) LIKE ?10 ESCAPE '\\') \
             AND (?11 IS NULL OR chain > ?11 OR (chain = ?11 AND seq > ?12)) \
             ORDER BY chain, seq LIMIT ?13"
        ))?;
        let rows = st
            .query_map(
                params![
                    f.principal,
                    f.subject,
                    f.model,
                    f.decision,
                    f.kind,
                    f.chain,
                    f.since_ms,
                    f.until_ms,
                    whole,
                    prefix,
                    after_chain,
                    after_seq,
                    limit as i64
                ],
                stored,
            )?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter().map(finish).collect()
    }

    fn checkpoints(&mut self, chain: &str) -> Result<Vec<Checkpoint>, AuditError> {
        let mut st = self.conn.prepare_cached(
            "SELECT chain, seq, head, ts_ms, key_id, signature FROM audit_checkpoints WHERE chain = ?1 ORDER BY seq",
        )?;
        let rows = st
            .query_map(params![chain], |r| {
                Ok(Checkpoint {
                    chain: r.get(0)?,
                    seq: r.get::<_, i64>(1)? as u64,
                    head: hex(&r.get::<_, Vec<u8>>(2)?),
                    ts_ms: r.get(3)?,
                    key_id: r.get(4)?,
                    signature: hex(&r.get::<_, Vec<u8>>(5)?),
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
