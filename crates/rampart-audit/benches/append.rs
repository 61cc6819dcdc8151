//! Ledger append throughput on a real SQLite file: one record per transaction (sync), and
//! group commit with concurrent writers; plus the per-record CPU cost (hash, seal).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, reason = "benchmark harness")]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use rampart_audit::{Durability, Entry, KeyProvider, Kind, Ledger, LocalKeys, Location, Options, SecretKey, Signer};

fn entry(payload: bool) -> Entry {
    Entry {
        kind: Kind::Exchange,
        ts_ms: rampart_audit::now_ms(),
        subject: "alice".into(),
        principal: "key:0123456789abcdef".into(),
        model: "gpt-4o-mini".into(),
        decision: "allowed".into(),
        findings: vec!["pii:email".into()],
        meta: serde_json::json!({"request_id": "req_0193f1c2a7b47d2e9b1f3c5d7e9f1a2b", "phase": "complete",
            "endpoint": "chat", "upstream": "openai", "upstream_model": "gpt-4o-mini-2024-07-18",
            "policies": ["keys-use-their-models"], "status": 200,
            "tokens": {"prompt": 312, "completion": 128}, "timings_ms": {"total": 812, "upstream_headers": 240},
            "findings": [{"direction": "input", "detector": "pii", "type": "email", "score": 0.95, "action": "pseudonymize"}]}),
        payload: payload.then(|| vec![b'x'; 1024]),
    }
}

fn open(dir: &std::path::Path, durability: Durability) -> Arc<Ledger> {
    let keys: Arc<dyn KeyProvider> = Arc::new(LocalKeys::new(SecretKey::generate(), vec![]));
    Arc::new(
        Ledger::open(
            Location::Sqlite(dir.join("audit.db")),
            Options {
                durability,
                ..Options::default()
            },
            Signer::from_seed(&[1; 32]),
            Some(keys),
            None,
        )
        .unwrap(),
    )
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("ledger");
    g.sample_size(20);
    g.throughput(Throughput::Elements(1));
    let dir = tempfile::tempdir().unwrap();
    let sync = open(dir.path(), Durability::Sync);
    g.bench_function("append_sync_1_writer", |b| {
        b.iter(|| sync.append_blocking(entry(false)).unwrap())
    });
    g.bench_function("append_sync_1_writer_1KB_payload", |b| {
        b.iter(|| sync.append_blocking(entry(true)).unwrap())
    });
    drop(sync);

    // 16 writers at once, 64 records each per iteration.
    const WRITERS: usize = 16;
    const EACH: usize = 64;
    g.throughput(Throughput::Elements((WRITERS * EACH) as u64));
    for (name, durability) in [
        ("append_sync_16_writers", Durability::Sync),
        ("append_group_16_writers", Durability::Group { max_batch: 256 }),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ledger = open(dir.path(), durability);
        g.bench_function(name, |b| {
            b.iter(|| {
                std::thread::scope(|s| {
                    for _ in 0..WRITERS {
                        let l = ledger.clone();
                        s.spawn(move || {
                            for _ in 0..EACH {
                                l.append_blocking(entry(false)).unwrap();
                            }
                        });
                    }
                });
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("record");
    let stored = rampart_audit::Stored {
        chain: "local".into(),
        seq: 1,
        ts_ms: 1,
        kind: "exchange".into(),
        subject: "alice".into(),
        principal: "key:0123456789abcdef".into(),
        model: "gpt-4o-mini".into(),
        decision: "allowed".into(),
        findings: "pii:email".into(),
        meta: serde_json::to_vec(&entry(false).meta).unwrap(),
        dek_id: None,
        payload_digest: None,
        payload: None,
        prev_hash: [0; 32],
        hash: [0; 32],
    };
    g.bench_function("hash", |b| b.iter(|| stored.compute_hash()));
    let key = SecretKey::generate();
    let body = vec![b'x'; 1024];
    g.throughput(Throughput::Bytes(1024));
    g.bench_function("seal_1KB", |b| {
        b.iter(|| rampart_audit::crypto::seal(&key, &body, b"aad").unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
