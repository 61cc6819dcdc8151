//! Blocking keys, users and models at once, from the CLI and the admin API.

use serde_json::{json, Value};

use crate::harness::{self, client, error_code, run_cli};

#[tokio::test]
async fn block_and_unblock_keys_users_and_models() {
    let dir = tempfile::tempdir().unwrap();
    let gw = harness::start_with(harness::Options {
        dir: Some(dir.path()),
        ..Default::default()
    });
    let env = [("RAMPART_URL", gw.url.as_str()), ("RAMPART_ADMIN_KEY", gw.admin())];
    let key = gw.key(json!({"owner": "ivan"})).await;
    let other = gw.key(json!({"owner": "judy"})).await;
    let key_id = key.trim_start_matches("rk-").split('-').next().unwrap().to_string();

    let (code, _, stderr) = run_cli(&["admin", "block", "key", &key_id, "--reason", "leaked"], &env);
    assert_eq!(code, 0, "{stderr}");
    let (status, code, v) = error_code(gw.chat(&key, "rampart-demo", "x").await).await;
    assert_eq!((status, code.as_str()), (403, "blocked"));
    assert!(!v.to_string().contains("leaked"), "the reason is for admins");
    assert_eq!(gw.chat(&other, "rampart-demo", "x").await.status(), 200);
    run_cli(&["admin", "unblock", "key", &key_id], &env);
    assert_eq!(gw.chat(&key, "rampart-demo", "x").await.status(), 200);

    run_cli(&["admin", "block", "user", "judy"], &env);
    assert_eq!(
        error_code(gw.chat(&other, "rampart-demo", "x").await).await.1,
        "blocked"
    );
    assert_eq!(gw.chat(&key, "rampart-demo", "x").await.status(), 200);

    // Through the API directly, a model.
    let resp = client()
        .post(format!("{}/admin/blocks", gw.url))
        .bearer_auth(gw.admin())
        .json(&json!({"kind": "model", "value": "rampart-demo", "reason": "incident 42"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert_eq!(error_code(gw.chat(&key, "rampart-demo", "x").await).await.1, "blocked");
    let models: Value = gw.get("/v1/models", &key).await.json().await.unwrap();
    assert!(models["data"].as_array().unwrap().is_empty());

    let (code, stdout, _) = run_cli(&["admin", "blocks"], &env);
    assert_eq!(code, 0);
    assert!(stdout.contains("incident 42") && stdout.contains("judy"));
    let admin = gw.admin().to_string();
    drop(gw);

    // Blocks survive a restart.
    let gw = harness::start_with(harness::Options {
        dir: Some(dir.path()),
        ..Default::default()
    });
    assert_eq!(error_code(gw.chat(&key, "rampart-demo", "x").await).await.1, "blocked");
    let env = [("RAMPART_URL", gw.url.as_str()), ("RAMPART_ADMIN_KEY", admin.as_str())];
    let (code, _, stderr) = run_cli(&["admin", "unblock", "model", "rampart-demo"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(gw.chat(&key, "rampart-demo", "x").await.status(), 200);
    let (code, _, stderr) = run_cli(&["admin", "unblock", "model", "rampart-demo"], &env);
    assert_eq!(code, 2);
    assert!(stderr.contains("block_not_found"), "{stderr}");
}
