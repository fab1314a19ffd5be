//! Whole-body translation (`translate`, `bedrock::messages_to_bedrock_body`).
//!
//! Requests: a translated request parses as a request of the provider's API
//! (`request::parse`) and names the upstream model, and its output limit
//! never exceeds the model's (for Chat, Messages and Responses clients, to
//! Anthropic, OpenAI and Gemini models); a Messages body for Bedrock is a
//! JSON object without `model`, with `anthropic_version`.
//! Responses: a translated response is JSON and keeps the usage (prompt with
//! cache, billed output). Error bodies: whatever the provider sent, the
//! client gets its own API's error shape with a string message.
use llm_gateway::bedrock::{bedrock_error_to_anthropic, messages_to_bedrock_body};
use llm_gateway::request::parse;
use llm_gateway::providers::Provider;
use llm_gateway::translate::{
    anthropic_error_to_openai, chat_request_to_messages, chat_response_to_messages, chat_response_to_responses,
    messages_request_to_chat, messages_response_to_chat, messages_response_to_responses, openai_error_normalised,
    openai_error_to_anthropic, responses_request_to_chat, responses_request_to_messages, ResponsesContext, Target,
};
use llm_gateway::usage::UsageTracker;
use llm_gateway::wire::Api;
use std::collections::HashMap;

use serde_json::value::RawValue;
use serde_json::Value;

fn json(bytes: &[u8], what: &str) -> Value {
    match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => panic!("{what} is not JSON ({e}): {}", String::from_utf8_lossy(bytes)),
    }
}

/// A JSON object's members, values raw (numbers past f64's range are valid
/// JSON that `Value` refuses, and bodies keep them as the client wrote them).
fn members<'a>(bytes: &'a [u8], what: &str) -> HashMap<String, &'a RawValue> {
    match serde_json::from_slice(bytes) {
        Ok(m) => m,
        Err(e) => panic!("{what} is not a JSON object ({e}): {}", String::from_utf8_lossy(bytes)),
    }
}

fn check_bedrock_body(body: &[u8]) {
    if let Ok(out) = messages_to_bedrock_body(body) {
        let m = members(&out, "Bedrock body");
        assert!(!m.contains_key("model"), "Bedrock body keeps `model`");
        assert!(m.get("anthropic_version").is_some_and(|v| v.get().starts_with('"')), "no anthropic_version");
    }
}

/// (prompt with cache, billed output), when the body reports a usage that is
/// possible and well typed, without repeated keys (OpenAI's cached tokens are part of its prompt tokens; Anthropic's
/// cache writes are the sum of their split; counts are below 2^53).
fn usage(wire: Api, body: &[u8]) -> Option<(u64, u64)> {
    let text = std::str::from_utf8(body).ok()?;
    if !crate::json_without_duplicates(text) || !crate::usage_well_typed(wire == Api::Messages, text) {
        return None;
    }
    let mut t = UsageTracker::new(wire, false);
    t.feed(body);
    let u = t.finish().usage?;
    let cached = u.cache_read_tokens.unwrap_or(0).saturating_add(u.cache_creation_total());
    if u.input_includes_cache && cached > u.input_tokens {
        return None;
    }
    // Counts beyond what JSON numbers carry exactly are read differently
    // (the tracker saturates, serde's u64 refuses); providers never send them.
    let counts = [u.input_tokens, u.output_tokens, u.cache_read_tokens.unwrap_or(0), u.cache_creation_total()];
    if counts.iter().chain(u.reasoning_tokens.iter()).any(|&n| n >= 1 << 53) {
        return None;
    }
    // Anthropic's total cache writes equal the sum of their 5m/1h split.
    if u.cache_creation_total() != u.cache_creation_tokens.unwrap_or(0) {
        return None;
    }
    Some((u.total_input_tokens(), u.billed_output_tokens()))
}

fn openai_error(body: &[u8]) {
    let v = json(body, "OpenAI error body");
    assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "not an OpenAI error: {v}");
}

fn anthropic_error(body: &[u8]) {
    let v = json(body, "Anthropic error body");
    assert_eq!(v["type"], "error", "not an Anthropic error: {v}");
    assert!(v["error"]["message"].is_string() && v["error"]["type"].is_string(), "not an Anthropic error: {v}");
}

/// A translated request parses as `api`, names the target's model and asks
/// for no more output than the model produces.
fn check_request(out: &[u8], api: Api, target: &Target) {
    match parse(out, api) {
        Ok(p) => {
            assert_eq!(p.model, target.model);
            if let (Some(asked), Some(max)) = (p.max_output_tokens, target.caps.max_output_tokens) {
                assert!(asked <= max, "{asked} output tokens asked of {} (at most {max})", target.model);
            }
        }
        Err(e) => panic!("translated {api:?} request does not parse: {}", e.message),
    }
}

pub fn run(data: &[u8]) {
    let claude = Target::new(Provider::Anthropic, "claude-sonnet-4-5");
    let opus = Target::new(Provider::Anthropic, "claude-opus-4-8");
    let gpt = Target::new(Provider::OpenAi, "gpt-4o-mini");
    let gemini = Target::new(Provider::Gemini, "gemini-2.5-flash");
    for target in [&claude, &opus] {
        if let Ok(out) = chat_request_to_messages(data, target) {
            check_request(&out, Api::Messages, target);
            check_bedrock_body(&out);
        }
        if let Ok(out) = responses_request_to_messages(data, target) {
            check_request(&out, Api::Messages, target);
            check_bedrock_body(&out);
        }
    }
    for target in [&gpt, &gemini] {
        if let Ok(out) = messages_request_to_chat(data, target) {
            check_request(&out, Api::Chat, target);
        }
        if let Ok(out) = responses_request_to_chat(data, target) {
            check_request(&out, Api::Chat, target);
        }
    }
    check_bedrock_body(data);

    if let Ok(out) = messages_response_to_chat(data, "client-model", 1_741_569_952) {
        members(&out, "translated Chat response");
        if let (Some(a), Some(b)) = (usage(Api::Messages, data), usage(Api::Chat, &out)) {
            assert_eq!(a, b, "usage changed in translation (prompt, output)");
        }
    }
    if let Ok(out) = chat_response_to_messages(data, "client-model") {
        members(&out, "translated Messages response");
        if let (Some(a), Some(b)) = (usage(Api::Chat, data), usage(Api::Messages, &out)) {
            assert_eq!(a, b, "usage changed in translation (prompt, output)");
        }
    }

    let ctx = ResponsesContext::default();
    if let Ok(out) = messages_response_to_responses(data, &ctx, "client-model", 1_741_569_952) {
        members(&out, "translated Responses response");
        if let (Some(a), Some(b)) = (usage(Api::Messages, data), usage(Api::Responses, &out)) {
            assert_eq!(a, b, "usage changed in translation (prompt, output)");
        }
    }
    if let Ok(out) = chat_response_to_responses(data, &ctx, "client-model", 1_741_569_952) {
        members(&out, "translated Responses response");
        if let (Some(a), Some(b)) = (usage(Api::Chat, data), usage(Api::Responses, &out)) {
            assert_eq!(a, b, "usage changed in translation (prompt, output)");
        }
    }

    let status = [400, 401, 403, 404, 413, 429, 500, 503, 529, 200][data.len() % 10];
    openai_error(&anthropic_error_to_openai(status, data));
    openai_error(&openai_error_normalised(status, data));
    anthropic_error(&openai_error_to_anthropic(status, data));
    for kind in [None, Some("ThrottlingException"), Some("ValidationException:http://x"), Some("weird")] {
        anthropic_error(&bedrock_error_to_anthropic(status, kind, data));
    }
}
