//! The Responses API's typed events, checked one by one.
//!
//! The same text reaches a client several times in one stream: as `*.delta` events, then whole
//! in the matching `*.done` event, in `response.content_part.done`, in
//! `response.output_item.done` and in the final `response.completed`. Each streamed text (one
//! part of one output item) goes through its own output scanner with hold-back; every later
//! copy is replaced by exactly what was released, so no copy can carry what the deltas were
//! stopped from carrying. What a scanner still holds when its text is done goes out as one
//! more delta, before the `done` event. A `done` text that does not continue its deltas ends
//! the stream: the upstream is not telling one story.
//!
//! Other strings (ids, names, annotations, metadata, error messages) are scanned whole. The
//! `instructions` the answer echoes are replaced by the client's own (the upstream saw the
//! operator's system prompt and canary there). Token log probabilities and the `obfuscation`
//! padding are not relayed. Function calls are held from `response.output_item.added` to
//! `response.output_item.done` and checked whole by the tool guard before any of their events
//! go out. Events are renumbered, since Rampart adds and drops some.

use std::collections::{BTreeMap, HashMap};

use bytes::{Bytes, BytesMut};
use serde_json::{json, Map, Value};

use crate::proxy::guard::{Field, OutputBlocked, StreamGuard, StreamStop};
use crate::proxy::tools::{self, ToolCheck};
use crate::state::Gateway;

/// One streamed text: output item, part, and the kind its events name.
type Key = (u64, Field);

#[derive(Debug, Default)]
struct Text {
    /// What the upstream sent, to check later copies against.
    raw: String,
    /// What went out.
    released: String,
    done: bool,
}

/// Why a Responses stream ends early.
pub(super) enum Halt {
    /// The output policy or the tool guard stopped it.
    Stop(StreamStop),
    /// The upstream reported an error; its message, already scanned.
    Upstream(String),
}

impl From<OutputBlocked> for Halt {
    fn from(b: OutputBlocked) -> Self {
        Halt::Stop(StreamStop::Blocked(b))
    }
}

fn invalid(what: &'static str) -> Halt {
    Halt::Stop(StreamStop::Invalid(what))
}

/// The checked state of one Responses stream.
pub(super) struct Events {
    guard: Option<StreamGuard>,
    tools: Option<ToolCheck>,
    /// The `instructions` the client sent.
    echo: Value,
    seq: u64,
    texts: HashMap<Key, Text>,
    /// Item ids by output index, for the deltas Rampart adds.
    item_ids: HashMap<u64, Value>,
    /// Events of function calls awaiting the tool guard, by output index (numbered when they
    /// go out, so a refused call leaves no gap).
    held: BTreeMap<u64, Vec<Map<String, Value>>>,
    /// Usage from the final event: input and output tokens.
    pub(super) usage: (Option<u64>, Option<u64>, u64),
    /// Bytes of generated text seen (for an estimate when no usage comes).
    pub(super) text_bytes: usize,
}

/// The field a streamed kind's text has in its `done` event and in its item or part.
fn field_of(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "output_text" | "reasoning_summary_text" | "reasoning_text" => "text",
        "refusal" => "refusal",
        "function_call_arguments" | "mcp_call_arguments" => "arguments",
        "custom_tool_call_input" => "input",
        "code_interpreter_call_code" => "code",
        _ => return None,
    })
}

/// Which streamed kind a part of an output item is.
fn part_kind(item_type: &str, list: &str, part_type: Option<&str>) -> Option<&'static str> {
    Some(match (item_type, list, part_type) {
        ("message", "content", Some("output_text")) => "output_text",
        ("message", "content", Some("refusal")) => "refusal",
        ("reasoning", "summary", _) => "reasoning_summary_text",
        ("reasoning", "content", _) => "reasoning_text",
        _ => return None,
    })
}

/// Which streamed kind an output item's own text is.
fn item_kind(item_type: &str) -> Option<&'static str> {
    Some(match item_type {
        "function_call" => "function_call_arguments",
        "custom_tool_call" => "custom_tool_call_input",
        "mcp_call" => "mcp_call_arguments",
        "code_interpreter_call" => "code_interpreter_call_code",
        _ => return None,
    })
}

/// `response.output_text.delta` → `output_text`; `response.audio.transcript.done` →
/// `audio.transcript`.
fn kind_of<'a>(ty: &'a str, suffix: &str) -> &'a str {
    let t = ty.strip_prefix("response.").unwrap_or(ty);
    t.strip_suffix(suffix).unwrap_or(t)
}

/// The part index an event names (`content_index` or `summary_index`).
fn part_index(v: &Map<String, Value>) -> u64 {
    v.get("content_index")
        .or_else(|| v.get("summary_index"))
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

const TERMINAL: &[&str] = &["response.completed", "response.incomplete", "response.failed"];

impl Events {
    pub(super) fn new(guard: Option<StreamGuard>, tools: Option<ToolCheck>, echo: Value) -> Events {
        Events {
            guard,
            tools,
            echo,
            seq: 0,
            texts: HashMap::new(),
            item_ids: HashMap::new(),
            held: BTreeMap::new(),
            usage: (None, None, 0),
            text_bytes: 0,
        }
    }

    pub(super) fn guard(&self) -> Option<&StreamGuard> {
        self.guard.as_ref()
    }

    /// Takes the output guard (what it holds back is never released).
    pub(super) fn take_guard(&mut self) -> Option<StreamGuard> {
        self.guard.take()
    }

    /// The next sequence number.
    pub(super) fn next_seq(&mut self) -> u64 {
        let n = self.seq;
        self.seq += 1;
        n
    }

    fn frame(&mut self, mut v: Map<String, Value>) -> Bytes {
        let ty = v.get("type").and_then(Value::as_str).unwrap_or("message").to_owned();
        v.insert("sequence_number".into(), Value::from(self.next_seq()));
        let data = Value::Object(v).to_string();
        Bytes::from(format!("event: {ty}\ndata: {data}\n\n"))
    }

    /// Sends an event, or holds it with its function call.
    fn emit(&mut self, out: &mut BytesMut, output_index: Option<u64>, v: Map<String, Value>) {
        match output_index.and_then(|i| self.held.get_mut(&i)) {
            Some(held) => held.push(v),
            None => {
                let frame = self.frame(v);
                out.extend_from_slice(&frame);
            }
        }
    }

    /// Scans a value whole (ids, names, annotations, metadata).
    fn whole(&mut self, gw: &Gateway, v: &mut Value, index: u64) -> Result<(), Halt> {
        match self.guard.as_mut() {
            Some(g) => g.whole(gw, v, index as usize).map_err(Halt::from),
            None => Ok(()),
        }
    }

    /// Streams a piece of text; returns what may go out now.
    fn push(&mut self, gw: &Gateway, key: &Key, delta: &str) -> Result<String, Halt> {
        let text = self.texts.entry(key.clone()).or_default();
        if text.done {
            return Err(invalid("text for an output part after it was done"));
        }
        text.raw.push_str(delta);
        self.text_bytes += delta.len();
        let released = match self.guard.as_mut() {
            Some(g) => g.push(gw, key.clone(), delta, false)?,
            None => delta.to_owned(),
        };
        if let Some(t) = self.texts.get_mut(key) {
            t.released.push_str(&released);
        }
        Ok(released)
    }

    /// A complete copy of a streamed text: whatever the deltas did not carry is scanned as the
    /// text's end, and the text that went out is returned, with what the hold-back still had
    /// (to go out as a last delta).
    fn settle(&mut self, gw: &Gateway, key: &Key, full: &str) -> Result<(String, String), Halt> {
        let text = self.texts.entry(key.clone()).or_default();
        if text.done {
            if full != text.raw {
                return Err(invalid("a done output text that differs from an earlier copy"));
            }
            return Ok((text.released.clone(), String::new()));
        }
        let Some(tail) = full.strip_prefix(text.raw.as_str()) else {
            return Err(invalid("a done output text that does not continue its deltas"));
        };
        let tail = tail.to_owned();
        text.raw.push_str(&tail);
        text.done = true;
        self.text_bytes += tail.len();
        let rest = match self.guard.as_mut() {
            Some(g) => g.end(gw, key.clone(), &tail)?,
            None => tail,
        };
        let text = self.texts.entry(key.clone()).or_default();
        text.released.push_str(&rest);
        Ok((text.released.clone(), rest))
    }

    /// The delta Rampart adds for text a scanner released at the end.
    fn last_delta(&mut self, out: &mut BytesMut, key: &Key, rest: String) {
        if rest.is_empty() {
            return;
        }
        let (item, Field::Item(part, kind)) = key else { return };
        let mut v = Map::new();
        v.insert("type".into(), Value::String(format!("response.{kind}.delta")));
        if let Some(id) = self.item_ids.get(item) {
            v.insert("item_id".into(), id.clone());
        }
        v.insert("output_index".into(), Value::from(*item));
        let part_key = if kind.starts_with("reasoning_summary") {
            "summary_index"
        } else {
            "content_index"
        };
        if field_of(kind).is_some_and(|f| f == "text" || f == "refusal") {
            v.insert(part_key.into(), Value::from(*part));
        }
        v.insert("delta".into(), Value::String(rest));
        self.emit(out, Some(*item), v);
    }

    /// Handles one upstream event. Returns whether it ended the response.
    pub(super) fn event(&mut self, gw: &Gateway, data: &str, out: &mut BytesMut) -> Result<bool, Halt> {
        let Ok(Value::Object(mut v)) = serde_json::from_str::<Value>(data) else {
            return Err(invalid("an event that is not a JSON object"));
        };
        let ty = match v.get("type") {
            Some(Value::String(t)) => t.clone(),
            _ => return Err(invalid("an event without a type")),
        };
        // The type goes out as the SSE `event:` name too: a protocol identifier, never a place
        // for text. One that is not shaped like one, or that an output detector finds anything
        // in (a hostile upstream spelling the canary into it), ends the stream.
        let identifier = |t: &str| {
            !t.is_empty()
                && t.len() <= 128
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
        };
        if !identifier(&ty) {
            return Err(invalid("an event type that is not a protocol identifier"));
        }
        let mut scanned = Value::String(ty.clone());
        self.whole(gw, &mut scanned, 0)?;
        if scanned.as_str() != Some(ty.as_str()) {
            return Err(invalid("an event type that carries text"));
        }
        v.remove("obfuscation");
        v.remove("logprobs");
        v.remove("sequence_number");
        let item = v.get("output_index").and_then(Value::as_u64);
        if ty == "error" {
            let message = v
                .get("message")
                .and_then(Value::as_str)
                .or_else(|| v.get("error").and_then(|e| e.get("message")).and_then(Value::as_str))
                .unwrap_or("the model API reported an error")
                .to_owned();
            let message = match self.guard.as_mut() {
                Some(g) => g.error_message(gw, &message),
                None => message,
            };
            return Err(Halt::Upstream(message));
        }
        if v.contains_key("response") {
            return self.response_event(gw, &ty, v, out);
        }
        if ty == "response.audio.delta" {
            // Base64 audio: data, not text.
            self.emit(out, item, v);
            return Ok(false);
        }
        if ty.ends_with(".delta") && v.get("delta").is_some_and(Value::is_string) {
            if let Some(Value::String(delta)) = v.remove("delta") {
                let key = (
                    item.unwrap_or(0),
                    Field::Item(part_index(&v), kind_of(&ty, ".delta").to_owned()),
                );
                let released = self.push(gw, &key, &delta)?;
                self.rest_whole(gw, &mut v, &["delta"])?;
                if !released.is_empty() {
                    v.insert("delta".into(), Value::String(released));
                    self.emit(out, item, v);
                }
                return Ok(false);
            }
        }
        if ty == "response.output_item.added" || ty == "response.output_item.done" {
            let done = ty.ends_with(".done");
            let i = item.unwrap_or(0);
            if let Some(Value::Object(it)) = v.get_mut("item") {
                if let Some(id) = it.get("id") {
                    self.item_ids.insert(i, id.clone());
                }
                let calls = tools::responses_call(&Value::Object(it.clone())).is_some();
                if !done && calls && self.tools.is_some() {
                    self.held.insert(i, Vec::new());
                }
            }
            let mut item_value = v.remove("item").unwrap_or(Value::Null);
            self.item(gw, i, &mut item_value, done, out)?;
            self.rest_whole(gw, &mut v, &[])?;
            v.insert("item".into(), item_value.clone());
            self.emit(out, item, v);
            if done {
                self.release_call(i, &item_value, out)?;
            }
            return Ok(false);
        }
        if let Some(Value::Object(_)) = v.get("part") {
            // `content_part` and `reasoning_summary_part` events: the part's text under its
            // streamed key.
            let i = item.unwrap_or(0);
            let done = ty.ends_with(".done");
            let part_no = part_index(&v);
            let list = if ty.contains("summary") { "summary" } else { "content" };
            let mut part = v.remove("part").unwrap_or(Value::Null);
            let item_type = if list == "summary" { "reasoning" } else { "message" };
            self.part(gw, i, item_type, list, part_no, &mut part, done, out)?;
            self.rest_whole(gw, &mut v, &[])?;
            v.insert("part".into(), part);
            self.emit(out, item, v);
            return Ok(false);
        }
        if ty.ends_with(".done") {
            let kind = kind_of(&ty, ".done").to_owned();
            if let Some(field) = field_of(&kind) {
                if let Some(Value::String(full)) = v.remove(field) {
                    let key = (item.unwrap_or(0), Field::Item(part_index(&v), kind));
                    let (released, rest) = self.settle(gw, &key, &full)?;
                    self.last_delta(out, &key, rest);
                    self.rest_whole(gw, &mut v, &[])?;
                    v.insert(field.into(), Value::String(released));
                    self.emit(out, item, v);
                    return Ok(false);
                }
            }
        }
        // Anything else (annotations, tool progress, events Rampart does not know): scanned
        // whole.
        self.rest_whole(gw, &mut v, &[])?;
        self.emit(out, item, v);
        Ok(false)
    }

    /// Scans an event's remaining fields whole, except its identifiers and indices.
    fn rest_whole(&mut self, gw: &Gateway, v: &mut Map<String, Value>, skip: &[&str]) -> Result<(), Halt> {
        let i = v.get("output_index").and_then(Value::as_u64).unwrap_or(0);
        for (k, x) in v.iter_mut() {
            if skip.contains(&k.as_str())
                || matches!(k.as_str(), "type" | "output_index" | "content_index" | "summary_index")
            {
                continue;
            }
            self.whole(gw, x, i)?;
        }
        Ok(())
    }

    /// One part of an output item (a message's content part, a reasoning summary part): its
    /// text goes under its streamed key, the rest is scanned whole.
    #[allow(clippy::too_many_arguments)]
    fn part(
        &mut self,
        gw: &Gateway,
        item: u64,
        item_type: &str,
        list: &str,
        part_no: u64,
        part: &mut Value,
        done: bool,
        out: &mut BytesMut,
    ) -> Result<(), Halt> {
        let Value::Object(p) = part else {
            return self.whole(gw, part, item);
        };
        let kind = part_kind(item_type, list, p.get("type").and_then(Value::as_str));
        let field = kind.and_then(field_of);
        for (k, x) in p.iter_mut() {
            match (kind, field) {
                (Some(kind), Some(f)) if k == f => {
                    let Value::String(text) = x else { continue };
                    let key = (item, Field::Item(part_no, kind.to_owned()));
                    let shown = if done {
                        let (released, rest) = self.settle(gw, &key, text)?;
                        self.last_delta(out, &key, rest);
                        released
                    } else {
                        self.push(gw, &key, text)?
                    };
                    *x = Value::String(shown);
                }
                _ if k == "type" => {}
                _ if k == "logprobs" => *x = Value::Array(Vec::new()),
                _ => self.whole(gw, x, item)?,
            }
        }
        Ok(())
    }

    /// An output item: its streamed texts (a message's parts, a call's arguments, reasoning)
    /// under their keys, everything else whole.
    fn item(&mut self, gw: &Gateway, index: u64, item: &mut Value, done: bool, out: &mut BytesMut) -> Result<(), Halt> {
        let Value::Object(it) = item else {
            return self.whole(gw, item, index);
        };
        let item_type = it.get("type").and_then(Value::as_str).unwrap_or("").to_owned();
        let own = item_kind(&item_type);
        for (k, x) in it.iter_mut() {
            match k.as_str() {
                "type" | "encrypted_content" => {}
                "content" | "summary" if matches!(item_type.as_str(), "message" | "reasoning") => {
                    let Value::Array(parts) = x else {
                        self.whole(gw, x, index)?;
                        continue;
                    };
                    for (j, p) in parts.iter_mut().enumerate() {
                        self.part(gw, index, &item_type, k, j as u64, p, done, out)?;
                    }
                }
                f if own.and_then(field_of) == Some(f) && x.is_string() => {
                    let Some(kind) = own else { continue };
                    let key = (index, Field::Item(0, kind.to_owned()));
                    let text = x.as_str().unwrap_or_default().to_owned();
                    let shown = if done {
                        let (released, rest) = self.settle(gw, &key, &text)?;
                        self.last_delta(out, &key, rest);
                        released
                    } else {
                        self.push(gw, &key, &text)?
                    };
                    *x = Value::String(shown);
                }
                _ => self.whole(gw, x, index)?,
            }
        }
        Ok(())
    }

    /// A function call is complete: the tool guard decides, and its held events go out (or
    /// the stream ends with the guard's refusal).
    fn release_call(&mut self, index: u64, item: &Value, out: &mut BytesMut) -> Result<(), Halt> {
        let Some(held) = self.held.remove(&index) else {
            return Ok(());
        };
        if let (Some(check), Some((name, arguments))) = (self.tools.as_ref(), tools::responses_call(item)) {
            check.check(&name, &arguments)?;
        }
        for v in held {
            let frame = self.frame(v);
            out.extend_from_slice(&frame);
        }
        Ok(())
    }

    /// `response.created`, `response.in_progress`, `response.completed` and the other events
    /// that carry the whole response object. The final ones settle every text.
    fn response_event(
        &mut self,
        gw: &Gateway,
        ty: &str,
        mut v: Map<String, Value>,
        out: &mut BytesMut,
    ) -> Result<bool, Halt> {
        let terminal = TERMINAL.contains(&ty);
        let mut response = v.remove("response").unwrap_or(Value::Null);
        if let Value::Object(r) = &mut response {
            if r.contains_key("instructions") {
                r.insert("instructions".into(), self.echo.clone());
            }
            if let Some(u) = r.get("usage").filter(|u| u.is_object()) {
                self.usage = (
                    u.get("input_tokens").and_then(Value::as_u64),
                    u.get("output_tokens").and_then(Value::as_u64),
                    u.pointer("/input_tokens_details/cached_tokens")
                        .and_then(Value::as_u64)
                        .unwrap_or(0),
                );
            }
            let mut output = r.remove("output").unwrap_or(Value::Array(Vec::new()));
            if let Value::Array(items) = &mut output {
                for (i, it) in items.iter_mut().enumerate() {
                    self.item(gw, i as u64, it, terminal, out)?;
                }
            }
            for (k, x) in r.iter_mut() {
                if k != "instructions" {
                    self.whole(gw, x, 0)?;
                }
            }
            if terminal {
                // Texts the upstream streamed but did not repeat are ended here.
                for key in self.open_texts() {
                    let raw = self.texts.get(&key).map(|t| t.raw.clone()).unwrap_or_default();
                    let (_, rest) = self.settle(gw, &key, &raw)?;
                    self.last_delta(out, &key, rest);
                }
                let held: Vec<u64> = self.held.keys().copied().collect();
                for i in held {
                    let done_item = output.get(i as usize).cloned().unwrap_or(Value::Null);
                    if tools::responses_call(&done_item).is_none() {
                        return Err(invalid("a function call that never completed"));
                    }
                    self.release_call(i, &done_item, out)?;
                }
            }
            r.insert("output".into(), output);
        } else {
            self.whole(gw, &mut response, 0)?;
        }
        self.rest_whole(gw, &mut v, &[])?;
        v.insert("response".into(), response);
        self.emit(out, None, v);
        Ok(terminal)
    }

    /// The texts streamed but not yet done, in a stable order.
    fn open_texts(&self) -> Vec<Key> {
        let mut open: Vec<Key> = self
            .texts
            .iter()
            .filter(|(_, t)| !t.done)
            .map(|(k, _)| k.clone())
            .collect();
        open.sort();
        open
    }

    /// The stream broke off: what scanners still hold goes out as last deltas (no `done`
    /// events follow; the error event does).
    pub(super) fn flush(&mut self, gw: &Gateway, out: &mut BytesMut) -> Result<(), OutputBlocked> {
        for key in self.open_texts() {
            let raw = self.texts.get(&key).map(|t| t.raw.clone()).unwrap_or_default();
            match self.settle(gw, &key, &raw) {
                Ok((_, rest)) => self.last_delta(out, &key, rest),
                Err(Halt::Stop(StreamStop::Blocked(b))) => return Err(b),
                Err(_) => {}
            }
        }
        // Calls that never completed are never released.
        self.held.clear();
        Ok(())
    }

    /// An error event in the Responses format; the `error` object is what the OpenAI SDKs
    /// raise from.
    pub(super) fn error_frame(&mut self, error: Value) -> Bytes {
        let mut v = Map::new();
        v.insert("type".into(), json!("error"));
        v.insert("code".into(), error.get("code").cloned().unwrap_or(Value::Null));
        v.insert("message".into(), error.get("message").cloned().unwrap_or(Value::Null));
        v.insert("param".into(), Value::Null);
        v.insert("error".into(), error);
        self.frame(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_streamed_kind_names_its_done_field() {
        assert_eq!(kind_of("response.output_text.delta", ".delta"), "output_text");
        assert_eq!(kind_of("response.audio.transcript.done", ".done"), "audio.transcript");
        for item in ["function_call", "custom_tool_call", "mcp_call", "code_interpreter_call"] {
            assert!(item_kind(item).and_then(field_of).is_some(), "{item}");
        }
        assert_eq!(
            part_kind("message", "content", Some("refusal")).and_then(field_of),
            Some("refusal")
        );
        assert_eq!(part_kind("reasoning", "summary", None), Some("reasoning_summary_text"));
        // A part Rampart does not know is scanned whole, not streamed.
        assert_eq!(part_kind("message", "content", Some("x_new")), None);
    }
}
