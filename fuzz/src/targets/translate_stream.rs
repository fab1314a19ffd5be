//! Streaming translation (`translate::MessagesToChat`,
//! `translate::ChatToMessages`, `translate::MessagesToResponses`,
//! `translate::ChatToResponses`) on arbitrary provider bytes.
//!
//! - The output does not depend on how the provider's bytes are chunked.
//! - Every output event's data is JSON (or OpenAI's `[DONE]`), on one line;
//!   Anthropic and Responses output events are named after their JSON `type`,
//!   and Responses events count `sequence_number` from 0 and end with exactly
//!   one `response.completed`, `.incomplete` or `.failed`.
//! - Usage survives translation: when the provider's stream is well formed
//!   (see `well_formed`), the client's stream ends without an error, and both
//!   report usage,
//!   the prompt (cache included) and the billed output are the same.
use llm_gateway::translate::{ChatToMessages, ChatToResponses, MessagesToChat, MessagesToResponses, ResponsesContext};
use llm_gateway::usage::UsageTracker;
use llm_gateway::wire::stream::{Sse, Transform};
use llm_gateway::wire::{Api, SseEvent, SseParser};
use serde_json::Value;

use crate::{pieces, Rng};

fn to_chat(chunks: &[&[u8]]) -> Vec<u8> {
    let mut t = Sse::new(MessagesToChat::new("client-model", true, 1_741_569_952));
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(t.feed(chunk));
    }
    out.extend(t.finish());
    out
}

fn to_messages(chunks: &[&[u8]]) -> Vec<u8> {
    let mut t = Sse::new(ChatToMessages::new("client-model"));
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(t.feed(chunk));
    }
    out.extend(t.finish());
    out
}

fn to_responses(anthropic_provider: bool, chunks: &[&[u8]]) -> Vec<u8> {
    let ctx = ResponsesContext { custom_tools: vec!["f".into()], ..ResponsesContext::default() };
    let mut t: Box<dyn Transform> = if anthropic_provider {
        Box::new(Sse::new(MessagesToResponses::new(ctx, "client-model", 1_741_569_952)))
    } else {
        Box::new(Sse::new(ChatToResponses::new(ctx, "client-model", 1_741_569_952)))
    };
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend(t.feed(chunk));
    }
    out.extend(t.finish());
    out
}

/// A Responses stream: named events, sequence numbers from 0, one final event, last.
fn check_responses_events(sse: &[u8]) {
    let mut p = SseParser::default();
    let mut events = p.feed(sse);
    events.extend(p.finish());
    let last = events.len().saturating_sub(1);
    for (i, e) in events.iter().enumerate() {
        assert!(!e.data.contains('\n'), "multi-line data: {e:?}");
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else { panic!("data is not JSON: {e:?}") };
        let kind = v.get("type").and_then(Value::as_str);
        assert_eq!(e.event.as_deref(), kind, "event name != type: {e:?}");
        assert_eq!(v.get("sequence_number").and_then(Value::as_u64), Some(i as u64), "{e:?}");
        let terminal = matches!(kind, Some("response.completed" | "response.incomplete" | "response.failed"));
        assert_eq!(terminal, i == last, "the final event comes last, once: {e:?}");
    }
}

fn check_events(sse: &[u8], anthropic: bool) {
    let mut p = SseParser::default();
    let mut events = p.feed(sse);
    events.extend(p.finish());
    for e in events {
        assert!(!e.data.contains('\n'), "multi-line data: {e:?}");
        if e.data == "[DONE]" && !anthropic {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(&e.data) else { panic!("data is not JSON: {e:?}") };
        if anthropic {
            assert_eq!(e.event.as_deref(), v.get("type").and_then(Value::as_str), "event name != type: {e:?}");
        }
    }
}

/// Every event is a JSON object without repeated keys, with well-typed
/// usage (or OpenAI's `[DONE]`) and, on Anthropic,
/// names its `type` in `event:` too, and nothing follows `message_stop` /
/// `[DONE]`, as the providers send them. (On other
/// input the usage reader falls back to the `event:` name and the translator
/// does not, so they may legitimately disagree.)
fn well_formed(sse: &[u8], anthropic: bool) -> bool {
    let mut p = SseParser::default();
    let mut events = p.feed(sse);
    events.extend(p.finish());
    let terminal = |e: &SseEvent| {
        if anthropic {
            e.event.as_deref() == Some("message_stop")
        } else {
            e.data == "[DONE]"
        }
    };
    // Nothing may follow the end of the message.
    if events.iter().position(terminal).is_some_and(|i| i + 1 < events.len()) {
        return false;
    }
    events.iter().all(|e| {
        if !anthropic && e.data == "[DONE]" {
            return true;
        }
        if !crate::json_without_duplicates(&e.data) || !crate::usage_well_typed(anthropic, &e.data) {
            return false;
        }
        match serde_json::from_str::<Value>(&e.data) {
            Ok(Value::Object(o)) if anthropic => {
                o.get("type").and_then(Value::as_str).is_some_and(|t| e.event.as_deref() == Some(t))
            }
            Ok(Value::Object(_)) => true,
            _ => false,
        }
    })
}

/// The client's stream reports an error (OpenAI `{"error": ...}` data, or Anthropic `event: error`).
fn ends_in_error(sse: &[u8]) -> bool {
    let mut p = SseParser::default();
    let mut events = p.feed(sse);
    events.extend(p.finish());
    events.iter().any(|e| {
        e.event.as_deref() == Some("error")
            || e.event.as_deref() == Some("response.failed")
            || serde_json::from_str::<Value>(&e.data).is_ok_and(|v| v.get("error").is_some())
    })
}

/// (prompt with cache, billed output), when the stream reports a usage that
/// is possible (OpenAI's cached tokens are part of its prompt tokens; Anthropic's
/// cache writes are the sum of their split; counts are below 2^53).
fn usage(wire: Api, stream: &[u8]) -> Option<(u64, u64)> {
    let mut t = UsageTracker::new(wire, true);
    t.feed(stream);
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

pub fn run(data: &[u8]) {
    let mut rng = Rng::new(data);
    for anthropic_provider in [true, false] {
        let translate = if anthropic_provider { to_chat } else { to_messages };
        let whole = translate(&[data]);
        for max_cuts in [4, 64] {
            let split = translate(&pieces(data, &mut rng, max_cuts));
            assert_eq!(String::from_utf8_lossy(&split), String::from_utf8_lossy(&whole), "output depends on chunking");
        }
        check_events(&whole, !anthropic_provider);
        let (from, to) = if anthropic_provider { (Api::Messages, Api::Chat) } else { (Api::Chat, Api::Messages) };
        // A stream that ends in an error (cut short, provider error) owes the client no usage.
        if !well_formed(data, anthropic_provider) || ends_in_error(&whole) {
            continue;
        }
        if let (Some(provider), Some(client)) = (usage(from, data), usage(to, &whole)) {
            assert_eq!(provider, client, "usage changed in translation (prompt, output)");
        }
    }
    for anthropic_provider in [true, false] {
        let whole = to_responses(anthropic_provider, &[data]);
        let split = to_responses(anthropic_provider, &pieces(data, &mut rng, 64));
        assert_eq!(String::from_utf8_lossy(&split), String::from_utf8_lossy(&whole), "output depends on chunking");
        check_responses_events(&whole);
        let from = if anthropic_provider { Api::Messages } else { Api::Chat };
        if !well_formed(data, anthropic_provider) || ends_in_error(&whole) {
            continue;
        }
        if let (Some(provider), Some(client)) = (usage(from, data), usage(Api::Responses, &whole)) {
            assert_eq!(provider, client, "usage changed in translation (prompt, output)");
        }
    }
}
