//! JWT bearer tokens from an OIDC issuer: discovery, JWKS caching, RS256/ES256/EdDSA, and the
//! `iss`/`aud`/`exp`/`nbf` checks; groups from the token feed Cedar.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs8::EncodePrivateKey;
use rsa::traits::PublicKeyParts;
use serde_json::{json, Value};

use crate::harness::{self, error_code};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

struct Issuer {
    url: String,
    ec: EncodingKey,
    ed: EncodingKey,
    rsa: EncodingKey,
}

async fn issuer() -> Issuer {
    let ec = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let mut rng = rsa::rand_core::OsRng;
    let rsa_key = rsa::RsaPrivateKey::new(&mut rng, 2048).unwrap();
    let ec_raw = ec.public_key_raw();
    let (x, y) = ec_raw[1..].split_at(32);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let jwks = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "ec1", "use": "sig", "alg": "ES256", "x": b64(x), "y": b64(y)},
        {"kty": "OKP", "crv": "Ed25519", "kid": "ed1", "use": "sig", "alg": "EdDSA", "x": b64(ed.public_key_raw())},
        {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256", "n": b64(&rsa_key.n().to_bytes_be()), "e": b64(&rsa_key.e().to_bytes_be())},
    ]});
    let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
    let app = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(move || async move { Json(discovery) }),
        )
        .route("/jwks", get(move || async move { Json(jwks) }));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let rsa_pem = rsa_key.to_pkcs8_pem(Default::default()).unwrap();
    Issuer {
        url,
        ec: EncodingKey::from_ec_pem(ec.serialize_pem().as_bytes()).unwrap(),
        ed: EncodingKey::from_ed_pem(ed.serialize_pem().as_bytes()).unwrap(),
        rsa: EncodingKey::from_rsa_pem(rsa_pem.as_bytes()).unwrap(),
    }
}

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

impl Issuer {
    fn token(&self, alg: Algorithm, kid: &str, claims: Value) -> String {
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        let key = match alg {
            Algorithm::ES256 => &self.ec,
            Algorithm::EdDSA => &self.ed,
            _ => &self.rsa,
        };
        jsonwebtoken::encode(&header, &claims, key).unwrap()
    }

    fn claims(&self, extra: Value) -> Value {
        let mut c = json!({"iss": self.url, "aud": "rampart", "sub": "erin", "exp": now() + 300, "groups": ["staff"]});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }
}

#[tokio::test]
async fn jwts_from_the_issuer_are_verified() {
    let iss = issuer().await;
    let policy_dir = tempfile::tempdir().unwrap();
    let policy = policy_dir.path().join("interns.cedar");
    std::fs::write(&policy, "@id(\"interns-no-demo\")\nforbid(principal in Rampart::Group::\"interns\", action, resource == Rampart::Model::\"rampart-demo\");\n").unwrap();
    let config = harness::demo_config(&format!(
        "[auth.oidc]\nissuer = \"{}\"\naudiences = [\"rampart\"]\nleeway_secs = 0\n\n[policy]\nfiles = [\"{}\"]\n",
        iss.url,
        policy.display()
    ));
    let gw = harness::start_config(&config);

    for (alg, kid) in [
        (Algorithm::ES256, "ec1"),
        (Algorithm::EdDSA, "ed1"),
        (Algorithm::RS256, "rsa1"),
    ] {
        let token = iss.token(alg, kid, iss.claims(json!({})));
        let resp = gw.chat(&token, "rampart-demo", "hi").await;
        assert_eq!(resp.status(), 200, "{alg:?}: {}", resp.text().await.unwrap());
    }

    let cases = [
        (
            "wrong audience",
            iss.token(Algorithm::ES256, "ec1", iss.claims(json!({"aud": "other"}))),
            "invalid_token",
        ),
        (
            "wrong issuer",
            iss.token(
                Algorithm::ES256,
                "ec1",
                iss.claims(json!({"iss": "https://evil.example"})),
            ),
            "invalid_token",
        ),
        (
            "expired",
            iss.token(Algorithm::ES256, "ec1", iss.claims(json!({"exp": now() - 60}))),
            "token_expired",
        ),
        (
            "not yet valid",
            iss.token(Algorithm::ES256, "ec1", iss.claims(json!({"nbf": now() + 600}))),
            "invalid_token",
        ),
        (
            "unknown kid",
            iss.token(Algorithm::ES256, "nope", iss.claims(json!({}))),
            "invalid_token",
        ),
        (
            "alg/key mismatch",
            iss.token(Algorithm::RS256, "ec1", iss.claims(json!({}))),
            "invalid_token",
        ),
        (
            "hmac",
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &iss.claims(json!({})),
                &EncodingKey::from_secret(b"guess"),
            )
            .unwrap(),
            "invalid_token",
        ),
    ];
    for (what, token, want) in cases {
        let (status, code, _) = error_code(gw.chat(&token, "rampart-demo", "hi").await).await;
        assert_eq!((status, code.as_str()), (401, want), "{what}");
    }

    // A tampered payload fails the signature.
    let good = iss.token(Algorithm::EdDSA, "ed1", iss.claims(json!({})));
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    parts[1] = b64(iss.claims(json!({"sub": "mallory"})).to_string().as_bytes());
    let (status, _, _) = error_code(gw.chat(&parts.join("."), "rampart-demo", "hi").await).await;
    assert_eq!(status, 401);

    // Groups from the token reach Cedar.
    let intern = iss.token(Algorithm::ES256, "ec1", iss.claims(json!({"groups": ["interns"]})));
    let (status, code, _) = error_code(gw.chat(&intern, "rampart-demo", "hi").await).await;
    assert_eq!((status, code.as_str()), (403, "model_not_allowed"));
}

/// Tokens are end users' unless their groups name them an application: an end user's system
/// message follows `[scan] system_messages` (here: refused), an application's passes.
#[tokio::test]
async fn application_groups_mark_application_callers() {
    let iss = issuer().await;
    let config = harness::demo_config(&format!(
        "[auth.oidc]\nissuer = \"{}\"\naudiences = [\"rampart\"]\napplication_groups = [\"services\"]\n\n[scan]\nsystem_messages = \"refuse\"\n",
        iss.url
    ));
    let gw = harness::start_config(&config);
    let body = json!({"model": "rampart-demo", "messages": [
        {"role": "system", "content": "You are the help desk of Acme. Answer briefly."}, {"role": "user", "content": "hi"}]});
    let person = iss.token(Algorithm::ES256, "ec1", iss.claims(json!({})));
    let (status, code, _) = error_code(gw.post("/v1/chat/completions", &person, body.clone()).await).await;
    assert_eq!((status, code.as_str()), (400, "system_message_not_allowed"));
    let service = iss.token(
        Algorithm::ES256,
        "ec1",
        iss.claims(json!({"groups": ["staff", "services"]})),
    );
    let resp = gw.post("/v1/chat/completions", &service, body).await;
    assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
}

/// A group's budget is shared by its members: once `staff` has spent its cap, every staff
/// token is refused; a token outside the group is not.
#[tokio::test]
async fn group_budgets_are_shared_by_members() {
    let iss = issuer().await;
    let config = format!(
        "[[upstreams]]\nname = \"demo\"\nkind = \"demo\"\n\n[[models]]\nname = \"priced\"\ntargets = [{{ upstream = \"demo\", model = \"rampart-demo-1\" }}]\nprice = {{ input = 1000.0, output = 1000.0 }}\n\n[auth.oidc]\nissuer = \"{}\"\naudiences = [\"rampart\"]\n\n[budgets.groups]\nstaff = {{ daily_usd = 0.01 }}\n",
        iss.url
    );
    let gw = harness::start_config(&config);
    let erin = iss.token(
        Algorithm::ES256,
        "ec1",
        iss.claims(json!({"sub": "erin", "groups": ["staff"]})),
    );
    let finn = iss.token(
        Algorithm::ES256,
        "ec1",
        iss.claims(json!({"sub": "finn", "groups": ["staff", "ops"]})),
    );
    let gus = iss.token(
        Algorithm::ES256,
        "ec1",
        iss.claims(json!({"sub": "gus", "groups": ["ops"]})),
    );
    assert_eq!(gw.chat(&erin, "priced", "hi").await.status(), 200);
    let (status, code, v) = error_code(gw.chat(&finn, "priced", "hi").await).await;
    assert_eq!((status, code.as_str()), (429, "budget_exceeded"), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("this group"), "{v}");
    assert_eq!(gw.chat(&gus, "priced", "hi").await.status(), 200);
}

#[tokio::test]
async fn an_unreachable_issuer_fails_closed_with_503() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let iss = issuer().await;
    let config = harness::demo_config(&format!(
        "[auth.oidc]\nissuer = \"http://{dead}\"\naudiences = [\"rampart\"]\n"
    ));
    let gw = harness::start_config(&config);
    let mut claims = iss.claims(json!({}));
    claims["iss"] = json!(format!("http://{dead}"));
    let token = iss.token(Algorithm::ES256, "ec1", claims);
    let (status, code, _) = error_code(gw.chat(&token, "rampart-demo", "hi").await).await;
    assert_eq!((status, code.as_str()), (503, "identity_provider_unavailable"));
    // API keys keep working meanwhile.
    let key = gw.default_key().await;
    assert_eq!(gw.chat(&key, "rampart-demo", "hi").await.status(), 200);
}
