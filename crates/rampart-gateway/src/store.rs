//! The gateway's durable state in SQLite: API keys (hashed) and kill-switch blocks.
//!
//! The hot path never touches the database: keys and blocks are loaded into memory at start-up
//! and every admin change writes here first, then updates the in-memory copy, so a restart
//! comes back to the same state.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rusqlite::{params, Connection, OptionalExtension};

use crate::auth::keys::KeyRecord;
use crate::blocks::{Block, BlockKind};

/// A database failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite refused the operation.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory could not be created.
    #[error("cannot create data directory `{path}`: {reason}")]
    DataDir {
        /// The directory.
        path: String,
        /// Why.
        reason: String,
    },
    /// A stored value does not decode.
    #[error("corrupt stored value in `{table}`: {reason}")]
    Corrupt {
        /// The table.
        table: &'static str,
        /// Why.
        reason: String,
    },
    /// The connection lock was poisoned by a panic elsewhere.
    #[error("database connection is unusable after an earlier failure")]
    Poisoned,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keys (
    id          TEXT PRIMARY KEY,
    secret_hash BLOB NOT NULL,
    owner       TEXT NOT NULL,
    name        TEXT NOT NULL DEFAULT '',
    models      TEXT NOT NULL,
    admin       INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER,
    limits      TEXT,
    caller      TEXT NOT NULL DEFAULT 'application',
    budget      TEXT
);
CREATE TABLE IF NOT EXISTS approvals (
    id          TEXT PRIMARY KEY,
    call_hash   TEXT NOT NULL,
    principal   TEXT NOT NULL,
    model       TEXT NOT NULL,
    tool        TEXT NOT NULL,
    class       TEXT NOT NULL,
    arguments   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    tainted     INTEGER NOT NULL,
    request_id  TEXT NOT NULL,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    decided_by  TEXT,
    decided_at  INTEGER,
    note        TEXT NOT NULL DEFAULT '',
    context     TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS mcp_pins (
    server      TEXT NOT NULL,
    tool        TEXT NOT NULL,
    print       TEXT NOT NULL,
    seen_print  TEXT NOT NULL,
    changed     INTEGER NOT NULL DEFAULT 0,
    flagged     TEXT,
    pinned_at   INTEGER NOT NULL,
    changed_at  INTEGER,
    PRIMARY KEY (server, tool)
);
CREATE TABLE IF NOT EXISTS spend (
    scope      TEXT NOT NULL,
    id         TEXT NOT NULL,
    period     TEXT NOT NULL,
    micros     INTEGER NOT NULL,
    PRIMARY KEY (scope, id, period)
);
CREATE TABLE IF NOT EXISTS blocks (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (kind, value)
);
";

/// Brings a database made by an earlier version up to [`SCHEMA`]: columns added since are
/// added with their defaults (keys made before callers had kinds were all applications' in
/// effect: their system messages were the only ones there were).
fn migrate(conn: &Connection) -> Result<(), StoreError> {
    add_column(conn, "keys", "caller", "TEXT NOT NULL DEFAULT 'application'")?;
    add_column(conn, "keys", "budget", "TEXT")
}

/// Adds `column` to `table` unless it is there already.
fn add_column(conn: &Connection, table: &str, column: &str, declaration: &str) -> Result<(), StoreError> {
    let present = conn
        .prepare("SELECT 1 FROM pragma_table_info(?1) WHERE name = ?2")?
        .exists(params![table, column])?;
    if !present {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {declaration}"))?;
    }
    Ok(())
}

/// How a tool definition compares with its pin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pin {
    /// It is the pinned definition (or the first one, now pinned).
    Matches,
    /// The server changed it since.
    Changed,
}

/// A handle on the SQLite database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

impl Store {
    /// Opens (creating if needed) `rampart.db` under `data_dir`.
    pub fn open(data_dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::DataDir {
            path: data_dir.display().to_string(),
            reason: e.to_string(),
        })?;
        let conn = Connection::open(data_dir.join("rampart.db"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        migrate(&conn)?;
        Ok(Store {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let conn = self.conn.lock().map_err(|_| StoreError::Poisoned)?;
        f(&conn)
    }

    /// Checks the database answers (for `/readyz`).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.with(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
    }

    /// Stores a new key.
    pub fn insert_key(&self, k: &KeyRecord) -> Result<(), StoreError> {
        fn json(v: &impl serde::Serialize) -> Result<String, StoreError> {
            serde_json::to_string(v).map_err(|e| StoreError::Corrupt {
                table: "keys",
                reason: e.to_string(),
            })
        }
        let models = json(&k.models)?;
        let limits = k.limits.as_ref().map(json).transpose()?;
        let budget = k.budget.as_ref().map(json).transpose()?;
        self.with(|c| {
            c.execute(
                "INSERT INTO keys (id, secret_hash, owner, name, models, admin, created_at, expires_at, revoked_at, limits, caller, budget)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![k.id, k.secret_hash.as_slice(), k.owner, k.name, models, k.admin, k.created_at, k.expires_at, k.revoked_at, limits, k.caller.name(), budget],
            )?;
            Ok(())
        })
    }

    /// Adds spend (millionths of a dollar) per scope, id and period, in one transaction.
    pub fn add_spend(&self, rows: &[crate::budgets::SpendRow]) -> Result<(), StoreError> {
        self.with(|c| {
            let tx = c.unchecked_transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO spend (scope, id, period, micros) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (scope, id, period) DO UPDATE SET micros = micros + excluded.micros",
                )?;
                for (scope, id, period, micros) in rows {
                    stmt.execute(params![scope, id, period, i64::try_from(*micros).unwrap_or(i64::MAX)])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }

    /// Stored spend in the given periods.
    pub fn spend(&self, periods: &[String]) -> Result<Vec<crate::budgets::SpendRow>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT scope, id, period, micros FROM spend WHERE period = ?1")?;
            let mut out = Vec::new();
            for p in periods {
                let rows = stmt.query_map(params![p], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })?;
                for row in rows {
                    let (scope, id, period, micros) = row?;
                    out.push((scope, id, period, u64::try_from(micros).unwrap_or(0)));
                }
            }
            Ok(out)
        })
    }

    /// Marks a key revoked; returns whether it existed and was live.
    pub fn revoke_key(&self, id: &str, at: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
                params![id, at],
            )? > 0)
        })
    }

    /// Every key, revoked ones included.
    pub fn keys(&self) -> Result<Vec<KeyRecord>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, secret_hash, owner, name, models, admin, created_at, expires_at, revoked_at, limits, caller, budget FROM keys ORDER BY created_at, id",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, bool>(5)?,
                    r.get::<_, i64>(6)?,
                    r.get::<_, Option<i64>>(7)?,
                    r.get::<_, Option<i64>>(8)?,
                    r.get::<_, Option<String>>(9)?,
                    r.get::<_, String>(10)?,
                    r.get::<_, Option<String>>(11)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (id, hash, owner, name, models, admin, created_at, expires_at, revoked_at, limits, caller, budget) = row?;
                let corrupt = |reason: String| StoreError::Corrupt { table: "keys", reason };
                let secret_hash: [u8; 32] = hash.try_into().map_err(|_| corrupt(format!("key `{id}` has a bad hash length")))?;
                let models: Vec<String> = serde_json::from_str(&models).map_err(|e| corrupt(e.to_string()))?;
                let limits = limits
                    .map(|l| serde_json::from_str(&l).map_err(|e| corrupt(e.to_string())))
                    .transpose()?;
                let caller = caller.parse().map_err(corrupt)?;
                let budget = budget
                    .map(|b| serde_json::from_str(&b).map_err(|e| corrupt(e.to_string())))
                    .transpose()?;
                out.push(KeyRecord { id, secret_hash, owner, name, models, admin, created_at, expires_at, revoked_at, limits, caller, budget });
            }
            Ok(out)
        })
    }

    /// Whether a live admin credential exists.
    pub fn has_admin_key(&self) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT 1 FROM keys WHERE admin = 1 AND revoked_at IS NULL LIMIT 1",
                [],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }

    /// Adds or replaces a block.
    pub fn put_block(&self, b: &Block) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT OR REPLACE INTO blocks (kind, value, reason, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![b.kind.as_str(), b.value, b.reason, b.created_at],
            )?;
            Ok(())
        })
    }

    /// Removes a block; returns whether it existed.
    pub fn delete_block(&self, kind: BlockKind, value: &str) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "DELETE FROM blocks WHERE kind = ?1 AND value = ?2",
                params![kind.as_str(), value],
            )? > 0)
        })
    }

    /// Records a new approval request.
    pub fn insert_approval(&self, a: &crate::approvals::Approval) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO approvals (id, call_hash, principal, model, tool, class, arguments, reason, tainted, request_id, status, created_at, expires_at, note, context)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, '', ?14)",
                params![
                    a.id, a.call_hash, a.principal, a.model, a.tool, a.class, a.arguments, a.reason,
                    a.tainted, a.request_id, a.status, a.created_at, a.expires_at, a.context.to_string()
                ],
            )?;
            Ok(())
        })
    }

    /// Approval requests, newest first; `status` filters (`pending` counts only unexpired
    /// ones as of `now`).
    pub fn approvals(&self, status: Option<&str>, now: i64) -> Result<Vec<crate::approvals::Approval>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT id, call_hash, principal, model, tool, class, arguments, reason, tainted, request_id, status,
                        created_at, expires_at, decided_by, decided_at, note, context FROM approvals ORDER BY created_at DESC, id LIMIT 1000",
            )?;
            let rows = stmt.query_map([], approval_row)?;
            let mut out = Vec::new();
            for r in rows {
                let a = r?.as_of(now);
                if status.is_none_or(|s| s == a.status) {
                    out.push(a);
                }
            }
            Ok(out)
        })
    }

    /// One approval request, as of `now`.
    pub fn approval(&self, id: &str, now: i64) -> Result<Option<crate::approvals::Approval>, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT id, call_hash, principal, model, tool, class, arguments, reason, tainted, request_id, status,
                        created_at, expires_at, decided_by, decided_at, note, context FROM approvals WHERE id = ?1",
                params![id],
                approval_row,
            )
            .optional()?
            .map(|a| a.as_of(now)))
        })
    }

    /// Moves a pending, unexpired request to `to` (`approved`, `denied`); false if it was not
    /// pending any more.
    pub fn decide_approval(&self, id: &str, to: &str, by: &str, note: &str, now: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE approvals SET status = ?2, decided_by = ?3, decided_at = ?4, note = ?5
                 WHERE id = ?1 AND status = 'pending' AND expires_at > ?4",
                params![id, to, by, now, note],
            )? > 0)
        })
    }

    /// Uses an approved request for the call with `call_hash`, once: true when it was
    /// approved for exactly this call and not used before.
    pub fn use_approval(&self, id: &str, call_hash: &str, now: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE approvals SET status = 'used', decided_at = COALESCE(decided_at, ?3)
                 WHERE id = ?1 AND call_hash = ?2 AND status = 'approved'",
                params![id, call_hash, now],
            )? > 0)
        })
    }

    /// An approved, unused request for the call with `call_hash` (MCP calls, which cannot
    /// carry the approval's id, are matched by the call itself).
    pub fn approved_for(&self, call_hash: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            Ok(c.query_row(
                "SELECT id FROM approvals WHERE call_hash = ?1 AND status = 'approved' ORDER BY decided_at LIMIT 1",
                params![call_hash],
                |r| r.get(0),
            )
            .optional()?)
        })
    }

    /// Checks a tool definition against its pin: the first definition seen is pinned; a
    /// different one is recorded as a change and does not match until approved.
    pub fn pin(&self, server: &str, tool: &str, print: &str, now: i64) -> Result<Pin, StoreError> {
        self.with(|c| {
            let pinned: Option<String> = c
                .query_row(
                    "SELECT print FROM mcp_pins WHERE server = ?1 AND tool = ?2",
                    params![server, tool],
                    |r| r.get(0),
                )
                .optional()?;
            match pinned {
                None => {
                    c.execute(
                        "INSERT INTO mcp_pins (server, tool, print, seen_print, changed, pinned_at) VALUES (?1, ?2, ?3, ?3, 0, ?4)",
                        params![server, tool, print, now],
                    )?;
                    Ok(Pin::Matches)
                }
                Some(p) if p == print => Ok(Pin::Matches),
                Some(_) => {
                    c.execute(
                        "UPDATE mcp_pins SET seen_print = ?3, changed = 1, changed_at = ?4 WHERE server = ?1 AND tool = ?2",
                        params![server, tool, print, now],
                    )?;
                    Ok(Pin::Changed)
                }
            }
        })
    }

    /// Marks a tool whose definition carries instructions for the model (or talks about other
    /// tools): it stays hidden and its calls are refused until its definition is approved.
    pub fn flag_pin(&self, server: &str, tool: &str, why: &str) -> Result<(), StoreError> {
        self.with(|c| {
            c.execute(
                "UPDATE mcp_pins SET flagged = ?3 WHERE server = ?1 AND tool = ?2",
                params![server, tool, why],
            )?;
            Ok(())
        })
    }

    /// Why calls to a tool are refused on its definition's account (changed since pinned, or
    /// flagged), if they are.
    pub fn pin_refusal(&self, server: &str, tool: &str) -> Result<Option<String>, StoreError> {
        self.with(|c| {
            let row: Option<(bool, Option<String>)> = c
                .query_row(
                    "SELECT changed, flagged FROM mcp_pins WHERE server = ?1 AND tool = ?2",
                    params![server, tool],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            Ok(match row {
                Some((true, _)) => Some("its definition changed since it was pinned".into()),
                Some((false, Some(why))) => Some(format!("its definition was flagged: {why}")),
                _ => None,
            })
        })
    }

    /// `(server, tool)` of every pinned tool.
    pub fn pinned_tool_names(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT server, tool FROM mcp_pins")?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Every pin, as JSON for the admin API.
    pub fn pins(&self) -> Result<Vec<serde_json::Value>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare(
                "SELECT server, tool, print, seen_print, changed, pinned_at, changed_at, flagged FROM mcp_pins ORDER BY server, tool",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok(serde_json::json!({
                    "server": r.get::<_, String>(0)?, "tool": r.get::<_, String>(1)?,
                    "print": r.get::<_, String>(2)?, "seen_print": r.get::<_, String>(3)?,
                    "changed": r.get::<_, bool>(4)?, "pinned_at": r.get::<_, i64>(5)?,
                    "changed_at": r.get::<_, Option<i64>>(6)?,
                    "flagged": r.get::<_, Option<String>>(7)?,
                }))
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    /// Accepts a changed tool's new definition as its pin; false if it had not changed.
    pub fn approve_pin(&self, server: &str, tool: &str, now: i64) -> Result<bool, StoreError> {
        self.with(|c| {
            Ok(c.execute(
                "UPDATE mcp_pins SET print = seen_print, changed = 0, flagged = NULL, pinned_at = ?3
                 WHERE server = ?1 AND tool = ?2 AND (changed = 1 OR flagged IS NOT NULL)",
                params![server, tool, now],
            )? > 0)
        })
    }

    /// Every block.
    pub fn blocks(&self) -> Result<Vec<Block>, StoreError> {
        self.with(|c| {
            let mut stmt = c.prepare("SELECT kind, value, reason, created_at FROM blocks ORDER BY created_at")?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, i64>(3)?,
                ))
            })?;
            let mut out = Vec::new();
            for row in rows {
                let (kind, value, reason, created_at) = row?;
                let kind = kind.parse().map_err(|reason| StoreError::Corrupt {
                    table: "blocks",
                    reason,
                })?;
                out.push(Block {
                    kind,
                    value,
                    reason,
                    created_at,
                });
            }
            Ok(out)
        })
    }
}

fn approval_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<crate::approvals::Approval> {
    Ok(crate::approvals::Approval {
        id: r.get(0)?,
        call_hash: r.get(1)?,
        principal: r.get(2)?,
        model: r.get(3)?,
        tool: r.get(4)?,
        class: r.get(5)?,
        arguments: r.get(6)?,
        reason: r.get(7)?,
        tainted: r.get(8)?,
        request_id: r.get(9)?,
        status: r.get(10)?,
        created_at: r.get(11)?,
        expires_at: r.get(12)?,
        decided_by: r.get(13)?,
        decided_at: r.get(14)?,
        note: r.get(15)?,
        context: serde_json::from_str(&r.get::<_, String>(16)?).unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_blocks_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let new = crate::auth::keys::NewKey::generate(
            crate::auth::keys::KeySpec {
                name: "ci".into(),
                models: vec!["m".into()],
                caller: rampart_policy::CallerKind::EndUser,
                budget: Some(rampart_policy::Budget {
                    daily_usd: Some(2.5),
                    monthly_usd: None,
                }),
                ..crate::auth::keys::KeySpec::for_owner("alice")
            },
            100,
        );
        store.insert_key(&new.record).unwrap();
        store
            .put_block(&Block {
                kind: BlockKind::User,
                value: "bob".into(),
                reason: "abuse".into(),
                created_at: 1,
            })
            .unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let keys = store.keys().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].secret_hash, new.record.secret_hash);
        assert_eq!(keys[0].caller, rampart_policy::CallerKind::EndUser);
        assert_eq!(keys[0].budget.and_then(|b| b.daily_usd), Some(2.5));
        assert_eq!(store.blocks().unwrap()[0].value, "bob");
        assert!(store.revoke_key(&new.record.id, 5).unwrap());
        assert!(!store.revoke_key(&new.record.id, 6).unwrap());
    }

    #[test]
    fn keys_from_before_caller_kinds_are_applications() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = Connection::open(dir.path().join("rampart.db")).unwrap();
            c.execute_batch(
                "CREATE TABLE keys (id TEXT PRIMARY KEY, secret_hash BLOB NOT NULL, owner TEXT NOT NULL,
                 name TEXT NOT NULL DEFAULT '', models TEXT NOT NULL, admin INTEGER NOT NULL,
                 created_at INTEGER NOT NULL, expires_at INTEGER, revoked_at INTEGER, limits TEXT);
                 INSERT INTO keys VALUES ('00ff', zeroblob(32), 'app', '', '[]', 0, 1, NULL, NULL, NULL);",
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        let keys = store.keys().unwrap();
        assert_eq!(keys[0].owner, "app");
        assert_eq!(keys[0].caller, rampart_policy::CallerKind::Application);
        drop(store);
        // Opening again finds the column and leaves it alone.
        assert_eq!(Store::open(dir.path()).unwrap().keys().unwrap().len(), 1);
    }
}
