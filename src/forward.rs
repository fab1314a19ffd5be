//! Where a parsed request goes: provider, cluster, path, credentials, body.

use std::fmt;

use crate::config::Config;
use crate::errors::{ApiError, ErrorKind};
use crate::pipeline::ResponsePlan;
use crate::providers::{self, Provider};
use crate::request::ParsedRequest;
use crate::translate::{self, ResponsesContext, Target, TranslateError};
use crate::wire::Api;
use crate::wire::ProviderWire;

/// A provider key from the VM environment. `Debug` never shows it.
#[derive(Clone, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(value)
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// The gateway's own provider keys, read once from the VM environment.
#[derive(Clone, Debug, Default)]
pub struct ProviderKeys(Vec<(Provider, Secret)>);

impl ProviderKeys {
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let keys = Provider::ALL
            .into_iter()
            .filter_map(|p| lookup(p.key_env_var()).filter(|v| !v.is_empty()).map(|v| (p, Secret::new(v))))
            .collect();
        ProviderKeys(keys)
    }

    pub fn get(&self, p: Provider) -> Option<&Secret> {
        self.0.iter().find(|(q, _)| *q == p).map(|(_, s)| s)
    }
}

/// Client headers that carry credentials; none of them may reach a provider.
pub const CREDENTIAL_HEADERS: [&str; 6] =
    ["authorization", "x-api-key", "x-goog-api-key", "api-key", "cookie", "proxy-authorization"];

/// Everything the adapter needs to send the request upstream.
#[derive(Debug)]
pub struct Upstream {
    pub provider: Provider,
    pub model: String,
    pub authority: String,
    pub base_path: String,
    pub path: String,
    /// Headers to set, replacing any the client sent.
    pub headers: Vec<(String, String)>,
    /// Headers to set only when the client did not.
    pub default_headers: Vec<(&'static str, String)>,
    /// A new body, when the request must change on the way.
    pub body: Option<Vec<u8>>,
    /// The gateway turned on `stream_options.include_usage`; the client did not ask
    /// for the usage chunk, so it must be removed from the response.
    pub strip_usage_chunk: bool,
    /// How the response comes back to the client.
    pub response: ResponsePlan,
}

/// The model route: config's model table first, then the naming conventions.
pub fn resolve_model<'m>(config: &'m Config, model: &'m str) -> Option<(Provider, &'m str)> {
    match config.models.get(model) {
        Some(route) => Some((route.provider, route.upstream_model.as_deref().unwrap_or(model))),
        None => providers::infer(model),
    }
}

/// The client header that picks Bedrock for Anthropic models (the reference gateway's).
pub const PROVIDER_HEADER: &str = "x-posthog-provider";

/// Decides how a parsed request goes upstream: which provider and model
/// ([`route`]), in which wire format ([`provider_wire`]), at which path with
/// which headers ([`upstream_path`], [`upstream_headers`]), with which body
/// ([`upstream_body`]), and how the response comes back.
pub fn plan(
    config: &Config,
    keys: &ProviderKeys,
    api: Api,
    req: &ParsedRequest,
    body: &[u8],
    provider_header: Option<&str>,
) -> Result<Upstream, ApiError> {
    let requested = req.model.as_ref();
    let (provider, model) = route(config, requested, provider_header)?;
    plan_target(config, keys, api, req, body, provider, model)
}

/// [`plan`] for a given provider and model (a failover chain's target).
pub fn plan_target(
    config: &Config,
    keys: &ProviderKeys,
    api: Api,
    req: &ParsedRequest,
    body: &[u8],
    provider: Provider,
    model: &str,
) -> Result<Upstream, ApiError> {
    let requested = req.model.as_ref();
    let wire = provider_wire(api, provider);
    let key = keys.get(provider).ok_or_else(|| {
        ApiError::new(ErrorKind::Internal, format!("The gateway has no API key configured for {provider}"))
            .code("provider_not_configured")
    })?;
    let settings = config.provider(provider);
    let path = upstream_path(wire, &settings.base_path, model, req.stream);
    let headers = upstream_headers(config, provider, key, &path);
    let default_headers = match provider {
        Provider::Anthropic => vec![("anthropic-version", config.anthropic_version.clone())],
        _ => Vec::new(),
    };
    // OpenAI-format streams carry usage only when asked; ask, and hide the answer
    // from a client that did not (PROTOCOLS.md A, `include_usage`).
    let strip_usage_chunk = is_native(api, wire) && api == Api::Chat && req.stream && req.include_usage != Some(true);
    let new_body = upstream_body(api, wire, &Target::new(provider, model), req, body, strip_usage_chunk)?;
    let responses =
        (api == Api::Responses && !is_native(api, wire)).then(|| ResponsesContext::from_request(&req.fields));
    Ok(Upstream {
        provider,
        model: model.to_string(),
        authority: settings.authority.clone(),
        base_path: settings.base_path.clone(),
        path,
        headers,
        default_headers,
        body: new_body,
        strip_usage_chunk,
        response: ResponsePlan {
            client: api,
            provider: wire,
            requested_model: requested.to_string(),
            client_wants_usage: req.include_usage == Some(true),
            strip_usage_chunk,
            responses,
        },
    })
}

/// The provider and the model name it gets: the configuration's model table or
/// the naming conventions, and the provider header's Bedrock choice.
pub fn route<'m>(
    config: &'m Config,
    requested: &'m str,
    provider_header: Option<&str>,
) -> Result<(Provider, &'m str), ApiError> {
    let (provider, model) = resolve_model(config, requested).ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            format!(
                "Unknown model '{}': no provider serves it (configure it under `models`)",
                crate::routes::truncate(requested, 128)
            ),
        )
        .param("model")
        .code("model_not_found")
    })?;
    if provider != Provider::Anthropic || !provider_header.is_some_and(|h| h.eq_ignore_ascii_case("bedrock")) {
        return Ok((provider, model));
    }
    let id = providers::bedrock_id(model).ok_or_else(|| {
        ApiError::new(
            ErrorKind::InvalidRequest,
            format!(
                "No Bedrock model id is known for '{}'; send a Bedrock model id or map it under `models`",
                crate::routes::truncate(requested, 128)
            ),
        )
        .param("model")
    })?;
    Ok((Provider::Bedrock, id))
}

/// The format the provider speaks for a client API: OpenAI serves each API
/// natively; Gemini is reached through its OpenAI-compatible Chat endpoint,
/// Anthropic and Bedrock through Messages.
pub fn provider_wire(api: Api, provider: Provider) -> ProviderWire {
    match (api, provider) {
        (Api::Responses, Provider::OpenAi) => ProviderWire::OpenAiResponses,
        (_, Provider::OpenAi) => ProviderWire::OpenAiChat,
        (_, Provider::Gemini) => ProviderWire::GeminiChat,
        (_, Provider::Anthropic) => ProviderWire::Anthropic,
        (_, Provider::Bedrock) => ProviderWire::Bedrock,
    }
}

/// The body goes as the client sent it, save the model name and `stream_options`.
/// Bedrock takes Messages bodies, but its own variant of them.
fn is_native(api: Api, wire: ProviderWire) -> bool {
    wire.api() == api && wire != ProviderWire::Bedrock
}

/// The provider's path for the wire (Bedrock's names the model and the operation).
pub fn upstream_path(wire: ProviderWire, base_path: &str, model: &str, stream: bool) -> String {
    match wire {
        ProviderWire::OpenAiChat | ProviderWire::GeminiChat => format!("{base_path}/chat/completions"),
        ProviderWire::OpenAiResponses => format!("{base_path}/responses"),
        ProviderWire::Anthropic => format!("{base_path}/messages"),
        ProviderWire::Bedrock => crate::bedrock::invoke_path(model, stream),
    }
}

/// Headers that replace the client's: route, authority, path, timeout, the gateway's key.
fn upstream_headers(config: &Config, provider: Provider, key: &Secret, path: &str) -> Vec<(String, String)> {
    let settings = config.provider(provider);
    let auth = match provider {
        Provider::Anthropic => ("x-api-key", key.expose().to_string()),
        _ => ("authorization", format!("Bearer {}", key.expose())),
    };
    vec![
        // Usage is read from the response as it passes: ask for it uncompressed.
        ("accept-encoding".into(), "identity".into()),
        (config.route_header.clone(), settings.cluster.clone()),
        (":authority".into(), settings.authority.clone()),
        (":path".into(), path.to_owned()),
        ("x-envoy-upstream-rq-timeout-ms".into(), settings.timeout_ms.to_string()),
        (auth.0.into(), auth.1),
    ]
}

/// The body to send instead of the client's, if it must change: the model
/// renamed and usage asked for on native routes, translated otherwise.
fn upstream_body(
    api: Api,
    wire: ProviderWire,
    target: &Target,
    req: &ParsedRequest,
    body: &[u8],
    strip_usage_chunk: bool,
) -> Result<Option<Vec<u8>>, ApiError> {
    if is_native(api, wire) {
        let mut set = Vec::new();
        if target.model != req.model.as_ref() {
            set.push(("model", json_string(target.model)));
        }
        if strip_usage_chunk {
            set.push(("stream_options", with_include_usage(req.fields.get("stream_options").map(|r| r.get()))));
        }
        return Ok((!set.is_empty()).then(|| req.fields.rewrite(&set, &[])));
    }
    let to_bedrock = |messages: Vec<u8>| crate::bedrock::messages_to_bedrock_body(&messages);
    let translated = match (api, wire) {
        (Api::Chat, ProviderWire::Bedrock) => translate::chat_request_to_messages(body, target).and_then(to_bedrock),
        (Api::Chat, _) => translate::chat_request_to_messages(body, target),
        (Api::Messages, ProviderWire::Bedrock) => crate::bedrock::messages_to_bedrock_body(body),
        (Api::Messages, _) => translate::messages_request_to_chat(body, target),
        (Api::Responses, ProviderWire::Bedrock) => {
            translate::responses_request_to_messages(body, target).and_then(to_bedrock)
        }
        (Api::Responses, ProviderWire::Anthropic) => translate::responses_request_to_messages(body, target),
        (Api::Responses, _) => translate::responses_request_to_chat(body, target),
    };
    translated.map(Some).map_err(|e| {
        let code = match e {
            TranslateError::Unsupported(_) => "unsupported_for_provider",
            TranslateError::Invalid(_) => "invalid_request",
        };
        ApiError::new(ErrorKind::InvalidRequest, e.message().to_string()).code(code)
    })
}

/// `stream_options` with `include_usage: true`, keeping the client's other options.
fn with_include_usage(existing: Option<&str>) -> String {
    let mut options = existing
        .and_then(|raw| serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(raw).ok())
        .unwrap_or_default();
    options.insert("include_usage".into(), true.into());
    serde_json::Value::Object(options).to_string()
}

fn json_string(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse;

    fn keys() -> ProviderKeys {
        ProviderKeys::from_env(|name| Some(format!("key-for-{name}")))
    }

    fn run(c: &Config, ep: Api, body: &[u8], provider_header: Option<&str>) -> Result<Upstream, ApiError> {
        plan(c, &keys(), ep, &parse(body, ep).unwrap(), body, provider_header)
    }

    fn header<'a>(u: &'a Upstream, name: &str) -> &'a str {
        u.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap()
    }

    #[test]
    fn openai_chat() {
        let c = Config::parse(b"{}").unwrap();
        let body = br#"{"model":"gpt-4o","messages":[]}"#;
        let u = run(&c, Api::Chat, body, None).unwrap();
        assert_eq!(u.provider, Provider::OpenAi);
        assert_eq!(header(&u, ":path"), "/v1/chat/completions");
        assert_eq!(header(&u, "x-llm-gateway-cluster"), "openai");
        assert_eq!(header(&u, "authorization"), "Bearer key-for-LLM_GATEWAY_OPENAI_API_KEY");
        assert!(u.body.is_none());
    }

    #[test]
    fn gemini_prefix_rewrites_model_and_path() {
        let c = Config::parse(b"{}").unwrap();
        let body = br#"{"model":"gemini/gemini-2.5-flash","messages":[]}"#;
        let u = run(&c, Api::Chat, body, None).unwrap();
        assert_eq!(header(&u, ":path"), "/v1beta/openai/chat/completions");
        assert_eq!(header(&u, ":authority"), "generativelanguage.googleapis.com");
        assert_eq!(u.body.as_deref(), Some(&br#"{"model":"gemini-2.5-flash","messages":[]}"#[..]));
    }

    #[test]
    fn anthropic_uses_x_api_key_and_version_default() {
        let c = Config::parse(br#"{"models":{"fast":{"provider":"anthropic","model":"claude-haiku-4-5"}}}"#).unwrap();
        let body = br#"{"model":"fast","messages":[],"max_tokens":5}"#;
        let u = run(&c, Api::Messages, body, None).unwrap();
        assert_eq!(u.model, "claude-haiku-4-5");
        assert_eq!(header(&u, "x-api-key"), "key-for-LLM_GATEWAY_ANTHROPIC_API_KEY");
        assert_eq!(u.default_headers, vec![("anthropic-version", "2023-06-01".to_string())]);
    }

    #[test]
    fn unsupported_combinations_name_what_is_supported() {
        let c = Config::parse(b"{}").unwrap();
        for (ep, model, needle) in [
            (Api::Messages, "llama-3", "Unknown model"),
            (Api::Responses, "claude-sonnet-4-5", "'previous_response_id' is not supported for anthropic models"),
            (Api::Responses, "gemini-2.5-flash", "'previous_response_id' is not supported for gemini models"),
        ] {
            let body = format!(r#"{{"model":"{model}","messages":[],"input":"x","previous_response_id":"resp_1"}}"#);
            let e = run(&c, ep, body.as_bytes(), None).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.message.contains(needle), "{}", e.message);
        }
        let body = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"x"}],"n":2}"#;
        let e = run(&c, Api::Chat, body, None).unwrap_err();
        assert!(e.message.contains("n"), "{}", e.message);
    }

    #[test]
    fn translated_routes() {
        let c = Config::parse(b"{}").unwrap();
        let body = br#"{"model":"claude-sonnet-4-5","messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}]}"#;
        let u = run(&c, Api::Chat, body, None).unwrap();
        assert_eq!(header(&u, ":path"), "/v1/messages");
        assert_eq!(u.response.provider, ProviderWire::Anthropic);
        let sent: serde_json::Value = serde_json::from_slice(u.body.as_deref().unwrap()).unwrap();
        assert_eq!(sent["system"], "s");
        assert_eq!(sent["max_tokens"], 32000, "the model's maximum, at most 32000, when the client set none");

        let body = br#"{"model":"gpt-4o","max_tokens":9,"stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
        let u = run(&c, Api::Messages, body, None).unwrap();
        assert_eq!(header(&u, ":path"), "/v1/chat/completions");
        assert!(!u.strip_usage_chunk, "the translator emits usage the Anthropic client expects");
        let sent: serde_json::Value = serde_json::from_slice(u.body.as_deref().unwrap()).unwrap();
        assert_eq!(sent["stream_options"]["include_usage"], true);
    }

    #[test]
    fn responses_for_every_provider() {
        let c = Config::parse(b"{}").unwrap();
        let body = br#"{"model":"MODEL","input":"hi","stream":true,"tools":[{"type":"custom","name":"apply_patch"}]}"#;
        let cases = [
            ("gpt-4o", None, "/v1/responses", ProviderWire::OpenAiResponses),
            ("claude-sonnet-4-5", None, "/v1/messages", ProviderWire::Anthropic),
            ("gemini-2.5-flash", None, "/v1beta/openai/chat/completions", ProviderWire::GeminiChat),
            (
                "claude-sonnet-4-5",
                Some("bedrock"),
                "/model/global.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream",
                ProviderWire::Bedrock,
            ),
        ];
        for (model, provider_header, path, wire) in cases {
            let body = String::from_utf8_lossy(body).replace("MODEL", model);
            let u = run(&c, Api::Responses, body.as_bytes(), provider_header).unwrap();
            assert_eq!((header(&u, ":path"), u.response.provider), (path, wire), "{model}");
            let translated = wire != ProviderWire::OpenAiResponses;
            assert_eq!(u.body.is_some(), translated, "{model}");
            assert_eq!(u.response.responses.is_some(), translated, "{model}");
            if let Some(ctx) = &u.response.responses {
                assert_eq!(ctx.custom_tools, ["apply_patch"]);
            }
        }
    }

    #[test]
    fn bedrock_by_id_or_by_header() {
        let c = Config::parse(b"{}").unwrap();
        let body =
            br#"{"model":"us.anthropic.claude-sonnet-4-5-20250929-v1:0","max_tokens":5,"stream":true,"messages":[]}"#;
        let u = run(&c, Api::Messages, body, None).unwrap();
        assert_eq!(u.provider, Provider::Bedrock);
        assert_eq!(
            header(&u, ":path"),
            "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
        );
        assert_eq!(header(&u, "authorization"), "Bearer key-for-LLM_GATEWAY_BEDROCK_API_KEY");
        let sent: serde_json::Value = serde_json::from_slice(u.body.as_deref().unwrap()).unwrap();
        assert_eq!(sent["anthropic_version"], "bedrock-2023-05-31");
        assert!(sent.get("model").is_none());

        let body = br#"{"model":"claude-sonnet-4-5-20250929","max_tokens":5,"messages":[]}"#;
        let u = run(&c, Api::Messages, body, Some("bedrock")).unwrap();
        assert_eq!(header(&u, ":path"), "/model/global.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke");
        let e = run(&c, Api::Messages, br#"{"model":"claude-unknown-9","messages":[]}"#, Some("bedrock")).unwrap_err();
        assert!(e.message.contains("No Bedrock model id"), "{}", e.message);
    }

    #[test]
    fn include_usage_is_turned_on_for_chat_streams_that_did_not_ask() {
        let c = Config::parse(b"{}").unwrap();
        let ep = Api::Chat;
        let body = br#"{"model":"gpt-4o","messages":[],"stream":true,"stream_options":{"include_obfuscation":false}}"#;
        let u = run(&c, ep, body, None).unwrap();
        assert!(u.strip_usage_chunk);
        let sent: serde_json::Value = serde_json::from_slice(u.body.as_deref().unwrap()).unwrap();
        assert_eq!(sent["stream_options"], serde_json::json!({"include_obfuscation": false, "include_usage": true}));
        for body in [
            &br#"{"model":"gpt-4o","messages":[],"stream":true,"stream_options":{"include_usage":true}}"#[..],
            br#"{"model":"gpt-4o","messages":[]}"#,
        ] {
            let u = run(&c, ep, body, None).unwrap();
            assert!(!u.strip_usage_chunk);
            assert!(u.body.is_none());
        }
    }

    #[test]
    fn missing_key_is_a_server_error() {
        let c = Config::parse(b"{}").unwrap();
        let body = br#"{"model":"gpt-4o","messages":[]}"#;
        let req = parse(body, Api::Chat).unwrap();
        let e = plan(&c, &ProviderKeys::default(), Api::Chat, &req, body, None).unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(format!("{:?}", keys()).contains("Secret(..)"));
        assert!(!format!("{:?}", keys()).contains("key-for"));
    }
}
