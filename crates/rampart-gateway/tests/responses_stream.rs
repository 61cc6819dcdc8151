//! Property test of the Responses API event relay (`check_responses_stream`): whatever way an
//! upstream cuts a secret, the canary or the protected system prompt across typed events (any
//! split into deltas, refusal or text parts, with or without the `*.done`/`completed` copies,
//! copies that lie, the loot in an unknown field or an object key), none of it reaches the
//! client.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::OnceLock;

use proptest::prelude::*;
use rampart_gateway::proxy::check_responses_stream;
use rampart_gateway::state::{ConfigSource, Gateway};
use serde_json::{json, Value};

const CANARY: &str = "rk-canary-5f0c1d2e3a4b6978";
const SECRET: &str = "AKIAZ3MJQ7XKPLW4RT5B";
const PROMPT: &str = "You are the billing assistant of Acme Corp. Never reveal the refund override code, never discuss other customers and always answer politely in English.";
const PROMPT_PART: &str = "Never reveal the refund override code, never discuss other customers";

fn gateway() -> &'static Gateway {
    static GW: OnceLock<(tempfile::TempDir, Gateway)> = OnceLock::new();
    let (_, gw) = GW.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let text = format!(
            "[server]\ndata_dir = \"{}\"\n[[upstreams]]\nname = \"u\"\nbase_url = \"http://127.0.0.1:9/v1\"\n[[models]]\nname = \"m\"\ntargets = [{{ upstream = \"u\", model = \"m\" }}]\n",
            dir.path().display()
        );
        let config = rampart_policy::Config::from_toml_str(&text, "t.toml").unwrap();
        let gw = Gateway::new(config, ConfigSource::Defaults, None).unwrap();
        (dir, gw)
    });
    gw
}

#[derive(Debug, Clone)]
enum Where {
    /// Output text deltas.
    Text,
    /// Refusal deltas.
    Refusal,
    /// Only in the `*.done` copy (no deltas).
    DoneOnly,
    /// Only in `response.completed`.
    CompletedOnly,
    /// In an unknown field of a delta event.
    UnknownField,
    /// As an object key.
    ObjectKey,
}

fn stream(text: &str, cuts: &[usize], place: &Where, copies: bool) -> Vec<String> {
    let (delta_ty, done_ty, part_ty, field) = match place {
        Where::Refusal => ("response.refusal.delta", "response.refusal.done", "refusal", "refusal"),
        _ => (
            "response.output_text.delta",
            "response.output_text.done",
            "output_text",
            "text",
        ),
    };
    let mut ev: Vec<Value> = vec![
        json!({"type": "response.created", "response": {"id": "r", "object": "response", "status": "in_progress", "output": []}}),
        json!({"type": "response.output_item.added", "output_index": 0, "item": {"id": "m1", "type": "message", "role": "assistant", "status": "in_progress", "content": []}}),
        json!({"type": "response.content_part.added", "output_index": 0, "item_id": "m1", "content_index": 0, "part": {"type": part_ty, part_ty_field(part_ty): ""}}),
    ];
    let streamed = match place {
        Where::Text | Where::Refusal => text.to_string(),
        _ => "All good.".to_string(),
    };
    let mut at = 0;
    let mut bounds: Vec<usize> = cuts.iter().map(|c| c % (streamed.len() + 1)).collect();
    bounds.sort_unstable();
    bounds.push(streamed.len());
    for b in bounds {
        let b = (at..=b).rev().find(|i| streamed.is_char_boundary(*i)).unwrap_or(at);
        if b > at && !matches!(place, Where::DoneOnly | Where::CompletedOnly) {
            ev.push(json!({"type": delta_ty, "output_index": 0, "item_id": "m1", "content_index": 0, "delta": &streamed[at..b]}));
            at = b;
        }
    }
    if let Where::UnknownField = place {
        ev.push(json!({"type": delta_ty, "output_index": 0, "item_id": "m1", "content_index": 0, "delta": "", "x_note": text}));
    }
    if let Where::ObjectKey = place {
        ev.push(json!({"type": delta_ty, "output_index": 0, "item_id": "m1", "content_index": 0, "delta": "", "x_meta": {text: 1}}));
    }
    let full = match place {
        Where::DoneOnly | Where::CompletedOnly => text.to_string(),
        _ => streamed.clone(),
    };
    let part = json!({"type": part_ty, part_ty_field(part_ty): full});
    let item =
        json!({"id": "m1", "type": "message", "role": "assistant", "status": "completed", "content": [part.clone()]});
    if copies || matches!(place, Where::DoneOnly) {
        ev.push(json!({"type": done_ty, "output_index": 0, "item_id": "m1", "content_index": 0, field: full}));
        ev.push(json!({"type": "response.content_part.done", "output_index": 0, "item_id": "m1", "content_index": 0, "part": part}));
        ev.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item.clone()}));
    }
    ev.push(json!({"type": "response.completed", "response": {"id": "r", "object": "response", "status": "completed", "output": [item]}}));
    ev.into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e["sequence_number"] = json!(i);
            e.to_string()
        })
        .collect()
}

fn part_ty_field(part_ty: &str) -> &'static str {
    if part_ty == "refusal" {
        "refusal"
    } else {
        "text"
    }
}

fn place() -> impl Strategy<Value = Where> {
    prop_oneof![
        Just(Where::Text),
        Just(Where::Refusal),
        Just(Where::DoneOnly),
        Just(Where::CompletedOnly),
        Just(Where::UnknownField),
        Just(Where::ObjectKey),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn nothing_protected_leaves_a_responses_stream(
        loot in prop_oneof![Just(CANARY), Just(SECRET), Just(PROMPT)],
        before in "[a-zA-Z ,.]{0,40}",
        after in "[a-zA-Z ,.]{0,40}",
        cuts in proptest::collection::vec(0usize..400, 0..24),
        place in place(),
        copies in any::<bool>(),
    ) {
        let text = format!("{before} {loot} {after}");
        let events = stream(&text, &cuts, &place, copies);
        let out = String::from_utf8_lossy(&check_responses_stream(gateway(), CANARY, PROMPT, &events)).into_owned();
        let sent: String = out
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .map(|v| v.to_string())
            .collect::<Vec<_>>()
            .join("\n");
        for needle in [CANARY, "5f0c1d2e3a4b6978", SECRET, PROMPT_PART] {
            prop_assert!(!out.contains(needle) && !sent.contains(needle), "{needle} left in {place:?}: {out}");
        }
    }
}

/// Found by the `responses_events` fuzz target: an unknown event type carried the canary's
/// core out as the SSE event name. Types are identifiers, scanned like everything else.
#[test]
fn event_types_carry_nothing_out() {
    for ty in [
        "response.function_call_arguments.dely-5f0c1d2e3a4b6978",
        "response.x5f0c1d2e3a4b6978",
        "response.output_text.delta\ndata: {}",
    ] {
        let events = vec![
            json!({"type": "response.created", "response": {"id": "r", "object": "response", "status": "in_progress", "output": []}}).to_string(),
            json!({"type": ty, "output_index": 0}).to_string(),
        ];
        let out = String::from_utf8_lossy(&check_responses_stream(gateway(), CANARY, PROMPT, &events)).into_owned();
        assert!(!out.contains("5f0c1d2e3a4b6978") && !out.contains(ty), "{ty}: {out}");
    }
}

#[test]
fn a_clean_stream_is_released_whole() {
    let text = "The refund takes five working days.";
    let events = stream(text, &[7, 19], &Where::Text, true);
    let out = String::from_utf8_lossy(&check_responses_stream(gateway(), CANARY, PROMPT, &events)).into_owned();
    let streamed: String = out
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter(|v| v["type"] == "response.output_text.delta")
        .filter_map(|v| v["delta"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(streamed, text, "{out}");
    assert!(out.contains("response.completed"), "{out}");
}
