//! The admin API over the ledger: search, streaming export (decrypted only for `admin.audit`),
//! erasure, checkpoints and verification.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use rampart_audit::backend::Filter;
use rampart_audit::export::{for_each, Renderer};
use rampart_audit::{AuditError, KeyProvider, Ledger};
use rampart_policy::Action;
use serde::Deserialize;
use serde_json::json;

use crate::admin::{admit_pub as admit, who};
use crate::error::ApiError;
use crate::state::Gateway;

/// `/audit/...` routes (nested under `/admin`).
pub fn router() -> Router<Arc<Gateway>> {
    Router::new()
        .route("/audit/records", get(records))
        .route("/audit/export", get(export))
        .route("/audit/erase", post(erase))
        .route("/audit/checkpoint", post(checkpoint))
        .route("/audit/verify", get(verify))
}

/// Query parameters shared by search and export.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Params {
    principal: Option<String>,
    subject: Option<String>,
    model: Option<String>,
    decision: Option<String>,
    finding: Option<String>,
    kind: Option<String>,
    chain: Option<String>,
    /// Unix milliseconds, inclusive.
    since: Option<i64>,
    /// Unix milliseconds, exclusive.
    until: Option<i64>,
    limit: Option<u64>,
    #[serde(default)]
    decrypt: bool,
}

impl Params {
    fn filter(&self) -> Filter {
        Filter {
            principal: self.principal.clone(),
            subject: self.subject.clone(),
            model: self.model.clone(),
            decision: self.decision.clone(),
            finding: self.finding.clone(),
            kind: self.kind.clone(),
            chain: self.chain.clone(),
            since_ms: self.since,
            until_ms: self.until,
        }
    }
}

fn ledger(gw: &Gateway) -> Result<Arc<Ledger>, ApiError> {
    gw.audit.clone().ok_or_else(|| {
        ApiError::not_found(
            "audit_disabled",
            "the audit ledger is disabled ([audit] enabled = false)",
        )
    })
}

fn storage(e: AuditError) -> ApiError {
    tracing::error!(error = %e, "audit read failed");
    ApiError::internal(
        StatusCode::SERVICE_UNAVAILABLE,
        "audit_unavailable",
        format!("the audit ledger cannot be read: {e}"),
    )
}

async fn keys_for(gw: &Gateway, headers: &HeaderMap, decrypt: bool) -> Result<Option<Arc<dyn KeyProvider>>, ApiError> {
    if !decrypt {
        return Ok(None);
    }
    admit(gw, headers, Action::AdminAudit).await?;
    let config = &gw.runtime.load().config.audit;
    match super::master_keys(config) {
        Ok(Some(k)) => Ok(Some(k)),
        Ok(None) => Err(ApiError::invalid_request(
            "no_master_key",
            "decryption needs the ledger's master key, and none is configured",
        )),
        Err(e) => Err(ApiError::internal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "master_key_error",
            e.to_string(),
        )),
    }
}

async fn records(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let keys = keys_for(&gw, &headers, p.decrypt).await?;
    let location = ledger(&gw)?.location().clone();
    let limit = p.limit.unwrap_or(100).min(1000);
    let filter = p.filter();
    let data = tokio::task::spawn_blocking(move || -> Result<Vec<serde_json::Value>, AuditError> {
        let mut backend = location.open()?;
        let mut renderer = Renderer::new(keys.as_deref());
        let mut out = Vec::new();
        for_each(backend.as_mut(), &filter, Some(limit), |b, r| {
            out.push(renderer.render(b, r)?);
            Ok(())
        })?;
        Ok(out)
    })
    .await
    .map_err(|_| storage(AuditError::Closed))?
    .map_err(storage)?;
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

async fn export(
    State(gw): State<Arc<Gateway>>,
    headers: HeaderMap,
    Query(p): Query<Params>,
) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let keys = keys_for(&gw, &headers, p.decrypt).await?;
    let location = ledger(&gw)?.location().clone();
    let filter = p.filter();
    let limit = p.limit;
    // A blocking reader feeds a small channel: the export streams at the client's pace and
    // never holds more than a few pages.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::task::spawn_blocking(move || {
        let result = (|| -> Result<u64, AuditError> {
            let mut backend = location.open()?;
            let mut renderer = Renderer::new(keys.as_deref());
            for_each(backend.as_mut(), &filter, limit, |b, r| {
                let mut line =
                    serde_json::to_vec(&renderer.render(b, r)?).map_err(|e| AuditError::Export(e.to_string()))?;
                line.push(b'\n');
                tx.blocking_send(Ok(Bytes::from(line)))
                    .map_err(|_| AuditError::Export("client went away".into()))
            })
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "audit export ended early");
            let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
        }
    });
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/x-ndjson")
        .body(Body::from_stream(stream))
        .map_err(|_| {
            ApiError::internal(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "cannot build the response",
            )
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Erase {
    subject: String,
}

async fn erase(State(gw): State<Arc<Gateway>>, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let caller = admit(&gw, &headers, Action::AdminAudit).await?;
    let timeout = std::time::Duration::from_millis(gw.runtime.load().config.server.body_timeout_ms);
    let bytes = crate::proxy::read_body(body, &headers, 64 * 1024, timeout).await?;
    let req: Erase = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid_request("invalid_json", format!("invalid request body: {e}")))?;
    if req.subject.is_empty() {
        return Err(ApiError::invalid_request("invalid_value", "`subject` must not be empty").with_param("subject"));
    }
    let n = ledger(&gw)?.erase(&req.subject, &who(&caller)).await.map_err(storage)?;
    tracing::warn!(admin = %who(&caller), subject = %req.subject, keys = n, "audit: data subject erased (keys destroyed)");
    Ok(Json(json!({"subject": req.subject, "keys_destroyed": n})).into_response())
}

async fn checkpoint(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminAudit).await?;
    let cp = ledger(&gw)?.checkpoint().await.map_err(storage)?;
    Ok(Json(json!({"checkpoint": cp})).into_response())
}

async fn verify(State(gw): State<Arc<Gateway>>, headers: HeaderMap) -> Result<Response, ApiError> {
    admit(&gw, &headers, Action::AdminRead).await?;
    let l = ledger(&gw)?;
    let location = l.location().clone();
    let public = rampart_audit::checkpoint::parse_public(l.public_key()).map_err(storage)?;
    let report = tokio::task::spawn_blocking(move || {
        let mut backend = location.open()?;
        rampart_audit::verify(backend.as_mut(), &[public], &[], |_| {})
    })
    .await
    .map_err(|_| storage(AuditError::Closed))?
    .map_err(storage)?;
    Ok(Json(json!({"ok": report.ok(), "report": report})).into_response())
}
