//! Clients for OpenAI-compatible upstreams: timeouts, connection-failure retries, and the
//! failover order of a model's targets.
//!
//! Only a failure to connect is retried: once a request has been sent it may have been
//! processed (and billed), so sending it again is the caller's decision, not Rampart's.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rampart_policy::{UpstreamConfig, UpstreamKind};
use zeroize::Zeroizing;

use crate::openai::Endpoint;

/// Why the upstream gave no response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum UpstreamError {
    /// No connection could be made (after retries).
    #[error("cannot connect to upstream `{0}`")]
    Connect(String),
    /// No response headers within `timeout_ms`.
    #[error("upstream `{0}` did not answer in time")]
    Timeout(String),
    /// The request failed after it was sent.
    #[error("upstream `{0}` failed: {1}")]
    Failed(String, String),
}

/// The upstream's API key could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialError {
    /// The named environment variable is not set.
    #[error("upstream `{upstream}`: environment variable `{var}` is not set")]
    MissingEnv {
        /// Upstream name.
        upstream: String,
        /// Variable.
        var: String,
    },
    /// The key file cannot be read.
    #[error("upstream `{upstream}`: cannot read key file `{path}`: {reason}")]
    File {
        /// Upstream name.
        upstream: String,
        /// Path.
        path: String,
        /// Why.
        reason: String,
    },
    /// The base URL does not parse.
    #[error("upstream `{0}`: invalid base URL: {1}")]
    Url(String, String),
    /// The HTTP client cannot be built.
    #[error("upstream `{0}`: cannot build HTTP client: {1}")]
    Client(String, String),
}

/// One upstream, ready to send.
pub struct Upstream {
    /// Its configured name.
    pub name: String,
    base_url: String,
    /// One parsed URL per endpoint, so requests do not parse URLs.
    urls: [reqwest::Url; 4],
    api_key: Option<Zeroizing<String>>,
    client: reqwest::Client,
    timeout: Duration,
    /// Longest silence allowed between two body chunks.
    pub idle_timeout: Duration,
    retries: u32,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("base_url", &self.base_url)
            .finish()
    }
}

impl Upstream {
    /// Builds a client from config; `demo_base` is the built-in demo model's URL.
    pub fn build(cfg: &UpstreamConfig, demo_base: Option<&str>) -> Result<Arc<Upstream>, CredentialError> {
        let name = cfg.name.get_ref().clone();
        let base_url = match cfg.kind {
            UpstreamKind::Demo => demo_base.unwrap_or("http://127.0.0.1:9/v1").to_string(),
            UpstreamKind::Openai => cfg.base_url.as_ref().map(|u| u.get_ref().clone()).unwrap_or_default(),
        };
        let api_key = if let Some(var) = &cfg.api_key_env {
            let v = std::env::var(var).map_err(|_| CredentialError::MissingEnv {
                upstream: name.clone(),
                var: var.clone(),
            })?;
            Some(Zeroizing::new(v.trim().to_string()))
        } else if let Some(path) = &cfg.api_key_file {
            let v = std::fs::read_to_string(path).map_err(|e| CredentialError::File {
                upstream: name.clone(),
                path: path.clone(),
                reason: e.to_string(),
            })?;
            Some(Zeroizing::new(v.trim().to_string()))
        } else {
            None
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| CredentialError::Client(name.clone(), e.to_string()))?;
        let base_url = base_url.trim_end_matches('/').to_string();
        let url = |e: Endpoint| {
            reqwest::Url::parse(&format!("{base_url}{}", e.path()))
                .map_err(|err| CredentialError::Url(name.clone(), err.to_string()))
        };
        let urls = [
            url(Endpoint::Chat)?,
            url(Endpoint::Completions)?,
            url(Endpoint::Embeddings)?,
            url(Endpoint::Responses)?,
        ];
        Ok(Arc::new(Upstream {
            name,
            urls,
            base_url,
            api_key,
            client,
            timeout: Duration::from_millis(cfg.timeout_ms),
            idle_timeout: Duration::from_millis(cfg.idle_timeout_ms),
            retries: cfg.retries,
        }))
    }

    /// POSTs a JSON body to the endpoint, retrying connection failures, and returns once the
    /// response headers are in.
    pub async fn post(
        &self,
        endpoint: Endpoint,
        body: Bytes,
        request_id: &str,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url = match endpoint {
            Endpoint::Chat => &self.urls[0],
            Endpoint::Completions => &self.urls[1],
            Endpoint::Embeddings => &self.urls[2],
            Endpoint::Responses => &self.urls[3],
        };
        let mut attempt = 0;
        loop {
            let mut req = self
                .client
                .post(url.clone())
                .header(http::header::CONTENT_TYPE, "application/json")
                .header("x-request-id", request_id)
                .body(body.clone());
            if let Some(key) = &self.api_key {
                req = req.bearer_auth(key.as_str());
            }
            match tokio::time::timeout(self.timeout, req.send()).await {
                Err(_) => return Err(UpstreamError::Timeout(self.name.clone())),
                Ok(Ok(resp)) => return Ok(resp),
                Ok(Err(e)) if e.is_connect() => {
                    if attempt >= self.retries {
                        return Err(UpstreamError::Connect(self.name.clone()));
                    }
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(25 * u64::from(attempt))).await;
                }
                Ok(Err(e)) if e.is_timeout() => return Err(UpstreamError::Timeout(self.name.clone())),
                Ok(Err(e)) => return Err(UpstreamError::Failed(self.name.clone(), without_url(e))),
            }
        }
    }
}

/// reqwest's messages include the URL; keep errors short and free of query strings.
fn without_url(e: reqwest::Error) -> String {
    let mut s = e.without_url().to_string();
    s.truncate(200);
    s
}
