//! The monthly budget guard: a team's spend in the current UTC calendar month
//! against its cap, as tiers and response headers.
//!
//! The cap is the principal's `monthly_budget_usd` when set (including 0),
//! else `limits.budget.monthly_budget_usd`. Spend is read by the check (one
//! round trip with the windows) and `check.lua` denies once spend >= cap
//! (tier `Blocked`); every other tier is for the filter: `Engage` turns Save
//! Mode on for teams that opted in. The budget reserves nothing: it can be
//! overshot by the calls in flight when it is crossed plus the spend not yet
//! flushed (`record_flush_ms`). A store failure gives `Unknown`, which never
//! blocks (the budget always fails open).

use super::format_usd;
use crate::calendar::{civil_from_days, days_from_civil};

/// Fraction of the cap from which the tier is `Warn`.
pub const WARN_FRACTION: f64 = 0.85;
/// TTL of a month key, set when its first spend is recorded: the longest
/// month plus a few days, so a key outlives its month and then goes.
pub const BUDGET_KEY_TTL_S: u64 = 35 * 86_400;

const MS_PER_DAY: u64 = 86_400_000;

/// Why there is no budget. `None` and `0` are different mistakes upstream
/// (no budget configured vs a budget of zero), so they are told apart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DisabledReason {
    /// No cap: neither the principal nor the config has one.
    NoCap,
    /// A cap of 0 or less (or not a number).
    NotPositive,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetTier {
    Disabled(DisabledReason),
    Ok,
    /// Spend >= 85% of the cap.
    Warn,
    /// Spend >= the engage threshold: Save Mode for teams that opted in.
    Engage,
    /// Spend >= the cap: new calls get 429.
    Blocked,
    /// The store did not answer; never blocks.
    Unknown,
}

impl BudgetTier {
    /// Value of `x-posthog-budget`; none when the budget is disabled.
    pub fn header_value(self) -> Option<&'static str> {
        match self {
            BudgetTier::Disabled(_) => None,
            BudgetTier::Ok => Some("ok"),
            BudgetTier::Warn => Some("warn"),
            BudgetTier::Engage => Some("engage"),
            BudgetTier::Blocked => Some("exceeded"),
            BudgetTier::Unknown => Some("unknown"),
        }
    }
}

/// Where a team stands against its monthly budget.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetStatus {
    pub tier: BudgetTier,
    /// The cap, when enabled.
    pub cap_usd: Option<f64>,
    /// This month's spend, when known.
    pub spend_usd: Option<f64>,
}

impl BudgetStatus {
    /// `cap - spend`, at least 0; `None` when disabled or unknown.
    pub fn remaining_usd(&self) -> Option<f64> {
        Some((self.cap_usd? - self.spend_usd?).max(0.0))
    }
}

/// The cap in force: the principal's when it has one, else the config's.
pub fn effective_cap(principal: Option<f64>, config: Option<f64>) -> Option<f64> {
    principal.or(config)
}

/// The tier for `spend` (None: the store did not answer) against `cap`.
pub fn budget_status(cap: Option<f64>, spend_usd: Option<f64>, engage_threshold: f64) -> BudgetStatus {
    let cap_usd = match cap {
        None => return BudgetStatus { tier: BudgetTier::Disabled(DisabledReason::NoCap), cap_usd: None, spend_usd },
        Some(c) if !(c.is_finite() && c > 0.0) => {
            return BudgetStatus { tier: BudgetTier::Disabled(DisabledReason::NotPositive), cap_usd: None, spend_usd }
        }
        Some(c) => c,
    };
    let tier = match spend_usd {
        None => BudgetTier::Unknown,
        Some(s) if s >= cap_usd => BudgetTier::Blocked,
        Some(s) if s >= cap_usd * engage_threshold => BudgetTier::Engage,
        Some(s) if s >= cap_usd * WARN_FRACTION => BudgetTier::Warn,
        Some(_) => BudgetTier::Ok,
    };
    BudgetStatus { tier, cap_usd: Some(cap_usd), spend_usd }
}

/// `x-posthog-budget` and `x-posthog-budget-remaining-usd` (the latter only
/// when known); nothing when the budget is disabled.
pub fn budget_headers(status: &BudgetStatus) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    if let Some(v) = status.tier.header_value() {
        out.push(("x-posthog-budget", v.to_string()));
        if let Some(r) = status.remaining_usd() {
            out.push(("x-posthog-budget-remaining-usd", format_usd(r)));
        }
    }
    out
}

/// The team's budget key for the UTC month of `now_ms`:
/// `llmgw:{t:<team>}:budget:<YYYY-MM>`, in the slot of the team's windows.
pub fn budget_key(team_id: i64, now_ms: u64) -> String {
    let (y, m) = utc_year_month(now_ms);
    format!("llmgw:{}:budget:{y:04}-{m:02}", super::team_tag(team_id))
}

/// UTC (year, month 1..=12) of a Unix time in milliseconds.
pub fn utc_year_month(now_ms: u64) -> (u64, u64) {
    let (y, m, _) = civil_from_days(now_ms / MS_PER_DAY);
    (y, m)
}

/// Seconds from `now_ms` to the start of the next UTC month (at least 1): the
/// `Retry-After` of a blocked budget.
pub fn month_reset_s(now_ms: u64) -> u64 {
    let (y, m) = utc_year_month(now_ms);
    let (ny, nm) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    let next_ms = days_from_civil(ny, nm, 1).saturating_mul(MS_PER_DAY);
    next_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: f64 = 0.95;

    fn tier(cap: Option<f64>, spend: Option<f64>) -> BudgetTier {
        budget_status(cap, spend, T).tier
    }

    #[test]
    fn tiers_at_each_threshold() {
        let cap = Some(100.0);
        assert_eq!(tier(cap, Some(0.0)), BudgetTier::Ok);
        assert_eq!(tier(cap, Some(84.99)), BudgetTier::Ok);
        assert_eq!(tier(cap, Some(85.0)), BudgetTier::Warn);
        assert_eq!(tier(cap, Some(94.99)), BudgetTier::Warn);
        assert_eq!(tier(cap, Some(95.0)), BudgetTier::Engage);
        assert_eq!(tier(cap, Some(99.999)), BudgetTier::Engage);
        assert_eq!(tier(cap, Some(100.0)), BudgetTier::Blocked);
        assert_eq!(tier(cap, Some(250.0)), BudgetTier::Blocked);
        assert_eq!(tier(cap, None), BudgetTier::Unknown);
        // An engage threshold below the warn line wins over warn.
        assert_eq!(budget_status(cap, Some(86.0), 0.5).tier, BudgetTier::Engage);
        assert_eq!(budget_status(cap, Some(99.0), 1.0).tier, BudgetTier::Warn);
    }

    #[test]
    fn none_and_zero_are_disabled_for_different_reasons() {
        assert_eq!(tier(None, Some(5.0)), BudgetTier::Disabled(DisabledReason::NoCap));
        assert_eq!(tier(Some(0.0), Some(5.0)), BudgetTier::Disabled(DisabledReason::NotPositive));
        assert_eq!(tier(Some(-3.0), None), BudgetTier::Disabled(DisabledReason::NotPositive));
        assert_eq!(tier(Some(f64::NAN), None), BudgetTier::Disabled(DisabledReason::NotPositive));
        assert!(budget_headers(&budget_status(None, Some(1.0), T)).is_empty());
        assert!(budget_headers(&budget_status(Some(0.0), Some(1.0), T)).is_empty());
    }

    #[test]
    fn principal_cap_wins_even_when_zero() {
        assert_eq!(effective_cap(Some(0.0), Some(100.0)), Some(0.0));
        assert_eq!(effective_cap(None, Some(100.0)), Some(100.0));
        assert_eq!(effective_cap(Some(5.0), None), Some(5.0));
        assert_eq!(effective_cap(None, None), None);
    }

    #[test]
    fn headers() {
        let h = budget_headers(&budget_status(Some(100.0), Some(90.5), T));
        assert_eq!(h, vec![("x-posthog-budget", "warn".into()), ("x-posthog-budget-remaining-usd", "9.5".into())]);
        let h = budget_headers(&budget_status(Some(100.0), Some(120.0), T));
        assert_eq!(h[0].1, "exceeded");
        assert_eq!(h[1].1, "0");
        let h = budget_headers(&budget_status(Some(100.0), None, T));
        assert_eq!(h, vec![("x-posthog-budget", "unknown".into())]);
        assert_eq!(budget_headers(&budget_status(Some(10.0), Some(0.0), T))[0].1, "ok");
        assert_eq!(budget_headers(&budget_status(Some(10.0), Some(9.6), T))[0].1, "engage");
    }

    #[test]
    fn month_keys() {
        // 2024-02-29T23:59:59.999Z, then 2024-03-01T00:00:00Z.
        assert_eq!(budget_key(7, 1_709_251_199_999), "llmgw:{t:7}:budget:2024-02");
        assert_eq!(budget_key(7, 1_709_251_200_000), "llmgw:{t:7}:budget:2024-03");
        assert_eq!(utc_year_month(0), (1970, 1));
        assert_eq!(utc_year_month(1_735_689_599_000), (2024, 12)); // 2024-12-31T23:59:59Z
        assert_eq!(utc_year_month(1_735_689_600_000), (2025, 1));
        assert_eq!(budget_key(-1, 4_102_444_800_000), "llmgw:{t:-1}:budget:2100-01");
    }

    #[test]
    fn month_reset() {
        assert_eq!(month_reset_s(1_709_251_199_000), 1); // one second before March
        assert_eq!(month_reset_s(1_709_251_200_000), 31 * 86_400); // March 1st 00:00
        assert_eq!(month_reset_s(1_735_689_599_500), 1); // Dec 31st → Jan 1st
        assert_eq!(month_reset_s(1_706_745_600_000), 29 * 86_400); // 2024-02-01: leap February
    }
}
