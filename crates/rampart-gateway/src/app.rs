//! The router and its layers, in one place.
//!
//! Layer order (outermost first): `observe` gives every request its id, renders any
//! [`ApiError`] with that id, sets `x-request-id`, records metrics and writes the access log.
//! Handlers are thin: they hand the request to `proxy` or `admin`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use http::{HeaderMap, HeaderValue, StatusCode};
use rampart_policy::Action;
use serde_json::json;

use crate::error::{ApiError, Cause, RenderedError};
use crate::metrics::{CodeLabels, RequestLabels, RouteLabels};
use crate::openai::Endpoint;
use crate::proxy::{self, RequestId};
use crate::state::Gateway;

/// The whole HTTP surface of the gateway.
pub fn app(gw: Arc<Gateway>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/completions", post(completions))
        .route("/v1/embeddings", post(embeddings))
        .route("/v1/responses", post(responses))
        .route("/v1/models", get(models))
        .route("/v1/models/{*id}", get(model))
        .route(
            "/mcp/{server}",
            post(crate::mcp::post).get(crate::mcp::get).delete(crate::mcp::delete),
        )
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .nest("/admin", crate::admin::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(gw.clone(), observe))
        .with_state(gw)
}

fn route_label(path: &str) -> &'static str {
    match path {
        "/v1/chat/completions" => "chat",
        "/v1/completions" => "completions",
        "/v1/embeddings" => "embeddings",
        "/v1/responses" => "responses",
        "/v1/models" => "models",
        p if p.starts_with("/v1/models/") => "models",
        "/healthz" | "/readyz" => "health",
        "/metrics" => "metrics",
        p if p.starts_with("/admin/") => "admin",
        _ => "other",
    }
}

async fn observe(State(gw): State<Arc<Gateway>>, mut req: Request, next: Next) -> Response {
    let rid = RequestId::new();
    req.extensions_mut().insert(rid.clone());
    let route = route_label(req.uri().path());
    let method = req.method().clone();
    let started = Instant::now();
    let mut resp = next.run(req).await;
    let mut cause = None;
    if let Some(err) = resp.extensions_mut().remove::<ApiError>() {
        cause = Some(err.cause());
        resp = err.into_response_with_id(&rid.0);
    }
    if let Ok(v) = HeaderValue::from_str(&rid.0) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let elapsed = started.elapsed();
    let status = resp.status();
    let code = resp.extensions().get::<RenderedError>().map(|e| e.0);
    gw.metrics
        .requests
        .get_or_create(&RequestLabels {
            route,
            status: status.as_u16(),
        })
        .inc();
    gw.metrics
        .latency
        .get_or_create(&RouteLabels { route })
        .observe(elapsed.as_secs_f64());
    if let Some(code) = code {
        gw.metrics.refusals.get_or_create(&CodeLabels { code }).inc();
    }
    let micros = elapsed.as_micros() as u64;
    // Inference exchanges have their own, richer access line (`rampart::access`).
    let exchange = matches!(route, "chat" | "completions" | "embeddings" | "responses");
    match (cause, code) {
        _ if exchange => {
            tracing::debug!(request_id = %rid.0, %method, route, status = status.as_u16(), micros, "request")
        }
        (Some(Cause::Upstream | Cause::Internal), Some(code)) => {
            tracing::warn!(request_id = %rid.0, %method, route, status = status.as_u16(), code, micros, "request failed")
        }
        (_, Some(code)) => {
            tracing::info!(request_id = %rid.0, %method, route, status = status.as_u16(), code, micros, "request refused")
        }
        _ => {
            tracing::debug!(request_id = %rid.0, %method, route, status = status.as_u16(), micros, "request")
        }
    }
    resp
}

async fn chat(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    client: Option<Extension<crate::auth::flood::ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    proxy::inference(gw, Endpoint::Chat, rid, client.map(|c| c.0 .0), headers, body).await
}

async fn completions(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    client: Option<Extension<crate::auth::flood::ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    proxy::inference(gw, Endpoint::Completions, rid, client.map(|c| c.0 .0), headers, body).await
}

async fn embeddings(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    client: Option<Extension<crate::auth::flood::ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    proxy::inference(gw, Endpoint::Embeddings, rid, client.map(|c| c.0 .0), headers, body).await
}

async fn responses(
    State(gw): State<Arc<Gateway>>,
    Extension(rid): Extension<RequestId>,
    client: Option<Extension<crate::auth::flood::ClientAddr>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    proxy::inference(gw, Endpoint::Responses, rid, client.map(|c| c.0 .0), headers, body).await
}

/// The models this caller may use and that are not blocked, sorted.
async fn visible_models(
    gw: &Gateway,
    client: Option<Extension<crate::auth::flood::ClientAddr>>,
    headers: &HeaderMap,
) -> Result<(Vec<String>, i64), ApiError> {
    let rt = gw.runtime.load_full();
    let client = client.map(|c| c.0 .0);
    let caller = proxy::authenticate_throttled(gw, &rt, client, headers).await?;
    let mut names: Vec<String> = rt
        .routes
        .iter()
        .filter(|(m, route)| proxy::blocked(gw, &rt, &caller, m, route).is_none())
        .map(|(m, _)| m)
        .filter(|m| {
            [Action::Chat, Action::Complete, Action::Embed]
                .into_iter()
                .any(|a| rt.policy.authorize(&caller.principal, a, m).allowed())
        })
        .cloned()
        .collect();
    names.sort();
    Ok((names, rt.loaded_at))
}

fn model_object(name: &str, created: i64) -> serde_json::Value {
    json!({"id": name, "object": "model", "created": created, "owned_by": "rampart"})
}

/// Only the models this caller may use, and not blocked ones.
async fn models(
    State(gw): State<Arc<Gateway>>,
    client: Option<Extension<crate::auth::flood::ClientAddr>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (names, created) = visible_models(&gw, client, &headers).await?;
    let data: Vec<_> = names.iter().map(|n| model_object(n, created)).collect();
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

/// One model, as `GET /v1/models/{id}` (ids may hold slashes). A model the caller may not
/// use reads as one that does not exist, as in the list.
async fn model(
    State(gw): State<Arc<Gateway>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    client: Option<Extension<crate::auth::flood::ClientAddr>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (names, created) = visible_models(&gw, client, &headers).await?;
    match names.iter().find(|n| **n == id) {
        Some(n) => Ok(Json(model_object(n, created)).into_response()),
        None => Err(ApiError::not_found(
            "model_not_found",
            format!(
                "the model `{}` does not exist or you do not have access to it",
                id.chars().take(64).collect::<String>()
            ),
        )
        .with_param("model")),
    }
}

async fn healthz() -> Response {
    Json(json!({"status": "ok"})).into_response()
}

async fn readyz(State(gw): State<Arc<Gateway>>) -> Response {
    let store = gw.store.clone();
    let ok = matches!(tokio::task::spawn_blocking(move || store.ping()).await, Ok(Ok(())));
    if let Some(l) = gw.audit.as_ref().filter(|l| !l.healthy()) {
        let reason = l.health().last_error.unwrap_or_default();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": format!("audit ledger cannot write: {reason}")})),
        )
            .into_response();
    }
    if ok {
        Json(json!({"status": "ready"})).into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "not ready", "reason": "database unavailable"})),
        )
            .into_response()
    }
}

async fn metrics(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let rt = gw.runtime.load_full();
    if rt.config.server.metrics_require_admin {
        let caller = proxy::authenticate(&gw, &rt, &headers).await?;
        if !rt.policy.authorize(&caller.principal, Action::AdminRead, "").allowed() {
            return Err(ApiError::forbidden(
                "admin_forbidden",
                "metrics need an admin credential",
            ));
        }
    }
    if let Some(l) = &gw.audit {
        let h = l.health();
        gw.metrics.audit_queue_depth.set(h.queue_depth as i64);
        gw.metrics.audit_up.set(i64::from(h.healthy));
    }
    for gate in &gw.runtime.load().gates {
        gw.metrics
            .upstream_enabled
            .get_or_create(&crate::metrics::UpstreamNameLabels {
                upstream: gate.upstream.clone(),
            })
            .set(i64::from(gate.enabled));
    }
    let accept = headers.get(http::header::ACCEPT).and_then(|v| v.to_str().ok());
    let (content_type, body) = if crate::metrics::wants_openmetrics(accept) {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            gw.metrics.encode(),
        )
    } else {
        (
            "text/plain; version=0.0.4; charset=utf-8",
            crate::metrics::to_prometheus_text(&gw.metrics.encode()),
        )
    };
    Ok(([(http::header::CONTENT_TYPE, content_type)], body).into_response())
}

async fn not_found() -> ApiError {
    ApiError::not_found("unknown_route", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}
