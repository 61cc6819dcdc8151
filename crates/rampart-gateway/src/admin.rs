//! The admin API under `/admin`: keys, the kill switch, reloads and status.
//!
//! Every call is authenticated like inference and then authorized by Cedar against an admin
//! action (`admin.keys`, `admin.block`, `admin.reload`, `admin.read`), so who may administer
//! is policy, not code. Each change is written to the database before memory, and logged.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use http::{HeaderMap, StatusCode};
use rampart_policy::{Action, Quota};
use serde::Deserialize;
use serde_json::json;

use crate::auth::keys::NewKey;
use crate::auth::Caller;
use crate::blocks::{Block, BlockKind};
use crate::error::ApiError;
use crate::proxy::{authenticate, read_body, RequestId};
use crate::state::{now, ConfigSource, Gateway};
use crate::store::StoreError;

/// Admin routes (nested under `/admin`).
pub fn router() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/status", get(status))
        .route("/keys", get(list_keys).post(create_key))
        .route("/keys/{id}", delete(revoke_key))
        .route("/blocks", get(list_blocks).post(add_block))
        .route("/blocks/{kind}/{value}", delete(remove_block))
        .route("/reload", post(reload))
        .route("/spend", get(list_spend))
        .route("/mcp/pins", get(list_pins))
        .route("/mcp/pins/{server}/{tool}/approve", post(approve_pin))
        .route("/approvals", get(list_approvals))
        .route("/approvals/{id}", get(show_approval))
        .route("/approvals/{id}/{decision}", post(decide_approval))
        .merge(crate::audit::api::router())
}

async fn admit(gw: &Gateway, headers: &HeaderMap, action: Action) -> Result<Caller, ApiError> {
    let rt = gw.runtime.load_full();
    let caller = match authenticate(gw, &rt, headers).await {
        Ok(c) => c,
        Err(e) => return Err(denied(gw, "anonymous", action, e).await),
    };
    let decision = rt.policy.authorize(&caller.principal, action, "");
    if !decision.allowed() {
        let e = ApiError::forbidden(
            "admin_forbidden",
            format!("this credential may not perform `{}`", action.id()),
        );
        return Err(denied(gw, &who(&caller), action, e).await);
    }
    if action != Action::AdminRead {
        // A change that could not be recorded is not made.
        crate::audit::admit(gw)?;
    }
    Ok(caller)
}

/// A refused admin attempt is itself an audited event.
async fn denied(gw: &Gateway, actor: &str, action: Action, e: ApiError) -> ApiError {
    if gw.audit.as_ref().is_some_and(|l| l.healthy()) {
        let meta = json!({"attempted": action.id(), "code": e.code()});
        if let Err(unavailable) = crate::audit::admin(gw, actor, "admin.denied", meta).await {
            return unavailable;
        }
    }
    e
}

pub(crate) async fn admit_pub(gw: &Gateway, headers: &HeaderMap, action: Action) -> Result<Caller, ApiError> {
    admit(gw, headers, action).await
}

pub(crate) fn who(c: &Caller) -> String {
    c.principal.label()
}

fn store_error(e: StoreError) -> ApiError {
    tracing::error!(error = %e, "database failure in admin API");
    ApiError::internal(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage_unavailable",
        "the gateway's database is unavailable; nothing was changed",
    )
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(store_error),
        Err(_) => Err(ApiError::internal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "the operation failed",
        )),
    }
}

async fn json_body<T: serde::de::DeserializeOwned>(
    gw: &Gateway,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    let timeout = std::time::Duration::from_millis(gw.runtime.load().config.server.body_timeout_ms);
    let bytes = read_body(body, headers, 64 * 1024, timeout).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid_request("invalid_json", format!("invalid request body: {e}")))
}

async fn status(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let rt = gw.runtime.load_full();
    let mut models: Vec<&String> = rt.routes.keys().collect();
    models.sort();
    let config = match &gw.source {
        ConfigSource::Defaults => "embedded defaults".to_string(),
        ConfigSource::File(p) => p.display().to_string(),
    };
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": gw.started.elapsed().as_secs(),
        "config": config,
        "config_loaded_at": rt.loaded_at,
        "models": models,
        "signed_model_gates": rt.gates,
        "policies": rt.policy.len(),
        "keys": gw.keys.all().iter().filter(|k| k.revoked_at.is_none()).count(),
        "blocks": gw.store.blocks().map(|b| b.len()).unwrap_or(0),
        "audit": gw.audit.as_ref().map(|l| {
            let h = l.health();
            json!({"store": l.location().describe(), "chain": l.chain(), "healthy": h.healthy,
                   "last_error": h.last_error, "queue_depth": h.queue_depth, "records_appended": h.appended,
                   "checkpoints_signed": h.checkpoints, "checkpoint_public_key": l.public_key()})
        }),
    }))
    .into_response())
}

/// Spend per key, user and model this month (UTC), with the caps that apply.
async fn list_spend(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let rt = gw.runtime.load();
    let budgets = &rt.config.budgets;
    let own: std::collections::HashMap<String, rampart_policy::Budget> = gw
        .keys
        .all()
        .iter()
        .filter_map(|k| k.budget.map(|b| (k.id.clone(), b)))
        .collect();
    let data: Vec<_> = gw
        .budgets
        .all(now())
        .into_iter()
        .map(|(scope, id, today, month)| {
            let cap = match scope {
                crate::limits::Scope::Key => own.get(&id).copied().unwrap_or(budgets.per_key),
                crate::limits::Scope::User => budgets.per_user,
                crate::limits::Scope::Model => budgets.per_model,
                crate::limits::Scope::Group => budgets.groups.get(&id).copied().unwrap_or_default(),
            };
            json!({"scope": scope.as_str(), "id": id, "today_usd": crate::budgets::dollars(today),
                   "month_usd": crate::budgets::dollars(month), "daily_cap_usd": cap.daily_usd,
                   "monthly_cap_usd": cap.monthly_usd})
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

async fn list_keys(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let keys: Vec<_> = gw
        .keys
        .all()
        .iter()
        .map(|k| {
            let mut v = serde_json::to_value(k.as_ref()).unwrap_or_default();
            let (today, month) = gw.budgets.spent(crate::limits::Scope::Key, &k.id, now());
            if let Some(o) = v.as_object_mut() {
                o.insert(
                    "spend".into(),
                    json!({"today_usd": crate::budgets::dollars(today), "month_usd": crate::budgets::dollars(month)}),
                );
            }
            v
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": keys})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    owner: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    expires_in_days: Option<u32>,
    #[serde(default)]
    expires_at: Option<i64>,
    #[serde(default)]
    limits: Option<Quota>,
    #[serde(default)]
    admin: bool,
    /// `application` (default) or `end_user`.
    #[serde(default)]
    caller: rampart_policy::CallerKind,
    /// Its own spending caps instead of `[budgets] per_key`.
    #[serde(default)]
    budget: Option<rampart_policy::Budget>,
}

async fn create_key(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = admit(&gw, &headers, Action::AdminKeys).await?;
    let req: CreateKey = json_body(&gw, &headers, body).await?;
    if req.owner.trim().is_empty() || req.owner.len() > 256 {
        return Err(
            ApiError::invalid_request("invalid_value", "`owner` must be 1 to 256 characters").with_param("owner"),
        );
    }
    if let Some(b) = req.budget {
        if [b.daily_usd, b.monthly_usd]
            .iter()
            .flatten()
            .any(|x| !x.is_finite() || *x < 0.0)
        {
            return Err(ApiError::invalid_request(
                "invalid_value",
                "`budget` caps must be dollar amounts of 0 or more",
            )
            .with_param("budget"));
        }
    }
    let t = now();
    let expires_at = match (req.expires_in_days, req.expires_at) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid_request(
                "invalid_value",
                "give `expires_in_days` or `expires_at`, not both",
            ));
        }
        (Some(d), None) => Some(t + i64::from(d) * 86_400),
        (None, Some(at)) if at <= t => {
            return Err(
                ApiError::invalid_request("invalid_value", "`expires_at` is in the past").with_param("expires_at"),
            );
        }
        (None, at) => at,
    };
    let new = NewKey::generate(
        crate::auth::keys::KeySpec {
            owner: req.owner.trim().to_string(),
            name: req.name,
            models: req.models,
            admin: req.admin,
            expires_at,
            limits: req.limits,
            caller: req.caller,
            budget: req.budget,
        },
        t,
    );
    let record = new.record.clone();
    let store = gw.store.clone();
    blocking(move || store.insert_key(&record)).await?;
    gw.keys.put(new.record.clone());
    tracing::info!(request_id = %rid.0, admin = %who(&caller), key = %new.record.id, owner = %new.record.owner, "api key created");
    crate::audit::admin(
        &gw,
        &who(&caller),
        "key.create",
        json!({"request_id": &*rid.0, "key_id": new.record.id, "owner": new.record.owner, "admin": new.record.admin,
               "models": new.record.models, "expires_at": new.record.expires_at, "caller": new.record.caller,
               "budget": new.record.budget}),
    )
    .await?;
    let mut v = serde_json::to_value(&new.record).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        o.insert("key".into(), json!(new.secret.as_str()));
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

async fn revoke_key(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let caller = admit(&gw, &headers, Action::AdminKeys).await?;
    let t = now();
    let store = gw.store.clone();
    let key_id = id.clone();
    let revoked = blocking(move || store.revoke_key(&key_id, t)).await?;
    if !revoked {
        return Err(ApiError::not_found("key_not_found", "no live key has this id"));
    }
    gw.keys.revoke(&id, t);
    tracing::info!(request_id = %rid.0, admin = %who(&caller), key = %id, "api key revoked");
    crate::audit::admin(
        &gw,
        &who(&caller),
        "key.revoke",
        json!({"request_id": &*rid.0, "key_id": id}),
    )
    .await?;
    Ok(Json(json!({"id": id, "revoked_at": t})).into_response())
}

async fn list_blocks(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let store = gw.store.clone();
    let blocks = blocking(move || store.blocks()).await?;
    Ok(Json(json!({"object": "list", "data": blocks})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddBlock {
    kind: BlockKind,
    value: String,
    #[serde(default)]
    reason: String,
}

async fn add_block(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = admit(&gw, &headers, Action::AdminBlock).await?;
    let req: AddBlock = json_body(&gw, &headers, body).await?;
    if req.value.is_empty() {
        return Err(ApiError::invalid_request("invalid_value", "`value` must not be empty").with_param("value"));
    }
    let block = Block {
        kind: req.kind,
        value: req.value,
        reason: req.reason,
        created_at: now(),
    };
    let store = gw.store.clone();
    let stored = block.clone();
    blocking(move || store.put_block(&stored)).await?;
    gw.blocks.insert(block.kind, &block.value);
    tracing::warn!(request_id = %rid.0, admin = %who(&caller), kind = %block.kind, value = %block.value, "kill switch: blocked");
    crate::audit::admin(
        &gw,
        &who(&caller),
        "block.add",
        json!({"request_id": &*rid.0, "kind": block.kind, "value": block.value, "reason": block.reason}),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(block)).into_response())
}

async fn remove_block(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path((kind, value)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = admit(&gw, &headers, Action::AdminBlock).await?;
    let kind: BlockKind = kind
        .parse()
        .map_err(|e: String| ApiError::invalid_request("invalid_value", e))?;
    let store = gw.store.clone();
    let v = value.clone();
    let existed = blocking(move || store.delete_block(kind, &v)).await?;
    if !existed {
        return Err(ApiError::not_found("block_not_found", "no such block"));
    }
    gw.blocks.remove(kind, &value);
    tracing::warn!(request_id = %rid.0, admin = %who(&caller), %kind, %value, "kill switch: unblocked");
    crate::audit::admin(
        &gw,
        &who(&caller),
        "block.remove",
        json!({"request_id": &*rid.0, "kind": kind, "value": value}),
    )
    .await?;
    Ok(Json(json!({"kind": kind, "value": value, "unblocked": true})).into_response())
}

async fn reload(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = admit(&gw, &headers, Action::AdminReload).await?;
    match gw.reload(&who(&caller)).await {
        Ok(()) => {
            tracing::info!(admin = %who(&caller), "configuration reloaded through the admin API");
            Ok(Json(json!({"status": "reloaded", "loaded_at": gw.runtime.load().loaded_at})).into_response())
        }
        Err(e) => Err(ApiError::invalid_request(
            "config_invalid",
            format!("the new configuration was refused and the running one kept: {e}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct ApprovalQuery {
    status: Option<String>,
}

async fn list_approvals(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<ApprovalQuery>,
) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let store = gw.store.clone();
    let list = blocking(move || store.approvals(q.status.as_deref(), now())).await?;
    Ok(Json(json!({"object": "list", "data": list})).into_response())
}

async fn show_approval(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let store = gw.store.clone();
    match blocking(move || store.approval(&id, now())).await? {
        Some(a) => Ok(Json(a).into_response()),
        None => Err(ApiError::not_found("approval_not_found", "no such approval request")),
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Decide {
    #[serde(default)]
    reason: String,
}

/// `approve` or `deny` a pending request. Who decided, and why, goes into the ledger.
async fn decide_approval(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path((id, decision)): Path<(String, String)>,
    body: Body,
) -> Result<Response, ApiError> {
    let caller = admit(&gw, &headers, Action::AdminApprove).await?;
    let to = match decision.as_str() {
        "approve" => "approved",
        "deny" => "denied",
        _ => return Err(ApiError::not_found("not_found", "use /approve or /deny")),
    };
    let req: Decide = json_body(&gw, &headers, body).await.unwrap_or_default();
    let (store, by, reason, id2) = (gw.store.clone(), who(&caller), req.reason.clone(), id.clone());
    let changed = blocking(move || store.decide_approval(&id2, to, &by, &reason, now())).await?;
    let store = gw.store.clone();
    let id2 = id.clone();
    let current = blocking(move || store.approval(&id2, now())).await?;
    let Some(current) = current else {
        return Err(ApiError::not_found("approval_not_found", "no such approval request"));
    };
    if !changed {
        return Err(ApiError::invalid_request(
            "approval_not_pending",
            format!("approval {id} is {}, not pending", current.status),
        ));
    }
    tracing::warn!(request_id = %rid.0, admin = %who(&caller), approval = %id, tool = %current.tool, decision = to, "tool call {to}");
    crate::audit::admin(
        &gw,
        &who(&caller),
        if to == "approved" {
            "approval.approve"
        } else {
            "approval.deny"
        },
        json!({"request_id": &*rid.0, "approval": id, "tool": current.tool, "class": current.class,
               "principal": current.principal, "call_hash": current.call_hash, "reason": req.reason,
               "exchange": current.request_id}),
    )
    .await?;
    Ok(Json(current).into_response())
}

async fn list_pins(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let store = gw.store.clone();
    let pins = blocking(move || store.pins()).await?;
    Ok(Json(json!({"object": "list", "data": pins})).into_response())
}

/// Accepts an MCP tool's changed definition: the tool is shown again, with its new pin.
async fn approve_pin(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    headers: HeaderMap,
    Path((server, tool)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = admit(&gw, &headers, Action::AdminApprove).await?;
    let (store, s2, t2) = (gw.store.clone(), server.clone(), tool.clone());
    let changed = blocking(move || store.approve_pin(&s2, &t2, now())).await?;
    if !changed {
        return Err(ApiError::not_found(
            "pin_not_changed",
            "no changed definition to approve for this tool",
        ));
    }
    tracing::warn!(request_id = %rid.0, admin = %who(&caller), %server, %tool, "MCP tool definition re-approved");
    crate::audit::admin(
        &gw,
        &who(&caller),
        "mcp.pin.approve",
        json!({"request_id": &*rid.0, "server": server, "tool": tool}),
    )
    .await?;
    Ok(Json(json!({"server": server, "tool": tool, "approved": true})).into_response())
}
