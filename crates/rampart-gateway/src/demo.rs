//! The built-in demo model: a deterministic, local, OpenAI-compatible upstream.
//!
//! It lets a newcomer try Rampart with no API key, gives the tests a real HTTP upstream, and
//! is the fast mock upstream of the load benchmark. Replies are a pure function of the request:
//! the chat model echoes the last user message, answers a request that offers tools with a call
//! to the first tool (arguments filled from its JSON schema), and embeddings are unit vectors
//! derived from a SHA-256 of the input. The Responses API answers the same way, in its own
//! items and typed stream events.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::Engine;
use futures_util::stream;
use http::StatusCode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// The model id the demo upstream serves.
pub const DEMO_MODEL: &str = "rampart-demo-1";
const CREATED: u64 = 1_735_689_600;

/// Demo behaviour knobs.
#[derive(Debug, Clone, Default)]
pub struct DemoOptions {
    /// Pause between streamed chunks (to watch streaming work).
    pub chunk_delay: Duration,
}

/// The demo upstream's routes, under `/v1`.
pub fn router(options: DemoOptions) -> Router {
    Router::new()
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .with_state(options)
}

fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}});
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn json_response(v: &Value) -> Response {
    ([(http::header::CONTENT_TYPE, "application/json")], v.to_string()).into_response()
}

async fn models() -> Response {
    json_response(
        &json!({"object": "list", "data": [{"id": DEMO_MODEL, "object": "model", "created": CREATED, "owned_by": "rampart"}]}),
    )
}

fn parse(body: &Bytes) -> Option<Map<String, Value>> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

fn words(s: &str) -> u64 {
    s.split_whitespace().count() as u64
}

fn request_id(prefix: &str, body: &Bytes) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    format!("{prefix}-demo{hex}")
}

/// The reply text, cut to `max_tokens` words; the bool says whether it was cut.
fn reply_for(prompt: &str, max_tokens: Option<u64>) -> (String, bool) {
    let quoted: String = prompt.chars().take(200).collect();
    let full = format!("Hello from the Rampart demo model. You said: \"{}\"", quoted.trim());
    match max_tokens {
        Some(n) if (n as usize) < full.split_whitespace().count() => (
            full.split_whitespace().take(n as usize).collect::<Vec<_>>().join(" "),
            true,
        ),
        _ => (full, false),
    }
}

fn max_tokens(req: &Map<String, Value>) -> Option<u64> {
    req.get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_u64)
}

/// Arguments for a tool call: every required property gets a value of its type.
fn tool_arguments(function: &Value) -> String {
    let mut args = Map::new();
    let params = function.get("parameters");
    let props = params.and_then(|p| p.get("properties")).and_then(Value::as_object);
    let required: Vec<&str> = params
        .and_then(|p| p.get("required"))
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(props) = props {
        for (name, schema) in props {
            if !required.contains(&name.as_str()) {
                continue;
            }
            let v = match schema.get("type").and_then(Value::as_str) {
                Some("integer") | Some("number") => json!(1),
                Some("boolean") => json!(true),
                Some("array") => json!([]),
                Some("object") => json!({}),
                _ => match schema.get("enum").and_then(Value::as_array).and_then(|e| e.first()) {
                    Some(first) => first.clone(),
                    None => json!("demo"),
                },
            };
            args.insert(name.clone(), v);
        }
    }
    Value::Object(args).to_string()
}

fn sse(events: Vec<String>, delay: Duration) -> Response {
    sse_frames(events.into_iter().map(|e| format!("data: {e}\n\n")).collect(), delay)
}

/// A stream of whole SSE frames, `delay` apart.
fn sse_frames(frames: Vec<String>, delay: Duration) -> Response {
    let s = stream::unfold((frames.into_iter(), true), move |(mut it, first)| async move {
        let next = it.next()?;
        if !first && !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        Some((Ok::<_, Infallible>(Bytes::from(next)), (it, false)))
    });
    Response::builder()
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .body(Body::from_stream(s))
        .unwrap_or_else(|_| error(StatusCode::INTERNAL_SERVER_ERROR, "cannot build stream"))
}

async fn chat(State(opts): State<DemoOptions>, body: Bytes) -> Response {
    let Some(req) = parse(&body) else {
        return error(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return error(StatusCode::BAD_REQUEST, "`messages` is required");
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(DEMO_MODEL)
        .to_string();
    let last_user = messages
        .iter()
        .rev()
        .find(|m| m.get("role").and_then(Value::as_str) == Some("user"))
        .map(|m| crate::openai::content_text(m.get("content")))
        .unwrap_or_default();
    let prompt_tokens: u64 = messages
        .iter()
        .map(|m| words(&crate::openai::content_text(m.get("content"))))
        .sum();
    let tool = match (req.get("tools").and_then(Value::as_array), req.get("tool_choice")) {
        (_, Some(Value::String(c))) if c == "none" => None,
        (Some(tools), _) => tools.first().and_then(|t| t.get("function")).cloned(),
        _ => None,
    };
    // After a tool result, answer in text so agent loops end.
    let tool = tool.filter(|_| messages.last().and_then(|m| m.get("role")).and_then(Value::as_str) != Some("tool"));
    let id = request_id("chatcmpl", &body);
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    let include_usage = req
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);

    if let Some(function) = tool {
        let name = function
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("tool")
            .to_string();
        let arguments = tool_arguments(&function);
        let completion_tokens = 8;
        let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
        let call_id = format!("call_{}", &id[id.len().saturating_sub(12)..]);
        if !stream {
            return json_response(&json!({
                "id": id, "object": "chat.completion", "created": CREATED, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
                    {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
                ]}, "finish_reason": "tool_calls", "logprobs": null}],
                "usage": usage,
            }));
        }
        let chunk = |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
            .to_string()
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": null, "tool_calls": [{"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]}),
            Value::Null,
        )];
        let mid = arguments.len() / 2;
        let split = (0..=mid).rev().find(|&i| arguments.is_char_boundary(i)).unwrap_or(0);
        let (a, b) = arguments.split_at(split);
        for part in [a, b] {
            events.push(chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": part}}]}),
                Value::Null,
            ));
        }
        events.push(chunk(json!({}), json!("tool_calls")));
        if include_usage {
            events.push(json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": [], "usage": usage}).to_string());
        }
        events.push("[DONE]".into());
        return sse(events, opts.chunk_delay);
    }

    let (text, cut) = reply_for(&last_user, max_tokens(&req));
    let completion_tokens = words(&text);
    let finish = if cut { "length" } else { "stop" };
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    if !stream {
        return json_response(&json!({
            "id": id, "object": "chat.completion", "created": CREATED, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": null}],
            "usage": usage,
        }));
    }
    let chunk = |delta: Value, finish: Value| {
        json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string()
    };
    let mut events = vec![chunk(json!({"role": "assistant", "content": ""}), Value::Null)];
    for (i, w) in text.split(' ').enumerate() {
        let piece = if i == 0 { w.to_string() } else { format!(" {w}") };
        events.push(chunk(json!({"content": piece}), Value::Null));
    }
    events.push(chunk(json!({}), json!(finish)));
    if include_usage {
        events.push(json!({"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model, "choices": [], "usage": usage}).to_string());
    }
    events.push("[DONE]".into());
    sse(events, opts.chunk_delay)
}

async fn completions(State(opts): State<DemoOptions>, body: Bytes) -> Response {
    let Some(req) = parse(&body) else {
        return error(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(DEMO_MODEL)
        .to_string();
    let prompt = match req.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(" "),
        _ => String::new(),
    };
    let (text, cut) = reply_for(&prompt, max_tokens(&req));
    let finish = if cut { "length" } else { "stop" };
    let id = request_id("cmpl", &body);
    let prompt_tokens = words(&prompt);
    let completion_tokens = words(&text);
    let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens});
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        return json_response(&json!({
            "id": id, "object": "text_completion", "created": CREATED, "model": model,
            "choices": [{"text": text, "index": 0, "logprobs": null, "finish_reason": finish}],
            "usage": usage,
        }));
    }
    let chunk = |t: &str, finish: Value| {
        json!({"id": id, "object": "text_completion", "created": CREATED, "model": model,
               "choices": [{"text": t, "index": 0, "logprobs": null, "finish_reason": finish}]})
        .to_string()
    };
    let mut events: Vec<String> = text
        .split(' ')
        .enumerate()
        .map(|(i, w)| chunk(&if i == 0 { w.to_string() } else { format!(" {w}") }, Value::Null))
        .collect();
    events.push(chunk("", json!(finish)));
    if req
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        events.push(json!({"id": id, "object": "text_completion", "created": CREATED, "model": model, "choices": [], "usage": usage}).to_string());
    }
    events.push("[DONE]".into());
    sse(events, opts.chunk_delay)
}

/// The text of a Responses API `input`: a string, or the last user message item's text.
fn responses_prompt(input: Option<&Value>) -> String {
    match input {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .rev()
            .find(|i| i.get("role").and_then(Value::as_str) == Some("user"))
            .map(|m| crate::openai::content_text(m.get("content")))
            .unwrap_or_default(),
        _ => String::new(),
    }
}

/// Words in every text of a Responses API request (its input token count).
fn responses_input_words(req: &Map<String, Value>) -> u64 {
    let instructions = req.get("instructions").and_then(Value::as_str).map_or(0, words);
    let input = match req.get("input") {
        Some(Value::String(s)) => words(s),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                words(&crate::openai::content_text(i.get("content")))
                    + i.get("output").and_then(Value::as_str).map_or(0, words)
            })
            .sum(),
        _ => 0,
    };
    instructions + input
}

async fn responses(State(opts): State<DemoOptions>, body: Bytes) -> Response {
    let Some(req) = parse(&body) else {
        return error(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    if !matches!(req.get("input"), Some(Value::String(_) | Value::Array(_))) {
        return error(StatusCode::BAD_REQUEST, "`input` is required");
    }
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(DEMO_MODEL)
        .to_string();
    let id = request_id("resp", &body);
    let tag = &id[id.len().saturating_sub(24)..];
    let after_tool = match req.get("input") {
        Some(Value::Array(items)) => items
            .last()
            .and_then(|i| i.get("type"))
            .and_then(Value::as_str)
            .is_some_and(|t| t.ends_with("_output")),
        _ => false,
    };
    let tool = match (req.get("tools").and_then(Value::as_array), req.get("tool_choice")) {
        (_, Some(Value::String(c))) if c == "none" => None,
        (Some(tools), _) => tools
            .iter()
            .find(|t| t.get("type").and_then(Value::as_str) == Some("function"))
            .cloned(),
        _ => None,
    };
    // After a tool result, answer in text so agent loops end.
    let tool = tool.filter(|_| !after_tool);
    let input_tokens = responses_input_words(&req);
    let (item, text, cut) = match &tool {
        Some(function) => {
            let name = function.get("name").and_then(Value::as_str).unwrap_or("tool");
            let arguments = tool_arguments(function);
            let item = json!({"id": format!("fc_{tag}"), "type": "function_call", "status": "completed",
                              "call_id": format!("call_{tag}"), "name": name, "arguments": arguments});
            (item, arguments, false)
        }
        None => {
            let prompt = responses_prompt(req.get("input"));
            let (text, cut) = reply_for(&prompt, req.get("max_output_tokens").and_then(Value::as_u64));
            let item = json!({"id": format!("msg_{tag}"), "type": "message", "status": "completed", "role": "assistant",
                              "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]});
            (item, text, cut)
        }
    };
    let output_tokens = if tool.is_some() { 8 } else { words(&text) };
    let mut response = json!({
        "id": id, "object": "response", "created_at": CREATED, "status": if cut { "incomplete" } else { "completed" },
        "error": null, "incomplete_details": if cut { json!({"reason": "max_output_tokens"}) } else { Value::Null },
        "instructions": req.get("instructions").cloned().unwrap_or(Value::Null),
        "max_output_tokens": req.get("max_output_tokens").cloned().unwrap_or(Value::Null),
        "model": model, "output": [item.clone()], "parallel_tool_calls": true,
        "previous_response_id": req.get("previous_response_id").cloned().unwrap_or(Value::Null),
        "temperature": 1.0, "top_p": 1.0, "text": {"format": {"type": "text"}},
        "tool_choice": req.get("tool_choice").cloned().unwrap_or(json!("auto")),
        "tools": req.get("tools").cloned().unwrap_or(json!([])), "truncation": "disabled",
        "metadata": req.get("metadata").cloned().unwrap_or(json!({})),
        "usage": {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                  "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                  "total_tokens": input_tokens + output_tokens},
    });
    if !req.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        return json_response(&response);
    }
    let final_status = response["status"].clone();
    let mut events: Vec<Value> = Vec::new();
    let mut start = response.clone();
    start["status"] = json!("in_progress");
    start["output"] = json!([]);
    start["usage"] = Value::Null;
    start["incomplete_details"] = Value::Null;
    events.push(json!({"type": "response.created", "response": start.clone()}));
    events.push(json!({"type": "response.in_progress", "response": start}));
    let mut added = item.clone();
    added["status"] = json!("in_progress");
    let item_id = item["id"].clone();
    let pieces: Vec<String> = text
        .split(' ')
        .enumerate()
        .map(|(i, w)| if i == 0 { w.to_string() } else { format!(" {w}") })
        .collect();
    if tool.is_some() {
        added["arguments"] = json!("");
        events.push(json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
        for p in &pieces {
            events.push(json!({"type": "response.function_call_arguments.delta", "item_id": item_id, "output_index": 0, "delta": p}));
        }
        events.push(json!({"type": "response.function_call_arguments.done", "item_id": item_id, "output_index": 0, "arguments": text}));
    } else {
        added["content"] = json!([]);
        events.push(json!({"type": "response.output_item.added", "output_index": 0, "item": added}));
        let empty = json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []});
        events.push(json!({"type": "response.content_part.added", "item_id": item_id, "output_index": 0, "content_index": 0, "part": empty}));
        for p in &pieces {
            events.push(json!({"type": "response.output_text.delta", "item_id": item_id, "output_index": 0, "content_index": 0, "delta": p, "logprobs": []}));
        }
        events.push(json!({"type": "response.output_text.done", "item_id": item_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}));
        let part = item["content"][0].clone();
        events.push(json!({"type": "response.content_part.done", "item_id": item_id, "output_index": 0, "content_index": 0, "part": part}));
    }
    events.push(json!({"type": "response.output_item.done", "output_index": 0, "item": item}));
    response["status"] = final_status;
    let terminal = if cut {
        "response.incomplete"
    } else {
        "response.completed"
    };
    events.push(json!({"type": terminal, "response": response}));
    let frames = events
        .into_iter()
        .enumerate()
        .map(|(n, mut e)| {
            e["sequence_number"] = json!(n);
            let ty = e["type"].as_str().unwrap_or("message").to_owned();
            format!("event: {ty}\ndata: {e}\n\n")
        })
        .collect();
    sse_frames(frames, opts.chunk_delay)
}

/// A deterministic unit vector for `text`.
pub fn embed(text: &str, dims: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(dims);
    let mut counter: u32 = 0;
    while out.len() < dims {
        let mut h = Sha256::new();
        h.update(counter.to_le_bytes());
        h.update(text.as_bytes());
        for pair in h.finalize().chunks_exact(2) {
            if out.len() == dims {
                break;
            }
            let v = u16::from_le_bytes([pair[0], pair[1]]);
            out.push(f32::from(v) / 32767.5 - 1.0);
        }
        counter += 1;
    }
    let norm = out.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::EPSILON);
    out.iter_mut().for_each(|x| *x /= norm);
    out
}

async fn embeddings(body: Bytes) -> Response {
    let Some(req) = parse(&body) else {
        return error(StatusCode::BAD_REQUEST, "body must be a JSON object");
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or(DEMO_MODEL)
        .to_string();
    let dims = req
        .get("dimensions")
        .and_then(Value::as_u64)
        .unwrap_or(64)
        .clamp(1, 4096) as usize;
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
            .collect(),
        _ => return error(StatusCode::BAD_REQUEST, "`input` is required"),
    };
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = embed(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|s| words(s).max(1)).sum();
    json_response(
        &json!({"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embed("hello", 64);
        assert_eq!(a, embed("hello", 64));
        assert_ne!(a, embed("hullo", 64));
        let norm: f32 = a.iter().map(|x| x * x).sum();
        assert!((norm - 1.0).abs() < 1e-4);
    }

    #[test]
    fn tool_arguments_fill_required_fields() {
        let f = json!({"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}, "unit": {"type": "string"}}, "required": ["city", "days"]}});
        let args: Value = serde_json::from_str(&tool_arguments(&f)).unwrap();
        assert_eq!(args, json!({"city": "demo", "days": 1}));
    }

    #[test]
    fn reply_respects_max_tokens() {
        let (t, cut) = reply_for("a b c", Some(3));
        assert!(cut);
        assert_eq!(t.split_whitespace().count(), 3);
    }
}
