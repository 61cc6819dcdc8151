//! Test harness: starts the real `rampart` binary on loopback with a temporary data directory.

#![allow(
    clippy::zombie_processes,
    reason = "the child is killed and waited for in Gateway's Drop"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};

pub const BIN: &str = env!("CARGO_BIN_EXE_rampart");

/// Runs `rampart` with `args`, `text` on standard input, and returns its exit code and its
/// standard output read as JSON (`rampart scan --json`).
pub fn run_json(args: &[&str], text: &str) -> (Option<i32>, Value) {
    use std::io::Write;
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code(), serde_json::from_slice(&out.stdout).unwrap())
}

/// A running gateway; killed on drop.
pub struct Gateway {
    pub child: Child,
    pub url: String,
    pub admin_key: Option<String>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stderr: Arc<Mutex<String>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Default)]
pub struct Options<'a> {
    pub config: Option<&'a str>,
    pub dir: Option<&'a Path>,
    pub env: Vec<(&'a str, String)>,
}

/// Starts with embedded defaults in a fresh directory.
pub fn start() -> Gateway {
    start_with(Options::default())
}

/// Starts with a config text (written to `rampart.toml` beside the data dir).
pub fn start_config(config: &str) -> Gateway {
    start_with(Options {
        config: Some(config),
        ..Default::default()
    })
}

pub fn start_with(opts: Options<'_>) -> Gateway {
    let (tmp, dir) = match opts.dir {
        Some(d) => (None, d.to_path_buf()),
        None => {
            let t = tempfile::tempdir().unwrap();
            let d = t.path().to_path_buf();
            (Some(t), d)
        }
    };
    let mut cmd = Command::new(BIN);
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.join("data"));
    if let Some(text) = opts.config {
        let path = dir.join("rampart.toml");
        std::fs::write(&path, text).unwrap();
        cmd.arg("--config").arg(&path);
    }
    cmd.env("RAMPART_LOG", "info");
    for (k, v) in &opts.env {
        cmd.env(k, v);
    }
    cmd.current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let mut l = log2.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut admin_key = None;
    loop {
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => panic!("gateway did not start; stderr:\n{}", log.lock().unwrap()),
        };
        if let Some(k) = line.strip_prefix("admin credential (shown once, store it now): ") {
            admin_key = Some(k.trim().to_string());
        }
        if let Some(url) = line.strip_prefix("rampart listening on ") {
            return Gateway {
                child,
                url: url.trim().to_string(),
                admin_key,
                dir,
                _tmp: tmp,
                stderr: log,
            };
        }
    }
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder().no_proxy().build().unwrap()
}

impl Gateway {
    pub fn admin(&self) -> &str {
        self.admin_key
            .as_deref()
            .expect("admin credential printed on first start")
    }

    /// Creates a key through the admin API and returns its secret.
    pub async fn key(&self, body: Value) -> String {
        let resp = client()
            .post(format!("{}/admin/keys", self.url))
            .bearer_auth(self.admin())
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let v: Value = resp.json().await.unwrap();
        v["key"].as_str().unwrap().to_string()
    }

    pub async fn default_key(&self) -> String {
        self.key(json!({"owner": "alice"})).await
    }

    pub async fn post(&self, path: &str, key: &str, body: Value) -> reqwest::Response {
        client()
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str, key: &str) -> reqwest::Response {
        client()
            .get(format!("{}{path}", self.url))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    pub async fn chat(&self, key: &str, model: &str, content: &str) -> reqwest::Response {
        self.post("/v1/chat/completions", key, chat_body(model, content)).await
    }

    /// The Prometheus exposition text.
    pub async fn metrics(&self) -> String {
        client()
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn logs(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("rampart.toml")
    }
}

pub fn chat_body(model: &str, content: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

/// Reads an error response, checks it is OpenAI-shaped with the request id; returns
/// (status, code, body).
pub async fn error_code(resp: reqwest::Response) -> (u16, String, Value) {
    let status = resp.status().as_u16();
    let rid = resp
        .headers()
        .get("x-request-id")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(rid.is_some(), "x-request-id on every response");
    let v: Value = resp.json().await.unwrap();
    let code = v["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {v}"))
        .to_string();
    assert!(v["error"]["message"].is_string(), "{v}");
    assert!(v["error"]["type"].is_string(), "{v}");
    assert_eq!(
        v["error"]["request_id"].as_str(),
        rid.as_deref(),
        "request id in body and header"
    );
    (status, code, v)
}

/// The `data:` payloads of an SSE body.
pub fn sse_data(text: &str) -> Vec<String> {
    text.split("\n\n")
        .filter_map(|ev| ev.lines().find_map(|l| l.strip_prefix("data: ")).map(str::to_string))
        .collect()
}

/// Runs the binary; returns (exit status, stdout, stderr).
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into(),
        String::from_utf8_lossy(&out.stderr).into(),
    )
}

/// A config using the demo upstream plus extra TOML.
pub fn demo_config(extra: &str) -> String {
    format!(
        "version = 1\n\n[[upstreams]]\nname = \"demo\"\nkind = \"demo\"\n\n[[models]]\nname = \"rampart-demo\"\ntargets = [{{ upstream = \"demo\", model = \"rampart-demo-1\" }}]\n\n{extra}"
    )
}

/// A config with one OpenAI-compatible upstream `name` at `base_url`, served as model `name`.
pub fn single_upstream_config(name: &str, base_url: &str, upstream_extra: &str) -> String {
    format!(
        "[[upstreams]]\nname = \"{name}\"\nbase_url = \"{base_url}\"\n{upstream_extra}\n[[models]]\nname = \"{name}\"\ntargets = [{{ upstream = \"{name}\", model = \"{name}-1\" }}]\n"
    )
}

/// The secret part of an `rk-<16 hex id>-<secret>` key (the secret may itself contain `-`).
pub fn secret_part(key: &str) -> &str {
    key.get("rk-".len() + 16 + 1..).expect("a Rampart key")
}

impl Gateway {
    /// The ledger as `rampart audit export` prints it, and the tool-guard decisions recorded
    /// in its exchanges (`meta.tool_calls`).
    pub fn ledger_tool_calls(&self) -> (String, Vec<Value>) {
        let dir = self.dir.join("data").display().to_string();
        let (code, out, err) = run_cli(&["audit", "export", "--data-dir", &dir], &[]);
        assert_eq!(code, 0, "{err}");
        let calls = out
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter_map(|e| e["meta"]["tool_calls"].as_array().cloned())
            .flatten()
            .collect();
        (out, calls)
    }

    /// `POST /admin/approvals/{id}/{verb}` (`approve` or `deny`) with `bearer`.
    pub async fn decide_approval(&self, bearer: &str, id: &str, verb: &str, reason: &str) -> reqwest::Response {
        client()
            .post(format!("{}/admin/approvals/{id}/{verb}", self.url))
            .bearer_auth(bearer)
            .json(&json!({"reason": reason}))
            .send()
            .await
            .unwrap()
    }

    /// The first pending approval request, waited for up to ~`tries` × 100 ms.
    pub async fn first_pending_approval(&self, admin: &str, tries: usize) -> Option<Value> {
        for _ in 0..tries {
            let list: Value = self
                .get("/admin/approvals?status=pending", admin)
                .await
                .json()
                .await
                .unwrap();
            if let Some(a) = list["data"].as_array().and_then(|d| d.first()) {
                return Some(a.clone());
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        None
    }
}
