//! Certificate mode: the bundle carries the signing certificate and its chain; the verifier
//! trusts a set of certificates it was given and nothing else.
//!
//! Path building and signature checks are rustls-webpki's. As model-signing does, the chain is
//! checked at the signing certificate's `notBefore` (a key signature carries no trusted time),
//! and the signing certificate must allow signing: key usage `digitalSignature` or extended key
//! usage `codeSigning`.

use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, UnixTime};
use sha2::{Digest as _, Sha256};
use webpki::{ExtendedKeyUsageValidator, KeyPurposeIdIter};
use x509_parser::prelude::{FromDer as _, X509Certificate};

use super::keys::{hex, PublicKey};
use super::SignError;

/// Certificates the verifier trusts as roots of a signing chain.
pub struct TrustStore {
    anchors: Vec<CertificateDer<'static>>,
}

/// What a verified chain says about the signer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SignerCertificate {
    /// The signing certificate's subject.
    pub subject: String,
    /// Its issuer.
    pub issuer: String,
    /// Hex SHA-256 of its DER.
    pub fingerprint: String,
}

fn cert_error(reason: impl std::fmt::Display) -> SignError {
    SignError::Certificate(reason.to_string())
}

/// Every `CERTIFICATE` block of a PEM text, in DER.
pub fn certificates_from_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, SignError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .map(|c| c.map(|c| c.to_vec()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| cert_error(format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(cert_error("no -----BEGIN CERTIFICATE----- block found"));
    }
    Ok(certs)
}

/// The DER SubjectPublicKeyInfo of a certificate.
pub fn spki_of(der: &[u8]) -> Result<Vec<u8>, SignError> {
    let (_, cert) = X509Certificate::from_der(der).map_err(|e| cert_error(format!("unreadable certificate: {e}")))?;
    Ok(cert.public_key().raw.to_vec())
}

/// Accepts any extended key usage; the signing-usage rule is checked separately, as
/// model-signing does (key usage OR extended key usage), which webpki's own validators do not
/// express.
struct AnyUsage;

impl ExtendedKeyUsageValidator for AnyUsage {
    fn validate(&self, _iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        Ok(())
    }
}

impl TrustStore {
    /// Trusts every certificate found in these PEM texts.
    pub fn from_pem(texts: &[Vec<u8>]) -> Result<Self, SignError> {
        let mut anchors = Vec::new();
        for text in texts {
            anchors.extend(certificates_from_pem(text)?.into_iter().map(CertificateDer::from));
        }
        Ok(TrustStore { anchors })
    }

    /// Verifies `chain` (leaf first, as in the bundle) up to one of the trusted certificates and
    /// returns the signing key.
    pub fn verify(&self, chain: &[Vec<u8>]) -> Result<(PublicKey, SignerCertificate), SignError> {
        let leaf_der = chain
            .first()
            .ok_or_else(|| cert_error("the signature carries no certificate"))?;
        let (_, leaf) = X509Certificate::from_der(leaf_der)
            .map_err(|e| cert_error(format!("unreadable signing certificate: {e}")))?;
        let anchors = self
            .anchors
            .iter()
            .map(|c| webpki::anchor_from_trusted_cert(c).map(|a| a.to_owned()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| cert_error(format!("a trusted certificate is unusable as a root: {e:?}")))?;
        let intermediates: Vec<CertificateDer<'_>> =
            chain[1..].iter().map(|c| CertificateDer::from(c.as_slice())).collect();
        let leaf_cert = CertificateDer::from(leaf_der.as_slice());
        let end_entity = webpki::EndEntityCert::try_from(&leaf_cert)
            .map_err(|e| cert_error(format!("unusable signing certificate: {e:?}")))?;
        let not_before = u64::try_from(leaf.validity().not_before.timestamp())
            .map_err(|_| cert_error("signing certificate is valid only before 1970"))?;
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                &intermediates,
                UnixTime::since_unix_epoch(std::time::Duration::from_secs(not_before)),
                AnyUsage,
                None,
                None,
            )
            .map_err(|e| {
                cert_error(format!(
                    "the signing certificate does not chain to a trusted certificate: {e:?}"
                ))
            })?;

        let digital_signature = leaf
            .key_usage()
            .ok()
            .flatten()
            .map(|ku| ku.value.digital_signature())
            .unwrap_or(false);
        let code_signing = leaf
            .extended_key_usage()
            .ok()
            .flatten()
            .map(|eku| eku.value.code_signing)
            .unwrap_or(false);
        if !digital_signature && !code_signing {
            return Err(cert_error(
                "the signing certificate does not allow signing (no digitalSignature key usage, no codeSigning extended key usage)",
            ));
        }
        let key = PublicKey::from_spki_der(leaf.public_key().raw)?;
        let info = SignerCertificate {
            subject: leaf.subject().to_string(),
            issuer: leaf.issuer().to_string(),
            fingerprint: hex(&Sha256::digest(leaf_der)),
        };
        Ok((key, info))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};

    struct Ca {
        cert: rcgen::Certificate,
        key: KeyPair,
        params: CertificateParams,
    }

    fn ca(name: &str, issuer: Option<&Ca>) -> Ca {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let cert = match issuer {
            None => params.self_signed(&key).unwrap(),
            Some(i) => params
                .signed_by(&key, &rcgen::Issuer::from_params(&i.params, &i.key))
                .unwrap(),
        };
        Ca { cert, key, params }
    }

    fn leaf(usages: Vec<KeyUsagePurpose>, issuer: &Ca) -> rcgen::Certificate {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, "model signer");
        p.key_usages = usages;
        p.signed_by(&key, &rcgen::Issuer::from_params(&issuer.params, &issuer.key))
            .unwrap()
    }

    #[test]
    fn a_chain_verifies_to_its_root_and_not_to_a_stranger() {
        let root = ca("root", None);
        let mid = ca("intermediate", Some(&root));
        let signer = leaf(vec![KeyUsagePurpose::DigitalSignature], &mid);
        let chain = vec![signer.der().to_vec(), mid.cert.der().to_vec()];

        let store = TrustStore::from_pem(&[root.cert.pem().into_bytes()]).unwrap();
        let (key, info) = store.verify(&chain).unwrap();
        assert_eq!(key.describe(), "ECDSA P-384");
        assert!(info.subject.contains("model signer"));

        let stranger = ca("stranger", None);
        let other = TrustStore::from_pem(&[stranger.cert.pem().into_bytes()]).unwrap();
        assert!(other.verify(&chain).is_err());
        // Without the intermediate the path cannot be built.
        assert!(store.verify(&chain[..1]).is_err());
    }

    #[test]
    fn a_certificate_that_may_not_sign_is_refused() {
        let root = ca("root", None);
        let signer = leaf(vec![KeyUsagePurpose::KeyEncipherment], &root);
        let store = TrustStore::from_pem(&[root.cert.pem().into_bytes()]).unwrap();
        let err = store.verify(&[signer.der().to_vec()]).unwrap_err();
        assert!(err.to_string().contains("does not allow signing"), "{err}");
    }
}
