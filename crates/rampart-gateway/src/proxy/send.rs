//! Sending to the model's targets in failover order.
//!
//! A target is skipped for the next one when it cannot be reached (after its own connection
//! retries) or answers 502/503/504. A timeout is not failed over: the request may be running
//! upstream, and the client decides whether to pay for it twice.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;

use crate::error::ApiError;
use crate::metrics::UpstreamNameLabels;
use crate::openai::InferenceRequest;
use crate::state::{Gateway, Route};
use crate::upstream::{Upstream, UpstreamError};

use super::RequestId;

pub(super) async fn send(
    gw: &Gateway,
    route: &Route,
    req: &InferenceRequest,
    rid: &RequestId,
) -> Result<(reqwest::Response, Arc<Upstream>), ApiError> {
    let unavailable = || {
        ApiError::upstream(
            StatusCode::BAD_GATEWAY,
            "upstream_unavailable",
            "no upstream serving this model could be reached",
        )
    };
    if route.targets.is_empty() && !route.disabled.is_empty() {
        return Err(ApiError::upstream(
            StatusCode::SERVICE_UNAVAILABLE,
            "model_unverified",
            format!(
                "model `{}` is unavailable: upstream `{}` is disabled because the model files it serves do not match their signature",
                route.name,
                route.disabled.join("`, `")
            ),
        ));
    }
    let mut last = unavailable();
    let count = route.targets.len();
    for (i, (upstream, model)) in route.targets.iter().enumerate() {
        let more = i + 1 < count;
        let body = Bytes::from(req.upstream_body(model)?);
        let started = Instant::now();
        match upstream.post(req.endpoint, body, &rid.0).await {
            Ok(resp) => {
                gw.metrics
                    .upstream_latency
                    .get_or_create(&UpstreamNameLabels {
                        upstream: upstream.name.clone(),
                    })
                    .observe(started.elapsed().as_secs_f64());
                let status = resp.status().as_u16();
                if matches!(status, 502..=504) && more {
                    gw.metrics.upstream_error(&upstream.name, "status_5xx");
                    gw.metrics.failovers.inc();
                    tracing::warn!(request_id = %rid.0, upstream = %upstream.name, status, "upstream unavailable; failing over");
                    continue;
                }
                return Ok((resp, upstream.clone()));
            }
            Err(UpstreamError::Connect(_)) => {
                gw.metrics.upstream_error(&upstream.name, "connect");
                tracing::warn!(request_id = %rid.0, upstream = %upstream.name, "cannot connect to upstream");
                last = unavailable();
                if more {
                    gw.metrics.failovers.inc();
                }
            }
            Err(UpstreamError::Timeout(_)) => {
                gw.metrics.upstream_error(&upstream.name, "timeout");
                return Err(ApiError::upstream(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "the model API did not answer in time",
                ));
            }
            Err(e) => {
                gw.metrics.upstream_error(&upstream.name, "request_failed");
                tracing::warn!(request_id = %rid.0, error = %e, "upstream request failed");
                return Err(ApiError::upstream(
                    StatusCode::BAD_GATEWAY,
                    "upstream_error",
                    "the model API request failed",
                ));
            }
        }
    }
    Err(last)
}
