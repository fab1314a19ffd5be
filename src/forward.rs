//! Where a parsed request goes: provider, cluster, path, credentials, body.

use std::rc::Rc;

use crate::config::{Config, ProviderSettings};
use crate::errors::{ApiError, ErrorKind};
use crate::keys::{KeyPool, KeyUse, Picked, Secret};
use crate::pipeline::ResponsePlan;
use crate::providers::{self, Provider};
use crate::request::ParsedRequest;
use crate::translate::{self, ResponsesContext, Target, TranslateError};
use crate::wire::header_pairs::Headers;
use crate::wire::Api;
use crate::wire::ProviderWire;

/// The gateway's own provider keys, read once from the VM environment: per
/// provider a pool of one or more keys, used in turn (`crate::keys`).
#[derive(Clone, Debug, Default)]
pub struct ProviderKeys(Vec<KeyPool>);

impl ProviderKeys {
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let pools =
            Provider::ALL.into_iter().filter_map(|p| lookup(p.key_env_var()).and_then(|v| KeyPool::parse(p, &v)));
        ProviderKeys(pools.collect())
    }

    /// The provider's pool, when the gateway holds a key for it.
    pub fn pool(&self, p: Provider) -> Option<&KeyPool> {
        self.0.iter().find(|pool| pool.provider() == p)
    }

    /// The provider's first key, when the gateway holds one.
    pub fn get(&self, p: Provider) -> Option<&Secret> {
        self.pool(p).and_then(KeyPool::first)
    }

    /// The provider's next key in turn (see `crate::keys`).
    pub fn pick(&self, p: Provider, now_ms: u64) -> Option<Picked<'_>> {
        self.pool(p).and_then(|pool| pool.pick(now_ms))
    }

    /// Rests the key a call used for `rest_ms` (its 429's `Retry-After`).
    pub fn rest(&self, key: KeyUse, now_ms: u64, rest_ms: u64) {
        if let Some(pool) = self.pool(key.provider) {
            pool.rest(key.index, now_ms, rest_ms);
        }
    }
}

/// Client headers that carry credentials; none of them may reach a provider.
pub const CREDENTIAL_HEADERS: [&str; 7] = [
    "authorization",
    "x-api-key",
    "x-goog-api-key",
    "api-key",
    "cookie",
    "proxy-authorization",
    "x-amz-security-token",
];

/// A client request header the filter removes as soon as it arrives, whatever
/// the provider: credentials (the gateway authenticates upstream with its own
/// key), the routing header (only the filter picks the cluster), `x-envoy-*`
/// (they steer Envoy's router: timeouts, retries that would bill a call twice).
/// `content-length` stays: a body the gateway rewrites gets its new length
/// when it is replaced, and any other goes with the length the client gave it.
/// Names are lowercase.
pub fn dropped_on_arrival(name: &str, route_header: &str) -> bool {
    CREDENTIAL_HEADERS.contains(&name) || name == route_header || name.starts_with("x-envoy-")
}

/// Whether a client header goes on to `provider`. Each API family's headers go
/// only to that family's own API, and never across a translation: `anthropic-*`
/// (`anthropic-version`, `anthropic-beta`) to Anthropic on the Messages API,
/// `openai-*` (`openai-organization`, `openai-project`, `openai-beta`) to OpenAI
/// on its own formats. Bedrock takes none of Anthropic's headers (its version is
/// in the body). Google and AWS headers (`x-goog-*`, `x-amz-*`, `x-amzn-*`) may
/// carry credentials or pick a billing project: never forwarded. The gateway's
/// directives (`x-posthog-*`) stop here. Everything else (content type, user agent,
/// the SDKs' `x-stainless-*`, tracing headers) goes to every provider.
pub fn forwards_client_header(name: &str, provider: Provider, translated: bool) -> bool {
    if let Some(family) = ["anthropic-", "openai-"].into_iter().find(|f| name.starts_with(f)) {
        let own = match family {
            "anthropic-" => Provider::Anthropic,
            _ => Provider::OpenAi,
        };
        return provider == own && !translated;
    }
    !["x-goog-", "x-amz-", "x-amzn-", "x-posthog-"].iter().any(|p| name.starts_with(p))
}

/// Everything the adapter needs to send the request upstream.
#[derive(Debug)]
pub struct Upstream {
    pub provider: Provider,
    pub model: String,
    /// The provider's settings: its authority, base path and the headers every call sets.
    pub settings: Rc<ProviderSettings>,
    pub path: String,
    /// The gateway key's header, when the call carries one.
    pub auth: Option<(&'static str, String)>,
    /// Headers to set only when the client did not.
    pub default_headers: Vec<(&'static str, String)>,
    /// A new body, when the request must change on the way.
    pub body: Option<Vec<u8>>,
    /// The gateway key the call uses (none when Envoy signs it): a 429 rests it.
    pub key: Option<KeyUse>,
    /// Every key of the provider rests; `key` is the one resting least.
    pub all_keys_resting: bool,
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
#[allow(clippy::too_many_arguments)]
pub fn plan(
    config: &Config,
    keys: &ProviderKeys,
    now_ms: u64,
    api: Api,
    req: &ParsedRequest,
    body: &[u8],
    provider_header: Option<&str>,
) -> Result<Upstream, ApiError> {
    let requested = req.model.as_ref();
    let (provider, model) = route(config, requested, provider_header)?;
    plan_target(config, keys, now_ms, api, req, body, provider, model)
}

/// [`plan`] for a given provider and model (a failover chain's target).
#[allow(clippy::too_many_arguments)]
pub fn plan_target(
    config: &Config,
    keys: &ProviderKeys,
    now_ms: u64,
    api: Api,
    req: &ParsedRequest,
    body: &[u8],
    provider: Provider,
    model: &str,
) -> Result<Upstream, ApiError> {
    let requested = req.model.as_ref();
    let wire = provider_wire(api, provider);
    let not_configured = |what: &str| {
        ApiError::new(ErrorKind::Internal, format!("The gateway has no {what} configured for {provider}"))
            .code("provider_not_configured")
    };
    let picked = match config.needs_key(provider) {
        true => Some(keys.pick(provider, now_ms).ok_or_else(|| not_configured("API key"))?),
        false => None,
    };
    let settings = config.provider(provider);
    if settings.authority.is_empty() {
        return Err(not_configured("host (providers.azure.authority)"));
    }
    // Azure names the model by its deployment: in the path or the body's `model`.
    let wire_model = deployment(config, provider, requested, model);
    let path = provider_path(config, provider, wire, wire_model, req.stream);
    let auth = picked.as_ref().map(|p| auth_header(provider, p.secret));
    let default_headers = match provider {
        Provider::Anthropic => vec![("anthropic-version", config.anthropic_version.clone())],
        _ => Vec::new(),
    };
    // OpenAI-format streams carry usage only when asked; ask, and hide the answer
    // from a client that did not (docs/protocols/openai-chat.md, `include_usage`).
    let strip_usage_chunk = is_native(api, wire) && api == Api::Chat && req.stream && req.include_usage != Some(true);
    let (new_body, responses) = upstream_body(api, wire, (provider, wire_model, model), req, body, strip_usage_chunk)?;
    Ok(Upstream {
        provider,
        model: model.to_string(),
        settings: Rc::clone(settings),
        path,
        auth,
        default_headers,
        body: new_body,
        key: picked.as_ref().map(|p| p.key),
        all_keys_resting: picked.is_some_and(|p| p.all_resting),
        strip_usage_chunk,
        response: ResponsePlan {
            client: api,
            provider: wire,
            requested_model: requested.to_string(),
            client_wants_usage: req.include_usage == Some(true),
            strip_usage_chunk,
            responses,
            keep_output_text: config.capture.as_ref().is_some_and(|c| c.content),
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
        (Api::Responses, Provider::Azure) => ProviderWire::OpenAiResponses,
        (_, Provider::OpenAi | Provider::Azure) => ProviderWire::OpenAiChat,
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

/// The name the provider knows the model by: Azure's deployment (the model
/// table's `deployment`, else the model's name); the model for the others.
pub fn deployment<'m>(config: &'m Config, provider: Provider, requested: &str, model: &'m str) -> &'m str {
    match provider {
        Provider::Azure => config.models.get(requested).and_then(|r| r.deployment.as_deref()).unwrap_or(model),
        _ => model,
    }
}

/// The provider's path: [`upstream_path`], or Azure's deployment-based paths
/// when `providers.azure.api_version` is set (its Responses API is not per
/// deployment: the deployment goes in the body's `model`).
pub fn provider_path(config: &Config, provider: Provider, wire: ProviderWire, model: &str, stream: bool) -> String {
    let settings = config.provider(provider);
    match (&settings.api_version, wire) {
        (Some(version), ProviderWire::OpenAiResponses) if provider == Provider::Azure => {
            format!("{}/responses?api-version={version}", settings.base_path)
        }
        (Some(version), _) if provider == Provider::Azure => {
            format!("{}/deployments/{model}/chat/completions?api-version={version}", settings.base_path)
        }
        _ => upstream_path(wire, &settings.base_path, model, stream),
    }
}

/// The provider's auth header carrying `key`: Anthropic's `x-api-key`, Azure's
/// `api-key`, a Bearer token for the others.
pub fn auth_header(provider: Provider, key: &Secret) -> (&'static str, String) {
    match provider {
        Provider::Anthropic => ("x-api-key", key.expose().to_string()),
        Provider::Azure => ("api-key", key.expose().to_string()),
        _ => ("authorization", format!("Bearer {}", key.expose())),
    }
}

/// The body to send instead of the client's, if it must change: the model
/// renamed and usage asked for on native routes, translated otherwise; and a
/// translated Responses request's context, which its answer needs. The target
/// comes as its provider, the model's name on its wire, and the model.
fn upstream_body(
    api: Api,
    wire: ProviderWire,
    (provider, wire_model, model): (Provider, &str, &str),
    req: &ParsedRequest,
    body: &[u8],
    strip_usage_chunk: bool,
) -> Result<(Option<Vec<u8>>, Option<ResponsesContext>), ApiError> {
    if is_native(api, wire) {
        let mut set = Vec::new();
        if wire_model != req.model.as_ref() {
            set.push(("model", crate::wire::json::quoted(wire_model)));
        }
        if strip_usage_chunk {
            set.push(("stream_options", with_include_usage(req.fields.get("stream_options").map(|r| r.get()))));
        }
        return Ok(((!set.is_empty()).then(|| req.fields.rewrite(&set, &[])), None));
    }
    // Only a translation reads the model's limits from the catalog.
    let target = &Target::named(provider, wire_model, model);
    let to_bedrock = |messages: Vec<u8>| crate::bedrock::messages_to_bedrock_body(&messages);
    // Only a translated Responses request has a context for its answer.
    let none = |body| (body, None);
    let some = |(body, context)| (body, Some(context));
    // The translators read the members `request::parse` lexed, not the body again.
    let (fields, len) = (&req.fields, body.len());
    let translated = match (api, wire) {
        (Api::Chat, ProviderWire::Bedrock) => {
            translate::chat_request_to_messages_lexed(fields, len, target).and_then(to_bedrock).map(none)
        }
        (Api::Chat, _) => translate::chat_request_to_messages_lexed(fields, len, target).map(none),
        (Api::Messages, ProviderWire::Bedrock) => crate::bedrock::messages_to_bedrock_body(body).map(none),
        (Api::Messages, _) => translate::messages_request_to_chat_lexed(fields, len, target).map(none),
        (Api::Responses, ProviderWire::Bedrock) => translate::responses_request_to_messages_lexed(fields, len, target)
            .and_then(|(messages, context)| to_bedrock(messages).map(|body| some((body, context)))),
        (Api::Responses, ProviderWire::Anthropic) => {
            translate::responses_request_to_messages_lexed(fields, len, target).map(some)
        }
        (Api::Responses, _) => translate::responses_request_to_chat_lexed(fields, len, target).map(some),
    };
    translated.map(|(body, context)| (Some(body), context)).map_err(|e| {
        let code = match e {
            TranslateError::Unsupported(_) => "unsupported_for_provider",
            TranslateError::Invalid(_) => "invalid_request",
        };
        ApiError::new(ErrorKind::InvalidRequest, e.message().to_string()).code(code)
    })
}

impl Upstream {
    /// The headers that replace the client's: the provider's fixed ones (encoding,
    /// route, authority, timeout), the path, and the gateway's key (none when Envoy signs).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        let fixed = self.settings.fixed_headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
        let auth = self.auth.as_ref().map(|(k, v)| (*k, v.as_str()));
        fixed.chain(std::iter::once((":path", self.path.as_str()))).chain(auth)
    }

    /// Where the call goes, as the event's `$ai_base_url` names it.
    pub fn base_url(&self) -> String {
        format!("https://{}{}", self.settings.authority, self.settings.base_path)
    }

    /// The request header changes that turn the client's headers (lowercase names, as
    /// they arrived less [`dropped_on_arrival`]) into the provider's: `(name, None)`
    /// removes, `(name, Some(value))` sets. The client's headers of another API family
    /// go ([`forwards_client_header`]); the gateway's own are set (a `:path` or
    /// `:authority` the client already sent as it must go is left); a default
    /// (Anthropic's `anthropic-version`) only where the client's own is not forwarded.
    pub fn header_edits<'a>(&'a self, client: &'a Headers) -> Vec<(&'a str, Option<&'a str>)> {
        let translated = self.response.translated();
        let forwarded = |name: &str| !name.starts_with(':') && forwards_client_header(name, self.provider, translated);
        let mut edits: Vec<(&str, Option<&str>)> = Vec::new();
        for (name, _) in client.iter() {
            if !name.starts_with(':') && !forwarded(name) && !edits.iter().any(|(n, _)| *n == name) {
                edits.push((name, None));
            }
        }
        for (name, value) in self.headers() {
            // A pseudo-header (never removed on arrival) that already says it costs no hostcall.
            let unchanged = name.starts_with(':') && client.iter().any(|(k, v)| k == name && v == value);
            if !unchanged {
                edits.push((name, Some(value)));
            }
        }
        for (name, value) in &self.default_headers {
            if !client.iter().any(|(k, _)| k == *name && forwarded(k)) {
                edits.push((name, Some(value.as_str())));
            }
        }
        edits
    }
}

/// `stream_options` with `include_usage: true`, keeping the client's other options.
fn with_include_usage(existing: Option<&str>) -> String {
    let Some(existing) = existing else {
        return r#"{"include_usage":true}"#.to_string();
    };
    let mut options = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(existing).unwrap_or_default();
    options.insert("include_usage".into(), true.into());
    serde_json::Value::Object(options).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::parse;

    fn keys() -> ProviderKeys {
        ProviderKeys::from_env(|name| Some(format!("key-for-{name}")))
    }

    fn run(c: &Config, ep: Api, body: &[u8], provider_header: Option<&str>) -> Result<Upstream, ApiError> {
        plan(c, &keys(), 0, ep, &parse(body, ep).unwrap(), body, provider_header)
    }

    fn header<'a>(u: &'a Upstream, name: &str) -> &'a str {
        u.headers().find(|(k, _)| *k == name).map(|(_, v)| v).unwrap()
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
        assert_eq!(e.status(), 400);
        assert_eq!(e.message, "'n' greater than 1 is not supported for Anthropic models (one choice per request)");
        assert_eq!(e.code, Some("unsupported_for_provider"));
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

    const AZURE: &[u8] = br#"{"providers": {"azure": {"authority": "acme.openai.azure.com"}},
        "models": {"gpt-4o": {"provider": "azure", "deployment": "prod-4o"},
                   "fast": {"provider": "azure", "model": "gpt-4o-mini"}}}"#;

    #[test]
    fn azure_v1_names_the_deployment_in_the_body_and_sends_api_key() {
        let c = Config::parse(AZURE).unwrap();
        let u = run(&c, Api::Chat, br#"{"model":"gpt-4o","messages":[]}"#, None).unwrap();
        assert_eq!((u.provider, u.model.as_str()), (Provider::Azure, "gpt-4o"), "priced as the model");
        assert_eq!(header(&u, ":path"), "/openai/v1/chat/completions");
        assert_eq!(header(&u, ":authority"), "acme.openai.azure.com");
        assert_eq!(header(&u, "api-key"), "key-for-LLM_GATEWAY_AZURE_API_KEY");
        assert!(u.headers().all(|(k, _)| k != "authorization"));
        assert_eq!(u.response.provider, ProviderWire::OpenAiChat);
        assert_eq!(u.body.as_deref(), Some(&br#"{"model":"prod-4o","messages":[]}"#[..]));
        let u = run(&c, Api::Responses, br#"{"model":"fast","input":"hi"}"#, None).unwrap();
        assert_eq!((header(&u, ":path"), u.response.provider), ("/openai/v1/responses", ProviderWire::OpenAiResponses));
        assert_eq!(u.body.as_deref(), Some(&br#"{"model":"gpt-4o-mini","input":"hi"}"#[..]));
        // A Messages client is translated to Chat, within the model's output limit.
        let body = br#"{"model":"gpt-4o","max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}"#;
        let u = run(&c, Api::Messages, body, None).unwrap();
        let sent: serde_json::Value = serde_json::from_slice(u.body.as_deref().unwrap()).unwrap();
        assert_eq!((sent["model"].as_str(), sent["max_completion_tokens"].as_u64()), (Some("prod-4o"), Some(16384)));
        // OpenAI's own headers are not Azure's.
        assert!(!forwards_client_header("openai-organization", Provider::Azure, false));
        // `azure/<deployment>` needs no model table.
        let u = run(&c, Api::Chat, br#"{"model":"azure/gpt-4.1","messages":[]}"#, None).unwrap();
        assert_eq!((u.provider, u.model.as_str()), (Provider::Azure, "gpt-4.1"));
    }

    #[test]
    fn azure_deployment_paths_with_an_api_version() {
        let mut config: serde_json::Value = serde_json::from_slice(AZURE).unwrap();
        config["providers"]["azure"]["api_version"] = "2025-04-01-preview".into();
        let c = Config::parse(config.to_string().as_bytes()).unwrap();
        let u = run(&c, Api::Chat, br#"{"model":"gpt-4o","messages":[],"stream":true}"#, None).unwrap();
        assert_eq!(header(&u, ":path"), "/openai/deployments/prod-4o/chat/completions?api-version=2025-04-01-preview");
        assert_eq!(u.settings.base_path, "/openai");
        // Azure's Responses API is not per deployment: the deployment is the body's model.
        let u = run(&c, Api::Responses, br#"{"model":"gpt-4o","input":"hi"}"#, None).unwrap();
        assert_eq!(header(&u, ":path"), "/openai/responses?api-version=2025-04-01-preview");
        assert_eq!(u.body.as_deref(), Some(&br#"{"model":"prod-4o","input":"hi"}"#[..]));
    }

    #[test]
    fn azure_without_a_host_is_a_server_error() {
        let c = Config::parse(b"{}").unwrap();
        let e = run(&c, Api::Chat, br#"{"model":"azure/gpt-4o","messages":[]}"#, None).unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(e.message.contains("providers.azure.authority"), "{}", e.message);
    }

    #[test]
    fn bedrock_signed_by_envoy_gets_no_key() {
        let c = Config::parse(br#"{"providers": {"bedrock": {"auth": "sigv4"}}}"#).unwrap();
        let body = br#"{"model":"us.anthropic.claude-sonnet-4-5-20250929-v1:0","max_tokens":5,"messages":[]}"#;
        let req = parse(body, Api::Messages).unwrap();
        let u = plan(&c, &ProviderKeys::default(), 0, Api::Messages, &req, body, None).unwrap();
        assert!(u.headers().all(|(k, _)| k != "authorization"), "{:?}", u.headers().collect::<Vec<_>>());
        assert_eq!(header(&u, ":authority"), "bedrock-runtime.us-east-1.amazonaws.com");
        assert_eq!(u.key, None);
        // Other providers still need their keys.
        let body = br#"{"model":"gpt-4o","messages":[]}"#;
        let req = parse(body, Api::Chat).unwrap();
        assert_eq!(plan(&c, &ProviderKeys::default(), 0, Api::Chat, &req, body, None).unwrap_err().status(), 500);
    }

    #[test]
    fn the_answer_text_is_kept_only_when_the_event_carries_content() {
        let body = br#"{"model":"gpt-4o","messages":[]}"#;
        let req = parse(body, Api::Chat).unwrap();
        for (config, keep) in [
            ("{}", false),
            (r#"{"capture": {"region_url": "https://us.posthog.com", "primary": {"api_key": "phc_x"}}}"#, true),
            (
                r#"{"capture": {"region_url": "https://us.posthog.com", "primary": {"api_key": "phc_x"}, "content": false}}"#,
                false,
            ),
        ] {
            let c = Config::parse(config.as_bytes()).unwrap();
            let keys = ProviderKeys::from_env(|_| Some("k".into()));
            let u = plan(&c, &keys, 0, Api::Chat, &req, body, None).unwrap();
            assert_eq!(u.response.keep_output_text, keep, "{config}");
        }
    }

    #[test]
    fn each_plan_takes_the_next_key_of_the_pool() {
        let c = Config::parse(b"{}").unwrap();
        let keys = ProviderKeys::from_env(|v| (v == "LLM_GATEWAY_ANTHROPIC_API_KEY").then(|| "ka,kb".to_string()));
        let body = br#"{"model":"claude-haiku-4-5","max_tokens":5,"messages":[]}"#;
        let req = parse(body, Api::Messages).unwrap();
        let mut sent = Vec::new();
        for _ in 0..3 {
            let u = plan(&c, &keys, 0, Api::Messages, &req, body, None).unwrap();
            sent.push((header(&u, "x-api-key").to_string(), u.key.map(|k| k.index)));
        }
        assert_eq!(sent, [("ka".into(), Some(0)), ("kb".into(), Some(1)), ("ka".into(), Some(0))]);
        keys.rest(KeyUse { provider: Provider::Anthropic, index: 0 }, 0, 1000);
        let u = plan(&c, &keys, 10, Api::Messages, &req, body, None).unwrap();
        assert_eq!((header(&u, "x-api-key"), u.all_keys_resting), ("kb", false));
    }

    /// The per-provider header table of the README ("What reaches a provider").
    #[test]
    fn client_headers_reach_only_their_own_api_family() {
        use Provider::*;
        let native = false;
        let translated = true;
        // (header, [OpenAI, Anthropic, Gemini, Bedrock] on a native route)
        let table: [(&str, [bool; 4]); 12] = [
            ("anthropic-version", [false, true, false, false]),
            ("anthropic-beta", [false, true, false, false]),
            ("anthropic-dangerous-direct-browser-access", [false, true, false, false]),
            ("openai-organization", [true, false, false, false]),
            ("openai-beta", [true, false, false, false]),
            ("x-goog-user-project", [false, false, false, false]),
            ("x-amz-security-token", [false, false, false, false]),
            ("x-amzn-trace-id", [false, false, false, false]),
            ("x-posthog-property-x", [false, false, false, false]),
            ("user-agent", [true, true, true, true]),
            ("x-stainless-lang", [true, true, true, true]),
            ("traceparent", [true, true, true, true]),
        ];
        for (name, want) in table {
            let got = [OpenAi, Anthropic, Gemini, Bedrock].map(|p| forwards_client_header(name, p, native));
            assert_eq!(got, want, "{name}");
            // Across a translation no family header goes anywhere.
            if name.starts_with("anthropic-") || name.starts_with("openai-") {
                assert!([OpenAi, Anthropic, Gemini, Bedrock]
                    .iter()
                    .all(|p| !forwards_client_header(name, *p, translated)));
            }
        }
        for name in [
            "authorization",
            "x-api-key",
            "x-goog-api-key",
            "cookie",
            "x-llm-gateway-cluster",
            "x-envoy-retry-on",
            "x-envoy-upstream-rq-timeout-ms",
        ] {
            assert!(dropped_on_arrival(name, "x-llm-gateway-cluster"), "{name}");
        }
        for name in ["user-agent", "content-length"] {
            assert!(!dropped_on_arrival(name, "x-llm-gateway-cluster"), "{name}");
        }
        assert!(dropped_on_arrival("x-my-route", "x-my-route"));
    }

    #[test]
    fn header_edits_per_route() {
        let c = Config::parse(b"{}").unwrap();
        let client: Headers = [
            (":path", "/v1/messages"),
            ("anthropic-version", "2023-01-01"),
            ("anthropic-beta", "prompt-caching-2024-07-31"),
            ("openai-organization", "org-1"),
            ("user-agent", "sdk"),
            ("x-posthog-trace-id", "t"),
        ]
        .into_iter()
        .collect();
        let removed = |u: &Upstream| -> Vec<String> {
            u.header_edits(&client).iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.to_string()).collect()
        };
        let set = |u: &Upstream, name: &str| -> Option<String> {
            u.header_edits(&client)
                .iter()
                .find(|(k, v)| *k == name && v.is_some())
                .and_then(|(_, v)| v.map(str::to_string))
        };
        // Messages to Anthropic: its own headers pass unchanged; no default version over the client's.
        let body = br#"{"model":"claude-sonnet-4-5","max_tokens":5,"messages":[]}"#;
        let u = run(&c, Api::Messages, body, None).unwrap();
        assert_eq!(removed(&u), ["openai-organization", "x-posthog-trace-id"]);
        assert_eq!(set(&u, "anthropic-version"), None, "the client's passes");
        assert_eq!(set(&u, ":path"), None, "the client's path is already the provider's");
        assert_eq!(set(&u, "x-api-key").as_deref(), Some("key-for-LLM_GATEWAY_ANTHROPIC_API_KEY"));
        // Messages to OpenAI (translated): no family header crosses.
        let body = br#"{"model":"gpt-4o","max_tokens":5,"messages":[]}"#;
        let u = run(&c, Api::Messages, body, None).unwrap();
        assert_eq!(removed(&u), ["anthropic-version", "anthropic-beta", "openai-organization", "x-posthog-trace-id"]);
        assert_eq!(set(&u, ":path").as_deref(), Some("/v1/chat/completions"));
        // Messages to Bedrock: none of Anthropic's headers.
        let body = br#"{"model":"claude-sonnet-4-5-20250929","max_tokens":5,"messages":[]}"#;
        let u = run(&c, Api::Messages, body, Some("bedrock")).unwrap();
        assert_eq!(removed(&u), ["anthropic-version", "anthropic-beta", "openai-organization", "x-posthog-trace-id"]);
        // Chat to Anthropic (translated): the client's version is dropped, the gateway's default set.
        let body = br#"{"model":"claude-sonnet-4-5","messages":[]}"#;
        let u = run(&c, Api::Chat, body, None).unwrap();
        assert!(removed(&u).contains(&"anthropic-version".to_string()));
        assert_eq!(set(&u, "anthropic-version").as_deref(), Some("2023-06-01"));
        // Chat to OpenAI: openai-* passes.
        let body = br#"{"model":"gpt-4o","messages":[]}"#;
        let u = run(&c, Api::Chat, body, None).unwrap();
        assert_eq!(removed(&u), ["anthropic-version", "anthropic-beta", "x-posthog-trace-id"]);
    }

    #[test]
    fn missing_key_is_a_server_error() {
        let c = Config::parse(b"{}").unwrap();
        let body = br#"{"model":"gpt-4o","messages":[]}"#;
        let req = parse(body, Api::Chat).unwrap();
        let e = plan(&c, &ProviderKeys::default(), 0, Api::Chat, &req, body, None).unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(format!("{:?}", keys()).contains("Secret(..)"));
        assert!(!format!("{:?}", keys()).contains("key-for"));
    }
}
