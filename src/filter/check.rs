//! The rate-limit and budget check before a request goes upstream: one
//! `check.lua` call through webdis, which denies or reserves the estimate.

use proxy_wasm::types::Action;

use super::host;
use super::http::{Request, Sending};
use crate::auth::Principal;
use crate::errors::{ApiError, ErrorKind};
use crate::limits::{
    applicable_windows, budget_headers, budget_status, effective_cap, estimate_usd, rate_limit_headers, BudgetTier,
    CheckPlan, CheckResult, LimitOverrides, Subject, WindowStatus,
};

/// A check in flight: the call, and what to send once it allows.
pub struct Checking {
    pub token: u32,
    plan: CheckPlan,
    estimate_usd: f64,
    cap_usd: Option<f64>,
    pub sending: Box<Sending>,
}

impl Request {
    /// Starts the check, or sends right away when no window or budget applies.
    pub(super) fn check_then_send(&mut self, sending: Box<Sending>, principal: &Principal) -> Action {
        let config = &self.shared.config;
        let prices = self.shared.pricing.table();
        let (provider, model) = (sending.upstream.provider, &sending.upstream.model);
        if prices.rejects(Some(provider), model) {
            host::increment(self.shared.metrics.unpriced_rejected, 1);
            return self.reply(crate::pricing::unpriced(&sending.call.model), sending.route.endpoint.format());
        }
        let limits = &config.limits;
        if !limits.enabled {
            return self.send(*sending);
        }
        let overrides = LimitOverrides::from_principal(principal.limits.as_ref()).unwrap_or_else(|e| {
            log::warn!("#{} ignoring the principal's limits: {e}", self.id);
            LimitOverrides::default()
        });
        let windows = applicable_windows(limits, &overrides);
        let estimate = match prices.quote(Some(provider), model, crate::pricing::day_of(host::now_ms())) {
            Some(p) => estimate_usd(sending.body_size as u64, sending.max_output_tokens, p.input, p.output),
            None => config.fallback_cost_usd,
        };
        let cap = effective_cap(principal.monthly_budget_usd, limits.budget.monthly_budget_usd);
        let subject =
            Subject { team_id: principal.team_id, product: &sending.call.product, end_user: &sending.call.distinct_id };
        let mut plan = CheckPlan::new(windows, &subject, estimate, cap, host::now_ms());
        if plan.is_empty() {
            return self.send(*sending);
        }
        if limits.local_admission_ms > 0 && limits.local_admission_lease > 0 {
            let engage = limits.budget.engage_threshold;
            let admitted = self.shared.admissions.borrow_mut().admit(&plan, host::now_ms(), engage);
            if let Some(a) = admitted {
                host::increment(self.shared.metrics.limits_local_admits, 1);
                self.admission = Some((plan.signature().to_string(), plan.estimate_micro()));
                return self.allowed(sending, a.tightest, a.month_spend_usd, a.reservations, cap);
            }
            let lease = plan.estimate_micro().saturating_mul(i64::from(limits.local_admission_lease));
            plan = plan.with_lease(lease);
        }
        let request = plan.request();
        match host::http_call(
            &limits.cluster,
            &request.headers(&limits.authority),
            Some(request.body.as_bytes()),
            limits.timeout_ms,
        ) {
            Some(token) => {
                self.shared.route(token, self.id, self.me.clone());
                self.checking = Some(Box::new(Checking { token, plan, estimate_usd: estimate, cap_usd: cap, sending }));
                Action::Pause
            }
            None => self.store_failed(sending, "dispatch refused"),
        }
    }

    /// The check answered (outside the request's callbacks: resume if it goes on).
    pub(super) fn on_check(&mut self, status: u32, body: &[u8]) {
        let Some(checking) = self.checking.take() else {
            return;
        };
        let Checking { plan, estimate_usd, cap_usd, sending, .. } = *checking;
        let answer = plan.parse(status, body);
        let max_age = self.shared.config.limits.local_admission_ms;
        let ended = self.shared.admissions.borrow_mut().remember(&plan, answer.as_ref().ok(), host::now_ms(), max_age);
        self.shared.record_spend(&ended, 0.0, sending.team_id);
        let action = match answer {
            Ok(CheckResult::Allowed { tightest, month_spend_usd, reservations, .. }) => {
                self.admission = Some((plan.signature().to_string(), plan.estimate_micro()));
                self.allowed(sending, tightest, month_spend_usd, reservations, cap_usd)
            }
            Ok(denied) => {
                host::increment(self.shared.metrics.rate_limited, 1);
                let format = sending.route.endpoint.format();
                let mut error = denied
                    .error(estimate_usd)
                    .unwrap_or_else(|| ApiError::new(ErrorKind::RateLimited, "Rate limit exceeded"));
                error.headers.extend(denied.headers());
                if let CheckResult::BudgetExceeded { .. } = denied {
                    error.headers.push(("x-posthog-budget", "exceeded".into()));
                }
                self.reply(error, format)
            }
            Err(e) => self.store_failed(sending, &format!("{e:?}")),
        };
        if matches!(action, Action::Continue) {
            host::resume_request();
        }
    }

    /// Sends a request the check (or a local admission) allowed, with its headers and budget tier.
    fn allowed(
        &mut self,
        mut sending: Box<Sending>,
        tightest: Option<WindowStatus>,
        month_spend_usd: Option<f64>,
        reservations: Vec<(String, i64)>,
        cap_usd: Option<f64>,
    ) -> Action {
        let budget = budget_status(cap_usd, month_spend_usd, self.shared.config.limits.budget.engage_threshold);
        self.response_headers = tightest.as_ref().map(rate_limit_headers).unwrap_or_default();
        self.response_headers.extend(budget_headers(&budget));
        self.reservations = reservations;
        sending.budget_engaged = budget.tier == BudgetTier::Engage;
        if let Some(tier) = budget.tier.header_value() {
            sending.call.gateway_properties.insert("$ai_budget_tier".into(), tier.into());
        }
        self.send(*sending)
    }

    /// Redis or webdis failed: limits fail open (counted) unless configured closed.
    fn store_failed(&mut self, sending: Box<Sending>, why: &str) -> Action {
        host::increment(self.shared.metrics.limits_unavailable, 1);
        self.shared.log_store_failure(why);
        if self.shared.config.limits.fail_open {
            self.response_headers = vec![("x-posthog-budget", "unknown".into())];
            return self.send(*sending);
        }
        let format = sending.route.endpoint.format();
        let e = ApiError::new(ErrorKind::Unavailable, "Rate limits cannot be checked right now; try again")
            .code("limits_unavailable");
        self.reply(e, format)
    }
}
