//! The rustls listener, with and without TLS 1.2.

use crate::harness::{self, chat_body};

fn certs(dir: &std::path::Path) -> (String, String, reqwest::Certificate) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (
        cert_path.display().to_string(),
        key_path.display().to_string(),
        reqwest::Certificate::from_pem(cert.pem().as_bytes()).unwrap(),
    )
}

fn tls_client(root: &reqwest::Certificate, max12: bool) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder().no_proxy().tls_certs_only([root.clone()]);
    if max12 {
        b = b.tls_version_max(reqwest::tls::Version::TLS_1_2);
    }
    b.build().unwrap()
}

#[tokio::test]
async fn https_listener_serves_and_can_require_tls13() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, root) = certs(dir.path());
    for tls13_only in [false, true] {
        let config = harness::demo_config(&format!(
            "[server.tls]\ncert_file = \"{cert}\"\nkey_file = \"{key}\"\ntls13_only = {tls13_only}\n"
        ));
        let gw = harness::start_config(&config);
        assert!(gw.url.starts_with("https://"));
        let url = gw.url.replace("127.0.0.1", "localhost");
        let api_key = {
            let resp = tls_client(&root, false)
                .post(format!("{url}/admin/keys"))
                .bearer_auth(gw.admin())
                .json(&serde_json::json!({"owner": "tls"}))
                .send()
                .await
                .unwrap();
            resp.json::<serde_json::Value>().await.unwrap()["key"]
                .as_str()
                .unwrap()
                .to_string()
        };
        let resp = tls_client(&root, false)
            .post(format!("{url}/v1/chat/completions"))
            .bearer_auth(&api_key)
            .json(&chat_body("rampart-demo", "x"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let old = tls_client(&root, true).get(format!("{url}/healthz")).send().await;
        assert_eq!(
            old.is_ok(),
            !tls13_only,
            "TLS 1.2 client with tls13_only = {tls13_only}"
        );
        // Plain HTTP on the TLS port gets nothing.
        let plain = reqwest::get(gw.url.replace("https", "http") + "/healthz").await;
        assert!(!plain.map(|r| r.status().is_success()).unwrap_or(false));
    }
}
