//! Client request bodies: `request::parse`, `Fields::rewrite`, the upstream
//! plan (`forward::plan`) and, on Messages, the Save Mode upgrade, chained as
//! the filter chains them. For each api, when the body parses:
//!
//! - a rewrite (none, the plan's own, or random sets and removals) re-parses
//!   on the same api, with the set values in place, removed fields gone
//!   and every other field's raw JSON unchanged;
//! - the plan's body carries the routed model and, when the gateway turned on
//!   `include_usage`, `stream_options.include_usage: true`;
//! - an upgraded Messages body still parses, to the same request.

use std::collections::HashMap;

use crate::Rng;
use llm_gateway::config::Config;
use llm_gateway::cost_controls::{upgrade_cache_ttl, Upgrade};
use llm_gateway::forward::{plan, ProviderKeys};
use llm_gateway::request::{parse, ParsedRequest};
use llm_gateway::wire::Api;
use llm_gateway::wire::ProviderWire;
use serde_json::value::RawValue;

const CONFIG: &[u8] = br#"{"models": {
    "fast": {"provider": "anthropic", "model": "claude-haiku-4-5"},
    "smart": {"provider": "openai", "model": "gpt-4o-mini"},
    "gem": {"provider": "gemini", "model": "gemini-2.5-flash"},
    "pinned": {"provider": "openai"}}}"#;

/// JSON values a rewrite may set.
const VALUES: [&str; 6] = [r#""m2""#, "true", "false", "null", r#"{"include_usage":true}"#, "[1,{\"a\":\"é\"}]"];
const KEYS: [&str; 6] = ["model", "stream", "stream_options", "user", "metadata", "x-new"];

/// Top-level members, decoded keys to raw values.
fn members(body: &[u8]) -> HashMap<String, &RawValue> {
    match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => panic!("a parsed body's members do not read back: {e}"),
    }
}

fn reparse<'a>(out: &'a [u8], api: Api, what: &str) -> ParsedRequest<'a> {
    match parse(out, api) {
        Ok(p) => p,
        Err(e) => panic!("{what} does not re-parse: {} ({})", e.message, String::from_utf8_lossy(out)),
    }
}

/// `out` is `original` with `set` applied and `remove` dropped.
fn check_rewrite(original: &[u8], out: &[u8], set: &[(&str, String)], remove: &[&str]) {
    let before = members(original);
    let after = members(out);
    for (k, v) in &before {
        if remove.contains(&k.as_str()) {
            assert!(!after.contains_key(k), "removed field {k:?} still there");
        } else if let Some((_, new)) = set.iter().find(|(sk, _)| sk == k) {
            assert_eq!(after.get(k).map(|r| r.get()), Some(new.as_str()), "set field {k:?}");
        } else {
            assert_eq!(after.get(k).map(|r| r.get()), Some(v.get()), "untouched field {k:?} changed");
        }
    }
    for (k, new) in set {
        if !remove.contains(k) {
            assert_eq!(after.get(*k).map(|r| r.get()), Some(new.as_str()), "set field {k:?}");
        }
    }
    let expected = before.keys().filter(|k| !remove.contains(&k.as_str())).count()
        + set.iter().filter(|(k, _)| !before.contains_key(*k) && !remove.contains(k)).count();
    assert_eq!(after.len(), expected, "rewrite added or lost fields");
}

/// Every member of `original` but `changed` is in `out` with the same raw
/// value, and `out` has no member beyond those and `changed`.
fn check_kept(original: &[u8], out: &[u8], changed: &[&str]) {
    let before = members(original);
    let after = members(out);
    for (k, v) in &before {
        if !changed.contains(&k.as_str()) {
            assert_eq!(after.get(k).map(|r| r.get()), Some(v.get()), "field {k:?} changed by the plan");
        }
    }
    for k in after.keys() {
        assert!(before.contains_key(k) || changed.contains(&k.as_str()), "plan added field {k:?}");
    }
}

pub fn run(data: &[u8]) {
    // Per thread: the config's price table memoises lookups (not `Sync`).
    thread_local! {
        static SETUP: &'static (Config, ProviderKeys) = Box::leak(Box::new(match Config::parse(CONFIG) {
            Ok(config) => (config, ProviderKeys::from_env(|name| Some(format!("key-for-{name}")))),
            Err(e) => panic!("fuzz config does not parse: {e}"),
        }));
    }
    let (config, keys) = SETUP.with(|s| *s);
    let mut rng = Rng::new(data);
    for api in [Api::Chat, Api::Responses, Api::Messages] {
        let Ok(req) = parse(data, api) else { continue };
        assert!(!req.model.is_empty());

        // The identity rewrite keeps every field (compact, same raw values).
        let same = req.fields.rewrite(&[], &[]);
        let again = reparse(&same, api, "identity rewrite");
        assert_eq!((again.model.as_ref(), again.stream), (req.model.as_ref(), req.stream));
        assert_eq!(again.include_usage, req.include_usage);
        assert_eq!(again.user, req.user);
        assert_eq!(again.metadata_user_id, req.metadata_user_id);
        assert_eq!(again.max_output_tokens, req.max_output_tokens);
        check_rewrite(data, &same, &[], &[]);

        // Random sets and removals: the result is still a JSON object with exactly those changes.
        let set: Vec<(&str, String)> = (0..rng.below(3))
            .map(|_| (KEYS[rng.below(KEYS.len())], VALUES[rng.below(VALUES.len())].to_string()))
            .fold(Vec::new(), |mut acc, (k, v)| {
                if !acc.iter().any(|(ak, _)| *ak == k) {
                    acc.push((k, v));
                }
                acc
            });
        // (A key both set and removed has no defined meaning; the filter never asks for it.)
        let remove: Vec<&str> = (0..rng.below(3))
            .map(|_| KEYS[rng.below(KEYS.len())])
            .filter(|k| !set.iter().any(|(sk, _)| sk == k))
            .collect();
        let out = req.fields.rewrite(&set, &remove);
        check_rewrite(data, &out, &set, &remove);

        // The plan's body, as forwarded upstream: the client's own format
        // rewritten, or translated into the provider's (Bedrock by header too).
        let header = if rng.below(4) == 0 { Some("bedrock") } else { None };
        let Ok(up) = plan(config, keys, 0, api, &req, data, header) else { continue };
        if up.response.translated() || up.response.provider == ProviderWire::Bedrock {
            let Some(body) = &up.body else { panic!("translated request without a body") };
            let target = match up.response.provider {
                ProviderWire::OpenAiChat | ProviderWire::GeminiChat => Some(Api::Chat),
                ProviderWire::Anthropic => Some(Api::Messages),
                ProviderWire::OpenAiResponses => Some(Api::Responses),
                ProviderWire::Bedrock => None,
            };
            match target {
                Some(target) => {
                    let p = reparse(body, target, "the translated body");
                    assert_eq!(p.model, up.model, "translated body names another model");
                    assert_eq!(p.stream, req.stream, "translation changed `stream`");
                }
                None => {
                    let m = members(body);
                    assert!(!m.contains_key("model"), "Bedrock body keeps `model`");
                    assert!(m.contains_key("anthropic_version"), "Bedrock body without anthropic_version");
                }
            }
            continue;
        }
        let forwarded: &[u8] = match &up.body {
            Some(body) => {
                let p = reparse(body, api, "the planned body");
                assert_eq!(p.model, up.model, "planned body names another model");
                assert_eq!(p.stream, req.stream);
                if up.strip_usage_chunk {
                    assert_eq!(p.include_usage, Some(true), "include_usage not turned on");
                }
                check_kept(data, body, &["model", "stream_options"]);
                body
            }
            None => {
                assert_eq!(req.model, up.model, "model changed but no new body");
                assert!(!up.strip_usage_chunk, "include_usage needed but no new body");
                data
            }
        };

        // Save Mode on Messages, applied to the body as forwarded.
        if api == Api::Messages {
            if let Upgrade::Upgraded { body, .. } = upgrade_cache_ttl(forwarded) {
                let p = reparse(&body, api, "the upgraded body");
                assert_eq!(p.model, up.model);
                assert_eq!(p.stream, req.stream);
                assert_eq!(p.max_output_tokens, req.max_output_tokens);
            }
        }
    }
}
