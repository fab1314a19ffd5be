//! Provider failover inside Envoy: a request's fallback chain (per model, or a
//! provider's default), tried in order by Envoy's router.
//!
//! The downstream filter plans every target (path, headers, key, translated
//! body), keeps the plans in the worker VM's [`relay`], sends the first target
//! and tells the router, per request, how many retries to make and on what. The
//! route's cluster specifier reads the cluster header again on each retry
//! (`refresh_cluster_on_retry`), and the same wasm module, as an upstream HTTP
//! filter on the provider clusters, rewrites each attempt for its target and
//! names the next target's cluster. The answering attempt says which target it
//! served in a response header the downstream filter strips; the response is
//! then read and converted for that target's wire, and the event names it.
//! Nothing is retried once response headers have gone to the client.
//!
//! Pure parts: [`config`] (settings), [`chain`] (a request's targets), [`relay`]
//! (attempt bookkeeping), and here the retry directives, the event's properties
//! and the metrics' names.

pub mod chain;
pub mod config;
pub mod relay;

use serde_json::{json, Map, Value};

use crate::providers::Provider;
use config::FailoverSettings;
use relay::{AttemptRecord, Outcome};

/// Request header naming the relay entry (the downstream context id); only the filter sets it.
pub const FAILOVER_HEADER: &str = "x-llm-gateway-failover";
/// Response header: the chain index of the target whose answer this is (stripped downstream).
pub const TARGET_HEADER: &str = "x-llm-gateway-target";
/// Response header of the upstream filter's own reply: why the attempt did not go.
pub const REFUSAL_HEADER: &str = "x-llm-gateway-failover-refused";

/// Envoy's per-request retry directives. The filter sets some for failover; a
/// client's never reach the router (a client could otherwise make Envoy send a
/// billed request twice).
pub const ENVOY_RETRY_HEADERS: [&str; 8] = [
    "x-envoy-retry-on",
    "x-envoy-retriable-status-codes",
    "x-envoy-retriable-header-names",
    "x-envoy-retry-grpc-on",
    "x-envoy-max-retries",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-hedge-on-per-try-timeout",
    "x-envoy-upstream-rq-timeout-alt-response",
];

/// Headers a provider request may carry that only the gateway sets: every
/// attempt removes those another target set (the header map is shared).
pub const PROVIDER_AUTH_HEADERS: [&str; 7] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
];

/// Whether a plugin configuration is the upstream filter's: `{"role": "upstream"}`.
pub fn is_upstream_role(json: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Role {
        role: String,
    }
    serde_json::from_slice::<Role>(json).is_ok_and(|r| r.role == "upstream")
}

/// The router's directives for a request with `attempts` targets: what to
/// retry on, how often, and the per-attempt timeout.
pub fn retry_headers(settings: &FailoverSettings, attempts: usize, stream: bool) -> Vec<(&'static str, String)> {
    let on = settings.retry_on;
    let mut conditions = Vec::new();
    if on.connect_failure {
        conditions.push("connect-failure");
    }
    // Envoy retries a per-try timeout as a reset (config requires both together).
    if on.reset {
        conditions.push("reset");
    }
    if !settings.retry_on_status.is_empty() {
        conditions.push("retriable-status-codes");
    }
    let mut headers = vec![
        ("x-envoy-retry-on", conditions.join(",")),
        ("x-envoy-max-retries", attempts.saturating_sub(1).to_string()),
    ];
    if !settings.retry_on_status.is_empty() {
        let codes: Vec<String> = settings.retry_on_status.iter().map(u16::to_string).collect();
        headers.push(("x-envoy-retriable-status-codes", codes.join(",")));
    }
    if let Some(ms) = settings.attempt_timeout_ms(stream) {
        headers.push(("x-envoy-upstream-rq-per-try-timeout-ms", ms.to_string()));
    }
    headers
}

/// A failed attempt, as the event reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct FailedAttempt {
    /// The target's place in the chain.
    pub index: usize,
    pub provider: Provider,
    pub model: String,
    pub status: Option<u16>,
    pub error: String,
    pub duration_ms: u64,
    pub retry_after: Option<String>,
    /// It timed out after the request was sent: the provider may bill it.
    pub maybe_billed: bool,
}

/// What became of a chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub attempts: usize,
    /// The target whose answer (or failure) the client got.
    pub answered: usize,
    /// The attempts before it, in order.
    pub failed: Vec<FailedAttempt>,
    /// Each move to the next target: from, to.
    pub hops: Vec<(Provider, Provider)>,
}

/// The chain's outcome from its attempt records; `targets` are (provider, model)
/// by chain index, `answered` the target whose response the client got.
pub fn summarize(targets: &[(Provider, String)], records: &[AttemptRecord], answered: usize) -> Summary {
    let target = |i: usize| targets.get(i).cloned().unwrap_or((Provider::OpenAi, String::new()));
    let mut sorted: Vec<&AttemptRecord> = records.iter().collect();
    sorted.sort_by_key(|r| r.index);
    let failed = sorted
        .iter()
        .filter(|r| r.index != answered)
        .map(|r| {
            let (provider, model) = target(r.index);
            let (status, error, maybe_billed) = match r.outcome {
                Outcome::Status(s) => (Some(s), format!("HTTP {s}"), false),
                Outcome::NoResponse { timed_out: true } => {
                    (None, "no response headers before the attempt timeout".to_string(), true)
                }
                Outcome::NoResponse { timed_out: false } | Outcome::Pending => {
                    (None, "connection failed or reset before a response".to_string(), false)
                }
            };
            FailedAttempt {
                index: r.index,
                provider,
                model,
                status,
                error,
                duration_ms: r.ended_ms.unwrap_or(r.started_ms).saturating_sub(r.started_ms),
                retry_after: r.retry_after.clone(),
                maybe_billed,
            }
        })
        .collect();
    let hops = sorted.iter().zip(sorted.iter().skip(1)).map(|(a, b)| (target(a.index).0, target(b.index).0)).collect();
    Summary { attempts: records.len(), answered, failed, hops }
}

/// The event's failover properties: `$ai_attempts`, `$ai_fallback` (a target
/// after the first answered), `$ai_fallback_attempts` (each failed attempt),
/// `$ai_fallback_cost_usd` (what attempts the provider may have billed are
/// estimated to cost).
pub fn event_properties(summary: &Summary, fallback_cost_usd: f64) -> Map<String, Value> {
    let mut props = Map::new();
    props.insert("$ai_attempts".into(), summary.attempts.into());
    props.insert("$ai_fallback".into(), (summary.answered > 0).into());
    let failed: Vec<Value> = summary
        .failed
        .iter()
        .map(|f| {
            let mut a = json!({
                "provider": f.provider.name(),
                "model": f.model,
                "http_status": f.status,
                "error": f.error,
                "latency": f.duration_ms as f64 / 1000.0,
            });
            if let (Some(r), Some(obj)) = (&f.retry_after, a.as_object_mut()) {
                obj.insert("retry_after".into(), r.as_str().into());
            }
            if let (true, Some(obj)) = (f.maybe_billed, a.as_object_mut()) {
                obj.insert("maybe_billed".into(), true.into());
            }
            a
        })
        .collect();
    props.insert("$ai_fallback_attempts".into(), failed.into());
    if fallback_cost_usd > 0.0 {
        if let Some(n) = serde_json::Number::from_f64(fallback_cost_usd) {
            props.insert("$ai_fallback_cost_usd".into(), Value::Number(n));
        }
    }
    props
}

/// Index of a provider pair among the `failover_<from>_<to>_total` counters.
pub fn pair_index(from: Provider, to: Provider) -> u8 {
    let pos = |p: Provider| Provider::ALL.iter().position(|q| *q == p).unwrap_or(0);
    (pos(from) * Provider::ALL.len() + pos(to)) as u8
}

/// Every pair's counter name, in [`pair_index`] order.
pub fn pair_names() -> Vec<String> {
    let mut names = Vec::new();
    for from in Provider::ALL {
        for to in Provider::ALL {
            names.push(format!("failover_{}_to_{}_total", from.name(), to.name()));
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failover::config::{compile, RawFailover};

    #[test]
    fn the_upstream_role_is_its_own_config() {
        assert!(is_upstream_role(br#"{"role": "upstream"}"#));
        assert!(!is_upstream_role(br#"{"role": "downstream"}"#));
        assert!(!is_upstream_role(br#"{"role": "upstream", "products": []}"#));
        assert!(!is_upstream_role(b"{}"));
        assert!(!is_upstream_role(b""));
    }

    #[test]
    fn the_router_is_told_what_to_retry_per_request() {
        let settings = FailoverSettings::default();
        let h = retry_headers(&settings, 3, true);
        let get = |name: &str| h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str());
        assert_eq!(get("x-envoy-retry-on"), Some("connect-failure,reset,retriable-status-codes"));
        assert_eq!(get("x-envoy-max-retries"), Some("2"));
        assert_eq!(get("x-envoy-retriable-status-codes"), Some("429,500,502,503,504,529"));
        assert_eq!(get("x-envoy-upstream-rq-per-try-timeout-ms"), Some("30000"));
        let h = retry_headers(&settings, 2, false);
        assert!(!h.iter().any(|(k, _)| *k == "x-envoy-upstream-rq-per-try-timeout-ms"), "JSON answers: none");
        let raw: RawFailover =
            serde_json::from_str(r#"{"retry_on": ["connect_failure"], "retry_on_status": []}"#).unwrap();
        let settings = compile(raw, |_| None).unwrap();
        let h = retry_headers(&settings, 2, true);
        assert_eq!(h, [("x-envoy-retry-on", "connect-failure".to_string()), ("x-envoy-max-retries", "1".into())]);
    }

    #[test]
    fn summary_and_event_name_each_failed_attempt() {
        let targets = [
            (Provider::Anthropic, "claude-sonnet-4-5".to_string()),
            (Provider::Bedrock, "us.anthropic.claude-sonnet-4-5".to_string()),
            (Provider::OpenAi, "gpt-5".to_string()),
        ];
        let record = |index, outcome, started_ms, ended_ms, retry_after: Option<&str>| AttemptRecord {
            index,
            outcome,
            started_ms,
            ended_ms: Some(ended_ms),
            retry_after: retry_after.map(str::to_string),
        };
        let records = [
            record(0, Outcome::Status(429), 0, 40, Some("2")),
            record(1, Outcome::NoResponse { timed_out: true }, 50, 1050, None),
            record(2, Outcome::Status(200), 1060, 1500, None),
        ];
        let s = summarize(&targets, &records, 2);
        assert_eq!((s.attempts, s.answered), (3, 2));
        assert_eq!(s.hops, [(Provider::Anthropic, Provider::Bedrock), (Provider::Bedrock, Provider::OpenAi)]);
        assert_eq!(s.failed[0].status, Some(429));
        assert!(s.failed[1].maybe_billed);
        let p = event_properties(&s, 0.0012);
        assert_eq!(p["$ai_attempts"], 3);
        assert_eq!(p["$ai_fallback"], true);
        let failed = p["$ai_fallback_attempts"].as_array().unwrap();
        assert_eq!(failed[0]["provider"], "anthropic");
        assert_eq!(failed[0]["http_status"], 429);
        assert_eq!(failed[0]["retry_after"], "2");
        assert_eq!(failed[0]["latency"], 0.04);
        assert_eq!(failed[1]["provider"], "bedrock");
        assert!(failed[1]["http_status"].is_null());
        assert_eq!(failed[1]["maybe_billed"], true);
        assert_eq!(p["$ai_fallback_cost_usd"], 0.0012);
        // The first target answered: no fallback, nothing failed.
        let s = summarize(&targets, &records[..1], 0);
        let p = event_properties(&s, 0.0);
        assert_eq!((p["$ai_attempts"].clone(), p["$ai_fallback"].clone()), (json!(1), json!(false)));
        assert_eq!(p["$ai_fallback_attempts"], json!([]));
        assert!(p.get("$ai_fallback_cost_usd").is_none());
    }

    #[test]
    fn every_provider_pair_has_its_own_counter() {
        let names = pair_names();
        assert_eq!(names.len(), Provider::ALL.len() * Provider::ALL.len());
        assert_eq!(
            names[usize::from(pair_index(Provider::Anthropic, Provider::OpenAi))],
            "failover_anthropic_to_openai_total"
        );
        assert_eq!(
            names[usize::from(pair_index(Provider::Bedrock, Provider::Bedrock))],
            "failover_bedrock_to_bedrock_total"
        );
    }
}
