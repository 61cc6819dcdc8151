//! Bad input and bad upstreams: every failure is a clear OpenAI error, the gateway stays up,
//! and nothing unchecked is passed through.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::faults::{self, Faults};
use crate::harness::{self, client, error_code, sse_data};

fn fault_config(faults: &Faults, extra_upstreams: &str, models: &[(&str, &[&str])]) -> String {
    let modes = [
        "ok",
        "hang",
        "garbage",
        "noshape",
        "refuse400",
        "auth401",
        "err500",
        "unavailable503",
        "slowbody",
        "cut_stream",
        "bad_event",
        "stall_stream",
        "slow_stream",
    ];
    let mut c = String::from("version = 1\n");
    for m in modes {
        c.push_str(&format!(
            "\n[[upstreams]]\nname = \"{m}\"\nbase_url = \"{}\"\ntimeout_ms = 700\nidle_timeout_ms = 700\nconnect_timeout_ms = 500\n",
            faults.base(m)
        ));
    }
    c.push_str(extra_upstreams);
    for m in modes {
        c.push_str(&format!(
            "\n[[models]]\nname = \"{m}\"\ntargets = [{{ upstream = \"{m}\", model = \"{m}-1\" }}]\n"
        ));
    }
    for (name, targets) in models {
        let t: Vec<String> = targets
            .iter()
            .map(|u| format!("{{ upstream = \"{u}\", model = \"{u}-1\" }}"))
            .collect();
        c.push_str(&format!(
            "\n[[models]]\nname = \"{name}\"\ntargets = [{}]\n",
            t.join(", ")
        ));
    }
    c
}

#[tokio::test]
async fn malformed_requests_get_clear_errors() {
    let gw = harness::start();
    let key = gw.default_key().await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let raw = |body: Vec<u8>| {
        let key = key.clone();
        let url = url.clone();
        async move {
            client()
                .post(url)
                .bearer_auth(key)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (
            b"{\"model\": \"rampart-demo\", \"messages\": [".to_vec(),
            400,
            "invalid_json",
        ),
        (b"".to_vec(), 400, "invalid_json"),
        (b"[1,2]".to_vec(), 400, "invalid_json"),
        (
            b"{\"model\":\"rampart-demo\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}".to_vec(),
            400,
            "invalid_utf8",
        ),
        (
            br#"{"model":"rampart-demo","messages":"hi"}"#.to_vec(),
            400,
            "invalid_type",
        ),
        (
            br#"{"model":"rampart-demo","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#.to_vec(),
            400,
            "invalid_type",
        ),
        (br#"{"model":"rampart-demo"}"#.to_vec(), 400, "missing_parameter"),
        (
            br#"{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}"#.to_vec(),
            404,
            "model_not_found",
        ),
    ];
    for (body, want_status, want_code) in cases {
        let shown = String::from_utf8_lossy(&body).to_string();
        let (status, code, _) = error_code(raw(body).await).await;
        assert_eq!((status, code.as_str()), (want_status, want_code), "{shown}");
    }
    let (status, code, _) = error_code(client().get(format!("{}/v2/nothing", gw.url)).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "unknown_route"));
    let (status, code, _) = error_code(client().get(&url).bearer_auth(&key).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (405, "method_not_allowed"));
    assert_eq!(gw.chat(&key, "rampart-demo", "still up").await.status(), 200);
}

#[tokio::test]
async fn misbehaving_upstreams_become_clear_errors() {
    let faults = faults::start().await;
    let gw = harness::start_config(&fault_config(&faults, "", &[]));
    let key = gw.default_key().await;
    let cases = [
        ("refuse400", 400, "upstream_rejected_request"),
        ("auth401", 502, "upstream_auth_failed"),
        ("err500", 502, "upstream_error"),
        ("garbage", 502, "upstream_invalid_response"),
        ("noshape", 502, "upstream_invalid_response"),
        ("hang", 504, "upstream_timeout"),
        ("slowbody", 504, "upstream_timeout"),
    ];
    for (model, want_status, want_code) in cases {
        let started = Instant::now();
        let (status, code, v) = error_code(gw.chat(&key, model, "x").await).await;
        assert_eq!((status, code.as_str()), (want_status, want_code), "{model}: {v}");
        assert!(started.elapsed() < Duration::from_secs(5), "{model} answered in time");
        assert!(
            !v.to_string().contains("sk-secret"),
            "upstream secrets never reach the client"
        );
        if model == "refuse400" {
            assert!(v["error"]["message"]
                .as_str()
                .unwrap()
                .contains("max_tokens is too large"));
        }
    }
    let m = gw.metrics().await;
    assert!(
        m.contains("rampart_upstream_errors_total{upstream=\"hang\",kind=\"timeout\"} 1"),
        "{m}"
    );
    assert_eq!(gw.chat(&key, "ok", "x").await.status(), 200, "the gateway is still up");
}

#[tokio::test]
async fn broken_streams_end_with_an_error_event() {
    let faults = faults::start().await;
    let gw = harness::start_config(&fault_config(&faults, "", &[]));
    let key = gw.default_key().await;
    for (model, want) in [
        ("cut_stream", "upstream_stream_truncated"),
        ("bad_event", "upstream_invalid_response"),
        ("stall_stream", "upstream_timeout"),
    ] {
        let body = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "x"}]});
        let resp = gw.post("/v1/chat/completions", &key, body).await;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await.unwrap();
        let data = sse_data(&text);
        let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
        assert_eq!(last["error"]["code"], want, "{model}: {text}");
        assert!(!text.contains("[DONE]"), "{model}");
        assert!(
            text.contains("one"),
            "{model}: good text before the failure still arrives (scanned, after the hold-back)"
        );
        assert!(
            !text.contains("never"),
            "{model}: nothing after the bad event is forwarded"
        );
    }
}

#[tokio::test]
async fn failover_on_connection_failure_and_unavailability_only() {
    let faults = faults::start().await;
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let extra = format!(
        "\n[[upstreams]]\nname = \"dead\"\nbase_url = \"http://{dead}/v1\"\nretries = 2\nconnect_timeout_ms = 300\n"
    );
    let gw = harness::start_config(&fault_config(
        &faults,
        &extra,
        &[
            ("dead-then-ok", &["dead", "ok"]),
            ("down-then-ok", &["unavailable503", "ok"]),
            ("hang-then-ok", &["hang", "ok"]),
            ("dead-only", &["dead"]),
        ],
    ));
    let key = gw.default_key().await;
    for model in ["dead-then-ok", "down-then-ok"] {
        let resp = gw.chat(&key, model, "x").await;
        assert_eq!(
            resp.headers()["x-rampart-upstream"],
            "ok",
            "the header names who answered"
        );
        let v: Value = resp.json().await.unwrap();
        assert_eq!(v["model"], "ok-1");
    }
    let hits = faults.counters.hits.load(Ordering::SeqCst);
    assert_eq!(
        error_code(gw.chat(&key, "hang-then-ok", "x").await).await.1,
        "upstream_timeout",
        "a timeout is not retried elsewhere"
    );
    assert_eq!(faults.counters.hits.load(Ordering::SeqCst), hits + 1);
    let resp = gw.chat(&key, "dead-only", "x").await;
    assert!(resp.headers().get("x-rampart-upstream").is_none(), "nobody answered");
    let (status, code, _) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (502, "upstream_unavailable"));
    let m = gw.metrics().await;
    assert!(m.contains("rampart_upstream_failovers_total 2"), "{m}");
}

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_stream() {
    let faults = faults::start().await;
    let gw = harness::start_config(&fault_config(&faults, "", &[]));
    let key = gw.default_key().await;
    let body = json!({"model": "slow_stream", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let resp = gw.post("/v1/chat/completions", &key, body).await;
    let mut stream = resp.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("t1") {
        seen.push_str(&String::from_utf8_lossy(&stream.next().await.unwrap().unwrap()));
    }
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(3);
    while faults.counters.dropped_streams.load(Ordering::SeqCst) == 0 {
        assert!(
            Instant::now() < deadline,
            "upstream stream still running after the client left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(faults.counters.finished_streams.load(Ordering::SeqCst), 0);
    let m = gw.metrics().await;
    assert!(m.contains("rampart_streams_cancelled_total 1"), "{m}");
}

#[tokio::test]
async fn client_disconnect_cancels_a_pending_upstream_request() {
    let faults = faults::start().await;
    // A long upstream timeout, so only the client's departure can end the upstream call.
    let gw = harness::start_config(&harness::single_upstream_config(
        "hang",
        &faults.base("hang"),
        "timeout_ms = 60000",
    ));
    let key = gw.default_key().await;
    let gave_up = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .timeout(Duration::from_millis(300))
        .json(&harness::chat_body("hang", "x"))
        .send()
        .await;
    assert!(gave_up.is_err());
    let deadline = Instant::now() + Duration::from_secs(3);
    while faults.counters.abandoned_hangs.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "the upstream request outlived the client");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408() {
    let gw = harness::start_config(&harness::demo_config("[server]\nbody_timeout_ms = 300\n"));
    let key = gw.default_key().await;
    let stalled =
        futures_util::stream::once(async { Ok::<_, std::io::Error>(b"{\"model\": \"rampart-demo\", ".to_vec()) })
            .chain(futures_util::stream::pending());
    let started = Instant::now();
    let resp = client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .bearer_auth(&key)
        .body(reqwest::Body::wrap_stream(stalled))
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (408, "request_timeout"));
    assert!(started.elapsed() < Duration::from_secs(3));
}
