//! The limits stage: before a request goes upstream, one `check.lua` call
//! through webdis (one per hash tag against a Redis Cluster, sent together)
//! denies it or reserves its estimate, unless a lease from a recent check
//! admits it locally. A call that named another window than Redis's clock is
//! sent again with Redis's. Store failures fail open (counted) unless
//! configured closed.

use super::host::{Host, Metric};
use super::upstream::Sending;
use super::worker::Worker;
use crate::auth::Principal;
use crate::errors::{ApiError, ErrorKind};
use crate::limits::{
    applicable_windows, budget_headers, budget_status, effective_cap, estimate_usd, rate_limit_headers, usd_to_micro,
    BudgetTier, CheckPlan, CheckResult, LimitOverrides, PartAnswer, StoreError, Subject, WindowStatus,
};

/// A check in flight: the plan, its calls, and what to send once it allows.
pub struct Checking {
    plan: CheckPlan,
    estimate_usd: f64,
    cap_usd: Option<f64>,
    pub sending: Box<Sending>,
    /// One per part of the plan, in order.
    calls: Vec<PartCall>,
}

/// One `check.lua` call of a check.
struct PartCall {
    /// The callout in flight, until it answers.
    token: Option<u32>,
    answer: Option<Result<PartAnswer, StoreError>>,
    /// Times it was sent again with Redis's window index.
    retries: u32,
}

/// How often a call is re-sent when its window index is not Redis's (a
/// boundary between the filter's clock and Redis's): twice covers a skewed
/// clock and a boundary crossed while the first retry was on its way.
const MAX_WINDOW_RETRIES: u32 = 2;

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
    /// Settles the call's real cost, the call having ended at `ended_ms`, against its reservations and its lease.
    pub fn settle(self, worker: &Worker, cost_usd: f64, team_id: i64, ended_ms: u64) {
        worker.record_spend(&self.reservations, cost_usd, team_id, ended_ms);
        if let Some((signature, estimate)) = self.admission {
            worker.admissions.borrow_mut().settle(&signature, estimate, usd_to_micro(cost_usd));
        }
    }
}

pub enum Step {
    Send(Box<Sending>, Grant),
    /// Check calls went out with these tokens (none: still waiting for earlier ones).
    Wait(Vec<u32>, Box<Checking>),
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
    let mut plan = CheckPlan::new(windows, &subject, estimate, cap, worker.redis_now_ms(host));
    if plan.is_empty() {
        return Step::Send(sending, Grant::default());
    }
    if limits.redis_cluster {
        plan = plan.split_by_slot();
    }
    if limits.local_admission_ms > 0 && limits.local_admission_lease > 0 {
        let admitted = worker.admissions.borrow_mut().admit(&plan, host.now_ms(), limits.budget.engage_threshold);
        if let Some(a) = admitted {
            host.count(Metric::LimitsLocalAdmits, 1);
            let admission = Some((plan.signature().to_string(), plan.estimate_micro()));
            return allowed(worker, sending, a.tightest, a.month_spend_usd, a.reservations, cap, admission);
        }
        let lease = worker.admissions.borrow().lease_for(&plan, host.now_ms(), &super::leases::sizing(worker));
        plan = plan.with_lease(lease);
    }
    let mut checking = Checking { plan, estimate_usd: estimate, cap_usd: cap, sending, calls: Vec::new() };
    let mut tokens = Vec::new();
    for part in 0..checking.plan.parts() {
        let token = dispatch(worker, host, &checking.plan, part);
        let answer = token.is_none().then_some(Err(StoreError::NoResponse));
        tokens.extend(token);
        checking.calls.push(PartCall { token, answer, retries: 0 });
    }
    if tokens.is_empty() {
        return finish(worker, host, checking);
    }
    Step::Wait(tokens, Box::new(checking))
}

/// Sends part `part` of the plan; `None` if Envoy refused the callout.
fn dispatch(worker: &Worker, host: &dyn Host, plan: &CheckPlan, part: usize) -> Option<u32> {
    let limits = &worker.config.limits;
    let request = plan.request(part);
    let headers = request.headers(&limits.authority);
    host.http_call(&limits.cluster, &headers, Some(request.body.as_bytes()), limits.timeout_ms)
}

/// A check call answered (the callout `token`).
pub fn answered(
    worker: &Worker,
    host: &dyn Host,
    mut checking: Box<Checking>,
    token: u32,
    status: u32,
    body: &[u8],
) -> Step {
    let Some(part) = checking.calls.iter().position(|c| c.token == Some(token)) else {
        return Step::Wait(Vec::new(), checking);
    };
    let answer = checking.plan.parse_part(part, status, body);
    let Checking { plan, calls, .. } = &mut *checking;
    let Some(call) = calls.get_mut(part) else {
        return Step::Wait(Vec::new(), checking);
    };
    call.token = None;
    if let Ok(PartAnswer::WrongWindow { redis_now_ms }) = answer {
        worker.learn_redis_clock(host, redis_now_ms);
        if call.retries < MAX_WINDOW_RETRIES {
            call.retries += 1;
            host.count(Metric::LimitsWindowRetries, 1);
            plan.set_window_clock(redis_now_ms);
            if let Some(token) = dispatch(worker, host, plan, part) {
                call.token = Some(token);
                return Step::Wait(vec![token], checking);
            }
        }
    }
    call.answer = Some(answer);
    if checking.calls.iter().any(|c| c.answer.is_none()) {
        return Step::Wait(Vec::new(), checking);
    }
    finish(worker, host, *checking)
}

/// Every call answered: allowed, denied, or the store failed.
fn finish(worker: &Worker, host: &dyn Host, checking: Checking) -> Step {
    let Checking { plan, estimate_usd, cap_usd, sending, calls } = checking;
    let answers = calls.into_iter().map(|c| c.answer.unwrap_or(Err(StoreError::NoResponse))).collect();
    let combined = plan.combine(answers);
    // Room a call reserved that the combined answer does not use goes back.
    worker.give_back(host, &combined.give_back);
    let max_age = worker.config.limits.local_admission_ms;
    let ended = worker.admissions.borrow_mut().remember(&plan, combined.result.as_ref().ok(), host.now_ms(), max_age);
    worker.give_back(host, &ended);
    match combined.result {
        Ok(CheckResult::Allowed { tightest, month_spend_usd, reservations, .. }) => {
            let admission = Some((plan.signature().to_string(), plan.estimate_micro()));
            allowed(worker, sending, tightest, month_spend_usd, reservations, cap_usd, admission)
        }
        Ok(denied) => {
            host.count(Metric::RateLimited, 1);
            let engage = worker.config.limits.budget.engage_threshold;
            let error = denied
                .denial(estimate_usd, cap_usd, engage)
                .unwrap_or_else(|| ApiError::new(ErrorKind::RateLimited, "Rate limit exceeded"));
            Step::Reply(error)
        }
        Err(e) => store_failed(worker, host, sending, &format!("{e:?}"), combined.reserved),
    }
}

/// The request ended while its check was in flight: what the calls that
/// answered reserved goes back (the others' reservations, if any, stay until
/// their windows end: Envoy cancelled the callouts, their answers never come).
pub fn abandoned(worker: &Worker, host: &dyn Host, checking: Checking) {
    let Checking { plan, calls, .. } = checking;
    let answers = calls.into_iter().map(|c| c.answer.unwrap_or(Err(StoreError::NoResponse))).collect();
    let combined = plan.combine(answers);
    worker.give_back(host, &combined.give_back);
    worker.give_back(host, &combined.reserved);
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

/// The store failed (for at least one call of the check). Failing open, the
/// call keeps what the other calls reserved, settled as usual; failing closed,
/// that goes back.
fn store_failed(
    worker: &Worker,
    host: &dyn Host,
    sending: Box<Sending>,
    why: &str,
    reserved: Vec<(String, i64)>,
) -> Step {
    host.count(Metric::LimitsUnavailable, 1);
    worker.log_store_failure(host, why);
    if worker.config.limits.fail_open {
        let grant = Grant {
            response_headers: vec![("x-posthog-budget", "unknown".into())],
            reservations: reserved,
            admission: None,
        };
        return Step::Send(sending, grant);
    }
    worker.give_back(host, &reserved);
    let e = ApiError::new(ErrorKind::Unavailable, "Rate limits cannot be checked right now; try again")
        .code("limits_unavailable");
    Step::Reply(e)
}
