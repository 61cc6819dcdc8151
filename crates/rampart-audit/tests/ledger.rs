//! The ledger against real SQLite files (and a real PostgreSQL when `RAMPART_TEST_PG_URL` is
//! set; the project's test command starts one and sets it): appends, every kind of tampering,
//! erasure, retention, rotation, fail-closed and recovery.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test on any error"
)]

use std::sync::Arc;
use std::time::Duration;

use rampart_audit::backend::{Filter, Location, Sqlite};
use rampart_audit::export::export_jsonl;
use rampart_audit::{
    verify, Durability, Entry, KeyProvider, Kind, Ledger, LocalKeys, Options, ProblemKind, SecretKey, Signer,
};
use rusqlite::{params, Connection};

fn entry(i: usize, subject: &str, payload: bool) -> Entry {
    Entry {
        kind: Kind::Exchange,
        ts_ms: 1_700_000_000_000 + i as i64,
        subject: subject.into(),
        principal: format!("user:{subject}"),
        model: "demo".into(),
        decision: if i.is_multiple_of(3) {
            "refused".into()
        } else {
            "allowed".into()
        },
        findings: if i.is_multiple_of(3) {
            vec!["pii:email".into()]
        } else {
            vec![]
        },
        meta: serde_json::json!({"request_id": format!("req_{i}"), "status": 200}),
        payload: payload.then(|| format!(r#"{{"prompt":"hello {i}"}}"#).into_bytes()),
    }
}

struct Setup {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    signer_seed: [u8; 32],
    master: SecretKey,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.db");
        Setup {
            _dir: dir,
            path,
            signer_seed: [9; 32],
            master: SecretKey::generate(),
        }
    }

    fn keys(&self) -> Arc<dyn KeyProvider> {
        Arc::new(LocalKeys::new(self.master.clone(), vec![]))
    }

    fn open(&self, options: Options) -> Ledger {
        Ledger::open(
            Location::Sqlite(self.path.clone()),
            options,
            Signer::from_seed(&self.signer_seed),
            Some(self.keys()),
            None,
        )
        .unwrap()
    }

    fn fill(&self, n: usize, checkpoint_every: u64) {
        let ledger = self.open(Options {
            checkpoint_every,
            ..Options::default()
        });
        for i in 1..=n {
            let subject = if i % 2 == 0 { "alice" } else { "bob" };
            ledger.append_blocking(entry(i, subject, true)).unwrap();
        }
    }

    fn verify(&self) -> rampart_audit::Report {
        self.verify_with(&[])
    }

    fn verify_with(&self, external: &[rampart_audit::Checkpoint]) -> rampart_audit::Report {
        let mut b = Sqlite::open(&self.path).unwrap();
        verify(
            &mut b,
            &[Signer::from_seed(&self.signer_seed).public()],
            external,
            |_| {},
        )
        .unwrap()
    }

    fn sql(&self) -> Connection {
        Connection::open(&self.path).unwrap()
    }
}

fn first(report: &rampart_audit::Report) -> (u64, ProblemKind) {
    let p = report.problems.first().expect("a problem");
    (p.seq, p.kind)
}

#[test]
fn an_untouched_ledger_verifies() {
    let s = Setup::new();
    s.fill(50, 10);
    let r = s.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.chains[0].records, 50);
    assert_eq!(r.chains[0].checkpoints_ok, 5);
    assert_eq!(r.chains[0].payloads, 50);
}

#[test]
fn a_changed_field_is_named() {
    let s = Setup::new();
    s.fill(20, 100);
    s.sql()
        .execute("UPDATE audit_records SET decision = 'allowed' WHERE seq = 9", [])
        .unwrap();
    assert_eq!(first(&s.verify()), (9, ProblemKind::Changed));
}

#[test]
fn changed_metadata_bytes_are_named() {
    let s = Setup::new();
    s.fill(20, 100);
    let meta: Vec<u8> = s
        .sql()
        .query_row("SELECT meta FROM audit_records WHERE seq = 4", [], |r| r.get(0))
        .unwrap();
    let mut meta = meta;
    meta[3] ^= 0x01;
    s.sql()
        .execute("UPDATE audit_records SET meta = ?1 WHERE seq = 4", params![meta])
        .unwrap();
    assert_eq!(first(&s.verify()), (4, ProblemKind::Changed));
}

#[test]
fn a_number_overwritten_with_text_is_named() {
    let s = Setup::new();
    s.fill(10, 100);
    s.sql()
        .execute("UPDATE audit_records SET ts_ms = 'yesterday' WHERE seq = 6", [])
        .unwrap();
    assert_eq!(first(&s.verify()), (6, ProblemKind::Changed));
}

#[test]
fn a_removed_record_is_named() {
    let s = Setup::new();
    s.fill(20, 100);
    s.sql().execute("DELETE FROM audit_records WHERE seq = 7", []).unwrap();
    assert_eq!(first(&s.verify()), (7, ProblemKind::Removed));
}

#[test]
fn a_removal_hidden_by_renumbering_is_named() {
    let s = Setup::new();
    s.fill(20, 100);
    let c = s.sql();
    c.execute("DELETE FROM audit_records WHERE seq = 7", []).unwrap();
    for seq in 8..=20 {
        c.execute(
            "UPDATE audit_records SET seq = ?1 WHERE seq = ?2",
            params![seq - 1, seq],
        )
        .unwrap();
    }
    assert_eq!(first(&s.verify()), (7, ProblemKind::Removed));
}

#[test]
fn an_inserted_record_is_named() {
    let s = Setup::new();
    s.fill(20, 100);
    let c = s.sql();
    for seq in (12..=20).rev() {
        c.execute(
            "UPDATE audit_records SET seq = ?1 WHERE seq = ?2",
            params![seq + 1, seq],
        )
        .unwrap();
    }
    // A forged record at 12 that even links correctly to record 11.
    let prev: Vec<u8> = c
        .query_row("SELECT hash FROM audit_records WHERE seq = 11", [], |r| r.get(0))
        .unwrap();
    let mut forged = rampart_audit::Stored {
        chain: "local".into(),
        seq: 12,
        ts_ms: 1,
        kind: "admin".into(),
        subject: String::new(),
        principal: "user:mallory".into(),
        model: String::new(),
        decision: "allowed".into(),
        findings: String::new(),
        meta: b"{}".to_vec(),
        dek_id: None,
        payload_digest: None,
        payload: None,
        prev_hash: prev.try_into().unwrap(),
        hash: [0; 32],
    };
    forged.hash = forged.compute_hash();
    c.execute(
        "INSERT INTO audit_records (chain, seq, ts_ms, kind, subject, principal, model, decision, findings, meta, prev_hash, hash) \
         VALUES ('local', 12, 1, 'admin', '', 'user:mallory', '', 'allowed', '', ?1, ?2, ?3)",
        params![forged.meta, forged.prev_hash.to_vec(), forged.hash.to_vec()],
    )
    .unwrap();
    assert_eq!(first(&s.verify()), (12, ProblemKind::Inserted));
}

#[test]
fn reordered_records_are_named() {
    let s = Setup::new();
    s.fill(20, 100);
    let c = s.sql();
    c.execute("UPDATE audit_records SET seq = -1 WHERE seq = 5", [])
        .unwrap();
    c.execute("UPDATE audit_records SET seq = 5 WHERE seq = 6", []).unwrap();
    c.execute("UPDATE audit_records SET seq = 6 WHERE seq = -1", [])
        .unwrap();
    assert_eq!(first(&s.verify()), (5, ProblemKind::Reordered));
}

#[test]
fn a_changed_payload_is_named() {
    let s = Setup::new();
    s.fill(20, 100);
    let c = s.sql();
    let mut p: Vec<u8> = c
        .query_row("SELECT payload FROM audit_records WHERE seq = 13", [], |r| r.get(0))
        .unwrap();
    p[30] ^= 0x80;
    c.execute("UPDATE audit_records SET payload = ?1 WHERE seq = 13", params![p])
        .unwrap();
    assert_eq!(first(&s.verify()), (13, ProblemKind::PayloadChanged));
}

/// An attacker who rewrites a record and recomputes every later hash is caught by the
/// signed checkpoint.
#[test]
fn a_rewritten_chain_is_caught_by_the_checkpoint() {
    let s = Setup::new();
    s.fill(20, 10);
    let mut b = Sqlite::open(&s.path).unwrap();
    let mut records = rampart_audit::Backend::chain_page(&mut b, "local", 0, 100).unwrap();
    records[13].decision = "allowed-by-mallory".into();
    let mut prev = records[12].hash;
    let c = s.sql();
    for r in records.iter_mut().skip(13) {
        r.prev_hash = prev;
        r.hash = r.compute_hash();
        prev = r.hash;
        c.execute(
            "UPDATE audit_records SET decision = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ?4",
            params![r.decision, r.prev_hash.to_vec(), r.hash.to_vec(), r.seq as i64],
        )
        .unwrap();
    }
    let report = s.verify();
    let p = &report.problems[0];
    assert_eq!((p.seq, p.kind), (20, ProblemKind::CheckpointMismatch), "{report:?}");
    assert!(p.detail.contains("records 11..=20"), "{}", p.detail);
}

#[test]
fn a_truncated_tail_is_caught_by_an_exported_checkpoint() {
    let s = Setup::new();
    let export = s._dir.path().join("checkpoints.jsonl");
    {
        let ledger = s.open(Options {
            checkpoint_every: 5,
            checkpoint_export: Some(export.clone()),
            ..Options::default()
        });
        for i in 1..=20 {
            ledger.append_blocking(entry(i, "alice", false)).unwrap();
        }
    }
    let c = s.sql();
    c.execute("DELETE FROM audit_records WHERE seq > 12", []).unwrap();
    c.execute("DELETE FROM audit_checkpoints WHERE seq > 12", []).unwrap();
    // The ledger alone cannot tell...
    assert!(s.verify().ok());
    // ...the checkpoints kept elsewhere can.
    let kept = rampart_audit::checkpoint::read_exported(&export).unwrap();
    assert_eq!(kept.len(), 4);
    assert_eq!(first(&s.verify_with(&kept)), (13, ProblemKind::Truncated));
}

#[test]
fn a_forged_checkpoint_signature_is_reported() {
    let s = Setup::new();
    s.fill(10, 5);
    s.sql()
        .execute(
            "UPDATE audit_checkpoints SET signature = zeroblob(64) WHERE seq = 5",
            [],
        )
        .unwrap();
    let r = s.verify();
    assert_eq!(first(&r), (5, ProblemKind::BadSignature));
    // A checkpoint from an untrusted key is not accepted either.
    let s2 = Setup::new();
    s2.fill(10, 5);
    let mut b = Sqlite::open(&s2.path).unwrap();
    let r = verify(&mut b, &[Signer::from_seed(&[1; 32]).public()], &[], |_| {}).unwrap();
    assert!(r.problems.iter().all(|p| p.kind == ProblemKind::BadSignature));
    assert_eq!(r.problems.len(), 2);
}

fn export_all(s: &Setup, keys: Option<&dyn KeyProvider>, filter: &Filter) -> Vec<serde_json::Value> {
    let mut b = Sqlite::open(&s.path).unwrap();
    let mut out = Vec::new();
    export_jsonl(&mut b, filter, keys, None, &mut out).unwrap();
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn payloads_are_encrypted_at_rest_and_decrypt_only_with_the_key() {
    let s = Setup::new();
    s.fill(6, 100);
    let raw = std::fs::read(&s.path).unwrap();
    let wal = std::fs::read(s.path.with_extension("db-wal")).unwrap_or_default();
    for bytes in [&raw, &wal] {
        assert!(!bytes.windows(5).any(|w| w == b"hello"), "plaintext payload at rest");
    }
    let sealed = export_all(&s, None, &Filter::default());
    assert!(sealed.iter().all(|v| v["payload_state"] == "sealed"));
    let keys = s.keys();
    let open = export_all(&s, Some(keys.as_ref()), &Filter::default());
    assert_eq!(open[2]["payload"]["prompt"], "hello 3");
    assert_eq!(open[2]["payload_state"], "decrypted");
    let wrong = LocalKeys::new(SecretKey::generate(), vec![]);
    assert!(export_all_result(&s, &wrong).is_err());
}

fn export_all_result(s: &Setup, keys: &dyn KeyProvider) -> Result<u64, rampart_audit::AuditError> {
    let mut b = Sqlite::open(&s.path).unwrap();
    export_jsonl(&mut b, &Filter::default(), Some(keys), None, &mut std::io::sink())
}

#[test]
fn erasure_shreds_one_subject_and_verify_still_passes() {
    let s = Setup::new();
    s.fill(10, 4);
    let ledger = s.open(Options::default());
    let n = ledger.blocking().erase("alice", "user:dpo").unwrap();
    assert_eq!(n, 1);
    // Alice writes again later: a new key, readable.
    ledger.append_blocking(entry(11, "alice", true)).unwrap();
    drop(ledger);
    let keys = s.keys();
    let all = export_all(&s, Some(keys.as_ref()), &Filter::default());
    let state = |subject: &str| -> Vec<String> {
        all.iter()
            .filter(|v| v["subject"] == subject)
            .map(|v| v["payload_state"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        state("alice"),
        vec!["erased"; 5].into_iter().chain(["decrypted"]).collect::<Vec<_>>()
    );
    assert!(state("bob").iter().all(|s| s == "decrypted"));
    let erase = all.iter().find(|v| v["decision"] == "audit.erase").unwrap();
    assert_eq!(erase["meta"]["subject"], "alice");
    assert_eq!(erase["principal"], "user:dpo");
    let r = s.verify();
    assert!(r.ok(), "{:?}", r.problems);
    // The destroyed key is gone from the file, not only marked.
    let wrapped: Option<Vec<u8>> = s
        .sql()
        .query_row(
            "SELECT wrapped FROM audit_keys WHERE subject = 'alice' AND destroyed_ms IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(wrapped.is_none());
}

#[test]
fn retention_drops_payloads_keeps_metadata_and_verification() {
    let s = Setup::new();
    s.fill(10, 3);
    let ledger = s.open(Options::default());
    // Records 1..=5 are older than the cut.
    let n = ledger.blocking().retain(1_700_000_000_006, "system:retention").unwrap();
    assert_eq!(n, 5);
    drop(ledger);
    let keys = s.keys();
    let all = export_all(&s, Some(keys.as_ref()), &Filter::default());
    let states: Vec<&str> = all
        .iter()
        .take(10)
        .map(|v| v["payload_state"].as_str().unwrap())
        .collect();
    assert_eq!(&states[..5], &["expired"; 5]);
    assert_eq!(&states[5..], &["decrypted"; 5]);
    assert_eq!(all[0]["meta"]["request_id"], "req_1");
    assert!(s.verify().ok());
}

#[test]
fn master_key_rotation_rewraps_keys_and_leaves_records_alone() {
    let s = Setup::new();
    s.fill(6, 100);
    let hashes_before: Vec<Vec<u8>> = {
        let c = s.sql();
        let mut st = c.prepare("SELECT hash FROM audit_records ORDER BY seq").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect()
    };
    let new_master = SecretKey::generate();
    let rotated: Arc<dyn KeyProvider> = Arc::new(LocalKeys::new(new_master.clone(), vec![s.master.clone()]));
    let ledger = Ledger::open(
        Location::Sqlite(s.path.clone()),
        Options::default(),
        Signer::from_seed(&s.signer_seed),
        Some(rotated),
        None,
    )
    .unwrap();
    assert_eq!(ledger.blocking().rotate_master_key("user:ops").unwrap(), 2);
    drop(ledger);
    // Only the new master key is needed now.
    let only_new = LocalKeys::new(new_master, vec![]);
    let all = export_all(&s, Some(&only_new), &Filter::default());
    assert!(all.iter().take(6).all(|v| v["payload_state"] == "decrypted"));
    let c = s.sql();
    let mut st = c
        .prepare("SELECT hash FROM audit_records ORDER BY seq LIMIT 6")
        .unwrap();
    let after: Vec<Vec<u8>> = st.query_map([], |r| r.get(0)).unwrap().map(Result::unwrap).collect();
    assert_eq!(after, hashes_before);
    assert!(s.verify().ok());
}

/// A subject's data key is replaced once it is older than `data_key_max_age`; older records
/// stay readable under their own keys.
#[test]
fn data_keys_age_out_and_old_records_stay_readable() {
    let s = Setup::new();
    let ledger = s.open(Options {
        data_key_max_age: Duration::from_millis(50),
        ..Options::default()
    });
    ledger.append_blocking(entry(1, "gina", true)).unwrap();
    ledger.append_blocking(entry(2, "gina", true)).unwrap();
    std::thread::sleep(Duration::from_millis(80));
    ledger.append_blocking(entry(3, "gina", true)).unwrap();
    drop(ledger);
    let keys: i64 = s
        .sql()
        .query_row("SELECT count(*) FROM audit_keys WHERE subject = 'gina'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(keys, 2);
    let provider = s.keys();
    let all = export_all(&s, Some(provider.as_ref()), &Filter::default());
    assert!(all.iter().all(|v| v["payload_state"] == "decrypted"), "{all:?}");
    assert_eq!(all[0]["dek_id"], all[1]["dek_id"]);
    assert_ne!(all[1]["dek_id"], all[2]["dek_id"]);
}

#[test]
fn search_filters_by_principal_decision_finding_model_and_time() {
    let s = Setup::new();
    s.fill(30, 100);
    let count = |f: Filter| export_all(&s, None, &f).len();
    assert_eq!(count(Filter::default()), 30);
    assert_eq!(
        count(Filter {
            principal: Some("user:alice".into()),
            ..Filter::default()
        }),
        15
    );
    assert_eq!(
        count(Filter {
            decision: Some("refused".into()),
            ..Filter::default()
        }),
        10
    );
    assert_eq!(
        count(Filter {
            finding: Some("pii".into()),
            ..Filter::default()
        }),
        10
    );
    assert_eq!(
        count(Filter {
            finding: Some("pii:email".into()),
            ..Filter::default()
        }),
        10
    );
    assert_eq!(
        count(Filter {
            finding: Some("pi".into()),
            ..Filter::default()
        }),
        0
    );
    assert_eq!(
        count(Filter {
            model: Some("other".into()),
            ..Filter::default()
        }),
        0
    );
    assert_eq!(
        count(Filter {
            since_ms: Some(1_700_000_000_011),
            until_ms: Some(1_700_000_000_021),
            ..Filter::default()
        }),
        10
    );
}

#[test]
fn group_commit_under_concurrency_keeps_one_unbroken_chain() {
    let s = Setup::new();
    let ledger = Arc::new(s.open(Options {
        durability: Durability::Group { max_batch: 64 },
        checkpoint_every: 100,
        ..Options::default()
    }));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let l = ledger.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    l.append_blocking(entry(t * 1000 + i, "carol", i % 2 == 0)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let health = ledger.health();
    assert_eq!(health.appended, 400);
    let r = s.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.chains[0].records, 400);
    // Checkpoints fall at the end of the batch that crosses each 100 records.
    assert_eq!(r.chains[0].checkpoints_ok, health.checkpoints);
    assert!((3..=4).contains(&health.checkpoints), "{}", health.checkpoints);
}

/// While another connection holds the write lock the ledger cannot commit: it fails the
/// append, turns unhealthy, and comes back by itself once the store takes writes.
#[test]
fn an_unwritable_store_fails_closed_and_recovers() {
    let s = Setup::new();
    let ledger = s.open(Options {
        durability: Durability::Sync,
        probe_interval: Duration::from_millis(100),
        ..Options::default()
    });
    ledger.append_blocking(entry(1, "dave", true)).unwrap();
    let blocker = s.sql();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let err = ledger.append_blocking(entry(2, "dave", true)).unwrap_err();
    assert!(matches!(err, rampart_audit::AuditError::Unavailable(_)), "{err}");
    assert!(!ledger.healthy());
    assert!(ledger.health().last_error.unwrap().contains("locked"));
    blocker.execute_batch("COMMIT").unwrap();
    let t0 = std::time::Instant::now();
    while !ledger.healthy() {
        assert!(t0.elapsed() < Duration::from_secs(10), "did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
    ledger.append_blocking(entry(3, "dave", true)).unwrap();
    drop(ledger);
    let r = s.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.chains[0].records, 2);
}

/// A tool appending to the same file (the command line's erase while the gateway runs) does
/// not fork the chain: the writer catches up and retries.
#[test]
fn two_writers_on_one_file_do_not_fork_the_chain() {
    let s = Setup::new();
    let a = s.open(Options::default());
    let b = s.open(Options::default());
    for i in 0..10 {
        a.append_blocking(entry(i, "x", false)).unwrap();
        b.append_blocking(entry(i, "y", false)).unwrap();
    }
    drop((a, b));
    let r = s.verify();
    assert!(r.ok(), "{:?}", r.problems);
    assert_eq!(r.chains[0].records, 20);
}

fn pg_url() -> Option<String> {
    match std::env::var("RAMPART_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            assert!(
                std::env::var("RAMPART_REQUIRE_PG").is_err(),
                "RAMPART_REQUIRE_PG is set but RAMPART_TEST_PG_URL is not"
            );
            eprintln!("skipping: RAMPART_TEST_PG_URL is not set (scripts/test.sh starts a PostgreSQL)");
            None
        }
    }
}

fn pg_fresh(url: &str, chain_prefix: &str) -> String {
    let mut c = postgres::Client::connect(url, postgres::NoTls).unwrap();
    let chain = format!("{chain_prefix}-{}", std::process::id());
    let _ = c.execute("DELETE FROM audit_records WHERE chain = $1", &[&chain]);
    let _ = c.execute("DELETE FROM audit_checkpoints WHERE chain = $1", &[&chain]);
    chain
}

#[test]
fn postgres_replicas_write_their_own_chains_and_verify() {
    let Some(url) = pg_url() else { return };
    let keys: Arc<dyn KeyProvider> = Arc::new(LocalKeys::new(SecretKey::generate(), vec![]));
    let signer = Signer::from_seed(&[3; 32]);
    let chains: Vec<String> = (0..2).map(|i| pg_fresh(&url, &format!("replica{i}"))).collect();
    let ledgers: Vec<Ledger> = chains
        .iter()
        .map(|c| {
            Ledger::open(
                Location::Postgres(url.clone()),
                Options {
                    chain: c.clone(),
                    checkpoint_every: 10,
                    ..Options::default()
                },
                Signer::from_seed(&[3; 32]),
                Some(keys.clone()),
                None,
            )
            .unwrap()
        })
        .collect();
    // A second writer for a chain that is already held is refused.
    let dup = Ledger::open(
        Location::Postgres(url.clone()),
        Options {
            chain: chains[0].clone(),
            ..Options::default()
        },
        Signer::from_seed(&[3; 32]),
        Some(keys.clone()),
        None,
    );
    assert!(matches!(dup, Err(rampart_audit::AuditError::ChainBusy(_))));
    // Subjects unique to this run: the database outlives it, and its keys were wrapped under
    // another run's master key.
    let subject = format!("erin-{}", std::process::id());
    for i in 0..25 {
        for l in &ledgers {
            l.append_blocking(entry(i, &subject, true)).unwrap();
        }
    }
    drop(ledgers);
    let mut b = Location::Postgres(url.clone()).open().unwrap();
    let report = verify(b.as_mut(), &[signer.public()], &[], |_| {}).unwrap();
    for c in &chains {
        let cr = report.chains.iter().find(|r| &r.chain == c).unwrap();
        assert_eq!((cr.records, cr.checkpoints_ok), (25, 2));
    }
    assert!(
        report.problems.iter().all(|p| !chains.contains(&p.chain)),
        "{:?}",
        report.problems
    );
    // Tamper in PostgreSQL: named like in SQLite.
    let mut c = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    c.execute(
        "UPDATE audit_records SET model = 'x' WHERE chain = $1 AND seq = 17",
        &[&chains[1]],
    )
    .unwrap();
    let report = verify(b.as_mut(), &[signer.public()], &[], |_| {}).unwrap();
    let p = report.problems.iter().find(|p| p.chain == chains[1]).unwrap();
    assert_eq!((p.seq, p.kind), (17, ProblemKind::Changed));
    let mut out = Vec::new();
    let n = export_jsonl(
        b.as_mut(),
        &Filter {
            chain: Some(chains[0].clone()),
            ..Filter::default()
        },
        Some(keys.as_ref()),
        None,
        &mut out,
    )
    .unwrap();
    assert_eq!(n, 25);
    assert!(String::from_utf8(out).unwrap().contains("hello 24"));
}

/// The database drops the ledger's connection (a failover, a restart): the append in flight
/// fails, the ledger turns unhealthy, reconnects (taking its chain lock again) and goes on
/// with an unbroken chain.
#[test]
fn postgres_connection_loss_fails_closed_and_recovers() {
    let Some(url) = pg_url() else { return };
    let chain = pg_fresh(&url, "reconnect");
    let app = format!("rampart-{chain}");
    let ledger_url = format!("{url} application_name={app}");
    let ledger = Ledger::open(
        Location::Postgres(ledger_url),
        Options {
            chain: chain.clone(),
            durability: Durability::Sync,
            probe_interval: Duration::from_millis(100),
            ..Options::default()
        },
        Signer::from_seed(&[4; 32]),
        None,
        None,
    )
    .unwrap();
    ledger.append_blocking(entry(1, "frank", false)).unwrap();
    let mut admin = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    let killed: i64 = admin
        .query_one(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1",
            &[&app],
        )
        .unwrap()
        .get(0);
    assert_eq!(killed, 1);
    let err = ledger.append_blocking(entry(2, "frank", false)).unwrap_err();
    assert!(matches!(err, rampart_audit::AuditError::Unavailable(_)), "{err}");
    let t0 = std::time::Instant::now();
    while !ledger.healthy() {
        assert!(t0.elapsed() < Duration::from_secs(10), "did not recover");
        std::thread::sleep(Duration::from_millis(50));
    }
    ledger.append_blocking(entry(3, "frank", false)).unwrap();
    drop(ledger);
    let mut b = Location::Postgres(url).open().unwrap();
    let r = verify(b.as_mut(), &[Signer::from_seed(&[4; 32]).public()], &[], |_| {}).unwrap();
    let mine = r.chains.iter().find(|c| c.chain == chain).unwrap();
    assert_eq!(mine.records, 2);
    assert!(r.problems.iter().all(|p| p.chain != chain), "{:?}", r.problems);
}

mod property {
    use super::*;
    use proptest::prelude::*;

    const COLUMNS: [&str; 11] = [
        "ts_ms",
        "kind",
        "subject",
        "principal",
        "model",
        "decision",
        "meta",
        "payload",
        "prev_hash",
        "hash",
        "dek_id",
    ];

    fn template() -> &'static (tempfile::TempDir, std::path::PathBuf) {
        static T: std::sync::OnceLock<(tempfile::TempDir, std::path::PathBuf)> = std::sync::OnceLock::new();
        T.get_or_init(|| {
            let s = Setup::new();
            s.fill(12, 5);
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("template.db");
            s.sql().execute_batch("PRAGMA wal_checkpoint(TRUNCATE)").unwrap();
            std::fs::copy(&s.path, &path).unwrap();
            (dir, path)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

        /// Any change to any stored field of record N (one flipped bit, or a changed number)
        /// is reported at record N and nowhere earlier.
        #[test]
        fn any_single_change_is_named_at_its_record(seq in 1i64..=12, column in 0usize..COLUMNS.len(), pos in 0usize..64, bit in 0u8..8) {
            let (_keep, template) = template();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("audit.db");
            std::fs::copy(template, &path).unwrap();
            let c = Connection::open(&path).unwrap();
            let col = COLUMNS[column];
            match col {
                "ts_ms" | "dek_id" => {
                    c.execute(&format!("UPDATE audit_records SET {col} = {col} + 1 WHERE seq = ?1"), params![seq]).unwrap();
                }
                _ => {
                    let v: Vec<u8> = c
                        .query_row(&format!("SELECT CAST({col} AS BLOB) FROM audit_records WHERE seq = ?1"), params![seq], |r| r.get(0))
                        .unwrap();
                    let mut v = v;
                    let i = pos % v.len();
                    v[i] ^= 1 << bit;
                    let text = matches!(col, "kind" | "subject" | "principal" | "model" | "decision");
                    if text {
                        c.execute(&format!("UPDATE audit_records SET {col} = CAST(?1 AS TEXT) WHERE seq = ?2"), params![v, seq]).unwrap();
                    } else {
                        c.execute(&format!("UPDATE audit_records SET {col} = ?1 WHERE seq = ?2"), params![v, seq]).unwrap();
                    }
                }
            }
            drop(c);
            let mut b = Sqlite::open(&path).unwrap();
            let r = verify(&mut b, &[Signer::from_seed(&[9; 32]).public()], &[], |_| {}).unwrap();
            let p = r.problems.first();
            prop_assert!(p.is_some(), "a change to {} of record {} went unnoticed", col, seq);
            prop_assert_eq!(p.unwrap().seq, seq as u64, "{} of record {}: {:?}", col, seq, r.problems);
        }
    }
}
