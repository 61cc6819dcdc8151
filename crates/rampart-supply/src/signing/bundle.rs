//! The Sigstore bundle (v0.3 JSON) that carries a DSSE envelope, and DSSE's pre-authentication
//! encoding.
//!
//! Only the fields model-signing writes for key and certificate signatures are modelled; anything
//! else in the file is kept out of the way by serde and never trusted.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::SignError;

/// The bundle media type model-signing writes and requires.
pub const BUNDLE_MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";
/// The DSSE payload type of an in-toto statement.
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// A signature file larger than this is refused before parsing.
pub const MAX_BUNDLE_BYTES: u64 = 256 << 20;

/// A Sigstore bundle.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// Must be [`BUNDLE_MEDIA_TYPE`].
    pub media_type: String,
    /// What identifies the signer: a key hint or a certificate chain.
    pub verification_material: VerificationMaterial,
    /// The signed envelope; a bundle without one (a message signature) is not a model signature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsse_envelope: Option<Envelope>,
}

/// How the bundle names its signer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// Key mode: a hint (SHA-256 of the PEM public key) of the key that signed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<PublicKeyIdentifier>,
    /// Certificate mode: the signing certificate first, then the rest of its chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x509_certificate_chain: Option<CertificateChain>,
    /// A single certificate (Sigstore bundle v0.3 keyless form).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    /// Transparency log entries; key and certificate signatures carry none.
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
}

/// A key hint.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PublicKeyIdentifier {
    /// Hex SHA-256 of the signer's public key in PEM (SubjectPublicKeyInfo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A certificate chain, leaf first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CertificateChain {
    /// DER certificates.
    #[serde(default)]
    pub certificates: Vec<Certificate>,
}

/// One DER certificate, base64 in JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Certificate {
    /// Base64 DER.
    pub raw_bytes: String,
}

/// A DSSE envelope.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 of the raw payload bytes (the bytes that were signed, via [`pae`]).
    pub payload: String,
    /// Must be [`IN_TOTO_PAYLOAD_TYPE`].
    pub payload_type: String,
    /// One or more signatures over `pae(payload_type, payload)`.
    pub signatures: Vec<EnvelopeSignature>,
}

/// One DSSE signature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvelopeSignature {
    /// Base64 of a DER ECDSA signature.
    pub sig: String,
    /// Unused by model-signing; written empty.
    #[serde(default)]
    pub keyid: String,
}

/// An envelope with its payload and signatures decoded (nothing verified yet).
pub struct Opened<'a> {
    /// The envelope.
    pub envelope: &'a Envelope,
    /// The raw payload bytes.
    pub payload: Vec<u8>,
    /// The raw signatures.
    pub signatures: Vec<Vec<u8>>,
}

/// DSSE v1 pre-authentication encoding: what is actually signed, so that the payload type is
/// authenticated together with the payload.
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = format!("DSSEv1 {} {} {} ", payload_type.len(), payload_type, payload.len()).into_bytes();
    out.extend_from_slice(payload);
    out
}

impl Bundle {
    /// Parses a bundle, checking only its shape; nothing in it is trusted yet.
    pub fn from_json(bytes: &[u8]) -> Result<Self, SignError> {
        let bundle: Bundle = serde_json::from_slice(bytes).map_err(|e| SignError::Bundle(e.to_string()))?;
        if bundle.media_type != BUNDLE_MEDIA_TYPE {
            return Err(SignError::Bundle(format!(
                "media type {:?}, expected {BUNDLE_MEDIA_TYPE:?}",
                bundle.media_type
            )));
        }
        Ok(bundle)
    }

    /// The envelope, its payload bytes and its signatures decoded.
    pub fn envelope(&self) -> Result<Opened<'_>, SignError> {
        let envelope = self
            .dsse_envelope
            .as_ref()
            .ok_or_else(|| SignError::Bundle("no dsseEnvelope (not a model signature)".into()))?;
        if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
            return Err(SignError::Bundle(format!(
                "payload type {:?}, expected {IN_TOTO_PAYLOAD_TYPE:?}",
                envelope.payload_type
            )));
        }
        let payload = STANDARD
            .decode(envelope.payload.trim())
            .map_err(|e| SignError::Bundle(format!("payload is not base64: {e}")))?;
        if envelope.signatures.is_empty() {
            return Err(SignError::Bundle("the envelope has no signature".into()));
        }
        let signatures = envelope
            .signatures
            .iter()
            .map(|s| STANDARD.decode(s.sig.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SignError::Bundle(format!("signature is not base64: {e}")))?;
        Ok(Opened {
            envelope,
            payload,
            signatures,
        })
    }

    /// The certificate chain in DER, leaf first (certificate mode), or an empty list.
    pub fn certificates(&self) -> Result<Vec<Vec<u8>>, SignError> {
        let material = &self.verification_material;
        let listed = match (&material.x509_certificate_chain, &material.certificate) {
            (Some(chain), _) => chain.certificates.iter().collect::<Vec<_>>(),
            (None, Some(one)) => vec![one],
            (None, None) => Vec::new(),
        };
        listed
            .into_iter()
            .map(|c| STANDARD.decode(c.raw_bytes.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| SignError::Bundle(format!("certificate is not base64: {e}")))
    }

    /// Builds a bundle around one signature.
    pub fn new(payload: &[u8], signature: &[u8], material: VerificationMaterial) -> Self {
        Bundle {
            media_type: BUNDLE_MEDIA_TYPE.into(),
            verification_material: material,
            dsse_envelope: Some(Envelope {
                payload: STANDARD.encode(payload),
                payload_type: IN_TOTO_PAYLOAD_TYPE.into(),
                signatures: vec![EnvelopeSignature {
                    sig: STANDARD.encode(signature),
                    keyid: String::new(),
                }],
            }),
        }
    }

    /// Certificate-mode verification material.
    pub fn chain_material(chain: &[Vec<u8>]) -> VerificationMaterial {
        VerificationMaterial {
            x509_certificate_chain: Some(CertificateChain {
                certificates: chain
                    .iter()
                    .map(|der| Certificate {
                        raw_bytes: STANDARD.encode(der),
                    })
                    .collect(),
            }),
            ..Default::default()
        }
    }

    /// Key-mode verification material.
    pub fn key_material(hint: String) -> VerificationMaterial {
        VerificationMaterial {
            public_key: Some(PublicKeyIdentifier { hint: Some(hint) }),
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // https://github.com/secure-systems-lab/dsse/blob/v1.0.0/protocol.md
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
    }

    #[test]
    fn bundles_round_trip_and_wrong_media_types_are_refused() {
        let b = Bundle::new(b"{}", b"sig", Bundle::key_material("ab".into()));
        let json = serde_json::to_vec(&b).unwrap();
        let back = Bundle::from_json(&json).unwrap();
        let opened = back.envelope().unwrap();
        assert_eq!(opened.payload, b"{}");
        assert_eq!(opened.signatures, vec![b"sig".to_vec()]);
        let wrong = String::from_utf8(json).unwrap().replace("v0.3", "v0.1");
        assert!(Bundle::from_json(wrong.as_bytes()).is_err());
    }
}
