//! OpenAI chunks → Anthropic SSE.

use serde_json::{json, Value};

use super::{collect_anthropic, every_split, parse};
use crate::translate::{chat_response_to_messages, ChatToMessages};
use crate::wire::stream::Sse;

/// The docs/protocols/openai-chat.md streaming example with `include_usage`.
const BASIC: &str = r#"data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}

data: {"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[],"usage":{"prompt_tokens":19,"completion_tokens":10,"total_tokens":29,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}

data: [DONE]

"#;

fn chunk(delta: Value, finish: Value) -> String {
    let c = json!({"id": "chatcmpl-T", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                   "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish}], "usage": null});
    format!("data: {c}\n\n")
}

fn tool_stream() -> String {
    let mut s = String::new();
    s += &chunk(
        json!({"role": "assistant", "content": null, "tool_calls": [
        {"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
        Value::Null,
    );
    s += &chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), Value::Null);
    s += &chunk(json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), Value::Null);
    s += &chunk(
        json!({"tool_calls": [{"index": 1, "id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}]}),
        Value::Null,
    );
    s += &chunk(json!({"tool_calls": [{"index": 1, "function": {"arguments": "{}"}}]}), Value::Null);
    s += &chunk(json!({}), json!("tool_calls"));
    s += "data: {\"id\":\"chatcmpl-T\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\
          \"usage\":{\"prompt_tokens\":2006,\"completion_tokens\":300,\"total_tokens\":2306,\"prompt_tokens_details\":{\"cached_tokens\":1920}}}\n\n";
    s += "data: [DONE]\n\n";
    s
}

fn stream(input: &str) -> String {
    String::from_utf8(every_split(|| Sse::new(ChatToMessages::new("gpt-4o-mini")), input.as_bytes())).unwrap()
}

#[test]
fn basic_stream_exact_output() {
    let expected = "event: message_start\n\
data: {\"type\":\"message_start\",\"message\":{\"id\":\"chatcmpl-123\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"gpt-4o-mini\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,\"output_tokens\":0}}}\n\n\
event: content_block_start\n\
data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n\
event: content_block_delta\n\
data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}\n\n\
event: content_block_stop\n\
data: {\"type\":\"content_block_stop\",\"index\":0}\n\n\
event: message_delta\n\
data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":19,\"output_tokens\":10,\"cache_read_input_tokens\":0,\"cache_creation_input_tokens\":0}}\n\n\
event: message_stop\n\
data: {\"type\":\"message_stop\"}\n\n";
    assert_eq!(stream(BASIC), expected);
}

#[test]
fn tool_stream_matches_the_non_streaming_translation() {
    let collected = collect_anthropic(stream(&tool_stream()).as_bytes());
    assert_eq!(collected["done"], true);
    assert_eq!(collected["error"], Value::Null);
    let message = &collected["message"];
    assert_eq!(
        message["content"],
        json!([
            {"type": "tool_use", "id": "call_a", "name": "get_weather", "input": {"city": "Paris"}},
            {"type": "tool_use", "id": "call_b", "name": "get_time", "input": {}}
        ])
    );
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 86, "output_tokens": 300, "cache_read_input_tokens": 1920, "cache_creation_input_tokens": 0})
    );
    let body = json!({"id": "chatcmpl-T", "choices": [{"index": 0, "message": {"role": "assistant", "content": null, "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]}, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306, "prompt_tokens_details": {"cached_tokens": 1920}}});
    let whole = parse(&chat_response_to_messages(body.to_string().as_bytes(), "gpt-4o-mini").unwrap());
    for key in ["id", "type", "role", "model", "content", "stop_reason", "stop_sequence", "usage"] {
        assert_eq!(message[key], whole[key], "{key}");
    }
}

#[test]
fn text_then_tool_then_text_opens_new_blocks() {
    let mut s = String::new();
    s += &chunk(json!({"role": "assistant", "content": "Let me look."}), Value::Null);
    s += &chunk(
        json!({"tool_calls": [{"index": 0, "id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"q\":1}"}}]}),
        Value::Null,
    );
    s += &chunk(json!({"content": "Done"}), json!("stop"));
    s += "data: [DONE]\n\n";
    let message = collect_anthropic(stream(&s).as_bytes())["message"].clone();
    assert_eq!(
        message["content"],
        json!([
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": "c1", "name": "f", "input": {"q": 1}},
            {"type": "text", "text": "Done"}
        ])
    );
    // Gemini's compatible endpoint has said "stop" for tool calls; the client must still run them.
    assert_eq!(message["stop_reason"], "tool_use");
    assert_eq!(message["usage"], json!({"input_tokens": 0, "output_tokens": 0}));
}

#[test]
fn refusal_and_length() {
    let mut s = chunk(json!({"role": "assistant", "refusal": "I can't."}), json!("stop"));
    s += "data: [DONE]\n\n";
    let message = collect_anthropic(stream(&s).as_bytes())["message"].clone();
    assert_eq!(message["content"], json!([{"type": "text", "text": "I can't."}]));
    assert_eq!(message["stop_reason"], "refusal");
    let mut s = chunk(json!({"content": "trunc"}), json!("length"));
    s += "data: [DONE]\n\n";
    assert_eq!(collect_anthropic(stream(&s).as_bytes())["message"]["stop_reason"], "max_tokens");
}

#[test]
fn in_stream_error() {
    let mut s = chunk(json!({"role": "assistant", "content": "Hi"}), Value::Null);
    s += "data: {\"error\":{\"message\":\"The server is overloaded\",\"type\":\"service_unavailable_error\",\"param\":null,\"code\":\"server_is_overloaded\"}}\n\n";
    s += &chunk(json!({"content": "ignored"}), Value::Null);
    s += "data: [DONE]\n\n";
    let out = stream(&s);
    let collected = collect_anthropic(out.as_bytes());
    assert_eq!(collected["error"], json!({"type": "overloaded_error", "message": "The server is overloaded"}));
    assert_eq!(collected["done"], false);
    assert!(!out.contains("ignored"));
}

#[test]
fn stream_without_done() {
    // Completed by its finish_reason.
    let s = chunk(json!({"role": "assistant", "content": "Hi"}), json!("stop"));
    let collected = collect_anthropic(stream(&s).as_bytes());
    assert_eq!(collected["done"], true);
    assert_eq!(collected["message"]["stop_reason"], "end_turn");
    // Cut before any finish_reason: an error, not a finished message.
    let s = chunk(json!({"role": "assistant", "content": "Hi"}), Value::Null);
    let collected = collect_anthropic(stream(&s).as_bytes());
    assert_eq!(collected["done"], false);
    assert_eq!(collected["error"]["type"], "api_error");
}

#[test]
fn empty_stream_with_only_done_is_a_complete_empty_message() {
    let collected = collect_anthropic(stream("data: [DONE]\n\n").as_bytes());
    assert_eq!(collected["done"], true);
    assert_eq!(collected["message"]["content"], json!([]));
}
