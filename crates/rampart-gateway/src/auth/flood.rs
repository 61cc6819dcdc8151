//! Refused authentication, per client address: floods are throttled before any credential
//! is checked and recorded in aggregate.
//!
//! Each refused request used to cost a durable (fsynced) ledger record, so 50 requests with
//! a bad key cost 50 disk flushes: a cheap way to slow the gateway for everyone. Now an
//! address gets `limits.auth_failures_per_minute` refusals (GCRA via `governor`); past that
//! it is answered `429 too_many_authentication_failures` before its credentials are looked
//! at. No refusal without an identity gets a record of its own: they are counted per address
//! and written as one `auth.refused` record at most every [`FLUSH_EVERY`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

/// How often refusals are written to the ledger, in aggregate.
pub const FLUSH_EVERY: Duration = Duration::from_secs(10);

/// The connecting client's address, put on each request by the server.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

/// Refusals per address.
#[derive(Debug)]
pub struct AuthFailures {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    /// Addresses over their budget, until when.
    throttled: dashmap::DashMap<IpAddr, Instant>,
    /// Refusals since the last flush, per address.
    counts: Mutex<HashMap<IpAddr, u64>>,
}

impl AuthFailures {
    /// A budget of `per_minute` refusals per address (at least one).
    pub fn new(per_minute: u32) -> AuthFailures {
        let n = NonZeroU32::new(per_minute.max(1)).unwrap_or(NonZeroU32::MIN);
        AuthFailures {
            limiter: RateLimiter::keyed(Quota::per_minute(n)),
            throttled: dashmap::DashMap::new(),
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// How long `addr` must wait, if it is over its budget.
    pub fn throttled(&self, addr: IpAddr) -> Option<Duration> {
        let until = *self.throttled.get(&addr)?;
        let now = Instant::now();
        if until > now {
            return Some(until - now);
        }
        self.throttled.remove(&addr);
        None
    }

    /// Counts one refusal without an identity from `addr`.
    pub fn refused(&self, addr: Option<IpAddr>) {
        let key = addr.unwrap_or(IpAddr::from([0, 0, 0, 0]));
        if let Ok(mut c) = self.counts.lock() {
            *c.entry(key).or_insert(0) += 1;
        }
        let Some(addr) = addr else { return };
        if let Err(not_until) = self.limiter.check_key(&addr) {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            self.throttled.insert(addr, Instant::now() + wait);
        }
    }

    /// The refusals since the last call, most frequent addresses first (at most 50 named).
    pub fn take(&self) -> Option<serde_json::Value> {
        let counts = std::mem::take(&mut *self.counts.lock().ok()?);
        if counts.is_empty() {
            return None;
        }
        let total: u64 = counts.values().sum();
        let mut by: Vec<(IpAddr, u64)> = counts.into_iter().collect();
        by.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let addresses: serde_json::Map<String, serde_json::Value> =
            by.iter().take(50).map(|(a, n)| (a.to_string(), (*n).into())).collect();
        self.limiter.retain_recent();
        Some(serde_json::json!({"refused": total, "distinct_addresses": by.len(), "addresses": addresses}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_over_its_budget_is_throttled_and_counted() {
        let f = AuthFailures::new(5);
        let a: IpAddr = "127.0.0.9".parse().unwrap();
        let b: IpAddr = "127.0.0.10".parse().unwrap();
        for _ in 0..5 {
            assert!(f.throttled(a).is_none());
            f.refused(Some(a));
        }
        f.refused(Some(a));
        assert!(f.throttled(a).is_some());
        assert!(f.throttled(b).is_none());
        let v = f.take().unwrap();
        assert_eq!(v["refused"], 6);
        assert_eq!(v["addresses"]["127.0.0.9"], 6);
        assert!(f.take().is_none());
    }
}
