//! What every request on one worker (one Envoy worker thread, one VM) shares:
//! the configuration, the provider keys, the principal cache, recent limit
//! answers, and the spend and event queues the root context sends.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use super::capture::Ended;
use super::delivery::Capture;
use super::host::Host;
use super::pace::Pace;
use super::prices::Pricing;
use super::spend::Spend;
use crate::auth::{self, Cached, Principal, PrincipalCache};
use crate::config::Config;
use crate::failover::relay::Relay;
use crate::forward::ProviderKeys;
use crate::limits::Admissions;

pub struct Worker {
    pub config: Config,
    pub keys: ProviderKeys,
    cache: RefCell<PrincipalCache>,
    /// Recent limit-check answers, for local admission.
    pub admissions: RefCell<Admissions>,
    pub spend: RefCell<Spend>,
    pub capture: Option<RefCell<Capture>>,
    /// Calls over and not yet accounted for (see `capture::ended`).
    pub ended: RefCell<Vec<Ended>>,
    /// How often the root ticks: fast while `ended` or deferred requests wait.
    pub pace: Pace,
    /// The price table in use, and its refresh.
    pub pricing: Pricing,
    /// When a store failure was last logged (one line per interval, not per request).
    store_failure_logged_ms: Cell<u64>,
    /// Redis's clock minus this host's, as a check answer last showed it (ms).
    redis_clock_offset_ms: Cell<i64>,
    /// Failover chains shared with the upstream filter's attempts in this VM.
    pub relay: Rc<RefCell<Relay>>,
}

/// Principals in Envoy's shared data, for every worker of the process.
const SHARED_PREFIX: &str = "llm_gateway:principal:";

impl Worker {
    pub fn new(config: Config, keys: ProviderKeys) -> Self {
        let cache = RefCell::new(PrincipalCache::new(config.auth.cache_max_entries));
        let capture = config.capture.clone().map(|c| RefCell::new(Capture::new(c)));
        Worker {
            pricing: Pricing::new(&config),
            config,
            keys,
            cache,
            admissions: RefCell::default(),
            spend: RefCell::default(),
            capture,
            ended: RefCell::default(),
            pace: Pace::default(),
            store_failure_logged_ms: Cell::new(0),
            redis_clock_offset_ms: Cell::new(0),
            relay: Rc::default(),
        }
    }

    /// Shares `relay` with the upstream filter's root in the same VM.
    pub fn with_relay(mut self, relay: Rc<RefCell<Relay>>) -> Self {
        self.relay = relay;
        self
    }

    /// Local cache first, then the cross-worker shared data (positive answers only).
    pub fn cached_principal(&self, host: &dyn Host, hash: &str) -> Option<Cached> {
        let now = host.now_ms();
        if let Some(c) = self.cache.borrow_mut().get(hash, now) {
            return Some(c);
        }
        let data = host.shared_data(&format!("{SHARED_PREFIX}{hash}"))?;
        let (principal, expires) = auth::decode_shared(&data, now)?;
        let known = Cached::Known(Rc::new(principal));
        self.cache.borrow_mut().insert(hash.to_string(), known.clone(), expires, now);
        Some(known)
    }

    pub fn remember_principal(&self, host: &dyn Host, hash: &str, principal: Principal, json: &[u8]) -> Rc<Principal> {
        let now = host.now_ms();
        let expires = now + self.config.auth.cache_ttl_ms;
        let p = Rc::new(principal);
        self.cache.borrow_mut().insert(hash.to_string(), Cached::Known(Rc::clone(&p)), expires, now);
        host.set_shared_data(&format!("{SHARED_PREFIX}{hash}"), &auth::encode_shared(expires, json));
        p
    }

    /// Unknown keys stay per worker, so random keys cannot grow the shared store.
    pub fn remember_unknown(&self, host: &dyn Host, hash: &str) {
        let now = host.now_ms();
        let expires = now + self.config.auth.negative_cache_ttl_ms;
        self.cache.borrow_mut().insert(hash.to_string(), Cached::Unknown, expires, now);
    }

    /// A call's real cost, settled against its reservations and added to its
    /// team's month: the month the call ended in, not the one it is accounted in.
    pub fn record_spend(&self, reservations: &[(String, i64)], cost_usd: f64, team_id: i64, ended_ms: u64) {
        if self.config.limits.enabled {
            self.spend.borrow_mut().pending.settle(reservations, cost_usd, Some(team_id), ended_ms);
        }
    }

    /// Redis's time as far as this worker knows: the local clock plus the
    /// offset learnt from the last check that named the wrong window.
    /// Room reserved but not used (a denied check's reservations, a lease's
    /// rest) goes back to the windows with the next spend flush.
    pub fn give_back(&self, host: &dyn Host, reservations: &[(String, i64)]) {
        if self.config.limits.enabled && !reservations.is_empty() {
            self.spend.borrow_mut().pending.settle(reservations, 0.0, None, host.now_ms());
        }
    }

    pub fn redis_now_ms(&self, host: &dyn Host) -> u64 {
        host.now_ms().saturating_add_signed(self.redis_clock_offset_ms.get())
    }

    /// A check answered with Redis's time: keep the offset for the next plans.
    pub fn learn_redis_clock(&self, host: &dyn Host, redis_now_ms: u64) {
        let offset = i128::from(redis_now_ms) - i128::from(host.now_ms());
        self.redis_clock_offset_ms.set(i64::try_from(offset).unwrap_or(0));
    }

    pub fn log_store_failure(&self, host: &dyn Host, why: &str) {
        let now = host.now_ms();
        if now.saturating_sub(self.store_failure_logged_ms.get()) >= 10_000 {
            self.store_failure_logged_ms.set(now);
            let mode = if self.config.limits.fail_open { "open" } else { "closed" };
            log::warn!(
                "limits store unavailable ({why}); failing {mode} (llm_gateway.limits_unavailable_total counts each)"
            );
        }
    }
}
