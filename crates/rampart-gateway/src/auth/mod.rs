//! Authentication: who is calling, from the `Authorization` header.
//!
//! A bearer token that starts with `rk-` is a Rampart API key; one shaped like a JWT is checked
//! against the configured OIDC issuer. Anything else is refused.

pub mod flood;
pub mod keys;
pub mod oidc;

use std::sync::Arc;

use http::HeaderMap;
use rampart_policy::{Budget, CallerKind, Principal, Quota};

use crate::error::ApiError;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// For Cedar.
    pub principal: Principal,
    /// The key id when the caller used a key.
    pub key_id: Option<String>,
    /// The key's own limits, when set.
    pub key_limits: Option<Quota>,
    /// An application or an end user: decides whether its system messages are trusted.
    pub kind: CallerKind,
    /// The key's own spending caps, when set.
    pub key_budget: Option<Budget>,
}

impl Caller {
    /// From a verified key record.
    pub fn from_key(k: &Arc<keys::KeyRecord>) -> Caller {
        Caller {
            principal: Principal::Key {
                id: k.id.clone(),
                owner: k.owner.clone(),
                models: k.models.clone(),
                admin: k.admin,
            },
            key_id: Some(k.id.clone()),
            key_limits: k.limits,
            kind: k.caller,
            key_budget: k.budget,
        }
    }
}

/// The bearer token, or a 401.
pub fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let value = headers.get(http::header::AUTHORIZATION).ok_or_else(|| {
        ApiError::unauthenticated("missing_api_key", "no credentials: send `Authorization: Bearer <key>`")
    })?;
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("invalid_api_key", "the authorization header is not valid text"))?;
    let mut parts = value.splitn(2, ' ');
    let scheme = parts.next().unwrap_or_default();
    let token = parts.next().unwrap_or_default().trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(ApiError::unauthenticated(
            "invalid_api_key",
            "the authorization header must be `Bearer <key>`",
        ));
    }
    Ok(token)
}

/// Whether a token looks like a JWT (three base64url parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Authenticates a request against the running configuration.
pub async fn authenticate(
    headers: &HeaderMap,
    keys: &keys::KeyCache,
    api_keys_enabled: bool,
    oidc: Option<&oidc::OidcVerifier>,
    now: i64,
) -> Result<Caller, ApiError> {
    let token = bearer(headers)?;
    if token.starts_with(keys::PREFIX) {
        if !api_keys_enabled {
            return Err(ApiError::unauthenticated(
                "invalid_api_key",
                "API keys are disabled on this gateway",
            ));
        }
        return match keys.verify(token, now) {
            Ok(k) => Ok(Caller::from_key(&k)),
            Err(keys::KeyRefusal::Invalid) => {
                Err(ApiError::unauthenticated("invalid_api_key", "the API key is not valid"))
            }
            Err(keys::KeyRefusal::Revoked) => Err(ApiError::unauthenticated(
                "api_key_revoked",
                "the API key has been revoked",
            )),
            Err(keys::KeyRefusal::Expired) => {
                Err(ApiError::unauthenticated("api_key_expired", "the API key has expired"))
            }
        };
    }
    match oidc {
        Some(v) if looks_like_jwt(token) => match v.verify(token).await {
            Ok(principal) => Ok(Caller {
                kind: v.caller_kind(&principal),
                principal,
                key_id: None,
                key_limits: None,
                key_budget: None,
            }),
            Err(oidc::OidcError::Expired) => Err(ApiError::unauthenticated(
                "token_expired",
                "the bearer token has expired",
            )),
            Err(oidc::OidcError::KeysUnavailable(reason)) => {
                tracing::warn!(%reason, issuer = v.issuer(), "cannot fetch OIDC signing keys");
                Err(ApiError::internal(
                    http::StatusCode::SERVICE_UNAVAILABLE,
                    "identity_provider_unavailable",
                    "the identity provider's signing keys cannot be fetched; try again shortly",
                ))
            }
            Err(e) => Err(ApiError::unauthenticated("invalid_token", e.to_string())),
        },
        _ => Err(ApiError::unauthenticated("invalid_api_key", "the API key is not valid")),
    }
}
