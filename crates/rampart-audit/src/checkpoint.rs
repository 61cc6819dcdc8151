//! Signed checkpoints: every N records or T seconds the ledger signs its chain head with
//! Ed25519. A checkpoint kept somewhere else (a file on another disk, a webhook) makes
//! truncating the tail, or rewriting the chain and recomputing every hash, detectable.

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::record::{hex, unhex};
use crate::AuditError;

/// Domain separation for checkpoint signatures.
pub const CHECKPOINT_TAG: &[u8] = b"rampart-audit/checkpoint/v1";

/// A signed statement "chain C had N records, the last with hash H, at time T".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The chain.
    pub chain: String,
    /// Sequence number of the last record covered.
    pub seq: u64,
    /// Hash of that record, hex.
    pub head: String,
    /// Milliseconds since the Unix epoch.
    pub ts_ms: i64,
    /// Signing key id (hex of the first 8 bytes of the public key).
    pub key_id: String,
    /// Ed25519 signature over [`Checkpoint::message`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The signed bytes: tag, then length-prefixed chain, seq, head, time (big-endian).
    pub fn message(chain: &str, seq: u64, head: &[u8; 32], ts_ms: i64) -> Vec<u8> {
        let mut m = Vec::with_capacity(CHECKPOINT_TAG.len() + chain.len() + 52);
        m.extend_from_slice(CHECKPOINT_TAG);
        m.extend_from_slice(&(chain.len() as u32).to_be_bytes());
        m.extend_from_slice(chain.as_bytes());
        m.extend_from_slice(&seq.to_be_bytes());
        m.extend_from_slice(head);
        m.extend_from_slice(&ts_ms.to_be_bytes());
        m
    }

    /// The head hash as bytes.
    pub fn head_bytes(&self) -> Option<[u8; 32]> {
        unhex(&self.head).and_then(|b| b.try_into().ok())
    }

    /// Checks the signature with `key`.
    pub fn verify(&self, key: &VerifyingKey) -> bool {
        let Some(head) = self.head_bytes() else {
            return false;
        };
        let Some(sig) = unhex(&self.signature).and_then(|b| <[u8; 64]>::try_from(b).ok()) else {
            return false;
        };
        key.verify_strict(
            &Checkpoint::message(&self.chain, self.seq, &head, self.ts_ms),
            &Signature::from_bytes(&sig),
        )
        .is_ok()
    }
}

/// The ledger's signing key.
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.key_id())
    }
}

/// The id of a public key: hex of its first 8 bytes.
pub fn key_id(key: &VerifyingKey) -> String {
    hex(&key.as_bytes()[..8])
}

impl Signer {
    /// From a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Signer {
        Signer {
            key: SigningKey::from_bytes(seed),
        }
    }

    /// Loads the seed (hex) from `path`, creating a new key there (mode 0600) with its public
    /// key beside it (`.pub`) when the file does not exist.
    pub fn load_or_create(path: &Path) -> Result<Signer, AuditError> {
        let io = |e: std::io::Error| AuditError::Key(format!("signing key `{}`: {e}", path.display()));
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut bytes = unhex(&text)
                    .ok_or_else(|| AuditError::Key(format!("signing key `{}` is not hex", path.display())))?;
                let seed: [u8; 32] = bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| AuditError::Key(format!("signing key `{}` must hold 32 bytes", path.display())))?;
                bytes.zeroize();
                Ok(Signer::from_seed(&seed))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut seed = [0u8; 32];
                rand::rng().fill_bytes(&mut seed);
                let signer = Signer::from_seed(&seed);
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(io)?;
                }
                let mut opts = std::fs::OpenOptions::new();
                opts.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
                let mut f = opts.open(path).map_err(io)?;
                f.write_all(hex(&seed).as_bytes()).map_err(io)?;
                f.sync_all().map_err(io)?;
                seed.zeroize();
                std::fs::write(path.with_extension("pub"), signer.public_hex()).map_err(io)?;
                Ok(signer)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// The public key.
    pub fn public(&self) -> VerifyingKey {
        self.key.verifying_key()
    }

    /// The public key in hex (what an auditor keeps).
    pub fn public_hex(&self) -> String {
        hex(self.public().as_bytes())
    }

    /// The key id.
    pub fn key_id(&self) -> String {
        key_id(&self.public())
    }

    /// Signs a chain head.
    pub fn sign(&self, chain: &str, seq: u64, head: &[u8; 32], ts_ms: i64) -> Checkpoint {
        let sig = self.key.sign(&Checkpoint::message(chain, seq, head, ts_ms));
        Checkpoint {
            chain: chain.to_string(),
            seq,
            head: hex(head),
            ts_ms,
            key_id: self.key_id(),
            signature: hex(&sig.to_bytes()),
        }
    }
}

/// Parses a public key given as hex (64 characters).
pub fn parse_public(text: &str) -> Result<VerifyingKey, AuditError> {
    let bytes = unhex(text.trim())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| AuditError::Key("a public key is 32 bytes in hex".into()))?;
    VerifyingKey::from_bytes(&bytes).map_err(|_| AuditError::Key("not a valid Ed25519 public key".into()))
}

/// Appends a checkpoint as one JSON line to `path` and syncs it.
pub fn export_to_file(path: &Path, cp: &Checkpoint) -> Result<(), AuditError> {
    let io = |e: std::io::Error| AuditError::Export(format!("`{}`: {e}", path.display()));
    let mut line = serde_json::to_vec(cp).map_err(|e| AuditError::Export(e.to_string()))?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    f.write_all(&line).map_err(io)?;
    f.sync_data().map_err(io)
}

/// Reads checkpoints kept elsewhere (JSON Lines); malformed lines are errors, not skipped.
pub fn read_exported(path: &Path) -> Result<Vec<Checkpoint>, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuditError::Export(format!("`{}`: {e}", path.display())))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| AuditError::Export(format!("`{}` line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify() {
        let s = Signer::from_seed(&[7; 32]);
        let cp = s.sign("local", 10, &[1; 32], 5);
        assert!(cp.verify(&s.public()));
        let mut bad = cp.clone();
        bad.seq = 11;
        assert!(!bad.verify(&s.public()));
        let mut bad = cp.clone();
        bad.head = hex(&[2; 32]);
        assert!(!bad.verify(&s.public()));
        assert!(!cp.verify(&Signer::from_seed(&[8; 32]).public()));
    }

    #[test]
    fn key_file_is_created_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.key");
        let a = Signer::load_or_create(&p).unwrap();
        let b = Signer::load_or_create(&p).unwrap();
        assert_eq!(a.public_hex(), b.public_hex());
        let public = std::fs::read_to_string(p.with_extension("pub")).unwrap();
        assert_eq!(parse_public(&public).unwrap(), a.public());
    }
}
