//! Anthropic Messages.
//!
//! JSON: `usage`, `model`, `content[].text`, or an error body. SSE:
//! `message_start` carries the input side of `usage` (cache fields, the 5m/1h
//! split); `message_delta.usage` is cumulative, so each value replaces the
//! last (never summed), and any input/cache field it carries overrides the
//! start's; text arrives as `content_block_delta` `text_delta`; `event: error`
//! is an error; `ping` and unknown events are ignored.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::sink::Sink;
use crate::wire::json::error_message;
use crate::wire::lenient::{Items, Obj, Str};
use crate::wire::{usage, SseEvent};

/// A body or `message_start`'s message, read in one pass (see `crate::wire::lenient`).
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    model: Str<'a>,
    #[serde(borrow, default)]
    content: Items<Obj<Block<'a>>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    message: Obj<Message<'a>>,
    #[serde(borrow, default)]
    content_block: Obj<Block<'a>>,
    #[serde(borrow, default)]
    delta: Obj<Block<'a>>,
    #[serde(borrow, default)]
    usage: Option<&'a RawValue>,
    #[serde(borrow, default)]
    error: Option<&'a RawValue>,
}

/// A content block or a delta: both have `type` and maybe `text`.
#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, default, rename = "type")]
    kind: Str<'a>,
    #[serde(borrow, default)]
    text: Str<'a>,
}

fn block(b: Obj<Block>, sink: &mut Sink) {
    let Some(b) = b.0 else {
        return;
    };
    match b.kind.0.as_deref() {
        Some("text" | "text_delta") => {
            if let Some(text) = b.text.0 {
                sink.text(&text);
            }
        }
        // Tool input, thinking and the like are generated content too.
        Some(_) => sink.token(),
        None => {}
    }
}

/// A message's model and usage: a body's, or `message_start`'s.
fn start(m: &Message, sink: &mut Sink) {
    if let Some(model) = &m.model.0 {
        sink.model(model);
    }
    if let Some(raw) = m.usage {
        let mut usage = usage::anthropic_start();
        usage::merge_anthropic(&mut usage, Some(raw));
        sink.usage = Some(usage);
    }
}

pub(super) fn body(body: &[u8], sink: &mut Sink) -> Result<(), serde_json::Error> {
    let m: Message = serde_json::from_slice(body)?;
    if m.kind.0.as_deref() == Some("error") || m.error.is_some() {
        sink.error(error_message(m.error).as_deref().unwrap_or("error"));
    }
    start(&m, sink);
    for b in m.content.0 {
        block(b, sink);
    }
    Ok(())
}

pub(super) fn event(event: &SseEvent, sink: &mut Sink) {
    let Ok(e) = serde_json::from_str::<Event>(&event.data) else {
        return;
    };
    match e.kind.0.as_deref().or(event.event.as_deref()).unwrap_or("") {
        "message_start" => {
            if let Some(m) = &e.message.0 {
                start(m, sink);
            }
        }
        "content_block_start" => block(e.content_block, sink),
        "content_block_delta" => block(e.delta, sink),
        "message_delta" => {
            if let Some(raw) = e.usage {
                usage::merge_anthropic(sink.usage.get_or_insert_with(usage::anthropic_start), Some(raw));
            }
        }
        "error" => sink.error(error_message(e.error).as_deref().unwrap_or("error event")),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests_support::{every_split, finish_body};
    use super::super::Usage;
    use crate::wire::Api;

    const WIRE: Api = Api::Messages;

    #[test]
    fn json_body_with_5m_and_1h_cache_split() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929",
"content":[{"type":"thinking","thinking":"hm","signature":"x"},{"type":"text","text":"Hello"},{"type":"text","text":" there"}],
"stop_reason":"end_turn","stop_sequence":null,
"usage":{"input_tokens":2048,"cache_read_input_tokens":1800,"cache_creation_input_tokens":248,"output_tokens":503,
         "cache_creation":{"ephemeral_5m_input_tokens":148,"ephemeral_1h_input_tokens":100}}}"#;
        let out = finish_body(WIRE, body);
        assert_eq!(
            out.usage,
            Some(Usage {
                input_tokens: 2048,
                output_tokens: 503,
                cache_read_tokens: Some(1800),
                cache_creation_tokens: Some(248),
                cache_creation_5m_tokens: Some(148),
                cache_creation_1h_tokens: Some(100),
                input_includes_cache: false,
                ..Usage::default()
            })
        );
        assert_eq!(out.output_text, "Hello there");
        assert_eq!(out.served_model.as_deref(), Some("claude-sonnet-4-5-20250929"));
    }

    #[test]
    fn error_body() {
        let body =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        let out = finish_body(WIRE, body);
        assert_eq!(out.error.as_deref(), Some("Overloaded"));
        assert_eq!(out.usage, None);
    }

    const STREAM: &[u8] = b"event: message_start\n\
data: {\"type\": \"message_start\", \"message\": {\"id\": \"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY\", \"type\": \"message\", \"role\": \"assistant\", \"content\": [], \"model\": \"claude-opus-4-8\", \"stop_reason\": null, \"stop_sequence\": null, \"usage\": {\"input_tokens\": 25, \"cache_read_input_tokens\": 1800, \"cache_creation_input_tokens\": 248, \"cache_creation\": {\"ephemeral_5m_input_tokens\": 148, \"ephemeral_1h_input_tokens\": 100}, \"output_tokens\": 1}}}\n\n\
event: content_block_start\n\
data: {\"type\": \"content_block_start\", \"index\": 0, \"content_block\": {\"type\": \"text\", \"text\": \"\"}}\n\n\
event: ping\n\
data: {\"type\": \"ping\"}\n\n\
event: content_block_delta\n\
data: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"Hello\"}}\n\n\
event: content_block_stop\n\
data: {\"type\": \"content_block_stop\", \"index\": 0}\n\n\
event: message_delta\n\
data: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"tool_use\", \"stop_sequence\":null}, \"usage\": {\"output_tokens\": 9}}\n\n\
event: message_delta\n\
data: {\"type\": \"message_delta\", \"delta\": {\"stop_reason\": \"end_turn\", \"stop_sequence\":null}, \"usage\": {\"output_tokens\": 15}}\n\n\
event: message_stop\n\
data: {\"type\": \"message_stop\"}\n\n";

    #[test]
    fn message_delta_usage_is_cumulative_not_summed() {
        let out = every_split(WIRE, STREAM);
        assert_eq!(
            out.usage,
            Some(Usage {
                input_tokens: 25,
                output_tokens: 15,
                cache_read_tokens: Some(1800),
                cache_creation_tokens: Some(248),
                cache_creation_5m_tokens: Some(148),
                cache_creation_1h_tokens: Some(100),
                input_includes_cache: false,
                ..Usage::default()
            })
        );
        assert_eq!(out.output_text, "Hello");
        assert_eq!(out.served_model.as_deref(), Some("claude-opus-4-8"));
        assert!(out.first_token);
    }

    #[test]
    fn message_delta_input_fields_override_the_start() {
        let stream = b"event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-haiku-4-5\",\"usage\":{\"input_tokens\":0,\"cache_read_input_tokens\":0,\"output_tokens\":1}}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{},\"usage\":{\"input_tokens\":40,\"cache_read_input_tokens\":900,\"output_tokens\":7}}\n\n";
        let usage = every_split(WIRE, stream).usage.unwrap();
        assert_eq!((usage.input_tokens, usage.cache_read_tokens, usage.output_tokens), (40, Some(900), 7));
        assert_eq!(usage.cache_creation_tokens, None);
    }

    #[test]
    fn members_of_unexpected_types_skip_themselves_not_the_event() {
        let stream = b"event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"model\":[],\"content\":7,\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":\"0\",\"delta\":{\"type\":\"text_delta\",\"text\":{\"t\":1}}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":\"oops\"}\n\n\
event: content_block_delta\n\
data: {\"type\":7,\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":null,\"usage\":{\"output_tokens\":4}}\n\n";
        let out = every_split(WIRE, stream);
        // A `type` that is not a string falls back to the SSE event name.
        assert_eq!(out.output_text, "Hi");
        assert_eq!(out.served_model, None);
        assert_eq!(out.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((5, 4)));
    }

    #[test]
    fn mid_stream_error_keeps_usage_so_far() {
        let cut = STREAM.windows(19).position(|w| w == b"event: content_bloc").unwrap();
        let mut stream = STREAM.split_at(cut).0.to_vec();
        stream.extend_from_slice(b"event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}\n\n");
        let out = every_split(WIRE, &stream);
        assert_eq!(out.error.as_deref(), Some("Overloaded"));
        assert_eq!(out.usage.map(|u| (u.input_tokens, u.output_tokens)), Some((25, 1)));
        assert!(!out.first_token);
    }

    #[test]
    fn tool_and_thinking_deltas_count_as_first_token() {
        let stream = b"event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Let me\"}}\n\n";
        let out = every_split(WIRE, stream);
        assert!(out.first_token);
        assert_eq!(out.output_text, "");
    }

    #[test]
    fn server_tool_web_searches_are_counted() {
        let body = br#"{"type":"message","model":"claude-opus-5-5","content":[{"type":"text","text":"ok"}],
"usage":{"input_tokens":10,"output_tokens":5,"server_tool_use":{"web_search_requests":3,"web_fetch_requests":1}}}"#;
        assert_eq!(finish_body(WIRE, body).usage.and_then(|u| u.web_search_requests), Some(3));
        // Streams: message_delta's usage is cumulative and carries the count.
        let stream = b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"model\":\"claude-opus-5-5\",\"usage\":{\"input_tokens\":10,\"output_tokens\":1}}}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":9,\"server_tool_use\":{\"web_search_requests\":2}}}\n\n";
        let out = every_split(WIRE, stream);
        assert_eq!(out.usage.map(|u| (u.output_tokens, u.web_search_requests)), Some((9, Some(2))));
        let plain = br#"{"type":"message","usage":{"input_tokens":1,"output_tokens":1}}"#;
        assert_eq!(finish_body(WIRE, plain).usage.and_then(|u| u.web_search_requests), None);
    }
}
