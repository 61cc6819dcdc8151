//! The OpenAI wire format on the way in: untrusted bytes become a checked request before any
//! logic runs.
//!
//! The body is kept as a JSON object so fields Rampart does not know pass through unchanged,
//! but every field Rampart relies on (model, messages, prompt, input, stream, max tokens,
//! tools) is type-checked here, and every refusal names the offending field in `param`.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::tokens::Tokenizer;

/// Which inference endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v1/chat/completions`.
    Chat,
    /// `/v1/completions`.
    Completions,
    /// `/v1/embeddings`.
    Embeddings,
    /// `/v1/responses` (the Responses API: typed input items and output items).
    Responses,
}

impl Endpoint {
    /// Path below the upstream's base URL.
    pub fn path(self) -> &'static str {
        match self {
            Endpoint::Chat => "/chat/completions",
            Endpoint::Completions => "/completions",
            Endpoint::Embeddings => "/embeddings",
            Endpoint::Responses => "/responses",
        }
    }

    /// Label for metrics and logs.
    pub fn label(self) -> &'static str {
        match self {
            Endpoint::Chat => "chat",
            Endpoint::Completions => "completions",
            Endpoint::Embeddings => "embeddings",
            Endpoint::Responses => "responses",
        }
    }
}

const ROLES: &[&str] = &["system", "developer", "user", "assistant", "tool", "function"];

/// Roles of Responses API message items.
const ITEM_ROLES: &[&str] = &["system", "developer", "user", "assistant"];

/// A checked inference request.
#[derive(Debug, Clone)]
pub struct InferenceRequest {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// The model the client asked for.
    pub model: String,
    /// Whether the client wants SSE.
    pub stream: bool,
    /// Whether the client itself asked for a usage chunk at the end of the stream.
    pub client_wants_stream_usage: bool,
    /// Prompt tokens as counted by Rampart.
    pub prompt_tokens: u64,
    /// The body as received (unknown fields kept).
    pub body: Map<String, Value>,
}

/// The text of a message's `content`: a string, or the `text` of each of its parts, joined by
/// spaces.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(" "),
        _ => String::new(),
    }
}

fn bad(code: &'static str, param: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_request(code, message).with_param(param)
}

fn wrong_type(param: &str, expected: &str) -> ApiError {
    bad("invalid_type", param, format!("`{param}` must be {expected}"))
}

impl InferenceRequest {
    /// Parses and checks a body for `endpoint`, counting prompt tokens.
    pub fn parse(endpoint: Endpoint, bytes: &[u8], tokenizer: &Tokenizer) -> Result<InferenceRequest, ApiError> {
        if bytes.is_empty() {
            return Err(ApiError::invalid_request(
                "invalid_json",
                "the request body is empty; send a JSON object",
            ));
        }
        let text = std::str::from_utf8(bytes).map_err(|e| {
            ApiError::invalid_request(
                "invalid_utf8",
                format!("the request body is not valid UTF-8 (at byte {})", e.valid_up_to()),
            )
        })?;
        let value: Value = serde_json::from_str(text).map_err(|e| {
            ApiError::invalid_request("invalid_json", format!("the request body is not valid JSON: {e}"))
        })?;
        let Value::Object(body) = value else {
            return Err(ApiError::invalid_request(
                "invalid_json",
                "the request body must be a JSON object",
            ));
        };
        let model = match body.get("model") {
            Some(Value::String(m)) if !m.is_empty() => m.clone(),
            Some(Value::String(_)) | None => return Err(bad("missing_parameter", "model", "`model` is required")),
            Some(_) => return Err(wrong_type("model", "a string")),
        };
        let stream = match body.get("stream") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(wrong_type("stream", "a boolean")),
        };
        if stream && endpoint == Endpoint::Embeddings {
            return Err(bad("invalid_value", "stream", "embeddings cannot be streamed"));
        }
        let client_wants_stream_usage = match body.get("stream_options") {
            None | Some(Value::Null) => false,
            Some(Value::Object(o)) => match o.get("include_usage") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(wrong_type("stream_options.include_usage", "a boolean")),
            },
            Some(_) => return Err(wrong_type("stream_options", "an object")),
        };
        for field in ["max_tokens", "max_completion_tokens", "max_output_tokens", "n"] {
            match body.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::Number(n)) if n.as_u64().is_some_and(|v| v >= 1) => {}
                Some(_) => return Err(wrong_type(field, "a positive integer")),
            }
        }
        let prompt_tokens = match endpoint {
            Endpoint::Chat => check_chat(&body, tokenizer)?,
            Endpoint::Completions => count_prompt(body.get("prompt"), "prompt", tokenizer, true)?,
            Endpoint::Embeddings => count_prompt(body.get("input"), "input", tokenizer, false)?,
            Endpoint::Responses => check_responses(&body, tokenizer)?,
        };
        Ok(InferenceRequest {
            endpoint,
            model,
            stream,
            client_wants_stream_usage,
            prompt_tokens,
            body,
        })
    }

    /// The `max_tokens` (or `max_completion_tokens`, or the Responses API's
    /// `max_output_tokens`) the client asked for.
    pub fn max_tokens(&self) -> Option<u64> {
        self.body
            .get("max_completion_tokens")
            .or_else(|| self.body.get("max_tokens"))
            .or_else(|| self.body.get("max_output_tokens"))
            .and_then(Value::as_u64)
    }

    /// Refuses a request that asks for more than the gateway allows: choices (`n`,
    /// `best_of`), completion tokens, messages, tools. Unbounded asks are how one request
    /// becomes a bill.
    pub fn check_caps(&self, limits: &rampart_policy::LimitsConfig) -> Result<(), ApiError> {
        for (field, most) in [
            ("n", limits.max_choices),
            ("best_of", limits.max_choices),
            ("max_tokens", limits.max_completion_tokens),
            ("max_completion_tokens", limits.max_completion_tokens),
            ("max_output_tokens", limits.max_completion_tokens),
        ] {
            if let Some(n) = self.body.get(field).and_then(Value::as_u64) {
                if n > most {
                    return Err(bad(
                        "invalid_value",
                        field,
                        format!("`{field}` is {n}; this gateway allows at most {most}"),
                    ));
                }
            }
        }
        let count = |f: &str| self.body.get(f).and_then(Value::as_array).map_or(0, Vec::len);
        let turns = if self.endpoint == Endpoint::Responses {
            "input"
        } else {
            "messages"
        };
        if count(turns) > limits.max_messages {
            return Err(bad(
                "invalid_value",
                turns,
                format!(
                    "the request has {} {}; this gateway allows at most {}",
                    count(turns),
                    if turns == "input" { "input items" } else { "messages" },
                    limits.max_messages
                ),
            ));
        }
        let tools = count("tools") + count("functions");
        if tools > limits.max_tools {
            return Err(bad(
                "invalid_value",
                "tools",
                format!(
                    "the request has {tools} tools; this gateway allows at most {}",
                    limits.max_tools
                ),
            ));
        }
        Ok(())
    }

    /// Lowers (or sets) the completion-token cap.
    pub fn cap_max_tokens(&mut self, cap: u64) {
        if self.endpoint == Endpoint::Embeddings {
            return;
        }
        let field = if self.endpoint == Endpoint::Responses {
            "max_output_tokens"
        } else if self.body.contains_key("max_completion_tokens") {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        let current = self.body.get(field).and_then(Value::as_u64);
        if current.is_none_or(|c| c > cap) {
            self.body.insert(field.into(), Value::from(cap));
        }
    }

    /// The body to send upstream, naming the pinned upstream model. For streamed chat, asks
    /// for a usage chunk so completion tokens can be charged.
    pub fn upstream_body(&self, upstream_model: &str) -> Result<Vec<u8>, ApiError> {
        let mut body = self.body.clone();
        body.insert("model".into(), Value::String(upstream_model.into()));
        if self.stream && self.endpoint == Endpoint::Chat && !self.client_wants_stream_usage {
            let opts = body
                .entry("stream_options")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(o) = opts {
                o.insert("include_usage".into(), Value::Bool(true));
            }
        }
        serde_json::to_vec(&body).map_err(|_| {
            ApiError::internal(
                http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "cannot encode the upstream request",
            )
        })
    }
}

/// The `role` of the message at `param`: present, a string, and one of `allowed`.
fn role_of<'m>(m: &'m Map<String, Value>, param: &str, allowed: &[&str]) -> Result<&'m str, ApiError> {
    let role = match m.get("role") {
        Some(Value::String(r)) => r.as_str(),
        None => {
            return Err(bad(
                "missing_parameter",
                &format!("{param}.role"),
                format!("`{param}.role` is required"),
            ))
        }
        Some(_) => return Err(wrong_type(&format!("{param}.role"), "a string")),
    };
    if !allowed.contains(&role) {
        return Err(bad(
            "invalid_value",
            &format!("{param}.role"),
            format!("`{param}.role` must be one of {}", allowed.join(", ")),
        ));
    }
    Ok(role)
}

fn check_chat(body: &Map<String, Value>, tokenizer: &Tokenizer) -> Result<u64, ApiError> {
    let messages = match body.get("messages") {
        Some(Value::Array(m)) if !m.is_empty() => m,
        Some(Value::Array(_)) => return Err(bad("invalid_value", "messages", "`messages` must not be empty")),
        None => return Err(bad("missing_parameter", "messages", "`messages` is required")),
        Some(_) => return Err(wrong_type("messages", "an array of messages")),
    };
    let mut texts: Vec<&str> = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let Value::Object(m) = m else {
            return Err(wrong_type(&format!("messages[{i}]"), "an object"));
        };
        let role = role_of(m, &format!("messages[{i}]"), ROLES)?;
        match m.get("content") {
            None | Some(Value::Null) => {
                if role != "assistant" {
                    return Err(bad(
                        "missing_parameter",
                        &format!("messages[{i}].content"),
                        format!("`messages[{i}].content` is required"),
                    ));
                }
            }
            Some(Value::String(s)) => texts.push(s),
            Some(Value::Array(parts)) => {
                for (j, p) in parts.iter().enumerate() {
                    let param = format!("messages[{i}].content[{j}]");
                    let Value::Object(p) = p else {
                        return Err(wrong_type(&param, "an object"));
                    };
                    match p.get("type") {
                        Some(Value::String(t)) if t == "text" => match p.get("text") {
                            Some(Value::String(s)) => texts.push(s),
                            _ => return Err(wrong_type(&format!("{param}.text"), "a string")),
                        },
                        Some(Value::String(_)) => {}
                        _ => return Err(wrong_type(&format!("{param}.type"), "a string")),
                    }
                }
            }
            Some(_) => {
                return Err(wrong_type(
                    &format!("messages[{i}].content"),
                    "a string, an array of parts, or null",
                ))
            }
        }
        if let Some(calls) = m.get("tool_calls") {
            if !calls.is_array() {
                return Err(wrong_type(&format!("messages[{i}].tool_calls"), "an array"));
            }
        }
        if role == "tool" && !matches!(m.get("tool_call_id"), Some(Value::String(_))) {
            return Err(bad(
                "missing_parameter",
                &format!("messages[{i}].tool_call_id"),
                "a `tool` message needs a `tool_call_id`",
            ));
        }
    }
    let mut extra = 0;
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => {
            for (i, t) in tools.iter().enumerate() {
                let name = t.get("function").and_then(|f| f.get("name"));
                if !matches!(name, Some(Value::String(_))) {
                    return Err(bad(
                        "missing_parameter",
                        &format!("tools[{i}].function.name"),
                        format!("`tools[{i}].function.name` is required"),
                    ));
                }
                if let Some(f) = t.get("function") {
                    extra += tokenizer.count(&f.to_string());
                }
            }
        }
        Some(_) => return Err(wrong_type("tools", "an array")),
    }
    Ok(tokenizer.count_chat(texts, messages.len()) + extra)
}

/// Checks a Responses API request: `input` (a string, or an array of items: messages with
/// string or typed-part content, replayed function calls and their outputs, reasoning and
/// other typed items), `instructions` and `tools`; counts the prompt's tokens. Fields this
/// gateway does not know pass through to the upstream, which checks them itself.
fn check_responses(body: &Map<String, Value>, tokenizer: &Tokenizer) -> Result<u64, ApiError> {
    let mut texts: Vec<&str> = Vec::new();
    let mut turns = 0;
    let mut extra = 0;
    match body.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            texts.push(s);
            turns += 1;
        }
        Some(_) => return Err(wrong_type("instructions", "a string")),
    }
    match body.get("previous_response_id") {
        None | Some(Value::Null) | Some(Value::String(_)) => {}
        Some(_) => return Err(wrong_type("previous_response_id", "a string")),
    }
    match body.get("input") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            texts.push(s);
            turns += 1;
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                let param = format!("input[{i}]");
                let Value::Object(item) = item else {
                    return Err(wrong_type(&param, "an object"));
                };
                turns += 1;
                let kind = match item.get("type") {
                    None | Some(Value::Null) => "message",
                    Some(Value::String(t)) => t.as_str(),
                    Some(_) => return Err(wrong_type(&format!("{param}.type"), "a string")),
                };
                if kind == "message" || item.contains_key("role") {
                    role_of(item, &param, ITEM_ROLES)?;
                    match item.get("content") {
                        Some(Value::String(s)) => texts.push(s),
                        Some(Value::Array(parts)) => {
                            for (j, p) in parts.iter().enumerate() {
                                let pp = format!("{param}.content[{j}]");
                                let Value::Object(p) = p else {
                                    return Err(wrong_type(&pp, "an object"));
                                };
                                if !matches!(p.get("type"), Some(Value::String(_))) {
                                    return Err(wrong_type(&format!("{pp}.type"), "a string"));
                                }
                                match p.get("text") {
                                    None | Some(Value::Null) => {}
                                    Some(Value::String(s)) => texts.push(s),
                                    Some(_) => return Err(wrong_type(&format!("{pp}.text"), "a string")),
                                }
                            }
                        }
                        None => {
                            return Err(bad(
                                "missing_parameter",
                                &format!("{param}.content"),
                                format!("`{param}.content` is required"),
                            ))
                        }
                        Some(_) => {
                            return Err(wrong_type(&format!("{param}.content"), "a string or an array of parts"))
                        }
                    }
                    continue;
                }
                for field in ["arguments", "output", "input"] {
                    match item.get(field) {
                        Some(Value::String(s)) => texts.push(s),
                        Some(v @ Value::Array(_)) | Some(v @ Value::Object(_)) => {
                            extra += tokenizer.count(&v.to_string());
                        }
                        _ => {}
                    }
                }
            }
        }
        Some(_) => return Err(wrong_type("input", "a string or an array of input items")),
    }
    match body.get("tools") {
        None | Some(Value::Null) => {}
        Some(Value::Array(tools)) => {
            for (i, t) in tools.iter().enumerate() {
                let Value::Object(t) = t else {
                    return Err(wrong_type(&format!("tools[{i}]"), "an object"));
                };
                match t.get("type") {
                    Some(Value::String(kind)) if kind == "function" => {
                        if !matches!(t.get("name"), Some(Value::String(_))) {
                            return Err(bad(
                                "missing_parameter",
                                &format!("tools[{i}].name"),
                                format!("`tools[{i}].name` is required"),
                            ));
                        }
                    }
                    Some(Value::String(_)) => {}
                    _ => return Err(wrong_type(&format!("tools[{i}].type"), "a string")),
                }
                extra += tokenizer.count(&Value::Object(t.clone()).to_string());
            }
        }
        Some(_) => return Err(wrong_type("tools", "an array")),
    }
    Ok(tokenizer.count_chat(texts, turns) + extra)
}

/// Counts `prompt` (completions) or `input` (embeddings): a string, an array of strings, an
/// array of token ids, or an array of such arrays.
fn count_prompt(value: Option<&Value>, param: &str, tokenizer: &Tokenizer, optional: bool) -> Result<u64, ApiError> {
    let expected = "a string, an array of strings, or an array of token arrays";
    match value {
        None | Some(Value::Null) if optional => Ok(0),
        None | Some(Value::Null) => Err(bad("missing_parameter", param, format!("`{param}` is required"))),
        Some(Value::String(s)) => Ok(tokenizer.count(s)),
        Some(Value::Array(items)) => {
            if items.is_empty() {
                return Err(bad("invalid_value", param, format!("`{param}` must not be empty")));
            }
            let mut total = 0;
            for (i, item) in items.iter().enumerate() {
                total += match item {
                    Value::String(s) => tokenizer.count(s),
                    Value::Number(n) if n.is_u64() => 1,
                    Value::Array(ids) if ids.iter().all(|x| x.is_u64()) => ids.len() as u64,
                    _ => {
                        return Err(wrong_type(
                            &format!("{param}[{i}]"),
                            "a string, a token id, or an array of token ids",
                        ))
                    }
                };
            }
            Ok(total)
        }
        Some(_) => Err(wrong_type(param, expected)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn tok() -> &'static Tokenizer {
        static T: OnceLock<Tokenizer> = OnceLock::new();
        T.get_or_init(|| Tokenizer::load().unwrap())
    }

    fn parse(e: Endpoint, s: &str) -> Result<InferenceRequest, ApiError> {
        InferenceRequest::parse(e, s.as_bytes(), tok())
    }

    #[test]
    fn good_chat_request_keeps_unknown_fields() {
        let r = parse(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"temperature":0.2,"x":1}"#,
        )
        .unwrap();
        assert_eq!(r.model, "m");
        assert!(!r.stream);
        assert!(r.prompt_tokens > 0);
        let up: Value = serde_json::from_slice(&r.upstream_body("m-2024").unwrap()).unwrap();
        assert_eq!(up["model"], "m-2024");
        assert_eq!(up["x"], 1);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (
                r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
                "messages[0].content",
                "invalid_type",
            ),
            (
                r#"{"model":"m","messages":[{"role":"wizard","content":"x"}]}"#,
                "messages[0].role",
                "invalid_value",
            ),
            (
                r#"{"messages":[{"role":"user","content":"x"}]}"#,
                "model",
                "missing_parameter",
            ),
            (r#"{"model":3,"messages":[]}"#, "model", "invalid_type"),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
                "stream",
                "invalid_type",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-1}"#,
                "max_tokens",
                "invalid_type",
            ),
        ];
        for (body, param, code) in cases {
            let e = parse(Endpoint::Chat, body).unwrap_err();
            assert_eq!(e.code(), code, "{body}");
            assert_eq!(e.body(None)["error"]["param"], param, "{body}");
        }
    }

    #[test]
    fn responses_requests_are_read_item_by_item() {
        let r = parse(
            Endpoint::Responses,
            r#"{"model":"m","instructions":"be brief","input":[{"role":"user","content":[{"type":"input_text","text":"hello there"}]},{"type":"function_call_output","call_id":"c","output":"42"}],"max_output_tokens":900}"#,
        )
        .unwrap();
        assert!(r.prompt_tokens >= 4, "{}", r.prompt_tokens);
        assert_eq!(r.max_tokens(), Some(900));
        let mut r = parse(Endpoint::Responses, r#"{"model":"m","input":"x"}"#).unwrap();
        r.cap_max_tokens(64);
        let up: Value = serde_json::from_slice(&r.upstream_body("m-1").unwrap()).unwrap();
        assert_eq!(up["max_output_tokens"], 64);
        assert!(up.get("max_tokens").is_none(), "{up}");
        let cases = [
            (r#"{"model":"m","input":[5]}"#, "input[0]"),
            (r#"{"model":"m","input":[{"content":"x"}]}"#, "input[0].role"),
            (r#"{"model":"m","input":[{"role":"user"}]}"#, "input[0].content"),
            (
                r#"{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":3}]}]}"#,
                "input[0].content[0].text",
            ),
            (r#"{"model":"m","input":"x","instructions":{}}"#, "instructions"),
            (
                r#"{"model":"m","input":"x","previous_response_id":1}"#,
                "previous_response_id",
            ),
            (
                r#"{"model":"m","input":"x","max_output_tokens":0}"#,
                "max_output_tokens",
            ),
        ];
        for (body, param) in cases {
            let e = parse(Endpoint::Responses, body).unwrap_err();
            assert_eq!(e.body(None)["error"]["param"], param, "{body}");
        }
    }

    #[test]
    fn broken_utf8_and_bad_json_are_refused() {
        let e = InferenceRequest::parse(Endpoint::Chat, b"{\"model\":\"\xff\"}", tok()).unwrap_err();
        assert_eq!(e.code(), "invalid_utf8");
        assert_eq!(parse(Endpoint::Chat, "{\"model\":").unwrap_err().code(), "invalid_json");
        assert_eq!(parse(Endpoint::Chat, "[1]").unwrap_err().code(), "invalid_json");
    }

    #[test]
    fn cap_lowers_or_sets_max_tokens() {
        let mut r = parse(
            Endpoint::Chat,
            r#"{"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":900}"#,
        )
        .unwrap();
        r.cap_max_tokens(100);
        assert_eq!(r.max_tokens(), Some(100));
        let mut r = parse(Endpoint::Completions, r#"{"model":"m","prompt":"x"}"#).unwrap();
        r.cap_max_tokens(50);
        assert_eq!(r.max_tokens(), Some(50));
    }

    #[test]
    fn streamed_chat_asks_upstream_for_usage() {
        let r = parse(
            Endpoint::Chat,
            r#"{"model":"m","stream":true,"messages":[{"role":"user","content":"x"}]}"#,
        )
        .unwrap();
        let up: Value = serde_json::from_slice(&r.upstream_body("u").unwrap()).unwrap();
        assert_eq!(up["stream_options"]["include_usage"], true);
        assert!(!r.client_wants_stream_usage);
    }

    #[test]
    fn embeddings_inputs() {
        assert_eq!(
            parse(Endpoint::Embeddings, r#"{"model":"e","input":[[1,2,3],[4]]}"#)
                .unwrap()
                .prompt_tokens,
            4
        );
        assert_eq!(
            parse(Endpoint::Embeddings, r#"{"model":"e"}"#).unwrap_err().code(),
            "missing_parameter"
        );
        assert_eq!(
            parse(Endpoint::Embeddings, r#"{"model":"e","input":"x","stream":true}"#)
                .unwrap_err()
                .code(),
            "invalid_value"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            for e in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
                if let Err(err) = InferenceRequest::parse(e, &bytes, tok()) {
                    prop_assert_eq!(err.status(), http::StatusCode::BAD_REQUEST);
                }
            }
        }

        #[test]
        fn arbitrary_json_values_in_messages_never_panic(v in arb_json()) {
            let body = serde_json::json!({"model": "m", "messages": v, "tools": v, "prompt": v, "input": v});
            let bytes = body.to_string();
            for e in [Endpoint::Chat, Endpoint::Completions, Endpoint::Embeddings] {
                let _ = InferenceRequest::parse(e, bytes.as_bytes(), tok());
            }
        }
    }

    fn arb_json() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            "\\PC{0,12}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                proptest::collection::btree_map("role|content|type|text|function|name|x", inner, 0..5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }
}
