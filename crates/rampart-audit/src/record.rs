//! What one ledger record holds and how its hash is computed.
//!
//! The hash covers every stored field except the payload ciphertext itself, which is
//! committed through its digest: retention can then drop the ciphertext (and erasure can
//! destroy its key) without changing any hash. The byte layout is specified in `FORMAT.md`;
//! an auditor's script must produce the same bytes.

use serde::Serialize;
use sha2::{Digest, Sha256};

/// Domain separation for record hashes.
pub const RECORD_TAG: &[u8] = b"rampart-audit/record/v1";
/// The `prev_hash` of a chain's first record.
pub const GENESIS: [u8; 32] = [0; 32];

/// What a record is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// One model exchange (or the start or end of a streamed one).
    Exchange,
    /// An administrator's action.
    Admin,
}

impl Kind {
    /// The stored name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Exchange => "exchange",
            Kind::Admin => "admin",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "exchange" => Some(Kind::Exchange),
            "admin" => Some(Kind::Admin),
            _ => None,
        }
    }
}

/// A record as the caller hands it to the ledger: searchable fields, metadata, and an
/// optional payload that is encrypted under the subject's data key before it is stored.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Exchange or admin action.
    pub kind: Kind,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// The data subject whose key encrypts the payload (a user id or pseudonym).
    pub subject: String,
    /// Who acted (`key:ID`, `user:ID`, `anonymous`).
    pub principal: String,
    /// The model asked for, if any.
    pub model: String,
    /// What was decided (`allowed`, `refused`, `blocked`, `failed`, or the admin action).
    pub decision: String,
    /// Finding labels (`detector:type`), for search.
    pub findings: Vec<String>,
    /// Everything else, as a JSON object; stored as these exact bytes.
    pub meta: serde_json::Value,
    /// Bodies to keep encrypted (already redacted by the caller), if any.
    pub payload: Option<Vec<u8>>,
}

impl Entry {
    /// An administrator's action by `actor` (`key:ID`, `user:ID`, `cli:NAME`, `system:...`):
    /// no subject, no payload; `action` is both the decision and `meta.action`.
    pub fn admin(actor: &str, action: &str, mut meta: serde_json::Value) -> Entry {
        if let Some(o) = meta.as_object_mut() {
            o.insert("action".into(), serde_json::Value::String(action.to_string()));
        }
        Entry {
            kind: Kind::Admin,
            ts_ms: crate::now_ms(),
            subject: String::new(),
            principal: actor.to_string(),
            model: String::new(),
            decision: action.to_string(),
            findings: vec![],
            meta,
            payload: None,
        }
    }
}

/// A record as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The chain (one per writer: a gateway replica).
    pub chain: String,
    /// Position in the chain, from 1, without gaps.
    pub seq: u64,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// `exchange` or `admin`.
    pub kind: String,
    /// Data subject.
    pub subject: String,
    /// Who acted.
    pub principal: String,
    /// Model.
    pub model: String,
    /// Decision.
    pub decision: String,
    /// Finding labels joined by `\n`.
    pub findings: String,
    /// Canonical metadata bytes (JSON).
    pub meta: Vec<u8>,
    /// The data key that sealed the payload.
    pub dek_id: Option<i64>,
    /// SHA-256 of `nonce || ciphertext`; kept when the payload is dropped.
    pub payload_digest: Option<[u8; 32]>,
    /// `nonce || ciphertext`, until retention drops it.
    pub payload: Option<Vec<u8>>,
    /// Hash of the previous record in this chain.
    pub prev_hash: [u8; 32],
    /// This record's hash.
    pub hash: [u8; 32],
}

fn field(h: &mut Sha256, bytes: &[u8]) {
    h.update((bytes.len() as u32).to_be_bytes());
    h.update(bytes);
}

impl Stored {
    /// Computes the hash of this record from its fields (not from `hash`).
    pub fn compute_hash(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(RECORD_TAG);
        field(&mut h, self.chain.as_bytes());
        h.update(self.seq.to_be_bytes());
        h.update(self.prev_hash);
        h.update(self.ts_ms.to_be_bytes());
        field(&mut h, self.kind.as_bytes());
        field(&mut h, self.subject.as_bytes());
        field(&mut h, self.principal.as_bytes());
        field(&mut h, self.model.as_bytes());
        field(&mut h, self.decision.as_bytes());
        field(&mut h, self.findings.as_bytes());
        field(&mut h, &self.meta);
        match (self.dek_id, self.payload_digest) {
            (Some(id), Some(d)) => {
                h.update([1]);
                h.update(id.to_be_bytes());
                h.update(d);
            }
            _ => h.update([0]),
        }
        h.finalize().into()
    }
}

/// SHA-256 of a stored payload.
pub fn payload_digest(payload: &[u8]) -> [u8; 32] {
    Sha256::digest(payload).into()
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Parses lower- or upper-case hex.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|p| u8::from_str_radix(p, 16).ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Stored {
        Stored {
            chain: "local".into(),
            seq: 1,
            ts_ms: 1_700_000_000_000,
            kind: "exchange".into(),
            subject: "alice".into(),
            principal: "key:k1".into(),
            model: "demo".into(),
            decision: "allowed".into(),
            findings: String::new(),
            meta: br#"{"a":1}"#.to_vec(),
            dek_id: None,
            payload_digest: None,
            payload: None,
            prev_hash: GENESIS,
            hash: [0; 32],
        }
    }

    #[test]
    fn every_field_changes_the_hash() {
        let base = sample().compute_hash();
        let mut variants = Vec::new();
        let mut r = sample();
        r.chain = "other".into();
        variants.push(r);
        let mut r = sample();
        r.seq = 2;
        variants.push(r);
        let mut r = sample();
        r.ts_ms += 1;
        variants.push(r);
        let mut r = sample();
        r.subject = "bob".into();
        variants.push(r);
        let mut r = sample();
        r.decision = "refused".into();
        variants.push(r);
        let mut r = sample();
        r.meta = br#"{"a":2}"#.to_vec();
        variants.push(r);
        let mut r = sample();
        r.prev_hash = [1; 32];
        variants.push(r);
        let mut r = sample();
        r.dek_id = Some(1);
        r.payload_digest = Some([0; 32]);
        variants.push(r);
        for v in variants {
            assert_ne!(v.compute_hash(), base);
        }
        // Dropping the ciphertext does not change the hash.
        let mut r = sample();
        r.dek_id = Some(1);
        r.payload_digest = Some([3; 32]);
        r.payload = Some(vec![1, 2, 3]);
        let with = r.compute_hash();
        r.payload = None;
        assert_eq!(r.compute_hash(), with);
    }

    #[test]
    fn length_prefixes_keep_fields_apart() {
        let mut a = sample();
        a.subject = "ab".into();
        a.principal = "c".into();
        let mut b = sample();
        b.subject = "a".into();
        b.principal = "bc".into();
        assert_ne!(a.compute_hash(), b.compute_hash());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(unhex(&hex(&[0, 255, 16])), Some(vec![0, 255, 16]));
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
