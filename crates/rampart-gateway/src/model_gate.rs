//! The signed-model gate: an upstream that serves local model directories is enabled only when
//! every one of them verifies against its OpenSSF model-signing signature. Checked when a
//! runtime is built, so at start-up and on every reload, before the new routes are swapped in.

use std::path::{Path, PathBuf};

use rampart_policy::{SignedModelConfig, UpstreamConfig};
use rampart_supply::signing::certs::TrustStore;
use rampart_supply::signing::keys::PublicKey;
use rampart_supply::signing::{self, Ignore, Trust, Verification, VerifyOptions};
use serde::Serialize;

/// What the gate decided for one upstream.
#[derive(Debug, Clone, Serialize)]
pub struct Gate {
    /// The upstream.
    pub upstream: String,
    /// False when a model did not verify; its routes skip it.
    pub enabled: bool,
    /// One line per model directory.
    pub models: Vec<ModelCheck>,
}

/// One model directory's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct ModelCheck {
    /// The directory.
    pub path: String,
    /// True when it matches a valid signature.
    pub verified: bool,
    /// Why not, or what was verified.
    pub detail: String,
}

fn resolve(base: &Path, p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_owned()
    } else {
        base.join(p)
    }
}

fn trust(m: &SignedModelConfig, base: &Path) -> Result<Trust, String> {
    match &m.public_key {
        Some(key) => {
            let path = resolve(base, key);
            let pem = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            PublicKey::from_pem(&pem)
                .map(Trust::Key)
                .map_err(|e| format!("{}: {e}", path.display()))
        }
        None => {
            let texts = m
                .certificate_chain
                .iter()
                .map(|c| {
                    let path = resolve(base, c);
                    std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            TrustStore::from_pem(&texts)
                .map(Trust::Certificates)
                .map_err(|e| e.to_string())
        }
    }
}

fn summarize(v: &Verification) -> String {
    if v.verified() {
        let mut s = format!("{} {} verified ({})", v.signed_items, v.method, v.algorithm);
        let uncovered = v.accepted_signature_ignores.len() + v.ignored_unsigned_files.len();
        if uncovered > 0 {
            s.push_str(&format!(
                "; {uncovered} file(s) present but not covered by the signature"
            ));
        }
        return s;
    }
    let shown: Vec<String> = v.problems.iter().take(5).map(ToString::to_string).collect();
    format!("{} problem(s): {}", v.problems.len(), shown.join(", "))
}

/// Verifies one model directory.
pub fn check_model(m: &SignedModelConfig, base: &Path) -> ModelCheck {
    let dir = resolve(base, m.path.get_ref());
    let signature = m
        .signature
        .as_deref()
        .map_or_else(|| dir.join("model.sig"), |s| resolve(base, s));
    let options = VerifyOptions {
        ignore: Ignore {
            paths: m.ignore_paths.iter().map(PathBuf::from).collect(),
            git: m.ignore_git_paths,
        },
        ignore_unsigned_files: m.ignore_unsigned_files,
        accept_signed_ignores: m.accept_signed_ignores,
        allow_symlinks: m.allow_symlinks,
    };
    let outcome = trust(m, base)
        .and_then(|t| signing::verify(&dir, &signature, &t, &options, &|_| {}).map_err(|e| e.to_string()));
    let path = dir.display().to_string();
    match outcome {
        Ok(v) => ModelCheck {
            path,
            verified: v.verified(),
            detail: summarize(&v),
        },
        Err(detail) => ModelCheck {
            path,
            verified: false,
            detail,
        },
    }
}

/// Runs the gate for an upstream with signed models, logging the outcome; `None` when the
/// upstream names none.
pub fn check_upstream(u: &UpstreamConfig, base: &Path) -> Option<Gate> {
    if u.signed_models.is_empty() {
        return None;
    }
    let upstream = u.name.get_ref().clone();
    let models: Vec<ModelCheck> = u.signed_models.iter().map(|m| check_model(m, base)).collect();
    let enabled = models.iter().all(|m| m.verified);
    for m in &models {
        if m.verified {
            tracing::info!(upstream = %upstream, model = %m.path, detail = %m.detail, "model signature verified");
        } else {
            tracing::error!(upstream = %upstream, model = %m.path, detail = %m.detail, "model signature NOT verified; upstream disabled");
        }
    }
    Some(Gate {
        upstream,
        enabled,
        models,
    })
}
