//! Relaying a non-streamed answer: read it whole (bounded, with the idle timeout), check it is
//! the JSON the endpoint promises, charge usage, and only then send it on.

use axum::body::Body;
use axum::response::Response;
use bytes::{Bytes, BytesMut};
use http::StatusCode;

use crate::error::ApiError;
use crate::openai::Endpoint;

use super::views::{self, Answer};
use super::{upstream_status_error, Exchange};

/// Largest upstream answer accepted (embeddings of big batches are the large case).
const MAX_UPSTREAM_BODY: usize = 64 * 1024 * 1024;

pub(super) async fn read_upstream(x: &Exchange, mut resp: reqwest::Response) -> Result<Bytes, ApiError> {
    let mut buf = BytesMut::new();
    loop {
        match tokio::time::timeout(x.upstream.idle_timeout, resp.chunk()).await {
            Err(_) => {
                x.gw.metrics.upstream_error(&x.upstream.name, "timeout");
                return Err(ApiError::upstream(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    "the model API stopped sending its answer",
                ));
            }
            Ok(Ok(Some(chunk))) => {
                if buf.len() + chunk.len() > MAX_UPSTREAM_BODY {
                    x.gw.metrics.upstream_error(&x.upstream.name, "too_large");
                    return Err(ApiError::upstream(
                        StatusCode::BAD_GATEWAY,
                        "upstream_invalid_response",
                        "the model API's answer is too large",
                    ));
                }
                buf.extend_from_slice(&chunk);
            }
            Ok(Ok(None)) => return Ok(buf.freeze()),
            Ok(Err(_)) => {
                x.gw.metrics.upstream_error(&x.upstream.name, "body_broken");
                return Err(ApiError::upstream(
                    StatusCode::BAD_GATEWAY,
                    "upstream_invalid_response",
                    "the model API's answer was cut off",
                ));
            }
        }
    }
}

pub(super) async fn relay(mut x: Exchange, endpoint: Endpoint, resp: reqwest::Response) -> Result<Response, ApiError> {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = read_upstream(&x, resp).await?;
    // A block or revocation that came while the upstream was answering stops the answer.
    x.still_allowed()?;
    if !status.is_success() {
        return Err(upstream_status_error(&x, status, &body, &headers));
    }
    let invalid = |what: &str| {
        x.gw.metrics.upstream_error(&x.upstream.name, "invalid_response");
        ApiError::upstream(
            StatusCode::BAD_GATEWAY,
            "upstream_invalid_response",
            format!("the model API's answer is not valid: {what}"),
        )
    };
    let text = std::str::from_utf8(&body).map_err(|_| invalid("not UTF-8"))?;
    let answer: Answer = views::object(text).ok_or_else(|| invalid("not a JSON object of the expected shape"))?;
    let (listed, list) = match endpoint {
        Endpoint::Chat | Endpoint::Completions => (answer.choices.is_some(), "choices"),
        Endpoint::Embeddings => (answer.data.is_some(), "data"),
        Endpoint::Responses => (answer.output.is_some(), "output"),
    };
    if !listed {
        return Err(invalid(&format!("no `{list}` array")));
    }
    let usage = answer.usage.unwrap_or_default();
    let (prompt, completion) = (usage.prompt_tokens, usage.completion_tokens.unwrap_or(0));
    let cached = usage.cached();
    // Output scanners see the answer before the client does.
    let mut rewritten: Option<Bytes> = None;
    let mut echoed: Option<serde_json::Value> = None;
    if let Some(client) = x.echo.clone() {
        // The answer echoes the instructions the upstream got (the operator's system prompt
        // and the canary): the client gets its own back.
        let mut value: serde_json::Value =
            serde_json::from_str(text).map_err(|_| invalid("not a JSON object of the expected shape"))?;
        if let Some(o) = value.as_object_mut().filter(|o| o.contains_key("instructions")) {
            o.insert("instructions".into(), client);
        }
        echoed = Some(value);
    }
    {
        if let Some(state) = x.scan.as_mut().filter(|s| s.output_active()) {
            let mut value: serde_json::Value = match echoed.take() {
                Some(v) => v,
                None => serde_json::from_str(text).map_err(|_| invalid("not a JSON object of the expected shape"))?,
            };
            let guarded = super::guard::guard_answer(&x.gw, state, &mut value);
            state.to_trail(&x.trail);
            if let Err(blocked) = guarded {
                x.account(prompt, cached, completion);
                tracing::info!(request_id = %x.rid.0, code = blocked.code(), reason = %blocked.message("withheld"), "answer withheld by the output policy");
                return Err(blocked.error());
            }
            rewritten = Some(Bytes::from(
                serde_json::to_vec(&value).map_err(|_| invalid("cannot re-encode"))?,
            ));
        }
    }
    if let Some(value) = echoed {
        rewritten = Some(Bytes::from(
            serde_json::to_vec(&value).map_err(|_| invalid("cannot re-encode"))?,
        ));
    }
    // The answer's tool calls, before the application sees them.
    if let Some(tools) = &x.tools {
        let value: serde_json::Value = match &rewritten {
            Some(b) => serde_json::from_slice(b),
            None => serde_json::from_str(text),
        }
        .map_err(|_| invalid("not a JSON object of the expected shape"))?;
        if let Err(stopped) = tools.answer(&value).await {
            x.account(prompt, cached, completion);
            return Err(stopped.error());
        }
    }
    x.account(prompt, cached, completion);

    if let Ok(t) = x.trail.lock() {
        t.log_access("allowed", 200, None);
    }
    // On record before it goes out.
    if x.gw.audit.is_some() {
        let entry = {
            let keep = crate::audit::keeps_bodies(&x.gw);
            let answer = if keep {
                rewritten
                    .as_deref()
                    .or(Some(&body[..]))
                    .filter(|b| b.len() <= crate::audit::MAX_KEPT_TEXT)
                    .and_then(|b| serde_json::from_slice(b).ok())
            } else {
                None
            };
            match x.trail.lock() {
                Ok(mut t) => {
                    t.recorded = true;
                    t.response_body = answer;
                    let payload = t.payload(&x.gw);
                    Some(t.entry("complete", "allowed", 200, None, payload))
                }
                Err(_) => None,
            }
        };
        match entry {
            Some(e) => crate::audit::append(&x.gw, e).await?,
            None => return Err(crate::audit::unavailable()),
        }
    }

    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/json");
    for (k, v) in &x.permit.headers {
        builder = builder.header(k, v);
    }
    builder.body(Body::from(rewritten.unwrap_or(body))).map_err(|_| {
        ApiError::internal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "cannot build the response",
        )
    })
}
