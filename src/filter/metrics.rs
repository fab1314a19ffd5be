//! A fixed set of counters, defined once per VM under the `llm_gateway.` prefix.

use super::host;

pub struct Metrics {
    pub requests: Option<u32>,
    pub local_replies: Option<u32>,
    pub upstream_failures: Option<u32>,
    pub auth_lookups: Option<u32>,
    pub auth_cache_hits: Option<u32>,
    pub auth_rejected: Option<u32>,
    pub auth_unavailable: Option<u32>,
}

impl Metrics {
    pub fn define() -> Self {
        Metrics {
            requests: host::define_counter("llm_gateway.requests_total"),
            local_replies: host::define_counter("llm_gateway.local_replies_total"),
            upstream_failures: host::define_counter("llm_gateway.upstream_failures_total"),
            auth_lookups: host::define_counter("llm_gateway.auth_lookups_total"),
            auth_cache_hits: host::define_counter("llm_gateway.auth_cache_hits_total"),
            auth_rejected: host::define_counter("llm_gateway.auth_rejected_total"),
            auth_unavailable: host::define_counter("llm_gateway.auth_unavailable_total"),
        }
    }
}
