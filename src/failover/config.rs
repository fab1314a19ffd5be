//! `failover` in the plugin configuration: the fallback chains and when the
//! router moves on to the next target. Parsed strictly, like the rest.

use std::collections::HashMap;

use serde::Deserialize;

use crate::providers::Provider;

/// Statuses retried by default: rate limited, and the provider's own failures
/// (529 is Anthropic's "overloaded").
pub const DEFAULT_RETRY_STATUSES: [u16; 6] = [429, 500, 502, 503, 504, 529];
const DEFAULT_MAX_ATTEMPTS: usize = 3;
/// At most this many targets per chain: every attempt's body is kept in memory.
pub const MAX_ATTEMPTS_LIMIT: usize = 8;
const DEFAULT_FIRST_BYTE_TIMEOUT_MS: u64 = 30_000;
const DEFAULT_DEADLINE_MS: u64 = 60_000;
/// Fallback bodies are kept in the worker VM's memory until the request ends.
const DEFAULT_MAX_BODY_BYTES: usize = 8 * 1024 * 1024;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    #[serde(default)]
    models: HashMap<String, Vec<RawTarget>>,
    #[serde(default)]
    providers: HashMap<String, Vec<RawTarget>>,
    max_attempts: Option<usize>,
    retry_on: Option<Vec<String>>,
    retry_on_status: Option<Vec<u16>>,
    first_byte_timeout_ms: Option<u64>,
    response_timeout_ms: Option<u64>,
    deadline_ms: Option<u64>,
    max_body_bytes: Option<usize>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    provider: String,
    model: Option<String>,
}

/// One target of a chain as configured: a provider, and the model it gets
/// (`None`: the requested model, or its Bedrock id on Bedrock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetSpec {
    pub provider: Provider,
    pub model: Option<String>,
}

/// The failure conditions that move a request to its next target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryOn {
    /// The connection to the provider could not be made.
    pub connect_failure: bool,
    /// The provider reset the stream (or closed it) before response headers.
    pub reset: bool,
    /// No response headers within the first-byte timeout.
    pub first_byte_timeout: bool,
}

#[derive(Clone, Debug)]
pub struct FailoverSettings {
    /// Chains by model name (as the client sends it, or as the `models` table routes it).
    pub models: HashMap<String, Vec<TargetSpec>>,
    /// The default chain for every model a provider serves.
    pub providers: HashMap<Provider, Vec<TargetSpec>>,
    /// Attempts per request, chain targets beyond it are never tried.
    pub max_attempts: usize,
    pub retry_on: RetryOn,
    /// Statuses that move on (429 and 5xx only: a client error would fail everywhere).
    pub retry_on_status: Vec<u16>,
    /// Streaming requests: an attempt without response headers after this long is
    /// abandoned for the next target.
    pub first_byte_timeout_ms: Option<u64>,
    /// Non-streaming requests: the same, but the first byte of a JSON answer comes
    /// when it is complete, so this bounds the whole answer (none by default).
    pub response_timeout_ms: Option<u64>,
    /// No new attempt starts this long after the request arrived.
    pub deadline_ms: u64,
    /// A larger request makes one attempt: every fallback's body stays in memory
    /// until the request ends.
    pub max_body_bytes: usize,
}

impl Default for FailoverSettings {
    fn default() -> Self {
        FailoverSettings {
            models: HashMap::new(),
            providers: HashMap::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_on: RetryOn { connect_failure: true, reset: true, first_byte_timeout: true },
            retry_on_status: DEFAULT_RETRY_STATUSES.to_vec(),
            first_byte_timeout_ms: Some(DEFAULT_FIRST_BYTE_TIMEOUT_MS),
            response_timeout_ms: None,
            deadline_ms: DEFAULT_DEADLINE_MS,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }
}

impl FailoverSettings {
    /// No chain is configured: every request makes one attempt.
    pub fn is_off(&self) -> bool {
        self.models.is_empty() && self.providers.is_empty()
    }

    /// The per-attempt timeout for a request, if retrying on it.
    pub fn attempt_timeout_ms(&self, stream: bool) -> Option<u64> {
        if !self.retry_on.first_byte_timeout {
            return None;
        }
        if stream {
            self.first_byte_timeout_ms
        } else {
            self.response_timeout_ms
        }
    }
}

/// Validates `failover`; `route` says which provider serves a model name without
/// failover (the `models` table, then the naming rules), to check chain keys.
pub fn compile(
    raw: RawFailover,
    route: impl Fn(&str) -> Option<(Provider, String)>,
) -> Result<FailoverSettings, String> {
    let defaults = FailoverSettings::default();
    let max_attempts = raw.max_attempts.unwrap_or(defaults.max_attempts);
    if !(1..=MAX_ATTEMPTS_LIMIT).contains(&max_attempts) {
        return Err(format!("failover.max_attempts: must be between 1 and {MAX_ATTEMPTS_LIMIT}"));
    }
    let retry_on = match raw.retry_on {
        None => defaults.retry_on,
        Some(list) => {
            let mut on = RetryOn { connect_failure: false, reset: false, first_byte_timeout: false };
            for c in &list {
                match c.as_str() {
                    "connect_failure" => on.connect_failure = true,
                    "reset" => on.reset = true,
                    "first_byte_timeout" => on.first_byte_timeout = true,
                    other => {
                        return Err(format!(
                            "failover.retry_on: unknown condition {other:?} (known: connect_failure, reset, first_byte_timeout)"
                        ))
                    }
                }
            }
            // Envoy retries a per-try timeout only under `reset` (router `onPerTryTimeout`,
            // `wouldRetryFromReset`): one cannot be had without the other.
            if on.first_byte_timeout && !on.reset {
                return Err(
                    "failover.retry_on: first_byte_timeout needs reset (Envoy retries a timed-out attempt as a reset)"
                        .into(),
                );
            }
            on
        }
    };
    let retry_on_status = raw.retry_on_status.unwrap_or(defaults.retry_on_status);
    if let Some(bad) = retry_on_status.iter().find(|s| !(**s == 429 || (500..=599).contains(*s))) {
        return Err(format!(
            "failover.retry_on_status: {bad} is not retriable (429 and 5xx only: a client error fails on every target)"
        ));
    }
    let positive = |v: Option<u64>, field: &str| match v {
        Some(0) => Err(format!("failover.{field}: must be greater than 0")),
        v => Ok(v),
    };
    let first_byte_timeout_ms =
        positive(raw.first_byte_timeout_ms, "first_byte_timeout_ms")?.or(defaults.first_byte_timeout_ms);
    let response_timeout_ms = positive(raw.response_timeout_ms, "response_timeout_ms")?;
    let deadline_ms = positive(raw.deadline_ms, "deadline_ms")?.unwrap_or(defaults.deadline_ms);
    let max_body_bytes = positive(raw.max_body_bytes.map(|b| b as u64), "max_body_bytes")?
        .map_or(defaults.max_body_bytes, |b| b as usize);
    let mut models = HashMap::new();
    for (name, targets) in raw.models {
        let field = format!("failover.models.{}", name.escape_debug());
        let routed = route(&name).map(|(p, _)| p);
        models.insert(name, targets_of(targets, routed, &field)?);
    }
    let mut providers = HashMap::new();
    for (name, targets) in raw.providers {
        let field = format!("failover.providers.{}", name.escape_debug());
        let provider = Provider::from_name(&name).ok_or_else(|| format!("{field}: unknown provider"))?;
        providers.insert(provider, targets_of(targets, Some(provider), &field)?);
    }
    Ok(FailoverSettings {
        models,
        providers,
        max_attempts,
        retry_on,
        retry_on_status,
        first_byte_timeout_ms,
        response_timeout_ms,
        deadline_ms,
        max_body_bytes,
    })
}

/// A chain's targets. A target may leave out `model` when it is the provider that
/// serves the model anyway, or Bedrock for an Anthropic model (its Bedrock id).
fn targets_of(raw: Vec<RawTarget>, routed: Option<Provider>, field: &str) -> Result<Vec<TargetSpec>, String> {
    if raw.is_empty() {
        return Err(format!("{field}: a chain needs at least one target"));
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, t)| {
            let provider = Provider::from_name(&t.provider)
                .ok_or_else(|| format!("{field}[{i}].provider: unknown provider {:?}", t.provider))?;
            let model = match t.model {
                Some(m) if m.trim().is_empty() => return Err(format!("{field}[{i}].model: must not be empty")),
                m => m,
            };
            let implied =
                Some(provider) == routed || (routed == Some(Provider::Anthropic) && provider == Provider::Bedrock);
            if model.is_none() && !implied {
                return Err(format!(
                    "{field}[{i}].model: required, {provider} does not serve this chain's model under its name"
                ));
            }
            Ok(TargetSpec { provider, model })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<FailoverSettings, String> {
        let raw: RawFailover = serde_json::from_str(json).map_err(|e| e.to_string())?;
        compile(raw, |m| crate::providers::infer(m).map(|(p, m)| (p, m.to_string())))
    }

    #[test]
    fn defaults_and_a_chain() {
        let s = parse("{}").unwrap();
        assert!(s.is_off());
        assert_eq!((s.max_attempts, s.deadline_ms), (3, 60_000));
        assert_eq!(s.retry_on_status, [429, 500, 502, 503, 504, 529]);
        assert_eq!(s.attempt_timeout_ms(true), Some(30_000));
        assert_eq!(s.attempt_timeout_ms(false), None, "a JSON answer's first byte is its last");
        let s = parse(
            r#"{"models": {"claude-sonnet-4-5": [{"provider": "anthropic"},
                 {"provider": "bedrock"}, {"provider": "openai", "model": "gpt-5"}]},
                "providers": {"openai": [{"provider": "openai"}, {"provider": "anthropic", "model": "claude-sonnet-4-5"}]},
                "retry_on": ["connect_failure"], "retry_on_status": [529], "response_timeout_ms": 90000}"#,
        )
        .unwrap();
        assert!(!s.is_off());
        let chain = &s.models["claude-sonnet-4-5"];
        assert_eq!(chain.len(), 3);
        assert_eq!(chain[2], TargetSpec { provider: Provider::OpenAi, model: Some("gpt-5".into()) });
        assert_eq!(s.providers[&Provider::OpenAi].len(), 2);
        assert_eq!(s.retry_on, RetryOn { connect_failure: true, reset: false, first_byte_timeout: false });
        assert_eq!(s.attempt_timeout_ms(false), None, "first_byte_timeout is not a retry condition here");
    }

    #[test]
    fn bad_settings_name_the_field() {
        let cases = [
            (r#"{"max_attempts": 0}"#, "failover.max_attempts"),
            (r#"{"max_attempts": 9}"#, "failover.max_attempts"),
            (r#"{"retry_on": ["timeout"]}"#, "failover.retry_on: unknown condition"),
            (r#"{"retry_on": ["first_byte_timeout"]}"#, "first_byte_timeout needs reset"),
            (r#"{"retry_on_status": [400]}"#, "failover.retry_on_status: 400"),
            (r#"{"retry_on_status": [404]}"#, "failover.retry_on_status: 404"),
            (r#"{"deadline_ms": 0}"#, "failover.deadline_ms"),
            (r#"{"max_body_bytes": 0}"#, "failover.max_body_bytes"),
            (r#"{"models": {"gpt-4o": []}}"#, "failover.models.gpt-4o: a chain needs"),
            (r#"{"models": {"gpt-4o": [{"provider": "mistral"}]}}"#, "failover.models.gpt-4o[0].provider"),
            (r#"{"models": {"gpt-4o": [{"provider": "openai"}, {"provider": "anthropic"}]}}"#, "[1].model: required"),
            (r#"{"providers": {"x": [{"provider": "openai"}]}}"#, "failover.providers.x: unknown provider"),
            (r#"{"providers": {"openai": [{"provider": "gemini"}]}}"#, "failover.providers.openai[0].model"),
            (r#"{"models": {"m": [{"provider": "openai", "model": " "}]}}"#, "must not be empty"),
            (r#"{"chains": {}}"#, "unknown field"),
        ];
        for (json, needle) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.contains(needle), "{json}: {err}");
        }
        // Bedrock serves an Anthropic model under its Bedrock id.
        assert!(parse(r#"{"providers": {"anthropic": [{"provider": "anthropic"}, {"provider": "bedrock"}]}}"#).is_ok());
    }
}
