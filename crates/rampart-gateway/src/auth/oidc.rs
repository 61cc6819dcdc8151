//! JWT bearer tokens from an OIDC issuer.
//!
//! The issuer's keys come from its JWKS (found through discovery unless `jwks_url` is set),
//! are cached for `jwks_cache_secs`, and are fetched again early when a token names a key id
//! the cache does not know (key rotation), at most once every 10 seconds so a flood of forged
//! `kid`s cannot turn the gateway into a JWKS hammer. Only asymmetric algorithms are accepted,
//! and `alg` must be both allowed by config and the one the key was published for.

use std::collections::HashMap;
use std::str::FromStr;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rampart_policy::{CallerKind, OidcConfig, Principal};
use serde_json::Value;
use tokio::sync::{Mutex, RwLock};

const MIN_REFRESH_GAP: Duration = Duration::from_secs(10);
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// Why a token was refused. Messages are safe to show the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// Bad header, signature, claims or algorithm.
    #[error("invalid token: {0}")]
    Invalid(String),
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// The issuer's keys could not be fetched.
    #[error("cannot fetch the issuer's signing keys")]
    KeysUnavailable(String),
}

struct Cached {
    keys: HashMap<String, (DecodingKey, Option<Algorithm>)>,
    fetched_at: Instant,
}

/// Verifies JWTs for one issuer.
pub struct OidcVerifier {
    config: OidcConfig,
    algorithms: Vec<Algorithm>,
    http: reqwest::Client,
    cache: RwLock<Option<Cached>>,
    refresh: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for OidcVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OidcVerifier")
            .field("issuer", &self.config.issuer)
            .finish()
    }
}

impl OidcVerifier {
    /// An application when the token is in one of `application_groups`, else an end user.
    pub fn caller_kind(&self, principal: &Principal) -> CallerKind {
        match principal {
            Principal::User { groups, .. }
                if groups
                    .iter()
                    .any(|g| self.config.application_groups.iter().any(|a| a == g)) =>
            {
                CallerKind::Application
            }
            _ => CallerKind::EndUser,
        }
    }

    /// Builds a verifier; nothing is fetched until the first token arrives.
    pub fn new(config: OidcConfig, http: reqwest::Client) -> Result<Self, OidcError> {
        let algorithms = config
            .algorithms
            .iter()
            .map(|a| Algorithm::from_str(a).map_err(|_| OidcError::Invalid(format!("unsupported algorithm `{a}`"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OidcVerifier {
            config,
            algorithms,
            http,
            cache: RwLock::new(None),
            refresh: Mutex::new(None),
        })
    }

    /// The configured issuer.
    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Checks a token and returns the user it names.
    pub async fn verify(&self, token: &str) -> Result<Principal, OidcError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| OidcError::Invalid(e.to_string()))?;
        if !self.algorithms.contains(&header.alg) {
            return Err(OidcError::Invalid(format!(
                "algorithm `{:?}` is not accepted",
                header.alg
            )));
        }
        let kid = header.kid.clone().unwrap_or_default();
        let key = match self.lookup(&kid).await {
            Some(k) => k,
            None => {
                self.refresh_keys(false).await?;
                self.lookup(&kid)
                    .await
                    .ok_or_else(|| OidcError::Invalid(format!("unknown key id `{}`", truncate(&kid))))?
            }
        };
        let (decoding, key_alg) = key;
        if key_alg.is_some_and(|a| a != header.alg) {
            return Err(OidcError::Invalid(
                "the token's algorithm does not match its key".into(),
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&self.config.audiences);
        validation.leeway = self.config.leeway_secs;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, Value>>(token, &decoding, &validation).map_err(
            |e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => OidcError::Expired,
                jsonwebtoken::errors::ErrorKind::ImmatureSignature => {
                    OidcError::Invalid("token is not valid yet".into())
                }
                jsonwebtoken::errors::ErrorKind::InvalidAudience => OidcError::Invalid("wrong audience".into()),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => OidcError::Invalid("wrong issuer".into()),
                jsonwebtoken::errors::ErrorKind::InvalidSignature => OidcError::Invalid("bad signature".into()),
                _ => OidcError::Invalid(e.to_string()),
            },
        )?;
        let claims = data.claims;
        let id = claims
            .get(&self.config.user_claim)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| OidcError::Invalid(format!("claim `{}` is missing", self.config.user_claim)))?
            .to_string();
        let groups = match claims.get(&self.config.groups_claim) {
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).map(str::to_string).collect(),
            Some(Value::String(s)) => s
                .split([' ', ','])
                .filter(|g| !g.is_empty())
                .map(str::to_string)
                .collect(),
            _ => Vec::new(),
        };
        Ok(Principal::User { id, groups })
    }

    async fn lookup(&self, kid: &str) -> Option<(DecodingKey, Option<Algorithm>)> {
        let cache = self.cache.read().await;
        let cached = cache.as_ref()?;
        if cached.fetched_at.elapsed() > Duration::from_secs(self.config.jwks_cache_secs) {
            return None;
        }
        cached.keys.get(kid).cloned()
    }

    /// Fetches the JWKS again (at most once per 10 s unless `force`).
    pub async fn refresh_keys(&self, force: bool) -> Result<(), OidcError> {
        let mut last = self.refresh.lock().await;
        let stale = {
            let cache = self.cache.read().await;
            cache
                .as_ref()
                .is_none_or(|c| c.fetched_at.elapsed() > Duration::from_secs(self.config.jwks_cache_secs))
        };
        if !force && !stale && last.is_some_and(|t| t.elapsed() < MIN_REFRESH_GAP) {
            return Ok(());
        }
        *last = Some(Instant::now());
        let url = match &self.config.jwks_url {
            Some(u) => u.clone(),
            None => {
                let discovery = format!(
                    "{}/.well-known/openid-configuration",
                    self.config.issuer.trim_end_matches('/')
                );
                let doc = self.fetch_json(&discovery).await?;
                doc.get("jwks_uri")
                    .and_then(Value::as_str)
                    .ok_or_else(|| OidcError::KeysUnavailable("discovery document has no `jwks_uri`".into()))?
                    .to_string()
            }
        };
        let doc = self.fetch_json(&url).await?;
        let set: JwkSet = serde_json::from_value(doc).map_err(|e| OidcError::KeysUnavailable(e.to_string()))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let Some((kid, key)) = usable(jwk) {
                keys.insert(kid, key);
            }
        }
        *self.cache.write().await = Some(Cached {
            keys,
            fetched_at: Instant::now(),
        });
        Ok(())
    }

    async fn fetch_json(&self, url: &str) -> Result<Value, OidcError> {
        let resp = self
            .http
            .get(url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| OidcError::KeysUnavailable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(OidcError::KeysUnavailable(format!(
                "`{url}` answered {}",
                resp.status()
            )));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| OidcError::KeysUnavailable(e.to_string()))?;
        if body.len() > MAX_JWKS_BYTES {
            return Err(OidcError::KeysUnavailable("document too large".into()));
        }
        serde_json::from_slice(&body).map_err(|e| OidcError::KeysUnavailable(e.to_string()))
    }
}

fn usable(jwk: &Jwk) -> Option<(String, (DecodingKey, Option<Algorithm>))> {
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
    {
        return None;
    }
    let kid = jwk.common.key_id.clone().unwrap_or_default();
    let alg = jwk
        .common
        .key_algorithm
        .and_then(|a| Algorithm::from_str(&a.to_string()).ok());
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some((kid, (key, alg)))
}

fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}
