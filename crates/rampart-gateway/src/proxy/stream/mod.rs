//! Relaying a streamed answer event by event.
//!
//! Each upstream chunk is framed (`sse.rs`), every event's JSON is checked, and the events are
//! forwarded in the same poll that received them: nothing waits for a later chunk. When the
//! upstream stalls past its idle timeout, breaks, sends garbage or ends without `[DONE]`, the
//! client gets a final OpenAI-style error event instead of a silently truncated answer. When
//! the client goes away, the body stream is dropped, which drops the upstream response and
//! closes that connection: the model stops generating for nobody.
//!
//! Chat and completions chunks are checked here; the Responses API's typed events in
//! `responses.rs`.

mod responses;

use std::convert::Infallible;
use std::pin::Pin;

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use http::StatusCode;
use serde_json::json;

use crate::error::ApiError;
use crate::openai::Endpoint;
use crate::sse::{Event, Framer};

use super::views::{self, Chunk};
use super::{buffered, upstream_status_error, Exchange};

/// Largest single event accepted from upstream.
const MAX_EVENT: usize = 4 * 1024 * 1024;
/// How often a silent stream looks for blocks and revocations.
const REVOCATION_CHECK: std::time::Duration = std::time::Duration::from_millis(250);

type ByteStream = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct Relay {
    x: Exchange,
    upstream: ByteStream,
    framer: Framer,
    events: Vec<Event>,
    strip_usage: bool,
    saw_done: bool,
    finished: bool,
    upstream_prompt: Option<u64>,
    /// Prompt tokens the provider served from its cache.
    upstream_cached: u64,
    upstream_completion: Option<u64>,
    text_bytes: usize,
    /// Output scanning with hold-back, when the policy has any.
    guard: Option<super::guard::StreamGuard>,
    /// Tool calls held until their choice finishes, when `[agent]` lists tools.
    tools: Option<super::tools::ToolHold>,
    /// An approval the stream waits for, and until when.
    waiting: Option<(String, tokio::time::Instant)>,
    /// Events read while a call waited for approval, handled after it.
    backlog: Vec<Event>,
    /// How the stream ended, for the ledger: decision and error code.
    end: (&'static str, Option<String>),
    /// The end record was written (or attempted).
    end_recorded: bool,
    /// What was sent, for the ledger, when bodies are kept.
    kept: Option<String>,
    /// Blocks and revocations seen when the exchange last checked.
    generation: u64,
    /// For the Responses API: its typed events' checks (which then own the output guard and
    /// the tool check).
    responses: Option<responses::Events>,
}

pub(super) async fn relay(
    mut x: Exchange,
    endpoint: Endpoint,
    resp: reqwest::Response,
    strip_usage: bool,
) -> Result<Response, ApiError> {
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let body = buffered::read_upstream(&x, resp).await?;
        return Err(upstream_status_error(&x, status, &body, &headers));
    }
    let is_sse = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    if !is_sse {
        x.gw.metrics.upstream_error(&x.upstream.name, "invalid_response");
        return Err(ApiError::upstream(
            StatusCode::BAD_GATEWAY,
            "upstream_invalid_response",
            "the model API did not answer with an event stream",
        ));
    }
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "text/event-stream")
        .header(http::header::CACHE_CONTROL, "no-cache")
        .header("x-accel-buffering", "no");
    for (k, v) in &x.permit.headers {
        builder = builder.header(k, v);
    }
    // The start of the exchange is on record before the first byte goes out.
    if x.gw.audit.is_some() {
        let entry = match x.trail.lock() {
            Ok(t) => t.entry("start", "allowed", 200, None, None),
            Err(_) => return Err(crate::audit::unavailable()),
        };
        crate::audit::append(&x.gw, entry).await?;
    }
    let keep_text = crate::audit::keeps_bodies(&x.gw);
    let guard = x
        .scan
        .take()
        .filter(super::guard::ScanState::output_active)
        .map(super::guard::StreamGuard::new);
    let (guard, tools, responses) = if endpoint == Endpoint::Responses {
        let echo = x.echo.take().unwrap_or(serde_json::Value::Null);
        (None, None, Some(responses::Events::new(guard, x.tools.take(), echo)))
    } else {
        (guard, x.tools.take().map(super::tools::ToolHold::new), None)
    };
    let relay = Relay {
        responses,
        guard,
        tools,
        waiting: None,
        backlog: Vec::new(),
        x,
        upstream: Box::pin(resp.bytes_stream()),
        framer: Framer::new(MAX_EVENT),
        events: Vec::new(),
        strip_usage,
        saw_done: false,
        finished: false,
        upstream_prompt: None,
        upstream_cached: 0,
        upstream_completion: None,
        text_bytes: 0,
        end: ("allowed", None),
        end_recorded: false,
        kept: keep_text.then(String::new),
        generation: 0,
    };
    let body = futures_util::stream::unfold(relay, |mut r| async move {
        let frame = r.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), r))
    });
    builder.body(Body::from_stream(body)).map_err(|_| {
        ApiError::internal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "cannot build the response",
        )
    })
}

impl Relay {
    /// An error event in the stream's own format: chat's `data: {"error": ...}`, or the
    /// Responses API's typed `error` event.
    fn error_frame(&mut self, error: serde_json::Value) -> Bytes {
        match self.responses.as_mut() {
            Some(r) => r.error_frame(error),
            None => Bytes::from(format!("data: {}\n\n", json!({ "error": error }))),
        }
    }

    fn error_event(&mut self, code: &str, message: &str) -> Bytes {
        self.error_frame(json!({"message": message, "type": "upstream_error", "param": null, "code": code}))
    }

    /// The output guard's state, wherever it lives.
    fn scan_state(&self) -> Option<&super::guard::ScanState> {
        match &self.responses {
            Some(r) => r.guard().map(super::guard::StreamGuard::state),
            None => self.guard.as_ref().map(super::guard::StreamGuard::state),
        }
    }

    /// The next frame; the last one goes out only after the exchange's end record is durable
    /// (if the ledger fails, the client gets an `audit_unavailable` error event instead of
    /// `[DONE]`).
    async fn next_frame(&mut self) -> Option<Bytes> {
        let frame = self.next_event_frame().await;
        if let (Some(kept), Some(f)) = (self.kept.as_mut(), &frame) {
            if kept.len() < crate::audit::MAX_KEPT_TEXT {
                kept.push_str(&String::from_utf8_lossy(f));
            }
        }
        if !self.finished || self.end_recorded || self.x.gw.audit.is_none() {
            return frame;
        }
        self.end_recorded = true;
        let entry = self.end_entry();
        if crate::audit::append(&self.x.gw, entry).await.is_ok() {
            return frame;
        }
        let mut out = BytesMut::from(frame.as_deref().unwrap_or_default());
        const DONE: &[u8] = b"data: [DONE]\n\n";
        if out.ends_with(DONE) {
            out.truncate(out.len() - DONE.len());
        }
        let error = self.error_event(
            "audit_unavailable",
            "the audit ledger could not record this exchange; its answer is incomplete",
        );
        out.extend_from_slice(&error);
        Some(out.freeze())
    }

    fn end_entry(&self) -> rampart_audit::Entry {
        if let Some(s) = self.scan_state() {
            s.to_trail(&self.x.trail);
        }
        match self.x.trail.lock() {
            Ok(mut t) => {
                t.recorded = true;
                t.response_text = self.kept.clone();
                let payload = t.payload(&self.x.gw);
                t.entry("end", self.end.0, 200, self.end.1.as_deref(), payload)
            }
            Err(p) => p
                .into_inner()
                .entry("end", self.end.0, 200, self.end.1.as_deref(), None),
        }
    }

    async fn next_event_frame(&mut self) -> Option<Bytes> {
        loop {
            if self.finished {
                return None;
            }
            // A tool call waits for an approver: keep the client's connection alive with SSE
            // comments, then release the call or end with the approver's answer.
            if let Some((id, until)) = self.waiting.clone() {
                if let Some(frame) = self.wait_for_approval(&id, until).await {
                    return Some(frame);
                }
                continue;
            }
            let mut events = if !self.backlog.is_empty() {
                std::mem::take(&mut self.backlog)
            } else {
                // Waits for the upstream in steps, so that a block or a revocation ends the
                // exchange within a second even while the upstream is silent.
                let deadline = tokio::time::Instant::now() + self.x.upstream.idle_timeout;
                let next = loop {
                    if let Some(frame) = self.revoked() {
                        return Some(frame);
                    }
                    let step = deadline
                        .saturating_duration_since(tokio::time::Instant::now())
                        .min(REVOCATION_CHECK);
                    match tokio::time::timeout(step, self.upstream.next()).await {
                        Ok(next) => break Ok(next),
                        Err(_) if tokio::time::Instant::now() >= deadline => break Err(()),
                        Err(_) => {}
                    }
                };
                if let Some(frame) = self.revoked() {
                    return Some(frame);
                }
                let chunk = match next {
                    Err(()) => return Some(self.fail("timeout", "upstream_timeout", "the model API stopped sending")),
                    Ok(None) => {
                        return Some(self.fail(
                            "stream_truncated",
                            "upstream_stream_truncated",
                            "the model API's stream ended before it was complete",
                        ))
                    }
                    Ok(Some(Err(_))) => {
                        return Some(self.fail(
                            "stream_broken",
                            "upstream_stream_broken",
                            "the model API's stream broke off",
                        ))
                    }
                    Ok(Some(Ok(chunk))) => chunk,
                };
                let mut events = std::mem::take(&mut self.events);
                if self.framer.push(&chunk, &mut events).is_err() {
                    return Some(self.fail(
                        "invalid_response",
                        "upstream_invalid_response",
                        "the model API sent an invalid event stream",
                    ));
                }
                events
            };
            let mut out = BytesMut::new();
            if self.responses.is_some() {
                if let Some(frame) = self.responses_events(&mut events, &mut out) {
                    return Some(frame);
                }
                self.events = events;
                if self.saw_done {
                    self.finish();
                }
                if !out.is_empty() {
                    return Some(out.freeze());
                }
                continue;
            }
            while !events.is_empty() {
                let ev = events.remove(0);
                if ev.data == "[DONE]" {
                    if let Some(g) = self.guard.as_mut() {
                        match g.flush(&self.x.gw) {
                            Ok(rest) => {
                                for v in rest {
                                    out.extend_from_slice(format!("data: {v}\n\n").as_bytes());
                                }
                            }
                            Err(blocked) => {
                                out.extend_from_slice(&self.blocked(&blocked));
                                return Some(out.freeze());
                            }
                        }
                    }
                    if let Some(h) = self.tools.as_mut() {
                        match h.flush() {
                            Ok(rest) => {
                                for v in rest {
                                    out.extend_from_slice(format!("data: {v}\n\n").as_bytes());
                                }
                            }
                            Err(stopped) => {
                                out.extend_from_slice(&self.blocked(&stopped));
                                return Some(out.freeze());
                            }
                        }
                    }
                    out.extend_from_slice(b"data: [DONE]\n\n");
                    self.saw_done = true;
                    break;
                }
                let Some(chunk) = views::object::<Chunk>(&ev.data) else {
                    out.extend_from_slice(&self.fail(
                        "invalid_response",
                        "upstream_invalid_response",
                        "the model API sent an event that is not a valid chunk",
                    ));
                    return Some(out.freeze());
                };
                if let Some(message) = chunk.error_message() {
                    self.x
                        .gw
                        .metrics
                        .upstream_error(&self.x.upstream.name, "stream_error_event");
                    // The client gets Rampart's own error event, never the upstream's bytes:
                    // only the message is carried over, and only once it passed the output
                    // scan.
                    let message = message.unwrap_or("the model API reported an error").to_owned();
                    drop(chunk);
                    let message = match self.guard.as_mut() {
                        Some(g) => g.error_message(&self.x.gw, &message),
                        None => message,
                    };
                    let error = self.error_event("upstream_error_event", &message);
                    out.extend_from_slice(&error);
                    self.end = ("failed", Some("upstream_error_event".into()));
                    self.finish();
                    return Some(out.freeze());
                }
                if let Some(u) = &chunk.usage {
                    self.upstream_prompt = u.prompt_tokens.or(self.upstream_prompt);
                    self.upstream_cached = u.cached().max(self.upstream_cached);
                    self.upstream_completion = u.completion_tokens.or(self.upstream_completion);
                }
                if chunk.usage_only() && self.strip_usage {
                    continue;
                }
                self.text_bytes += chunk.text_bytes();
                drop(chunk);
                let data = match self.guard.as_mut().map(|g| g.chunk(&self.x.gw, &ev.data)) {
                    None => ev.data,
                    Some(Ok(d)) => d,
                    Some(Err(super::guard::StreamStop::Blocked(blocked))) => {
                        out.extend_from_slice(&self.blocked(&blocked));
                        return Some(out.freeze());
                    }
                    Some(Err(super::guard::StreamStop::Invalid(what))) => {
                        tracing::warn!(upstream = %self.x.upstream.name, what, "upstream stream broke the protocol");
                        out.extend_from_slice(&self.fail(
                            "invalid_response",
                            "upstream_invalid_response",
                            "the model API sent an event stream Rampart cannot check",
                        ));
                        return Some(out.freeze());
                    }
                };
                let data = match self.tools.as_mut().map(|h| h.chunk(&data)) {
                    None => data,
                    Some(Ok(d)) => d,
                    Some(Err(stopped))
                        if stopped.code() == "approval_required"
                            && self.tools.as_ref().is_some_and(|h| !h.hold().is_zero()) =>
                    {
                        // held for an approver: the rest of this read waits with it
                        let id = stopped.approval().unwrap_or_default().to_string();
                        let until =
                            tokio::time::Instant::now() + self.tools.as_ref().map(|h| h.hold()).unwrap_or_default();
                        self.backlog = std::mem::take(&mut events);
                        self.waiting = Some((id.clone(), until));
                        out.extend_from_slice(format!(": waiting for approval {id}\n\n").as_bytes());
                        return Some(out.freeze());
                    }
                    Some(Err(stopped)) => {
                        out.extend_from_slice(&self.blocked(&stopped));
                        return Some(out.freeze());
                    }
                };
                if let Some(name) = &ev.name {
                    out.extend_from_slice(format!("event: {name}\n").as_bytes());
                }
                // A multi-line payload goes out as several `data:` lines, as it came in.
                for line in data.split('\n') {
                    out.extend_from_slice(b"data: ");
                    out.extend_from_slice(line.as_bytes());
                    out.extend_from_slice(b"\n");
                }
                out.extend_from_slice(b"\n");
            }
            self.events = events;
            if self.saw_done {
                self.finish();
            }
            if !out.is_empty() {
                return Some(out.freeze());
            }
        }
    }

    /// Polls the approval for up to a few seconds: the held chunk when it is granted, the
    /// approver's refusal, or a keep-alive comment while it is pending (`None` never: a frame
    /// always goes out, so the client sees the stream alive).
    async fn wait_for_approval(&mut self, id: &str, until: tokio::time::Instant) -> Option<Bytes> {
        let step_end = (tokio::time::Instant::now() + std::time::Duration::from_secs(5)).min(until);
        loop {
            let status = match self.tools.as_ref() {
                Some(h) => h
                    .gateway()
                    .store
                    .approval(id, crate::state::now())
                    .ok()
                    .flatten()
                    .map(|a| a.status),
                None => None,
            };
            match status.as_deref() {
                Some("approved") => {
                    self.waiting = None;
                    let resumed = self.tools.as_mut().map(|h| h.resume(id));
                    return Some(match resumed {
                        Some(Ok(data)) => Bytes::from(format!("data: {data}\n\n")),
                        Some(Err(b)) => self.blocked(&b),
                        None => Bytes::new(),
                    });
                }
                Some("pending") if tokio::time::Instant::now() < until => {}
                Some("pending") => {
                    self.waiting = None;
                    let b = super::guard::OutputBlocked::Tool {
                        code: "approval_required",
                        message: format!("nobody decided on approval {id} in time; resend the conversation with the header `x-rampart-approval: {id}` once it is approved"),
                        approval: Some(id.to_string()),
                    };
                    return Some(self.blocked(&b));
                }
                _ => {
                    self.waiting = None;
                    let b = super::guard::OutputBlocked::Tool {
                        code: "approval_denied",
                        message: format!("approval {id} was denied or expired"),
                        approval: Some(id.to_string()),
                    };
                    return Some(self.blocked(&b));
                }
            }
            if tokio::time::Instant::now() >= step_end {
                return Some(Bytes::from(format!(": waiting for approval {id}\n\n")));
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
    }

    /// A final error event when the caller's key was revoked or a block now applies to the
    /// exchange; checked only when a block or revocation happened since the last look.
    fn revoked(&mut self) -> Option<Bytes> {
        let generation = self.x.gw.blocks.generation() + self.x.gw.keys.generation();
        if generation == self.generation {
            return None;
        }
        self.generation = generation;
        let refused = self.x.still_allowed().err()?;
        let code = refused.code();
        tracing::info!(request_id = %self.x.rid.0, code, "stream ended by a block or revocation");
        // What is held back is never released.
        let guard = match self.responses.as_mut() {
            Some(r) => r.take_guard(),
            None => self.guard.take(),
        };
        if let Some(g) = guard {
            g.state().to_trail(&self.x.trail);
        }
        self.end = ("blocked", Some(code.into()));
        self.finish();
        Some(
            self.error_frame(
                json!({"message": refused.message(), "type": "access_revoked", "param": null, "code": code}),
            ),
        )
    }

    /// Ends the stream because an output scanner blocked it: nothing of the offending text
    /// has left (it was inside the hold-back window), and the client gets a clean error.
    fn blocked(&mut self, b: &super::guard::OutputBlocked) -> Bytes {
        tracing::info!(request_id = %self.x.rid.0, code = b.code(), reason = %b.message("cut off"), "stream cut by the output policy");
        self.end = ("blocked", Some(b.code().into()));
        self.finish();
        let mut v =
            json!({"message": b.message("cut off"), "type": "policy_violation", "param": null, "code": b.code()});
        if let Some(id) = b.approval() {
            v["approval_id"] = json!(id);
        }
        self.error_frame(v)
    }

    fn fail(&mut self, metric: &'static str, code: &str, message: &str) -> Bytes {
        // What was held back for scanning is scanned and sent before the error.
        let mut out = BytesMut::new();
        if let Some(mut r) = self.responses.take() {
            let flushed = r.flush(&self.x.gw, &mut out);
            if let Some(g) = r.guard() {
                g.state().to_trail(&self.x.trail);
            }
            let _ = r.take_guard();
            self.responses = Some(r);
            if let Err(blocked) = flushed {
                return self.blocked(&blocked);
            }
        }
        if let Some(mut g) = self.guard.take() {
            let flushed = g.flush(&self.x.gw);
            g.state().to_trail(&self.x.trail);
            match flushed {
                Ok(rest) => {
                    for v in rest {
                        out.extend_from_slice(format!("data: {v}\n\n").as_bytes());
                    }
                }
                Err(blocked) => return self.blocked(&blocked),
            }
        }
        self.x.gw.metrics.upstream_error(&self.x.upstream.name, metric);
        tracing::warn!(upstream = %self.x.upstream.name, code, "stream ended with an error event");
        self.end = ("failed", Some(code.to_string()));
        self.finish();
        let error = self.error_event(code, message);
        out.extend_from_slice(&error);
        out.freeze()
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        if let Some(r) = &self.responses {
            self.upstream_prompt = r.usage.0.or(self.upstream_prompt);
            self.upstream_cached = r.usage.2.max(self.upstream_cached);
            self.upstream_completion = r.usage.1.or(self.upstream_completion);
            self.text_bytes = self.text_bytes.max(r.text_bytes);
        }
        // Without reported usage, charge an estimate of four bytes per token.
        let completion = self.upstream_completion.unwrap_or(self.text_bytes.div_ceil(4) as u64);
        self.x.account(self.upstream_prompt, self.upstream_cached, completion);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if !self.finished {
            // The client went away mid-stream; what it received is still charged.
            self.x.gw.metrics.streams_cancelled.inc();
            self.end = ("cancelled", Some("client_closed".into()));
            self.finish();
        }
        if let Some(s) = self.scan_state() {
            s.to_trail(&self.x.trail);
        }
        if let Ok(t) = self.x.trail.lock() {
            t.log_access(self.end.0, 200, self.end.1.as_deref());
        }
        if !self.end_recorded && self.x.gw.audit.is_some() {
            // Dropped before the end was recorded (the client went away): record it anyway.
            self.end_recorded = true;
            let entry = self.end_entry();
            let gw = self.x.gw.clone();
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    let _ = crate::audit::append(&gw, entry).await;
                });
            }
        }
    }
}

impl Relay {
    /// Relays a read's worth of Responses API events. Returns a frame when the stream ends
    /// early (blocked, broken or an upstream error); the terminal event sets `saw_done`.
    fn responses_events(&mut self, events: &mut Vec<Event>, out: &mut BytesMut) -> Option<Bytes> {
        while !events.is_empty() {
            let ev = events.remove(0);
            if ev.data == "[DONE]" {
                // Not part of the Responses protocol; some compatible servers send it.
                continue;
            }
            let r = self.responses.as_mut()?;
            match r.event(&self.x.gw, &ev.data, out) {
                Ok(false) => {}
                Ok(true) => {
                    self.saw_done = true;
                    events.clear();
                    return None;
                }
                Err(responses::Halt::Stop(super::guard::StreamStop::Blocked(b))) => {
                    out.extend_from_slice(&self.blocked(&b));
                    return Some(std::mem::take(out).freeze());
                }
                Err(responses::Halt::Stop(super::guard::StreamStop::Invalid(what))) => {
                    tracing::warn!(upstream = %self.x.upstream.name, what, "upstream stream broke the protocol");
                    let frame = self.fail(
                        "invalid_response",
                        "upstream_invalid_response",
                        "the model API sent an event stream Rampart cannot check",
                    );
                    out.extend_from_slice(&frame);
                    return Some(std::mem::take(out).freeze());
                }
                Err(responses::Halt::Upstream(message)) => {
                    self.x
                        .gw
                        .metrics
                        .upstream_error(&self.x.upstream.name, "stream_error_event");
                    let error = self.error_event("upstream_error_event", &message);
                    out.extend_from_slice(&error);
                    self.end = ("failed", Some("upstream_error_event".into()));
                    self.finish();
                    return Some(std::mem::take(out).freeze());
                }
            }
        }
        None
    }
}

/// The Responses API event relay without a network, for fuzz targets and property tests:
/// `events` are the `data` of an upstream's events in order, checked under the default output
/// policy with `canary` planted and `prompt` protected. Returns every byte the client would
/// receive before the stream ends (by its terminal event, a block, a protocol break or an
/// upstream error; held text is flushed through the scanners where the relay flushes it).
#[doc(hidden)]
pub fn check_responses_stream(gw: &crate::state::Gateway, canary: &str, prompt: &str, events: &[String]) -> Vec<u8> {
    let mut ctx = rampart_scan::output::OutputContext::new(Some(canary.to_string()), None, Vec::new());
    ctx.protect(prompt);
    let state = super::guard::ScanState {
        policy: rampart_policy::ScanPolicy::default_policy(),
        ctx,
        pseudonyms: rampart_scan::transform::Pseudonyms::default(),
        records: Vec::new(),
        holdback: gw.scanner.max_output_match().max(256),
    };
    let mut r = responses::Events::new(
        Some(super::guard::StreamGuard::new(state)),
        None,
        serde_json::Value::Null,
    );
    let mut out = BytesMut::new();
    for data in events {
        match r.event(gw, data, &mut out) {
            Ok(false) => {}
            Ok(true)
            | Err(responses::Halt::Stop(super::guard::StreamStop::Blocked(_)))
            | Err(responses::Halt::Upstream(_)) => {
                return out.to_vec();
            }
            Err(responses::Halt::Stop(super::guard::StreamStop::Invalid(_))) => break,
        }
    }
    // A broken or cut stream: what was held back is scanned and sent before the error.
    let _ = r.flush(gw, &mut out);
    out.to_vec()
}
