//! Human approval of tool calls the tool guard holds.
//!
//! A call whose class (or taint) needs approval becomes a request in the database: the tool,
//! its arguments (secrets and PII redacted), the reason, the taint, bound by a hash to the
//! exact call (principal, tool, canonical arguments, and the conversation it came from). An
//! approver approves or denies it through the admin API or `rampart approvals`; a buffered
//! answer may wait for the decision (`hold_seconds`). Otherwise the client gets
//! `approval_required` with the request's id and resends the same conversation with the
//! header `x-rampart-approval: <id>` once it is approved: the call then goes through if, and
//! only if, it is the call that was approved, and only once. A request nobody decides expires
//! (denied). Requests live in SQLite, so they survive a restart.

use std::time::Duration;

use rand::RngCore;
use serde::Serialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::state::{now, Gateway};

/// The header a client resends a conversation with once its call was approved.
pub const HEADER: &str = "x-rampart-approval";

/// One approval request.
#[derive(Debug, Clone, Serialize)]
pub struct Approval {
    /// `apr_` and 16 hex digits.
    pub id: String,
    /// SHA-256 over principal, tool, canonical arguments and the conversation.
    pub call_hash: String,
    /// `key:ID` or `user:NAME`.
    pub principal: String,
    /// The model that proposed the call.
    pub model: String,
    /// The tool.
    pub tool: String,
    /// Its risk class.
    pub class: String,
    /// The arguments, secrets and PII redacted.
    pub arguments: String,
    /// Why the call needs a human.
    pub reason: String,
    /// Untrusted content was in the exchange.
    pub tainted: bool,
    /// The exchange that proposed it.
    pub request_id: String,
    /// `pending`, `approved`, `denied`, `expired` or `used`.
    pub status: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds; an undecided request is expired after it.
    pub expires_at: i64,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
    /// The approver's note.
    pub note: String,
    /// What the approver should know of the exchange: the scanners' findings so far (input
    /// and output), and where the call came from.
    pub context: Value,
}

impl Approval {
    /// The status as of `now` (a pending request past its time is expired).
    pub fn as_of(mut self, now: i64) -> Approval {
        if self.status == "pending" && now >= self.expires_at {
            self.status = "expired".into();
        }
        self
    }
}

/// The hash an approval is bound to.
pub fn call_hash(principal: &str, tool: &str, arguments: &str, conversation: &str) -> String {
    let args = serde_json::from_str::<Value>(arguments)
        .map_or_else(|_| arguments.to_string(), |v| rampart_agent::canonical(&v).to_string());
    let mut h = Sha256::new();
    for part in [principal, tool, &args, conversation] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

/// A digest of the conversation (the request's messages) a call came from.
pub fn conversation_hash(body: &serde_json::Map<String, Value>) -> String {
    // Chat's `messages`; the Responses API's `input`, with what it continues and its
    // instructions.
    let messages = match body.get("messages") {
        Some(m) => rampart_agent::canonical(m).to_string(),
        None => ["previous_response_id", "instructions", "input"]
            .iter()
            .filter_map(|k| body.get(*k))
            .map(|v| rampart_agent::canonical(v).to_string())
            .collect::<Vec<_>>()
            .join("\n"),
    };
    hex(&Sha256::digest(messages.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn new_id() -> String {
    let mut b = [0u8; 8];
    rand::rng().fill_bytes(&mut b);
    format!("apr_{}", hex(&b))
}

/// What the call a client resent with an approval id gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resent {
    /// Approved for exactly this call, and now used.
    Approved(String),
    /// An approver refused it.
    Denied(String),
    /// Nobody decided in time.
    Expired(String),
    /// Still waiting.
    Pending(String),
    /// Not this call, used already, or unknown: a new request is needed.
    Other,
}

/// Looks at the approval a client resent its conversation with.
pub fn resent(gw: &Gateway, id: &str, hash: &str) -> Resent {
    let t = now();
    if gw.store.use_approval(id, hash, t).unwrap_or(false) {
        return Resent::Approved(id.to_string());
    }
    match gw.store.approval(id, t) {
        Ok(Some(a)) if a.call_hash == hash => match a.status.as_str() {
            "denied" => Resent::Denied(a.id),
            "expired" => Resent::Expired(a.id),
            "pending" => Resent::Pending(a.id),
            _ => Resent::Other,
        },
        _ => Resent::Other,
    }
}

/// Files a request and announces it. `None` when the database refuses (the call is then
/// refused too: nothing is let through unrecorded).
#[allow(clippy::too_many_arguments)]
pub fn request(
    gw: &Gateway,
    principal: &str,
    model: &str,
    tool: &str,
    class: &str,
    arguments: &str,
    reason: &str,
    tainted: bool,
    request_id: &str,
    hash: &str,
    context: Value,
) -> Option<Approval> {
    let cfg = gw.runtime.load().config.agent.approval.clone();
    let t = now();
    let a = Approval {
        id: new_id(),
        call_hash: hash.to_string(),
        principal: principal.to_string(),
        model: model.to_string(),
        tool: tool.to_string(),
        class: class.to_string(),
        arguments: crate::audit::redact_text(gw, arguments),
        reason: reason.to_string(),
        tainted,
        request_id: request_id.to_string(),
        status: "pending".into(),
        created_at: t,
        expires_at: t.saturating_add(i64::try_from(cfg.expires_seconds).unwrap_or(i64::MAX)),
        decided_by: None,
        decided_at: None,
        note: String::new(),
        context,
    };
    if let Err(e) = gw.store.insert_approval(&a) {
        tracing::error!(error = %e, "cannot record an approval request");
        return None;
    }
    tracing::warn!(approval = %a.id, tool, class, principal, "tool call held for approval");
    if let Some(url) = cfg.webhook {
        let http = gw.http.clone();
        let body = webhook_body(&a);
        tokio::spawn(async move {
            let sent = http.post(&url).timeout(Duration::from_secs(5)).json(&body).send().await;
            match sent {
                Ok(r) if r.status().is_success() => {}
                Ok(r) => tracing::warn!(status = %r.status(), "approval webhook refused the notification"),
                Err(e) => tracing::warn!(error = %e, "approval webhook unreachable"),
            }
        });
    }
    Some(a)
}

/// The notification: the request as JSON, and a `text` line so that a Slack incoming webhook
/// shows it as a message.
pub fn webhook_body(a: &Approval) -> Value {
    let taint = if a.tainted { " after untrusted content" } else { "" };
    json!({
        "event": "approval.requested",
        "approval": a,
        "text": format!(
            "Rampart holds a `{}` call (class {}) by {}{taint}: {}. Approve: `rampart approvals approve {}`; deny: `rampart approvals deny {}`.",
            a.tool, a.class, a.principal, a.reason, a.id, a.id
        ),
    })
}

/// Waits up to `hold` for a decision on `id`: `Some(true)` approved, `Some(false)` denied or
/// expired, `None` still pending.
pub async fn wait(gw: &Gateway, id: &str, hold: Duration) -> Option<bool> {
    let until = tokio::time::Instant::now() + hold;
    loop {
        match gw.store.approval(id, now()) {
            Ok(Some(a)) => match a.status.as_str() {
                "approved" => return Some(true),
                "denied" | "expired" => return Some(false),
                _ => {}
            },
            _ => return Some(false),
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn a_call_hashes_the_same_however_its_arguments_are_written() {
        let a = call_hash("user:a", "pay", r#"{"to": "bob", "amount": 10}"#, "c");
        assert_eq!(a, call_hash("user:a", "pay", r#"{ "amount":10, "to":"bob" }"#, "c"));
        assert_ne!(a, call_hash("user:a", "pay", r#"{"to": "bob", "amount": 11}"#, "c"));
        assert_ne!(a, call_hash("user:b", "pay", r#"{"to": "bob", "amount": 10}"#, "c"));
        assert_ne!(a, call_hash("user:a", "pay", r#"{"to": "bob", "amount": 10}"#, "d"));
        // parts cannot run into each other
        assert_ne!(call_hash("ab", "c", "{}", ""), call_hash("a", "bc", "{}", ""));
    }
}
