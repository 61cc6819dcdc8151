//! The request path for inference, top to bottom:
//!
//! 1. authenticate (API key or OIDC JWT) — before the body is read, so strangers cannot make
//!    the gateway buffer anything;
//! 2. read the body within `limits.max_body_bytes` and parse it (`openai.rs`);
//! 3. resolve the model to its route; check the kill switch; authorize with Cedar;
//! 4. check prompt size, cap `max_tokens`, admit against the limits, then scan the input and
//!    apply the policy's actions (`guard.rs`): block, redact, pseudonymize, spotlight, flag;
//!    demote client system messages; plant the canary;
//! 5. send upstream with failover (`send.rs`);
//! 6. relay the answer: buffered and checked (`buffered.rs`) or streamed event by event
//!    (`stream.rs`), charging completion tokens from the upstream's usage; output scanners
//!    run on the way (streamed ones with a bounded hold-back) and pseudonyms are restored.
//!
//! Each step either adds to the exchange or ends it with an [`ApiError`].

mod buffered;
pub mod guard;
mod send;
mod stream;
mod tools;
mod views;

pub use stream::check_responses_stream;

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use rampart_policy::Action;

use crate::audit::{self, SharedTrail};
use crate::auth::{self, Caller};
use crate::error::ApiError;
use crate::limits::{Scope, Subject};
use crate::openai::{Endpoint, InferenceRequest};
use crate::state::{now, Gateway, Runtime};

/// The id of one exchange, set by the request-id layer.
#[derive(Debug, Clone)]
pub struct RequestId(pub Arc<str>);

impl RequestId {
    /// A fresh, time-ordered id.
    pub fn new() -> RequestId {
        RequestId(Arc::from(format!("req_{}", uuid::Uuid::now_v7().simple())))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

/// Decrements the in-flight gauge when dropped.
pub(crate) struct InFlight(Arc<Gateway>);

impl InFlight {
    fn enter(gw: &Arc<Gateway>) -> InFlight {
        gw.metrics.inflight.inc();
        InFlight(gw.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.metrics.inflight.dec();
    }
}

/// Authenticates against the current runtime.
pub async fn authenticate(gw: &Gateway, rt: &Runtime, headers: &HeaderMap) -> Result<Caller, ApiError> {
    auth::authenticate(headers, &gw.keys, rt.config.auth.api_keys, rt.oidc.as_deref(), now()).await
}

/// An address that keeps failing to authenticate is turned away before its credentials are
/// looked at, and without a record of its own (see `auth::flood`).
fn throttle(gw: &Gateway, client: Option<std::net::IpAddr>) -> Result<(), ApiError> {
    if let Some(wait) = client.and_then(|ip| gw.auth_failures.throttled(ip)) {
        gw.auth_failures.refused(client);
        return Err(ApiError::rate_limited(
            "too_many_authentication_failures",
            "too many failed authentications from this address; try again later",
            wait.max(std::time::Duration::from_secs(1)),
        ));
    }
    Ok(())
}

/// As [`authenticate`], for routes without an exchange record: throttled per address, and a
/// refusal is counted for the aggregate record.
pub async fn authenticate_throttled(
    gw: &Gateway,
    rt: &Runtime,
    client: Option<std::net::IpAddr>,
    headers: &HeaderMap,
) -> Result<Caller, ApiError> {
    throttle(gw, client)?;
    authenticate(gw, rt, headers).await.inspect_err(|e| {
        if e.status() == StatusCode::UNAUTHORIZED {
            gw.auth_failures.refused(client);
        }
    })
}

/// Reads a request body within `max` bytes and `timeout` (slow senders must not hold memory
/// and a task forever).
pub async fn read_body(
    body: Body,
    headers: &HeaderMap,
    max: usize,
    timeout: std::time::Duration,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(ApiError::too_large(format!(
            "the request body exceeds the limit of {max} bytes"
        )));
    }
    let read = tokio::time::timeout(timeout, http_body_util::Limited::new(body, max).collect());
    let Ok(collected) = read.await else {
        return Err(ApiError::request_timeout(format!(
            "the request body did not arrive within {} ms",
            timeout.as_millis()
        )));
    };
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(format!(
            "the request body exceeds the limit of {max} bytes"
        ))),
        Err(_) => Err(ApiError::invalid_request(
            "body_read_error",
            "the request body could not be read completely",
        )),
    }
}

fn action_for(endpoint: Endpoint) -> Action {
    match endpoint {
        Endpoint::Chat => Action::Chat,
        Endpoint::Completions => Action::Complete,
        Endpoint::Embeddings => Action::Embed,
        // A Responses API call is a chat turn in another wire format.
        Endpoint::Responses => Action::Chat,
    }
}

/// Handles one inference request end to end, and makes sure it is on record: the relay
/// records what it serves; whatever ends in an error is recorded here, before the error goes
/// out. While the ledger cannot write, nothing is served.
pub async fn inference(
    gw: Arc<Gateway>,
    endpoint: Endpoint,
    rid: RequestId,
    client: Option<std::net::IpAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    throttle(&gw, client)?;
    audit::admit(&gw)?;
    let trail: SharedTrail = Arc::new(std::sync::Mutex::new(audit::Trail {
        started: Some(std::time::Instant::now()),
        ts_ms: rampart_audit::now_ms(),
        request_id: rid.0.to_string(),
        endpoint: endpoint_name(endpoint),
        ..audit::Trail::default()
    }));
    let result = handle(gw.clone(), endpoint, rid, headers, body, trail.clone()).await;
    let Err(err) = result else {
        return result;
    };
    let anonymous = match trail.lock() {
        Ok(t) => {
            t.log_access(decision_for(&err), err.status().as_u16(), Some(err.code()));
            t.principal.is_none()
        }
        Err(_) => true,
    };
    if anonymous && err.status() == StatusCode::UNAUTHORIZED {
        // No identity: counted per address and recorded in aggregate, not one durable
        // write per refusal.
        gw.auth_failures.refused(client);
        return Err(err);
    }
    if gw.audit.is_some() {
        let entry = match trail.lock() {
            Ok(mut t) if !t.recorded => {
                t.recorded = true;
                let payload = t.payload(&gw);
                Some(t.entry(
                    "complete",
                    decision_for(&err),
                    err.status().as_u16(),
                    Some(err.code()),
                    payload,
                ))
            }
            _ => None,
        };
        if let Some(entry) = entry {
            audit::append(&gw, entry).await?;
        }
    }
    Err(err)
}

fn endpoint_name(e: Endpoint) -> &'static str {
    match e {
        Endpoint::Chat => "chat",
        Endpoint::Completions => "completions",
        Endpoint::Embeddings => "embeddings",
        Endpoint::Responses => "responses",
    }
}

/// How an error reads in the ledger: a detector's block, a refusal, or a failure.
fn decision_for(e: &ApiError) -> &'static str {
    let code = e.code();
    if code.ends_with("_detected") || code == "output_blocked" || code == "system_message_not_allowed" {
        "blocked"
    } else if matches!(e.cause(), crate::error::Cause::Upstream | crate::error::Cause::Internal) {
        "failed"
    } else {
        "refused"
    }
}

async fn handle(
    gw: Arc<Gateway>,
    endpoint: Endpoint,
    rid: RequestId,
    headers: HeaderMap,
    body: Body,
    trail: SharedTrail,
) -> Result<Response, ApiError> {
    let rt = gw.runtime.load_full();

    // 1. Who is calling.
    let caller = authenticate(&gw, &rt, &headers).await?;
    if let Ok(mut t) = trail.lock() {
        t.principal = Some(caller.principal.label());
        t.subject = caller.principal.user().to_string();
        t.key_id = caller.key_id.clone();
    }

    // 2. What they ask.
    let body_timeout = std::time::Duration::from_millis(rt.config.server.body_timeout_ms);
    let bytes = read_body(body, &headers, rt.config.limits.max_body_bytes, body_timeout).await?;
    let mut req = InferenceRequest::parse(endpoint, &bytes, &gw.tokenizer)?;
    drop(bytes);
    if let Ok(mut t) = trail.lock() {
        t.model = req.model.chars().take(256).collect();
        t.stream = req.stream;
        t.prompt_tokens = req.prompt_tokens;
    }

    // 3. Whether they may.
    let route = rt.routes.get(&req.model).cloned().ok_or_else(|| {
        ApiError::not_found(
            "model_not_found",
            format!(
                "the model `{}` does not exist or you do not have access to it",
                short(&req.model)
            ),
        )
        .with_param("model")
    })?;
    if let Some(kind) = blocked(&gw, &rt, &caller, &req.model, &route) {
        return Err(ApiError::forbidden(
            "blocked",
            format!("access is blocked by an administrator ({kind})"),
        ));
    }
    let decision = rt.policy.authorize(&caller.principal, action_for(endpoint), &req.model);
    if !decision.allowed() {
        if !decision.errors.is_empty() {
            tracing::warn!(request_id = %rid.0, errors = ?decision.errors, "policy evaluation failed; request denied");
            return Err(ApiError::internal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "policy_error",
                "the access policy could not be evaluated; the request was refused",
            ));
        }
        return Err(ApiError::forbidden(
            "model_not_allowed",
            format!("you do not have access to the model `{}`", short(&req.model)),
        )
        .with_param("model"));
    }
    if let Ok(mut t) = trail.lock() {
        t.policies = decision.policies.clone();
    }

    // 4. Whether they may now.
    let limits = &rt.config.limits;
    if let Some(max) = limits.max_prompt_tokens {
        if req.prompt_tokens > max {
            return Err(ApiError::invalid_request(
                "context_length_exceeded",
                format!(
                    "the prompt has {} tokens; this gateway accepts at most {max}",
                    req.prompt_tokens
                ),
            ));
        }
    }
    req.check_caps(limits)?;
    if let Some(cap) = limits.max_tokens_cap {
        req.cap_max_tokens(cap);
    }
    let key_quota = caller.key_limits.unwrap_or(limits.per_key);
    let mut subjects = Vec::with_capacity(3);
    if let Some(id) = caller.key_id.as_deref() {
        subjects.push(Subject {
            scope: Scope::Key,
            id,
            quota: key_quota,
        });
    }
    subjects.push(Subject {
        scope: Scope::User,
        id: caller.principal.user(),
        quota: limits.per_user,
    });
    subjects.push(Subject {
        scope: Scope::Model,
        id: &route.name,
        quota: route.limits,
    });
    let budgets = &rt.config.budgets;
    let reservation = match route.price {
        Some(price) => {
            let mut capped = Vec::with_capacity(3);
            if let Some(id) = caller.key_id.as_deref() {
                capped.push((Scope::Key, id, caller.key_budget.unwrap_or(budgets.per_key)));
            }
            capped.push((Scope::User, caller.principal.user(), budgets.per_user));
            capped.push((Scope::Model, route.name.as_str(), budgets.per_model));
            // Groups with a budget of their own share it among their members.
            if let rampart_policy::Principal::User { groups, .. } = &caller.principal {
                for g in groups {
                    if let Some(b) = budgets.groups.get(g) {
                        capped.push((Scope::Group, g.as_str(), *b));
                    }
                }
            }
            // What this exchange can cost as far as is known before it runs.
            let estimate = price.micros(req.prompt_tokens, 0, req.max_tokens().unwrap_or(0));
            Some(
                gw.budgets
                    .admit(&capped, estimate, now())
                    .map_err(|o| ApiError::rate_limited("budget_exceeded", o.message, o.retry_after))?,
            )
        }
        None => None,
    };
    let permit = gw
        .limiter
        .admit(&subjects, req.prompt_tokens)
        .map_err(|r| ApiError::rate_limited(r.code, r.message, r.retry_after).with_headers(r.headers))?;
    let inflight = InFlight::enter(&gw);
    gw.metrics.add_tokens(&route.name, "prompt", req.prompt_tokens);

    // What a tool call's approval is bound to, and whether untrusted content came in: read
    // from the conversation as the client sent it (the input guard may rewrite it).
    let talks = matches!(endpoint, Endpoint::Chat | Endpoint::Responses);
    let conversation = (talks && rt.tools.is_some()).then(|| {
        (
            crate::approvals::conversation_hash(&req.body),
            tools::tainted(&req.body),
        )
    });

    // The Responses API echoes `instructions` in its answers: the client gets back its own,
    // never the operator's system prompt and canary that the guard puts there.
    let echo = (endpoint == Endpoint::Responses)
        .then(|| req.body.get("instructions").cloned().unwrap_or(serde_json::Value::Null));

    // 4b. What it says.
    let scan = if rt.config.scan.enabled {
        let policy = rt.config.scan.resolve(
            &req.model,
            caller.principal.user(),
            caller.key_id.as_deref(),
            caller.kind,
        );
        let prescanned = match gw.semantic.as_ref() {
            Some(b) if policy.input.injection.semantic != rampart_policy::SemanticMode::Off => {
                guard::prescan(&gw, b, &rt.config.scan, &policy, &req).await?
            }
            _ => guard::Prescanned::default(),
        };
        Some(guard::guard_request(
            &gw,
            &rt.config.scan,
            policy,
            &mut req,
            &trail,
            &prescanned,
        )?)
    } else {
        None
    };

    // 4c. What the answer's tool calls will be checked against (and whether untrusted
    // content is in the exchange).
    let tool_check = if let Some((conversation, tainted)) = conversation {
        let approval = headers
            .get(crate::approvals::HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        tools::ToolCheck::new(
            gw.clone(),
            rt.clone(),
            caller.principal.clone(),
            &req.model,
            conversation,
            tainted,
            trail.clone(),
            &rid.0,
            approval,
        )
    } else {
        None
    };

    // 5. Ask the model.
    if audit::keeps_bodies(&gw) {
        if let Ok(mut t) = trail.lock() {
            t.request_body = Some(serde_json::Value::Object(req.body.clone()));
        }
    }
    let asked = std::time::Instant::now();
    let (resp, upstream) = send::send(&gw, &route, &req, &rid).await?;
    if let Ok(mut t) = trail.lock() {
        t.upstream = Some(upstream.name.clone());
        t.upstream_model = route
            .targets
            .iter()
            .find(|(u, _)| Arc::ptr_eq(u, &upstream))
            .map(|(_, m)| m.clone());
        t.upstream_status = Some(resp.status().as_u16());
        t.upstream_ms = Some(asked.elapsed().as_millis() as u64);
    }

    // 6. Relay the answer, saying which upstream gave it (after a failover, not the first).
    let served_by = http::HeaderValue::from_str(&upstream.name).ok();
    let exchange = Exchange {
        gw: gw.clone(),
        rid,
        caller,
        policies: decision.policies,
        route,
        upstream,
        permit,
        reservation,
        inflight,
        prompt_tokens: req.prompt_tokens,
        scan,
        trail,
        tools: tool_check,
        echo,
    };
    let relayed = if req.stream {
        stream::relay(
            exchange,
            endpoint,
            resp,
            !req.client_wants_stream_usage && endpoint == Endpoint::Chat,
        )
        .await
    } else {
        buffered::relay(exchange, endpoint, resp).await
    };
    let Some(served_by) = served_by else {
        return relayed;
    };
    match relayed {
        Ok(mut r) => {
            r.headers_mut().insert(UPSTREAM_HEADER, served_by);
            Ok(r)
        }
        Err(e) => Err(e.with_header(UPSTREAM_HEADER, served_by)),
    }
}

/// The upstream (by its name in the config) that answered: after a failover, the one that
/// took over.
pub const UPSTREAM_HEADER: http::HeaderName = http::HeaderName::from_static("x-rampart-upstream");

/// The kill switch for one exchange: a block on the caller's key or user, on the model name
/// asked for, on any other name that resolves to one of the same upstream models, or on the
/// upstream model itself (`upstream/model` or the model id). Blocking a name blocks what it
/// resolves to, so an alias cannot keep a blocked model open.
pub fn blocked(
    gw: &Gateway,
    rt: &Runtime,
    caller: &Caller,
    asked: &str,
    route: &crate::state::Route,
) -> Option<crate::blocks::BlockKind> {
    let (key, user) = (caller.key_id.as_deref(), caller.principal.user());
    if gw.blocks.is_empty() {
        return None;
    }
    let same = |other: &crate::state::Route| {
        other.targets.iter().any(|(u, m)| {
            route
                .targets
                .iter()
                .any(|(ru, rm)| m == rm && (Arc::ptr_eq(u, ru) || u.name == ru.name))
        })
    };
    let aliases: Vec<&str> = rt
        .routes
        .values()
        .filter(|r| r.name != asked && same(r))
        .map(|r| r.name.as_str())
        .collect();
    let upstream_models: Vec<String> = route
        .targets
        .iter()
        .flat_map(|(u, m)| [m.clone(), format!("{}/{m}", u.name)])
        .collect();
    gw.blocks.check_all(
        key,
        user,
        std::iter::once(asked)
            .chain(aliases)
            .chain(upstream_models.iter().map(String::as_str)),
    )
}

/// One admitted exchange, as the relay stage receives it: who asked, which policies allowed
/// it, where it went and what it holds (its limits permit, the in-flight gauge). The relay adds
/// the usage; later stages (output scanners, the audit ledger) read it from here.
pub(crate) struct Exchange {
    gw: Arc<Gateway>,
    rid: RequestId,
    caller: Caller,
    policies: Vec<String>,
    route: Arc<crate::state::Route>,
    upstream: Arc<crate::upstream::Upstream>,
    permit: crate::limits::Permit,
    /// What it holds against budgets, and whom its cost is charged to.
    reservation: Option<crate::budgets::Reservation>,
    #[allow(dead_code, reason = "held for its Drop, which lowers the in-flight gauge")]
    inflight: InFlight,
    prompt_tokens: u64,
    /// Scanner state: policy, output context, pseudonyms, findings.
    scan: Option<guard::ScanState>,
    /// What the ledger will record.
    trail: SharedTrail,
    /// The tool guard on the answer's tool calls, when `[agent]` lists tools.
    tools: Option<tools::ToolCheck>,
    /// For the Responses API: the `instructions` the client sent, which its answers echo.
    echo: Option<serde_json::Value>,
}

impl Exchange {
    /// Whether the exchange may still deliver its answer: refused when its key was revoked,
    /// or a block applies, since it was admitted (both relays ask while they relay).
    fn still_allowed(&self) -> Result<(), ApiError> {
        let revoked = self
            .caller
            .key_id
            .as_deref()
            .is_some_and(|id| !self.gw.keys.usable(id, now()));
        if revoked {
            return Err(ApiError::unauthenticated(
                "api_key_revoked",
                "the API key was revoked while the request was in flight",
            ));
        }
        let rt = self.gw.runtime.load();
        match blocked(&self.gw, &rt, &self.caller, &self.route.name, &self.route) {
            Some(kind) => Err(ApiError::forbidden(
                "blocked",
                format!("access was blocked by an administrator while the request was in flight ({kind})"),
            )),
            None => Ok(()),
        }
    }

    /// Charges usage once the upstream reports (or the relay estimated) it.
    fn account(&self, upstream_prompt: Option<u64>, cached: u64, completion: u64) {
        if let Ok(mut t) = self.trail.lock() {
            if let Some(p) = upstream_prompt {
                t.prompt_tokens = p;
            }
            t.completion_tokens = Some(completion);
        }
        let correction = upstream_prompt.map_or(0, |p| p as i64 - self.prompt_tokens as i64);
        self.permit.charge(completion as i64 + correction);
        self.gw.metrics.add_tokens(&self.route.name, "completion", completion);
        if let (Some(price), Some(reservation)) = (self.route.price, self.reservation.as_ref()) {
            let micros = price.micros(upstream_prompt.unwrap_or(self.prompt_tokens), cached, completion);
            reservation.charge(micros, now());
            self.gw
                .metrics
                .spend
                .get_or_create(&crate::metrics::ModelLabels {
                    model: self.route.name.clone(),
                })
                .inc_by(crate::budgets::dollars(micros));
        }
        tracing::debug!(
            request_id = %self.rid.0,
            user = self.caller.principal.user(),
            key = self.caller.key_id.as_deref().unwrap_or("-"),
            model = %self.route.name,
            upstream = %self.upstream.name,
            policies = ?self.policies,
            findings = ?self.scan.as_ref().map(guard::ScanState::summary).unwrap_or_default(),
            prompt_tokens = upstream_prompt.unwrap_or(self.prompt_tokens),
            completion_tokens = completion,
            "exchange complete"
        );
    }
}

/// User input quoted in messages is cut short.
fn short(s: &str) -> String {
    let mut out: String = s.chars().take(64).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Maps an upstream's non-2xx answer to Rampart's error.
fn upstream_status_error(x: &Exchange, status: StatusCode, body: &[u8], headers: &HeaderMap) -> ApiError {
    let (gw, upstream) = (&*x.gw, x.upstream.name.as_str());
    // The upstream's message reaches the client inside Rampart's error, so it is output
    // like any other: it is dropped if any output detector finds anything in it (an
    // upstream that echoes the prompt, the canary or a key in its errors).
    let upstream_message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("error")
                .and_then(|e| e.get("message"))
                .and_then(|m| m.as_str())
                .map(|s| short_text(s, 300))
        })
        .filter(|m| {
            let ctx = x.scan.as_ref().map(|s| &s.ctx);
            let default = rampart_scan::OutputContext::default();
            gw.scanner.scan_output(m, ctx.unwrap_or(&default)).is_empty()
        });
    match status.as_u16() {
        401 | 403 => {
            gw.metrics.upstream_error(upstream, "auth");
            tracing::warn!(upstream, %status, "upstream refused the gateway's credentials");
            ApiError::upstream(
                StatusCode::BAD_GATEWAY,
                "upstream_auth_failed",
                "the model API refused the gateway's credentials",
            )
        }
        429 => {
            gw.metrics.upstream_error(upstream, "rate_limited");
            let retry = headers
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1);
            ApiError::rate_limited(
                "upstream_rate_limited",
                "the model API is rate limiting this gateway",
                std::time::Duration::from_secs(retry),
            )
        }
        400 | 404 | 409 | 413 | 422 => {
            gw.metrics.upstream_error(upstream, "rejected");
            let msg = match upstream_message {
                Some(m) => format!("the model API rejected the request: {m}"),
                None => "the model API rejected the request".into(),
            };
            ApiError::upstream(status, "upstream_rejected_request", msg)
        }
        _ => {
            gw.metrics.upstream_error(upstream, "status_error");
            ApiError::upstream(
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                format!("the model API failed (status {})", status.as_u16()),
            )
        }
    }
}

fn short_text(s: &str, n: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(n).collect()
}
