//! Budgets in money: what each key, user and model has spent today and this month (UTC), from
//! the upstream's reported usage and the model's `price`, and the caps of `[budgets]`.
//!
//! Spend is known only after an answer, so a caller is admitted while under its caps and
//! charged afterwards: the exchange that crosses a cap completes, the next one is refused with
//! `budget_exceeded` until the period ends (the same after-the-fact charging as tokens per
//! minute). So that a burst of concurrent requests cannot all slip in under a cap, each
//! admitted exchange reserves what it can cost at most as far as known up front (its prompt,
//! and `max_tokens` of completion when the client set it) until it is charged; admission
//! counts other exchanges' reservations as spent. Counters live in memory and are written to the store once a second in one
//! transaction, so a restart keeps them; a crash loses at most the last second of spend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use rampart_policy::Budget;

use crate::limits::Scope;
use crate::state::Gateway;

/// A day number (days since 1970-01-01) and a month number (`year * 12 + month - 1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Periods {
    day: i64,
    month: i64,
}

impl Periods {
    fn at(unix: i64) -> Periods {
        let day = unix.div_euclid(86_400);
        let (y, m, _) = civil(day);
        Periods {
            day,
            month: y * 12 + (m - 1),
        }
    }

    fn day_key(self) -> String {
        let (y, m, d) = civil(self.day);
        format!("d:{y:04}-{m:02}-{d:02}")
    }

    fn month_key(self) -> String {
        format!(
            "m:{:04}-{:02}",
            self.month.div_euclid(12),
            self.month.rem_euclid(12) + 1
        )
    }

    /// Seconds from `unix` until the day (or the month) ends.
    fn until_next_day(unix: i64) -> i64 {
        86_400 - unix.rem_euclid(86_400)
    }

    fn until_next_month(self, unix: i64) -> i64 {
        let next = self.month + 1;
        let first = days_from_civil(next.div_euclid(12), next.rem_euclid(12) + 1, 1);
        first * 86_400 - unix
    }
}

/// Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One subject's spend in the current periods, in millionths of a dollar.
#[derive(Debug, Clone, Copy)]
struct Spent {
    at: Periods,
    day: u64,
    month: u64,
}

impl Spent {
    /// Rolled over to `now`'s periods.
    fn current(self, now: Periods) -> Spent {
        Spent {
            at: now,
            day: if self.at.day == now.day { self.day } else { 0 },
            month: if self.at.month == now.month { self.month } else { 0 },
        }
    }
}

/// A refused request: which cap, and when it resets.
#[derive(Debug, Clone)]
pub struct OverBudget {
    /// Safe message naming the scope, period and cap.
    pub message: String,
    /// Until the period ends.
    pub retry_after: Duration,
}

/// Spend per key, user and model.
#[derive(Debug, Default)]
pub struct Budgets {
    spent: DashMap<(Scope, String), Spent>,
    /// What admitted, not yet charged exchanges may cost, per subject (millionths).
    reserved: DashMap<(Scope, String), u64>,
    /// Charges not yet written to the store: (scope, id, period key) → millionths.
    pending: Mutex<HashMap<(Scope, String, String), u64>>,
}

/// What an admitted exchange holds against its subjects' caps until it is charged (or
/// fails); released when dropped.
#[derive(Debug)]
pub struct Reservation {
    budgets: Arc<Budgets>,
    keys: Vec<(Scope, String)>,
    micros: u64,
}

impl Reservation {
    /// Charges the exchange's actual cost to every subject it was admitted under.
    pub fn charge(&self, micros: u64, unix_now: i64) {
        let subjects: Vec<(Scope, &str)> = self.keys.iter().map(|(s, id)| (*s, id.as_str())).collect();
        self.budgets.charge(&subjects, micros, unix_now);
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        for k in &self.keys {
            if let Some(mut r) = self.budgets.reserved.get_mut(k) {
                *r = r.saturating_sub(self.micros);
            }
            self.budgets.reserved.remove_if(k, |_, v| *v == 0);
        }
    }
}

/// A stored spend row: scope, id, period key (`d:2026-12-01` or `m:2026-12`), millionths.
pub type SpendRow = (String, String, String, u64);

fn scope_of(name: &str) -> Option<Scope> {
    match name {
        "key" => Some(Scope::Key),
        "user" => Some(Scope::User),
        "model" => Some(Scope::Model),
        "group" => Some(Scope::Group),
        _ => None,
    }
}

/// Dollars for people and JSON.
pub fn dollars(micros: u64) -> f64 {
    micros as f64 / 1_000_000.0
}

impl Budgets {
    /// Spend of the current day and month from stored rows; older rows are ignored.
    pub fn load(rows: Vec<SpendRow>, unix_now: i64) -> Budgets {
        let now = Periods::at(unix_now);
        let (day, month) = (now.day_key(), now.month_key());
        let b = Budgets::default();
        for (scope, id, period, micros) in rows {
            let Some(scope) = scope_of(&scope) else { continue };
            let mut e = b.spent.entry((scope, id)).or_insert(Spent {
                at: now,
                day: 0,
                month: 0,
            });
            if period == day {
                e.day += micros;
            } else if period == month {
                e.month += micros;
            }
        }
        b
    }

    /// The period keys a store must return for [`Budgets::load`] at `unix_now`.
    pub fn current_periods(unix_now: i64) -> [String; 2] {
        let p = Periods::at(unix_now);
        [p.day_key(), p.month_key()]
    }

    /// Admits an exchange while no subject has spent (or reserved) its daily or monthly cap,
    /// and reserves `estimate` for each subject until the returned reservation is dropped.
    pub fn admit(
        self: &Arc<Self>,
        subjects: &[(Scope, &str, Budget)],
        estimate: u64,
        unix_now: i64,
    ) -> Result<Reservation, OverBudget> {
        self.check(subjects, unix_now)?;
        let keys: Vec<(Scope, String)> = subjects.iter().map(|(s, id, _)| (*s, id.to_string())).collect();
        for k in &keys {
            *self.reserved.entry(k.clone()).or_default() += estimate;
        }
        Ok(Reservation {
            budgets: self.clone(),
            keys,
            micros: estimate,
        })
    }

    /// Refuses when a subject has already spent its daily or monthly cap, counting what
    /// exchanges in flight have reserved as spent.
    pub fn check(&self, subjects: &[(Scope, &str, Budget)], unix_now: i64) -> Result<(), OverBudget> {
        let now = Periods::at(unix_now);
        for &(scope, id, budget) in subjects {
            if !budget.is_set() {
                continue;
            }
            let key = (scope, id.to_string());
            let held = self.reserved.get(&key).map_or(0, |r| *r);
            let spent = self.spent.get(&key).map(|s| s.current(now)).unwrap_or(Spent {
                at: now,
                day: 0,
                month: 0,
            });
            let spent = Spent {
                day: spent.day.saturating_add(held),
                month: spent.month.saturating_add(held),
                ..spent
            };
            let over = |cap: Option<f64>, used: u64| cap.filter(|c| dollars(used) >= *c);
            if let Some(cap) = over(budget.monthly_usd, spent.month) {
                return Err(OverBudget {
                    message: format!(
                        "the monthly budget of ${cap:.2} for this {} is spent (${:.2} this month, UTC); it resets at the start of next month",
                        scope.as_str(),
                        dollars(spent.month)
                    ),
                    retry_after: Duration::from_secs(now.until_next_month(unix_now).max(1) as u64),
                });
            }
            if let Some(cap) = over(budget.daily_usd, spent.day) {
                return Err(OverBudget {
                    message: format!(
                        "the daily budget of ${cap:.2} for this {} is spent (${:.2} today, UTC); it resets at 00:00 UTC",
                        scope.as_str(),
                        dollars(spent.day)
                    ),
                    retry_after: Duration::from_secs(Periods::until_next_day(unix_now).max(1) as u64),
                });
            }
        }
        Ok(())
    }

    /// Adds `micros` to every subject's day and month.
    pub fn charge(&self, subjects: &[(Scope, &str)], micros: u64, unix_now: i64) {
        if micros == 0 {
            return;
        }
        let now = Periods::at(unix_now);
        let (day, month) = (now.day_key(), now.month_key());
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for &(scope, id) in subjects {
            let mut e = self.spent.entry((scope, id.to_string())).or_insert(Spent {
                at: now,
                day: 0,
                month: 0,
            });
            let cur = e.current(now);
            *e = Spent {
                at: now,
                day: cur.day.saturating_add(micros),
                month: cur.month.saturating_add(micros),
            };
            for period in [&day, &month] {
                *pending.entry((scope, id.to_string(), period.clone())).or_default() += micros;
            }
        }
    }

    /// Today's and this month's spend of one subject, in millionths.
    pub fn spent(&self, scope: Scope, id: &str, unix_now: i64) -> (u64, u64) {
        let now = Periods::at(unix_now);
        self.spent
            .get(&(scope, id.to_string()))
            .map(|s| {
                let c = s.current(now);
                (c.day, c.month)
            })
            .unwrap_or((0, 0))
    }

    /// Every subject with spend this month: scope, id, today, this month (millionths).
    pub fn all(&self, unix_now: i64) -> Vec<(Scope, String, u64, u64)> {
        let now = Periods::at(unix_now);
        let mut out: Vec<_> = self
            .spent
            .iter()
            .map(|e| {
                let c = e.value().current(now);
                (e.key().0, e.key().1.clone(), c.day, c.month)
            })
            .filter(|r| r.3 > 0)
            .collect();
        out.sort_by(|a, b| (a.0.as_str(), &a.1).cmp(&(b.0.as_str(), &b.1)));
        out
    }

    /// Takes the charges not yet stored.
    fn drain(&self) -> Vec<SpendRow> {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        pending
            .drain()
            .map(|((scope, id, period), micros)| (scope.as_str().to_string(), id, period, micros))
            .collect()
    }

    /// Puts charges back after a failed write, so the next flush retries them.
    fn restore(&self, rows: Vec<SpendRow>) {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        for (scope, id, period, micros) in rows {
            if let Some(scope) = scope_of(&scope) {
                *pending.entry((scope, id, period)).or_default() += micros;
            }
        }
    }
}

/// Writes pending spend to the store once a second (and keeps retrying what failed).
pub fn spawn_flush(gw: &Arc<Gateway>) {
    let gw = gw.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            flush(&gw).await;
        }
    });
}

/// Writes pending spend now.
pub async fn flush(gw: &Arc<Gateway>) {
    let rows = gw.budgets.drain();
    if rows.is_empty() {
        return;
    }
    let store = gw.store.clone();
    let written = rows.clone();
    let result = tokio::task::spawn_blocking(move || store.add_spend(&written)).await;
    if !matches!(result, Ok(Ok(()))) {
        tracing::warn!("cannot write spend to the store; will retry");
        gw.budgets.restore(rows);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEC_1_2026: i64 = 1_796_083_200; // 2026-12-01T00:00:00Z

    #[test]
    fn calendar() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(DEC_1_2026 / 86_400), (2026, 12, 1));
        assert_eq!(days_from_civil(2026, 12, 1) * 86_400, DEC_1_2026);
        let p = Periods::at(DEC_1_2026 + 3600);
        assert_eq!(p.day_key(), "d:2026-12-01");
        assert_eq!(p.month_key(), "m:2026-12");
        assert_eq!(p.until_next_month(DEC_1_2026 + 3600), 31 * 86_400 - 3600);
        assert_eq!(Periods::at(DEC_1_2026 + 31 * 86_400).month_key(), "m:2027-01");
    }

    #[test]
    fn caps_refuse_after_the_charge_that_crosses_them_and_reset_with_the_period() {
        let b = Budgets::default();
        let cap = Budget {
            daily_usd: Some(1.0),
            monthly_usd: Some(1.5),
        };
        let t = DEC_1_2026 + 100;
        assert!(b.check(&[(Scope::Key, "k", cap)], t).is_ok());
        b.charge(&[(Scope::Key, "k"), (Scope::User, "u")], 999_999, t);
        assert!(b.check(&[(Scope::Key, "k", cap)], t).is_ok(), "under the cap");
        b.charge(&[(Scope::Key, "k")], 1, t);
        let e = b.check(&[(Scope::Key, "k", cap)], t).unwrap_err();
        assert!(e.message.contains("daily budget of $1.00"), "{}", e.message);
        assert_eq!(e.retry_after, Duration::from_secs(86_400 - 100));
        // Other subjects and other scopes are not affected.
        assert!(b
            .check(&[(Scope::Key, "other", cap), (Scope::User, "k", cap)], t)
            .is_ok());
        // The next day the daily cap is fresh, the monthly one still counts.
        let next = t + 86_400;
        assert!(b.check(&[(Scope::Key, "k", cap)], next).is_ok());
        b.charge(&[(Scope::Key, "k")], 600_000, next);
        let e = b.check(&[(Scope::Key, "k", cap)], next).unwrap_err();
        assert!(e.message.contains("monthly budget of $1.50"), "{}", e.message);
        assert_eq!(b.spent(Scope::Key, "k", next), (600_000, 1_600_000));
    }

    #[test]
    fn reservations_count_against_caps_until_released() {
        let b = Arc::new(Budgets::default());
        let cap = Budget {
            daily_usd: Some(1.0),
            monthly_usd: None,
        };
        let t = DEC_1_2026;
        let first = b.admit(&[(Scope::Key, "k", cap)], 600_000, t).unwrap();
        let second = b.admit(&[(Scope::Key, "k", cap)], 600_000, t).unwrap();
        // Two exchanges in flight may cost $1.20: a third is refused before either is charged.
        assert!(b.admit(&[(Scope::Key, "k", cap)], 1, t).is_err());
        drop(first);
        drop(second);
        let third = b.admit(&[(Scope::Key, "k", cap)], 1, t).unwrap();
        drop(third);
        assert!(b.reserved.is_empty());
    }

    #[test]
    fn stored_rows_round_trip() {
        let b = Budgets::default();
        let t = DEC_1_2026 + 5;
        b.charge(&[(Scope::Model, "m")], 250, t);
        b.charge(&[(Scope::Model, "m")], 750, t);
        let rows = b.drain();
        assert_eq!(rows.len(), 2);
        assert!(b.drain().is_empty());
        let mut old = rows.clone();
        old.push(("model".into(), "m".into(), "d:2026-11-30".into(), 5_000));
        let loaded = Budgets::load(old, t);
        assert_eq!(loaded.spent(Scope::Model, "m", t), (1000, 1000));
        assert_eq!(
            Budgets::current_periods(t),
            ["d:2026-12-01".to_string(), "m:2026-12".to_string()]
        );
    }
}
