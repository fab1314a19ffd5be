//! Where a parsed request goes: provider, cluster, path, credentials, body.

use std::fmt;

use crate::config::Config;
use crate::errors::{ApiError, ErrorKind};
use crate::providers::{self, Provider};
use crate::request::ParsedRequest;
use crate::routes::Endpoint;

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
    pub path: String,
    /// Headers to set, replacing any the client sent.
    pub headers: Vec<(String, String)>,
    /// Headers to set only when the client did not.
    pub default_headers: Vec<(&'static str, String)>,
    /// A new body, when the request must change on the way.
    pub body: Option<Vec<u8>>,
}

/// The model route: config's model table first, then the naming conventions.
pub fn resolve_model<'m>(config: &'m Config, model: &'m str) -> Option<(Provider, &'m str)> {
    match config.models.get(model) {
        Some(route) => Some((route.provider, route.upstream_model.as_deref().unwrap_or(model))),
        None => providers::infer(model),
    }
}

pub fn plan(
    config: &Config,
    keys: &ProviderKeys,
    endpoint: Endpoint,
    req: &ParsedRequest,
) -> Result<Upstream, ApiError> {
    let requested = req.model.as_ref();
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
    let supported: &[Provider] = match endpoint {
        Endpoint::ChatCompletions => &[Provider::OpenAi, Provider::Gemini],
        Endpoint::Responses => &[Provider::OpenAi],
        Endpoint::Messages => &[Provider::Anthropic],
    };
    if !supported.contains(&provider) {
        let names: Vec<&str> = supported.iter().map(|p| p.name()).collect();
        return Err(ApiError::new(
            ErrorKind::InvalidRequest,
            format!(
                "Model '{}' is served by {provider}; POST {} supports {} models",
                crate::routes::truncate(requested, 128),
                endpoint.path(),
                names.join(" and ")
            ),
        )
        .param("model")
        .code("unsupported_model_for_endpoint"));
    }
    let key = keys.get(provider).ok_or_else(|| {
        ApiError::new(ErrorKind::Internal, format!("The gateway has no API key configured for {provider}"))
            .code("provider_not_configured")
    })?;
    let settings = config.provider(provider);
    let suffix = endpoint.path().strip_prefix("/v1").unwrap_or(endpoint.path());
    let path = format!("{}{suffix}", settings.base_path);
    let auth = match provider {
        Provider::Anthropic => ("x-api-key", key.expose().to_string()),
        _ => ("authorization", format!("Bearer {}", key.expose())),
    };
    let headers = vec![
        (config.route_header.clone(), settings.cluster.clone()),
        (":authority".into(), settings.authority.clone()),
        (":path".into(), path.clone()),
        ("x-envoy-upstream-rq-timeout-ms".into(), settings.timeout_ms.to_string()),
        (auth.0.into(), auth.1),
    ];
    let default_headers = match provider {
        Provider::Anthropic => vec![("anthropic-version", config.anthropic_version.clone())],
        _ => Vec::new(),
    };
    let body = (model != requested).then(|| req.fields.rewrite(&[("model", json_string(model))], &[]));
    Ok(Upstream {
        provider,
        model: model.to_string(),
        authority: settings.authority.clone(),
        path,
        headers,
        default_headers,
        body,
    })
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

    fn header<'a>(u: &'a Upstream, name: &str) -> &'a str {
        u.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).unwrap()
    }

    #[test]
    fn openai_chat() {
        let c = Config::parse(b"{}").unwrap();
        let body = br#"{"model":"gpt-4o","messages":[]}"#;
        let u = plan(&c, &keys(), Endpoint::ChatCompletions, &parse(body, Endpoint::ChatCompletions).unwrap()).unwrap();
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
        let u = plan(&c, &keys(), Endpoint::ChatCompletions, &parse(body, Endpoint::ChatCompletions).unwrap()).unwrap();
        assert_eq!(header(&u, ":path"), "/v1beta/openai/chat/completions");
        assert_eq!(header(&u, ":authority"), "generativelanguage.googleapis.com");
        assert_eq!(u.body.as_deref(), Some(&br#"{"model":"gemini-2.5-flash","messages":[]}"#[..]));
    }

    #[test]
    fn anthropic_uses_x_api_key_and_version_default() {
        let c = Config::parse(br#"{"models":{"fast":{"provider":"anthropic","model":"claude-haiku-4-5"}}}"#).unwrap();
        let body = br#"{"model":"fast","messages":[],"max_tokens":5}"#;
        let u = plan(&c, &keys(), Endpoint::Messages, &parse(body, Endpoint::Messages).unwrap()).unwrap();
        assert_eq!(u.model, "claude-haiku-4-5");
        assert_eq!(header(&u, "x-api-key"), "key-for-LLM_GATEWAY_ANTHROPIC_API_KEY");
        assert_eq!(u.default_headers, vec![("anthropic-version", "2023-06-01".to_string())]);
    }

    #[test]
    fn unsupported_combinations_name_what_is_supported() {
        let c = Config::parse(b"{}").unwrap();
        let cases = [
            (Endpoint::ChatCompletions, "claude-sonnet-4-5", "supports openai and gemini models"),
            (Endpoint::Responses, "gemini-2.5-flash", "supports openai models"),
            (Endpoint::Messages, "gpt-4o", "supports anthropic models"),
            (Endpoint::Messages, "llama-3", "Unknown model"),
        ];
        for (ep, model, needle) in cases {
            let body = format!(r#"{{"model":"{model}","messages":[]}}"#);
            let e = plan(&c, &keys(), ep, &parse(body.as_bytes(), ep).unwrap()).unwrap_err();
            assert_eq!(e.status(), 400);
            assert!(e.message.contains(needle), "{}", e.message);
        }
    }

    #[test]
    fn missing_key_is_a_server_error() {
        let c = Config::parse(b"{}").unwrap();
        let body = br#"{"model":"gpt-4o","messages":[]}"#;
        let req = parse(body, Endpoint::ChatCompletions).unwrap();
        let e = plan(&c, &ProviderKeys::default(), Endpoint::ChatCompletions, &req).unwrap_err();
        assert_eq!(e.status(), 500);
        assert!(format!("{:?}", keys()).contains("Secret(..)"));
        assert!(!format!("{:?}", keys()).contains("key-for"));
    }
}
