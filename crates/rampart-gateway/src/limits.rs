//! Rate limits, token quotas and concurrency caps per key, per user and per model.
//!
//! Requests per minute use `governor` (GCRA; a burst of one minute's worth). Tokens per minute
//! need something governor does not do: completion tokens are only known after the upstream
//! answers, so the bucket must accept a charge after the fact and may go into debt; a caller in
//! debt is refused until it has refilled. Concurrency is a counter released by a guard, so a
//! cancelled request frees its slot.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::RateLimiter;
use http::{HeaderName, HeaderValue};
use rampart_policy::Quota;

type Rpm = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

/// Which limit scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One API key.
    Key,
    /// One user.
    User,
    /// One model.
    Model,
    /// One OIDC group (budgets only).
    Group,
}

impl Scope {
    /// The stable name (`key`, `user`, `model`).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Key => "key",
            Scope::User => "user",
            Scope::Model => "model",
            Scope::Group => "group",
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// Stable error code.
    pub code: &'static str,
    /// Safe message.
    pub message: String,
    /// When trying again can work.
    pub retry_after: Duration,
    /// `x-ratelimit-*` headers.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

struct TokenBucket {
    per_minute: f64,
    level: f64,
    last: Instant,
}

impl TokenBucket {
    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + elapsed * self.per_minute / 60.0).min(self.per_minute);
        self.last = now;
    }

    fn wait_until_positive(&self) -> Duration {
        if self.level > 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64((-self.level + 1.0) * 60.0 / self.per_minute)
        }
    }
}

/// One scope's state.
struct Bucket {
    quota: Quota,
    rpm: Option<Rpm>,
    tpm: Option<Mutex<TokenBucket>>,
    inflight: AtomicU32,
}

impl Bucket {
    fn new(quota: Quota) -> Bucket {
        let rpm = quota.requests_per_minute.and_then(NonZeroU32::new).map(|n| {
            RateLimiter::direct(governor::Quota::per_minute(n)).with_middleware::<StateInformationMiddleware>()
        });
        let tpm = quota.tokens_per_minute.filter(|&n| n > 0).map(|n| {
            Mutex::new(TokenBucket {
                per_minute: n as f64,
                level: n as f64,
                last: Instant::now(),
            })
        });
        Bucket {
            quota,
            rpm,
            tpm,
            inflight: AtomicU32::new(0),
        }
    }
}

/// What a request is measured against: each scope, its id and its quota.
#[derive(Debug, Clone)]
pub struct Subject<'a> {
    /// Which scope.
    pub scope: Scope,
    /// Key id, user or model.
    pub id: &'a str,
    /// The limits that apply.
    pub quota: Quota,
}

/// All buckets.
#[derive(Default)]
pub struct Limiter {
    buckets: DashMap<(Scope, String), Arc<Bucket>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter").field("buckets", &self.buckets.len()).finish()
    }
}

/// An admitted request's hold on its limits: releases concurrency on drop and takes the
/// completion-token charge when the upstream reports usage.
pub struct Permit {
    held: Vec<Arc<Bucket>>,
    /// `x-ratelimit-*` headers to send with the response.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl std::fmt::Debug for Permit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Permit").field("scopes", &self.held.len()).finish()
    }
}

impl Permit {
    /// Charges tokens after the fact (completion tokens, or a correction of the prompt count).
    pub fn charge(&self, tokens: i64) {
        if tokens == 0 {
            return;
        }
        let now = Instant::now();
        for b in &self.held {
            if let Some(tpm) = &b.tpm {
                if let Ok(mut t) = tpm.lock() {
                    t.refill(now);
                    t.level -= tokens as f64;
                }
            }
        }
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        for b in &self.held {
            if b.quota.concurrent_requests.is_some() {
                b.inflight.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

fn header(name: &'static str, value: impl ToString) -> Option<(HeaderName, HeaderValue)> {
    Some((
        HeaderName::from_static(name),
        HeaderValue::from_str(&value.to_string()).ok()?,
    ))
}

fn reset(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{}s", d.as_secs_f64().ceil() as u64)
    }
}

impl Limiter {
    fn bucket(&self, scope: Scope, id: &str, quota: Quota) -> Arc<Bucket> {
        // One entry lock for lookup and insert, so two first requests of a new subject cannot
        // each create a bucket and count against different ones.
        let mut entry = self
            .buckets
            .entry((scope, id.to_string()))
            .or_insert_with(|| Arc::new(Bucket::new(quota)));
        if entry.quota != quota {
            // Its quota changed (reload): start a fresh bucket.
            *entry = Arc::new(Bucket::new(quota));
        }
        entry.clone()
    }

    /// Admits a request carrying `prompt_tokens`, or says why not.
    pub fn admit(&self, subjects: &[Subject<'_>], prompt_tokens: u64) -> Result<Permit, Refusal> {
        let mut permit = Permit {
            held: Vec::with_capacity(subjects.len()),
            headers: Vec::new(),
        };
        let now = Instant::now();
        for s in subjects {
            if s.quota == Quota::default() {
                continue;
            }
            let b = self.bucket(s.scope, s.id, s.quota);
            if let Some(max) = s.quota.concurrent_requests {
                let prev = b.inflight.fetch_add(1, Ordering::AcqRel);
                if prev >= max {
                    b.inflight.fetch_sub(1, Ordering::AcqRel);
                    return Err(Refusal {
                        code: "concurrency_limit_exceeded",
                        message: format!(
                            "too many requests in flight for this {} (limit {max})",
                            s.scope.as_str()
                        ),
                        retry_after: Duration::from_secs(1),
                        headers: std::mem::take(&mut permit.headers),
                    });
                }
            }
            // From here the permit owns the concurrency slot, so an early return releases it.
            permit.held.push(b.clone());
            let first_headers = permit.headers.is_empty();
            if let Some(rpm) = &b.rpm {
                let limit = s.quota.requests_per_minute.unwrap_or_default();
                match rpm.check() {
                    Ok(snapshot) => {
                        if first_headers {
                            permit.headers.extend(header("x-ratelimit-limit-requests", limit));
                            permit.headers.extend(header(
                                "x-ratelimit-remaining-requests",
                                snapshot.remaining_burst_capacity(),
                            ));
                            let per_cell = Duration::from_secs_f64(60.0 / f64::from(limit.max(1)));
                            let missing = limit.saturating_sub(snapshot.remaining_burst_capacity());
                            permit
                                .headers
                                .extend(header("x-ratelimit-reset-requests", reset(per_cell * missing)));
                        }
                    }
                    Err(not_until) => {
                        let wait = not_until.wait_time_from(DefaultClock::default().now());
                        let mut headers = std::mem::take(&mut permit.headers);
                        headers.extend(header("x-ratelimit-limit-requests", limit));
                        headers.extend(header("x-ratelimit-remaining-requests", 0));
                        headers.extend(header("x-ratelimit-reset-requests", reset(wait)));
                        return Err(Refusal {
                            code: "rate_limit_exceeded",
                            message: format!(
                                "request rate limit for this {} exceeded ({limit} per minute)",
                                s.scope.as_str()
                            ),
                            retry_after: wait,
                            headers,
                        });
                    }
                }
            }
            if let Some(tpm) = &b.tpm {
                let limit = s.quota.tokens_per_minute.unwrap_or_default();
                let Ok(mut t) = tpm.lock() else {
                    return Err(Refusal {
                        code: "rate_limit_exceeded",
                        message: "limiter unavailable".into(),
                        retry_after: Duration::from_secs(1),
                        headers: Vec::new(),
                    });
                };
                t.refill(now);
                if prompt_tokens > limit {
                    return Err(Refusal {
                        code: "tokens_limit_exceeded",
                        message: format!(
                            "the prompt ({prompt_tokens} tokens) exceeds this {}'s limit of {limit} tokens per minute",
                            s.scope.as_str()
                        ),
                        retry_after: Duration::from_secs(60),
                        headers: std::mem::take(&mut permit.headers),
                    });
                }
                if t.level <= 0.0 || (t.level as u64) < prompt_tokens {
                    let deficit = prompt_tokens as f64 - t.level;
                    let wait =
                        Duration::from_secs_f64(deficit.max(1.0) * 60.0 / t.per_minute).max(t.wait_until_positive());
                    let mut headers = std::mem::take(&mut permit.headers);
                    headers.extend(header("x-ratelimit-limit-tokens", limit));
                    headers.extend(header("x-ratelimit-remaining-tokens", 0));
                    headers.extend(header("x-ratelimit-reset-tokens", reset(wait)));
                    return Err(Refusal {
                        code: "tokens_limit_exceeded",
                        message: format!(
                            "token rate limit for this {} exceeded ({limit} per minute)",
                            s.scope.as_str()
                        ),
                        retry_after: wait,
                        headers,
                    });
                }
                t.level -= prompt_tokens as f64;
                if first_headers {
                    permit.headers.extend(header("x-ratelimit-limit-tokens", limit));
                    permit
                        .headers
                        .extend(header("x-ratelimit-remaining-tokens", t.level.max(0.0) as u64));
                    let missing = limit as f64 - t.level.max(0.0);
                    permit.headers.extend(header(
                        "x-ratelimit-reset-tokens",
                        reset(Duration::from_secs_f64(missing * 60.0 / t.per_minute)),
                    ));
                }
            }
        }
        Ok(permit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(rpm: Option<u32>, tpm: Option<u64>, conc: Option<u32>) -> Quota {
        Quota {
            requests_per_minute: rpm,
            tokens_per_minute: tpm,
            concurrent_requests: conc,
        }
    }

    #[test]
    fn rpm_refuses_after_burst_with_retry_after() {
        let l = Limiter::default();
        let s = [Subject {
            scope: Scope::Key,
            id: "k",
            quota: q(Some(2), None, None),
        }];
        assert!(l.admit(&s, 0).is_ok());
        assert!(l.admit(&s, 0).is_ok());
        let r = l.admit(&s, 0).err().unwrap();
        assert_eq!(r.code, "rate_limit_exceeded");
        assert!(r.retry_after > Duration::from_secs(20));
    }

    #[test]
    fn concurrency_slot_is_released_on_drop() {
        let l = Limiter::default();
        let s = [Subject {
            scope: Scope::User,
            id: "u",
            quota: q(None, None, Some(1)),
        }];
        let p = l.admit(&s, 0).unwrap();
        assert_eq!(l.admit(&s, 0).err().unwrap().code, "concurrency_limit_exceeded");
        drop(p);
        assert!(l.admit(&s, 0).is_ok());
    }

    #[test]
    fn completion_charge_puts_bucket_in_debt() {
        let l = Limiter::default();
        let s = [Subject {
            scope: Scope::Model,
            id: "m",
            quota: q(None, Some(100), None),
        }];
        let p = l.admit(&s, 10).unwrap();
        p.charge(200);
        let r = l.admit(&s, 1).err().unwrap();
        assert_eq!(r.code, "tokens_limit_exceeded");
        assert!(r.headers.iter().any(|(k, _)| k == "x-ratelimit-remaining-tokens"));
    }

    #[test]
    fn refused_request_keeps_no_concurrency_slot() {
        let l = Limiter::default();
        let s = [Subject {
            scope: Scope::Key,
            id: "k",
            quota: q(Some(1), None, Some(5)),
        }];
        let _p = l.admit(&s, 0).unwrap();
        for _ in 0..10 {
            assert!(l.admit(&s, 0).is_err());
        }
        let b = l.bucket(Scope::Key, "k", s[0].quota);
        assert_eq!(b.inflight.load(Ordering::Acquire), 1);
    }
}
