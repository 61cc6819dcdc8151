//! Encryption at rest: payloads are sealed with XChaCha20-Poly1305 under a per-subject data
//! key; data keys are stored wrapped by a master key from a [`KeyProvider`].
//!
//! XChaCha's 192-bit random nonces make nonce reuse a non-issue however many records one key
//! seals. Rotating the master key re-wraps the (few) data keys and leaves every record as it
//! is; destroying a subject's wrapped data keys makes that subject's payloads unreadable
//! (crypto-shredding) while their digests, and so the chain, stay intact.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::AuditError;

/// Nonce length of XChaCha20-Poly1305.
pub const NONCE_LEN: usize = 24;

/// A 256-bit symmetric key that is wiped when dropped.
#[derive(Clone)]
pub struct SecretKey(Zeroizing<[u8; 32]>);

impl SecretKey {
    /// Wraps raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> SecretKey {
        SecretKey(Zeroizing::new(bytes))
    }

    /// A fresh random key.
    pub fn generate() -> SecretKey {
        let mut k = [0u8; 32];
        rand::rng().fill_bytes(&mut k);
        let key = SecretKey::from_bytes(k);
        k.zeroize();
        key
    }

    /// Parses base64 (standard or URL-safe) or hex text holding exactly 32 bytes.
    pub fn parse(text: &str) -> Result<SecretKey, AuditError> {
        use base64::Engine;
        let text = text.trim();
        let bytes = crate::record::unhex(text)
            .filter(|b| b.len() == 32)
            .or_else(|| base64::engine::general_purpose::STANDARD.decode(text).ok())
            .or_else(|| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| AuditError::Key("a key must be 32 bytes in base64 or hex".into()))?;
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| AuditError::Key(format!("a key must be 32 bytes, this one has {}", bytes.len())))?;
        Ok(SecretKey::from_bytes(arr))
    }

    /// The raw bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A short public identifier (never the key): the first 8 bytes of SHA-256 over a tag
    /// and the key, in hex.
    pub fn id(&self) -> String {
        let mut h = Sha256::new();
        h.update(b"rampart-audit/key-id/v1");
        h.update(self.0.as_slice());
        crate::record::hex(&h.finalize()[..8])
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id())
    }
}

/// Seals `plaintext`; the result is `nonce || ciphertext || tag`. `aad` binds it to its place.
pub fn seal(key: &SecretKey, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, AuditError> {
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let ct = cipher
        .encrypt(&XNonce::from(nonce), Payload { msg: plaintext, aad })
        .map_err(|_| AuditError::Crypto("encryption failed".into()))?;
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Opens what [`seal`] produced.
pub fn open(key: &SecretKey, sealed: &[u8], aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, AuditError> {
    if sealed.len() < NONCE_LEN + 16 {
        return Err(AuditError::Crypto("sealed value too short".into()));
    }
    let (nonce, ct) = sealed.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| AuditError::Crypto("sealed value too short".into()))?;
    let cipher = XChaCha20Poly1305::new(key.bytes().into());
    cipher
        .decrypt(&XNonce::from(nonce), Payload { msg: ct, aad })
        .map(Zeroizing::new)
        .map_err(|_| AuditError::Crypto("authentication failed (wrong key or altered bytes)".into()))
}

/// Where master keys live. The local provider reads them from the environment or files; a
/// KMS implements the same two calls.
pub trait KeyProvider: Send + Sync + std::fmt::Debug {
    /// The id of the key new data keys are wrapped under.
    fn current_id(&self) -> String;
    /// Wraps a data key under the current master key; returns (master key id, wrapped bytes).
    fn wrap(&self, dek: &SecretKey, aad: &[u8]) -> Result<(String, Vec<u8>), AuditError>;
    /// Unwraps a data key wrapped under master key `kek_id`.
    fn unwrap(&self, kek_id: &str, wrapped: &[u8], aad: &[u8]) -> Result<SecretKey, AuditError>;
}

/// Master keys held in memory: the current one and any older ones still needed to unwrap.
#[derive(Debug)]
pub struct LocalKeys {
    current: SecretKey,
    old: Vec<SecretKey>,
}

impl LocalKeys {
    /// A provider with `current` for wrapping and `old` for unwrapping only.
    pub fn new(current: SecretKey, old: Vec<SecretKey>) -> LocalKeys {
        LocalKeys { current, old }
    }
}

impl KeyProvider for LocalKeys {
    fn current_id(&self) -> String {
        self.current.id()
    }

    fn wrap(&self, dek: &SecretKey, aad: &[u8]) -> Result<(String, Vec<u8>), AuditError> {
        Ok((self.current.id(), seal(&self.current, dek.bytes(), aad)?))
    }

    fn unwrap(&self, kek_id: &str, wrapped: &[u8], aad: &[u8]) -> Result<SecretKey, AuditError> {
        let kek = std::iter::once(&self.current)
            .chain(self.old.iter())
            .find(|k| k.id() == kek_id)
            .ok_or_else(|| AuditError::Key(format!("master key {kek_id} is not available")))?;
        let raw = open(kek, wrapped, aad)?;
        let arr: [u8; 32] = raw
            .as_slice()
            .try_into()
            .map_err(|_| AuditError::Crypto("a wrapped data key has the wrong length".into()))?;
        Ok(SecretKey::from_bytes(arr))
    }
}

/// The associated data that binds a wrapped data key to its subject and id.
pub fn dek_aad(subject: &str, dek_id: i64) -> Vec<u8> {
    let mut aad = b"rampart-audit/dek/v1\0".to_vec();
    aad.extend_from_slice(&dek_id.to_be_bytes());
    aad.extend_from_slice(subject.as_bytes());
    aad
}

/// The associated data that binds a payload to its record.
pub fn payload_aad(chain: &str, seq: u64) -> Vec<u8> {
    let mut aad = b"rampart-audit/payload/v1\0".to_vec();
    aad.extend_from_slice(&seq.to_be_bytes());
    aad.extend_from_slice(chain.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_tamper() {
        let k = SecretKey::generate();
        let sealed = seal(&k, b"hello", b"ad").unwrap();
        assert_eq!(open(&k, &sealed, b"ad").unwrap().as_slice(), b"hello");
        assert!(open(&k, &sealed, b"other").is_err());
        let mut bad = sealed.clone();
        bad[30] ^= 1;
        assert!(open(&k, &bad, b"ad").is_err());
        assert!(open(&SecretKey::generate(), &sealed, b"ad").is_err());
        assert!(open(&k, &sealed[..10], b"ad").is_err());
    }

    #[test]
    fn rotation_keeps_old_wraps_readable() {
        let old = SecretKey::generate();
        let dek = SecretKey::generate();
        let (id, wrapped) = LocalKeys::new(old.clone(), vec![]).wrap(&dek, b"x").unwrap();
        let rotated = LocalKeys::new(SecretKey::generate(), vec![old]);
        assert_ne!(rotated.current_id(), id);
        assert_eq!(rotated.unwrap(&id, &wrapped, b"x").unwrap().bytes(), dek.bytes());
        let forgotten = LocalKeys::new(SecretKey::generate(), vec![]);
        assert!(forgotten.unwrap(&id, &wrapped, b"x").is_err());
    }

    #[test]
    fn parses_hex_and_base64() {
        let k = SecretKey::generate();
        let hex = crate::record::hex(k.bytes());
        assert_eq!(SecretKey::parse(&hex).unwrap().bytes(), k.bytes());
        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(k.bytes());
        assert_eq!(SecretKey::parse(&b64).unwrap().bytes(), k.bytes());
        assert!(SecretKey::parse("short").is_err());
    }
}
