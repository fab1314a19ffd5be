//! Local admission on a lease: when `check.lua` allows a call, it can also
//! reserve a lease (room for a few more calls like it) in every window, when
//! they all have that room. The worker then admits the next calls with the
//! same windows itself, each taking its estimate out of the lease, without a
//! Redis round trip, until the lease runs out or gets old.
//!
//! Redis counts the whole lease from the start, so every other worker's
//! check sees it: limits hold as with a check per call (to estimation
//! error). The cost is that room leased but unused stays reserved until the
//! lease ends (at most `max_age_ms`); then the worker gives it back through
//! the batched `record.lua`. Each admitted call settles like a checked one:
//! its real cost replaces its estimate in Redis, and a cost over the estimate
//! also comes out of the lease, so an underestimate stops local admission as
//! soon as Redis would see it.

use std::collections::HashMap;

use super::check::{CheckPlan, CheckResult, WindowAnswer, WindowStatus};
use super::estimate::{micro_to_usd, usd_to_micro};

/// Leases held per worker at most; past it, expired ones are swept first.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Default)]
pub struct Admissions {
    entries: HashMap<String, Lease>,
}

#[derive(Debug)]
struct Lease {
    answered_ms: u64,
    expires_ms: u64,
    /// Per planned window: its key, spend as far as this worker knows (the
    /// unused lease not counted), and the time left at the answer.
    windows: Vec<WindowAnswer>,
    /// Month spend in micro-USD with the calls admitted here, when the plan has a budget.
    month_spend: Option<i64>,
    left_micro: i64,
}

impl Lease {
    /// The unused lease as reservations that, settled at cost 0, give it back.
    fn leftover(&self) -> Vec<(String, i64)> {
        if self.left_micro <= 0 {
            return Vec::new();
        }
        self.windows.iter().map(|w| (w.key.clone(), self.left_micro)).collect()
    }
}

/// A call admitted on a lease: what [`CheckResult::Allowed`] would carry.
#[derive(Debug, PartialEq)]
pub struct Admitted {
    pub tightest: Option<WindowStatus>,
    pub month_spend_usd: Option<f64>,
    /// The estimate, reserved in each window as part of the lease.
    pub reservations: Vec<(String, i64)>,
}

impl Admissions {
    /// Keeps the lease of an allowed answer for later calls with the same
    /// plan; any other answer (or a failure) ends the plan's lease. Returns
    /// the unused room of a lease that ended, to give back.
    pub fn remember(
        &mut self,
        plan: &CheckPlan,
        answer: Option<&CheckResult>,
        now_ms: u64,
        max_age_ms: u64,
    ) -> Vec<(String, i64)> {
        let key = plan.signature();
        let mut returned = self.entries.remove(key).map(|l| l.leftover()).unwrap_or_default();
        let Some(CheckResult::Allowed { windows, month_spend_usd, lease_micro, .. }) = answer else {
            return returned;
        };
        if *lease_micro <= 0 || max_age_ms == 0 {
            return returned;
        }
        if self.entries.len() >= MAX_ENTRIES {
            returned.extend(self.expire(now_ms));
            if self.entries.len() >= MAX_ENTRIES {
                returned.extend(self.entries.drain().flat_map(|(_, l)| l.leftover()));
            }
        }
        let shortest = windows.iter().map(|w| w.reset_ms).min().unwrap_or(u64::MAX);
        let windows = windows
            .iter()
            .map(|w| WindowAnswer { spent_micro: w.spent_micro.saturating_sub(*lease_micro), ..w.clone() })
            .collect();
        // The budget is charged when calls end, not at the check: count this one now.
        let month_spend = month_spend_usd.map(|usd| usd_to_micro(usd).saturating_add(plan.estimate_micro()));
        let lease = Lease {
            answered_ms: now_ms,
            expires_ms: now_ms.saturating_add(max_age_ms.min(shortest)),
            windows,
            month_spend,
            left_micro: *lease_micro,
        };
        self.entries.insert(key.to_string(), lease);
        returned
    }

    /// Ends the leases past their age or window: their unused room, to give back.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(String, i64)> {
        let mut returned = Vec::new();
        self.entries.retain(|_, l| {
            let live = now_ms < l.expires_ms;
            if !live {
                returned.extend(l.leftover());
            }
            live
        });
        returned
    }

    /// A call allowed under `signature` (by Redis or on the lease) ended: a
    /// cost over its estimate comes out of the lease too, so the worker's next
    /// calls see it as Redis will. A cost under the estimate is not added
    /// back: Redis gets that room, not the lease.
    pub fn settle(&mut self, signature: &str, estimate_micro: i64, real_micro: i64) {
        let over = real_micro.saturating_sub(estimate_micro);
        if let Some(lease) = self.entries.get_mut(signature).filter(|_| over > 0) {
            lease.left_micro = lease.left_micro.saturating_sub(over);
            for w in &mut lease.windows {
                w.spent_micro = w.spent_micro.saturating_add(over);
            }
            if let Some(spent) = lease.month_spend.as_mut() {
                *spent = spent.saturating_add(over);
            }
        }
    }

    /// Admits the call on its plan's lease if the lease still covers its
    /// estimate and the month's spend stays under `budget_fraction` of the cap.
    pub fn admit(&mut self, plan: &CheckPlan, now_ms: u64, budget_fraction: f64) -> Option<Admitted> {
        let lease = self.entries.get_mut(plan.signature())?;
        let estimate = plan.estimate_micro();
        if now_ms >= lease.expires_ms || lease.left_micro < estimate || lease.windows.len() != plan.limits_micro().len()
        {
            return None;
        }
        let budget_ok = match (plan.budget_cap_micro(), lease.month_spend) {
            (None, _) => true,
            (Some(cap), Some(spent)) => (spent.saturating_add(estimate) as f64) < budget_fraction * cap as f64,
            (Some(_), None) => false,
        };
        if !budget_ok {
            return None;
        }
        lease.left_micro -= estimate;
        let elapsed = now_ms.saturating_sub(lease.answered_ms);
        let mut tightest: Option<WindowStatus> = None;
        for (w, limit) in lease.windows.iter_mut().zip(plan.limits_micro()) {
            w.spent_micro = w.spent_micro.saturating_add(estimate);
            let status = WindowStatus {
                limit_usd: micro_to_usd(limit),
                remaining_usd: micro_to_usd(limit.saturating_sub(w.spent_micro).max(0)),
                reset_s: w.reset_ms.saturating_sub(elapsed).div_ceil(1000).max(1),
            };
            if tightest.as_ref().is_none_or(|t| (status.remaining_usd, t.reset_s) < (t.remaining_usd, status.reset_s)) {
                tightest = Some(status);
            }
        }
        if let Some(spent) = lease.month_spend.as_mut() {
            *spent = spent.saturating_add(estimate);
        }
        let month_spend_usd = plan.budget_cap_micro().and(lease.month_spend).map(micro_to_usd);
        let reservations = lease.windows.iter().map(|w| (w.key.clone(), estimate)).collect();
        Some(Admitted { tightest, month_spend_usd, reservations })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Scope, Subject, Window};
    use super::*;
    use serde_json::json;

    const NOW: u64 = 1_709_251_200_000;

    /// One $1 window per hour for the user, and a $10 budget when `budget`.
    fn plan(estimate_usd: f64, budget: bool) -> CheckPlan {
        let subject = Subject { team_id: 42, product: "wizard", end_user: "user-7" };
        let window = Window { scope: Scope::User, window_seconds: 3600, limit_usd: 1.0 };
        CheckPlan::new(vec![window], &subject, estimate_usd, budget.then_some(10.0), NOW)
    }

    /// Redis's answer: `spent` micro-USD in the window (estimate and lease included), month spend, reset, lease.
    fn allowed(plan: &CheckPlan, spent: i64, month: i64, reset_ms: u64, lease: i64) -> CheckResult {
        let key = format!("{}:475000", plan.signature().split('|').next().unwrap());
        let body = json!({"EVAL": [1, month, key, spent, reset_ms, lease]}).to_string();
        plan.parse(200, body.as_bytes()).unwrap()
    }

    #[test]
    fn admits_while_the_lease_covers_the_estimate() {
        let p = plan(0.1, true);
        let mut a = Admissions::default();
        assert_eq!(a.admit(&p, NOW, 0.95), None, "no lease yet");
        // $0.10 estimate + $0.30 lease reserved: $0.40 counted in Redis.
        assert!(a.remember(&p, Some(&allowed(&p, 400_000, 0, 60_000, 300_000)), NOW, 1000).is_empty());
        for n in 2..=4 {
            let got = a.admit(&p, NOW + 10, 0.95).expect("admitted");
            let t = got.tightest.unwrap();
            assert!((t.remaining_usd - (1.0 - 0.1 * f64::from(n))).abs() < 1e-9, "{t:?}");
            assert_eq!(t.reset_s, 60);
            assert_eq!(got.reservations.len(), 1);
            assert_eq!(got.reservations[0].1, 100_000, "the estimate, taken from the lease");
            assert!(got.reservations[0].0.ends_with(":475000"));
        }
        assert_eq!(a.admit(&p, NOW + 10, 0.95), None, "the lease is used up");
        assert!(a.expire(NOW + 1000).is_empty(), "nothing left to give back");
    }

    #[test]
    fn calls_that_cost_more_than_estimated_use_up_the_lease_sooner() {
        let p = plan(0.1, false);
        let mut a = Admissions::default();
        a.remember(&p, Some(&allowed(&p, 400_000, -1, 60_000, 300_000)), NOW, 1000);
        // The first call cost $0.25, not $0.10: $0.15 of the lease is gone.
        a.settle(p.signature(), 100_000, 250_000);
        assert!(a.admit(&p, NOW, 0.95).is_some());
        assert!(a.admit(&p, NOW, 0.95).is_none(), "$0.05 left");
        // Cheaper calls give nothing back to the lease; unknown plans are ignored.
        a.settle(p.signature(), 100_000, 0);
        assert!(a.admit(&p, NOW, 0.95).is_none());
        a.settle("another plan", 0, 1_000_000);
        assert_eq!(a.expire(NOW + 1000)[0].1, 50_000);
    }

    #[test]
    fn an_ended_lease_gives_back_what_it_did_not_use() {
        let p = plan(0.01, false);
        let mut a = Admissions::default();
        a.remember(&p, Some(&allowed(&p, 90_000, -1, 60_000, 80_000)), NOW, 1000);
        assert!(a.admit(&p, NOW + 999, 0.95).is_some());
        assert!(a.expire(NOW + 998).is_empty());
        assert!(a.admit(&p, NOW + 1000, 0.95).is_none(), "older than max_age");
        let back = a.expire(NOW + 1000);
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].1, 70_000);
        // A newer answer replaces the lease and returns the old one's rest; a failure ends it.
        a.remember(&p, Some(&allowed(&p, 90_000, -1, 60_000, 80_000)), NOW, 1000);
        assert_eq!(a.remember(&p, Some(&allowed(&p, 90_000, -1, 60_000, 80_000)), NOW, 1000)[0].1, 80_000);
        assert_eq!(a.remember(&p, None, NOW, 1000)[0].1, 80_000);
        assert!(a.admit(&p, NOW, 0.95).is_none());
        // No lease granted (the windows had no room), or max_age 0: nothing kept.
        a.remember(&p, Some(&allowed(&p, 10_000, -1, 60_000, 0)), NOW, 1000);
        assert!(a.admit(&p, NOW, 0.95).is_none());
        a.remember(&p, Some(&allowed(&p, 90_000, -1, 60_000, 80_000)), NOW, 0);
        assert!(a.admit(&p, NOW, 0.95).is_none());
        // A lease never outlives its shortest window.
        a.remember(&p, Some(&allowed(&p, 90_000, -1, 300, 80_000)), NOW, 1000);
        assert!(a.admit(&p, NOW + 300, 0.95).is_none());
    }

    #[test]
    fn the_budget_stays_under_its_engage_fraction_and_plans_are_separate() {
        let p = plan(0.1, true);
        let mut a = Admissions::default();
        // $9.20 of $10 spent: with this call's $0.10 counted, one more stays under 95%.
        a.remember(&p, Some(&allowed(&p, 500_000, 9_200_000, 60_000, 400_000)), NOW, 1000);
        let got = a.admit(&p, NOW, 0.95).unwrap();
        assert!((got.month_spend_usd.unwrap() - 9.4).abs() < 1e-9);
        assert!(a.admit(&p, NOW, 0.95).is_none(), "$9.50 reaches the engage tier: Redis decides");
        assert!(a.admit(&plan(0.1, false), NOW, 0.95).is_none(), "another plan has its own lease");
    }
}
