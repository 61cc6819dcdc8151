//! The MCP gateway: `/mcp/<server>` fronts each configured MCP server over Streamable HTTP.
//!
//! The agent authenticates to Rampart (an API key or an OIDC token); Rampart forwards the
//! JSON-RPC messages and reads every one that matters, in JSON and in SSE answers alike:
//!
//! * `tools/list`: a tool is shown only if the tool policy would let this caller call it, its
//!   definition is the one pinned for it (the first definition seen is pinned by hash; a
//!   server that changes a tool later, a "rug pull", gets the tool hidden and an alert until
//!   an operator approves the new definition), and its texts hold no injection and do not
//!   talk about other tools (shadowing).
//! * `tools/call`: the tool guard decides it before it reaches the server (a refusal is a
//!   JSON-RPC error whose `data.code` is the guard's code); a call that needs approval waits
//!   `agent.approval.hold_seconds` for an approver.
//! * `tools/call` results: their text is scanned as untrusted input (injection, secrets) before
//!   the agent sees it; a result with an injection is withheld, secrets are redacted, and the
//!   session is tainted from then on (sensitive classes then need approval).
//!
//! Every call is recorded in the ledger.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use rampart_agent::{Call, Verdict};
use rampart_policy::Principal;
use serde_json::{json, Value};

use crate::approvals::{self, Resent};
use crate::error::ApiError;
use crate::proxy::{authenticate, read_body};
use crate::state::{now, Gateway};

/// How long untrusted content taints an MCP session (or a caller's use of a server, for
/// servers without sessions).
const TAINT_TTL: Duration = Duration::from_secs(30 * 60);
/// Largest SSE event or JSON answer read from an MCP server.
const MAX_MESSAGE: usize = 8 << 20;
/// Injection probability above which a tool's description is taken for instructions aimed at
/// the model. Descriptions are imperative by nature ("Send a report by email"), so this is
/// higher than for messages; the phrase checks of `rampart_agent::mcp::hidden_instructions`
/// catch the usual poisoning below it.
const POISON_THRESHOLD: f32 = 0.985;
/// Request headers forwarded to the server.
const FORWARD: &[&str] = &[
    "content-type",
    "accept",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
];

/// Sessions that have seen untrusted content.
#[derive(Debug, Default)]
pub struct Taint(std::sync::Mutex<HashMap<String, Instant>>);

impl Taint {
    fn mark(&self, key: &str) {
        if let Ok(mut m) = self.0.lock() {
            if m.len() > 100_000 {
                m.retain(|_, t| t.elapsed() < TAINT_TTL);
            }
            m.insert(key.to_string(), Instant::now());
        }
    }

    fn is(&self, key: &str) -> bool {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(key).map(|t| t.elapsed() < TAINT_TTL))
            .unwrap_or(false)
    }
}

fn rpc_error(id: &Value, code: &str, message: &str, approval: Option<&str>) -> Value {
    let mut data = json!({"code": code});
    if let Some(a) = approval {
        data["approval_id"] = json!(a);
    }
    json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32001, "message": message, "data": data}})
}

/// `GET /mcp/<server>`: the server-to-client event stream is not relayed (answers come on
/// each POST); MCP clients accept 405 here.
pub async fn get() -> Response {
    StatusCode::METHOD_NOT_ALLOWED.into_response()
}

/// `DELETE /mcp/<server>`: ends a session at the server.
pub async fn delete(
    State(gw): State<Arc<Gateway>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let rt = gw.runtime.load_full();
    authenticate(&gw, &rt, &headers).await?;
    let url = server_url(&rt, &server)?;
    let mut req = gw.http.delete(url);
    for h in FORWARD {
        if let Some(v) = headers.get(*h) {
            req = req.header(*h, v);
        }
    }
    let status = req
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(502);
    Ok(StatusCode::from_u16(status)
        .unwrap_or(StatusCode::BAD_GATEWAY)
        .into_response())
}

fn server_url(rt: &crate::state::Runtime, server: &str) -> Result<String, ApiError> {
    rt.config
        .agent
        .mcp_servers
        .iter()
        .find(|m| m.name == server)
        .map(|m| m.url.clone())
        .ok_or_else(|| ApiError::not_found("mcp_server_not_found", format!("no MCP server `{server}`")))
}

/// One POST exchange's context.
struct Ctx {
    gw: Arc<Gateway>,
    rt: Arc<crate::state::Runtime>,
    principal: Principal,
    server: String,
    taint_key: String,
    /// Method of each forwarded request, by id.
    methods: HashMap<String, String>,
    /// Decisions for the ledger.
    calls: Vec<Value>,
    /// Where progress notifications go while a call waits for an approver.
    progress: Progress,
}

/// `POST /mcp/<server>`.
pub async fn post(
    State(gw): State<Arc<Gateway>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let rt = gw.runtime.load_full();
    let caller = authenticate(&gw, &rt, &headers).await?;
    let url = server_url(&rt, &server)?;
    // The kill switch and the caller's request limits apply as on the model API (an MCP
    // server is blocked as the model `mcp:<name>`).
    let as_model = format!("mcp:{server}");
    if let Some(kind) = gw
        .blocks
        .check(caller.key_id.as_deref(), caller.principal.user(), Some(&as_model))
    {
        return Err(ApiError::forbidden(
            "blocked",
            format!("access was blocked by an administrator ({kind})"),
        ));
    }
    let limits = &rt.config.limits;
    let mut subjects = Vec::with_capacity(2);
    if let Some(id) = caller.key_id.as_deref() {
        subjects.push(crate::limits::Subject {
            scope: crate::limits::Scope::Key,
            id,
            quota: caller.key_limits.unwrap_or(limits.per_key),
        });
    }
    subjects.push(crate::limits::Subject {
        scope: crate::limits::Scope::User,
        id: caller.principal.user(),
        quota: limits.per_user,
    });
    let _permit = gw
        .limiter
        .admit(&subjects, 0)
        .map_err(|r| ApiError::rate_limited(r.code, r.message, r.retry_after).with_headers(r.headers))?;
    // A call that could not be recorded is not made.
    crate::audit::admit(&gw)?;
    let timeout = Duration::from_millis(rt.config.server.body_timeout_ms);
    let bytes = read_body(body, &headers, rt.config.limits.max_body_bytes, timeout).await?;
    let message: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid_request("invalid_json", format!("the body is not JSON-RPC: {e}")))?;
    // A `tools/call` with a progress token, from a client that reads event streams, is
    // answered as a stream at once: if it waits for an approver, progress notifications keep
    // the agent informed (and its connection alive) until the answer follows.
    let token = message.pointer("/params/_meta/progressToken").cloned();
    let sse = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    let progress = match token {
        Some(t)
            if sse
                && message.get("method").and_then(Value::as_str) == Some("tools/call")
                && rt.config.agent.approval.hold_seconds > 0 =>
        {
            Some(t)
        }
        _ => None,
    };
    if let Some(token) = progress {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
        let progress_tx = tx.clone();
        tokio::spawn(async move {
            let answer = exchange(
                gw,
                rt,
                caller,
                server,
                url,
                headers,
                message,
                Some((token, progress_tx)),
            )
            .await;
            let frames = match answer {
                Ok(r) => {
                    let is_sse = r
                        .headers()
                        .get(http::header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok())
                        .is_some_and(|c| c.starts_with("text/event-stream"));
                    let body = axum::body::to_bytes(r.into_body(), MAX_MESSAGE * 4)
                        .await
                        .unwrap_or_default();
                    if is_sse || body.is_empty() {
                        body
                    } else {
                        Bytes::from(format!("data: {}\n\n", String::from_utf8_lossy(&body)))
                    }
                }
                Err(e) => Bytes::from(format!(
                    "data: {}\n\n",
                    json!({"jsonrpc": "2.0", "id": Value::Null, "error": {"code": -32603, "message": e.message()}})
                )),
            };
            let _ = tx.send(frames).await;
        });
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
        });
        let mut r = Response::new(Body::from_stream(stream));
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/event-stream"),
        );
        return Ok(r);
    }
    exchange(gw, rt, caller, server, url, headers, message, None).await
}

/// Progress notifications for a call that waits: the client's token and where to send them.
type Progress = Option<(Value, tokio::sync::mpsc::Sender<Bytes>)>;

/// One POST's messages: decided, forwarded, and the answers inspected.
#[allow(clippy::too_many_arguments)]
async fn exchange(
    gw: Arc<Gateway>,
    rt: Arc<crate::state::Runtime>,
    caller: crate::auth::Caller,
    server: String,
    url: String,
    headers: HeaderMap,
    message: Value,
    progress: Progress,
) -> Result<Response, ApiError> {
    let session = headers
        .get("mcp-session-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut ctx = Ctx {
        gw: gw.clone(),
        rt: rt.clone(),
        taint_key: format!("{}|{server}|{session}", caller.principal.label()),
        principal: caller.principal.clone(),
        server: server.clone(),
        methods: HashMap::new(),
        calls: Vec::new(),
        progress,
    };
    // Requests are decided first; refused ones are answered here and never forwarded.
    let batch = message.is_array();
    let requests: Vec<Value> = match message {
        Value::Array(a) => a,
        other => vec![other],
    };
    let mut forward = Vec::new();
    let mut answered = Vec::new();
    for m in requests {
        match ctx.decide(&m).await {
            Ok(()) => {
                if let (Some(id), Some(method)) = (m.get("id"), m.get("method").and_then(Value::as_str)) {
                    ctx.methods.insert(id.to_string(), method.to_string());
                }
                forward.push(m);
            }
            Err(e) => answered.push(e),
        }
    }
    if forward.is_empty() {
        ctx.record().await?;
        let body = if batch || answered.len() > 1 {
            Value::Array(answered)
        } else {
            answered.pop().unwrap_or(Value::Null)
        };
        return Ok(json_response(StatusCode::OK, &body));
    }
    let out = if batch {
        Value::Array(forward)
    } else {
        forward.pop().unwrap_or(Value::Null)
    };
    let mut req = gw.http.post(&url).body(out.to_string());
    for h in FORWARD {
        if let Some(v) = headers.get(*h) {
            req = req.header(*h, v);
        }
    }
    let resp = req.timeout(Duration::from_secs(300)).send().await.map_err(|e| {
        ApiError::upstream(
            StatusCode::BAD_GATEWAY,
            "mcp_server_unreachable",
            format!("the MCP server `{server}` cannot be reached: {e}"),
        )
    })?;
    let status = resp.status();
    let session_out = resp.headers().get("mcp-session-id").cloned();
    let kind = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = read_capped(resp).await?;
    let mut answer = if kind.starts_with("text/event-stream") {
        let mut framer = crate::sse::Framer::new(MAX_MESSAGE);
        let mut events = Vec::new();
        framer
            .push(&body, &mut events)
            .map_err(|_| mcp_invalid("an invalid event stream"))?;
        let mut out = String::new();
        for ev in events {
            let Ok(mut v) = serde_json::from_str::<Value>(&ev.data) else {
                continue;
            };
            ctx.inspect(&mut v).await;
            if let Some(name) = &ev.name {
                out.push_str(&format!("event: {name}\n"));
            }
            out.push_str(&format!("data: {v}\n\n"));
        }
        for a in &answered {
            out.push_str(&format!("data: {a}\n\n"));
        }
        let mut r = Response::new(Body::from(out));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/event-stream"),
        );
        r
    } else if body.is_empty() {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = status;
        r
    } else {
        let mut v: Value = serde_json::from_slice(&body).map_err(|_| mcp_invalid("an answer that is not JSON"))?;
        match &mut v {
            Value::Array(items) => {
                for m in items.iter_mut() {
                    ctx.inspect(m).await;
                }
            }
            m => ctx.inspect(m).await,
        }
        if !answered.is_empty() {
            let mut all = match v {
                Value::Array(a) => a,
                other => vec![other],
            };
            all.extend(answered);
            v = Value::Array(all);
        }
        json_response(status, &v)
    };
    if let Some(s) = session_out {
        answer.headers_mut().insert("mcp-session-id", s);
    }
    ctx.record().await?;
    Ok(answer)
}

fn mcp_invalid(what: &str) -> ApiError {
    ApiError::upstream(
        StatusCode::BAD_GATEWAY,
        "mcp_server_invalid_response",
        format!("the MCP server sent {what}"),
    )
}

async fn read_capped(resp: reqwest::Response) -> Result<Bytes, ApiError> {
    use futures_util::StreamExt;
    let mut out = Vec::new();
    let mut s = resp.bytes_stream();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.map_err(|_| mcp_invalid("a broken answer"))?;
        out.extend_from_slice(&chunk);
        if out.len() > MAX_MESSAGE * 4 {
            return Err(mcp_invalid("an answer over the size limit"));
        }
    }
    Ok(Bytes::from(out))
}

fn json_response(status: StatusCode, v: &Value) -> Response {
    let mut r = Response::new(Body::from(v.to_string()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

impl Ctx {
    /// A request from the agent: `tools/call` goes through the tool guard.
    async fn decide(&mut self, m: &Value) -> Result<(), Value> {
        if m.get("method").and_then(Value::as_str) != Some("tools/call") {
            return Ok(());
        }
        let id = m.get("id").cloned().unwrap_or(Value::Null);
        let Some(guard) = self.rt.tools.as_ref() else {
            return Ok(());
        };
        let params = m.get("params").cloned().unwrap_or(Value::Null);
        let name = params.get("name").and_then(Value::as_str).unwrap_or("").to_string();
        let arguments = params
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| json!({}))
            .to_string();
        let tainted = self.gw.mcp_taint.is(&self.taint_key);
        let model = format!("mcp:{}", self.server);
        match self.gw.store.pin_refusal(&self.server, &name) {
            Ok(None) => {}
            Ok(Some(why)) => {
                self.calls.push(json!({"server": self.server, "tool": name, "verdict": "stop", "code": "tool_not_allowed", "reason": why}));
                return Err(rpc_error(
                    &id,
                    "tool_not_allowed",
                    &format!("tool `{name}`: {why}"),
                    None,
                ));
            }
            Err(_) => {
                return Err(rpc_error(
                    &id,
                    "tool_not_allowed",
                    "the tool's pin cannot be checked",
                    None,
                ))
            }
        }
        let d = guard.check(
            &Call {
                principal: &self.principal,
                model: &model,
                name: &name,
                arguments: &arguments,
                tainted,
            },
            &self.rt.policy,
        );
        let mut record = json!({"server": self.server, "tool": name, "class": d.class, "tainted": tainted,
            "escalated_by_taint": d.escalated_by_taint, "policies": d.policies});
        let (code, reason) = match d.verdict {
            Verdict::Allow => {
                record["verdict"] = json!("allow");
                self.calls.push(record);
                return Ok(());
            }
            Verdict::Stop { code, reason } => (code, reason),
        };
        record["verdict"] = json!("stop");
        record["code"] = json!(code.as_str());
        record["reason"] = json!(reason);
        if code != rampart_agent::Code::ApprovalRequired {
            self.calls.push(record);
            return Err(rpc_error(&id, code.as_str(), &reason, None));
        }
        // Approval: bound to this caller, tool, arguments and server.
        let principal = self.principal.label();
        let hash = approvals::call_hash(&principal, &name, &arguments, &format!("mcp:{}", self.server));
        if let Some(a) = self.gw.store.approved_for(&hash).ok().flatten() {
            if approvals::resent(&self.gw, &a, &hash) == Resent::Approved(a.clone()) {
                record["approval"] = json!({"id": a, "status": "used"});
                self.calls.push(record);
                return Ok(());
            }
        }
        let Some(req) = approvals::request(
            &self.gw,
            &principal,
            &model,
            &name,
            &d.class,
            &arguments,
            &reason,
            tainted,
            "mcp",
            &hash,
            json!({"via": "MCP", "server": self.server, "escalated_by_taint": d.escalated_by_taint}),
        ) else {
            self.calls.push(record);
            return Err(rpc_error(
                &id,
                "tool_not_allowed",
                "the approval request could not be recorded",
                None,
            ));
        };
        let hold = self.rt.config.agent.approval.hold_seconds;
        let decided = if hold > 0 {
            self.wait_with_progress(&req.id, Duration::from_secs(hold)).await
        } else {
            None
        };
        match decided {
            Some(true) if approvals::resent(&self.gw, &req.id, &hash) == Resent::Approved(req.id.clone()) => {
                record["approval"] = json!({"id": req.id, "status": "used"});
                self.calls.push(record);
                Ok(())
            }
            Some(_) => {
                record["approval"] = json!({"id": req.id, "status": "denied"});
                self.calls.push(record);
                Err(rpc_error(
                    &id,
                    "approval_denied",
                    "an approver denied this call",
                    Some(&req.id),
                ))
            }
            None => {
                record["approval"] = json!({"id": req.id, "status": "pending"});
                self.calls.push(record);
                Err(rpc_error(
                    &id,
                    "approval_required",
                    &format!(
                        "{reason}; approval {} was requested: call again once it is approved",
                        req.id
                    ),
                    Some(&req.id),
                ))
            }
        }
    }

    /// Waits for the approver, sending an MCP progress notification every two seconds when
    /// the client gave a progress token.
    async fn wait_with_progress(&self, id: &str, hold: Duration) -> Option<bool> {
        let until = tokio::time::Instant::now() + hold;
        let mut n = 0u64;
        loop {
            if let Some((token, tx)) = &self.progress {
                n += 1;
                let note = json!({"jsonrpc": "2.0", "method": "notifications/progress", "params": {
                    "progressToken": token, "progress": n,
                    "message": format!("waiting for a human to approve this call ({id})")}});
                let _ = tx.send(Bytes::from(format!("data: {note}\n\n"))).await;
            }
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            match approvals::wait(&self.gw, id, left.min(Duration::from_secs(2))).await {
                Some(d) => return Some(d),
                None if left <= Duration::from_secs(2) => return None,
                None => {}
            }
        }
    }

    /// A message from the server: tool lists are filtered and pinned, call results scanned.
    async fn inspect(&mut self, m: &mut Value) {
        let Some(id) = m.get("id").map(Value::to_string) else {
            return;
        };
        let method = self.methods.get(&id).cloned().unwrap_or_default();
        match method.as_str() {
            "tools/list" => self.filter_tools(m).await,
            "tools/call" => self.scan_result(m).await,
            _ => {}
        }
    }

    /// The injection probability of a text the model will read as a tool's words: the fast
    /// path fused with the semantic tier when it runs (a failed semantic score counts as an
    /// injection: nothing unscanned passes).
    async fn injection(&self, text: &str) -> f32 {
        let fast = self
            .gw
            .scanner
            .scan_input(text, rampart_scan::Role::Tool)
            .injection_score;
        // The same rule as for messages: the semantic tier reads the texts whose fast score
        // is uncertain (or all of them, or none), per `[scan.input.injection]`.
        let rule = &self.rt.config.scan.input.injection;
        let [low, high] = rule.semantic_band;
        let semantic = match rule.semantic {
            rampart_policy::SemanticMode::Off => false,
            rampart_policy::SemanticMode::All => true,
            rampart_policy::SemanticMode::Uncertain => (low..=high).contains(&fast),
        };
        match self.gw.semantic.as_ref() {
            Some(b) if semantic => b.score(text, fast).await.map_or(1.0, |s| s.probability),
            _ => fast,
        }
    }

    async fn filter_tools(&mut self, m: &mut Value) {
        let Some(tools) = m.pointer("/result/tools").and_then(Value::as_array).cloned() else {
            return;
        };
        let names: Vec<String> = tools
            .iter()
            .filter_map(|t| t.get("name").and_then(Value::as_str).map(str::to_string))
            .collect();
        let mut others: Vec<String> = self
            .gw
            .store
            .pinned_tool_names()
            .unwrap_or_default()
            .into_iter()
            .filter(|(server, _)| server != &self.server)
            .map(|(_, t)| t)
            .collect();
        others.extend(names.iter().cloned());
        let mut keep = Vec::new();
        let mut hidden = Vec::new();
        for t in tools {
            let name = t.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            match self.why_hidden(&t, &name, &others).await {
                Some(why) => hidden.push(json!({"tool": name, "why": why})),
                None => keep.push(t),
            }
        }
        if let Some(slot) = m.pointer_mut("/result/tools") {
            *slot = Value::Array(keep);
        }
        if !hidden.is_empty() {
            let list = serde_json::to_string(&hidden).unwrap_or_default();
            tracing::warn!(server = %self.server, hidden = %list, "MCP tools hidden");
            self.calls.push(json!({"server": self.server, "tools_hidden": hidden}));
        }
    }

    async fn why_hidden(&self, t: &Value, name: &str, others: &[String]) -> Option<String> {
        // policy: only tools this caller could call
        if let Some(guard) = self.rt.tools.as_ref() {
            let model = format!("mcp:{}", self.server);
            if let Err(why) = guard.may_list(&self.principal, &model, name, &self.rt.policy) {
                return Some(format!("not for this caller: {why}"));
            }
        }
        // pinning: the first definition seen is pinned, a later change hides the tool
        let print = rampart_agent::mcp::fingerprint(t);
        match self.gw.store.pin(&self.server, name, &print, now()) {
            Ok(crate::store::Pin::Matches) => {}
            Ok(crate::store::Pin::Changed) => {
                return Some(
                    "its definition changed since it was pinned (approve it with `rampart mcp approve`)".into(),
                )
            }
            Err(_) => return Some("its pin could not be checked".into()),
        }
        if let Ok(Some(why)) = self.gw.store.pin_refusal(&self.server, name) {
            return Some(why);
        }
        // poisoning and shadowing: flagged until an operator approves the definition
        let mut flagged = None;
        for text in rampart_agent::mcp::texts(t) {
            if let Some(why) = rampart_agent::mcp::hidden_instructions(&text) {
                flagged = Some(format!("its description carries instructions for the model: {why}"));
                break;
            }
            let score = self.injection(&text).await;
            if score >= POISON_THRESHOLD {
                flagged = Some(format!(
                    "its description reads as instructions for the model (injection score {score:.2})"
                ));
                break;
            }
        }
        if flagged.is_none() {
            flagged = rampart_agent::mcp::shadows(t, others)
                .map(|o| format!("its description talks about another tool (`{o}`)"));
        }
        if let Some(why) = &flagged {
            let _ = self.gw.store.flag_pin(&self.server, name, why);
            tracing::warn!(server = %self.server, tool = name, %why, "MCP tool flagged");
        }
        flagged
    }

    async fn scan_result(&mut self, m: &mut Value) {
        self.gw.mcp_taint.mark(&self.taint_key);
        let threshold = self.rt.config.scan.input.injection.thresholds.tool;
        let texts: Vec<String> = m
            .pointer("/result/content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|i| i.get("text").and_then(Value::as_str).map(str::to_string))
            .collect();
        let mut withheld = None;
        for text in &texts {
            if let Some(why) = rampart_agent::mcp::hidden_instructions(text) {
                withheld = Some(why);
                break;
            }
            let score = self.injection(text).await;
            if score >= threshold {
                withheld = Some(format!("injection score {score:.2}"));
                break;
            }
        }
        if let Some(why) = withheld {
            if let Some(r) = m.get_mut("result") {
                *r = json!({"isError": true, "content": [{"type": "text", "text": "Rampart withheld this tool result: it held instructions for the model (prompt injection)."}]});
            }
            self.calls
                .push(json!({"server": self.server, "result": "withheld", "why": why}));
            return;
        }
        if let Some(content) = m.pointer_mut("/result/content").and_then(Value::as_array_mut) {
            for item in content.iter_mut() {
                if let Some(Value::String(text)) = item.get_mut("text") {
                    let redacted = crate::audit::redact_text(&self.gw, text);
                    if redacted != *text {
                        *text = redacted;
                    }
                }
            }
        }
    }

    async fn record(&self) -> Result<(), ApiError> {
        if self.calls.is_empty() || self.gw.audit.is_none() {
            return Ok(());
        }
        let trail = crate::audit::Trail {
            ts_ms: now() * 1000,
            request_id: String::new(),
            endpoint: "mcp",
            principal: Some(self.principal.label()),
            subject: self.principal.user().to_string(),
            model: format!("mcp:{}", self.server),
            tool_calls: self.calls.clone(),
            tainted: self.gw.mcp_taint.is(&self.taint_key),
            ..Default::default()
        };
        let decision = if self.calls.iter().any(|c| c["verdict"] == "stop") {
            "blocked"
        } else {
            "allowed"
        };
        crate::audit::append(&self.gw, trail.entry("complete", decision, 200, None, None)).await
    }
}
