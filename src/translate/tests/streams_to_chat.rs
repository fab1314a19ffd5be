//! Anthropic SSE → OpenAI chunks.

use serde_json::json;

use super::{collect_chat, every_split, parse};
use crate::translate::{messages_response_to_chat, MessagesToChat};
use crate::wire::stream::Sse;

/// Verbatim from the Anthropic streaming docs (docs/protocols/anthropic-messages.md, Streaming example).
const BASIC: &str = r#"event: message_start
data: {"type": "message_start", "message": {"id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-8", "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}

event: content_block_start
data: {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}

event: ping
data: {"type": "ping"}

event: content_block_delta
data: {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}}

event: content_block_stop
data: {"type": "content_block_stop", "index": 0}

event: message_delta
data: {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence":null}, "usage": {"output_tokens": 15}}

event: message_stop
data: {"type": "message_stop"}

"#;

const TOOL_USE: &str = "event: message_start\r\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_01T\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5-20250929\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,\"output_tokens\":2}}}\r\n\r\n\
event: content_block_start\r\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"Need weather.\"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\",\"signature\":\"EqQB\"}}\r\n\r\n\
event: content_block_stop\r\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\r\n\r\n\
event: content_block_start\r\n\
data: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"Checking \u{e9}\"}}\r\n\r\n\
event: content_block_stop\r\n\
data: {\"type\":\"content_block_stop\",\"index\":1}\r\n\r\n\
event: content_block_start\r\n\
data: {\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\",\"input\":{}}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\r\n\r\n\
event: content_block_delta\r\n\
data: {\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\r\n\r\n\
event: content_block_stop\r\n\
data: {\"type\":\"content_block_stop\",\"index\":2}\r\n\r\n\
event: content_block_start\r\n\
data: {\"type\":\"content_block_start\",\"index\":3,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"get_time\",\"input\":{}}}\r\n\r\n\
event: content_block_stop\r\n\
data: {\"type\":\"content_block_stop\",\"index\":3}\r\n\r\n\
event: message_delta\r\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\r\n\r\n\
event: message_stop\r\n\
data: {\"type\":\"message_stop\"}\r\n\r\n";

fn stream(include_usage: bool, input: &str) -> String {
    let out = every_split(
        || Sse::new(MessagesToChat::new("claude-opus-4-8", include_usage, 1_700_000_000)),
        input.as_bytes(),
    );
    String::from_utf8(out).unwrap()
}

#[test]
fn basic_stream_exact_output() {
    let id = "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY";
    let head = format!(
        r#"{{"id":"{id}","object":"chat.completion.chunk","created":1700000000,"model":"claude-opus-4-8","choices":[{{"index":0,"#
    );
    let expected = format!(
        "data: {head}\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n\
         data: {head}\"delta\":{{\"content\":\"Hello\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n\
         data: {head}\"delta\":{{}},\"logprobs\":null,\"finish_reason\":\"stop\"}}]}}\n\n\
         data: [DONE]\n\n"
    );
    assert_eq!(stream(false, BASIC), expected);
}

#[test]
fn basic_stream_with_usage_chunk() {
    let out = stream(true, BASIC);
    let chunks: Vec<&str> = out.split("\n\n").filter(|s| !s.is_empty()).collect();
    assert_eq!(chunks.len(), 5);
    for chunk in &chunks[..3] {
        assert!(chunk.ends_with(r#""usage":null}"#), "{chunk}");
    }
    let usage = parse(chunks[3].strip_prefix("data: ").unwrap().as_bytes());
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    assert_eq!(chunks[4], "data: [DONE]");
}

#[test]
fn tool_use_stream_matches_the_non_streaming_translation() {
    let collected = collect_chat(stream(true, TOOL_USE).as_bytes());
    assert_eq!(
        collected,
        json!({
            "role": "assistant", "content": "Checking é",
            "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                {"id": "toolu_02", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ],
            "finish_reason": "tool_calls",
            "usage": {"prompt_tokens": 2572, "completion_tokens": 89, "total_tokens": 2661,
                      "prompt_tokens_details": {"cached_tokens": 2000, "cache_write_tokens": 100}},
            "error": null, "done": true
        })
    );
    // The same answer as one JSON body translates to the same message and usage.
    let body = json!({"id": "msg_01T", "type": "message", "role": "assistant", "content": [
        {"type": "thinking", "thinking": "Need weather.", "signature": "EqQB"},
        {"type": "text", "text": "Checking é"},
        {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_02", "name": "get_time", "input": {}}],
        "stop_reason": "tool_use",
        "usage": {"input_tokens": 472, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 2000, "output_tokens": 89}});
    let whole = parse(&messages_response_to_chat(body.to_string().as_bytes(), "claude-opus-4-8", 1).unwrap());
    assert_eq!(whole["usage"], collected["usage"]);
    assert_eq!(whole["choices"][0]["finish_reason"], collected["finish_reason"]);
    assert_eq!(whole["choices"][0]["message"]["content"], collected["content"]);
    let streamed_args: Vec<serde_json::Value> = collected["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| serde_json::from_str(t["function"]["arguments"].as_str().unwrap()).unwrap_or(json!({})))
        .collect();
    let whole_args: Vec<serde_json::Value> = whole["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| serde_json::from_str(t["function"]["arguments"].as_str().unwrap()).unwrap())
        .collect();
    assert_eq!(streamed_args, whole_args);
}

#[test]
fn error_event_ends_the_stream() {
    let input = format!(
        "{}event: error\ndata: {{\"type\": \"error\", \"error\": {{\"type\": \"overloaded_error\", \"message\": \"Overloaded\"}}}}\n\n{}",
        BASIC.split("event: content_block_stop").next().unwrap(),
        "event: message_stop\ndata: {\"type\": \"message_stop\"}\n\n"
    );
    let out = stream(true, &input);
    let collected = collect_chat(out.as_bytes());
    assert_eq!(collected["content"], "Hello");
    assert_eq!(
        collected["error"],
        json!({"message": "Overloaded", "type": "service_unavailable_error", "param": null, "code": null})
    );
    assert_eq!(collected["done"], false);
    assert!(out.ends_with("\"code\":null}}\n\n"), "{out}");
}

#[test]
fn cut_stream_ends_with_an_error_not_done() {
    let input = BASIC.split("event: message_delta").next().unwrap();
    let collected = collect_chat(stream(false, input).as_bytes());
    assert_eq!(collected["content"], "Hello");
    assert_eq!(collected["done"], false);
    assert_eq!(collected["error"]["type"], "server_error");
}

#[test]
fn last_event_without_blank_line_still_counts() {
    let input = BASIC.trim_end();
    let collected = collect_chat(stream(false, input).as_bytes());
    assert_eq!(collected["done"], true);
    assert_eq!(collected["finish_reason"], "stop");
}

#[test]
fn unknown_and_malformed_events_are_skipped() {
    let input = BASIC.replace(
        "event: ping\ndata: {\"type\": \"ping\"}",
        "event: brand_new\ndata: {\"type\": \"brand_new\", \"x\": 1}\n\ndata: not json\n\nevent: ping\ndata: {\"type\": \"ping\"}",
    );
    assert_eq!(stream(false, &input), stream(false, BASIC));
}
