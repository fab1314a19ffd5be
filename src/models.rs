//! `GET /v1/models`: the models the gateway can route, answered locally (no
//! provider is called): the `models` table of the configuration, then every
//! model the price table knows, each kept only if its provider resolves and
//! the gateway holds that provider's key (or needs none: Bedrock signed by
//! Envoy). OpenAI's list shape by default; Anthropic's (`type`,
//! `display_name`, `created_at`, `has_more`, `first_id`, `last_id`) for
//! clients that send `anthropic-version`.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use crate::config::Config;
use crate::forward::{resolve_model, ProviderKeys};

/// The listed ids, sorted, each with its provider's name.
pub fn routable<'a>(
    config: &'a Config,
    keys: &ProviderKeys,
    priced: impl Iterator<Item = &'a str>,
) -> Vec<(&'a str, &'static str)> {
    let ids: BTreeSet<&str> = config.models.keys().map(String::as_str).chain(priced).collect();
    ids.into_iter()
        .filter_map(|id| resolve_model(config, id).map(|(p, _)| (id, p)))
        .filter(|(_, p)| keys.get(*p).is_some() || !config.needs_key(*p))
        .map(|(id, p)| (id, p.name()))
        .collect()
}

/// The list body for `models`, in Anthropic's shape when `anthropic` is set.
pub fn list_body(models: &[(&str, &str)], anthropic: bool) -> String {
    // The gateway knows no release dates; the epoch says so plainly.
    let body = if anthropic {
        let data: Vec<Value> = models
            .iter()
            .map(|(id, _)| json!({"type": "model", "id": id, "display_name": id, "created_at": "1970-01-01T00:00:00Z"}))
            .collect();
        json!({
            "data": data,
            "has_more": false,
            "first_id": models.first().map(|(id, _)| *id),
            "last_id": models.last().map(|(id, _)| *id),
        })
    } else {
        let data: Vec<Value> = models
            .iter()
            .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
            .collect();
        json!({"object": "list", "data": data})
    };
    body.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_routable_models_in_either_shape() {
        let config =
            Config::parse(br#"{"models": {"fast": {"provider": "anthropic", "model": "claude-haiku-4-5"}}}"#).unwrap();
        let keys = ProviderKeys::from_env(|v| (v == "LLM_GATEWAY_ANTHROPIC_API_KEY").then(|| "k".to_string()));
        let priced = ["claude-sonnet-4-6", "gpt-4o-mini", "mystery-model"];
        let models = routable(&config, &keys, priced.into_iter());
        assert_eq!(models, [("claude-sonnet-4-6", "anthropic"), ("fast", "anthropic")]);
        let openai: Value = serde_json::from_str(&list_body(&models, false)).unwrap();
        assert_eq!(openai["object"], "list");
        assert_eq!(openai["data"][1]["id"], "fast");
        assert_eq!(openai["data"][1]["owned_by"], "anthropic");
        let anthropic: Value = serde_json::from_str(&list_body(&models, true)).unwrap();
        assert_eq!(anthropic["data"][0]["type"], "model");
        assert_eq!(anthropic["data"][0]["display_name"], "claude-sonnet-4-6");
        assert_eq!(anthropic["has_more"], false);
        assert_eq!(anthropic["last_id"], "fast");
    }
}
