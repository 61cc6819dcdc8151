//! Reload without restart: SIGHUP and the admin endpoint; a bad config is refused and the old
//! one keeps serving.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{self, client, error_code, run_cli};

fn two_models() -> String {
    harness::demo_config(
        "[[models]]\nname = \"second\"\ntargets = [{ upstream = \"demo\", model = \"rampart-demo-1\" }]\n",
    )
}

async fn wait_for(gw: &harness::Gateway, key: &str, model: &str, status: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if gw.chat(key, model, "x").await.status() == status {
            return;
        }
        assert!(Instant::now() < deadline, "model `{model}` never answered {status}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn sighup_reloads_and_bad_configs_are_refused() {
    let gw = harness::start_config(&harness::demo_config(""));
    let key = gw.default_key().await;
    assert_eq!(gw.chat(&key, "second", "x").await.status(), 404);

    std::fs::write(gw.config_path(), two_models()).unwrap();
    gw.signal("HUP");
    wait_for(&gw, &key, "second", 200).await;

    std::fs::write(
        gw.config_path(),
        "[[models]]\nname = \"broken\"\ntargets = [{ upstream = \"nowhere\", model = \"m\" }]\n",
    )
    .unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.logs().contains("reload refused") {
        assert!(Instant::now() < deadline, "no refusal logged: {}", gw.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        gw.chat(&key, "second", "x").await.status(),
        200,
        "the running config stays"
    );
    let m = gw.metrics().await;
    assert!(m.contains("rampart_config_reloads_total{result=\"error\"} 1"), "{m}");
}

#[tokio::test]
async fn admin_reload_reports_line_precise_problems() {
    let gw = harness::start_config(&harness::demo_config(""));
    let key = gw.default_key().await;
    std::fs::write(
        gw.config_path(),
        harness::demo_config("[limits]\nmax_body_bytes = \"big\"\n"),
    )
    .unwrap();
    let resp = client()
        .post(format!("{}/admin/reload", gw.url))
        .bearer_auth(gw.admin())
        .send()
        .await
        .unwrap();
    let (status, code, v) = error_code(resp).await;
    assert_eq!((status, code.as_str()), (400, "config_invalid"));
    assert!(v["error"]["message"].as_str().unwrap().contains("line 12"), "{v}");
    assert_eq!(gw.chat(&key, "rampart-demo", "x").await.status(), 200);

    std::fs::write(gw.config_path(), two_models()).unwrap();
    let env = [("RAMPART_URL", gw.url.as_str()), ("RAMPART_ADMIN_KEY", gw.admin())];
    let (code, _, stderr) = run_cli(&["admin", "reload"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(gw.chat(&key, "second", "x").await.status(), 200);
    let (code, stdout, _) = run_cli(&["admin", "status"], &env);
    assert_eq!(code, 0);
    let status: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(status["models"], serde_json::json!(["rampart-demo", "second"]));
}
