//! PostgreSQL, for several gateway replicas writing one ledger.
//!
//! Each replica writes its own chain (its `chain` name), so appends never wait on another
//! replica: a single shared chain would serialise every request of every replica on one head
//! row, and one replica stalling mid-commit would stall them all. A session-level advisory
//! lock on the chain name makes sure two processes never extend the same chain (which would
//! fork it). The connection is re-opened, and the lock re-taken, after a failure.

use postgres::{Client, NoTls, Row};

use super::{finding_patterns, hash32, Backend, Batch, Cursor, DekRow, Filter};
use crate::checkpoint::Checkpoint;
use crate::record::{hex, unhex, Stored};
use crate::AuditError;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS audit_records (
    chain          TEXT NOT NULL,
    seq            BIGINT NOT NULL,
    ts_ms          BIGINT NOT NULL,
    kind           TEXT NOT NULL,
    subject        TEXT NOT NULL,
    principal      TEXT NOT NULL,
    model          TEXT NOT NULL,
    decision       TEXT NOT NULL,
    findings       TEXT NOT NULL,
    meta           BYTEA NOT NULL,
    dek_id         BIGINT,
    payload_digest BYTEA,
    payload        BYTEA,
    prev_hash      BYTEA NOT NULL,
    hash           BYTEA NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX IF NOT EXISTS audit_records_ts ON audit_records (ts_ms);
CREATE INDEX IF NOT EXISTS audit_records_principal ON audit_records (principal);
CREATE INDEX IF NOT EXISTS audit_records_subject ON audit_records (subject);
CREATE TABLE IF NOT EXISTS audit_keys (
    id           BIGINT PRIMARY KEY,
    subject      TEXT NOT NULL,
    created_ms   BIGINT NOT NULL,
    kek_id       TEXT,
    wrapped      BYTEA,
    destroyed_ms BIGINT
);
CREATE INDEX IF NOT EXISTS audit_keys_subject ON audit_keys (subject);
CREATE TABLE IF NOT EXISTS audit_checkpoints (
    chain     TEXT NOT NULL,
    seq       BIGINT NOT NULL,
    head      BYTEA NOT NULL,
    ts_ms     BIGINT NOT NULL,
    key_id    TEXT NOT NULL,
    signature BYTEA NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE TABLE IF NOT EXISTS audit_probe (id INT PRIMARY KEY, ts_ms BIGINT NOT NULL);
";

const COLUMNS: &str = "chain, seq, ts_ms, kind, subject, principal, model, decision, findings, meta, dek_id, \
                       payload_digest, payload, prev_hash, hash";
const DEK_COLUMNS: &str = "id, subject, created_ms, kek_id, wrapped, destroyed_ms";

/// A PostgreSQL ledger connection.
pub struct Postgres {
    url: String,
    client: Option<Client>,
    locked_chain: Option<String>,
}

impl Postgres {
    /// Connects and creates the schema.
    pub fn connect(url: &str) -> Result<Postgres, AuditError> {
        let mut pg = Postgres {
            url: url.to_string(),
            client: None,
            locked_chain: None,
        };
        pg.client()?;
        Ok(pg)
    }

    fn client(&mut self) -> Result<&mut Client, AuditError> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none() {
            let mut c = Client::connect(&self.url, NoTls).map_err(pg_error)?;
            // Concurrent first starts may race on CREATE TABLE; serialise them.
            let mut tx = c.transaction().map_err(pg_error)?;
            tx.execute("SELECT pg_advisory_xact_lock(7234001)", &[])
                .map_err(pg_error)?;
            tx.batch_execute(SCHEMA).map_err(pg_error)?;
            tx.commit().map_err(pg_error)?;
            if let Some(chain) = &self.locked_chain {
                take_lock(&mut c, chain)?;
            }
            self.client = Some(c);
        }
        self.client
            .as_mut()
            .ok_or_else(|| AuditError::Unavailable("no database connection".into()))
    }

    /// Runs `f` on the connection; forgets the connection when it broke, so the next call
    /// reconnects.
    fn with<T>(&mut self, f: impl FnOnce(&mut Client) -> Result<T, postgres::Error>) -> Result<T, AuditError> {
        let c = self.client()?;
        let r = f(c);
        if r.is_err() && self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        r.map_err(pg_error)
    }
}

fn take_lock(c: &mut Client, chain: &str) -> Result<(), AuditError> {
    let got: bool = c
        .query_one("SELECT pg_try_advisory_lock(7234002, hashtext($1))", &[&chain])
        .map_err(pg_error)?
        .get(0);
    if got {
        Ok(())
    } else {
        Err(AuditError::ChainBusy(chain.to_string()))
    }
}

fn pg_error(e: postgres::Error) -> AuditError {
    if e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION) {
        return AuditError::Conflict(format!("postgresql: {e}"));
    }
    if e.is_closed() || e.as_db_error().is_none() {
        AuditError::Unavailable(format!("postgresql: {e}"))
    } else {
        AuditError::Backend(format!("postgresql: {e}"))
    }
}

fn stored(r: &Row) -> Result<Stored, AuditError> {
    let digest: Option<Vec<u8>> = r.try_get(11).map_err(pg_error)?;
    let get = |e| pg_error(e);
    Ok(Stored {
        chain: r.try_get(0).map_err(get)?,
        seq: r.try_get::<_, i64>(1).map_err(get)? as u64,
        ts_ms: r.try_get(2).map_err(get)?,
        kind: r.try_get(3).map_err(get)?,
        subject: r.try_get(4).map_err(get)?,
        principal: r.try_get(5).map_err(get)?,
        model: r.try_get(6).map_err(get)?,
        decision: r.try_get(7).map_err(get)?,
        findings: r.try_get(8).map_err(get)?,
        meta: r.try_get(9).map_err(get)?,
        dek_id: r.try_get(10).map_err(get)?,
        payload_digest: digest.map(|d| hash32(d, "payload digest")).transpose()?,
        payload: r.try_get(12).map_err(get)?,
        prev_hash: hash32(r.try_get(13).map_err(get)?, "prev_hash")?,
        hash: hash32(r.try_get(14).map_err(get)?, "hash")?,
    })
}

fn dek_row(r: &Row) -> Result<DekRow, AuditError> {
    Ok(DekRow {
        id: r.try_get(0).map_err(pg_error)?,
        subject: r.try_get(1).map_err(pg_error)?,
        created_ms: r.try_get(2).map_err(pg_error)?,
        kek_id: r.try_get(3).map_err(pg_error)?,
        wrapped: r.try_get(4).map_err(pg_error)?,
        destroyed_ms: r.try_get(5).map_err(pg_error)?,
    })
}

impl Backend for Postgres {
    fn lock_chain(&mut self, chain: &str) -> Result<(), AuditError> {
        self.locked_chain = Some(chain.to_string());
        let c = self.client()?;
        take_lock(c, chain)
    }

    fn head(&mut self, chain: &str) -> Result<Option<(u64, [u8; 32])>, AuditError> {
        let row = self.with(|c| {
            c.query_opt(
                "SELECT seq, hash FROM audit_records WHERE chain = $1 ORDER BY seq DESC LIMIT 1",
                &[&chain],
            )
        })?;
        row.map(|r| {
            let seq: i64 = r.get(0);
            Ok((seq as u64, hash32(r.get(1), "hash")?))
        })
        .transpose()
    }

    fn current_dek(&mut self, subject: &str) -> Result<Option<DekRow>, AuditError> {
        let row = self.with(|c| {
            c.query_opt(
                &format!(
                    "SELECT {DEK_COLUMNS} FROM audit_keys WHERE subject = $1 AND destroyed_ms IS NULL \
                     ORDER BY created_ms DESC, id DESC LIMIT 1"
                ),
                &[&subject],
            )
        })?;
        row.as_ref().map(dek_row).transpose()
    }

    fn dek(&mut self, id: i64) -> Result<Option<DekRow>, AuditError> {
        let row = self.with(|c| c.query_opt(&format!("SELECT {DEK_COLUMNS} FROM audit_keys WHERE id = $1"), &[&id]))?;
        row.as_ref().map(dek_row).transpose()
    }

    fn live_deks(&mut self) -> Result<Vec<DekRow>, AuditError> {
        let rows = self.with(|c| {
            c.query(
                &format!("SELECT {DEK_COLUMNS} FROM audit_keys WHERE destroyed_ms IS NULL ORDER BY id"),
                &[],
            )
        })?;
        rows.iter().map(dek_row).collect()
    }

    fn write(&mut self, batch: &Batch) -> Result<(), AuditError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            if !batch.keys.is_empty() {
                let st = tx.prepare(
                    "INSERT INTO audit_keys (id, subject, created_ms, kek_id, wrapped, destroyed_ms) \
                     VALUES ($1, $2, $3, $4, $5, NULL)",
                )?;
                for k in &batch.keys {
                    tx.execute(&st, &[&k.id, &k.subject, &k.created_ms, &k.kek_id, &k.wrapped])?;
                }
            }
            let st = tx.prepare(&format!(
                "INSERT INTO audit_records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            ))?;
            for r in &batch.records {
                let seq = r.seq as i64;
                let digest = r.payload_digest.map(|d| d.to_vec());
                let prev = r.prev_hash.to_vec();
                let hash = r.hash.to_vec();
                tx.execute(
                    &st,
                    &[
                        &r.chain,
                        &seq,
                        &r.ts_ms,
                        &r.kind,
                        &r.subject,
                        &r.principal,
                        &r.model,
                        &r.decision,
                        &r.findings,
                        &r.meta,
                        &r.dek_id,
                        &digest,
                        &r.payload,
                        &prev,
                        &hash,
                    ],
                )?;
            }
            if let Some(cp) = &batch.checkpoint {
                let seq = cp.seq as i64;
                let head = unhex(&cp.head).unwrap_or_default();
                let sig = unhex(&cp.signature).unwrap_or_default();
                tx.execute(
                    "INSERT INTO audit_checkpoints (chain, seq, head, ts_ms, key_id, signature) VALUES ($1, $2, $3, $4, $5, $6)",
                    &[&cp.chain, &seq, &head, &cp.ts_ms, &cp.key_id, &sig],
                )?;
            }
            tx.commit()
        })
    }

    fn probe(&mut self, now_ms: i64) -> Result<(), AuditError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO audit_probe (id, ts_ms) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET ts_ms = excluded.ts_ms",
                &[&now_ms],
            )
        })?;
        Ok(())
    }

    fn destroy_subject_keys(&mut self, subject: &str, now_ms: i64) -> Result<usize, AuditError> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE audit_keys SET wrapped = NULL, kek_id = NULL, destroyed_ms = $2 \
                 WHERE subject = $1 AND destroyed_ms IS NULL",
                &[&subject, &now_ms],
            )
        })?;
        Ok(n as usize)
    }

    fn rewrap(&mut self, rows: &[DekRow]) -> Result<(), AuditError> {
        self.with(|c| {
            let mut tx = c.transaction()?;
            let st =
                tx.prepare("UPDATE audit_keys SET kek_id = $2, wrapped = $3 WHERE id = $1 AND destroyed_ms IS NULL")?;
            for r in rows {
                tx.execute(&st, &[&r.id, &r.kek_id, &r.wrapped])?;
            }
            tx.commit()
        })
    }

    fn drop_payloads_before(&mut self, before_ms: i64) -> Result<usize, AuditError> {
        let n = self.with(|c| {
            c.execute(
                "UPDATE audit_records SET payload = NULL WHERE ts_ms < $1 AND payload IS NOT NULL",
                &[&before_ms],
            )
        })?;
        Ok(n as usize)
    }

    fn chains(&mut self) -> Result<Vec<String>, AuditError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT chain FROM audit_records UNION SELECT chain FROM audit_checkpoints ORDER BY 1",
                &[],
            )
        })?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn chain_page(&mut self, chain: &str, after: u64, limit: usize) -> Result<Vec<Stored>, AuditError> {
        let (after, limit) = (after as i64, limit as i64);
        let rows = self.with(|c| {
            c.query(
                &format!("SELECT {COLUMNS} FROM audit_records WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3"),
                &[&chain, &after, &limit],
            )
        })?;
        rows.iter().map(stored).collect()
    }

    fn search(&mut self, f: &Filter, cursor: &Cursor, limit: usize) -> Result<Vec<Stored>, AuditError> {
        let (whole, prefix) = f.finding.as_deref().map(finding_patterns).unzip();
        let (after_chain, after_seq) = match cursor {
            Some((c, s)) => (Some(c.clone()), *s as i64),
            None => (None, 0),
        };
        let limit = limit as i64;
        let rows = self.with(|c| {
            c.query(
                &format!(
                    "SELECT {COLUMNS} FROM audit_records WHERE \
                     ($1::text IS NULL OR principal = $1) AND ($2::text IS NULL OR subject = $2) \
                     AND ($3::text IS NULL OR model = $3) AND ($4::text IS NULL OR decision = $4) \
                     AND ($5::text IS NULL OR kind = $5) AND ($6::text IS NULL OR chain = $6) \
                     AND ($7::bigint IS NULL OR ts_ms >= $7) AND ($8::bigint IS NULL OR ts_ms < $8) \
                     AND ($9::text IS NULL OR (chr(10) || findings || chr(10)) LIKE $9 \
                          OR (chr(10) || findings) LIKE $10::text) \
                     AND ($11::text IS NULL OR chain > $11 OR (chain = $11 AND seq > $12)) \
                     ORDER BY chain, seq LIMIT $13"
                ),
                &[
                    &f.principal,
                    &f.subject,
                    &f.model,
                    &f.decision,
                    &f.kind,
                    &f.chain,
                    &f.since_ms,
                    &f.until_ms,
                    &whole,
                    &prefix,
                    &after_chain,
                    &after_seq,
                    &limit,
                ],
            )
        })?;
        rows.iter().map(stored).collect()
    }

    fn checkpoints(&mut self, chain: &str) -> Result<Vec<Checkpoint>, AuditError> {
        let rows = self.with(|c| {
            c.query(
                "SELECT chain, seq, head, ts_ms, key_id, signature FROM audit_checkpoints WHERE chain = $1 ORDER BY seq",
                &[&chain],
            )
        })?;
        Ok(rows
            .iter()
            .map(|r| Checkpoint {
                chain: r.get(0),
                seq: r.get::<_, i64>(1) as u64,
                head: hex(&r.get::<_, Vec<u8>>(2)),
                ts_ms: r.get(3),
                key_id: r.get(4),
                signature: hex(&r.get::<_, Vec<u8>>(5)),
            })
            .collect())
    }
}
