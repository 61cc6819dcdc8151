//! API keys: shown once, hashed, constant-time checked, expiring, revocable, model-scoped.

use serde_json::{json, Value};

use crate::harness::{self, client, error_code, run_cli};

#[tokio::test]
async fn missing_malformed_and_wrong_credentials_are_401() {
    let gw = harness::start();
    let key = gw.default_key().await;
    let url = format!("{}/v1/chat/completions", gw.url);
    let body = harness::chat_body("rampart-demo", "x");

    let resp = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(resp.headers()["www-authenticate"], "Bearer");
    assert_eq!(error_code(resp).await.1, "missing_api_key");

    let resp = client()
        .post(&url)
        .header("authorization", "Basic abc")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(resp).await.1, "invalid_api_key");

    let mut wrong = key.clone();
    let last = wrong.pop().unwrap();
    wrong.push(if last == 'A' { 'B' } else { 'A' });
    let (status, code, _) = error_code(gw.chat(&wrong, "rampart-demo", "x").await).await;
    assert_eq!((status, code.as_str()), (401, "invalid_api_key"));

    // A JWT-shaped token with no OIDC issuer configured.
    let (_, code, _) = error_code(gw.chat("aaa.bbb.ccc", "rampart-demo", "x").await).await;
    assert_eq!(code, "invalid_api_key");
}

#[tokio::test]
async fn keys_are_revoked_at_once_through_the_cli() {
    let gw = harness::start();
    let env = [("RAMPART_URL", gw.url.as_str()), ("RAMPART_ADMIN_KEY", gw.admin())];
    let (code, stdout, stderr) = run_cli(&["keys", "create", "--owner", "bob", "--name", "ci"], &env);
    assert_eq!(code, 0, "{stderr}");
    let key = stdout.trim().to_string();
    assert!(key.starts_with("rk-"));
    assert_eq!(gw.chat(&key, "rampart-demo", "x").await.status(), 200);

    let (code, table, _) = run_cli(&["keys", "list"], &env);
    assert_eq!(code, 0);
    assert!(table.starts_with("ID "), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.contains("bob") && l.contains("application") && l.contains("active")),
        "{table}"
    );
    assert!(!table.contains(harness::secret_part(&key)), "list never shows secrets");
    let (code, stdout, _) = run_cli(&["keys", "list", "--json"], &env);
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&stdout).unwrap();
    let id = list.as_array().unwrap().iter().find(|k| k["owner"] == "bob").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!stdout.contains(harness::secret_part(&key)), "list never shows secrets");

    let (code, _, stderr) = run_cli(&["keys", "revoke", &id], &env);
    assert_eq!(code, 0, "{stderr}");
    let (status, code, _) = error_code(gw.chat(&key, "rampart-demo", "x").await).await;
    assert_eq!((status, code.as_str()), (401, "api_key_revoked"));

    // Without the admin credential the CLI explains what is missing.
    let (code, _, stderr) = run_cli(&["keys", "list", "--url", &gw.url], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("RAMPART_ADMIN_KEY"), "{stderr}");
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let gw = harness::start();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let key = gw.key(json!({"owner": "carol", "expires_at": now + 2})).await;
    assert_eq!(gw.chat(&key, "rampart-demo", "x").await.status(), 200);
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let (status, code, _) = error_code(gw.chat(&key, "rampart-demo", "x").await).await;
    assert_eq!((status, code.as_str()), (401, "api_key_expired"));
}

#[tokio::test]
async fn keys_reach_only_their_models() {
    let config = "[[upstreams]]\nname = \"demo\"\nkind = \"demo\"\n\n[[models]]\nname = \"small\"\ntargets = [{ upstream = \"demo\", model = \"rampart-demo-1\" }]\n\n[[models]]\nname = \"big\"\ntargets = [{ upstream = \"demo\", model = \"rampart-demo-1\" }]\n";
    let gw = harness::start_config(config);
    let key = gw.key(json!({"owner": "dave", "models": ["small"]})).await;
    assert_eq!(gw.chat(&key, "small", "x").await.status(), 200);
    let (status, code, v) = error_code(gw.chat(&key, "big", "x").await).await;
    assert_eq!((status, code.as_str()), (403, "model_not_allowed"));
    assert_eq!(v["error"]["param"], "model");
    let models: Value = gw.get("/v1/models", &key).await.json().await.unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec!["small"]);
    // The admin credential administers; it does not call models.
    assert_eq!(
        error_code(gw.chat(gw.admin(), "small", "x").await).await.1,
        "model_not_allowed"
    );
}

#[tokio::test]
async fn admin_api_needs_an_admin() {
    let gw = harness::start();
    let key = gw.default_key().await;
    let resp = client()
        .get(format!("{}/admin/keys", gw.url))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (403, "admin_forbidden"));
    let resp = client().post(format!("{}/admin/reload", gw.url)).send().await.unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn a_lost_admin_credential_can_be_replaced_offline() {
    let dir = tempfile::tempdir().unwrap();
    let gw = harness::start_with(harness::Options {
        dir: Some(dir.path()),
        ..Default::default()
    });
    let old = gw.admin().to_string();
    drop(gw);
    let data = dir.path().join("data");
    let (code, stdout, stderr) = run_cli(&["admin", "new-credential", "--data-dir", data.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("revoked 1 admin credential"), "{stderr}");
    let new = stdout.trim().to_string();
    let gw = harness::start_with(harness::Options {
        dir: Some(dir.path()),
        ..Default::default()
    });
    let status = |key: String| {
        let url = format!("{}/admin/status", gw.url);
        async move { client().get(url).bearer_auth(key).send().await.unwrap().status() }
    };
    assert_eq!(status(new).await, 200);
    assert_eq!(status(old).await, 401);
    let (code, _, stderr) = run_cli(&["admin", "new-credential", "--data-dir", "/nonexistent"], &[]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no gateway database"), "{stderr}");
}
