//! OpenAI Chat request → Anthropic request.

use serde_json::{json, Value};

use super::{claude, parse};
use crate::translate::{chat_request_to_messages, TranslateError};

fn translate(body: Value) -> Result<Value, TranslateError> {
    chat_request_to_messages(body.to_string().as_bytes(), &claude("claude-sonnet-4-5-20250929")).map(|b| parse(&b))
}

fn unsupported(body: Value) -> String {
    match translate(body) {
        Err(TranslateError::Unsupported(m)) => m,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

fn invalid(body: Value) -> String {
    match translate(body) {
        Err(TranslateError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn full_conversation_with_images_and_tools() {
    let body = json!({
        "model": "claude-sonnet-4-5",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "developer", "content": [{"type": "text", "text": "Use metric units."}]},
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image, and the weather in Paris?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "get_time", "arguments": ""}}
            ]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18C, sunny"},
            {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "14:02"}]},
            {"role": "user", "content": "Thanks!"}
        ],
        "tools": [
            {"type": "function", "function": {"name": "get_weather", "description": "Weather by city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}, "strict": true}},
            {"type": "function", "function": {"name": "get_time"}}
        ],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "stop": "END",
        "temperature": 0.2,
        "top_p": 0.9,
        "max_completion_tokens": 300,
        "max_tokens": 999,
        "user": "user-42",
        "stream": true,
        "stream_options": {"include_usage": true},
        "seed": 7,
        "frequency_penalty": 0.5,
        "n": 1,
        "logprobs": false
    });
    let expected = json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 300,
        "system": [{"type": "text", "text": "You are terse."}, {"type": "text", "text": "Use metric units."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What is in this image, and the weather in Paris?"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "get_time", "input": {}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "call_1", "content": "18C, sunny"},
                {"type": "tool_result", "tool_use_id": "call_2", "content": [{"type": "text", "text": "14:02"}]},
                {"type": "text", "text": "Thanks!"}
            ]}
        ],
        "tools": [
            {"name": "get_weather", "description": "Weather by city",
             "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
            {"name": "get_time", "input_schema": {"type": "object", "properties": {}}}
        ],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["END"],
        "temperature": 0.2,
        "top_p": 0.9,
        "metadata": {"user_id": "user-42"},
        "stream": true
    });
    assert_eq!(translate(body).unwrap(), expected);
}

#[test]
fn minimal_request_gets_default_max_tokens_and_string_content() {
    let body = json!({"model": "claude-x", "messages": [{"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"}]});
    assert_eq!(
        translate(body).unwrap(),
        json!({"model": "claude-sonnet-4-5-20250929", "max_tokens": 32000, "system": "Be nice.",
               "messages": [{"role": "user", "content": "Hi"}]})
    );
    let body = json!({"model": "m", "max_tokens": 12, "messages": [{"role": "user", "content": "Hi"}]});
    assert_eq!(translate(body).unwrap()["max_tokens"], 12);
}

#[test]
fn consecutive_same_role_messages_merge() {
    let body = json!({"model": "m", "messages": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": [{"type": "text", "text": "two"}]},
        {"role": "assistant", "content": "three"},
        {"role": "assistant", "content": [{"type": "text", "text": "four"}, {"type": "refusal", "refusal": "no"}]},
        {"role": "user", "content": "five"}
    ]});
    assert_eq!(
        translate(body).unwrap()["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "three"}, {"type": "text", "text": "four"}, {"type": "text", "text": "no"}]},
            {"role": "user", "content": "five"}
        ])
    );
}

#[test]
fn tool_choice_variants() {
    let base = |choice: Value| {
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": choice,
               "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]})
    };
    assert_eq!(translate(base(json!("auto"))).unwrap()["tool_choice"], json!({"type": "auto"}));
    assert_eq!(translate(base(json!("none"))).unwrap()["tool_choice"], json!({"type": "none"}));
    assert_eq!(translate(base(json!("required"))).unwrap()["tool_choice"], json!({"type": "any"}));
    assert_eq!(
        translate(base(json!({"type": "function", "function": {"name": "f"}}))).unwrap()["tool_choice"],
        json!({"type": "tool", "name": "f"})
    );
    assert!(translate(base(Value::Null)).unwrap().get("tool_choice").is_none());
    let mut no_parallel = base(Value::Null);
    no_parallel["parallel_tool_calls"] = json!(false);
    assert_eq!(
        translate(no_parallel).unwrap()["tool_choice"],
        json!({"type": "auto", "disable_parallel_tool_use": true})
    );
    // Without tools there is nothing to choose.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": "auto"});
    assert!(translate(body).unwrap().get("tool_choice").is_none());
    assert!(unsupported(base(json!({"type": "allowed_tools", "allowed_tools": {}}))).contains("allowed_tools"));
}

#[test]
fn stop_as_array_and_user_fields() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "stop": ["a", "b"],
                      "user": "u", "safety_identifier": "s"});
    let out = translate(body).unwrap();
    assert_eq!(out["stop_sequences"], json!(["a", "b"]));
    assert_eq!(out["metadata"], json!({"user_id": "s"}));
}

#[test]
fn response_format_json_schema_maps_to_output_config() {
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"], "additionalProperties": false});
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "person", "strict": true, "schema": schema}}});
    assert_eq!(translate(body).unwrap()["output_config"], json!({"format": {"type": "json_schema", "schema": schema}}));
    let body =
        json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "text"}});
    assert!(translate(body).unwrap().get("output_config").is_none());
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_object"}});
    assert!(unsupported(body).contains("json_object"));
}

#[test]
fn files_and_cache_control_on_parts() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
        {"type": "text", "text": "Summarise", "cache_control": {"type": "ephemeral"}}
    ]}]});
    assert_eq!(
        translate(body).unwrap()["messages"][0]["content"],
        json!([
            {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
            {"type": "text", "text": "Summarise", "cache_control": {"type": "ephemeral"}}
        ])
    );
}

#[test]
fn unsupported_fields_are_named() {
    let msg = || json!([{"role": "user", "content": "x"}]);
    assert!(unsupported(json!({"model": "m", "messages": msg(), "n": 2})).contains("'n'"));
    assert!(unsupported(json!({"model": "m", "messages": msg(), "logprobs": true})).contains("logprobs"));
    assert!(unsupported(json!({"model": "m", "messages": msg(), "top_logprobs": 3})).contains("top_logprobs"));
    assert!(unsupported(json!({"model": "m", "messages": msg(), "functions": [{"name": "f"}]})).contains("functions"));
    assert!(unsupported(json!({"model": "m", "messages": msg(), "function_call": "auto"})).contains("function_call"));
    assert!(
        unsupported(json!({"model": "m", "messages": msg(), "modalities": ["text", "audio"]})).contains("modalities")
    );
    assert!(unsupported(json!({"model": "m", "messages": msg(), "audio": {"voice": "alloy", "format": "wav"}}))
        .contains("audio"));
    assert!(
        unsupported(json!({"model": "m", "messages": msg(), "web_search_options": {}})).contains("web_search_options")
    );
    assert!(unsupported(
        json!({"model": "m", "messages": msg(), "tools": [{"type": "custom", "custom": {"name": "x"}}]})
    )
    .contains("custom"));
    let audio = json!([{"role": "user", "content": [{"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}}]}]);
    assert!(unsupported(json!({"model": "m", "messages": audio})).contains("audio"));
    let file_id = json!([{"role": "user", "content": [{"type": "file", "file": {"file_id": "file-1"}}]}]);
    assert!(unsupported(json!({"model": "m", "messages": file_id})).contains("file_id"));
    let function_role = json!([{"role": "function", "name": "f", "content": "x"}]);
    assert!(unsupported(json!({"model": "m", "messages": function_role})).contains("function"));
    let not_base64 = json!([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/svg+xml,<svg/>"}}]}]);
    assert!(unsupported(json!({"model": "m", "messages": not_base64})).contains("base64"));
    // Null and neutral values are fine.
    assert!(translate(json!({"model": "m", "messages": msg(), "n": null, "functions": null, "modalities": ["text"]}))
        .is_ok());
}

#[test]
fn invalid_bodies_are_errors() {
    assert!(invalid(json!({"model": "m"})).contains("messages"));
    assert!(invalid(json!({"model": "m", "messages": [{"role": "wizard", "content": "x"}]})).contains("wizard"));
    assert!(invalid(json!({"model": "m", "messages": [{"role": "user"}]})).contains("content"));
    assert!(invalid(json!({"model": "m", "messages": [{"role": "tool", "content": "x"}]})).contains("tool_call_id"));
    let bad_args = json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{\"a\":"}}]}]);
    assert!(invalid(json!({"model": "m", "messages": bad_args})).contains("not valid JSON"));
    let array_args = json!([{"role": "assistant", "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "[1]"}}]}]);
    assert!(invalid(json!({"model": "m", "messages": array_args})).contains("JSON object"));
    assert!(invalid(json!({"model": "m", "messages": [{"role": "user", "content": 5}]})).contains("content"));
    assert!(invalid(json!({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": "ten"}))
        .contains("max_tokens"));
    assert!(matches!(chat_request_to_messages(b"{", &claude("m")), Err(TranslateError::Invalid(_))));
}

#[test]
fn escaped_strings_survive() {
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "line1\nline2 \"quoted\" é \u{1F600}"}]});
    assert_eq!(translate(body).unwrap()["messages"][0]["content"], "line1\nline2 \"quoted\" é \u{1F600}");
}

#[test]
fn reasoning_effort_becomes_thinking_unless_the_request_forbids_it() {
    let body = |extra: Value| {
        let mut b =
            json!({"model": "m", "reasoning_effort": "medium", "messages": [{"role": "user", "content": "Hi"}]});
        for (k, v) in extra.as_object().unwrap() {
            b[k] = v.clone();
        }
        b.to_string()
    };
    let sonnet = claude("claude-sonnet-4-5");
    let sent = parse(&chat_request_to_messages(body(json!({})).as_bytes(), &sonnet).unwrap());
    assert_eq!(
        (sent["max_tokens"].clone(), sent["thinking"].clone()),
        (json!(32000), json!({"type": "enabled", "budget_tokens": 8192}))
    );
    let sent = parse(&chat_request_to_messages(body(json!({"temperature": 0.3})).as_bytes(), &sonnet).unwrap());
    assert!(sent.get("thinking").is_none(), "the client's temperature wins: {sent}");
    let sent = parse(&chat_request_to_messages(body(json!({"max_tokens": 100000})).as_bytes(), &sonnet).unwrap());
    assert_eq!(sent["max_tokens"], 64000, "clamped to the model's maximum");
    let opus = claude("claude-opus-4-8");
    let sent = parse(&chat_request_to_messages(body(json!({})).as_bytes(), &opus).unwrap());
    assert_eq!(
        (sent["thinking"].clone(), sent["output_config"].clone()),
        (json!({"type": "adaptive"}), json!({"effort": "medium"}))
    );
    let sent = parse(&chat_request_to_messages(body(json!({"reasoning_effort": "none"})).as_bytes(), &opus).unwrap());
    assert!(sent.get("thinking").is_none() && sent.get("output_config").is_none());
}
