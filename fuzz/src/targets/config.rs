//! `Config::parse` on arbitrary bytes: never panics; an error is one
//! non-empty line (no control characters or line separators, whatever the
//! keys and values held); an accepted config satisfies the invariants the
//! filter relies on without re-checking them.

use llm_gateway::config::Config;
use llm_gateway::providers::Provider;

pub fn run(data: &[u8]) {
    let config = match Config::parse(data) {
        Ok(c) => c,
        Err(e) => {
            assert!(!e.is_empty(), "empty configuration error");
            assert!(
                !e.chars().any(|c| c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')),
                "error is not one line: {e:?}"
            );
            return;
        }
    };
    assert!(!config.products.is_empty(), "no product");
    for p in &config.products {
        assert!(!p.is_empty() && p != "v1", "bad product {p:?}");
        assert!(p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'), "bad product {p:?}");
    }
    assert!(config.max_request_body_bytes > 0);
    assert!(!config.route_header.is_empty());
    assert_eq!(config.route_header, config.route_header.to_ascii_lowercase());
    assert!(config.auth.path_prefix.starts_with('/'));
    assert!(config.auth.timeout_ms > 0 && config.auth.cache_max_entries > 0);
    assert!(config.fallback_cost_usd.is_finite() && config.fallback_cost_usd >= 0.0);
    for p in Provider::ALL {
        let s = config.provider(p);
        assert!(s.timeout_ms > 0, "{p:?} timeout 0");
        assert!(s.base_path.starts_with('/') && !s.base_path.ends_with('/'), "{p:?} base path {:?}", s.base_path);
        // Azure has no default host: empty means not configured.
        assert!(!s.cluster.is_empty() && (p == Provider::Azure || !s.authority.is_empty()));
    }
    if config.models.values().any(|m| m.provider == Provider::Azure) {
        assert!(!config.provider(Provider::Azure).authority.is_empty(), "an Azure model without a host");
    }
    if let Some(c) = &config.capture {
        assert!(c.region_url.starts_with("https://") || c.region_url.starts_with("http://"));
        assert!(c.max_event_bytes > 0 && c.outbox.max_events > 0 && c.outbox.max_attempts.is_none_or(|n| n > 0));
        assert!(c.primary.path.starts_with('/'));
    }
    assert!(config.cost_controls.validate().is_ok());
    for model in config.models.keys().map(String::as_str).chain(["gpt-4o", "claude-sonnet-4-5"]) {
        if let Some(price) = config.prices.lookup(model) {
            assert!(price.input.is_finite() && price.input >= 0.0 && price.output.is_finite() && price.output >= 0.0);
        }
    }
}
