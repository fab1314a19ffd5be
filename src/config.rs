//! Plugin configuration: parsed strictly from JSON, compiled once, shared by `Rc`.
//!
//! Unknown fields are errors, so a typo fails the plugin at start with one
//! line naming the field instead of being silently ignored.

use std::collections::HashMap;
use std::rc::Rc;

use serde::Deserialize;

use crate::capture::outbox::OutboxConfig;
use crate::cost_controls::CostControlsConfig;
use crate::failover::config::{FailoverSettings, RawFailover};
use crate::limits::LimitsConfig;
use crate::pricing::refresh::Source;
use crate::pricing::{ModelPrice, PriceTable, UnknownModel};
use crate::providers::Provider;

pub const DEFAULT_PRODUCTS: [&str; 6] = ["llm_gateway", "array", "wizard", "django", "posthog_code", "slack_app"];
pub const DEFAULT_MAX_BODY_BYTES: usize = 32 * 1024 * 1024;
const DEFAULT_TIMEOUT_MS: u64 = 600_000;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    products: Option<Vec<String>>,
    #[serde(default)]
    providers: HashMap<String, RawProvider>,
    #[serde(default)]
    models: HashMap<String, RawModel>,
    route_header: Option<String>,
    max_request_body_bytes: Option<usize>,
    body_timeout_ms: Option<u64>,
    anthropic_version: Option<String>,
    #[serde(default)]
    auth: RawAuth,
    capture: Option<RawCapture>,
    /// `models`, `source`, `unknown_model`; any other key is a model (the older form).
    #[serde(default)]
    pricing: serde_json::Map<String, serde_json::Value>,
    default_fallback_cost_usd: Option<f64>,
    #[serde(default)]
    cost_controls: CostControlsConfig,
    #[serde(default)]
    limits: LimitsConfig,
    #[serde(default)]
    failover: RawFailover,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapture {
    region_url: Option<String>,
    content: Option<bool>,
    max_event_bytes: Option<usize>,
    flush_interval_ms: Option<u64>,
    batch_max_events: Option<usize>,
    max_batches_in_flight: Option<usize>,
    queue_max_events: Option<usize>,
    queue_max_bytes: Option<usize>,
    max_attempts: Option<u32>,
    primary: Option<RawDestination>,
    secondary: Option<RawDestination>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    cluster: Option<String>,
    authority: Option<String>,
    path: Option<String>,
    api_key: Option<String>,
    timeout_ms: Option<u64>,
}

/// One PostHog instance events are sent to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Destination {
    pub name: &'static str,
    pub cluster: String,
    pub authority: String,
    pub path: String,
    pub api_key: String,
    pub timeout_ms: u64,
}

/// `$ai_generation` capture; absent when `capture` is not configured.
#[derive(Clone, Debug)]
pub struct CaptureSettings {
    pub region_url: String,
    pub content: bool,
    pub max_event_bytes: usize,
    pub outbox: OutboxConfig,
    pub primary: Destination,
    pub secondary: Option<Destination>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAuth {
    cluster: Option<String>,
    authority: Option<String>,
    path_prefix: Option<String>,
    path_suffix: Option<String>,
    timeout_ms: Option<u64>,
    required_scope: Option<String>,
    cache_ttl_seconds: Option<u64>,
    negative_cache_ttl_seconds: Option<u64>,
    cache_max_entries: Option<usize>,
}

/// The auth service: `GET {path_prefix}{sha256_hex(key)}{path_suffix}` on `cluster`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthSettings {
    pub cluster: String,
    pub authority: String,
    pub path_prefix: String,
    pub path_suffix: String,
    pub timeout_ms: u64,
    pub required_scope: String,
    pub cache_ttl_ms: u64,
    pub negative_cache_ttl_ms: u64,
    pub cache_max_entries: usize,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProvider {
    cluster: Option<String>,
    authority: Option<String>,
    base_path: Option<String>,
    timeout_ms: Option<u64>,
    auth: Option<String>,
    api_version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawModel {
    provider: String,
    model: Option<String>,
    deployment: Option<String>,
}

/// How the gateway authenticates to a provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProviderAuth {
    /// The gateway's key from `LLM_GATEWAY_<PROVIDER>_API_KEY`, in the provider's auth header.
    ApiKey,
    /// Bedrock with IAM credentials: the filter sends no credential, and Envoy's
    /// `aws_request_signing` filter on the Bedrock cluster signs the request (SigV4).
    SigV4,
}

/// Where and how to reach one provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderSettings {
    pub cluster: String,
    pub authority: String,
    pub base_path: String,
    pub timeout_ms: u64,
    pub auth: ProviderAuth,
    /// Azure only: with an `api-version`, the deployment-based paths
    /// (`/openai/deployments/{deployment}/...?api-version=`); without, the v1 API.
    pub api_version: Option<String>,
    /// The upstream headers every call to the provider sets, whatever its request:
    /// built once here and shared by the calls' plans, which add `:path` and the key.
    pub fixed_headers: Vec<(String, String)>,
}

/// The timeout header every upstream request carries (Envoy's router reads it).
pub const TIMEOUT_HEADER: &str = "x-envoy-upstream-rq-timeout-ms";

/// A model-table entry: an alias or a model pinned to a provider.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelRoute {
    pub provider: Provider,
    pub upstream_model: Option<String>,
    /// Azure only: the deployment serving the model (default: the model's name).
    pub deployment: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Config {
    /// `products[0]` serves unprefixed paths.
    pub products: Vec<String>,
    providers: Providers,
    pub models: HashMap<String, ModelRoute>,
    /// Request header the Envoy route reads (`cluster_header`) to pick the upstream.
    pub route_header: String,
    pub max_request_body_bytes: usize,
    /// A request body that has not started after this long gets 408.
    pub body_timeout_ms: u64,
    pub anthropic_version: String,
    pub auth: AuthSettings,
    pub capture: Option<CaptureSettings>,
    /// Built-in (or `pricing.source`'s) catalog, `pricing.models` overrides, `pricing.unknown_model`.
    pub prices: PriceTable,
    pub fallback_cost_usd: f64,
    /// Where to refresh the catalog at run time (`pricing.source`).
    pub pricing_source: Option<Source>,
    pub cost_controls: CostControlsConfig,
    pub limits: LimitsConfig,
    /// Fallback chains and when to move on (`failover`, see `crate::failover`).
    pub failover: FailoverSettings,
}

impl Config {
    pub fn provider(&self, p: Provider) -> &Rc<ProviderSettings> {
        match p {
            Provider::OpenAi => &self.providers.0,
            Provider::Anthropic => &self.providers.1,
            Provider::Gemini => &self.providers.2,
            Provider::Bedrock => &self.providers.3,
            Provider::Azure => &self.providers.4,
        }
    }

    /// Whether calls to `p` carry one of the gateway's keys (not when Envoy signs them).
    pub fn needs_key(&self, p: Provider) -> bool {
        self.provider(p).auth == ProviderAuth::ApiKey
    }

    /// Parses and validates; the error is one line naming the field.
    pub fn parse(json: &[u8]) -> Result<Config, String> {
        let raw: RawConfig = if json.iter().all(u8::is_ascii_whitespace) {
            RawConfig::default()
        } else {
            serde_json::from_slice(json).map_err(|e| one_line(format!("invalid configuration: {e}")))?
        };
        compile(raw).map_err(one_line)
    }
}

/// An operator-supplied key as it appears in a field path (`providers.{key}`):
/// escaped as `{:?}` would (control characters, line separators, quotes,
/// backslashes) but without the quotes, so an ordinary key reads as itself
/// and an odd one cannot split the message over several log lines.
fn key(key: &str) -> std::str::EscapeDebug<'_> {
    key.escape_debug()
}

/// Whether `c` could break a log line: control characters
/// (CR, LF, ESC, NEL, ...) and the Unicode line and paragraph separators.
fn breaks_line(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// `message` with every character that could break its line escaped (`\n`,
/// `\u{1b}`): a safety net for text quoted raw by serde (`unknown field
/// `...``) or by other modules' validation. Anything else is left as is.
fn one_line(message: String) -> String {
    if !message.chars().any(breaks_line) {
        return message;
    }
    let mut out = String::with_capacity(message.len() + 8);
    for c in message.chars() {
        if breaks_line(c) {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out
}

fn compile(raw: RawConfig) -> Result<Config, String> {
    let products = compile_products(raw.products)?;
    let route_header =
        non_empty(raw.route_header, "x-llm-gateway-cluster", || "route_header".into())?.to_ascii_lowercase();
    let providers = compile_providers(&raw.providers, &route_header)?;
    let models = compile_models(raw.models, &providers.4)?;
    let max_request_body_bytes = raw.max_request_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if max_request_body_bytes == 0 {
        return Err("max_request_body_bytes: must be greater than 0".into());
    }
    let auth = compile_auth(raw.auth)?;
    let capture = raw.capture.map(compile_capture).transpose()?;
    let fallback_cost_usd = raw.default_fallback_cost_usd.unwrap_or(0.01);
    if !(fallback_cost_usd >= 0.0 && fallback_cost_usd.is_finite()) {
        return Err("default_fallback_cost_usd: must be a number >= 0".into());
    }
    let (prices, pricing_source) = compile_pricing(raw.pricing)?;
    raw.cost_controls.validate()?;
    raw.limits.validate()?;
    let failover = crate::failover::config::compile(raw.failover, |name| match models.get(name) {
        Some(m) => Some((m.provider, m.upstream_model.clone().unwrap_or_else(|| name.to_string()))),
        None => crate::providers::infer(name).map(|(p, m)| (p, m.to_string())),
    })?;
    Ok(Config {
        failover,
        limits: raw.limits,
        cost_controls: raw.cost_controls,
        capture,
        prices,
        fallback_cost_usd,
        pricing_source,
        auth,
        products,
        providers,
        models,
        route_header,
        max_request_body_bytes,
        body_timeout_ms: positive(raw.body_timeout_ms.unwrap_or(10_000), "body_timeout_ms")?,
        anthropic_version: non_empty(raw.anthropic_version, "2023-06-01", || "anthropic_version".into())?,
    })
}

/// `products`: the first serves unprefixed paths.
fn compile_products(raw: Option<Vec<String>>) -> Result<Vec<String>, String> {
    let products = raw.unwrap_or_else(|| DEFAULT_PRODUCTS.iter().map(|s| s.to_string()).collect());
    if products.is_empty() {
        return Err("products: must name at least one product (the first serves unprefixed paths)".into());
    }
    for p in &products {
        let valid =
            !p.is_empty() && p != "v1" && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !valid {
            return Err(format!("products: invalid product name {p:?} (use letters, digits, '_' or '-', not 'v1')"));
        }
    }
    Ok(products)
}

/// Each provider's settings, in `Provider::ALL` order.
type Providers =
    (Rc<ProviderSettings>, Rc<ProviderSettings>, Rc<ProviderSettings>, Rc<ProviderSettings>, Rc<ProviderSettings>);

/// `providers.<name>`: cluster, host, path, timeout and auth of each provider.
fn compile_providers(raw: &HashMap<String, RawProvider>, route_header: &str) -> Result<Providers, String> {
    for name in raw.keys() {
        if Provider::from_name(name).is_none() {
            return Err(format!(
                "providers.{}: unknown provider (known: openai, anthropic, gemini, bedrock, azure)",
                key(name)
            ));
        }
    }
    let settings = |p: Provider| -> Result<Rc<ProviderSettings>, String> {
        let raw_p = raw.get(p.name());
        let timeout_ms = raw_p.and_then(|r| r.timeout_ms).unwrap_or(DEFAULT_TIMEOUT_MS);
        if timeout_ms == 0 {
            return Err(format!("providers.{p}.timeout_ms: must be greater than 0"));
        }
        let auth = match raw_p.and_then(|r| r.auth.as_deref()) {
            None | Some("api_key") => ProviderAuth::ApiKey,
            Some("sigv4") if p == Provider::Bedrock => ProviderAuth::SigV4,
            Some(_) if p == Provider::Bedrock => {
                return Err("providers.bedrock.auth: must be \"api_key\" or \"sigv4\"".into());
            }
            Some(_) => return Err(format!("providers.{p}.auth: must be \"api_key\" (only bedrock takes \"sigv4\")")),
        };
        let api_version = raw_p.and_then(|r| r.api_version.clone());
        if let Some(v) = &api_version {
            if p != Provider::Azure {
                return Err(format!("providers.{p}.api_version: only azure takes an api-version"));
            }
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                return Err("providers.azure.api_version: letters, digits, '-' and '.' only (e.g. 2024-10-21)".into());
            }
        }
        // Azure's deployment-based API lives under /openai, its v1 API under /openai/v1.
        let default_base_path = if api_version.is_some() { "/openai" } else { p.default_base_path() };
        let base_path = raw_p.and_then(|r| r.base_path.clone()).unwrap_or_else(|| default_base_path.into());
        if !base_path.starts_with('/') || base_path.ends_with('/') {
            return Err(format!("providers.{p}.base_path: must start with '/' and not end with '/'"));
        }
        let cluster = non_empty(raw_p.and_then(|r| r.cluster.clone()), p.name(), || format!("providers.{p}.cluster"))?;
        let authority = non_empty(raw_p.and_then(|r| r.authority.clone()), p.default_authority(), || {
            format!("providers.{p}.authority")
        })?;
        let fixed_headers = vec![
            // Usage is read from the response as it passes: ask for it uncompressed.
            ("accept-encoding".into(), "identity".into()),
            (route_header.into(), cluster.clone()),
            (":authority".into(), authority.clone()),
            (TIMEOUT_HEADER.into(), timeout_ms.to_string()),
        ];
        Ok(Rc::new(ProviderSettings { auth, api_version, cluster, authority, base_path, timeout_ms, fixed_headers }))
    };
    Ok((
        settings(Provider::OpenAi)?,
        settings(Provider::Anthropic)?,
        settings(Provider::Gemini)?,
        settings(Provider::Bedrock)?,
        settings(Provider::Azure)?,
    ))
}

/// `models.<name>`: the model table (aliases, per-model provider, Azure deployments).
fn compile_models(
    raw: HashMap<String, RawModel>,
    azure: &ProviderSettings,
) -> Result<HashMap<String, ModelRoute>, String> {
    let mut models = HashMap::new();
    for (name, m) in raw {
        let provider = Provider::from_name(&m.provider)
            .ok_or_else(|| format!("models.{}.provider: unknown provider {:?}", key(&name), m.provider))?;
        if m.model.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return Err(format!(
                "models.{}.model: must not be empty (leave it out to send the name as is)",
                key(&name)
            ));
        }
        if let Some(d) = &m.deployment {
            if provider != Provider::Azure {
                return Err(format!("models.{}.deployment: only Azure models have a deployment", key(&name)));
            }
            if d.is_empty() || !d.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                return Err(format!("models.{}.deployment: letters, digits, '-', '_' and '.' only", key(&name)));
            }
        }
        if provider == Provider::Azure && azure.authority.is_empty() {
            return Err(format!(
                "providers.azure.authority: required to route models.{} to Azure (<resource>.openai.azure.com)",
                key(&name)
            ));
        }
        models.insert(name, ModelRoute { provider, upstream_model: m.model, deployment: m.deployment });
    }
    Ok(models)
}

/// `auth`: where and how principals are looked up and cached.
fn compile_auth(a: RawAuth) -> Result<AuthSettings, String> {
    let auth = AuthSettings {
        cluster: non_empty(a.cluster, "auth", || "auth.cluster".into())?,
        authority: non_empty(a.authority, "auth", || "auth.authority".into())?,
        path_prefix: a.path_prefix.unwrap_or_else(|| "/GET/llmgw:key:".into()),
        path_suffix: a.path_suffix.unwrap_or_else(|| ".txt".into()),
        timeout_ms: positive(a.timeout_ms.unwrap_or(1000), "auth.timeout_ms")?,
        required_scope: non_empty(a.required_scope, "llm_gateway:read", || "auth.required_scope".into())?,
        cache_ttl_ms: a.cache_ttl_seconds.unwrap_or(60).saturating_mul(1000),
        negative_cache_ttl_ms: a.negative_cache_ttl_seconds.unwrap_or(5).saturating_mul(1000),
        cache_max_entries: positive(a.cache_max_entries.unwrap_or(10_000) as u64, "auth.cache_max_entries")? as usize,
    };
    if !auth.path_prefix.starts_with('/') {
        return Err("auth.path_prefix: must start with '/'".into());
    }
    Ok(auth)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    cluster: String,
    authority: Option<String>,
    path: Option<String>,
    refresh_interval_seconds: Option<u64>,
    timeout_ms: Option<u64>,
    max_bytes: Option<usize>,
}

/// `pricing`: `models` (overrides), `source` (run-time catalog), `unknown_model`;
/// any other key is a model override (the form before these keys existed).
fn compile_pricing(raw: serde_json::Map<String, serde_json::Value>) -> Result<(PriceTable, Option<Source>), String> {
    let mut overrides: Vec<(String, ModelPrice)> = Vec::new();
    let mut unknown = UnknownModel::default();
    let mut source = None;
    let mut model = |path: String, name: String, value: serde_json::Value| -> Result<(), String> {
        let p: ModelPrice = serde_json::from_value(value).map_err(|e| format!("{path}: {e}"))?;
        let all = [Some(p.input), Some(p.output), p.cache_read, p.cache_write_5m, p.cache_write_1h, p.web_search];
        let lc = p.long_context.as_ref();
        let tier = lc.map(|lc| [Some(lc.input), Some(lc.output), lc.cache_read, lc.cache_write_5m, lc.cache_write_1h]);
        if all.into_iter().chain(tier.into_iter().flatten()).flatten().any(|v| !(v >= 0.0 && v.is_finite())) {
            return Err(format!("{path}: prices must be numbers >= 0"));
        }
        overrides.push((name, p));
        Ok(())
    };
    for (name, value) in raw {
        match name.as_str() {
            "models" => {
                let serde_json::Value::Object(models) = value else {
                    return Err("pricing.models: must be an object of model name to prices".into());
                };
                for (m, v) in models {
                    model(format!("pricing.models.{}", key(&m)), m, v)?;
                }
            }
            "unknown_model" => {
                unknown = serde_json::from_value(value)
                    .map_err(|_| "pricing.unknown_model: must be \"fallback\", \"family\" or \"reject\"".to_string())?;
            }
            "source" => {
                let s: RawSource = serde_json::from_value(value).map_err(|e| format!("pricing.source: {e}"))?;
                let cluster = non_empty(Some(s.cluster), "", || "pricing.source.cluster".into())?;
                let path = s.path.unwrap_or_else(|| "/".into());
                if !path.starts_with('/') {
                    return Err("pricing.source.path: must start with '/'".into());
                }
                let interval =
                    positive(s.refresh_interval_seconds.unwrap_or(3600), "pricing.source.refresh_interval_seconds")?;
                source = Some(Source {
                    authority: non_empty(s.authority, &cluster, || "pricing.source.authority".into())?,
                    cluster,
                    path,
                    interval_ms: interval.saturating_mul(1000),
                    timeout_ms: positive(s.timeout_ms.unwrap_or(10_000), "pricing.source.timeout_ms")?,
                    max_bytes: positive(s.max_bytes.unwrap_or(8 * 1024 * 1024) as u64, "pricing.source.max_bytes")?
                        as usize,
                });
            }
            _ => model(format!("pricing.{}", key(&name)), name, value)?,
        }
    }
    Ok((PriceTable::builtin().with_overrides(overrides).with_unknown_model(unknown), source))
}

fn compile_capture(raw: RawCapture) -> Result<CaptureSettings, String> {
    let region_url = match raw.region_url {
        Some(u) if u.starts_with("https://") || u.starts_with("http://") => u.trim_end_matches('/').to_string(),
        Some(_) => return Err("capture.region_url: must be an http(s) URL such as https://us.posthog.com".into()),
        None => {
            return Err("capture.region_url: required when capture is configured (e.g. https://us.posthog.com)".into())
        }
    };
    let defaults = OutboxConfig::default();
    let outbox = OutboxConfig {
        max_events: positive(raw.queue_max_events.unwrap_or(defaults.max_events) as u64, "capture.queue_max_events")?
            as usize,
        max_bytes: positive(raw.queue_max_bytes.unwrap_or(defaults.max_bytes) as u64, "capture.queue_max_bytes")?
            as usize,
        max_batch_events: positive(
            raw.batch_max_events.unwrap_or(defaults.max_batch_events) as u64,
            "capture.batch_max_events",
        )? as usize,
        flush_interval_ms: positive(
            raw.flush_interval_ms.unwrap_or(defaults.flush_interval_ms),
            "capture.flush_interval_ms",
        )?,
        max_in_flight: positive(
            raw.max_batches_in_flight.unwrap_or(defaults.max_in_flight) as u64,
            "capture.max_batches_in_flight",
        )? as usize,
        // Absent: retried while the queue has room; set: the old cap on sends per batch.
        max_attempts: match raw.max_attempts {
            Some(n) => Some(positive(u64::from(n), "capture.max_attempts")? as u32),
            None => defaults.max_attempts,
        },
        ..defaults
    };
    let primary = raw.primary.ok_or("capture.primary: required when capture is configured")?;
    Ok(CaptureSettings {
        region_url,
        content: raw.content.unwrap_or(true),
        max_event_bytes: positive(
            raw.max_event_bytes.unwrap_or(crate::capture::event::DEFAULT_MAX_EVENT_BYTES) as u64,
            "capture.max_event_bytes",
        )? as usize,
        outbox,
        primary: destination(primary, "primary")?,
        secondary: raw.secondary.map(|d| destination(d, "secondary")).transpose()?,
    })
}

fn destination(raw: RawDestination, name: &'static str) -> Result<Destination, String> {
    let field = |f: &str| format!("capture.{name}.{f}");
    let path = raw.path.unwrap_or_else(|| "/i/v0/ai/batch/".into());
    if !path.starts_with('/') {
        return Err(format!("{}: must start with '/'", field("path")));
    }
    Ok(Destination {
        name,
        cluster: non_empty(raw.cluster, &format!("posthog_{name}"), || field("cluster"))?,
        authority: non_empty(raw.authority, "us.i.posthog.com", || field("authority"))?,
        path,
        api_key: match raw.api_key {
            Some(k) if !k.trim().is_empty() => k,
            _ => return Err(format!("{}: required (the project API key, phc_...)", field("api_key"))),
        },
        timeout_ms: positive(raw.timeout_ms.unwrap_or(5000), &field("timeout_ms"))?,
    })
}

fn positive(value: u64, field: &str) -> Result<u64, String> {
    if value == 0 {
        return Err(format!("{field}: must be greater than 0"));
    }
    Ok(value)
}

fn non_empty(value: Option<String>, default: &str, field: impl Fn() -> String) -> Result<String, String> {
    match value {
        None => Ok(default.to_string()),
        Some(v) if v.trim().is_empty() => Err(format!("{}: must not be empty", field())),
        Some(v) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gets_defaults() {
        let c = Config::parse(b"").unwrap();
        assert_eq!(c.products[0], "llm_gateway");
        assert_eq!(c.products.len(), 6);
        assert_eq!(c.provider(Provider::Gemini).base_path, "/v1beta/openai");
        assert_eq!(c.provider(Provider::OpenAi).cluster, "openai");
        assert_eq!(c.max_request_body_bytes, DEFAULT_MAX_BODY_BYTES);
        assert_eq!(Config::parse(b"{}").unwrap().route_header, "x-llm-gateway-cluster");
    }

    #[test]
    fn overrides() {
        let c = Config::parse(
            br#"{"providers":{"openai":{"cluster":"mock","timeout_ms":5}},
                 "models":{"fast":{"provider":"anthropic","model":"claude-haiku-4-5"}}}"#,
        )
        .unwrap();
        assert_eq!(c.provider(Provider::OpenAi).cluster, "mock");
        assert_eq!(c.provider(Provider::OpenAi).timeout_ms, 5);
        assert_eq!(c.provider(Provider::Anthropic).cluster, "anthropic");
        assert_eq!(c.models["fast"].provider, Provider::Anthropic);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases: [(&[u8], &str); 14] = [
            (b"{", "invalid configuration"),
            (br#"{"prodcts":[]}"#, "unknown field `prodcts`"),
            (br#"{"products":[]}"#, "products"),
            (br#"{"products":["a/b"]}"#, "products"),
            (br#"{"providers":{"mistral":{}}}"#, "providers.mistral"),
            (br#"{"providers":{"openai":{"timeout_ms":0}}}"#, "providers.openai.timeout_ms"),
            (br#"{"providers":{"openai":{"clusterr":"x"}}}"#, "unknown field `clusterr`"),
            (br#"{"models":{"x":{"provider":"nope"}}}"#, "models.x.provider"),
            (br#"{"auth":{"timeout_ms":0}}"#, "auth.timeout_ms"),
            (br#"{"auth":{"path_prefix":"x"}}"#, "auth.path_prefix"),
            (br#"{"capture":{"primary":{"api_key":"phc_x"}}}"#, "capture.region_url: required"),
            (br#"{"capture":{"region_url":"https://us.posthog.com"}}"#, "capture.primary"),
            (br#"{"capture":{"region_url":"https://x","primary":{}}}"#, "capture.primary.api_key"),
            (br#"{"default_fallback_cost_usd":-1}"#, "default_fallback_cost_usd"),
        ];
        for (json, needle) in cases {
            let err = Config::parse(json).unwrap_err();
            assert!(err.contains(needle), "{err} should mention {needle}");
            assert!(!err.contains('\n'));
        }
    }

    #[test]
    fn provider_auth_azure_api_versions_and_deployments() {
        let c = Config::parse(b"{}").unwrap();
        assert_eq!(c.provider(Provider::Bedrock).auth, ProviderAuth::ApiKey);
        assert!(c.needs_key(Provider::Bedrock));
        assert_eq!(c.provider(Provider::Azure).authority, "", "no default host for Azure");
        assert_eq!(c.provider(Provider::Azure).base_path, "/openai/v1");
        let c = Config::parse(
            br#"{"providers": {"bedrock": {"auth": "sigv4"},
                 "azure": {"authority": "acme.openai.azure.com", "api_version": "2024-10-21"}},
                 "models": {"gpt-4o": {"provider": "azure", "deployment": "prod-4o"}}}"#,
        )
        .unwrap();
        assert_eq!(c.provider(Provider::Bedrock).auth, ProviderAuth::SigV4);
        assert!(!c.needs_key(Provider::Bedrock));
        assert_eq!(c.provider(Provider::Azure).base_path, "/openai");
        assert_eq!(c.provider(Provider::Azure).api_version.as_deref(), Some("2024-10-21"));
        assert_eq!(c.models["gpt-4o"].deployment.as_deref(), Some("prod-4o"));
        let bad: [(&[u8], &str); 9] = [
            (br#"{"providers":{"bedrock":{"auth":"iam"}}}"#, "providers.bedrock.auth"),
            (br#"{"models":{"m":{"provider":"openai","model":""}}}"#, "models.m.model: must not be empty"),
            (br#"{"models":{"m":{"provider":"openai","model":" "}}}"#, "models.m.model: must not be empty"),
            (br#"{"providers":{"openai":{"auth":"sigv4"}}}"#, "providers.openai.auth"),
            (br#"{"providers":{"openai":{"api_version":"2024-10-21"}}}"#, "providers.openai.api_version"),
            (br#"{"providers":{"azure":{"authority":"a","api_version":"x&y=1"}}}"#, "providers.azure.api_version"),
            (br#"{"models":{"m":{"provider":"openai","deployment":"d"}}}"#, "models.m.deployment"),
            (br#"{"models":{"m":{"provider":"azure"}}}"#, "providers.azure.authority: required"),
            (
                br#"{"providers":{"azure":{"authority":"a"}},"models":{"m":{"provider":"azure","deployment":"a/b"}}}"#,
                "models.m.deployment",
            ),
        ];
        for (json, needle) in bad {
            let err = Config::parse(json).unwrap_err();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn pricing_takes_models_source_and_the_unknown_model_policy() {
        let c = Config::parse(br#"{}"#).unwrap();
        assert_eq!(c.prices.unknown_model(), UnknownModel::Family);
        assert!(c.pricing_source.is_none());
        let c = Config::parse(
            br#"{"pricing": {"unknown_model": "reject",
                 "models": {"my-model": {"input": 1, "output": 2, "web_search": 10}},
                 "old-style": {"input": 3, "output": 4},
                 "source": {"cluster": "prices", "path": "/v2/data_slim.json", "refresh_interval_seconds": 600}}}"#,
        )
        .unwrap();
        assert_eq!(c.prices.unknown_model(), UnknownModel::Reject);
        assert_eq!(c.prices.lookup("my-model").map(|q| (q.input, q.web_search_per_1k)), Some((1.0, Some(10.0))));
        assert_eq!(c.prices.lookup("old-style").map(|q| q.output), Some(4.0));
        let s = c.pricing_source.unwrap();
        assert_eq!(
            (s.cluster.as_str(), s.authority.as_str(), s.path.as_str()),
            ("prices", "prices", "/v2/data_slim.json")
        );
        assert_eq!((s.interval_ms, s.timeout_ms, s.max_bytes), (600_000, 10_000, 8 * 1024 * 1024));
        let bad: [(&[u8], &str); 7] = [
            (br#"{"pricing":{"unknown_model":"guess"}}"#, "pricing.unknown_model: must be"),
            (br#"{"pricing":{"source":{"path":"/x"}}}"#, "pricing.source: missing field `cluster`"),
            (br#"{"pricing":{"source":{"cluster":"c","url":"x"}}}"#, "pricing.source: unknown field `url`"),
            (br#"{"pricing":{"source":{"cluster":"c","path":"x"}}}"#, "pricing.source.path"),
            (br#"{"pricing":{"source":{"cluster":"c","refresh_interval_seconds":0}}}"#, "refresh_interval_seconds"),
            (
                br#"{"pricing":{"models":{"m":{"input":1,"output":-2}}}}"#,
                "pricing.models.m: prices must be numbers >= 0",
            ),
            (br#"{"pricing":{"models":{"m":{"input":1,"output":2,"cached":1}}}}"#, "pricing.models.m: unknown field"),
        ];
        for (json, needle) in bad {
            let err = Config::parse(json).unwrap_err();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }

    #[test]
    fn raw_keys_and_values_in_errors_are_escaped_to_one_line() {
        let cases: [(&[u8], &str); 7] = [
            (br#"{"providers":{"mistral\nFAKE: line":{}}}"#, r"providers.mistral\nFAKE: line: unknown provider"),
            (br#"{"providers":{"a\u001b[31m\r":{}}}"#, r"providers.a\u{1b}[31m\r: unknown provider"),
            (br#"{"providers":{"a\u2028b":{}}}"#, r"providers.a\u{2028}b: unknown provider"),
            (br#"{"models":{"x\ny":{"provider":"no\npe"}}}"#, r#"models.x\ny.provider: unknown provider "no\npe""#),
            (br#"{"pricing":{"m\r\n":{"input":-1,"output":1}}}"#, r"pricing.m\r\n: prices must be numbers >= 0"),
            (br#"{"prod\ncts":[]}"#, r"unknown field `prod\ncts`"),
            (br#"{"auth":{"a\u0085b":1}}"#, r"unknown field `a\u{85}b`"),
        ];
        for (json, needle) in cases {
            let err = Config::parse(json).unwrap_err();
            assert!(err.contains(needle), "{err:?} should contain {needle:?}");
            assert!(!err.chars().any(breaks_line), "{err:?} is not one line");
        }
        // Ordinary keys read as themselves, unquoted.
        let err = Config::parse(br#"{"pricing":{"my-model.v2":{"input":-1,"output":1}}}"#).unwrap_err();
        assert_eq!(err, "pricing.my-model.v2: prices must be numbers >= 0");
        assert_eq!(one_line("a\tb\u{1b}".into()), r"a\tb\u{1b}");
        assert_eq!(one_line("quotes \"stay\" `as is`".into()), "quotes \"stay\" `as is`");
    }
}
