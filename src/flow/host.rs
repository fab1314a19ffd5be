//! What the request flow asks of Envoy. The proxy-wasm adapter implements it
//! with hostcalls (`crate::filter`); the tests implement it with a fake.
//! Hostcall failures are the implementation's to log: here every call either
//! answers or returns its empty value, never an error to handle.

use crate::errors::LocalReply;
use crate::pricing::names::{self, BUCKETS};
use crate::providers::Provider;
use crate::wire::header_pairs::Headers;

/// What a callback tells Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    /// Hold the stream: the filter resumes or replies later, or waits for more body.
    Pause,
}

pub trait Host {
    fn request_headers(&self) -> Headers;
    fn request_header(&self, name: &str) -> Option<String>;
    fn set_request_header(&self, name: &str, value: Option<&str>);
    fn request_body(&self, size: usize) -> Vec<u8>;
    fn set_request_body(&self, replace_len: usize, body: &[u8]);
    /// Replaces the whole request body and its `content-length` (the headers
    /// must still be held): every rewrite of a body goes through here.
    fn replace_request_body(&self, replace_len: usize, body: &[u8]) {
        self.set_request_body(replace_len, body);
        self.set_request_header("content-length", Some(&body.len().to_string()));
    }
    /// Lets a paused request go on, from outside its own callbacks.
    fn resume_request(&self);
    fn send_reply(&self, reply: &LocalReply);

    fn response_header(&self, name: &str) -> Option<String>;
    fn set_response_header(&self, name: &str, value: Option<&str>);
    fn response_body(&self, size: usize) -> Vec<u8>;
    fn set_response_body(&self, replace_len: usize, body: &[u8]);
    /// Envoy's `response.code_details`: why Envoy ended the stream, if it did.
    fn code_details(&self) -> String;
    /// The cluster the stream goes to (`xds.cluster_name`; for an upstream filter, this attempt's).
    fn cluster_name(&self) -> Option<String>;

    /// Starts a callout; `None` if the host refused it (unknown cluster, bad headers).
    fn http_call(&self, cluster: &str, headers: &[(&str, &str)], body: Option<&[u8]>, timeout_ms: u64) -> Option<u32>;
    /// Status (0 when the call failed or timed out) and body of the callout that answered.
    fn call_response(&self, body_size: usize) -> (u32, Vec<u8>);
    fn call_response_header(&self, name: &str) -> Option<String>;

    fn now_ms(&self) -> u64;
    /// The process-wide store every worker's VM sees.
    fn shared_data(&self, key: &str) -> Option<Vec<u8>>;
    fn set_shared_data(&self, key: &str, value: &[u8]);
    /// Makes later calls act on another request's stream; false if it is gone.
    fn set_effective_context(&self, context_id: u32) -> bool;

    /// Adds to a counter; counters only go up, so the amount cannot be negative.
    fn count(&self, metric: Metric, by: u64);
    fn gauge(&self, metric: Metric, value: u64);
    /// How often Envoy ticks this context's root (see `pace`).
    fn set_tick_period_ms(&self, ms: u64);
}

/// A PostHog destination's lane of the capture queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    Primary,
    Secondary,
}

impl Lane {
    pub fn name(self) -> &'static str {
        match self {
            Lane::Primary => "primary",
            Lane::Secondary => "secondary",
        }
    }
}

/// What a capture lane reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LaneMetric {
    Sent,
    Retried,
    Failed,
    Dropped,
    /// A gauge: events queued now.
    Depth,
}

/// The fixed set of metrics, every one `llm_gateway.`-prefixed. No name is
/// built from request data; per-model detail goes in events.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Metric {
    Requests,
    LocalReplies,
    UpstreamFailures,
    AuthLookups,
    AuthCacheHits,
    AuthRejected,
    AuthUnavailable,
    TokensInput,
    TokensOutput,
    TokensCacheRead,
    TokensCacheCreation,
    TokensReasoning,
    CostMicroUsd,
    CostFallback,
    EventsQueued,
    PropertiesRejected,
    UsageMissing,
    SaveModeUpgrades,
    BodyTimeouts,
    RateLimited,
    LimitsUnavailable,
    LimitsLocalAdmits,
    /// Checks sent again because the filter named another window than Redis's clock.
    LimitsWindowRetries,
    SpendRecords,
    SpendDropped,
    /// Budget spend (micro-USD) in the dropped records: what the month keys miss.
    SpendDroppedMicroUsd,
    CountTokens,
    /// Calls priced as the most expensive model of their family.
    CostFallbackFamily,
    /// Requests refused by `pricing.unknown_model: reject`.
    UnpricedRejected,
    PricingRefreshOk,
    PricingRefreshFailed,
    PricingRefreshRejected,
    /// A gauge: catalog models in the table in use.
    PricingCatalogModels,
    /// `anthropic-beta` flags left out of a Bedrock request (Bedrock does not take them).
    BedrockBetasDropped,
    /// Lease renewals the root asked Redis for, and those that failed.
    LimitsLeaseRenewals,
    LimitsLeaseRenewalFailures,
    /// Calls not priced from their own row, by model bucket (`pricing::names::BUCKETS`).
    CostFallbackBucket(u8),
    /// Provider responses by status class: 0 = 2xx/3xx, 1 = 4xx, 2 = 5xx or none.
    Responses(Provider, u8),
    Capture(Lane, LaneMetric),
    /// A provider key answered 429 and rests (`crate::keys`).
    KeyRested(Provider),
    /// A call went out on a resting key: every key of its provider rested.
    KeysAllResting(Provider),
    /// Requests answered by a fallback target.
    FailoverAnswered,
    /// Requests whose every target failed.
    FailoverExhausted,
    /// Chains stopped by their deadline.
    FailoverDeadline,
    /// Attempts refused because the failover route or the upstream filter is not as documented.
    FailoverMisconfigured,
    /// Chained requests no upstream filter saw (one attempt, or retries to the same target).
    FailoverUnconfirmed,
    /// Attempts without a chain that entered the upstream filter: the cluster's filter is not
    /// disabled by default, or a route other than the failover route enables it.
    FailoverUnchainedAttempts,
    /// Chain targets left out: no key, a request their API cannot express, unpriced, past max_attempts.
    FailoverTargetsSkipped,
    /// Chained requests sent with one attempt because the relay was full.
    FailoverRelayFull,
    /// Chained requests sent with one attempt because the body is over `failover.max_body_bytes`.
    FailoverBodyTooLarge,
    /// Moves to the next target, by provider pair (`failover::pair_index`).
    Failover(u8),
    /// Hostcalls Envoy refused (logged with their status); the filter went on without their result.
    HostcallsFailed,
}

const SIMPLE: [(Metric, &str); 46] = [
    (Metric::Requests, "requests_total"),
    (Metric::LocalReplies, "local_replies_total"),
    (Metric::UpstreamFailures, "upstream_failures_total"),
    (Metric::AuthLookups, "auth_lookups_total"),
    (Metric::AuthCacheHits, "auth_cache_hits_total"),
    (Metric::AuthRejected, "auth_rejected_total"),
    (Metric::AuthUnavailable, "auth_unavailable_total"),
    (Metric::TokensInput, "tokens_input_total"),
    (Metric::TokensOutput, "tokens_output_total"),
    (Metric::TokensCacheRead, "tokens_cache_read_total"),
    (Metric::TokensCacheCreation, "tokens_cache_creation_total"),
    (Metric::TokensReasoning, "tokens_reasoning_total"),
    (Metric::CostMicroUsd, "cost_micro_usd_total"),
    (Metric::CostFallback, "cost_fallback_total"),
    (Metric::EventsQueued, "events_queued_total"),
    (Metric::PropertiesRejected, "header_properties_rejected_total"),
    (Metric::UsageMissing, "usage_missing_total"),
    (Metric::SaveModeUpgrades, "save_mode_upgrades_total"),
    (Metric::BodyTimeouts, "body_timeouts_total"),
    (Metric::RateLimited, "rate_limited_total"),
    (Metric::LimitsUnavailable, "limits_unavailable_total"),
    (Metric::LimitsLocalAdmits, "limits_local_admits_total"),
    (Metric::LimitsWindowRetries, "limits_window_retries_total"),
    (Metric::SpendRecords, "spend_records_total"),
    (Metric::SpendDropped, "spend_dropped_total"),
    (Metric::SpendDroppedMicroUsd, "spend_dropped_micro_usd_total"),
    (Metric::CountTokens, "count_tokens_total"),
    (Metric::CostFallbackFamily, "cost_fallback_family_total"),
    (Metric::UnpricedRejected, "unpriced_model_rejected_total"),
    (Metric::PricingRefreshOk, "pricing_refresh_ok_total"),
    (Metric::PricingRefreshFailed, "pricing_refresh_failed_total"),
    (Metric::PricingRefreshRejected, "pricing_refresh_rejected_total"),
    (Metric::PricingCatalogModels, "pricing_catalog_models"),
    (Metric::BedrockBetasDropped, "bedrock_betas_dropped_total"),
    (Metric::LimitsLeaseRenewals, "limits_lease_renewals_total"),
    (Metric::LimitsLeaseRenewalFailures, "limits_lease_renewal_failures_total"),
    (Metric::FailoverAnswered, "failover_answered_total"),
    (Metric::FailoverExhausted, "failover_exhausted_total"),
    (Metric::FailoverDeadline, "failover_deadline_total"),
    (Metric::FailoverMisconfigured, "failover_misconfigured_total"),
    (Metric::FailoverUnconfirmed, "failover_unconfirmed_total"),
    (Metric::FailoverUnchainedAttempts, "failover_unchained_attempts_total"),
    (Metric::FailoverTargetsSkipped, "failover_targets_skipped_total"),
    (Metric::FailoverRelayFull, "failover_relay_full_total"),
    (Metric::FailoverBodyTooLarge, "failover_body_too_large_total"),
    (Metric::HostcallsFailed, "hostcalls_failed_total"),
];

const LANE_METRICS: [(LaneMetric, &str); 5] = [
    (LaneMetric::Sent, "sent_total"),
    (LaneMetric::Retried, "retried_total"),
    (LaneMetric::Failed, "failed_total"),
    (LaneMetric::Dropped, "dropped_total"),
    (LaneMetric::Depth, "queue_depth"),
];

const STATUS_CLASSES: [&str; 3] = ["2xx", "4xx", "5xx"];

impl Metric {
    /// Every metric with its full name, in the order of [`Metric::index`].
    pub fn all() -> Vec<(Metric, String)> {
        let mut all: Vec<(Metric, String)> = SIMPLE.iter().map(|(m, n)| (*m, format!("llm_gateway.{n}"))).collect();
        for (i, bucket) in BUCKETS.iter().enumerate() {
            all.push((Metric::CostFallbackBucket(i as u8), format!("llm_gateway.cost_fallback_{bucket}_total")));
        }
        for p in Provider::ALL {
            for (class, name) in STATUS_CLASSES.iter().enumerate() {
                all.push((
                    Metric::Responses(p, class as u8),
                    format!("llm_gateway.responses_{}_{name}_total", p.name()),
                ));
            }
        }
        for lane in [Lane::Primary, Lane::Secondary] {
            for (m, name) in LANE_METRICS {
                all.push((Metric::Capture(lane, m), format!("llm_gateway.capture_{}_{name}", lane.name())));
            }
        }
        for p in Provider::ALL {
            all.push((Metric::KeyRested(p), format!("llm_gateway.keys_rested_{}_total", p.name())));
            all.push((Metric::KeysAllResting(p), format!("llm_gateway.keys_all_resting_{}_total", p.name())));
        }
        for (i, name) in crate::failover::pair_names().into_iter().enumerate() {
            all.push((Metric::Failover(i as u8), format!("llm_gateway.{name}")));
        }
        all
    }

    /// A dense index into [`Metric::all`].
    pub fn index(self) -> usize {
        match self {
            Metric::CostFallbackBucket(i) => SIMPLE.len() + usize::from(i).min(BUCKETS.len() - 1),
            Metric::Responses(p, class) => {
                let provider = Provider::ALL.iter().position(|q| *q == p).unwrap_or(0);
                SIMPLE.len() + BUCKETS.len() + provider * STATUS_CLASSES.len() + usize::from(class.min(2))
            }
            Metric::Capture(lane, m) => {
                let lane = usize::from(lane == Lane::Secondary);
                let m = LANE_METRICS.iter().position(|(n, _)| *n == m).unwrap_or(0);
                SIMPLE.len()
                    + BUCKETS.len()
                    + Provider::ALL.len() * STATUS_CLASSES.len()
                    + lane * LANE_METRICS.len()
                    + m
            }
            Metric::KeyRested(p) | Metric::KeysAllResting(p) => {
                let provider = Provider::ALL.iter().position(|q| *q == p).unwrap_or(0);
                SIMPLE.len()
                    + BUCKETS.len()
                    + Provider::ALL.len() * STATUS_CLASSES.len()
                    + 2 * LANE_METRICS.len()
                    + provider * 2
                    + usize::from(matches!(self, Metric::KeysAllResting(_)))
            }
            Metric::Failover(pair) => {
                let pairs = Provider::ALL.len() * Provider::ALL.len();
                SIMPLE.len()
                    + BUCKETS.len()
                    + Provider::ALL.len() * STATUS_CLASSES.len()
                    + 2 * LANE_METRICS.len()
                    + 2 * Provider::ALL.len()
                    + usize::from(pair).min(pairs - 1)
            }
            simple => SIMPLE.iter().position(|(m, _)| *m == simple).unwrap_or(0),
        }
    }

    pub fn is_gauge(self) -> bool {
        matches!(self, Metric::Capture(_, LaneMetric::Depth) | Metric::PricingCatalogModels)
    }

    /// The bucket counter of an unpriced `model`.
    pub fn cost_fallback_bucket(model: &str) -> Metric {
        let bucket = names::bucket(model);
        Metric::CostFallbackBucket(BUCKETS.iter().position(|b| *b == bucket).unwrap_or(BUCKETS.len() - 1) as u8)
    }

    /// The response class of an HTTP status, for [`Metric::Responses`].
    pub fn status_class(status: u16) -> u8 {
        match status {
            200..=399 => 0,
            400..=499 => 1,
            _ => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_its_own_index_and_name() {
        let all = Metric::all();
        for (i, (m, _)) in all.iter().enumerate() {
            assert_eq!(m.index(), i, "{m:?}");
        }
        let mut names: Vec<&String> = all.iter().map(|(_, n)| n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(names.iter().all(|n| n.starts_with("llm_gateway.")));
    }
}
