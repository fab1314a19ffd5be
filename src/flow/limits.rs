//! The limits stage: before a request goes upstream, one `check.lua` call
//! through webdis denies it or reserves its estimate, unless a lease from a
//! recent check admits it locally. Store failures fail open (counted) unless
//! configured closed.

use super::host::{Host, Metric};
use super::upstream::Sending;
use super::worker::Worker;
use crate::auth::Principal;
use crate::errors::{ApiError, ErrorKind};
use crate::limits::{
    applicable_windows, budget_headers, budget_status, effective_cap, estimate_usd, rate_limit_headers, usd_to_micro,
    BudgetTier, CheckPlan, CheckResult, LimitOverrides, Subject, WindowStatus,
};

/// A check in flight: the plan, and what to send once it allows.
pub struct Checking {
    plan: CheckPlan,
    estimate_usd: f64,
    cap_usd: Option<f64>,
    pub sending: Box<Sending>,
}

/// What an allowed request carries to the end of its call.
#[derive(Default)]
pub struct Grant {
    /// Rate-limit and budget headers for the client's response.
    pub response_headers: Vec<(&'static str, String)>,
    /// Estimates reserved in each window, settled with the real cost at the end.
    pub reservations: Vec<(String, i64)>,
    /// The allowed check's plan signature and estimate, to settle its lease too.
    pub admission: Option<(String, i64)>,
}

impl Grant {
    /// Settles the call's real cost against its reservations and its lease.
    pub fn settle(self, worker: &Worker, host: &dyn Host, cost_usd: f64, team_id: i64) {
        worker.record_spend(host, &self.reservations, cost_usd, team_id);
        if let Some((signature, estimate)) = self.admission {
            worker.admissions.borrow_mut().settle(&signature, estimate, usd_to_micro(cost_usd));
        }
    }
}

pub enum Step {
    Send(Box<Sending>, Grant),
    /// The check went out with this token.
    Wait(u32, Box<Checking>),
    Reply(ApiError),
}

/// Starts the check, or sends right away when no window or budget applies or a lease admits it.
pub fn check(worker: &Worker, host: &dyn Host, sending: Box<Sending>, principal: &Principal) -> Step {
    let config = &worker.config;
    let limits = &config.limits;
    if !limits.enabled {
        return Step::Send(sending, Grant::default());
    }
    let overrides = LimitOverrides::from_principal(principal.limits.as_ref()).unwrap_or_else(|e| {
        log::warn!("ignoring the principal's limits: {e}");
        LimitOverrides::default()
    });
    let windows = applicable_windows(limits, &overrides);
    let day = crate::pricing::day_of(host.now_ms());
    let table = worker.pricing.table();
    // With fallbacks, the dearest target's estimate: any of them may answer.
    let estimate = std::iter::once(&sending.upstream)
        .chain(&sending.fallbacks)
        .map(|u| match table.quote(Some(u.provider), &u.model, day) {
            Some(p) => estimate_usd(sending.body_size as u64, sending.max_output_tokens, p.input, p.output),
            None => config.fallback_cost_usd,
        })
        .fold(0.0, f64::max);
    let cap = effective_cap(principal.monthly_budget_usd, limits.budget.monthly_budget_usd);
    let subject =
        Subject { team_id: principal.team_id, product: &sending.call.product, end_user: &sending.call.distinct_id };
    let mut plan = CheckPlan::new(windows, &subject, estimate, cap, host.now_ms());
    if plan.is_empty() {
        return Step::Send(sending, Grant::default());
    }
    if limits.local_admission_ms > 0 && limits.local_admission_lease > 0 {
        let admitted = worker.admissions.borrow_mut().admit(&plan, host.now_ms(), limits.budget.engage_threshold);
        if let Some(a) = admitted {
            host.count(Metric::LimitsLocalAdmits, 1);
            let admission = Some((plan.signature().to_string(), plan.estimate_micro()));
            return allowed(worker, sending, a.tightest, a.month_spend_usd, a.reservations, cap, admission);
        }
        let lease = plan.estimate_micro().saturating_mul(i64::from(limits.local_admission_lease));
        plan = plan.with_lease(lease);
    }
    let request = plan.request();
    match host.http_call(
        &limits.cluster,
        &request.headers(&limits.authority),
        Some(request.body.as_bytes()),
        limits.timeout_ms,
    ) {
        Some(token) => Step::Wait(token, Box::new(Checking { plan, estimate_usd: estimate, cap_usd: cap, sending })),
        None => store_failed(worker, host, sending, "dispatch refused"),
    }
}

/// The check answered.
pub fn answered(worker: &Worker, host: &dyn Host, checking: Checking, status: u32, body: &[u8]) -> Step {
    let Checking { plan, estimate_usd, cap_usd, sending } = checking;
    let answer = plan.parse(status, body);
    let max_age = worker.config.limits.local_admission_ms;
    let ended = worker.admissions.borrow_mut().remember(&plan, answer.as_ref().ok(), host.now_ms(), max_age);
    worker.record_spend(host, &ended, 0.0, sending.team_id);
    match answer {
        Ok(CheckResult::Allowed { tightest, month_spend_usd, reservations, .. }) => {
            let admission = Some((plan.signature().to_string(), plan.estimate_micro()));
            allowed(worker, sending, tightest, month_spend_usd, reservations, cap_usd, admission)
        }
        Ok(denied) => {
            host.count(Metric::RateLimited, 1);
            let mut error = denied
                .error(estimate_usd)
                .unwrap_or_else(|| ApiError::new(ErrorKind::RateLimited, "Rate limit exceeded"));
            error.headers.extend(denied.headers());
            if let CheckResult::BudgetExceeded { .. } = denied {
                error.headers.push(("x-posthog-budget", "exceeded".into()));
            }
            Step::Reply(error)
        }
        Err(e) => store_failed(worker, host, sending, &format!("{e:?}")),
    }
}

/// A request the check (or a lease) allowed: its headers and budget tier.
fn allowed(
    worker: &Worker,
    mut sending: Box<Sending>,
    tightest: Option<WindowStatus>,
    month_spend_usd: Option<f64>,
    reservations: Vec<(String, i64)>,
    cap_usd: Option<f64>,
    admission: Option<(String, i64)>,
) -> Step {
    let budget = budget_status(cap_usd, month_spend_usd, worker.config.limits.budget.engage_threshold);
    let mut response_headers = tightest.as_ref().map(rate_limit_headers).unwrap_or_default();
    response_headers.extend(budget_headers(&budget));
    sending.budget_engaged = budget.tier == BudgetTier::Engage;
    if let Some(tier) = budget.tier.header_value() {
        sending.call.gateway_properties.insert("$ai_budget_tier".into(), tier.into());
    }
    Step::Send(sending, Grant { response_headers, reservations, admission })
}

fn store_failed(worker: &Worker, host: &dyn Host, sending: Box<Sending>, why: &str) -> Step {
    host.count(Metric::LimitsUnavailable, 1);
    worker.log_store_failure(host, why);
    if worker.config.limits.fail_open {
        let grant = Grant { response_headers: vec![("x-posthog-budget", "unknown".into())], ..Grant::default() };
        return Step::Send(sending, grant);
    }
    let e = ApiError::new(ErrorKind::Unavailable, "Rate limits cannot be checked right now; try again")
        .code("limits_unavailable");
    Step::Reply(e)
}
