//! `rampart model sign|verify` through the real binary: every kind of tampering fails, the
//! signature cannot quietly widen what is ignored, certificate chains, and interop both ways
//! with the reference `model-signing` package from PyPI (installed by scripts/test.sh into
//! target/sign-venv; RAMPART_MODEL_SIGNING_PY names its python).

use std::path::{Path, PathBuf};
use std::process::Command;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};

use crate::harness::BIN;

fn rampart(args: &[&str]) -> (i32, String) {
    let out = Command::new(BIN)
        .args(["model"])
        .args(args)
        .arg("--quiet")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A small model: nested files, an empty file, a file bigger than one shard, git metadata.
fn model(root: &Path) -> PathBuf {
    let m = root.join("model");
    std::fs::create_dir_all(m.join("weights")).unwrap();
    std::fs::create_dir_all(m.join(".git")).unwrap();
    std::fs::write(m.join("config.json"), br#"{"architectures": ["Bert"]}"#).unwrap();
    std::fs::write(
        m.join("weights/model.safetensors"),
        (0..5000u32).map(|i| (i * 7) as u8).collect::<Vec<_>>(),
    )
    .unwrap();
    std::fs::write(m.join("weights/empty.bin"), b"").unwrap();
    std::fs::write(m.join("a.txt"), b"alpha").unwrap();
    std::fs::write(m.join(".git/HEAD"), b"ref: refs/heads/main\n").unwrap();
    m
}

struct Keys {
    private: PathBuf,
    public: PathBuf,
}

fn keys(dir: &Path, name: &str, alg: &'static rcgen::SignatureAlgorithm) -> Keys {
    let kp = KeyPair::generate_for(alg).unwrap();
    let private = dir.join(format!("{name}.pem"));
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&private, kp.serialize_pem()).unwrap();
    std::fs::write(&public, kp.public_key_pem()).unwrap();
    Keys { private, public }
}

#[test]
fn sign_verify_and_every_kind_of_tampering() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let k = keys(dir.path(), "signer", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (code, out) = rampart(&["sign", s(&m), "--private-key", s(&k.private)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("4 files") && m.join("model.sig").exists(), "{out}");
    let verify = |extra: &[&str]| {
        let mut args = vec!["verify", s(&m), "--public-key", s(&k.public)];
        args.extend_from_slice(extra);
        rampart(&args)
    };
    let (code, out) = verify(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verified") && out.contains("ECDSA P-256"), "{out}");

    // git metadata is left out by default, on both sides.
    std::fs::write(m.join(".git/HEAD"), b"changed").unwrap();
    assert_eq!(verify(&[]).0, 0);

    // A changed file.
    std::fs::write(m.join("a.txt"), b"alphA").unwrap();
    let (code, out) = verify(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("changed   a.txt"), "{out}");
    let (code, out) = verify(&["--format", "json"]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["verified"], false);
    assert_eq!(
        v["problems"][0],
        serde_json::json!({"kind": "changed", "name": "a.txt"})
    );
    std::fs::write(m.join("a.txt"), b"alpha").unwrap();

    // A missing file, even an empty one.
    std::fs::remove_file(m.join("weights/empty.bin")).unwrap();
    let (code, out) = verify(&[]);
    assert_eq!(code, 1);
    assert!(out.contains("missing   weights/empty.bin"), "{out}");
    std::fs::write(m.join("weights/empty.bin"), b"").unwrap();

    // An added file fails, unless unsigned files are explicitly ignored, and then it is named.
    std::fs::write(m.join("weights/extra.py"), b"import os").unwrap();
    let (code, out) = verify(&[]);
    assert_eq!(code, 1);
    assert!(out.contains("unsigned  weights/extra.py"), "{out}");
    let (code, out) = verify(&["--ignore-unsigned-files"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: weights/extra.py is not covered"), "{out}");
    std::fs::remove_file(m.join("weights/extra.py")).unwrap();
    assert_eq!(verify(&[]).0, 0);

    // Another key, and a payload swapped under a valid signature.
    let other = keys(dir.path(), "other", &rcgen::PKCS_ECDSA_P256_SHA256);
    let (code, out) = rampart(&["verify", s(&m), "--public-key", s(&other.public)]);
    assert_eq!(code, 1);
    assert!(out.contains("different key"), "{out}");
    let sig_path = m.join("model.sig");
    let original = std::fs::read_to_string(&sig_path).unwrap();
    let mut bundle: serde_json::Value = serde_json::from_str(&original).unwrap();
    let payload = STANDARD
        .decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
        .unwrap();
    let forged = String::from_utf8(payload).unwrap().replace("\"a.txt\"", "\"b.txt\"");
    bundle["dsseEnvelope"]["payload"] = STANDARD.encode(forged).into();
    std::fs::write(&sig_path, bundle.to_string()).unwrap();
    let (code, out) = verify(&[]);
    assert_eq!(code, 1);
    assert!(out.contains("does not verify"), "{out}");
    std::fs::write(&sig_path, "{not json").unwrap();
    assert_eq!(verify(&[]).0, 1);
    std::fs::write(&sig_path, original).unwrap();
    assert_eq!(verify(&[]).0, 0);

    // Symlinks are refused unless allowed.
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink(m.join("a.txt"), m.join("link.txt")).unwrap();
        let (code, out) = verify(&[]);
        assert_ne!(code, 0);
        assert!(out.contains("symbolic link"), "{out}");
        let (code, out) = verify(&["--allow-symlinks"]);
        assert_eq!(
            code, 1,
            "the link's target is content the signature does not cover: {out}"
        );
    }

    // A missing key file is an error (2), not a verdict.
    assert_eq!(rampart(&["verify", s(&m), "--public-key", "/nonexistent.pub"]).0, 2);
}

#[test]
fn a_signature_cannot_quietly_widen_what_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    std::fs::write(m.join("notes.txt"), b"unsigned notes").unwrap();
    let k = keys(dir.path(), "signer", &rcgen::PKCS_ECDSA_P384_SHA384);
    let (code, out) = rampart(&[
        "sign",
        s(&m),
        "--private-key",
        s(&k.private),
        "--ignore-paths",
        "notes.txt",
    ]);
    assert_eq!(code, 0, "{out}");
    let base = ["verify", s(&m), "--public-key", s(&k.public)];
    let (code, out) = rampart(&base);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("excluded  notes.txt"), "{out}");
    let (code, out) = rampart(&[&base[..], &["--accept-signed-ignores"]].concat());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning: notes.txt is not covered"), "{out}");
    let (code, out) = rampart(&[&base[..], &["--ignore-paths", "notes.txt"]].concat());
    assert_eq!(code, 0, "{out}");
}

struct Pki {
    root: PathBuf,
    intermediate: PathBuf,
    leaf: PathBuf,
    leaf_key: PathBuf,
    stranger: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p
}

/// root -> intermediate -> leaf (P-384, digitalSignature), and an unrelated root.
fn pki(dir: &Path) -> Pki {
    let root_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let root_params = ca_params("Rampart test root");
    let root = root_params.self_signed(&root_key).unwrap();
    let mid_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mid_params = ca_params("Rampart test intermediate");
    let mid = mid_params
        .signed_by(&mid_key, &rcgen::Issuer::from_params(&root_params, &root_key))
        .unwrap();
    let leaf_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut leaf_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    leaf_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ml-release signer");
    leaf_params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let leaf = leaf_params
        .signed_by(&leaf_key, &rcgen::Issuer::from_params(&mid_params, &mid_key))
        .unwrap();
    let stranger_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let stranger = ca_params("someone else").self_signed(&stranger_key).unwrap();
    let write = |name: &str, pem: String| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p
    };
    Pki {
        root: write("root.crt", root.pem()),
        intermediate: write("intermediate.crt", mid.pem()),
        leaf: write("leaf.crt", leaf.pem()),
        leaf_key: write("leaf.key", leaf_key.serialize_pem()),
        stranger: write("stranger.crt", stranger.pem()),
    }
}

#[test]
fn certificate_mode_verifies_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let p = pki(dir.path());
    let (code, out) = rampart(&[
        "sign",
        s(&m),
        "--private-key",
        s(&p.leaf_key),
        "--signing-certificate",
        s(&p.leaf),
        "--certificate-chain",
        s(&p.intermediate),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = rampart(&["verify", s(&m), "--certificate-chain", s(&p.root)]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ml-release signer"), "{out}");
    let (code, out) = rampart(&["verify", s(&m), "--certificate-chain", s(&p.stranger)]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("does not chain"), "{out}");
    // A key that is not the certificate's cannot sign under it.
    let k = keys(dir.path(), "other", &rcgen::PKCS_ECDSA_P384_SHA384);
    let (code, out) = rampart(&[
        "sign",
        s(&m),
        "--private-key",
        s(&k.private),
        "--signing-certificate",
        s(&p.leaf),
    ]);
    assert_ne!(code, 0);
    assert!(out.contains("does not match"), "{out}");
}

/// The reference implementation's python, when the test command installed it.
fn model_signing_python() -> Option<PathBuf> {
    match std::env::var_os("RAMPART_MODEL_SIGNING_PY") {
        Some(p) => Some(PathBuf::from(p)),
        None => {
            assert!(
                std::env::var_os("RAMPART_REQUIRE_MODEL_SIGNING").is_none(),
                "RAMPART_REQUIRE_MODEL_SIGNING is set but RAMPART_MODEL_SIGNING_PY is not"
            );
            eprintln!("skipped: RAMPART_MODEL_SIGNING_PY is not set (scripts/test.sh installs model-signing)");
            None
        }
    }
}

fn reference(py: &Path, args: &[&str]) -> (i32, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/signing/model_signing_interop.py");
    let out = Command::new(py).arg(script).args(args).output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn interop_both_ways_with_the_model_signing_package() {
    let Some(py) = model_signing_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let p256 = keys(dir.path(), "p256", &rcgen::PKCS_ECDSA_P256_SHA256);
    let p384 = keys(dir.path(), "p384", &rcgen::PKCS_ECDSA_P384_SHA384);
    let sig = m.join("model.sig");
    let sig = s(&sig);

    // (reference sign options, rampart sign options, key)
    let cases: [(&[&str], &[&str], &Keys); 3] = [
        (&[], &[], &p256),
        (
            &["--hash", "blake2", "--shard-size", "1000"],
            &["--hash", "blake2b", "--shard-size", "1000"],
            &p384,
        ),
        (&["--shard-size", "4096"], &["--shard-size", "4096"], &p256),
    ];
    for (theirs, ours, k) in cases {
        // model-signing signs, Rampart verifies (and catches a change).
        let (code, out) = reference(&py, &[&["sign", s(&m), sig, "--key", s(&k.private)], theirs].concat());
        assert_eq!(code, 0, "reference sign {theirs:?}: {out}");
        let (code, out) = rampart(&["verify", s(&m), "--public-key", s(&k.public)]);
        assert_eq!(code, 0, "rampart verify of a reference signature {theirs:?}: {out}");
        std::fs::write(m.join("weights/model.safetensors"), b"swapped").unwrap();
        assert_eq!(rampart(&["verify", s(&m), "--public-key", s(&k.public)]).0, 1);
        std::fs::remove_dir_all(&m).unwrap();
        model(dir.path());

        // Rampart signs, model-signing verifies (and catches a change).
        let (code, out) = rampart(&[&["sign", s(&m), "--private-key", s(&k.private)], ours].concat());
        assert_eq!(code, 0, "{out}");
        let (code, out) = reference(&py, &[&["verify", s(&m), sig, "--pub", s(&k.public)], theirs].concat());
        assert_eq!(code, 0, "reference verify of a rampart signature {ours:?}: {out}");
        std::fs::write(m.join("new.py"), b"import os").unwrap();
        let (code, out) = reference(&py, &[&["verify", s(&m), sig, "--pub", s(&k.public)], theirs].concat());
        assert_eq!(code, 1, "{out}");
        std::fs::remove_file(m.join("new.py")).unwrap();
    }

    // Certificate mode, both ways.
    let p = pki(dir.path());
    let (code, out) = reference(
        &py,
        &[
            "sign",
            s(&m),
            sig,
            "--key",
            s(&p.leaf_key),
            "--cert",
            s(&p.leaf),
            "--chain",
            s(&p.intermediate),
        ],
    );
    assert_eq!(code, 0, "{out}");
    let (code, out) = rampart(&["verify", s(&m), "--certificate-chain", s(&p.root)]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(rampart(&["verify", s(&m), "--certificate-chain", s(&p.stranger)]).0, 1);
    let (code, out) = rampart(&[
        "sign",
        s(&m),
        "--private-key",
        s(&p.leaf_key),
        "--signing-certificate",
        s(&p.leaf),
        "--certificate-chain",
        s(&p.intermediate),
    ]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = reference(&py, &["verify", s(&m), sig, "--trust", s(&p.root)]);
    assert_eq!(code, 0, "reference verify of a rampart certificate signature: {out}");
    let (code, _) = reference(&py, &["verify", s(&m), sig, "--trust", s(&p.stranger)]);
    assert_eq!(code, 1);
}

/// Waits until `model` answers `status`.
async fn wait_status(gw: &crate::harness::Gateway, key: &str, model: &str, status: u16) -> reqwest::Response {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let resp = gw.chat(key, model, "hello").await;
        if resp.status() == status {
            return resp;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "`{model}` never answered {status}: {}",
            gw.logs()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_gateway_enables_an_upstream_only_while_its_model_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let m = model(dir.path());
    let k = keys(dir.path(), "signer", &rcgen::PKCS_ECDSA_P256_SHA256);
    assert_eq!(rampart(&["sign", s(&m), "--private-key", s(&k.private)]).0, 0);
    std::fs::copy(
        m.join("weights/model.safetensors"),
        dir.path().join("original.safetensors"),
    )
    .unwrap();
    let config = format!(
        r#"version = 1

[[upstreams]]
name = "signed"
kind = "demo"
[[upstreams.signed_models]]
path = "{model}"
public_key = "{key}"

[[upstreams]]
name = "plain"
kind = "demo"

[[models]]
name = "gated"
targets = [{{ upstream = "signed", model = "rampart-demo-1" }}]

[[models]]
name = "with-failover"
targets = [{{ upstream = "signed", model = "rampart-demo-1" }}, {{ upstream = "plain", model = "rampart-demo-1" }}]
"#,
        model = s(&m),
        key = s(&k.public)
    );
    let gw_dir = dir.path().join("gw");
    std::fs::create_dir_all(&gw_dir).unwrap();
    let gw = crate::harness::start_with(crate::harness::Options {
        config: Some(&config),
        dir: Some(&gw_dir),
        ..Default::default()
    });
    let key = gw.default_key().await;
    assert_eq!(gw.chat(&key, "gated", "hello").await.status(), 200, "{}", gw.logs());
    assert!(gw
        .metrics()
        .await
        .contains("rampart_upstream_enabled{upstream=\"signed\"} 1"));

    // The model changes on disk; on reload the upstream is disabled before it can serve again.
    std::fs::write(m.join("weights/model.safetensors"), b"swapped weights").unwrap();
    gw.signal("HUP");
    let resp = wait_status(&gw, &key, "gated", 503).await;
    let (_, code, body) = crate::harness::error_code(resp).await;
    assert_eq!(code, "model_unverified", "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("`signed`"),
        "{body}"
    );
    // A model with another target fails over to it.
    assert_eq!(gw.chat(&key, "with-failover", "hello").await.status(), 200);
    assert!(gw
        .metrics()
        .await
        .contains("rampart_upstream_enabled{upstream=\"signed\"} 0"));
    assert!(gw.logs().contains("model signature NOT verified"), "{}", gw.logs());
    let status: serde_json::Value = crate::harness::client()
        .get(format!("{}/admin/status", gw.url))
        .bearer_auth(gw.admin())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let gate = &status["signed_model_gates"][0];
    assert_eq!(gate["enabled"], false, "{status}");
    assert!(
        gate["models"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("weights/model.safetensors"),
        "{status}"
    );

    // Restored and reloaded: enabled again.
    let original = std::fs::read(dir.path().join("original.safetensors")).unwrap();
    std::fs::write(m.join("weights/model.safetensors"), original).unwrap();
    gw.signal("HUP");
    wait_status(&gw, &key, "gated", 200).await;
    drop(gw);

    // At start-up too: a model that does not verify never gets its upstream enabled.
    std::fs::write(m.join("a.txt"), b"tampered").unwrap();
    let gw_dir = dir.path().join("gw2");
    std::fs::create_dir_all(&gw_dir).unwrap();
    let gw = crate::harness::start_with(crate::harness::Options {
        config: Some(&config),
        dir: Some(&gw_dir),
        ..Default::default()
    });
    let key = gw.default_key().await;
    assert_eq!(gw.chat(&key, "gated", "hello").await.status(), 503);
    assert_eq!(gw.chat(&key, "with-failover", "hello").await.status(), 200);
}
