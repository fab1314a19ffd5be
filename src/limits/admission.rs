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
//!
//! A busy subject's lease is renewed before it runs out: once half of it is
//! used or half its life is gone, the root context asks Redis for the next one
//! ([`Admissions::due_renewals`], a check with no estimate of its own) while
//! requests go on being admitted on what is left; the answer adds to the lease
//! and extends it ([`Admissions::renewed`]). A lease is sized to the subject's
//! recent rate (two lease lifetimes of it), between the configured smallest
//! and largest lease, and never more than a tenth of its smallest window or a
//! hundredth of its monthly budget. So once a subject is warm, its requests
//! wait for Redis only when a window has no room left for a lease (then every
//! call is checked, exactly), or when a lease ran out or expired first.

use std::collections::HashMap;

use super::check::{CheckPlan, CheckResult, WindowAnswer, WindowStatus};
use super::estimate::{micro_to_usd, usd_to_micro};

/// Leases held per worker at most; past it, expired ones are swept first.
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Default)]
pub struct Admissions {
    entries: HashMap<String, Lease>,
    /// Numbers each lease, so a renewal's answer finds only the lease it was asked for.
    next_generation: u64,
}

#[derive(Debug)]
struct Lease {
    generation: u64,
    /// The plan the lease was granted to: renewals are asked with its keys.
    plan: CheckPlan,
    answered_ms: u64,
    expires_ms: u64,
    /// Per planned window: its key, spend as far as this worker knows (the
    /// unused lease not counted), and the time left at the answer.
    windows: Vec<WindowAnswer>,
    /// Month spend in micro-USD with the calls admitted here, when the plan has a budget.
    month_spend: Option<i64>,
    left_micro: i64,
    /// The last lease granted, micro-USD.
    size_micro: i64,
    /// Estimates admitted since the last answer: the subject's rate.
    used_micro: i64,
    renewal: Renewal,
}

/// Where a lease's renewal stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Renewal {
    Idle,
    /// Due: the root asks for it at its next tick.
    Wanted,
    InFlight,
    /// The last renewal found no room in a window: none until the lease ends.
    NoRoom,
}

/// How leases are sized (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseSizing {
    /// How long a lease lasts without a renewal.
    pub max_age_ms: u64,
    /// The smallest and largest lease, in estimates.
    pub min_estimates: u32,
    pub max_estimates: u32,
}

/// A renewal the root asks Redis for.
#[derive(Debug)]
pub struct RenewalCall {
    pub signature: String,
    pub generation: u64,
    pub plan: CheckPlan,
}

impl Lease {
    /// Estimates admitted per millisecond since the last answer.
    fn rate(&self, now_ms: u64) -> f64 {
        self.used_micro as f64 / now_ms.saturating_sub(self.answered_ms).max(1) as f64
    }

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

impl LeaseSizing {
    /// The lease to ask for `plan`, at `rate` (micro-USD of estimates per ms, when known).
    fn size(&self, plan: &CheckPlan, rate: Option<f64>) -> i64 {
        let estimate = plan.estimate_micro().max(1);
        let smallest = estimate.saturating_mul(i64::from(self.min_estimates));
        let largest = estimate.saturating_mul(i64::from(self.max_estimates));
        // Two lifetimes of the recent rate: a renewal at half-life still leaves room.
        let by_rate = rate.map_or(0.0, |r| r * 2.0 * self.max_age_ms as f64);
        let by_rate = if by_rate.is_finite() { by_rate.min(i64::MAX as f64) as i64 } else { largest };
        let mut size = by_rate.clamp(smallest, largest.max(smallest));
        if let Some(limit) = plan.smallest_limit_micro() {
            size = size.min(limit / 10);
        }
        if let Some(cap) = plan.budget_cap_micro() {
            size = size.min(cap / 100);
        }
        // A lease that cannot admit one call would only hold room.
        if size < estimate {
            0
        } else {
            size
        }
    }
}

impl Admissions {
    /// The lease a check for `plan` asks for: sized by the rate its current lease saw, if any.
    pub fn lease_for(&self, plan: &CheckPlan, now_ms: u64, sizing: &LeaseSizing) -> i64 {
        let rate = self.entries.get(plan.signature()).map(|l| l.rate(now_ms));
        sizing.size(plan, rate)
    }

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
        let previous = self.entries.remove(key);
        let mut returned = previous.as_ref().map(Lease::leftover).unwrap_or_default();
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
        self.next_generation += 1;
        let lease = Lease {
            generation: self.next_generation,
            plan: plan.clone(),
            answered_ms: now_ms,
            expires_ms: now_ms.saturating_add(max_age_ms.min(shortest)),
            windows,
            month_spend,
            left_micro: *lease_micro,
            size_micro: *lease_micro,
            used_micro: plan.estimate_micro(),
            renewal: Renewal::Idle,
        };
        self.entries.insert(key.to_string(), lease);
        returned
    }

    /// The renewals due (marked so by [`Admissions::admit`]), now in flight.
    /// `window_clock_ms` names the windows' keys (Redis's clock, as best known).
    pub fn due_renewals(&mut self, now_ms: u64, window_clock_ms: u64, sizing: &LeaseSizing) -> Vec<RenewalCall> {
        let mut due = Vec::new();
        for (signature, lease) in &mut self.entries {
            if lease.renewal != Renewal::Wanted || now_ms >= lease.expires_ms {
                continue;
            }
            let size = sizing.size(&lease.plan, Some(lease.rate(now_ms)));
            if size < lease.plan.estimate_micro() {
                lease.renewal = Renewal::NoRoom;
                continue;
            }
            lease.renewal = Renewal::InFlight;
            let plan = lease.plan.renewal(window_clock_ms, size);
            due.push(RenewalCall { signature: signature.clone(), generation: lease.generation, plan });
        }
        due
    }

    /// A renewal answered (`None`: the store failed). Adds the new lease to
    /// what is left and extends it; a denial ends the lease. Returns room to
    /// give back: a stale renewal's whole lease (its lease was replaced or
    /// ended meanwhile), or what is left of a lease that ended.
    pub fn renewed(
        &mut self,
        call: &RenewalCall,
        answer: Option<&CheckResult>,
        now_ms: u64,
        max_age_ms: u64,
    ) -> Vec<(String, i64)> {
        let granted = match answer {
            Some(CheckResult::Allowed { windows, lease_micro, .. }) if *lease_micro > 0 => {
                windows.iter().map(|w| (w.key.clone(), *lease_micro)).collect()
            }
            _ => Vec::new(),
        };
        let Some(lease) = self.entries.get_mut(&call.signature).filter(|l| l.generation == call.generation) else {
            return granted;
        };
        let Some(CheckResult::Allowed { windows, month_spend_usd, lease_micro, .. }) = answer else {
            if answer.is_some() {
                // A window or the budget is over: the lease ends.
                return self.entries.remove(&call.signature).map(|l| l.leftover()).unwrap_or_default();
            }
            lease.renewal = Renewal::Idle;
            return Vec::new();
        };
        if *lease_micro <= 0 {
            lease.renewal = Renewal::NoRoom;
            return Vec::new();
        }
        // A window that turned over meanwhile: the old lease was reserved in the old window.
        let same_windows = lease.windows.len() == windows.len()
            && lease.windows.iter().zip(windows.iter()).all(|(a, b)| a.key == b.key);
        let mut returned = Vec::new();
        if same_windows {
            lease.left_micro = lease.left_micro.saturating_add(*lease_micro);
        } else {
            returned = lease.leftover();
            lease.left_micro = *lease_micro;
        }
        let shortest = windows.iter().map(|w| w.reset_ms).min().unwrap_or(u64::MAX);
        let left = lease.left_micro;
        lease.windows = windows
            .iter()
            .map(|w| WindowAnswer { spent_micro: w.spent_micro.saturating_sub(left), ..w.clone() })
            .collect();
        // Redis's month spend counts calls that ended; this worker's view also the ones in flight.
        if let Some(redis) = month_spend_usd.map(usd_to_micro) {
            lease.month_spend = Some(lease.month_spend.map_or(redis, |local| local.max(redis)));
        }
        lease.answered_ms = now_ms;
        lease.expires_ms = now_ms.saturating_add(max_age_ms.min(shortest));
        lease.size_micro = *lease_micro;
        lease.used_micro = 0;
        lease.renewal = Renewal::Idle;
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
        lease.used_micro = lease.used_micro.saturating_add(estimate);
        let elapsed = now_ms.saturating_sub(lease.answered_ms);
        let life = lease.expires_ms.saturating_sub(lease.answered_ms);
        if lease.renewal == Renewal::Idle && (lease.left_micro <= lease.size_micro / 2 || elapsed >= life / 2) {
            lease.renewal = Renewal::Wanted;
        }
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

    const SIZING: LeaseSizing = LeaseSizing { max_age_ms: 1000, min_estimates: 8, max_estimates: 1000 };

    /// A renewal's answer: Redis's spend in the window (all leases included), month, lease granted.
    fn renewal_answer(call: &RenewalCall, spent: i64, month: i64, lease: i64) -> CheckResult {
        let key = format!("{}:475000", call.plan.signature().split('|').next().unwrap());
        let body = json!({"EVAL": [1, month, key, spent, 60_000, lease]}).to_string();
        call.plan.parse(200, body.as_bytes()).unwrap()
    }

    #[test]
    fn a_busy_lease_is_renewed_before_it_runs_out_and_sized_to_the_rate() {
        // $0.001 calls against a $1/h window: the first lease is the smallest, 8 estimates.
        let p = plan(0.001, true);
        let mut a = Admissions::default();
        assert_eq!(a.lease_for(&p, NOW, &SIZING), 8_000, "no rate known yet");
        a.remember(&p, Some(&allowed(&p, 9_000, 0, 60_000, 8_000)), NOW, 1000);
        assert!(a.due_renewals(NOW, NOW, &SIZING).is_empty(), "nothing used yet");
        // Four calls in 4 ms use half of it: a renewal is due, once.
        for ms in 1..=4 {
            assert!(a.admit(&p, NOW + ms, 0.95).is_some());
        }
        let due = a.due_renewals(NOW + 4, NOW + 4, &SIZING);
        assert_eq!(due.len(), 1);
        assert!(a.due_renewals(NOW + 5, NOW + 5, &SIZING).is_empty(), "already in flight");
        // Five estimates in 4 ms (the checked call's too): 1.25 estimates/ms, two
        // lifetimes of it is 2500 estimates, above the largest lease (1000), and
        // above a tenth of the $1 window ($0.1 = 100 estimates): 100 estimates.
        let call = &due[0];
        let segments: Vec<String> = call.plan.request(0).body.split('/').map(str::to_string).collect();
        assert_eq!(segments.last().map(String::as_str), Some("100000"), "the lease asked");
        // EVAL/<script>/<numkeys>/<key>/<budget key>/<estimate>/...
        assert_eq!(segments.get(5).map(String::as_str), Some("0"), "no estimate of its own: {segments:?}");
        // Requests go on on what is left while the renewal is out.
        assert!(a.admit(&p, NOW + 5, 0.95).is_some());
        // Redis grants it: 3 left + 100 new; the spend this worker sees excludes both.
        assert!(a.renewed(call, Some(&renewal_answer(call, 114_000, 0, 100_000)), NOW + 6, 1000).is_empty());
        for _ in 0..103 {
            assert!(a.admit(&p, NOW + 7, 0.95).is_some());
        }
        assert!(a.admit(&p, NOW + 7, 0.95).is_none(), "103 estimates, then none");
        // A renewal answered for a lease that was replaced meanwhile gives its grant back.
        let stale = RenewalCall { signature: call.signature.clone(), generation: 0, plan: call.plan.clone() };
        let back = a.renewed(&stale, Some(&renewal_answer(call, 1, 0, 50_000)), NOW + 8, 1000);
        assert_eq!(back.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [50_000]);
    }

    #[test]
    fn a_renewal_without_room_or_denied_stops_renewing() {
        let p = plan(0.01, false);
        let mut a = Admissions::default();
        a.remember(&p, Some(&allowed(&p, 90_000, -1, 60_000, 80_000)), NOW, 1000);
        for _ in 0..5 {
            a.admit(&p, NOW + 1, 0.95);
        }
        let due = a.due_renewals(NOW + 1, NOW + 1, &SIZING);
        // No room for another lease: the current one drains, no more renewals.
        assert!(a.renewed(&due[0], Some(&renewal_answer(&due[0], 950_000, -1, 0)), NOW + 2, 1000).is_empty());
        a.admit(&p, NOW + 3, 0.95);
        assert!(a.due_renewals(NOW + 3, NOW + 3, &SIZING).is_empty());
        // A lease whose renewal is denied ends, and what is left goes back.
        let p = plan(0.01, true);
        a.remember(&p, Some(&allowed(&p, 90_000, 0, 60_000, 80_000)), NOW, 1000);
        for _ in 0..5 {
            a.admit(&p, NOW + 1, 0.95);
        }
        let due = a.due_renewals(NOW + 1, NOW + 1, &SIZING);
        let denied = due[0].plan.parse(200, json!({"EVAL": [2, 10_000_000]}).to_string().as_bytes()).unwrap();
        let back = a.renewed(&due[0], Some(&denied), NOW + 2, 1000);
        assert_eq!(back.iter().map(|(_, v)| *v).collect::<Vec<_>>(), [30_000]);
        assert!(a.admit(&p, NOW + 2, 0.95).is_none());
    }
}
