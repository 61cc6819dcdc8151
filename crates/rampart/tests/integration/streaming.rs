//! Streamed events leave the gateway as soon as they arrive: no buffering, no Nagle delay.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::json;

use crate::faults;
use crate::harness;

#[tokio::test]
async fn each_event_is_flushed_at_once() {
    let faults = faults::start().await;
    let gw = harness::start_config(&harness::single_upstream_config(
        "slow",
        &faults.base("slow_stream"),
        "",
    ));
    let key = gw.default_key().await;
    let body = json!({"model": "slow", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let started = Instant::now();
    let resp = gw.post("/v1/chat/completions", &key, body).await;
    let mut stream = resp.bytes_stream();
    // The upstream sends t0 at once and then one event every 100 ms. Each must arrive on its
    // own, about 100 ms apart, not batched.
    let mut arrivals = Vec::new();
    let mut buf = String::new();
    while arrivals.len() < 5 {
        let chunk = stream.next().await.unwrap().unwrap();
        buf.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buf.find("\n\n") {
            buf.drain(..end + 2);
            arrivals.push(started.elapsed());
        }
    }
    assert!(
        arrivals[0] < Duration::from_millis(1000),
        "first event after {:?}",
        arrivals[0]
    );
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap > Duration::from_millis(40) && gap < Duration::from_millis(400),
            "events batched or delayed: {arrivals:?}"
        );
    }
}

#[tokio::test]
async fn multi_line_events_keep_their_framing() {
    let faults = faults::start().await;
    // Output scanning re-encodes events it rewrites; this test is about the relay itself.
    let gw = harness::start_config(&harness::single_upstream_config(
        "multiline",
        &faults.base("multiline"),
        "[scan]\nenabled = false\n",
    ));
    let key = gw.default_key().await;
    let body = json!({"model": "multiline", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let text = gw.post("/v1/chat/completions", &key, body).await.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 2, "{text}");
    assert!(
        events[0].lines().count() > 3 && events[0].lines().all(|l| l.starts_with("data: ")),
        "{text}"
    );
    let joined: String = events[0]
        .lines()
        .map(|l| l.trim_start_matches("data: "))
        .collect::<Vec<_>>()
        .join("\n");
    let v: serde_json::Value = serde_json::from_str(&joined).unwrap();
    assert_eq!(v["choices"][0]["delta"]["content"], "multi");
    assert_eq!(events[1], "data: [DONE]");
}
