//! Tool calls in answers, decided by the agent's tool guard before the application sees them.
//!
//! A buffered answer's calls are checked as a whole. In a stream, every tool-call and
//! function-call delta is held (names, ids and argument pieces) until its choice finishes,
//! then the complete call is checked and released in one delta, or the stream ends with the
//! guard's error: a client never sees part of a call that is refused, however the upstream
//! splits it.

use std::collections::BTreeMap;
use std::sync::Arc;

use rampart_agent::{Call, Verdict};
use rampart_policy::Principal;
use serde_json::{json, Map, Value};

use super::guard::OutputBlocked;
use crate::approvals::{self, Resent};
use crate::audit::SharedTrail;
use crate::state::{Gateway, Runtime};

/// The tool guard bound to one exchange.
pub(crate) struct ToolCheck {
    gw: Arc<Gateway>,
    rt: Arc<Runtime>,
    principal: Principal,
    model: String,
    tainted: bool,
    trail: SharedTrail,
    request_id: String,
    /// The conversation's digest, which an approval is bound to.
    conversation: String,
    /// The approval the client resent the conversation with.
    approval: Option<String>,
}

fn tool_stop(code: &'static str, message: impl Into<String>, approval: Option<String>) -> OutputBlocked {
    OutputBlocked::Tool {
        code,
        message: message.into(),
        approval,
    }
}

/// Whether the request carries content nobody vouches for: a tool or function result, or a
/// document or file part.
pub(crate) fn tainted(body: &Map<String, Value>) -> bool {
    // Chat's `messages`, or the Responses API's `input` items (where tool results are
    // `*_output` items).
    let Some(Value::Array(messages)) = body.get("messages").or_else(|| body.get("input")) else {
        return false;
    };
    messages.iter().any(|m| {
        matches!(m.get("role").and_then(Value::as_str), Some("tool" | "function"))
            || m.get("type")
                .and_then(Value::as_str)
                .is_some_and(|t| t.ends_with("_output"))
            || m.get("content").and_then(Value::as_array).is_some_and(|parts| {
                parts.iter().any(|p| {
                    matches!(
                        p.get("type").and_then(Value::as_str),
                        Some("file" | "input_file" | "document" | "tool_result")
                    )
                })
            })
    })
}

impl ToolCheck {
    /// The check for an exchange, when `[agent]` lists tools.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        gw: Arc<Gateway>,
        rt: Arc<Runtime>,
        principal: Principal,
        model: &str,
        conversation: String,
        tainted: bool,
        trail: SharedTrail,
        request_id: &str,
        approval: Option<String>,
    ) -> Option<ToolCheck> {
        rt.tools.as_ref()?;
        if let Ok(mut t) = trail.lock() {
            t.tainted = tainted;
        }
        Some(ToolCheck {
            gw,
            rt,
            principal,
            model: model.to_string(),
            tainted,
            trail,
            request_id: request_id.to_string(),
            conversation,
            approval,
        })
    }

    fn record(&self, name: &str, d: &rampart_agent::Decision, approval: Value) {
        let describe = |v: &Verdict| match v {
            Verdict::Allow => (json!("allow"), Value::Null, Value::Null),
            Verdict::Stop { code, reason } => (json!("stop"), json!(code.as_str()), json!(reason)),
        };
        let (verdict, code, reason) = describe(&d.verdict);
        let shadow = d.shadow.as_ref().map(|s| describe(s).1);
        if let Ok(mut t) = self.trail.lock() {
            t.tool_calls.push(json!({
                "tool": name, "class": d.class, "verdict": verdict, "code": code, "reason": reason,
                "tainted": self.tainted, "escalated_by_taint": d.escalated_by_taint,
                "policies": d.policies, "shadow": shadow, "approval": approval,
            }));
        }
    }

    /// Decides one call and records the decision. A call that needs approval goes through
    /// only with an approval for exactly this call; otherwise a request is filed and the call
    /// is refused with its id.
    pub(crate) fn check(&self, name: &str, arguments: &str) -> Result<(), OutputBlocked> {
        let Some(guard) = self.rt.tools.as_ref() else {
            return Ok(());
        };
        let d = guard.check(
            &Call {
                principal: &self.principal,
                model: &self.model,
                name,
                arguments,
                tainted: self.tainted,
            },
            &self.rt.policy,
        );
        let (code, reason) = match &d.verdict {
            Verdict::Allow => {
                self.record(name, &d, Value::Null);
                return Ok(());
            }
            Verdict::Stop { code, reason } => (*code, reason.clone()),
        };
        if code != rampart_agent::Code::ApprovalRequired {
            self.record(name, &d, Value::Null);
            tracing::info!(tool = name, code = code.as_str(), %reason, "tool call stopped");
            return Err(tool_stop(code.as_str(), reason, None));
        }
        let principal = self.principal.label();
        let hash = approvals::call_hash(&principal, name, arguments, &self.conversation);
        let outcome = match self.approval.as_deref() {
            Some(id) => approvals::resent(&self.gw, id, &hash),
            None => Resent::Other,
        };
        match outcome {
            Resent::Approved(id) => {
                self.record(name, &d, json!({"id": id, "status": "used"}));
                Ok(())
            }
            Resent::Denied(id) => {
                self.record(name, &d, json!({"id": id, "status": "denied"}));
                Err(tool_stop(
                    "approval_denied",
                    format!("tool `{name}`: an approver denied this call"),
                    Some(id),
                ))
            }
            Resent::Expired(id) => {
                self.record(name, &d, json!({"id": id, "status": "expired"}));
                Err(tool_stop(
                    "approval_expired",
                    format!("tool `{name}`: nobody approved this call in time"),
                    Some(id),
                ))
            }
            Resent::Pending(id) => {
                self.record(name, &d, json!({"id": id, "status": "pending"}));
                Err(tool_stop(
                    "approval_required",
                    format!("{reason}; approval {id} is still pending"),
                    Some(id),
                ))
            }
            Resent::Other => {
                let findings: Vec<String> = self
                    .trail
                    .lock()
                    .map(|t| {
                        t.findings
                            .iter()
                            .map(|f| format!("{}:{}:{}", f.direction, f.detector, f.kind))
                            .collect()
                    })
                    .unwrap_or_default();
                let filed = approvals::request(
                    &self.gw,
                    &principal,
                    &self.model,
                    name,
                    &d.class,
                    arguments,
                    &reason,
                    self.tainted,
                    &self.request_id,
                    &hash,
                    json!({"via": "model API", "findings": findings, "escalated_by_taint": d.escalated_by_taint}),
                );
                match filed {
                    Some(a) => {
                        self.record(name, &d, json!({"id": a.id, "status": "pending"}));
                        Err(tool_stop(
                            "approval_required",
                            format!(
                                "{reason}; approval {} was requested: resend the conversation with the header `{}: {}` once it is approved",
                                a.id,
                                approvals::HEADER,
                                a.id
                            ),
                            Some(a.id),
                        ))
                    }
                    None => {
                        self.record(name, &d, json!({"status": "unrecorded"}));
                        Err(tool_stop(
                            "tool_not_allowed",
                            format!("{reason}, and the approval request could not be recorded"),
                            None,
                        ))
                    }
                }
            }
        }
    }

    /// Like [`check`](Self::check), but a new approval request may be waited for
    /// (`agent.approval.hold_seconds`), so an approver can let a buffered answer through.
    async fn check_holding(&self, name: &str, arguments: &str) -> Result<(), OutputBlocked> {
        let stopped = match self.check(name, arguments) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        let hold = self.rt.config.agent.approval.hold_seconds;
        let id = match (&stopped, hold) {
            (
                OutputBlocked::Tool {
                    code: "approval_required",
                    approval: Some(id),
                    ..
                },
                h,
            ) if h > 0 => id.clone(),
            _ => return Err(stopped),
        };
        match approvals::wait(&self.gw, &id, std::time::Duration::from_secs(hold)).await {
            Some(true) => {
                let hash = approvals::call_hash(&self.principal.label(), name, arguments, &self.conversation);
                if approvals::resent(&self.gw, &id, &hash) == Resent::Approved(id.clone()) {
                    if let Ok(mut t) = self.trail.lock() {
                        if let Some(last) = t.tool_calls.last_mut() {
                            last["approval"] = json!({"id": id, "status": "used"});
                        }
                    }
                    Ok(())
                } else {
                    Err(stopped)
                }
            }
            Some(false) => Err(tool_stop(
                "approval_denied",
                format!("tool `{name}`: an approver denied this call, or nobody approved it in time"),
                Some(id),
            )),
            None => Err(stopped),
        }
    }

    /// Every call in a buffered answer: chat's `tool_calls` and legacy `function_call`, or
    /// the Responses API's `function_call` and `custom_tool_call` output items.
    pub(crate) async fn answer(&self, body: &Value) -> Result<(), OutputBlocked> {
        if let Some(output) = body.get("output").and_then(Value::as_array) {
            for item in output {
                if let Some((name, arguments)) = responses_call(item) {
                    self.check_holding(&name, &arguments).await?;
                }
            }
            return Ok(());
        }
        let Some(choices) = body.get("choices").and_then(Value::as_array) else {
            return Ok(());
        };
        for c in choices {
            let Some(m) = c.get("message") else { continue };
            let mut functions: Vec<&Value> = Vec::new();
            for call in m.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
                if let Some(f) = call.get("function") {
                    functions.push(f);
                } else {
                    return Err(tool_stop("tool_not_allowed", "a tool call without a function", None));
                }
            }
            if let Some(f) = m.get("function_call").filter(|f| !f.is_null()) {
                functions.push(f);
            }
            for f in functions {
                let (name, arguments) = name_and_arguments(f);
                self.check_holding(&name, &arguments).await?;
            }
        }
        Ok(())
    }
}

/// The name and arguments of a Responses API output item that asks the application to run
/// a tool (`function_call`, or `custom_tool_call` with free-form `input`).
pub(crate) fn responses_call(item: &Value) -> Option<(String, String)> {
    match item.get("type").and_then(Value::as_str)? {
        "function_call" => Some(name_and_arguments(item)),
        "custom_tool_call" => {
            let name = item.get("name").and_then(Value::as_str).unwrap_or("").to_string();
            let input = item.get("input").and_then(Value::as_str).unwrap_or("").to_string();
            Some((name, input))
        }
        _ => None,
    }
}

fn name_and_arguments(f: &Value) -> (String, String) {
    let name = f.get("name").and_then(Value::as_str).unwrap_or("").to_string();
    let arguments = match f.get("arguments") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    };
    (name, arguments)
}

/// A tool call being streamed.
#[derive(Default)]
struct Held {
    id: Option<Value>,
    kind: Option<Value>,
    name: String,
    arguments: String,
}

/// Holds streamed tool calls until their choice finishes.
pub(crate) struct ToolHold {
    check: ToolCheck,
    /// A finishing chunk whose calls wait for an approver (their deltas already taken).
    pending: Option<Map<String, Value>>,
    /// `(choice, Some(tool index))` for tool calls, `(choice, None)` for `function_call`.
    held: BTreeMap<(u64, Option<u64>), Held>,
}

/// Most bytes of held arguments per call (a call larger than this is refused, not buffered
/// without end).
const MAX_HELD: usize = 1 << 20;

impl ToolHold {
    pub(crate) fn new(check: ToolCheck) -> ToolHold {
        ToolHold {
            check,
            pending: None,
            held: BTreeMap::new(),
        }
    }

    /// Takes the calls out of one chunk; when a choice finishes, checks its calls and puts
    /// them back, whole, into that chunk.
    pub(crate) fn chunk(&mut self, data: &str) -> Result<String, OutputBlocked> {
        let Ok(Value::Object(mut v)) = serde_json::from_str::<Value>(data) else {
            return Ok(data.to_owned());
        };
        let mut touched = false;
        let mut waiting = None;
        if let Some(Value::Array(choices)) = v.get_mut("choices") {
            for c in choices.iter_mut() {
                let Value::Object(c) = c else { continue };
                let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0);
                if let Some(Value::Object(delta)) = c.get_mut("delta") {
                    touched |= self.take(idx, delta)?;
                }
            }
            for c in choices.iter_mut() {
                let Value::Object(c) = c else { continue };
                let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0);
                if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                    match self.release(idx, c) {
                        Ok(t) => touched |= t,
                        Err(e) if self.may_wait(&e) => waiting = Some(e),
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        if let Some(e) = waiting {
            self.pending = Some(v);
            return Err(e);
        }
        if !touched {
            return Ok(data.to_owned());
        }
        serde_json::to_string(&Value::Object(v))
            .map_err(|_| tool_stop("tool_not_allowed", "a tool call could not be re-encoded", None))
    }

    /// A refusal the stream may wait out: a new approval request, when `hold_seconds` allows.
    fn may_wait(&self, e: &OutputBlocked) -> bool {
        e.code() == "approval_required"
            && e.approval().is_some()
            && self.check.rt.config.agent.approval.hold_seconds > 0
            && self.pending.is_none()
    }

    /// How long a stream may wait for an approver.
    pub(crate) fn hold(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.check.rt.config.agent.approval.hold_seconds)
    }

    /// The gateway, for polling an approval.
    pub(crate) fn gateway(&self) -> &Gateway {
        &self.check.gw
    }

    /// After approval `id` was granted: the held chunk, its calls decided again (the approved
    /// one now goes through, once) and put back.
    pub(crate) fn resume(&mut self, id: &str) -> Result<String, OutputBlocked> {
        let Some(mut v) = self.pending.take() else {
            return Err(tool_stop("tool_not_allowed", "no held tool call to resume", None));
        };
        self.check.approval = Some(id.to_string());
        if let Some(Value::Array(choices)) = v.get_mut("choices") {
            for c in choices.iter_mut() {
                let Value::Object(c) = c else { continue };
                let idx = c.get("index").and_then(Value::as_u64).unwrap_or(0);
                if c.get("finish_reason").is_some_and(|f| !f.is_null()) {
                    self.release(idx, c)?;
                }
            }
        }
        serde_json::to_string(&Value::Object(v))
            .map_err(|_| tool_stop("tool_not_allowed", "a tool call could not be re-encoded", None))
    }

    fn take(&mut self, idx: u64, delta: &mut Map<String, Value>) -> Result<bool, OutputBlocked> {
        let mut touched = false;
        if let Some(Value::Array(calls)) = delta.remove("tool_calls") {
            touched = true;
            for call in calls {
                let ti = call.get("index").and_then(Value::as_u64).unwrap_or(0);
                let h = self.held.entry((idx, Some(ti))).or_default();
                if let Some(id) = call.get("id").filter(|v| !v.is_null()) {
                    h.id = Some(id.clone());
                }
                if let Some(t) = call.get("type").filter(|v| !v.is_null()) {
                    h.kind = Some(t.clone());
                }
                if let Some(f) = call.get("function") {
                    append(h, f)?;
                }
            }
        }
        if let Some(f) = delta.remove("function_call") {
            touched = true;
            let h = self.held.entry((idx, None)).or_default();
            append(h, &f)?;
        }
        Ok(touched)
    }

    /// Checks and puts back the finished choice's calls.
    fn release(&mut self, idx: u64, c: &mut Map<String, Value>) -> Result<bool, OutputBlocked> {
        let keys: Vec<(u64, Option<u64>)> = self.held.keys().filter(|k| k.0 == idx).copied().collect();
        if keys.is_empty() {
            return Ok(false);
        }
        // Every call is decided before any is released (a call held for approval keeps the
        // choice's calls, so that they can be released together once it is approved).
        for k in &keys {
            if let Some(h) = self.held.get(k) {
                self.check.check(&h.name, &h.arguments)?;
            }
        }
        let mut tool_calls = Vec::new();
        let mut function_call = None;
        for k in keys {
            let Some(h) = self.held.remove(&k) else { continue };
            match k.1 {
                Some(ti) => {
                    let mut call = Map::new();
                    call.insert("index".into(), Value::from(ti));
                    if let Some(id) = h.id {
                        call.insert("id".into(), id);
                    }
                    call.insert("type".into(), h.kind.unwrap_or_else(|| json!("function")));
                    call.insert("function".into(), json!({"name": h.name, "arguments": h.arguments}));
                    tool_calls.push(Value::Object(call));
                }
                None => function_call = Some(json!({"name": h.name, "arguments": h.arguments})),
            }
        }
        let delta = c.entry("delta").or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(d) = delta {
            if !tool_calls.is_empty() {
                d.insert("tool_calls".into(), Value::Array(tool_calls));
            }
            if let Some(f) = function_call {
                d.insert("function_call".into(), f);
            }
        }
        Ok(true)
    }

    /// Calls still held when the stream ends without a finish reason: checked, then sent.
    pub(crate) fn flush(&mut self) -> Result<Vec<Value>, OutputBlocked> {
        let choices: Vec<u64> = {
            let mut c: Vec<u64> = self.held.keys().map(|k| k.0).collect();
            c.dedup();
            c
        };
        let mut out = Vec::new();
        for idx in choices {
            let mut c = Map::new();
            c.insert("index".into(), Value::from(idx));
            self.release(idx, &mut c)?;
            c.insert("finish_reason".into(), Value::Null);
            out.push(json!({"object": "chat.completion.chunk", "choices": [Value::Object(c)]}));
        }
        Ok(out)
    }
}

fn append(h: &mut Held, f: &Value) -> Result<(), OutputBlocked> {
    if let Some(n) = f.get("name").and_then(Value::as_str) {
        h.name.push_str(n);
    }
    match f.get("arguments") {
        Some(Value::String(a)) => h.arguments.push_str(a),
        Some(Value::Null) | None => {}
        Some(other) => h.arguments.push_str(&other.to_string()),
    }
    if h.arguments.len() > MAX_HELD {
        return Err(tool_stop(
            "tool_arguments_rejected",
            format!("the arguments of a tool call are larger than {MAX_HELD} bytes"),
            None,
        ));
    }
    Ok(())
}
