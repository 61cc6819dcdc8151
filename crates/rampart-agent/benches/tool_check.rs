//! The tool check on the hot path: one decision per proposed tool call (budget: 20 µs).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, Criterion};
use rampart_agent::{Call, ToolGuard};
use rampart_policy::{Config, PolicyEngine, Principal};

const CONFIG: &str = r#"
version = 1
[[agent.tools]]
name = "search_docs"
class = "read"
schema = { type = "object", properties = { query = { type = "string", maxLength = 200 }, limit = { type = "integer", minimum = 1, maximum = 50 } }, required = ["query"], additionalProperties = false }

[[agent.tools]]
name = "fetch_page"
class = "egress"
action = "allow"
schema = { type = "object", properties = { url = { type = "string" } }, required = ["url"] }
checks = [{ kind = "url", arg = "url", hosts = ["docs.example.com", "*.wikipedia.org"] }]

[[agent.tools]]
name = "read_file"
class = "read"
checks = [{ kind = "path", arg = "path", prefix = "/srv/data" }]

[[agent.tools]]
name = "query_db"
class = "read"
checks = [{ kind = "sql", arg = "sql" }]
"#;

fn bench(c: &mut Criterion) {
    let config = Config::from_toml_str(CONFIG, "bench.toml").unwrap();
    let engine = PolicyEngine::from_config(&config, |_| Ok(String::new())).unwrap();
    let guard = ToolGuard::new(&config.agent).unwrap().unwrap();
    let alice = Principal::Key {
        id: "k1".into(),
        owner: "alice".into(),
        models: vec![],
        admin: false,
    };
    let mut g = c.benchmark_group("tool_check");
    for (name, tool, args) in [
        (
            "schema",
            "search_docs",
            r#"{"query": "how do I rotate keys", "limit": 5}"#,
        ),
        ("url", "fetch_page", r#"{"url": "https://en.wikipedia.org/wiki/Rust"}"#),
        ("path", "read_file", r#"{"path": "reports/2026/q3.csv"}"#),
        (
            "sql",
            "query_db",
            r#"{"sql": "SELECT id, total FROM orders WHERE customer = 42 ORDER BY total DESC LIMIT 10"}"#,
        ),
        ("unknown_tool", "delete_everything", "{}"),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let call = Call {
                    principal: &alice,
                    model: "gpt-4o",
                    name: tool,
                    arguments: args,
                    tainted: false,
                };
                std::hint::black_box(guard.check(&call, &engine))
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
