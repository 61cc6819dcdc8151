//! Config checking and Cedar policies, from the CLI and in the gateway.

use serde_json::json;

use crate::harness::{self, error_code, run_cli};

#[test]
fn config_check_reports_every_problem_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(&good, harness::demo_config("[limits]\nmax_body_bytes = 2048\n")).unwrap();
    let (code, stdout, stderr) = run_cli(&["config", "check", good.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("ok (1 upstreams, 1 models, 4 policies)"), "{stdout}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[[upstreams]]\nname = \"openai\"\nbase_url = \"api.openai.com\"\n\n[[models]]\nname = \"gpt\"\ntargets = [{ upstream = \"opanai\", model = \"gpt-4o-2024-08-06\" }]\n",
    )
    .unwrap();
    let (code, _, stderr) = run_cli(&["config", "check", bad.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("line 4, column 12: `base_url` must start with `http://` or `https://`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("line 8, column 25: model `gpt` names upstream `opanai`, which is not defined"),
        "{stderr}"
    );

    let typo = dir.path().join("typo.toml");
    std::fs::write(
        &typo,
        "[server]\nlisten = \"127.0.0.1:1\"\n\n[limits]\nmax_body_byte = 5\n",
    )
    .unwrap();
    let (code, _, stderr) = run_cli(&["config", "check", typo.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("line 5, column 1") && stderr.contains("unknown field `max_body_byte`"),
        "{stderr}"
    );

    let secret = dir.path().join("secret.toml");
    std::fs::write(
        &secret,
        "[[upstreams]]\nname = \"o\"\nbase_url = \"https://x/v1\"\napi_key = \"sk-live\"\n",
    )
    .unwrap();
    let (code, _, stderr) = run_cli(&["config", "check", secret.to_str().unwrap()], &[]);
    assert_eq!(code, 1);
    assert!(stderr.contains("api_key_env"), "{stderr}");

    let (code, _, stderr) = run_cli(&["config", "check", "/nonexistent.toml"], &[]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn example_config_checks_out() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../rampart.example.toml");
    let (code, stdout, stderr) = run_cli(&["config", "check", example], &[("OPENAI_API_KEY", "sk-test")]);
    assert_eq!(code, 0, "{stdout}{stderr}");
}

#[test]
fn policy_test_explains_decisions() {
    let (code, stdout, _) = run_cli(
        &[
            "policy",
            "test",
            "--principal",
            "key:k1",
            "--key-models",
            "a,b",
            "--action",
            "chat",
            "--model",
            "a",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(stdout.trim(), "ALLOW (by keys-use-their-models)");
    let (code, stdout, _) = run_cli(
        &[
            "policy",
            "test",
            "--principal",
            "key:k1",
            "--key-models",
            "a",
            "--action",
            "chat",
            "--model",
            "c",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert!(stdout.contains("DENY (no policy permits this request)"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.cedar");
    std::fs::write(
        &policy,
        "@id(\"no-bob\")\nforbid(principal == Rampart::User::\"bob\", action, resource);\n",
    )
    .unwrap();
    let config = dir.path().join("c.toml");
    std::fs::write(&config, format!("[policy]\nfiles = [\"{}\"]\n", policy.display())).unwrap();
    let (code, stdout, _) = run_cli(
        &[
            "policy",
            "test",
            "--config",
            config.to_str().unwrap(),
            "--principal",
            "user:bob",
            "--action",
            "embed",
            "--model",
            "m",
        ],
        &[],
    );
    assert_eq!(code, 1);
    assert_eq!(stdout.trim(), "DENY (by no-bob)");
    let (code, stdout, _) = run_cli(
        &[
            "policy",
            "test",
            "--principal",
            "user:root",
            "--groups",
            "admins",
            "--action",
            "admin.block",
        ],
        &[],
    );
    assert_eq!(code, 0, "{stdout}");
}

#[tokio::test]
async fn custom_policies_apply_in_the_gateway_and_bad_ones_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("owners.cedar"),
        "@id(\"mallory-out\")\nforbid(principal in Rampart::User::\"mallory\", action, resource);\n",
    )
    .unwrap();
    // A relative policy path is read beside the config file.
    let gw = harness::start_with(harness::Options {
        config: Some(&harness::demo_config("[policy]\nfiles = [\"owners.cedar\"]\n")),
        dir: Some(dir.path()),
        ..Default::default()
    });
    let alice = gw.key(json!({"owner": "alice"})).await;
    let mallory = gw.key(json!({"owner": "mallory"})).await;
    assert_eq!(gw.chat(&alice, "rampart-demo", "x").await.status(), 200);
    let (status, code, _) = error_code(gw.chat(&mallory, "rampart-demo", "x").await).await;
    assert_eq!((status, code.as_str()), (403, "model_not_allowed"));
    drop(gw);

    std::fs::write(
        dir.path().join("owners.cedar"),
        "forbid(principal, action, resource) when {",
    )
    .unwrap();
    let (code, _, stderr) = run_cli(
        &[
            "serve",
            "--config",
            dir.path().join("rampart.toml").to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ],
        &[],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("owners.cedar"), "{stderr}");
}
