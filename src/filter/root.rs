//! Per-VM root context: compiles the configuration, owns what HTTP contexts
//! share (config, keys, metrics, the principal cache and in-flight lookups).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::ContextType;

use super::delivery::Capture;
use super::host;
use super::http::{HttpFilter, Request, Waiter};
use super::metrics::Metrics;
use crate::auth::{self, Cached, Principal, PrincipalCache};
use crate::config::Config;
use crate::forward::ProviderKeys;

/// What every HTTP context on this VM shares.
pub struct Shared {
    pub config: Config,
    pub keys: ProviderKeys,
    pub metrics: Metrics,
    pub capture: Option<RefCell<Capture>>,
    cache: RefCell<PrincipalCache>,
    flights: RefCell<Flights>,
    /// Requests paused for a body that has not started: context id → (deadline, request).
    awaiting_body: RefCell<HashMap<u32, (u64, WeakRequest)>>,
}

type WeakRequest = Weak<RefCell<Request>>;

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
    fn on_http_call_response(&mut self, token: u32, _headers: usize, _body: usize, _trailers: usize) {
        let Some(capture) = self.shared.as_ref().and_then(|s| s.capture.as_ref()) else {
            return;
        };
        let status = host::call_response(0).0;
        let retry_after = host::call_response_header("retry-after");
        let now = host::now_ms();
        let mut c = capture.borrow_mut();
        c.on_response(token, status, retry_after.as_deref(), now);
        if self.draining {
            c.flush(now, true);
            if c.is_idle() {
                host::done();
            }
        }
    }

    /// Shutdown or reload: send everything queued now. Envoy may exit before the
    /// answers arrive (DESIGN.md); drain listeners first to give them time.
    fn on_done(&mut self) -> bool {
        let Some(capture) = self.shared.as_ref().and_then(|s| s.capture.as_ref()) else {
            return true;
        };
        self.draining = true;
        let mut c = capture.borrow_mut();
        c.flush(host::now_ms(), true);
        c.is_idle()
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
                self.shared = Some(Rc::new(Shared {
                    config,
                    keys,
                    metrics,
                    capture,
                    cache,
                    flights: RefCell::default(),
                    awaiting_body: RefCell::default(),
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
        Some(Box::new(HttpFilter::new(context_id, shared)))
    }

    fn on_tick(&mut self) {
        let Some(shared) = &self.shared else {
            return;
        };
        let now = host::now_ms();
        shared.expire_bodies(now);
        if let Some(capture) = &shared.capture {
            capture.borrow_mut().flush(now, self.draining);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
