//! The one error type that becomes an HTTP response: OpenAI's error JSON with a stable `code`.
//!
//! The client gets a short message that never contains secrets or prompt text; the request id
//! is added by the request-id layer (see `app.rs`), which sees the [`ApiError`] this module
//! leaves in the response's extensions.

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, StatusCode};
use serde_json::json;

/// Who caused an error: decides logging level and whether a retry can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The request was wrong or not allowed.
    Client,
    /// The model API failed.
    Upstream,
    /// Rampart itself failed (database, policy engine).
    Internal,
}

/// A refusal or failure, rendered as OpenAI error JSON.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    kind: &'static str,
    message: String,
    param: Option<String>,
    cause: Cause,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        code: &'static str,
        kind: &'static str,
        cause: Cause,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code,
            kind,
            message: message.into(),
            param: None,
            cause,
            headers: Vec::new(),
        }
    }

    /// 400: the body is not what the endpoint takes.
    pub fn invalid_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            code,
            "invalid_request_error",
            Cause::Client,
            message,
        )
    }

    /// 401: no or bad credentials.
    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            code,
            "authentication_error",
            Cause::Client,
            message,
        )
        .with_header(http::header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"))
    }

    /// 403: authenticated but not allowed.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, "permission_error", Cause::Client, message)
    }

    /// 404: unknown model or route.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            code,
            "invalid_request_error",
            Cause::Client,
            message,
        )
    }

    /// 405: the route exists but not for this method.
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "invalid_request_error",
            Cause::Client,
            "this endpoint does not accept that method",
        )
    }

    /// 408: the client was too slow to send its request.
    pub fn request_timeout(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            "invalid_request_error",
            Cause::Client,
            message,
        )
    }

    /// 413: the body is too large.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            "invalid_request_error",
            Cause::Client,
            message,
        )
    }

    /// 429 with `Retry-After`.
    pub fn rate_limited(code: &'static str, message: impl Into<String>, retry_after: Duration) -> Self {
        let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code,
            "rate_limit_error",
            Cause::Client,
            message,
        );
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            e.headers.push((http::header::RETRY_AFTER, v));
        }
        e
    }

    /// 502/504: the upstream failed.
    pub fn upstream(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, "upstream_error", Cause::Upstream, message)
    }

    /// 500/503: Rampart failed; fail closed.
    pub fn internal(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self::new(status, code, "server_error", Cause::Internal, message)
    }

    /// Names the offending request field.
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Adds several response headers.
    pub fn with_headers(mut self, headers: impl IntoIterator<Item = (HeaderName, HeaderValue)>) -> Self {
        self.headers.extend(headers);
        self
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// Who caused it.
    pub fn cause(&self) -> Cause {
        self.cause
    }

    /// The client-facing message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The OpenAI error object, with the request id when known.
    pub fn body(&self, request_id: Option<&str>) -> serde_json::Value {
        let mut error = json!({
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        });
        if let (Some(id), Some(obj)) = (request_id, error.as_object_mut()) {
            obj.insert("request_id".into(), json!(id));
        }
        json!({ "error": error })
    }

    /// Renders with the request id in the body.
    pub fn into_response_with_id(self, request_id: &str) -> Response {
        let body = self.body(Some(request_id)).to_string();
        let mut resp = (self.status, [(http::header::CONTENT_TYPE, "application/json")], body).into_response();
        for (k, v) in &self.headers {
            resp.headers_mut().append(k.clone(), v.clone());
        }
        resp.extensions_mut().insert(RenderedError(self.code));
        resp
    }
}

/// Marks a response as an error already rendered with its request id, for metrics and logs.
#[derive(Debug, Clone, Copy)]
pub struct RenderedError(pub &'static str);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (
            self.status,
            [(http::header::CONTENT_TYPE, "application/json")],
            self.body(None).to_string(),
        )
            .into_response();
        for (k, v) in &self.headers {
            resp.headers_mut().append(k.clone(), v.clone());
        }
        resp.extensions_mut().insert(self);
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_openai_shaped() {
        let e = ApiError::invalid_request("invalid_json", "bad").with_param("messages");
        let b = e.body(Some("req_1"));
        assert_eq!(b["error"]["code"], "invalid_json");
        assert_eq!(b["error"]["type"], "invalid_request_error");
        assert_eq!(b["error"]["param"], "messages");
        assert_eq!(b["error"]["request_id"], "req_1");
    }

    #[test]
    fn retry_after_rounds_up() {
        let e = ApiError::rate_limited("rate_limited", "slow down", Duration::from_millis(1200));
        let v = e
            .headers
            .iter()
            .find(|(k, _)| k == http::header::RETRY_AFTER)
            .map(|(_, v)| v.clone());
        assert_eq!(v, Some(HeaderValue::from_static("2")));
    }
}
