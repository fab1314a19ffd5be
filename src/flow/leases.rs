//! Lease renewals, from the root context: every tick, the leases that are
//! half used or half expired are renewed with a `check.lua` call of their own
//! (see `crate::limits::Admissions`), so a warm subject's requests never wait
//! for Redis. The root makes the calls, not a request: a request's callouts
//! end with it, and a renewal must outlive the request that made it due.

use super::host::{Host, Metric};
use super::worker::Worker;
use crate::limits::{LeaseSizing, PartAnswer, RenewalCall, StoreError};

#[derive(Default)]
pub struct Renewals {
    in_flight: Vec<InFlight>,
}

struct InFlight {
    call: RenewalCall,
    /// Per part of the renewal's plan: the callout out, then its answer.
    tokens: Vec<Option<u32>>,
    answers: Vec<Option<Result<PartAnswer, StoreError>>>,
}

/// How leases are sized, from the configuration.
pub fn sizing(worker: &Worker) -> LeaseSizing {
    let l = &worker.config.limits;
    LeaseSizing {
        max_age_ms: l.local_admission_ms,
        min_estimates: l.local_admission_lease,
        max_estimates: l.local_admission_lease_max,
    }
}

impl Renewals {
    /// Sends the renewals that are due.
    pub fn tick(&mut self, worker: &Worker, host: &dyn Host) {
        let now = host.now_ms();
        let due = worker.admissions.borrow_mut().due_renewals(now, worker.redis_now_ms(host), &sizing(worker));
        let limits = &worker.config.limits;
        for call in due {
            let parts = call.plan.parts();
            let mut tokens = Vec::with_capacity(parts);
            let mut answers = Vec::with_capacity(parts);
            for part in 0..parts {
                let request = call.plan.request(part);
                let headers = request.headers(&limits.authority);
                let token = host.http_call(&limits.cluster, &headers, Some(request.body.as_bytes()), limits.timeout_ms);
                answers.push(token.is_none().then_some(Err(StoreError::NoResponse)));
                tokens.push(token);
            }
            host.count(Metric::LimitsLeaseRenewals, 1);
            let renewal = InFlight { call, tokens, answers };
            if renewal.answers.iter().all(Option::is_some) {
                renewal.finish(worker, host);
            } else {
                self.in_flight.push(renewal);
            }
        }
    }

    /// A callout answered in the root: true when it was a renewal's.
    pub fn answer(&mut self, worker: &Worker, host: &dyn Host, token: u32, body_size: usize) -> bool {
        let Some(i) = self.in_flight.iter().position(|r| r.tokens.contains(&Some(token))) else {
            return false;
        };
        let Some(renewal) = self.in_flight.get_mut(i) else {
            return false;
        };
        if let Some(part) = renewal.tokens.iter().position(|t| *t == Some(token)) {
            let (status, body) = host.call_response(body_size);
            let answer = renewal.call.plan.parse_part(part, status, &body);
            // A renewal on another window than Redis's is not re-sent: the next tick asks again.
            if let Ok(PartAnswer::WrongWindow { redis_now_ms }) = answer {
                worker.learn_redis_clock(host, redis_now_ms);
            }
            if let (Some(t), Some(a)) = (renewal.tokens.get_mut(part), renewal.answers.get_mut(part)) {
                *t = None;
                *a = Some(answer);
            }
        }
        if renewal.answers.iter().all(Option::is_some) {
            let renewal = self.in_flight.swap_remove(i);
            renewal.finish(worker, host);
        }
        true
    }
}

impl InFlight {
    /// Every part answered: the lease grows, ends, or stays as it was.
    fn finish(self, worker: &Worker, host: &dyn Host) {
        let InFlight { call, answers, .. } = self;
        let answers = answers.into_iter().map(|a| a.unwrap_or(Err(StoreError::NoResponse))).collect();
        let combined = call.plan.combine(answers);
        // Room a part reserved that the combined answer does not use goes back.
        worker.give_back(host, &combined.give_back);
        worker.give_back(host, &combined.reserved);
        if combined.result.is_err() {
            host.count(Metric::LimitsLeaseRenewalFailures, 1);
        }
        let max_age = worker.config.limits.local_admission_ms;
        let back = worker.admissions.borrow_mut().renewed(&call, combined.result.as_ref().ok(), host.now_ms(), max_age);
        worker.give_back(host, &back);
    }
}
