//! Model signing and verification in the OpenSSF model-signing v1.0 format.
//!
//! A signature is a Sigstore bundle ([`bundle`]) holding a DSSE envelope whose payload is an
//! in-toto statement ([`statement`]) listing the digest of every file or shard of the model
//! ([`manifest`]). Key mode signs with an ECDSA P-256/P-384 key ([`keys`]); certificate mode adds
//! the signing certificate and its chain, verified against certificates the verifier trusts
//! ([`certs`]). Signatures made here verify with the `model-signing` Python package and the
//! reverse.
//!
//! Verification is strict by default: a changed, missing or added file fails it. Files the
//! *signature* says it left out are not silently accepted: the verifier's own ignore list
//! decides, and a file excluded only by the signer is a failure unless the caller accepts the
//! signer's exclusions, in which case it is reported.

pub mod bundle;
pub mod certs;
pub mod keys;
pub mod manifest;
pub mod statement;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::Serialize;

use bundle::{pae, Bundle, MAX_BUNDLE_BYTES};
use certs::{SignerCertificate, TrustStore};
use keys::{PublicKey, SigningKey};
use manifest::{hash_model, HashRequest, Method, Serialization};

/// What goes wrong while signing or verifying. A verification that runs to the end but finds a
/// difference is not an error: see [`Verification::problems`].
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A key could not be used.
    #[error("key: {0}")]
    Key(String),
    /// A certificate or chain could not be used or does not verify.
    #[error("certificate: {0}")]
    Certificate(String),
    /// The signature file is not a usable bundle.
    #[error("signature file: {0}")]
    Bundle(String),
    /// The signed payload is not a valid model-signing v1.0 statement.
    #[error("signed payload: {0}")]
    Payload(String),
    /// The signature does not verify with the trusted key.
    #[error("signature does not verify: {0}")]
    BadSignature(String),
    /// The model directory cannot be serialized (symlink, special file, ...).
    #[error("model: {0}")]
    Model(String),
}

/// The git files model-signing leaves out by default.
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// Paths to leave out, relative to the model root.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    /// Paths given by the user: relative to the model root, or absolute inside it.
    pub paths: Vec<PathBuf>,
    /// Also leave out [`GIT_PATHS`].
    pub git: bool,
}

impl Ignore {
    /// The list as relative POSIX strings, with the signature file added when it lies inside the
    /// model; paths outside the model are dropped.
    fn resolve(&self, model: &Path, signature: &Path) -> Vec<String> {
        let root = std::fs::canonicalize(model).unwrap_or_else(|_| model.to_owned());
        let mut out: Vec<String> = Vec::new();
        let mut add = |p: &Path| {
            let rel = if p.is_absolute() {
                let full = std::fs::canonicalize(p).unwrap_or_else(|_| p.to_owned());
                match full.strip_prefix(&root) {
                    Ok(r) => r.to_owned(),
                    Err(_) => return,
                }
            } else {
                p.to_owned()
            };
            let s = rel.to_string_lossy().replace('\\', "/");
            let s = s.trim_matches('/').to_owned();
            if manifest::check_relative(&s).is_ok() && !out.contains(&s) {
                out.push(s);
            }
        };
        for p in &self.paths {
            add(p);
        }
        if self.git {
            for g in GIT_PATHS {
                add(Path::new(g));
            }
        }
        let dir = match signature.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if let (Ok(dir), Some(name)) = (std::fs::canonicalize(dir), signature.file_name()) {
            add(&dir.join(name));
        }
        out.sort();
        out
    }
}

/// Who signs.
pub enum Signer {
    /// A bare key; the bundle records the public key's hint.
    Key(SigningKey),
    /// A key with its certificate (DER) and the rest of the chain (DER), recorded in the bundle.
    Certificate {
        /// The private key.
        key: SigningKey,
        /// The signing certificate, then intermediates.
        chain: Vec<Vec<u8>>,
    },
}

/// What a verifier trusts.
pub enum Trust {
    /// One public key.
    Key(PublicKey),
    /// Certificates that may root the signer's chain.
    Certificates(TrustStore),
}

/// What `sign` did.
#[derive(Debug, Clone, Serialize)]
pub struct Signed {
    /// Items (files or shards) signed.
    pub items: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// The paths recorded as left out.
    pub ignore_paths: Vec<String>,
}

/// Signs the model at `model`, writing the bundle to `signature` (atomically).
pub fn sign(
    model: &Path,
    signature: &Path,
    serialization: &Serialization,
    ignore: &Ignore,
    signer: &Signer,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Signed, SignError> {
    let key = match signer {
        Signer::Key(k) => k,
        Signer::Certificate { key, chain } => {
            let leaf = chain
                .first()
                .ok_or_else(|| SignError::Certificate("no signing certificate".into()))?;
            if PublicKey::from_spki_der(&certs::spki_of(leaf)?)? != key.public_key() {
                return Err(SignError::Certificate(
                    "the signing certificate's public key does not match the private key".into(),
                ));
            }
            key
        }
    };
    let ignore_paths = ignore.resolve(model, signature);
    let serialization = Serialization {
        ignore_paths: ignore_paths.clone(),
        ..serialization.clone()
    };
    let req = HashRequest {
        serialization: &serialization,
        skip: &ignore_paths,
        list_only: &[],
        only: None,
    };
    let hashed = hash_model(model, &req, progress)?;
    let payload = statement::to_payload(&hashed.manifest)?;
    let sig = key.sign(&pae(bundle::IN_TOTO_PAYLOAD_TYPE, &payload));
    let material = match signer {
        Signer::Key(k) => Bundle::key_material(k.public_key().hint()?),
        Signer::Certificate { chain, .. } => Bundle::chain_material(chain),
    };
    let json = serde_json::to_vec_pretty(&Bundle::new(&payload, &sig, material))
        .map_err(|e| SignError::Bundle(e.to_string()))?;
    write_atomically(signature, &json)?;
    Ok(Signed {
        items: hashed.manifest.items.len(),
        bytes: hashed.bytes,
        ignore_paths,
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SignError> {
    let io = |source| SignError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// How to verify.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// What the verifier itself leaves out.
    pub ignore: Ignore,
    /// Hash only the files the signature lists; other files are reported, not failed.
    pub ignore_unsigned_files: bool,
    /// Accept files the signature's own `ignore_paths` leave out (they are reported).
    pub accept_signed_ignores: bool,
    /// Follow symlinks.
    pub allow_symlinks: bool,
}

/// Why a model does not match its signature.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "kind", content = "name")]
pub enum Problem {
    /// Content differs from what was signed.
    Changed(String),
    /// Signed but not present.
    Missing(String),
    /// Present but not signed.
    Added(String),
    /// Present, and left out only by the signature's `ignore_paths`.
    ExcludedBySignature(String),
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::Changed(n) => write!(f, "changed {n}"),
            Problem::Missing(n) => write!(f, "missing {n}"),
            Problem::Added(n) => write!(f, "unsigned {n}"),
            Problem::ExcludedBySignature(n) => write!(f, "excluded by the signer {n}"),
        }
    }
}

/// Who signed, as established by the trust given.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum SignedBy {
    /// Key mode.
    Key {
        /// "ECDSA P-256" or "ECDSA P-384".
        algorithm: &'static str,
        /// Hex SHA-256 of the PEM public key.
        hint: String,
    },
    /// Certificate mode.
    Certificate(SignerCertificate),
}

/// The outcome of a verification that could be carried out.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// The model name recorded in the signature.
    pub model_name: String,
    /// The signer.
    pub signed_by: SignedBy,
    /// `files` or `shards`.
    pub method: String,
    /// The resource algorithm, e.g. `sha256` or `blake2b-sharded-1000`.
    pub algorithm: String,
    /// Items (files or shards) in the signature.
    pub signed_items: usize,
    /// Bytes hashed.
    pub bytes: u64,
    /// Every difference; empty means the model is exactly what was signed.
    pub problems: Vec<Problem>,
    /// Present files the signature leaves out and that were accepted
    /// (`accept_signed_ignores`).
    pub accepted_signature_ignores: Vec<String>,
    /// Present files not in the signature, ignored because `ignore_unsigned_files` was set.
    pub ignored_unsigned_files: Vec<String>,
}

impl Verification {
    /// True when the model matches its signature.
    pub fn verified(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Reads and authenticates a signature file, returning the signer and the signed manifest.
pub fn open_signature(signature: &Path, trust: &Trust) -> Result<(SignedBy, manifest::Manifest), SignError> {
    let io = |source| SignError::Io {
        path: signature.to_owned(),
        source,
    };
    let file = std::fs::File::open(signature).map_err(io)?;
    let mut bytes = Vec::new();
    file.take(MAX_BUNDLE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_BUNDLE_BYTES {
        return Err(SignError::Bundle(format!("larger than {MAX_BUNDLE_BYTES} bytes")));
    }
    let bundle = Bundle::from_json(&bytes)?;
    let bundle::Opened {
        envelope,
        payload,
        signatures,
    } = bundle.envelope()?;
    let (key, signed_by) = match trust {
        Trust::Key(key) => {
            let hint = key.hint()?;
            let recorded = bundle
                .verification_material
                .public_key
                .as_ref()
                .and_then(|p| p.hint.as_deref());
            if recorded.is_some_and(|r| !r.eq_ignore_ascii_case(&hint)) {
                return Err(SignError::BadSignature(
                    "signed by a different key (the bundle's key hint does not match the public key given)".into(),
                ));
            }
            (
                key.clone(),
                SignedBy::Key {
                    algorithm: key.describe(),
                    hint,
                },
            )
        }
        Trust::Certificates(store) => {
            let chain = bundle.certificates()?;
            if chain.is_empty() {
                return Err(SignError::Certificate(
                    "the signature carries no certificate (a key signature? verify it with a public key)".into(),
                ));
            }
            let (key, info) = store.verify(&chain)?;
            (key, SignedBy::Certificate(info))
        }
    };
    let message = pae(&envelope.payload_type, &payload);
    if !signatures.iter().any(|s| key.verify(&message, s)) {
        return Err(SignError::BadSignature(
            "no signature in the envelope verifies with the trusted key".into(),
        ));
    }
    Ok((signed_by, statement::from_payload(&payload)?))
}

/// Verifies the model at `model` against the signature file `signature`.
pub fn verify(
    model: &Path,
    signature: &Path,
    trust: &Trust,
    options: &VerifyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Verification, SignError> {
    let (signed_by, expected) = open_signature(signature, trust)?;
    let skip = options.ignore.resolve(model, signature);
    let signer_only: Vec<String> = expected
        .serialization
        .ignore_paths
        .iter()
        .filter(|p| manifest::check_relative(p.trim_end_matches('/')).is_ok())
        .filter(|p| !skip.iter().any(|s| manifest::under(p, s)))
        .cloned()
        .collect();
    let signed_paths: Vec<String> = {
        let mut v: Vec<String> = expected.items.keys().map(|i| i.path.clone()).collect();
        v.dedup();
        v
    };
    let serialization = Serialization {
        allow_symlinks: options.allow_symlinks,
        ..expected.serialization.clone()
    };
    let req = HashRequest {
        serialization: &serialization,
        skip: &skip,
        list_only: &signer_only,
        only: options.ignore_unsigned_files.then_some(signed_paths.as_slice()),
    };
    let hashed = hash_model(model, &req, progress)?;
    let actual = &hashed.manifest.items;

    let mut problems = Vec::new();
    for (item, digest) in &expected.items {
        match actual.get(item) {
            None => problems.push(Problem::Missing(item.name())),
            Some(d) if d != digest => problems.push(Problem::Changed(item.name())),
            Some(_) => {}
        }
    }
    // In shard mode a file that grew has extra shards, and one that shrank has different ones;
    // both show as added/missing items of a known file, which is what they are.
    for item in actual.keys().filter(|i| !expected.items.contains_key(*i)) {
        problems.push(Problem::Added(item.name()));
    }
    let mut accepted = Vec::new();
    for name in hashed.listed {
        if options.accept_signed_ignores {
            accepted.push(name);
        } else {
            problems.push(Problem::ExcludedBySignature(name));
        }
    }
    Ok(Verification {
        model_name: expected.model_name,
        signed_by,
        method: match expected.serialization.method {
            Method::Files => "files".into(),
            Method::Shards { .. } => "shards".into(),
        },
        algorithm: expected.serialization.algorithm(),
        signed_items: expected.items.len(),
        bytes: hashed.bytes,
        problems,
        accepted_signature_ignores: accepted,
        ignored_unsigned_files: hashed.unhashed,
    })
}
