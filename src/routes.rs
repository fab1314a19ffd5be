//! Which gateway endpoint a request is for: `/v1/...` or `/{product}/v1/...`.

use crate::errors::{ApiError, ApiFormat, ErrorKind};

/// The client-facing APIs the gateway serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    ChatCompletions,
    Responses,
    Messages,
}

impl Endpoint {
    pub fn format(self) -> ApiFormat {
        match self {
            Endpoint::Messages => ApiFormat::Anthropic,
            Endpoint::ChatCompletions | Endpoint::Responses => ApiFormat::OpenAi,
        }
    }

    pub fn path(self) -> &'static str {
        match self {
            Endpoint::ChatCompletions => "/v1/chat/completions",
            Endpoint::Responses => "/v1/responses",
            Endpoint::Messages => "/v1/messages",
        }
    }

    fn from_path(path: &str) -> Option<Endpoint> {
        [Endpoint::ChatCompletions, Endpoint::Responses, Endpoint::Messages].into_iter().find(|e| e.path() == path)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Index into the configured product list.
    pub product: usize,
    pub endpoint: Endpoint,
}

/// Resolves method and path against the configured products. `products[0]`
/// is the product of unprefixed paths. Errors come formatted for the API the
/// path names (Anthropic for `.../v1/messages`, OpenAI otherwise).
pub fn resolve(method: &str, path: &str, products: &[String]) -> Result<Route, (ApiError, ApiFormat)> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let (product, rest) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((first, rest)) if first != "v1" => (Some(first), rest),
        _ => (None, path.trim_start_matches('/')),
    };
    let endpoint = Endpoint::from_path(&format!("/{rest}"));
    let format = endpoint.map_or(ApiFormat::OpenAi, Endpoint::format);
    let Some(endpoint) = endpoint else {
        return Err((not_found(path), format));
    };
    let product = match product {
        None => 0,
        Some(name) => match products.iter().position(|p| p == name) {
            Some(i) => i,
            None => {
                let msg = format!("Unknown product '{}'. Valid products: {}", truncate(name, 64), products.join(", "));
                return Err((ApiError::new(ErrorKind::NotFound, msg), format));
            }
        },
    };
    if method != "POST" {
        let msg = format!("Method {} is not allowed on {}; use POST", truncate(method, 16), endpoint.path());
        let err = ApiError::new(ErrorKind::MethodNotAllowed, msg).header("allow", "POST".to_string());
        return Err((err, format));
    }
    Ok(Route { product, endpoint })
}

fn not_found(path: &str) -> ApiError {
    let msg = format!(
        "No route for {}. Supported: POST /v1/chat/completions, /v1/responses, /v1/messages, optionally under /{{product}}",
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
        let r = resolve("POST", "/v1/chat/completions", &products()).unwrap();
        assert_eq!(r, Route { product: 0, endpoint: Endpoint::ChatCompletions });
        let r = resolve("POST", "/v1/messages?beta=true", &products()).unwrap();
        assert_eq!(r.endpoint, Endpoint::Messages);
    }

    #[test]
    fn product_prefix() {
        let r = resolve("POST", "/array/v1/responses", &products()).unwrap();
        assert_eq!(r, Route { product: 1, endpoint: Endpoint::Responses });
        let r = resolve("POST", "/llm_gateway/v1/messages", &products()).unwrap();
        assert_eq!(r.product, 0);
    }

    #[test]
    fn unknown_product_names_valid_ones() {
        let (e, f) = resolve("POST", "/nope/v1/messages", &products()).unwrap_err();
        assert_eq!(e.status(), 404);
        assert_eq!(f, ApiFormat::Anthropic);
        assert!(e.message.contains("llm_gateway, array, posthog_code"), "{}", e.message);
    }

    #[test]
    fn unknown_paths_and_methods() {
        for p in ["/", "/v1", "/v1/chat", "/v2/chat/completions", "/a/b/v1/messages", "/v1/messages/x"] {
            assert_eq!(resolve("POST", p, &products()).unwrap_err().0.status(), 404, "{p}");
        }
        let (e, _) = resolve("GET", "/v1/chat/completions", &products()).unwrap_err();
        assert_eq!(e.status(), 405);
        assert_eq!(e.headers, vec![("allow", "POST".to_string())]);
    }

    #[test]
    fn truncate_strips_controls() {
        assert_eq!(truncate("a\r\nb\u{7f}cdef", 4), "abcd");
    }
}
