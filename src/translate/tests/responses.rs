//! JSON responses both ways.

use serde_json::json;

use super::parse;
use crate::translate::{chat_response_to_messages, messages_response_to_chat, TranslateError};

#[test]
fn anthropic_message_to_chat_completion() {
    let body = json!({
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5-20250929",
        "content": [
            {"type": "thinking", "thinking": "Let me think", "signature": "sig"},
            {"type": "text", "text": "I'll check "},
            {"type": "text", "text": "the weather."},
            {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris", "unit": "c"}}
        ],
        "stop_reason": "tool_use", "stop_sequence": null,
        "usage": {"input_tokens": 2048, "cache_read_input_tokens": 1800, "cache_creation_input_tokens": 248, "output_tokens": 503,
                  "cache_creation": {"ephemeral_5m_input_tokens": 148, "ephemeral_1h_input_tokens": 100}}
    });
    let out =
        parse(&messages_response_to_chat(body.to_string().as_bytes(), "claude-sonnet-4-5", 1_741_569_952).unwrap());
    assert_eq!(
        out,
        json!({
            "id": "msg_01XFDUDYJgAACzvnptvVoYEL", "object": "chat.completion", "created": 1_741_569_952, "model": "claude-sonnet-4-5",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "I'll check the weather.", "refusal": null,
                "tool_calls": [{"id": "toolu_01A", "type": "function",
                                "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"unit\":\"c\"}"}}]},
                "logprobs": null, "finish_reason": "tool_calls"}],
            "usage": {"prompt_tokens": 4096, "completion_tokens": 503, "total_tokens": 4599,
                      "prompt_tokens_details": {"cached_tokens": 1800, "cache_write_tokens": 248}}
        })
    );
}

#[test]
fn stop_reasons_map_to_finish_reasons() {
    for (stop, finish) in [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("pause_turn", "stop"),
        ("model_context_window_exceeded", "length"),
    ] {
        let body = json!({"id": "m", "content": [{"type": "text", "text": "x"}], "stop_reason": stop, "usage": {"input_tokens": 1, "output_tokens": 1}});
        let out = parse(&messages_response_to_chat(body.to_string().as_bytes(), "c", 0).unwrap());
        assert_eq!(out["choices"][0]["finish_reason"], finish, "{stop}");
    }
}

#[test]
fn anthropic_without_text_or_cache_fields() {
    let body =
        json!({"id": "m", "content": [], "stop_reason": "end_turn", "usage": {"input_tokens": 10, "output_tokens": 0}});
    let out = parse(&messages_response_to_chat(body.to_string().as_bytes(), "c", 0).unwrap());
    assert_eq!(out["choices"][0]["message"], json!({"role": "assistant", "content": "", "refusal": null}));
    assert_eq!(
        out["usage"],
        json!({"prompt_tokens": 10, "completion_tokens": 0, "total_tokens": 10, "prompt_tokens_details": {"cached_tokens": 0}})
    );
    // Only tool calls: content is null, as OpenAI sends it.
    let body = json!({"id": "m", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}], "stop_reason": "tool_use"});
    let out = parse(&messages_response_to_chat(body.to_string().as_bytes(), "c", 0).unwrap());
    assert_eq!(out["choices"][0]["message"]["content"], json!(null));
    assert!(matches!(messages_response_to_chat(b"<html>", "c", 0), Err(TranslateError::Invalid(_))));
}

#[test]
fn chat_completion_to_anthropic_message() {
    let body = json!({
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "object": "chat.completion", "created": 1_741_569_952, "model": "gpt-4o-2024-08-06",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Checking.", "refusal": null, "annotations": [],
            "tool_calls": [{"id": "call_abc", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
                           {"id": "call_def", "type": "function", "function": {"name": "get_time", "arguments": ""}}]},
            "logprobs": null, "finish_reason": "tool_calls"}],
        "usage": {"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
                  "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}},
        "service_tier": "default"
    });
    let out = parse(&chat_response_to_messages(body.to_string().as_bytes(), "gpt-4o").unwrap());
    assert_eq!(
        out,
        json!({
            "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT", "type": "message", "role": "assistant", "model": "gpt-4o",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "call_abc", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_def", "name": "get_time", "input": {}}
            ],
            "stop_reason": "tool_use", "stop_sequence": null,
            "usage": {"input_tokens": 86, "output_tokens": 300, "cache_read_input_tokens": 1920, "cache_creation_input_tokens": 0}
        })
    );
}

#[test]
fn finish_reasons_map_to_stop_reasons() {
    for (finish, stop) in
        [("stop", "end_turn"), ("length", "max_tokens"), ("tool_calls", "tool_use"), ("content_filter", "refusal")]
    {
        let body = json!({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}, "finish_reason": finish}]});
        let out = parse(&chat_response_to_messages(body.to_string().as_bytes(), "m").unwrap());
        assert_eq!(out["stop_reason"], stop, "{finish}");
    }
    // Gemini's compatible endpoint has said "stop" for a tool call; tool ids may be missing there.
    let body = json!({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
        "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7, "prompt_tokens_details": null}});
    let out = parse(&chat_response_to_messages(body.to_string().as_bytes(), "gemini-2.5-flash").unwrap());
    assert_eq!(out["stop_reason"], "tool_use");
    assert_eq!(out["content"], json!([{"type": "tool_use", "id": "call_0", "name": "f", "input": {"a": 1}}]));
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 5, "output_tokens": 2, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
    );
}

#[test]
fn refusal_and_cache_writes() {
    let body = json!({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant", "content": null,
        "refusal": "I can't help with that."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 7, "total_tokens": 1007,
                  "prompt_tokens_details": {"cached_tokens": 500, "cache_write_tokens": 200}}});
    let out = parse(&chat_response_to_messages(body.to_string().as_bytes(), "m").unwrap());
    assert_eq!(out["content"], json!([{"type": "text", "text": "I can't help with that."}]));
    assert_eq!(out["stop_reason"], "refusal");
    assert_eq!(
        out["usage"],
        json!({"input_tokens": 300, "output_tokens": 7, "cache_read_input_tokens": 500, "cache_creation_input_tokens": 200})
    );
}

#[test]
fn unusable_tool_arguments_are_an_error() {
    let body = json!({"id": "c", "choices": [{"index": 0, "message": {"role": "assistant",
        "tool_calls": [{"id": "x", "type": "function", "function": {"name": "f", "arguments": "{\"a\":"}}]}, "finish_reason": "tool_calls"}]});
    assert!(matches!(chat_response_to_messages(body.to_string().as_bytes(), "m"), Err(TranslateError::Invalid(_))));
    assert!(matches!(chat_response_to_messages(b"not json", "m"), Err(TranslateError::Invalid(_))));
}
