//! ECDSA keys in PEM, as model-signing uses them: P-256 with SHA-256 and P-384 with SHA-384,
//! DER-encoded signatures.

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use sha2::{Digest as _, Sha256};

use super::SignError;

/// A private signing key.
pub enum SigningKey {
    /// NIST P-256, signs SHA-256 digests.
    P256(p256::ecdsa::SigningKey),
    /// NIST P-384, signs SHA-384 digests.
    P384(p384::ecdsa::SigningKey),
}

/// A public verification key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    /// NIST P-256.
    P256(p256::ecdsa::VerifyingKey),
    /// NIST P-384.
    P384(p384::ecdsa::VerifyingKey),
}

fn key_error(reason: impl std::fmt::Display) -> SignError {
    SignError::Key(reason.to_string())
}

impl SigningKey {
    /// Reads a PEM private key: PKCS#8 (`PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE
    /// KEY`, needs `password`) or SEC1 (`EC PRIVATE KEY`).
    pub fn from_pem(pem: &str, password: Option<&str>) -> Result<Self, SignError> {
        if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            let password = password.ok_or_else(|| key_error("the private key is encrypted; a password is needed"))?;
            if let Ok(k) = p256::SecretKey::from_pkcs8_encrypted_pem(pem, password) {
                return Ok(SigningKey::P256(k.into()));
            }
            return p384::SecretKey::from_pkcs8_encrypted_pem(pem, password)
                .map(|k| SigningKey::P384(k.into()))
                .map_err(|_| key_error("cannot decrypt the private key (wrong password, or not a P-256/P-384 key)"));
        }
        if pem.contains("-----BEGIN EC PRIVATE KEY-----") {
            if let Ok(k) = p256::SecretKey::from_sec1_pem(pem) {
                return Ok(SigningKey::P256(k.into()));
            }
            return p384::SecretKey::from_sec1_pem(pem)
                .map(|k| SigningKey::P384(k.into()))
                .map_err(|_| key_error("unsupported EC private key: only P-256 and P-384 are supported"));
        }
        if pem.contains("-----BEGIN PRIVATE KEY-----") {
            if let Ok(k) = p256::SecretKey::from_pkcs8_pem(pem) {
                return Ok(SigningKey::P256(k.into()));
            }
            return p384::SecretKey::from_pkcs8_pem(pem)
                .map(|k| SigningKey::P384(k.into()))
                .map_err(|_| key_error("unsupported private key: only ECDSA P-256 and P-384 are supported"));
        }
        Err(key_error(
            "no PEM private key found (expected PRIVATE KEY, ENCRYPTED PRIVATE KEY or EC PRIVATE KEY)",
        ))
    }

    /// Signs `message`, returning a DER ECDSA signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::P256(k) => {
                let s: p256::ecdsa::DerSignature = k.sign(message);
                s.as_bytes().to_vec()
            }
            SigningKey::P384(k) => {
                let s: p384::ecdsa::DerSignature = k.sign(message);
                s.as_bytes().to_vec()
            }
        }
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        match self {
            SigningKey::P256(k) => PublicKey::P256(*k.verifying_key()),
            SigningKey::P384(k) => PublicKey::P384(*k.verifying_key()),
        }
    }
}

impl PublicKey {
    /// Reads a PEM `PUBLIC KEY` (SubjectPublicKeyInfo).
    pub fn from_pem(pem: &str) -> Result<Self, SignError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::P256(k));
        }
        p384::ecdsa::VerifyingKey::from_public_key_pem(pem)
            .map(PublicKey::P384)
            .map_err(|_| key_error("not a PEM ECDSA P-256 or P-384 public key (expected -----BEGIN PUBLIC KEY-----)"))
    }

    /// Reads a DER SubjectPublicKeyInfo, as found in a certificate.
    pub fn from_spki_der(der: &[u8]) -> Result<Self, SignError> {
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            return Ok(PublicKey::P256(k));
        }
        p384::ecdsa::VerifyingKey::from_public_key_der(der)
            .map(PublicKey::P384)
            .map_err(|_| key_error("the certificate's key is not ECDSA P-256 or P-384"))
    }

    /// The key as PEM with LF line endings, byte for byte what Python's `cryptography` writes.
    pub fn to_pem(&self) -> Result<String, SignError> {
        match self {
            PublicKey::P256(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::P384(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(key_error)
    }

    /// The hint model-signing records in key mode: hex SHA-256 of the PEM public key.
    pub fn hint(&self) -> Result<String, SignError> {
        Ok(hex(&Sha256::digest(self.to_pem()?.as_bytes())))
    }

    /// Checks a DER signature over `message` with the curve's hash.
    pub fn verify(&self, message: &[u8], der_signature: &[u8]) -> bool {
        match self {
            PublicKey::P256(k) => p256::ecdsa::DerSignature::try_from(der_signature)
                .map(|s| k.verify(message, &s).is_ok())
                .unwrap_or(false),
            PublicKey::P384(k) => p384::ecdsa::DerSignature::try_from(der_signature)
                .map(|s| k.verify(message, &s).is_ok())
                .unwrap_or(false),
        }
    }

    /// "ECDSA P-256" or "ECDSA P-384", for reports.
    pub fn describe(&self) -> &'static str {
        match self {
            PublicKey::P256(_) => "ECDSA P-256",
            PublicKey::P384(_) => "ECDSA P-384",
        }
    }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use p256::pkcs8::EncodePrivateKey;

    #[test]
    fn sign_and_verify_on_both_curves_and_reject_tampering() {
        let keys = [
            SigningKey::P256(p256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap()),
            SigningKey::P384(p384::ecdsa::SigningKey::from_slice(&[9u8; 48]).unwrap()),
        ];
        for key in keys {
            let sig = key.sign(b"payload");
            let public = key.public_key();
            assert!(public.verify(b"payload", &sig));
            assert!(!public.verify(b"payloae", &sig));
            assert!(!public.verify(b"payload", &sig[..sig.len() - 1]));
            let pem = public.to_pem().unwrap();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n") && pem.ends_with("-----END PUBLIC KEY-----\n"));
            assert_eq!(PublicKey::from_pem(&pem).unwrap(), public);
            assert_eq!(public.hint().unwrap().len(), 64);
        }
    }

    #[test]
    fn private_keys_load_from_pkcs8_sec1_and_encrypted_pem() {
        let secret = p384::SecretKey::from_slice(&[5u8; 48]).unwrap();
        let pkcs8 = secret.to_pkcs8_pem(LineEnding::LF).unwrap();
        assert!(matches!(
            SigningKey::from_pem(&pkcs8, None).unwrap(),
            SigningKey::P384(_)
        ));
        let sec1 = secret.to_sec1_pem(LineEnding::LF).unwrap();
        assert!(matches!(
            SigningKey::from_pem(&sec1, None).unwrap(),
            SigningKey::P384(_)
        ));
        let encrypted = secret
            .to_pkcs8_encrypted_pem(&mut rand_core(), "pw", LineEnding::LF)
            .unwrap();
        assert!(SigningKey::from_pem(&encrypted, None).is_err());
        assert!(SigningKey::from_pem(&encrypted, Some("nope")).is_err());
        assert!(matches!(
            SigningKey::from_pem(&encrypted, Some("pw")).unwrap(),
            SigningKey::P384(_)
        ));
        assert!(SigningKey::from_pem("garbage", None).is_err());
    }

    fn rand_core() -> p256::elliptic_curve::rand_core::OsRng {
        p256::elliptic_curve::rand_core::OsRng
    }
}
