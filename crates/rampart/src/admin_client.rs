//! A small client for the admin API, used by `rampart keys` and `rampart admin`.

use anyhow::{bail, Context};
use serde_json::Value;

use crate::cli::AdminTarget;

pub struct AdminClient {
    http: reqwest::Client,
    url: String,
    key: String,
}

/// Percent-encodes one path segment.
pub fn path_segment(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl AdminClient {
    pub fn new(target: &AdminTarget) -> anyhow::Result<AdminClient> {
        let key = target
            .admin_key
            .clone()
            .context("no admin credential: pass `--admin-key` or set RAMPART_ADMIN_KEY")?;
        let http = reqwest::Client::builder().build().context("cannot build HTTP client")?;
        Ok(AdminClient {
            http,
            url: target.url.trim_end_matches('/').to_string(),
            key,
        })
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let resp = req
            .bearer_auth(&self.key)
            .send()
            .await
            .with_context(|| format!("cannot reach the gateway at {}", self.url))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let msg = body["error"]["message"].as_str().unwrap_or("no details");
            let code = body["error"]["code"].as_str().unwrap_or("error");
            bail!("the gateway answered {status} ({code}): {msg}");
        }
        Ok(body)
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.get(format!("{}{path}", self.url))).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        self.send(self.http.post(format!("{}{path}", self.url)).json(body))
            .await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        self.send(self.http.delete(format!("{}{path}", self.url))).await
    }
}
