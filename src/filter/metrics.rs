//! A fixed set of metrics, defined once per VM under the `llm_gateway.` prefix.
//! No name is built from request data; per-model detail goes in events.

use super::host;
use crate::pricing::{names, Cost, CostSource};
use crate::providers::Provider;

pub struct Metrics {
    pub requests: Option<u32>,
    pub local_replies: Option<u32>,
    pub upstream_failures: Option<u32>,
    pub auth_lookups: Option<u32>,
    pub auth_cache_hits: Option<u32>,
    pub auth_rejected: Option<u32>,
    pub auth_unavailable: Option<u32>,
    pub tokens_input: Option<u32>,
    pub tokens_output: Option<u32>,
    pub tokens_cache_read: Option<u32>,
    pub tokens_cache_creation: Option<u32>,
    pub tokens_reasoning: Option<u32>,
    pub cost_micro_usd: Option<u32>,
    pub cost_fallback: Option<u32>,
    pub events_queued: Option<u32>,
    pub properties_rejected: Option<u32>,
    pub usage_missing: Option<u32>,
    pub save_mode_upgrades: Option<u32>,
    pub body_timeouts: Option<u32>,
    pub rate_limited: Option<u32>,
    pub limits_unavailable: Option<u32>,
    pub limits_local_admits: Option<u32>,
    pub spend_records: Option<u32>,
    pub spend_dropped: Option<u32>,
    /// Calls priced as the most expensive model of their family.
    pub cost_fallback_family: Option<u32>,
    /// Calls not priced from their own row, by model bucket (`names::BUCKETS`).
    cost_fallback_buckets: [Option<u32>; 8],
    /// Requests refused by `pricing.unknown_model: reject`.
    pub unpriced_rejected: Option<u32>,
    pub pricing_refresh_ok: Option<u32>,
    pub pricing_refresh_failed: Option<u32>,
    pub pricing_refresh_rejected: Option<u32>,
    /// Gauge: catalog models in the table in use.
    pub pricing_catalog_models: Option<u32>,
    /// Provider responses by provider and status class (2xx, 4xx, 5xx).
    responses: Vec<(Provider, [Option<u32>; 3])>,
}

impl Metrics {
    pub fn define() -> Self {
        let c = |name: &str| host::define_counter(&format!("llm_gateway.{name}"));
        let responses = Provider::ALL
            .into_iter()
            .map(|p| (p, ["2xx", "4xx", "5xx"].map(|class| c(&format!("responses_{}_{class}_total", p.name())))))
            .collect();
        Metrics {
            requests: c("requests_total"),
            local_replies: c("local_replies_total"),
            upstream_failures: c("upstream_failures_total"),
            auth_lookups: c("auth_lookups_total"),
            auth_cache_hits: c("auth_cache_hits_total"),
            auth_rejected: c("auth_rejected_total"),
            auth_unavailable: c("auth_unavailable_total"),
            tokens_input: c("tokens_input_total"),
            tokens_output: c("tokens_output_total"),
            tokens_cache_read: c("tokens_cache_read_total"),
            tokens_cache_creation: c("tokens_cache_creation_total"),
            tokens_reasoning: c("tokens_reasoning_total"),
            cost_micro_usd: c("cost_micro_usd_total"),
            cost_fallback: c("cost_fallback_total"),
            events_queued: c("events_queued_total"),
            properties_rejected: c("header_properties_rejected_total"),
            usage_missing: c("usage_missing_total"),
            save_mode_upgrades: c("save_mode_upgrades_total"),
            body_timeouts: c("body_timeouts_total"),
            rate_limited: c("rate_limited_total"),
            limits_unavailable: c("limits_unavailable_total"),
            limits_local_admits: c("limits_local_admits_total"),
            spend_records: c("spend_records_total"),
            spend_dropped: c("spend_dropped_total"),
            cost_fallback_family: c("cost_fallback_family_total"),
            cost_fallback_buckets: names::BUCKETS.map(|b| c(&format!("cost_fallback_{b}_total"))),
            unpriced_rejected: c("unpriced_model_rejected_total"),
            pricing_refresh_ok: c("pricing_refresh_ok_total"),
            pricing_refresh_failed: c("pricing_refresh_failed_total"),
            pricing_refresh_rejected: c("pricing_refresh_rejected_total"),
            pricing_catalog_models: host::define_gauge("llm_gateway.pricing_catalog_models"),
            responses,
        }
    }

    /// A call not priced from its own row (family or flat): counted in total,
    /// per family pricing, and in its model's bucket (names are unbounded, buckets are not).
    pub fn cost_fallback(&self, cost: &Cost, model: &str) {
        if cost.source == CostSource::Table {
            return;
        }
        host::increment(self.cost_fallback, 1);
        if cost.source == CostSource::Family {
            host::increment(self.cost_fallback_family, 1);
        }
        let bucket = names::BUCKETS.iter().position(|b| *b == names::bucket(model));
        host::increment(bucket.and_then(|i| self.cost_fallback_buckets.get(i).copied().flatten()), 1);
    }

    pub fn response(&self, provider: &str, status: u16) {
        let class = match status {
            200..=399 => 0,
            400..=499 => 1,
            _ => 2,
        };
        if let Some((_, ids)) = self.responses.iter().find(|(p, _)| p.name() == provider) {
            host::increment(ids.get(class).copied().flatten(), 1);
        }
    }
}

/// Runs one callback; in a build with the `callback-timing` feature (for
/// `bench/profile.py --timing`), also adds its wall time in ns to the counter
/// `llm_gateway.timing.<name>_ns`. Without the feature it is only `f()`.
#[cfg(not(feature = "callback-timing"))]
#[inline(always)]
pub fn timed<T>(_name: &'static str, f: impl FnOnce() -> T) -> T {
    f()
}

#[cfg(feature = "callback-timing")]
pub fn timed<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    use std::cell::RefCell;
    use std::collections::HashMap;
    thread_local! {
        static IDS: RefCell<HashMap<&'static str, Option<u32>>> = RefCell::new(HashMap::new());
    }
    let started = host::now_ns();
    let out = f();
    let took = host::now_ns().saturating_sub(started);
    let id = IDS.with(|ids| {
        *ids.borrow_mut().entry(name).or_insert_with(|| host::define_counter(&format!("llm_gateway.timing.{name}_ns")))
    });
    host::increment(id, took as i64);
    out
}
