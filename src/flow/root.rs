//! What the root context does for its worker: every tick, the requests
//! waiting on time (a body that never starts, work deferred from another
//! request's callback) and the queues (spend, events); the answers to the
//! root's own callouts; and the drain at shutdown.

use std::cell::RefCell;
use std::rc::Rc;

use super::capture;
use super::host::{Host, Metric};
use super::leases::Renewals;
use super::pace::FULL_TICK_MS;
use super::request::{self, Requests};
use super::spend::Recorded;
use super::worker::Worker;

pub struct Root {
    pub worker: Rc<Worker>,
    pub registry: Rc<RefCell<Requests>>,
    /// Lease renewals in flight: the root's own callouts.
    renewals: Renewals,
    draining: bool,
    /// When the last full tick ran.
    last_full_ms: u64,
}

impl Root {
    pub fn new(worker: Worker) -> Self {
        Root {
            worker: Rc::new(worker),
            registry: Rc::default(),
            renewals: Renewals::default(),
            draining: false,
            last_full_ms: 0,
        }
    }

    /// The worker is configured: reports what it starts with.
    pub fn started(&self, host: &dyn Host) {
        host.gauge(Metric::PricingCatalogModels, self.worker.pricing.table().models() as u64);
    }

    /// Envoy's tick: the quick one, or the full one once `FULL_TICK_MS` have
    /// passed. By the clock, not by count: Envoy arms the next tick only after
    /// this one returns, so under load ticks come late. True when it was full.
    pub fn on_tick(&mut self, host: &dyn Host) -> bool {
        let busy = self.has_calls_to_account() || self.registry.borrow().has_deferred();
        self.worker.pace.ticked(host, busy);
        let now = host.now_ms();
        // A slow tick comes every `FULL_TICK_MS`: each is full, whatever the clock's rounding.
        if self.worker.pace.is_fast() && now.saturating_sub(self.last_full_ms) < FULL_TICK_MS {
            self.quick_tick(host);
            return false;
        }
        self.last_full_ms = now;
        self.tick(host);
        true
    }

    /// Calls have ended and wait for the tick to be accounted for.
    pub fn has_calls_to_account(&self) -> bool {
        !self.worker.ended.borrow().is_empty()
    }

    /// Every tick: the calls that ended since the last are accounted for, off
    /// their clients' path, and requests deferred from another request's callback go on.
    pub fn quick_tick(&mut self, host: &dyn Host) {
        capture::account_ended(&self.worker, host);
        let deferred = self.registry.borrow_mut().take_deferred();
        for (id, req) in deferred {
            if let Some(req) = req.upgrade() {
                if host.set_effective_context(id) {
                    req.borrow_mut().run_deferred(host);
                }
            }
        }
    }

    /// Every `FULL_TICK_MS`: the quick tick, then the timers and the queues.
    pub fn tick(&mut self, host: &dyn Host) {
        self.quick_tick(host);
        let now = host.now_ms();
        self.worker.pricing.tick(host, now);
        self.expire_bodies(host, now);
        let w = &self.worker;
        if !self.draining {
            self.renewals.tick(w, host);
        }
        let ended = w.admissions.borrow_mut().expire(if self.draining { u64::MAX } else { now });
        w.give_back(host, &ended);
        w.spend.borrow_mut().flush(host, &w.config, now, self.draining);
        let (dropped, dropped_micro) = w.spend.borrow_mut().pending.take_dropped();
        host.count(Metric::SpendDropped, dropped);
        host.count(Metric::SpendDroppedMicroUsd, u64::try_from(dropped_micro).unwrap_or(0));
        if let Some(capture) = &w.capture {
            capture.borrow_mut().flush(host, now, self.draining);
        }
    }

    /// Without `allow_on_headers_stop_iteration`, Envoy never calls the body
    /// callback after the headers phase paused and the request would hang; the
    /// tick replies 408 to requests whose body has not started in time.
    fn expire_bodies(&self, host: &dyn Host, now_ms: u64) {
        let expired = self.registry.borrow_mut().take_expired_bodies(now_ms);
        if !expired.is_empty() {
            log::warn!(
                "{} request(s) got no body within {} ms; if every request with a body does this, the wasm filter config lacks allow_on_headers_stop_iteration: true",
                expired.len(),
                self.worker.config.body_timeout_ms
            );
        }
        for (id, req) in expired {
            if let Some(req) = req.upgrade() {
                if host.set_effective_context(id) {
                    req.borrow_mut().body_timed_out(host);
                }
            }
        }
    }

    /// A callout answered in the root's context: a request's, a spend record or
    /// an event batch. Returns true when a drain has just finished.
    pub fn on_callout(&mut self, host: &dyn Host, token: u32, body_size: usize) -> bool {
        if request::on_callout(&self.registry, host, token, body_size, None)
            || self.worker.pricing.answer(host, token, body_size)
            || self.renewals.answer(&self.worker, host, token, body_size)
        {
            return false;
        }
        let w = &self.worker;
        let (status, body) = host.call_response(body_size);
        let recorded = w.spend.borrow_mut().on_response(token, status, &body);
        match recorded {
            Some(Recorded::Done) => host.count(Metric::SpendRecords, 1),
            Some(Recorded::Retry) => {}
            Some(Recorded::Dropped { keys, budget_micro }) => {
                host.count(Metric::SpendDropped, keys);
                host.count(Metric::SpendDroppedMicroUsd, u64::try_from(budget_micro).unwrap_or(0));
            }
            None => {}
        }
        if recorded.is_some() {
            if self.draining {
                w.spend.borrow_mut().flush(host, &w.config, host.now_ms(), true);
                return self.idle();
            }
            return false;
        }
        let Some(capture) = w.capture.as_ref() else {
            return false;
        };
        let retry_after = host.call_response_header("retry-after");
        let now = host.now_ms();
        let mut c = capture.borrow_mut();
        c.on_response(host, token, status, retry_after.as_deref(), now);
        // A full batch waiting goes now, not at the next tick: under load one batch
        // per tick and destination would cap delivery at 10 batches a second.
        c.flush(host, now, self.draining);
        drop(c);
        self.draining && self.idle()
    }

    /// Shutdown or reload: sends everything queued now. True if nothing is left
    /// (else Envoy waits for the answers; drain listeners first to give them time).
    pub fn on_done(&mut self, host: &dyn Host) -> bool {
        self.draining = true;
        let now = host.now_ms();
        let w = &self.worker;
        capture::account_ended(w, host);
        w.spend.borrow_mut().flush(host, &w.config, now, true);
        if let Some(capture) = &w.capture {
            capture.borrow_mut().flush(host, now, true);
        }
        self.idle()
    }

    /// Nothing queued or in flight: no call waiting to be accounted for, no spend, no event.
    fn idle(&self) -> bool {
        let w = &self.worker;
        w.ended.borrow().is_empty()
            && w.spend.borrow().is_idle()
            && w.capture.as_ref().is_none_or(|c| c.borrow().is_idle())
    }
}
