//! Per-VM root context: compiles the configuration, owns what HTTP contexts
//! share (config, keys, metrics, the principal cache and in-flight lookups).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::delivery::Capture;
use super::host;
use super::http::{finish_lookup, HttpFilter, Request, Waiter, WeakRequest};
use super::metrics::Metrics;
use super::prices::Pricing;
use super::spend::{Recorded, Spend};
use crate::auth::{self, Cached, Principal, PrincipalCache};
use crate::config::Config;
use crate::forward::ProviderKeys;
use crate::limits::Admissions;

/// What every HTTP context on this VM shares.
pub struct Shared {
    pub config: Config,
    pub keys: ProviderKeys,
    pub metrics: Metrics,
    pub capture: Option<RefCell<Capture>>,
    /// The price table in use, and its refresh (`filter/prices.rs`).
    pub pricing: Pricing,
    cache: RefCell<PrincipalCache>,
    flights: RefCell<Flights>,
    /// Requests paused for a body that has not started: context id → (deadline, request).
    awaiting_body: RefCell<HashMap<u32, (u64, WeakRequest)>>,
    pub spend: RefCell<Spend>,
    /// Recent limit-check answers, for local admission.
    pub admissions: RefCell<Admissions>,
    /// Requests to go on from the root's tick (see `Request::run_deferred`).
    deferred: RefCell<Vec<(u32, WeakRequest)>>,
    /// Callouts made for a request: token → the request, whichever context gets the answer.
    routed: RefCell<HashMap<u32, (u32, WeakRequest)>>,
    /// When a store failure was last logged (one line per interval, not per request).
    store_failure_logged_ms: RefCell<u64>,
}

/// Auth callouts in flight on this worker.
#[derive(Default)]
struct Flights {
    /// Callout token → key hash.
    by_token: HashMap<u32, String>,
    /// Key hash → requests waiting for that callout.
    waiters: HashMap<String, Vec<Waiter>>,
}

const SHARED_PREFIX: &str = "llm_gateway:principal:";

impl Shared {
    /// Local cache first, then the cross-worker shared data (positive answers only).
    pub fn cached_principal(&self, hash: &str) -> Option<Cached> {
        let now = host::now_ms();
        if let Some(c) = self.cache.borrow_mut().get(hash, now) {
            return Some(c);
        }
        let data = host::shared_data(&format!("{SHARED_PREFIX}{hash}"))?;
        let (principal, expires) = auth::decode_shared(&data, now)?;
        let known = Cached::Known(Rc::new(principal));
        self.cache.borrow_mut().insert(hash.to_string(), known.clone(), expires, now);
        Some(known)
    }

    pub fn remember_principal(&self, hash: &str, principal: Principal, json: &[u8]) -> Rc<Principal> {
        let now = host::now_ms();
        let expires = now + self.config.auth.cache_ttl_ms;
        let p = Rc::new(principal);
        self.cache.borrow_mut().insert(hash.to_string(), Cached::Known(Rc::clone(&p)), expires, now);
        host::set_shared_data(&format!("{SHARED_PREFIX}{hash}"), &auth::encode_shared(expires, json));
        p
    }

    pub fn remember_unknown(&self, hash: &str) {
        let now = host::now_ms();
        let expires = now + self.config.auth.negative_cache_ttl_ms;
        self.cache.borrow_mut().insert(hash.to_string(), Cached::Unknown, expires, now);
    }

    /// Registers `waiter` if a lookup for `hash` is in flight; false if none is.
    pub fn join_flight(&self, hash: &str, waiter: Waiter) -> bool {
        match self.flights.borrow_mut().waiters.get_mut(hash) {
            Some(waiters) => {
                waiters.push(waiter);
                true
            }
            None => false,
        }
    }

    pub fn start_flight(&self, token: u32, hash: String) {
        let mut f = self.flights.borrow_mut();
        f.waiters.entry(hash.clone()).or_default();
        f.by_token.insert(token, hash);
    }

    /// The key hash a finished callout was for, if it was an auth callout.
    pub fn end_flight_token(&self, token: u32) -> Option<String> {
        self.flights.borrow_mut().by_token.remove(&token)
    }

    pub fn end_flight_hash(&self, hash: &str) {
        self.flights.borrow_mut().by_token.retain(|_, h| h != hash);
    }

    /// Without `allow_on_headers_stop_iteration`, Envoy never calls the body
    /// callback after the headers phase paused and the request would hang; the
    /// root's tick replies 408 to requests whose body has not started in time.
    pub fn expect_body(&self, id: u32, now_ms: u64, req: WeakRequest) {
        let deadline = now_ms + self.config.body_timeout_ms;
        self.awaiting_body.borrow_mut().insert(id, (deadline, req));
    }

    pub fn body_arrived(&self, id: u32) {
        self.awaiting_body.borrow_mut().remove(&id);
    }

    fn expire_bodies(&self, now_ms: u64) {
        let expired: Vec<(u32, WeakRequest)> = {
            let mut waiting = self.awaiting_body.borrow_mut();
            let ids: Vec<u32> = waiting.iter().filter(|(_, (d, _))| *d <= now_ms).map(|(id, _)| *id).collect();
            ids.into_iter().filter_map(|id| waiting.remove(&id).map(|(_, w)| (id, w))).collect()
        };
        if !expired.is_empty() {
            log::warn!(
                "{} request(s) got no body within {} ms; if every request with a body does this, the wasm filter config lacks allow_on_headers_stop_iteration: true",
                expired.len(),
                self.config.body_timeout_ms
            );
        }
        for (id, req) in expired {
            if let Some(req) = req.upgrade() {
                if host::set_effective_context(id) {
                    req.borrow_mut().body_timed_out();
                }
            }
        }
    }

    pub fn defer(&self, id: u32, req: WeakRequest) {
        self.deferred.borrow_mut().push((id, req));
    }

    fn run_deferred(&self) {
        let deferred = std::mem::take(&mut *self.deferred.borrow_mut());
        for (id, req) in deferred {
            if let Some(req) = req.upgrade() {
                if host::set_effective_context(id) {
                    req.borrow_mut().run_deferred();
                }
            }
        }
    }

    pub fn route(&self, token: u32, id: u32, req: WeakRequest) {
        self.routed.borrow_mut().insert(token, (id, req));
    }

    /// The request ended: Envoy cancelled its callouts.
    pub fn unroute(&self, id: u32) {
        self.routed.borrow_mut().retain(|_, (owner, _)| *owner != id);
    }

    /// A callout made for a request answered, in `current`'s context (or the
    /// root's): hand it to the request that made it. False if not a request's.
    pub fn answer(&self, token: u32, body_size: usize, current: Option<&Rc<RefCell<Request>>>) -> bool {
        let Some((id, weak)) = self.routed.borrow_mut().remove(&token) else {
            return false;
        };
        let Some(req) = weak.upgrade() else {
            return true;
        };
        let current_id = current.map(|c| c.borrow().id);
        if current_id != Some(id) && !host::set_effective_context(id) {
            return true;
        }
        let is_check = req.borrow().checking.as_ref().is_some_and(|c| c.token == token);
        if is_check {
            let (status, body) = host::call_response(body_size);
            req.borrow_mut().on_check(status, &body);
        } else {
            finish_lookup(&req, token, body_size);
        }
        if let Some(c) = current_id.filter(|c| *c != id) {
            host::set_effective_context(c);
        }
        true
    }

    pub fn log_store_failure(&self, why: &str) {
        let now = host::now_ms();
        let mut last = self.store_failure_logged_ms.borrow_mut();
        if now.saturating_sub(*last) >= 10_000 {
            *last = now;
            let mode = if self.config.limits.fail_open { "open" } else { "closed" };
            log::warn!(
                "limits store unavailable ({why}); failing {mode} (llm_gateway.limits_unavailable_total counts each)"
            );
        }
    }

    /// A call's real cost, settled against its reservations and added to its team's month.
    pub fn record_spend(&self, reservations: &[(String, i64)], cost_usd: f64, team_id: i64) {
        if self.config.limits.enabled {
            self.spend.borrow_mut().pending.settle(reservations, cost_usd, Some(team_id), host::now_ms());
        }
    }

    pub fn take_waiters(&self, hash: &str) -> Vec<Waiter> {
        self.flights.borrow_mut().waiters.remove(hash).unwrap_or_default()
    }
}

#[derive(Default)]
pub struct Root {
    shared: Option<Rc<Shared>>,
    draining: bool,
}

/// How often the root flushes capture queues and checks for stalled bodies.
const TICK_MS: u64 = 100;

impl Context for Root {
    fn on_http_call_response(&mut self, token: u32, _headers: usize, body_size: usize, _trailers: usize) {
        let Some(shared) = self.shared.as_ref() else {
            return;
        };
        if shared.answer(token, body_size, None) || shared.pricing.answer(token, body_size, &shared.metrics) {
            return;
        }
        let (status, body) = host::call_response(body_size);
        let recorded = shared.spend.borrow_mut().on_response(token, status, &body);
        match recorded {
            Some(Recorded::Done) => host::increment(shared.metrics.spend_records, 1),
            Some(Recorded::Retry) => {}
            Some(Recorded::Dropped(keys)) => host::increment(shared.metrics.spend_dropped, keys as i64),
            None => {}
        }
        if recorded.is_some() {
            if self.draining {
                shared.spend.borrow_mut().flush(&shared.config, host::now_ms(), true);
                self.finish_draining();
            }
            return;
        }
        let Some(capture) = shared.capture.as_ref() else {
            return;
        };
        let retry_after = host::call_response_header("retry-after");
        let now = host::now_ms();
        let mut c = capture.borrow_mut();
        c.on_response(token, status, retry_after.as_deref(), now);
        // A full batch waiting goes now, not at the next tick: under load one batch
        // per tick and destination would cap delivery at 10 batches a second.
        c.flush(now, self.draining);
        if self.draining {
            drop(c);
            self.finish_draining();
        }
    }

    /// Shutdown or reload: send everything queued now. Envoy may exit before the
    /// answers arrive (DESIGN.md); drain listeners first to give them time.
    fn on_done(&mut self) -> bool {
        let Some(shared) = self.shared.as_ref() else {
            return true;
        };
        self.draining = true;
        let now = host::now_ms();
        shared.spend.borrow_mut().flush(&shared.config, now, true);
        if let Some(capture) = &shared.capture {
            capture.borrow_mut().flush(now, true);
        }
        self.idle()
    }
}

impl Root {
    /// Nothing queued or in flight, for capture or spend.
    fn idle(&self) -> bool {
        self.shared
            .as_ref()
            .is_none_or(|s| s.spend.borrow().is_idle() && s.capture.as_ref().is_none_or(|c| c.borrow().is_idle()))
    }

    fn finish_draining(&self) {
        if self.idle() {
            host::done();
        }
    }
}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        match Config::parse(&host::plugin_configuration()) {
            Ok(config) => {
                let keys = ProviderKeys::from_env(|name| std::env::var(name).ok());
                log::info!("llm_gateway {} configured", env!("CARGO_PKG_VERSION"));
                if let Some(warning) = config.cost_controls.startup_warning() {
                    log::warn!("{warning}");
                }
                let cache = RefCell::new(PrincipalCache::new(config.auth.cache_max_entries));
                let metrics = Metrics::define();
                let capture = config.capture.clone().map(|c| RefCell::new(Capture::new(c)));
                host::set_tick_period_ms(TICK_MS);
                let pricing = Pricing::new(&config);
                host::set_gauge(metrics.pricing_catalog_models, config.prices.models() as u64);
                self.shared = Some(Rc::new(Shared {
                    pricing,
                    config,
                    keys,
                    metrics,
                    capture,
                    cache,
                    flights: RefCell::default(),
                    awaiting_body: RefCell::default(),
                    spend: RefCell::new(Spend::new()),
                    admissions: RefCell::new(Admissions::default()),
                    deferred: RefCell::default(),
                    routed: RefCell::default(),
                    store_failure_logged_ms: RefCell::new(0),
                }));
                true
            }
            Err(e) => {
                log::error!("{e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = self.shared.clone()?;
        super::metrics::timed("create", || Some(Box::new(HttpFilter::new(context_id, shared)) as Box<dyn HttpContext>))
    }

    fn on_tick(&mut self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let now = host::now_ms();
        shared.pricing.tick(now, &shared.metrics);
        shared.expire_bodies(now);
        shared.run_deferred();
        let ended = shared.admissions.borrow_mut().expire(if self.draining { u64::MAX } else { now });
        shared.record_spend(&ended, 0.0, 0);
        shared.spend.borrow_mut().flush(&shared.config, now, self.draining);
        let dropped = shared.spend.borrow_mut().pending.take_dropped();
        host::increment(shared.metrics.spend_dropped, dropped as i64);
        if let Some(capture) = &shared.capture {
            capture.borrow_mut().flush(now, self.draining);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
