//! Requests, tokens and concurrency per key, user and model; body and prompt size; the
//! `max_tokens` cap. Refusals are 429s with `Retry-After` and `x-ratelimit-*`.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::faults;
use crate::harness::{self, client, error_code};

#[tokio::test]
async fn request_rate_per_key_gives_429_with_retry_after() {
    let gw = harness::start();
    let key = gw
        .key(json!({"owner": "a", "limits": {"requests_per_minute": 2}}))
        .await;
    let other = gw
        .key(json!({"owner": "b", "limits": {"requests_per_minute": 2}}))
        .await;
    for _ in 0..2 {
        assert_eq!(gw.chat(&key, "rampart-demo", "x").await.status(), 200);
    }
    let resp = gw.chat(&key, "rampart-demo", "x").await;
    let retry: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=31).contains(&retry), "{retry}");
    assert_eq!(resp.headers()["x-ratelimit-remaining-requests"], "0");
    assert_eq!(resp.headers()["x-ratelimit-limit-requests"], "2");
    let (status, code, _) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (429, "rate_limit_exceeded"));
    assert_eq!(
        gw.chat(&other, "rampart-demo", "x").await.status(),
        200,
        "other keys are unaffected"
    );
}

#[tokio::test]
async fn per_user_and_per_model_limits_span_keys() {
    let config = harness::demo_config("[limits.per_user]\nrequests_per_minute = 2\n\n[[models]]\nname = \"tiny\"\ntargets = [{ upstream = \"demo\", model = \"rampart-demo-1\" }]\nlimits = { requests_per_minute = 1 }\n");
    let gw = harness::start_config(&config);
    let k1 = gw.key(json!({"owner": "frank"})).await;
    let k2 = gw.key(json!({"owner": "frank"})).await;
    let k3 = gw.key(json!({"owner": "grace"})).await;
    assert_eq!(gw.chat(&k1, "rampart-demo", "x").await.status(), 200);
    assert_eq!(gw.chat(&k2, "rampart-demo", "x").await.status(), 200);
    assert_eq!(
        gw.chat(&k2, "rampart-demo", "x").await.status(),
        429,
        "frank's two keys share his user limit"
    );
    assert_eq!(gw.chat(&k3, "tiny", "x").await.status(), 200);
    let (status, code, v) = error_code(gw.chat(&k3, "tiny", "x").await).await;
    assert_eq!((status, code.as_str()), (429, "rate_limit_exceeded"));
    assert!(v["error"]["message"].as_str().unwrap().contains("model"));
}

#[tokio::test]
async fn token_rate_counts_prompt_tokens_with_a_real_tokenizer() {
    let gw = harness::start_config(&harness::demo_config("[limits.per_key]\ntokens_per_minute = 60\n"));
    let key = gw.default_key().await;
    // 'hello' repeated: one token each in o200k_base, so 80 words are ~80 tokens > 60.
    let long = "hello ".repeat(80);
    let (status, code, _) = error_code(gw.chat(&key, "rampart-demo", &long).await).await;
    assert_eq!((status, code.as_str()), (429, "tokens_limit_exceeded"));
    let resp = gw.chat(&key, "rampart-demo", "hello").await;
    assert_eq!(resp.status(), 200);
    let remaining: u64 = resp.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(remaining < 60 && remaining > 40, "{remaining}");
    // Completion tokens are charged afterwards; a few more requests exhaust the budget.
    let mut refused = false;
    for _ in 0..10 {
        if gw.chat(&key, "rampart-demo", "hello").await.status() == 429 {
            refused = true;
            break;
        }
    }
    assert!(refused);
}

#[tokio::test]
async fn concurrency_limit_counts_open_streams() {
    let faults = faults::start().await;
    let gw = harness::start_config(&harness::single_upstream_config(
        "slow",
        &faults.base("slow_stream"),
        "",
    ));
    let key = gw
        .key(json!({"owner": "h", "limits": {"concurrent_requests": 1}}))
        .await;
    let body = json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let first = gw.post("/v1/chat/completions", &key, body.clone()).await;
    assert_eq!(first.status(), 200);
    let mut stream = first.bytes_stream();
    stream.next().await.unwrap().unwrap();
    let (status, code, _) = error_code(gw.post("/v1/chat/completions", &key, body.clone()).await).await;
    assert_eq!((status, code.as_str()), (429, "concurrency_limit_exceeded"));
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = gw.post("/v1/chat/completions", &key, body).await;
    assert_eq!(again.status(), 200, "the slot is freed when the client goes away");
}

#[tokio::test]
async fn body_size_prompt_size_and_max_tokens_cap() {
    let faults = faults::start().await;
    let config = format!(
        "[[upstreams]]\nname = \"demo\"\nkind = \"demo\"\n\n[[upstreams]]\nname = \"echo\"\nbase_url = \"{}\"\n\n[[models]]\nname = \"rampart-demo\"\ntargets = [{{ upstream = \"demo\", model = \"rampart-demo-1\" }}]\n\n[[models]]\nname = \"echo\"\ntargets = [{{ upstream = \"echo\", model = \"echo-1\" }}]\n\n[limits]\nmax_body_bytes = 4096\nmax_prompt_tokens = 100\nmax_tokens_cap = 3\n\n[scan]\ncanary = false\n",
        faults.base("echo")
    );
    let gw = harness::start_config(&config);
    let key = gw.default_key().await;

    let huge = "x".repeat(10_000);
    let (status, code, _) = error_code(gw.chat(&key, "rampart-demo", &huge).await).await;
    assert_eq!((status, code.as_str()), (413, "request_too_large"));
    // Chunked body without a length is cut off at the limit too.
    let chunks = futures_util::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b' '; 1000])));
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await.1, "request_too_large");

    let (status, code, _) = error_code(gw.chat(&key, "rampart-demo", &"word ".repeat(200)).await).await;
    assert_eq!((status, code.as_str()), (400, "context_length_exceeded"));

    let v: Value = gw
        .chat(&key, "rampart-demo", "tell me a long story")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "length");
    let v: Value = gw
        .post(
            "/v1/chat/completions",
            &key,
            json!({"model": "echo", "max_tokens": 1000, "messages": [{"role": "user", "content": "x"}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["received"]["max_tokens"], 3);
    assert_eq!(v["received"]["model"], "echo-1");
}

/// Budgets in money: spend counted from the upstream's usage and the model's price, per key,
/// user and model; the exchange that crosses a cap completes, the next is refused with
/// `budget_exceeded` and `Retry-After`; spend shows in the admin API, `keys list`, `admin
/// spend` and metrics, and survives a restart.
#[tokio::test]
async fn budgets_in_money_cap_spend_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // $1000 per million tokens: a demo exchange (~20 tokens) costs about two cents.
    let config = "[[upstreams]]\nname = \"demo\"\nkind = \"demo\"\n\n[[models]]\nname = \"priced\"\ntargets = [{ upstream = \"demo\", model = \"rampart-demo-1\" }]\nprice = { input = 1000.0, output = 1000.0, cached_input = 100.0 }\n\n[budgets]\nper_key = { daily_usd = 0.01 }\nper_model = { monthly_usd = 1000.0 }\n";
    let gw = harness::start_with(harness::Options {
        config: Some(config),
        dir: Some(dir.path()),
        ..Default::default()
    });
    let spender = gw.key(json!({"owner": "alice"})).await;
    let other = gw.key(json!({"owner": "bob"})).await;
    assert_eq!(gw.chat(&spender, "priced", "first question").await.status(), 200);
    let resp = gw.chat(&spender, "priced", "second question").await;
    assert!(resp.headers().get("retry-after").is_some());
    let (status, code, v) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (429, "budget_exceeded"), "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("daily budget of $0.01"),
        "{v}"
    );
    // Streamed answers are charged too, and caps are per key.
    let body = json!({"model": "priced", "stream": true, "messages": [{"role": "user", "content": "stream it"}]});
    let text = gw
        .post("/v1/chat/completions", &other, body)
        .await
        .text()
        .await
        .unwrap();
    assert!(text.contains("[DONE]"), "{text}");
    assert_eq!(
        error_code(gw.chat(&other, "priced", "again").await).await.1,
        "budget_exceeded"
    );

    // A key with its own, larger cap outlives the default one.
    let env = [("RAMPART_URL", gw.url.as_str()), ("RAMPART_ADMIN_KEY", gw.admin())];
    let (code, rich, err) = harness::run_cli(&["keys", "create", "--owner", "carol", "--daily-usd", "1000"], &env);
    assert_eq!(code, 0, "{err}");
    let rich = rich.trim().to_string();
    for _ in 0..3 {
        assert_eq!(gw.chat(&rich, "priced", "many questions").await.status(), 200);
    }
    let (status, code, _) = error_code(
        gw.post(
            "/admin/keys",
            gw.admin(),
            json!({"owner": "x", "budget": {"daily_usd": -1.0}}),
        )
        .await,
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "invalid_value"));

    let spend: Value = gw.get("/admin/spend", gw.admin()).await.json().await.unwrap();
    let rows = spend["data"].as_array().unwrap();
    let model = rows.iter().find(|r| r["scope"] == "model").unwrap();
    let today = model["today_usd"].as_f64().unwrap();
    assert!(today > 0.02 && today < 0.2, "{spend}");
    assert_eq!(model["monthly_cap_usd"], 1000.0);
    assert_eq!(rows.iter().filter(|r| r["scope"] == "key").count(), 3, "{spend}");
    assert!(
        rows.iter().any(|r| r["scope"] == "key" && r["daily_cap_usd"] == 1000.0),
        "{spend}"
    );
    assert!(
        rows.iter().any(|r| r["scope"] == "user" && r["id"] == "alice"),
        "{spend}"
    );
    let m = gw.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("rampart_spend_usd_total{model=\"priced\"}")),
        "{m}"
    );
    let (code, table, _) = harness::run_cli(&["keys", "list"], &env);
    assert_eq!(code, 0);
    assert!(table.contains("SPENT TODAY") && table.contains("$0.0"), "{table}");
    let (code, table, _) = harness::run_cli(&["admin", "spend"], &env);
    assert_eq!(code, 0);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("model") && l.contains("priced") && l.contains("$1000.00")),
        "{table}"
    );

    // Spend is written once a second; a new process over the same data starts from it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    drop(gw);
    let gw = harness::start_with(harness::Options {
        config: Some(config),
        dir: Some(dir.path()),
        ..Default::default()
    });
    let (status, code, _) = error_code(gw.chat(&spender, "priced", "after restart").await).await;
    assert_eq!((status, code.as_str()), (429, "budget_exceeded"));
}
