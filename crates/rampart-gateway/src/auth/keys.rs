//! Rampart API keys: `rk-<16 hex id>-<43 base64url secret>`.
//!
//! The id finds the record; only the SHA-256 of the secret is stored, and it is compared in
//! constant time. A 256-bit random secret needs no slow password hash: guessing it is hopeless
//! either way, and a fast hash keeps authentication off the latency budget.

use std::sync::Arc;

use base64::Engine;
use dashmap::DashMap;
use rampart_policy::{Budget, CallerKind, Quota};
use rand::RngCore;
use serde::Serialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Every key starts with this, so secret scanners (and people) recognise it.
pub const PREFIX: &str = "rk-";
const ID_LEN: usize = 16;
const SECRET_LEN: usize = 43;

/// A stored key, without its secret.
#[derive(Debug, Clone, Serialize)]
pub struct KeyRecord {
    /// Public id (the part after `rk-`).
    pub id: String,
    /// SHA-256 of the secret part.
    #[serde(skip)]
    pub secret_hash: [u8; 32],
    /// Who the key belongs to.
    pub owner: String,
    /// A label.
    pub name: String,
    /// Models it may call; empty means all.
    pub models: Vec<String>,
    /// Admin credential.
    pub admin: bool,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds after which it no longer works.
    pub expires_at: Option<i64>,
    /// Unix seconds when it was revoked.
    pub revoked_at: Option<i64>,
    /// Its own limits instead of `[limits.per_key]`.
    pub limits: Option<Quota>,
    /// Who holds it: an application (its system messages are its own) or an end user.
    pub caller: CallerKind,
    /// Its own spending caps instead of `[budgets] per_key`.
    pub budget: Option<Budget>,
}

/// What a new key is for; everything but the secret.
#[derive(Debug, Clone, Default)]
pub struct KeySpec {
    /// Who the key belongs to.
    pub owner: String,
    /// A label.
    pub name: String,
    /// Models it may call; empty means all.
    pub models: Vec<String>,
    /// Admin credential.
    pub admin: bool,
    /// Unix seconds after which it no longer works.
    pub expires_at: Option<i64>,
    /// Its own limits.
    pub limits: Option<Quota>,
    /// Who holds it.
    pub caller: CallerKind,
    /// Its own spending caps.
    pub budget: Option<Budget>,
}

impl KeySpec {
    /// A key for `owner` with every other setting at its default.
    pub fn for_owner(owner: &str) -> KeySpec {
        KeySpec {
            owner: owner.to_string(),
            ..KeySpec::default()
        }
    }
}

/// A freshly created key: the full secret exists only here, to be shown once.
pub struct NewKey {
    /// The full key text.
    pub secret: Zeroizing<String>,
    /// What is stored.
    pub record: KeyRecord,
}

impl NewKey {
    /// Makes a new random key.
    pub fn generate(spec: KeySpec, now: i64) -> NewKey {
        let mut rng = rand::rng();
        let mut id = [0u8; ID_LEN / 2];
        rng.fill_bytes(&mut id);
        let id: String = id.iter().map(|b| format!("{b:02x}")).collect();
        let mut raw = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(raw.as_mut());
        let secret = Zeroizing::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw.as_ref()));
        let full = Zeroizing::new(format!("{PREFIX}{id}-{}", secret.as_str()));
        let record = KeyRecord {
            id,
            secret_hash: hash_secret(&secret),
            owner: spec.owner,
            name: spec.name,
            models: spec.models,
            admin: spec.admin,
            created_at: now,
            expires_at: spec.expires_at,
            revoked_at: None,
            limits: spec.limits,
            caller: spec.caller,
            budget: spec.budget,
        };
        NewKey { secret: full, record }
    }
}

fn hash_secret(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Revokes every live admin credential and stores a new one; returns its secret (to show
/// once) and how many were revoked. For recovery when the admin credential is lost.
pub fn replace_admin_credential(store: &crate::store::Store) -> Result<(String, usize), crate::store::StoreError> {
    let now = crate::state::now();
    let mut revoked = 0;
    for k in store.keys()?.iter().filter(|k| k.admin && k.revoked_at.is_none()) {
        if store.revoke_key(&k.id, now)? {
            revoked += 1;
        }
    }
    let new = NewKey::generate(
        KeySpec {
            name: "recovered admin credential".into(),
            admin: true,
            ..KeySpec::for_owner("admin")
        },
        now,
    );
    store.insert_key(&new.record)?;
    Ok((new.secret.to_string(), revoked))
}

/// Splits a presented key into id and secret, or `None` when it is not shaped like one.
pub fn split(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix(PREFIX)?;
    let id = rest.get(..ID_LEN)?;
    let secret = rest.get(ID_LEN..)?.strip_prefix('-')?;
    let id_ok = id.bytes().all(|b| b.is_ascii_hexdigit());
    let secret_ok = secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    (id_ok && secret_ok).then_some((id, secret))
}

/// Why a key was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// Malformed, unknown id, or wrong secret (one answer for all: no oracle).
    Invalid,
    /// Revoked by an admin.
    Revoked,
    /// Past its expiry.
    Expired,
}

/// All keys in memory, by id.
#[derive(Debug, Default)]
pub struct KeyCache {
    by_id: DashMap<String, Arc<KeyRecord>>,
    /// Bumped on every revocation, so running exchanges notice it cheaply.
    generation: std::sync::atomic::AtomicU64,
}

impl KeyCache {
    /// Replaces the contents (start-up).
    pub fn load(&self, keys: Vec<KeyRecord>) {
        self.by_id.clear();
        for k in keys {
            self.by_id.insert(k.id.clone(), Arc::new(k));
        }
    }

    /// Adds or replaces one record.
    pub fn put(&self, k: KeyRecord) {
        self.by_id.insert(k.id.clone(), Arc::new(k));
    }

    /// Marks a key revoked in memory.
    pub fn revoke(&self, id: &str, at: i64) {
        if let Some(mut k) = self.by_id.get_mut(id) {
            let mut updated = (**k).clone();
            updated.revoked_at = Some(at);
            *k = Arc::new(updated);
        }
        self.generation.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Revocations so far.
    pub fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether key `id` may still be used at `now` (exists, not revoked, not expired).
    pub fn usable(&self, id: &str, now: i64) -> bool {
        self.by_id
            .get(id)
            .is_some_and(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now))
    }

    /// Every record.
    pub fn all(&self) -> Vec<Arc<KeyRecord>> {
        let mut v: Vec<_> = self.by_id.iter().map(|e| e.value().clone()).collect();
        v.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        v
    }

    /// Checks a presented key.
    pub fn verify(&self, token: &str, now: i64) -> Result<Arc<KeyRecord>, KeyRefusal> {
        let (id, secret) = split(token).ok_or(KeyRefusal::Invalid)?;
        let record = self.by_id.get(id).map(|r| r.value().clone());
        let presented = hash_secret(secret);
        // Compare against a fixed dummy when the id is unknown, so timing does not reveal ids.
        let expected = record.as_ref().map_or([0u8; 32], |r| r.secret_hash);
        let matches: bool = presented.ct_eq(&expected).into();
        let record = match record {
            Some(r) if matches => r,
            _ => return Err(KeyRefusal::Invalid),
        };
        if record.revoked_at.is_some() {
            return Err(KeyRefusal::Revoked);
        }
        if record.expires_at.is_some_and(|e| e <= now) {
            return Err(KeyRefusal::Expired);
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_key_verifies_and_wrong_secret_does_not() {
        let cache = KeyCache::default();
        let k = NewKey::generate(
            KeySpec {
                expires_at: Some(200),
                ..KeySpec::for_owner("alice")
            },
            100,
        );
        assert!(split(&k.secret).is_some());
        cache.put(k.record.clone());
        assert!(cache.verify(&k.secret, 150).is_ok());
        assert_eq!(cache.verify(&k.secret, 200).err(), Some(KeyRefusal::Expired));
        let mut wrong = k.secret.to_string();
        wrong.pop();
        wrong.push(if k.secret.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(cache.verify(&wrong, 150).err(), Some(KeyRefusal::Invalid));
        cache.revoke(&k.record.id, 160);
        assert_eq!(cache.verify(&k.secret, 170).err(), Some(KeyRefusal::Revoked));
    }

    proptest! {
        #[test]
        fn split_never_panics(s in "\\PC*") {
            let _ = split(&s);
        }
    }
}
