//! Which gateway endpoint a request is for: `/v1/...` or `/{product}/v1/...`.

use crate::errors::{ApiError, ErrorKind};
use crate::wire::Api;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// Index into the configured product list.
    pub product: usize,
    pub api: Api,
}

/// Resolves method and path against the configured products. `products[0]`
/// is the product of unprefixed paths. Errors come formatted for the API the
/// path names (Anthropic for `.../v1/messages`, OpenAI otherwise).
pub fn resolve(method: &str, path: &str, products: &[String]) -> Result<Route, (ApiError, Api)> {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let (product, rest) = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((first, rest)) if first != "v1" => (Some(first), rest),
        _ => (None, path.trim_start_matches('/')),
    };
    let rest = format!("/{rest}");
    // An unknown path gets an OpenAI-shaped 404.
    let Some(api) = Api::ALL.into_iter().find(|a| a.path() == rest) else {
        return Err((not_found(path), Api::Chat));
    };
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
    if method != "POST" {
        let msg = format!("Method {} is not allowed on {}; use POST", truncate(method, 16), api.path());
        let err = ApiError::new(ErrorKind::MethodNotAllowed, msg).header("allow", "POST".to_string());
        return Err((err, api));
    }
    Ok(Route { product, api })
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
        assert_eq!(r, Route { product: 0, api: Api::Chat });
        let r = resolve("POST", "/v1/messages?beta=true", &products()).unwrap();
        assert_eq!(r.api, Api::Messages);
    }

    #[test]
    fn product_prefix() {
        let r = resolve("POST", "/array/v1/responses", &products()).unwrap();
        assert_eq!(r, Route { product: 1, api: Api::Responses });
        let r = resolve("POST", "/llm_gateway/v1/messages", &products()).unwrap();
        assert_eq!(r.product, 0);
    }

    #[test]
    fn unknown_product_names_valid_ones() {
        let (e, f) = resolve("POST", "/nope/v1/messages", &products()).unwrap_err();
        assert_eq!(e.status(), 404);
        assert_eq!(f, Api::Messages);
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
