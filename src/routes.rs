//! Which gateway endpoint a request is for: `/v1/...` or `/{product}/v1/...`.

use crate::errors::{ApiError, ErrorKind};
use crate::wire::Api;

/// What a request asks of the gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// A model call, billed and captured.
    Call,
    /// `POST /v1/messages/count_tokens`: authenticated, neither limited nor billed.
    CountTokens,
    /// `GET /v1/models`: the models the gateway routes, answered locally.
    Models,
    /// `HEAD /`: a reachability probe, answered at once.
    Probe,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Index into the configured product list.
    pub product: usize,
    /// The API whose shapes the answer and errors take.
    pub api: Api,
    pub op: Op,
}

/// The gateway's endpoints after the optional product prefix.
const ENDPOINTS: [(&str, &str, Api, Op); 5] = [
    ("/v1/chat/completions", "POST", Api::Chat, Op::Call),
    ("/v1/responses", "POST", Api::Responses, Op::Call),
    ("/v1/messages", "POST", Api::Messages, Op::Call),
    ("/v1/messages/count_tokens", "POST", Api::Messages, Op::CountTokens),
    ("/v1/models", "GET", Api::Chat, Op::Models),
];

/// Resolves a request's method and path against the configured products.
/// `products[0]` is the product of unprefixed paths. Errors come in the
/// shape of the API the path names (Anthropic for `.../v1/messages...`,
/// OpenAI otherwise); `/v1/models` answers in Anthropic's shape when the
/// client sent `anthropic-version` (`anthropic_client`).
pub fn resolve(
    method: &str,
    path: &str,
    products: &[String],
    anthropic_client: bool,
) -> Result<Route, (ApiError, Api)> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    if method == "HEAD" && path == "/" {
        return Ok(Route { product: 0, api: Api::Chat, op: Op::Probe });
    }
    let (product, rest) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((first, rest)) if first != "v1" => (Some(first), rest),
        _ => (None, path.trim_start_matches('/')),
    };
    // An unknown path gets an OpenAI-shaped 404.
    let Some(&(endpoint, allowed, api, op)) = ENDPOINTS.iter().find(|(p, ..)| p.strip_prefix('/') == Some(rest)) else {
        return Err((not_found(path), Api::Chat));
    };
    let api = if op == Op::Models && anthropic_client { Api::Messages } else { api };
    let product = match product {
        None => 0,
        Some(name) => match products.iter().position(|p| p == name) {
            Some(i) => i,
            None => {
                let msg = format!("Unknown product '{}'. Valid products: {}", truncate(name, 64), products.join(", "));
                return Err((ApiError::new(ErrorKind::NotFound, msg), api));
            }
        },
    };
    if method != allowed {
        let msg = format!("Method {} is not allowed on {endpoint}; use {allowed}", truncate(method, 16));
        let err = ApiError::new(ErrorKind::MethodNotAllowed, msg).header("allow", allowed.to_string());
        return Err((err, api));
    }
    Ok(Route { product, api, op })
}

/// A WebSocket upgrade (Codex tries one on `/v1/responses` when its provider
/// allows it): refused with 426, which makes Codex fall back to HTTP streaming at once.
pub fn websocket_refusal() -> ApiError {
    ApiError::new(
        ErrorKind::UpgradeRequired,
        "WebSocket is not supported by this gateway; use HTTP streaming (Codex: supports_websockets = false)",
    )
    .code("websocket_not_supported")
}

fn not_found(path: &str) -> ApiError {
    if path.ends_with("/v1/responses/compact") {
        let msg = "Remote compaction (POST /v1/responses/compact) is not served by this gateway; \
                   clients compact by sending the conversation to /v1/responses";
        return ApiError::new(ErrorKind::NotFound, msg).code("unsupported_endpoint");
    }
    let msg = format!(
        "No route for {}. Supported: POST /v1/chat/completions, /v1/responses, /v1/messages, \
         /v1/messages/count_tokens, GET /v1/models, optionally under /{{product}}",
        truncate(path, 128)
    );
    ApiError::new(ErrorKind::NotFound, msg)
}

/// Caps client-supplied text echoed in messages, on a char boundary, without control characters.
pub fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().filter(|c| !c.is_control()).take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn products() -> Vec<String> {
        ["llm_gateway", "array", "posthog_code"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn unprefixed_paths_use_default_product() {
        let r = resolve("POST", "/v1/chat/completions", &products(), false).unwrap();
        assert_eq!(r, Route { product: 0, api: Api::Chat, op: Op::Call });
        let r = resolve("POST", "/v1/messages?beta=true", &products(), false).unwrap();
        assert_eq!(r.api, Api::Messages);
    }

    #[test]
    fn product_prefix() {
        let r = resolve("POST", "/array/v1/responses", &products(), false).unwrap();
        assert_eq!(r, Route { product: 1, api: Api::Responses, op: Op::Call });
        let r = resolve("POST", "/llm_gateway/v1/messages", &products(), false).unwrap();
        assert_eq!(r.product, 0);
    }

    #[test]
    fn unknown_product_names_valid_ones() {
        let (e, f) = resolve("POST", "/nope/v1/messages", &products(), false).unwrap_err();
        assert_eq!(e.status(), 404);
        assert_eq!(f, Api::Messages);
        assert!(e.message.contains("llm_gateway, array, posthog_code"), "{}", e.message);
    }

    #[test]
    fn unknown_paths_and_methods() {
        for p in ["/", "/v1", "/v1/chat", "/v2/chat/completions", "/a/b/v1/messages", "/v1/messages/x"] {
            assert_eq!(resolve("POST", p, &products(), false).unwrap_err().0.status(), 404, "{p}");
        }
        let (e, _) = resolve("GET", "/v1/chat/completions", &products(), false).unwrap_err();
        assert_eq!(e.status(), 405);
        assert_eq!(e.headers, vec![("allow", "POST".to_string())]);
    }

    #[test]
    fn count_tokens_models_and_probe() {
        let r = resolve("POST", "/v1/messages/count_tokens?beta=true", &products(), false).unwrap();
        assert_eq!((r.api, r.op), (Api::Messages, Op::CountTokens));
        let r = resolve("GET", "/array/v1/models", &products(), false).unwrap();
        assert_eq!((r.product, r.api, r.op), (1, Api::Chat, Op::Models));
        assert_eq!(resolve("GET", "/v1/models", &products(), true).unwrap().api, Api::Messages);
        let (e, _) = resolve("POST", "/v1/models", &products(), false).unwrap_err();
        assert_eq!((e.status(), e.headers.clone()), (405, vec![("allow", "GET".to_string())]));
        assert_eq!(resolve("HEAD", "/", &products(), false).unwrap().op, Op::Probe);
        let (e, _) = resolve("POST", "/v1/responses/compact", &products(), false).unwrap_err();
        assert_eq!((e.status(), e.code), (404, Some("unsupported_endpoint")));
    }

    #[test]
    fn truncate_strips_controls() {
        assert_eq!(truncate("a\r\nb\u{7f}cdef", 4), "abcd");
    }
}
