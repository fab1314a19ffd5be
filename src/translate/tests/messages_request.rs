//! Anthropic request → OpenAI Chat request.

use serde_json::{json, Value};

use super::{openai, parse};
use crate::translate::{messages_request_to_chat, TranslateError};

fn translate(body: Value) -> Result<Value, TranslateError> {
    messages_request_to_chat(body.to_string().as_bytes(), &openai("gpt-4o")).map(|b| parse(&b))
}

fn unsupported(body: Value) -> String {
    match translate(body) {
        Err(TranslateError::Unsupported(m)) => m,
        other => panic!("expected Unsupported, got {other:?}"),
    }
}

#[test]
fn full_conversation_with_images_tools_and_cache_control() {
    let body = json!({
        "model": "gpt-4o",
        "max_tokens": 1024,
        "system": [{"type": "text", "text": "You are helpful.", "cache_control": {"type": "ephemeral"}},
                   {"type": "text", "text": "Be brief."}],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "Describe this and check the weather"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
            ]},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Need the tool.", "signature": "sig"},
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {"city": "Paris"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01", "content": [
                    {"type": "text", "text": "18C"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBO"}}
                ]},
                {"type": "text", "text": "And tomorrow?", "cache_control": {"type": "ephemeral", "ttl": "1h"}}
            ]}
        ],
        "tools": [{"name": "get_weather", "description": "Weather",
                   "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
                   "cache_control": {"type": "ephemeral"}}],
        "tool_choice": {"type": "any", "disable_parallel_tool_use": true},
        "stop_sequences": ["\n\nHuman:"],
        "temperature": 0.5,
        "top_p": 0.8,
        "top_k": 40,
        "metadata": {"user_id": "u-1"},
        "stream": true,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "cache_control": {"type": "ephemeral"}
    });
    let expected = json!({
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "You are helpful.\n\nBe brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "Describe this and check the weather"},
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
            ]},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
            ]},
            {"role": "tool", "content": "18C", "tool_call_id": "toolu_01"},
            {"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBO"}},
                {"type": "text", "text": "And tomorrow?"}
            ]}
        ],
        "max_completion_tokens": 1024,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                   "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "tool_choice": "required",
        "parallel_tool_calls": false,
        "stop": ["\n\nHuman:"],
        "temperature": 0.5,
        "top_p": 0.8,
        "user": "u-1",
        "stream": true,
        "stream_options": {"include_usage": true}
    });
    assert_eq!(translate(body).unwrap(), expected);
}

#[test]
fn simple_request() {
    let body = json!({"model": "gpt-4o-mini", "max_tokens": 256, "system": "Terse.",
                      "messages": [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi"},
                                   {"role": "user", "content": [{"type": "text", "text": "Bye"}]}]});
    assert_eq!(
        translate(body).unwrap(),
        json!({"model": "gpt-4o", "messages": [
            {"role": "system", "content": "Terse."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi"},
            {"role": "user", "content": "Bye"}
        ], "max_completion_tokens": 256})
    );
}

#[test]
fn empty_system_is_left_out() {
    for system in [json!(""), json!([])] {
        let body =
            json!({"model": "m", "max_tokens": 5, "system": system, "messages": [{"role": "user", "content": "x"}]});
        assert_eq!(translate(body).unwrap()["messages"], json!([{"role": "user", "content": "x"}]));
    }
}

#[test]
fn tool_choices_and_results() {
    let base = |choice: Value| {
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tool_choice": choice,
               "tools": [{"name": "f", "input_schema": {"type": "object"}}]})
    };
    assert_eq!(translate(base(json!({"type": "auto"}))).unwrap()["tool_choice"], "auto");
    assert_eq!(translate(base(json!({"type": "none"}))).unwrap()["tool_choice"], "none");
    let named = translate(base(json!({"type": "tool", "name": "f"}))).unwrap();
    assert_eq!(named["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
    assert!(named.get("parallel_tool_calls").is_none());

    // Several results in one turn become consecutive tool messages; a string result stays a string.
    let body = json!({"model": "m", "max_tokens": 5, "messages": [
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "a", "name": "f", "input": {}},
            {"type": "tool_use", "id": "b", "name": "f", "input": {"k": [1, 2]}}
        ]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "a", "content": "ra"},
            {"type": "tool_result", "tool_use_id": "b", "content": [{"type": "text", "text": "r"}, {"type": "text", "text": "b"}], "is_error": true},
            {"type": "tool_result", "tool_use_id": "c"}
        ]}
    ]});
    assert_eq!(
        translate(body).unwrap()["messages"],
        json!([
            {"role": "assistant", "tool_calls": [
                {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                {"id": "b", "type": "function", "function": {"name": "f", "arguments": "{\"k\":[1,2]}"}}
            ]},
            {"role": "tool", "content": "ra", "tool_call_id": "a"},
            {"role": "tool", "content": "r\nb", "tool_call_id": "b"},
            {"role": "tool", "content": "", "tool_call_id": "c"}
        ])
    );
}

#[test]
fn documents_and_structured_output() {
    let schema = json!({"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": false});
    let body = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain doc"}}
    ]}], "output_config": {"format": {"type": "json_schema", "schema": schema}, "effort": "high"}});
    let out = translate(body).unwrap();
    assert_eq!(
        out["messages"][0]["content"],
        json!([
            {"type": "file", "file": {"filename": "document.pdf", "file_data": "data:application/pdf;base64,JVBERi0x"}},
            {"type": "text", "text": "plain doc"}
        ])
    );
    assert_eq!(
        out["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema}})
    );
    let beta = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}],
                      "output_format": {"type": "json_schema", "schema": schema}});
    assert_eq!(translate(beta).unwrap()["response_format"]["json_schema"]["schema"], schema);
}

#[test]
fn unsupported_features_are_named() {
    let msg = || json!([{"role": "user", "content": "x"}]);
    let server_tool = json!({"model": "m", "max_tokens": 5, "messages": msg(),
                             "tools": [{"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]});
    assert!(unsupported(server_tool).contains("web_search_20250305"));
    let mcp = json!({"model": "m", "max_tokens": 5, "messages": msg(), "mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]});
    assert!(unsupported(mcp).contains("mcp_servers"));
    let block = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [
        {"type": "server_tool_use", "id": "s", "name": "web_search", "input": {}}]}]});
    assert!(unsupported(block).contains("server_tool_use"));
    let file_doc = json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "file", "file_id": "file_1"}}]}]});
    assert!(unsupported(file_doc).contains("file"));
    // A custom tool is an ordinary function.
    let custom = json!({"model": "m", "max_tokens": 5, "messages": msg(), "tools": [{"type": "custom", "name": "f", "input_schema": {"type": "object"}}]});
    assert_eq!(translate(custom).unwrap()["tools"][0]["function"]["name"], "f");
}

#[test]
fn invalid_bodies_are_errors() {
    for body in [
        json!({"model": "m", "max_tokens": 5}),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]}),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "tools": [{"name": "f"}]}),
        json!({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}], "system": 3}),
    ] {
        assert!(matches!(translate(body.clone()), Err(TranslateError::Invalid(_))), "{body}");
    }
}

#[test]
fn a_malformed_content_names_its_message() {
    let invalid = |messages: Value| match translate(json!({"model": "m", "max_tokens": 5, "messages": messages})) {
        Err(TranslateError::Invalid(m)) => m,
        other => panic!("expected Invalid, got {other:?}"),
    };
    let ok = json!({"role": "user", "content": "x"});
    assert_eq!(
        invalid(json!([ok, {"role": "user", "content": 5}])),
        "Invalid 'messages[1].content': invalid type: integer `5`, expected a sequence"
    );
    assert_eq!(
        invalid(json!([ok, ok, {"role": "assistant", "content": [{"text": "no type"}]}])),
        "Invalid 'messages[2].content': missing field `type`"
    );
    assert_eq!(
        invalid(json!([{"role": "system", "content": {"text": "x"}}])),
        "Invalid 'system': invalid type: map, expected a sequence"
    );
    assert_eq!(invalid(json!([{"role": "tool", "content": 5}])), "messages[0]: unknown role 'tool'");
    assert_eq!(invalid(json!([{"content": "x"}])), "Invalid 'messages': missing field `role`");
    assert_eq!(invalid(json!(null)), "Missing required parameter: 'messages'");
}

#[test]
fn what_claude_code_sends_translates() {
    // System messages inside `messages`, thinking, effort, context management, cache breakpoints, a large limit.
    let body = json!({"model": "gpt-5.2", "max_tokens": 64000, "stream": true,
    "system": [{"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}}],
    "thinking": {"type": "adaptive"}, "output_config": {"effort": "max"},
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Fix it.", "cache_control": {"type": "ephemeral"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "Plan.", "signature": "sig"},
            {"type": "text", "text": "Looking."},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.rs"}]},
        {"role": "system", "content": "The user switched to plan mode."},
        {"role": "user", "content": "Go on."}
    ]});
    let sent = messages_request_to_chat(body.to_string().as_bytes(), &openai("gpt-5.2")).map(|b| parse(&b)).unwrap();
    let roles: Vec<&str> = sent["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["system", "user", "assistant", "tool", "system", "user"]);
    assert_eq!(sent["messages"][4]["content"], "The user switched to plan mode.");
    assert_eq!(sent["messages"][2]["content"], "Looking.", "thinking is dropped, the text kept");
    assert_eq!(sent["reasoning_effort"], "xhigh");
    assert_eq!(sent["max_completion_tokens"], 64000);
    assert!(!sent.to_string().contains("cache_control") && sent.get("context_management").is_none());

    // gpt-4o-mini: no reasoning, and a 16384-token limit.
    let sent =
        messages_request_to_chat(body.to_string().as_bytes(), &openai("gpt-4o-mini")).map(|b| parse(&b)).unwrap();
    assert!(sent.get("reasoning_effort").is_none());
    assert_eq!(sent["max_completion_tokens"], 16384);
    // A budget picks the level; Gemini takes it too.
    let budget = json!({"model": "g", "max_tokens": 5, "thinking": {"type": "enabled", "budget_tokens": 2000},
        "messages": [{"role": "user", "content": "x"}]});
    let sent = messages_request_to_chat(budget.to_string().as_bytes(), &super::gemini("gemini-2.5-pro"))
        .map(|b| parse(&b))
        .unwrap();
    assert_eq!(sent["reasoning_effort"], "low");
    let disabled = json!({"model": "g", "max_tokens": 5, "thinking": {"type": "disabled"},
        "messages": [{"role": "user", "content": "x"}]});
    let sent =
        messages_request_to_chat(disabled.to_string().as_bytes(), &openai("gpt-5.2")).map(|b| parse(&b)).unwrap();
    assert_eq!(sent["reasoning_effort"], "none");
}

/// Claude Code's system message after the user turn: kept in place for OpenAI;
/// for Gemini, which keeps only a conversation's last system message, joined
/// with the system prompt into one at the start.
#[test]
fn system_messages_mid_conversation() {
    let body = json!({
        "model": "m", "max_tokens": 100, "system": "You are Claude Code.",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "system", "content": "Tools changed."}
        ]
    });
    let roles = |v: &Value| -> Vec<String> {
        v["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap().to_string()).collect()
    };
    let openai_body = messages_request_to_chat(body.to_string().as_bytes(), &openai("gpt-4o")).map(|b| parse(&b));
    assert_eq!(roles(&openai_body.unwrap()), ["system", "user", "system"]);
    let gemini_body =
        messages_request_to_chat(body.to_string().as_bytes(), &super::gemini("gemini-2.5-flash")).map(|b| parse(&b));
    let gemini_body = gemini_body.unwrap();
    assert_eq!(roles(&gemini_body), ["system", "user"]);
    assert_eq!(gemini_body["messages"][0]["content"], "You are Claude Code.\n\nTools changed.");
}
