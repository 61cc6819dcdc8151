//! Criterion benchmarks of the per-request work the gateway adds: parsing and token counting,
//! Cedar authorization, limit admission, key verification and SSE framing.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rampart_gateway::auth::keys::{KeyCache, NewKey};
use rampart_gateway::limits::{Limiter, Scope, Subject};
use rampart_gateway::openai::{Endpoint, InferenceRequest};
use rampart_gateway::sse::Framer;
use rampart_gateway::tokens::Tokenizer;
use rampart_policy::{Action, Config, PolicyEngine, Principal, Quota};

fn chat_body(words: usize) -> Vec<u8> {
    let text = "the quick brown fox jumps over the lazy dog ".repeat(words / 9 + 1);
    serde_json::json!({
        "model": "rampart-demo",
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": text},
        ],
    })
    .to_string()
    .into_bytes()
}

fn parse(c: &mut Criterion) {
    let tok = Tokenizer::load().unwrap();
    let mut g = c.benchmark_group("parse_chat_request");
    for words in [20, 200, 2000] {
        let body = chat_body(words);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(body.len()), &body, |b, body| {
            b.iter(|| {
                let req = InferenceRequest::parse(Endpoint::Chat, body, &tok).unwrap();
                req.upstream_body("rampart-demo-1").unwrap()
            })
        });
    }
    g.finish();
}

fn authorize(c: &mut Criterion) {
    let engine = PolicyEngine::from_config(&Config::default(), |_| Ok(String::new())).unwrap();
    let key = Principal::Key {
        id: "k1".into(),
        owner: "alice".into(),
        models: vec!["rampart-demo".into()],
        admin: false,
    };
    c.bench_function("cedar_authorize_key", |b| {
        b.iter(|| assert!(engine.authorize(&key, Action::Chat, "rampart-demo").allowed()))
    });
}

fn limits(c: &mut Criterion) {
    let limiter = Limiter::default();
    let q = Quota {
        requests_per_minute: Some(u32::MAX),
        tokens_per_minute: Some(u64::MAX / 4),
        concurrent_requests: Some(1024),
    };
    let subjects = [
        Subject {
            scope: Scope::Key,
            id: "k1",
            quota: q,
        },
        Subject {
            scope: Scope::User,
            id: "alice",
            quota: q,
        },
        Subject {
            scope: Scope::Model,
            id: "m",
            quota: q,
        },
    ];
    c.bench_function("limits_admit_3_scopes", |b| {
        b.iter(|| {
            let p = limiter.admit(&subjects, 50).unwrap();
            p.charge(20);
        })
    });
}

fn keys(c: &mut Criterion) {
    let cache = KeyCache::default();
    let k = NewKey::generate(rampart_gateway::auth::keys::KeySpec::for_owner("alice"), 0);
    cache.put(k.record.clone());
    c.bench_function("api_key_verify", |b| b.iter(|| cache.verify(&k.secret, 1).unwrap()));
}

fn sse(c: &mut Criterion) {
    let event = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" word\"}}]}\n\n";
    let body = event.repeat(1000);
    let mut g = c.benchmark_group("sse_framer");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("1000_events", |b| {
        b.iter(|| {
            let mut f = Framer::new(1 << 20);
            let mut out = Vec::with_capacity(1000);
            for chunk in body.as_bytes().chunks(1024) {
                f.push(chunk, &mut out).unwrap();
            }
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, parse, authorize, limits, keys, sse);
criterion_main!(benches);
