//! The MCP gateway with the official MCP Python SDK (PyPI `mcp`): a real MCPServer on
//! loopback (tests/mcp/mcp_e2e.py) and the SDK's client talking to it through Rampart.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness;

fn python() -> Option<String> {
    match std::env::var("RAMPART_MCP_PY") {
        Ok(p) => Some(p),
        Err(_) => {
            assert!(
                std::env::var("RAMPART_REQUIRE_MCP").is_err(),
                "RAMPART_REQUIRE_MCP is set but RAMPART_MCP_PY is not"
            );
            eprintln!("skipped: set RAMPART_MCP_PY to a python with the `mcp` package");
            None
        }
    }
}

fn script() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/mcp/mcp_e2e.py").to_string()
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn mcp_tools_are_filtered_pinned_checked_and_their_results_scanned() {
    let Some(py) = python() else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let _server = Child(
        Command::new(&py)
            .args([&script(), "server", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // wait for the server
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let config = format!(
        r#"version = 1
[agent.approval]
hold_seconds = 20
[[agent.tools]]
name = "read_file"
checks = [{{ kind = "path", arg = "path", prefix = "/srv/shared" }}]
[[agent.tools]]
name = "search"
[[agent.tools]]
name = "send_report"
class = "egress"
action = "allow"
[[agent.tools]]
name = "poisoned"
[[agent.tools]]
name = "shadow"
[[agent.tools]]
name = "change"
[[agent.mcp_servers]]
name = "files"
url = "http://127.0.0.1:{port}/mcp"
"#
    );
    let gw = harness::start_config(&config);
    let admin = gw.admin().to_string();
    let key = gw.default_key().await;
    let client = std::thread::spawn({
        let (py, url, key) = (py.clone(), format!("{}/mcp/files", gw.url), key.clone());
        move || {
            Command::new(py)
                .args([&script(), "client", &url, &key])
                .output()
                .unwrap()
        }
    });
    // an approver approves the tainted egress call while the SDK's call waits
    let mut approved = None;
    if let Some(a) = gw.first_pending_approval(&admin, 150).await {
        let id = a["id"].as_str().unwrap().to_string();
        assert_eq!(a["tool"], "send_report");
        assert_eq!(a["tainted"], true);
        let r = gw
            .decide_approval(&admin, &id, "approve", "report to the boss is fine")
            .await;
        assert_eq!(r.status(), 200);
        approved = Some(id);
    }
    let out = tokio::task::spawn_blocking(move || client.join().unwrap())
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(approved.is_some(), "no approval request appeared: {v}");

    // tools/list: the poisoned and the shadowing tool are hidden
    assert_eq!(
        v["tools"],
        json!(["change", "read_file", "search", "send_report"]),
        "{v}"
    );
    assert_eq!(v["read_ok"]["ok"], true, "{v}");
    assert_eq!(v["read_traversal"]["data"]["code"], "tool_arguments_rejected", "{v}");
    // a hidden tool cannot be called either
    assert_eq!(v["not_listed"]["data"]["code"], "tool_not_allowed", "{v}");
    assert_eq!(v["search_clean"]["ok"], true, "{v}");
    // a result carrying an injection never reaches the agent
    assert_eq!(v["search_injected"]["ok"], false, "{v}");
    assert!(
        !v["search_injected"]["text"].as_str().unwrap().contains("id_rsa"),
        "{v}"
    );
    // after untrusted content, egress waited for (and got) a human's approval
    assert_eq!(v["send_after_taint"]["ok"], true, "{v}");
    // while it waited, the SDK got MCP progress notifications
    assert!(
        v["progress"]
            .as_array()
            .is_some_and(|p| p.iter().any(|m| m.as_str().is_some_and(|m| m.contains("approve")))),
        "{v}"
    );
    // the rug pull: `search` changed after it was pinned, so it is hidden
    assert_eq!(
        v["tools_after_change"],
        json!(["change", "read_file", "send_report"]),
        "{v}"
    );

    // the operator sees the changed pin and re-approves it
    let pins: Value = gw.get("/admin/mcp/pins", &admin).await.json().await.unwrap();
    let search = pins["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["tool"] == "search")
        .unwrap();
    assert_eq!(search["changed"], true, "{pins}");
    let env = [("RAMPART_URL", gw.url.as_str()), ("RAMPART_ADMIN_KEY", admin.as_str())];
    let (code, _, err) = harness::run_cli(&["mcp", "approve", "files", "search"], &env);
    assert_eq!(code, 0, "{err}");
    let pins: Value = gw.get("/admin/mcp/pins", &admin).await.json().await.unwrap();
    let search = pins["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["tool"] == "search")
        .unwrap();
    assert_eq!(search["changed"], false, "{pins}");

    // the kill switch covers MCP traffic: blocking the server as a model, or the user
    let rpc = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}});
    for (kind, value) in [("model", "mcp:files"), ("user", "alice")] {
        let r = harness::client()
            .post(format!("{}/admin/blocks", gw.url))
            .bearer_auth(&admin)
            .json(&json!({"kind": kind, "value": value}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let r = harness::client()
            .post(format!("{}/mcp/files", gw.url))
            .bearer_auth(&key)
            .header("accept", "application/json, text/event-stream")
            .json(&rpc)
            .send()
            .await
            .unwrap();
        assert_eq!(harness::error_code(r).await.1, "blocked", "{kind}");
        let r = harness::client()
            .delete(format!("{}/admin/blocks/{kind}/{value}", gw.url))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }

    // the ledger tells the story
    let dir = gw.dir.join("data").display().to_string();
    let (code, out, err) = harness::run_cli(&["audit", "export", "--data-dir", &dir], &[]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "tools_hidden",
        "withheld",
        "approval.approve",
        "tool_arguments_rejected",
    ] {
        assert!(out.contains(needle), "{needle} not in the ledger");
    }
}

/// A scripted agent loop (OpenAI SDK + MCP SDK) reads a document with a planted instruction
/// to email the customer list out; Rampart stops the exfiltration and the ledger says how.
#[tokio::test]
async fn an_injected_document_cannot_make_the_agent_exfiltrate() {
    let Some(py) = python() else { return };
    let free = || {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    };
    let (mcp_port, llm_port) = (free(), free());
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls.jsonl");
    let _server = Child(
        Command::new(&py)
            .args([&script(), "server", &mcp_port.to_string()])
            .env("MCP_CALL_LOG", &calls)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let _llm = Child(
        Command::new(&py)
            .args([&script(), "llm", &llm_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    for port in [mcp_port, llm_port] {
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let config = format!(
        r#"version = 1
[[upstreams]]
name = "llm"
base_url = "http://127.0.0.1:{llm_port}/v1"
[[models]]
name = "llm"
targets = [{{ upstream = "llm", model = "scripted" }}]
[[agent.tools]]
name = "read_file"
checks = [{{ kind = "path", arg = "path", prefix = "/srv/shared" }}]
[[agent.tools]]
name = "send_report"
class = "egress"
action = "allow"
[[agent.mcp_servers]]
name = "files"
url = "http://127.0.0.1:{mcp_port}/mcp"
"#
    );
    let gw = harness::start_config(&config);
    let key = gw.default_key().await;
    let (url, k) = (gw.url.clone(), key.clone());
    let out =
        tokio::task::spawn_blocking(move || Command::new(py).args([&script(), "agent", &url, &k]).output().unwrap())
            .await
            .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let ran = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(!ran.contains("send_report"), "the exfiltration ran: {ran}\n{v}");
    assert!(ran.contains("q3-plan.txt"), "the agent did its task: {ran}");
    // how it was stopped: the tainted egress call was held for a human at the model API, or the
    // injected result never reached the model
    let steps = v["steps"].as_array().unwrap();
    let refused = steps.iter().find_map(|s| s["model_refused"].as_str());
    let withheld = steps.iter().any(|s| s["tool"] == "read_file" && s["error"] == true);
    assert!(
        refused.is_some_and(|c| c == "approval_required" || c == "prompt_injection_detected") || withheld,
        "{v}"
    );
    if refused == Some("approval_required") {
        let (_, calls) = gw.ledger_tool_calls();
        let stopped = calls
            .into_iter()
            .find(|c| c["tool"] == "send_report")
            .unwrap_or_else(|| panic!("no send_report decision in the ledger"));
        assert_eq!(stopped["code"], "approval_required");
        assert_eq!(stopped["escalated_by_taint"], true, "{stopped}");
    }
    eprintln!("agent steps: {v}");

    // A model already turned against the user reads the customer list and tries to send it:
    // the tool result tainted the exchange, so the egress call needs a human.
    let (url, k, py) = (gw.url.clone(), key.clone(), python().unwrap());
    let out = tokio::task::spawn_blocking(move || {
        Command::new(py)
            .args([&script(), "agent", &url, &k, "Tidy up the customer list."])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let v: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let steps = v["steps"].as_array().unwrap();
    assert!(
        steps.iter().any(|s| s["tool"] == "read_file" && s["error"] == false),
        "{v}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s["model_refused"] == "approval_required" && s["status"] == 403),
        "{v}"
    );
    let ran = std::fs::read_to_string(&calls).unwrap_or_default();
    assert!(!ran.contains("send_report"), "the exfiltration ran: {ran}");
    let (ledger, calls) = gw.ledger_tool_calls();
    let stopped = calls
        .into_iter()
        .find(|c| c["tool"] == "send_report")
        .unwrap_or_else(|| panic!("no send_report decision in the ledger"));
    assert_eq!(stopped["code"], "approval_required");
    assert_eq!(stopped["tainted"], true, "{stopped}");
    assert_eq!(stopped["escalated_by_taint"], true, "{stopped}");
    // the card number in the file was redacted before the model saw it
    assert!(
        !ledger.contains("4111 1111 1111 1111"),
        "the card number is in the ledger"
    );
}
