//! The in-toto v1 statement with model-signing's v1.0 predicate: every resource's digest in the
//! predicate, and one subject whose SHA-256 covers all of them in order.

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use super::keys::hex;
use super::manifest::{Digest, Item, Manifest, Serialization};
use super::SignError;

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// model-signing's predicate type.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// The pre-1.0 predicate, which lists only file digests and is not accepted.
pub const PREDICATE_TYPE_V01: &str = "https://model_signing/Digests/v0.1";

/// The payload bytes to sign for a manifest.
pub fn to_payload(manifest: &Manifest) -> Result<Vec<u8>, SignError> {
    let mut root = Sha256::new();
    let resources: Vec<Value> = manifest
        .items
        .iter()
        .map(|(item, digest)| {
            root.update(&digest.value);
            json!({"name": item.name(), "algorithm": digest.algorithm, "digest": hex(&digest.value)})
        })
        .collect();
    let statement = json!({
        "_type": STATEMENT_TYPE,
        "subject": [{"name": manifest.model_name, "digest": {"sha256": hex(&root.finalize())}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {"serialization": manifest.serialization.to_json(), "resources": resources},
    });
    serde_json::to_vec_pretty(&statement).map_err(|e| SignError::Payload(e.to_string()))
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

/// Reads a verified payload back into the manifest it signs, checking its internal consistency
/// (statement and predicate types, one subject, the subject digest over the resources, unique
/// and well-formed resource names).
pub fn from_payload(payload: &[u8]) -> Result<Manifest, SignError> {
    let bad = |what: String| SignError::Payload(what);
    let v: Value = serde_json::from_slice(payload).map_err(|e| bad(format!("not JSON: {e}")))?;
    if v.get("_type").and_then(Value::as_str) != Some(STATEMENT_TYPE) {
        return Err(bad(format!("_type is not {STATEMENT_TYPE}")));
    }
    match v.get("predicateType").and_then(Value::as_str) {
        Some(PREDICATE_TYPE) => {}
        Some(PREDICATE_TYPE_V01) => {
            return Err(bad(
                "a model-signing v0.1 (pre-1.0) signature: it does not record how the model was serialized; re-sign with v1.0".into(),
            ));
        }
        other => return Err(bad(format!("predicateType {other:?}, expected {PREDICATE_TYPE}"))),
    }
    let subjects = v
        .get("subject")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no subject".into()))?;
    let [subject] = subjects.as_slice() else {
        return Err(bad(format!("expected one subject, found {}", subjects.len())));
    };
    let model_name = subject
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let expected_root = subject
        .pointer("/digest/sha256")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("the subject has no sha256 digest".into()))?;
    let predicate = v.get("predicate").ok_or_else(|| bad("no predicate".into()))?;
    let serialization = Serialization::from_json(
        predicate
            .get("serialization")
            .ok_or_else(|| bad("no serialization".into()))?,
    )?;
    let resources = predicate
        .get("resources")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no resources".into()))?;
    let mut root = Sha256::new();
    let mut items = BTreeMap::new();
    for r in resources {
        let field = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| bad(format!("a resource has no {k}")))
        };
        let item = Item::parse(field("name")?, serialization.method)?;
        let value = unhex(field("digest")?).ok_or_else(|| bad(format!("{}: digest is not hex", item.name())))?;
        root.update(&value);
        let digest = Digest {
            algorithm: field("algorithm")?.to_owned(),
            value,
        };
        if let Some(dup) = items.insert(item, digest) {
            return Err(bad(format!("resource listed twice (digest {})", hex(&dup.value))));
        }
    }
    if !hex(&root.finalize()).eq_ignore_ascii_case(expected_root) {
        return Err(bad("the subject digest does not match the listed resources".into()));
    }
    Ok(Manifest {
        model_name,
        serialization,
        items,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::signing::manifest::{HashAlg, Method};

    fn manifest() -> Manifest {
        let mut items = BTreeMap::new();
        for (name, byte) in [("b", 2u8), ("a/x", 1u8)] {
            items.insert(
                Item {
                    path: name.into(),
                    range: None,
                },
                Digest {
                    algorithm: "sha256".into(),
                    value: vec![byte; 32],
                },
            );
        }
        let serialization = Serialization {
            method: Method::Files,
            hash: HashAlg::Sha256,
            allow_symlinks: false,
            ignore_paths: vec![],
        };
        Manifest {
            model_name: "m".into(),
            serialization,
            items,
        }
    }

    #[test]
    fn payload_round_trips() {
        let m = manifest();
        let back = from_payload(&to_payload(&m).unwrap()).unwrap();
        assert_eq!(back.items, m.items);
        assert_eq!(back.model_name, "m");
    }

    #[test]
    fn an_inconsistent_subject_or_a_duplicate_is_refused() {
        let payload = String::from_utf8(to_payload(&manifest()).unwrap()).unwrap();
        let tampered = payload.replace(&hex(&[2u8; 32]), &hex(&[3u8; 32]));
        assert!(from_payload(tampered.as_bytes())
            .unwrap_err()
            .to_string()
            .contains("subject digest"));
        let v01 = payload.replace(PREDICATE_TYPE, PREDICATE_TYPE_V01);
        assert!(from_payload(v01.as_bytes()).is_err());
        let escape = payload.replace("\"a/x\"", "\"../x\"");
        assert!(from_payload(escape.as_bytes()).is_err());
    }
}
